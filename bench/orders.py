"""Benchmark of order submits against PostgreSQL's own yardstick; prints one JSON object.

    ./dev bench orders [--orders N] [--concurrency C] [--dealers D] [--pgbench-seconds S]

On one fresh PostgreSQL database it builds a tenant through the public API: 100 SKUs priced by a
base list, a brand warehouse stocked with every SKU, and D dealers whose cash accounts hold
enough for every order. Then it submits 5-line orders with an Idempotency-Key over HTTP to the
real app in its own uvicorn process (credential middleware, rate limiter, the quote engine,
credit, fund holds, batched stock holds, the ledger, audit and outbox; RLS as the application
role), C at a time, from this process, so the client's work is not charged to the server. The
orders go round the dealers, as a brand's dealers order side by side (one dealer's own orders
queue on its cash account, which is what keeps its money right). In the same run it runs
pgbench's tpcb-like script on a second database of the same server, with the same number of
clients, so that ``ratio`` compares our order submit with PostgreSQL's standard small
transaction on the same machine at the same moment. It also counts the SQL statements of one
submit at 1, 10 and 100 lines. Progress goes to stderr. Never run it from pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import LOOPBACK, Server, free_port, log, machine_info, process_cpu_seconds
from api import PG_ADMIN, Env, create_database, drop_database

API_SCRIPT = Path(__file__).resolve().parent / "api.py"
OPERATOR_TOKEN = "oco_" + "0" * 32 + "_bench-operator-secret"
SKUS = 100


class Shop:
    def __init__(self, client: httpx.AsyncClient, dealers: int) -> None:
        self.c = client
        self.auth: dict[str, str] = {}
        self.dealer_count = dealers

    async def post(
        self, path: str, body: Any, *, keyed: bool = False, auth: dict[str, str] | None = None
    ) -> Any:
        headers = dict(auth or self.auth)
        if keyed:
            headers["Idempotency-Key"] = secrets.token_hex(12)
        r = await self.c.post(path, json=body, headers=headers)
        if r.status_code not in (200, 201):
            raise RuntimeError(f"{path} answered {r.status_code}: {r.text[:800]}")
        return r.json()

    async def build(self, orders: int) -> None:
        r = await self.c.post(
            "/api/v1/operator/tenants",
            headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
            json={"slug": "bench-orders", "name": "Order bench", "admin_email": "admin@bench.example"},
        )
        if r.status_code != 201:
            raise RuntimeError(f"tenant: {r.status_code} {r.text[:500]}")
        self.auth = {"Authorization": f"Bearer {r.json()['admin_api_key']}"}
        await self.post("/api/v1/units", {"code": "pcs", "name": "Piece"})
        rows = ["product_code,product_name,unit_code,sku_code,sku_name"]
        rows += [f"P{n:03d},Product {n},pcs,S{n:03d},SKU {n}" for n in range(SKUS)]
        await self._csv("/api/v1/products/import", rows)
        skus: dict[str, str] = {}
        page = (await self.c.get("/api/v1/skus", params={"limit": 200}, headers=self.auth)).json()
        skus.update({s["code"]: s["id"] for s in page["items"]})
        self.sku_ids = [skus[f"S{n:03d}"] for n in range(SKUS)]
        price_list = await self.post("/api/v1/price-lists", {"code": "BASE", "name": "Base", "step": "base"})
        rows = ["sku_code,unit_code,price"] + [f"S{n:03d},pcs,{10 + n % 20}.00" for n in range(SKUS)]
        await self._csv(f"/api/v1/price-lists/{price_list['id']}/entries.csv", rows)
        self.warehouse_id = (await self.post("/api/v1/warehouses", {"code": "W1", "name": "Brand DC"}))["id"]
        for sku in self.sku_ids:
            await self.post(
                "/api/v1/stock/receipts",
                {"warehouse_id": self.warehouse_id, "sku_id": sku, "quantity": str(orders * 100)},
                keyed=True,
            )
        self.dealers: list[dict[str, str]] = []
        for d in range(self.dealer_count):
            dealer = await self.post(
                "/api/v1/customers", {"code": f"D{d}", "name": f"Dealer {d}", "kind": "dealer"}
            )
            user = await self.post(
                "/api/v1/users",
                {
                    "email": f"d{d}@bench.example",
                    "name": f"D{d}",
                    "role": "dealer",
                    "customer_id": dealer["id"],
                },
            )
            key = await self.post("/api/v1/api-keys", {"name": f"d{d}", "user_id": user["id"]})
            auth = {"Authorization": f"Bearer {key['secret']}"}
            remittance = await self.post(
                "/api/v1/remittances",
                {
                    "amount": "900000000.00",
                    "bank_reference": f"BENCH-{d}",
                    "remitted_on": date.today().isoformat(),
                },
                keyed=True,
                auth=auth,
            )
            await self.post(f"/api/v1/remittances/{remittance['id']}/confirm", {}, keyed=True)
            self.dealers.append(auth)

    async def _csv(self, path: str, rows: list[str]) -> None:
        r = await self.c.post(
            path, content="\n".join(rows) + "\n", headers={**self.auth, "Content-Type": "text/csv"}
        )
        if r.status_code != 200:
            raise RuntimeError(f"{path}: {r.status_code} {r.text[:800]}")

    def order(self, lines: int, n: int) -> dict[str, Any]:
        return {
            "warehouse_id": self.warehouse_id,
            "lines": [
                {"sku_id": self.sku_ids[(n * 7 + i) % SKUS], "quantity": str(1 + (n + i) % 5)}
                for i in range(lines)
            ],
        }

    async def submit(self, lines: int, n: int) -> None:
        auth = self.dealers[n % len(self.dealers)]
        await self.post("/api/v1/orders", self.order(lines, n), keyed=True, auth=auth)


async def statements(app: Any, shop: Shop, lines: int) -> int:
    from sqlalchemy import event

    seen: list[str] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    engine = app.state.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        await shop.submit(lines, 10_000 + lines)
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    return len(seen)


async def prepare(env: Env, orders: int, dealers: int) -> tuple[Shop, dict[str, Any]]:
    """Seed the tenant and count a submit's statements, in process (the event listener needs the
    engine); returns the shop (ids and the dealer's key) for the measured run."""
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
            shop = Shop(c, dealers)
            log("postgres: seeding the order tenant")
            await shop.build(orders + 200)
            for n in range(5):  # the first submits compile the books
                await shop.submit(5, n)
            for lines in (1, 10, 100):
                out[f"statements_per_order_{lines}"] = await statements(app, shop, lines)
    finally:
        await app.state.db.dispose()
        if app.state.redis is not None:
            await app.state.redis.aclose()
    return shop, out


async def load(shop: Shop, port: int, orders: int, concurrency: int) -> float:
    """Submit ``orders`` five-line orders over HTTP, ``concurrency`` at a time; orders per second."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{port}", timeout=120, limits=limits) as c:
        shop.c = c
        for n in range(20, 60):  # warm-up: compiled books, pools, caches of the server process
            await shop.submit(5, n)
        queue = iter(range(1_000, 1_000 + orders))

        async def worker() -> None:
            for n in queue:
                await shop.submit(5, n)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return orders / (time.perf_counter() - started)


def measure_orders(env: Env, orders: int, concurrency: int, dealers: int) -> dict[str, Any]:
    """Seed in process, then measure against the app in its own uvicorn process (one worker, as
    bench/api.py runs it), so the client's work stays out of the server's process."""
    shop, out = asyncio.run(prepare(env, orders, dealers))
    port = free_port()
    server_env = {**env.server_env(env.app_url), "OMNICLOUD_DB_POOL_SIZE": str(concurrency + 2)}
    server = Server(
        "orders", [sys.executable, str(API_SCRIPT), "_serve", "ours", "--port", str(port)], server_env, port
    )
    try:
        server.wait_ready()
        log(f"postgres: {orders} five-line submits over HTTP, {concurrency} at a time")
        cpu_before = process_cpu_seconds(server.proc.pid)
        rate = asyncio.run(load(shop, port, orders, concurrency))
        cpu = process_cpu_seconds(server.proc.pid) - cpu_before
    finally:
        server.stop()
    out["orders_per_s"] = round(rate, 1)
    out["server_cpu_ms_per_order"] = round(cpu * 1000 / (orders + 40), 2)
    return out


def pgbench(clients: int, seconds: int) -> float:
    """tpcb-like transactions per second on a scratch database of the same server."""
    name = f"omnicloud_bench_pgbench_{secrets.token_hex(3)}"
    url = PG_ADMIN.replace("postgresql+asyncpg://", "postgresql://")
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    subprocess.run(["psql", f"{url}/postgres", "-qc", f'CREATE DATABASE "{name}"'], check=True, env=env)
    try:
        subprocess.run(
            ["pgbench", "-i", "-q", "-s", "10", f"{url}/{name}"], check=True, env=env, capture_output=True
        )
        log(f"pgbench: tpcb-like, {clients} clients, {seconds} s")
        run = subprocess.run(
            [
                "pgbench",
                "-c",
                str(clients),
                "-j",
                "2",
                "-T",
                str(seconds),
                "-b",
                "tpcb-like",
                f"{url}/{name}",
            ],
            check=True,
            env=env,
            capture_output=True,
            text=True,
        )
        found = re.search(r"tps = ([0-9.]+)", run.stdout)
        if found is None:
            raise RuntimeError(f"pgbench printed no tps: {run.stdout[-500:]}")
        return float(found.group(1))
    finally:
        subprocess.run(
            ["psql", f"{url}/postgres", "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], env=env
        )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="bench/orders.py")
    p.add_argument("--orders", type=int, default=400, help="measured submits (default 400)")
    p.add_argument("--concurrency", type=int, default=8, help="submits in flight (default 8)")
    p.add_argument("--dealers", type=int, default=32, help="dealers placing the orders (default 32)")
    p.add_argument("--pgbench-seconds", type=int, default=20, help="pgbench duration (default 20)")
    a = p.parse_args(argv)
    result: dict[str, Any] = {"machine": machine_info()}
    result["machine"]["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    env = Env("postgres", Path(tempfile.mkdtemp(prefix="omnicloud-bench-orders-")), "orders")
    try:
        measured = measure_orders(env, a.orders, a.concurrency, a.dealers)
    finally:
        asyncio.run(drop_database(env))
    tps = pgbench(a.concurrency, a.pgbench_seconds)
    result["postgres"] = {
        "orders": a.orders,
        "concurrency": a.concurrency,
        "lines_per_order": 5,
        "dealers": a.dealers,
        "orders_per_s": measured["orders_per_s"],
        "server_cpu_ms_per_order": measured["server_cpu_ms_per_order"],
        "pgbench_tps": round(tps, 1),
        "ratio": round(measured["orders_per_s"] / tps, 3),
        **{k: v for k, v in measured.items() if k.startswith("statements_per_order_")},
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
