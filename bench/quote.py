"""Benchmark of the quote engine end to end; prints one JSON object.

    ./dev bench quote [--backend sqlite|postgres|both] [--repeat N]

For each backend it builds two databases through the public API (master data, price lists,
promotions) and times ``POST /api/v1/quotes`` in-process through the real app (credential
middleware, rate limiter, tenant guard, RLS on PostgreSQL, the compiled price/promotion/terms
books, the engines and msgspec):

* ``big``: 1,000 SKUs, 20 price lists in every step of the access sequence holding 20,000
  entries, and 50 promotions of every type, some in mutex groups;
* ``small``: the same, but a single base list holding 20 entries.

The measured basket has 1,000 lines over the 20 SKUs that both databases price (quantities
vary so that lines fall into different bands), and the same basket cut to 10 lines. Compiled
books are warm (the first quote after a change compiles them: ``compile_ms`` shows what that
costs). Progress goes to stderr. This is a benchmark, not a test: never run it from pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import log, machine_info
from api import Env, create_database, drop_database

OPERATOR_TOKEN = "oco_" + "0" * 32 + "_bench-operator-secret"
SKUS = 1000
PRICED_SKUS = 20
LIST_SPECS = (
    # (code, step, dimensions) — 20 lists: 5 customer, 5 level+region, 4 class+channel, 5 region, 1 base
    *((f"CUST-{i}", "customer", {"customer": i}) for i in range(5)),
    *((f"LVL-{i}", "level_region", {"level": "ABCDE"[i], "region": "east"}) for i in range(5)),
    *(
        (f"CC-{i}", "class_channel", {"customer_class": f"class-{i}", "channel": "modern_trade"})
        for i in range(4)
    ),
    *((f"REG-{i}", "region", {"region": str(i)}) for i in range(4)),
    ("REG-EAST", "region", {"region": "east"}),
    ("BASE", "base", {}),
)


class Seeder:
    """Builds one benchmark tenant through the API."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.c = client
        self.auth: dict[str, str] = {}
        self.ids: dict[str, str] = {}

    async def post(self, path: str, body: Any, **kw: Any) -> Any:
        r = await self.c.post(path, json=body, headers=self.auth, **kw)
        if r.status_code not in (200, 201):
            raise RuntimeError(f"{path} answered {r.status_code}: {r.text[:800]}")
        return r.json()

    async def tenant(self) -> None:
        r = await self.c.post(
            "/api/v1/operator/tenants",
            headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
            json={"slug": "bench-quote", "name": "Quote bench", "admin_email": "admin@bench.example"},
        )
        if r.status_code != 201:
            raise RuntimeError(f"tenant: {r.status_code} {r.text[:500]}")
        self.auth = {"Authorization": f"Bearer {r.json()['admin_api_key']}"}

    async def master_data(self) -> None:
        ids = self.ids
        await self.post("/api/v1/units", {"code": "pcs", "name": "Piece"})
        await self.post("/api/v1/brands", {"code": "BR", "name": "Brand"})
        ids["category_root"] = (await self.post("/api/v1/categories", {"code": "ROOT", "name": "All"}))["id"]
        for i in range(5):
            cat = await self.post(
                "/api/v1/categories",
                {"code": f"CAT{i}", "name": f"Category {i}", "parent_id": ids["category_root"]},
            )
            ids[f"category_{i}"] = cat["id"]
        ids["region_east"] = (await self.post("/api/v1/regions", {"code": "EAST", "name": "East China"}))[
            "id"
        ]
        ids["region_sh"] = (
            await self.post(
                "/api/v1/regions", {"code": "SH", "name": "Shanghai", "parent_id": ids["region_east"]}
            )
        )["id"]
        for i in range(4):
            ids[f"region_{i}"] = (
                await self.post("/api/v1/regions", {"code": f"R{i}", "name": f"Region {i}"})
            )["id"]
        for i in range(6):  # C5 has no customer list: its prices come from the later steps
            customer = await self.post(
                "/api/v1/customers",
                {
                    "code": f"C{i}",
                    "name": f"Customer {i}",
                    "kind": "dealer",
                    "level": "ABCDEA"[i],
                    "customer_class": f"class-{i % 4}",
                    "channel": "modern_trade",
                    "region_id": ids["region_sh"],
                },
            )
            ids[f"customer_{i}"] = customer["id"]
        rows = ["product_code,product_name,category_code,brand_code,unit_code,sku_code,sku_name,list_price"]
        rows += [
            f"P{n:04d},Product {n},CAT{n % 5},BR,pcs,S{n:04d},SKU {n},{100 + n % 50}" for n in range(SKUS)
        ]
        r = await self.c.post(
            "/api/v1/products/import",
            content="\n".join(rows) + "\n",
            headers={**self.auth, "Content-Type": "text/csv"},
        )
        if r.status_code != 200:
            raise RuntimeError(f"product import: {r.status_code} {r.text[:800]}")
        skus: dict[str, str] = {}
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 200}
            if cursor:
                params["cursor"] = cursor
            page = (await self.c.get("/api/v1/skus", params=params, headers=self.auth)).json()
            skus.update({s["code"]: s["id"] for s in page["items"]})
            cursor = page["next_cursor"]
            if not cursor:
                break
        self.sku_ids = [skus[f"S{n:04d}"] for n in range(SKUS)]

    def _dimensions(self, dims: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "customer" in dims:
            out["customer_id"] = self.ids[f"customer_{dims['customer']}"]
        if "level" in dims:
            out["level"] = dims["level"]
        if "region" in dims:
            out["region_id"] = self.ids[f"region_{dims['region']}"]
        for key in ("customer_class", "channel"):
            if key in dims:
                out[key] = dims[key]
        return out

    async def price_lists(self, *, big: bool) -> None:
        specs = LIST_SPECS if big else (LIST_SPECS[-1],)
        sku_count = SKUS if big else PRICED_SKUS
        for n_list, (code, step, dims) in enumerate(specs):
            price_list = await self.post(
                "/api/v1/price-lists", {"code": code, "name": code, "step": step, **self._dimensions(dims)}
            )
            rows = ["sku_code,unit_code,price,min_qty,max_qty,mode"]
            rows += [f"S{n:04d},pcs,{90 + (n + n_list) % 40}.00,0,,all_units" for n in range(sku_count)]
            r = await self.c.post(
                f"/api/v1/price-lists/{price_list['id']}/entries.csv",
                content="\n".join(rows) + "\n",
                headers={**self.auth, "Content-Type": "text/csv"},
            )
            if r.status_code != 200:
                raise RuntimeError(f"entries of {code}: {r.status_code} {r.text[:800]}")

    async def promotions(self) -> None:
        """50 promotions: item-level discounts, fixed prices and nth-item deals on single SKUs,
        bundles, and order-level reductions, discounts and gifts, partly in mutex groups."""
        sku = self.sku_ids
        bodies: list[dict[str, Any]] = []
        for i in range(15):
            bodies.append(
                {
                    "type": "straight_discount",
                    "rule": {"off_ratio": "0.05"},
                    "products": {"sku_ids": [sku[i]]},
                }
            )
        for i in range(5):
            bodies.append(
                {"type": "fixed_price", "rule": {"price": "80.00"}, "products": {"sku_ids": [sku[15 + i]]}}
            )
        for i in range(5):
            bodies.append(
                {
                    "type": "nth_item",
                    "rule": {"n": 2, "off_ratio": "0.5"},
                    "products": {"sku_ids": [sku[100 + i]]},
                }
            )
        for i in range(5):
            bodies.append(
                {
                    "type": "bundle",
                    "rule": {
                        "components": [
                            {"sku_id": sku[i], "quantity": 1},
                            {"sku_id": sku[i + 5], "quantity": 1},
                        ],
                        "set_price": "150.00",
                    },
                }
            )
        for i in range(10):
            bodies.append(
                {
                    "type": "full_reduction",
                    "rule": {"tiers": [{"threshold": f"{1000 * (i + 1)}", "amount": f"{50 * (i + 1)}"}]},
                    "products": {"category_ids": [self.ids[f"category_{i % 5}"]]},
                    "mutex_group": f"reduction-{i % 2}",
                    "mutex_strategy": "priority_first",
                    "priority": i,
                }
            )
        for i in range(5):
            bodies.append(
                {
                    "type": "full_discount",
                    "rule": {"tiers": [{"threshold": f"{5000 * (i + 1)}", "off_ratio": "0.02"}]},
                    "mutex_group": "discount",
                    "mutex_strategy": "best_for_customer",
                    "priority": i,
                }
            )
        for i in range(5):
            bodies.append(
                {
                    "type": "buy_x_get_y",
                    "rule": {"buy_quantity": 10, "get_quantity": 1, "gift_sku_id": sku[900 + i]},
                    "products": {"sku_ids": [sku[i]]},
                }
            )
        for n, body in enumerate(bodies):
            await self.post("/api/v1/promotions", {"code": f"PROMO{n:02d}", "name": f"Promotion {n}", **body})


def basket(lines: int, sku_ids: list[str], customer_id: str) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "lines": [
            {"line_id": f"L{i:04d}", "sku_id": sku_ids[i % PRICED_SKUS], "quantity": str(1 + (i * 7) % 150)}
            for i in range(lines)
        ],
    }


async def timed(
    client: httpx.AsyncClient, auth: dict[str, str], body: dict[str, Any], repeat: int
) -> list[float]:
    out: list[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        r = await client.post("/api/v1/quotes", json=body, headers=auth)
        out.append((time.perf_counter() - start) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"quote answered {r.status_code}: {r.text[:800]}")
    return out


async def count_statements(
    app: Any, client: httpx.AsyncClient, auth: dict[str, str], body: dict[str, Any]
) -> int:
    from sqlalchemy import event

    seen: list[str] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    engine = app.state.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        r = await client.post("/api/v1/quotes", json=body, headers=auth)
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    if r.status_code != 200:
        raise RuntimeError(f"quote answered {r.status_code}: {r.text[:800]}")
    return len(seen)


async def run_env(env: Env, *, big: bool, repeat: int) -> dict[str, Any]:
    from omnicloud.app import create_app
    from omnicloud.plugins import PluginManager
    from omnicloud.settings import Settings

    plugins = PluginManager()
    await create_database(env, plugins)
    base = env.settings(env.app_url)
    settings = Settings(
        **{**{f: getattr(base, f) for f in base.__struct_fields__}, "operator_token": OPERATOR_TOKEN}
    )
    app = create_app(settings, plugins=plugins)
    out: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=120
        ) as c:
            seeder = Seeder(c)
            started = time.perf_counter()
            await seeder.tenant()
            await seeder.master_data()
            await seeder.price_lists(big=big)
            await seeder.promotions()
            out["seed_seconds"] = round(time.perf_counter() - started, 1)
            customer = seeder.ids["customer_5"]
            body_1000 = basket(1000, seeder.sku_ids, customer)
            body_10 = basket(10, seeder.sku_ids, customer)
            out["compile_ms"] = round((await timed(c, seeder.auth, body_10, 1))[0], 1)
            await timed(c, seeder.auth, body_1000, 3)  # warm-up
            log(f"{env.backend}/{env.label}: timing 1,000-line quotes")
            out["ms_1000"] = statistics.median(await timed(c, seeder.auth, body_1000, repeat))
            out["ms_10"] = statistics.median(await timed(c, seeder.auth, body_10, repeat * 5))
            out["statements_1000"] = await count_statements(app, c, seeder.auth, body_1000)
            out["statements_10"] = await count_statements(app, c, seeder.auth, body_10)
            r = await c.post("/api/v1/quotes", json=body_1000, headers=seeder.auth)
            quote = r.json()
            out["sample"] = {
                "promotions_applied": len(quote["promotions"]),
                "gift_lines": len(quote["gift_lines"]),
                "after_promotions": quote["totals"]["after_promotions"],
                "steps": sorted({ln["price_source"]["step"] for ln in quote["lines"]}),
            }
    finally:
        await app.state.db.dispose()
        if app.state.redis is not None:
            await app.state.redis.aclose()
    return out


async def run_backend(backend: str, repeat: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="omnicloud-bench-quote-"))
    big, small = Env(backend, workdir, "quote_big"), Env(backend, workdir, "quote_small")
    try:
        log(f"{backend}: seeding and timing the big database")
        b = await run_env(big, big=True, repeat=repeat)
        log(f"{backend}: seeding and timing the small database")
        s = await run_env(small, big=False, repeat=repeat)
    finally:
        await drop_database(big)
        await drop_database(small)
    return {
        "lines": 1000,
        "price_entries": len(LIST_SPECS) * SKUS,
        "promotions": 50,
        "ms_p50": round(b["ms_1000"], 1),
        "ms_p50_10_lines": round(b["ms_10"], 2),
        "ms_p50_20_entries": round(s["ms_1000"], 1),
        "rules_ratio": round(b["ms_1000"] / s["ms_1000"], 3),
        "lines_ratio": round(b["ms_1000"] / b["ms_10"], 1),
        "statements_per_quote": {"lines_10": b["statements_10"], "lines_1000": b["statements_1000"]},
        "compile_ms_first_quote": {"entries_20000": b["compile_ms"], "entries_20": s["compile_ms"]},
        "seed_seconds": {"big": b["seed_seconds"], "small": s["seed_seconds"]},
        "sample": b["sample"],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="bench/quote.py")
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--repeat", type=int, default=15, help="timed 1,000-line quotes per database (default 15)")
    a = p.parse_args(argv)
    result: dict[str, Any] = {"machine": machine_info()}
    result["machine"]["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    for backend in ["sqlite", "postgres"] if a.backend == "both" else [a.backend]:
        result[backend] = asyncio.run(run_backend(backend, a.repeat))
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
