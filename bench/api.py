"""Benchmark of Omnicloud's hot read path against its limits; prints one JSON object.

    ./dev bench api [--backend sqlite|postgres|both] [--requests N] [--concurrency C] ...

For each backend it measures, over real HTTP on 127.0.0.1 (uvicorn, one worker each):

* ``ours``: ``GET /api/v1/products?limit=50`` with a tenant API key through the real app
  (credential middleware, rate limiter, permission guard, the tenant guard of a checked Core
  select read outside a transaction, RLS on PostgreSQL, msgspec);
* ``limit``: a minimal litestar endpoint that sends the same SQL through the raw driver
  (aiosqlite or asyncpg) and encodes the same 50 items with msgspec: no auth, no tenancy, no ORM;
* ``bare``: a litestar endpoint that returns ours' response bytes from memory;
* ``ours_1000``: the same request on a second database that also holds 999 more tenants (each
  with its roles, admin user, API key and a few products), and on PostgreSQL ``ours_owner``:
  that one connected as the table owner (which bypasses row-level security).

All servers run at once and are measured in interleaved rounds; each variant keeps its best.

Progress goes to stderr. See bench/README.md for what each figure means and the targets.
This is a benchmark, not a test: never run it from pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
from litestar import Litestar, Response, get

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    Server,
    asgi_get,
    cpu_per_call,
    free_port,
    http_get,
    load_in_subprocess,
    log,
    machine_info,
    postgres_cpu,
    postgres_cpu_delta,
    process_cpu_seconds,
    run_load,
)

SCRIPT = str(Path(__file__).resolve())
PG_ADMIN = os.environ.get("OMNICLOUD_BENCH_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("OMNICLOUD_BENCH_REDIS", "redis://127.0.0.1:6379/14")
APP_ROLE = "omnicloud_app"
PAGE = 50
PATH = f"/api/v1/products?limit={PAGE}"
TARGETS = {"ratio_vs_raw": 0.5, "ratio_1000_tenants": 0.9, "rls_ratio": 0.9}

# The SQL of the page, as the catalog service sends it: the page of products (one more row
# than asked, to know whether there is a next page), then the unit conversions of those
# products. The limit sends the same statements through the raw driver.
PRODUCT_COLUMNS = (
    "id, code, name, base_unit_id, brand_id, category_id, description, attributes, status, "
    "version, created_at"
)
LIMIT_SQL = {
    "postgresql": (
        f"SELECT {PRODUCT_COLUMNS} FROM products WHERE tenant_id = $1 ORDER BY id LIMIT $2",
        "SELECT product_id, unit_id, factor FROM unit_conversions "
        "WHERE tenant_id = $1 AND product_id = ANY($2::uuid[]) ORDER BY id",
    ),
    "sqlite": (
        f"SELECT {PRODUCT_COLUMNS} FROM products WHERE tenant_id = ? ORDER BY id LIMIT ?",
        "SELECT product_id, unit_id, factor FROM unit_conversions "
        "WHERE tenant_id = ? AND product_id IN ({marks}) ORDER BY id",
    ),
}


# =============================================================================================
# The limit and bare apps (run in their own uvicorn subprocesses)
# =============================================================================================


class Conversion(msgspec.Struct):
    unit_id: UUID
    factor: Any  # Decimal (asyncpg) or its 4-place string (SQLite): both encode as "12.0000"


class Item(msgspec.Struct):
    """The same fields as ``ProductOut``; ``attributes`` is the stored JSON passed through."""

    id: UUID
    code: str
    name: str
    base_unit_id: UUID
    brand_id: UUID | None
    category_id: UUID | None
    description: str | None
    attributes: msgspec.Raw
    status: str
    conversions: list[Conversion]
    version: int
    created_at: datetime


class Page(msgspec.Struct):
    items: list[Item]
    next_cursor: str | None


class RawProducts:
    """The limit's handler body: the page's SQL through the raw driver, encoded with msgspec.

    Connections open on first use (4 on SQLite, an asyncpg pool of up to 10 on PostgreSQL,
    connected as the table owner: the limit has no tenancy and no row-level security).
    """

    def __init__(self, backend: str, dsn: str, tenant_id: UUID) -> None:
        self.backend = backend
        self.dsn = dsn
        self.tenant_id = tenant_id
        self.encoder = msgspec.json.Encoder()
        self.products_sql, self.conversions_sql = LIMIT_SQL[
            "postgresql" if backend == "postgres" else "sqlite"
        ]
        self.pool: Any = None
        self.conns: asyncio.Queue[Any] | None = None
        self.opened: list[Any] = []
        self.opening = asyncio.Lock()

    async def _open(self) -> None:
        async with self.opening:  # the first requests arrive together: open once
            if self.backend == "postgres" and self.pool is None:
                import asyncpg

                self.pool = await asyncpg.create_pool(self.dsn, min_size=4, max_size=10)
            elif self.backend != "postgres" and self.conns is None:
                import aiosqlite

                conns: asyncio.Queue[Any] = asyncio.Queue()
                for _ in range(4):
                    c = await aiosqlite.connect(self.dsn)
                    self.opened.append(c)
                    conns.put_nowait(c)
                self.conns = conns

    def _encode(self, items: list[Item], more: bool) -> bytes:
        nxt = base64.urlsafe_b64encode(items[-1].id.bytes).rstrip(b"=").decode() if more and items else None
        return self.encoder.encode(Page(items, nxt))

    async def page(self) -> bytes:
        return await (self._pg_page() if self.backend == "postgres" else self._sqlite_page())

    async def _pg_page(self) -> bytes:
        if self.pool is None:
            await self._open()
        tid = self.tenant_id
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(self.products_sql, tid, PAGE + 1)
            more = len(rows) > PAGE
            rows = rows[:PAGE]
            convs = await conn.fetch(self.conversions_sql, tid, [r[0] for r in rows])
        by_product: dict[UUID, list[Conversion]] = {}
        for pid, uid, factor in convs:
            by_product.setdefault(pid, []).append(Conversion(uid, factor))
        items = [
            Item(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                msgspec.Raw(r[7].encode()),
                r[8],
                by_product.get(r[0], []),
                r[9],
                r[10],
            )
            for r in rows
        ]
        return self._encode(items, more)

    async def _sqlite_page(self) -> bytes:
        if self.conns is None:
            await self._open()
        assert self.conns is not None
        tid = self.tenant_id.hex
        conn = await self.conns.get()
        try:
            rows = await conn.execute_fetchall(self.products_sql, (tid, PAGE + 1))
            more = len(rows) > PAGE
            rows = rows[:PAGE]
            ids = [r[0] for r in rows]
            sql = self.conversions_sql.format(marks=",".join("?" * len(ids)))
            convs = await conn.execute_fetchall(sql, (tid, *ids))
        finally:
            self.conns.put_nowait(conn)
        # SQLite stores UUIDs as 32 hex digits and timestamps as naive UTC text.
        by_product: dict[str, list[Conversion]] = {}
        for pid, uid, factor in convs:
            by_product.setdefault(pid, []).append(Conversion(UUID(hex=uid), f"{factor:.4f}"))
        items = [
            Item(
                UUID(hex=r[0]),
                r[1],
                r[2],
                UUID(hex=r[3]),
                _uuid(r[4]),
                _uuid(r[5]),
                r[6],
                msgspec.Raw(r[7].encode()),
                r[8],
                by_product.get(r[0], []),
                r[9],
                datetime.fromisoformat(r[10]).replace(tzinfo=UTC),
            )
            for r in rows
        ]
        return self._encode(items, more)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        for c in self.opened:
            await c.close()


def _uuid(value: str | None) -> UUID | None:
    return UUID(hex=value) if value else None


def raw_app(raw: RawProducts) -> Litestar:
    """The limit: a minimal litestar endpoint around :class:`RawProducts`."""

    @get(PATH.split("?")[0])
    async def products() -> Response[bytes]:
        return Response(await raw.page(), media_type="application/json")

    return Litestar([products], on_shutdown=[raw.close], openapi_config=None, logging_config=None)


def bare_app(body: bytes) -> Litestar:
    """A bare litestar endpoint returning ours' response bytes from memory."""

    @get(PATH.split("?")[0])
    async def products() -> Response[bytes]:
        return Response(body, media_type="application/json")

    return Litestar([products], openapi_config=None, logging_config=None)


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    if args.kind == "ours":
        from omnicloud.app import create_app

        app = create_app()
    elif args.kind == "limit":
        app = raw_app(RawProducts(args.backend, args.dsn, UUID(args.tenant_id)))
    else:
        app = bare_app(Path(args.body_file).read_bytes())
    # One worker, no access log (for every variant alike), loopback only.
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, lifespan="on")


# =============================================================================================
# Databases and provisioning (in the orchestrator)
# =============================================================================================


class Env:
    """One backend's database, the measured tenant and its credential."""

    def __init__(self, backend: str, workdir: Path, label: str = "bench") -> None:
        self.backend = backend
        self.workdir = workdir
        self.label = label
        self.db_name = ""
        if backend == "sqlite":
            path = workdir / f"{label}.db"
            self.owner_url = self.app_url = f"sqlite+aiosqlite:///{path}"
            self.raw_dsn = str(path)
            self.redis_url: str | None = None
        else:
            self.db_name = f"omnicloud_bench_{secrets.token_hex(4)}_{label}"
            self.owner_url = f"{PG_ADMIN}/{self.db_name}"
            self.app_url = f"{PG_ADMIN.replace('postgres@', APP_ROLE + '@')}/{self.db_name}"
            self.raw_dsn = self.owner_url.replace("postgresql+asyncpg://", "postgresql://")
            self.redis_url = REDIS_URL
        self.tenant_id: UUID | None = None
        self.api_key = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def server_env(self, database_url: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICLOUD_")}
        env["OMNICLOUD_DATABASE_URL"] = database_url
        env["OMNICLOUD_MIGRATION_DATABASE_URL"] = self.owner_url
        # The limiter runs on every request (that is part of what we measure) but must not trip.
        env["OMNICLOUD_RATE_LIMIT_PER_KEY"] = "1000000000"
        env["OMNICLOUD_RATE_LIMIT_PER_TENANT"] = "1000000000"
        if self.redis_url:
            env["OMNICLOUD_REDIS_URL"] = self.redis_url
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def settings(self, database_url: str) -> Any:
        from omnicloud.settings import Settings

        return Settings(
            database_url=database_url,
            migration_database_url=self.owner_url,
            redis_url=self.redis_url,
            rate_limit_per_key=1_000_000_000,
            rate_limit_per_tenant=1_000_000_000,
        )


async def create_database(env: Env, plugins: Any) -> None:
    from sqlalchemy import text

    from omnicloud import migrations
    from omnicloud.core.db import Database, app_role_sql

    if env.backend == "postgres":
        admin = Database(f"{PG_ADMIN}/postgres", pool_size=1)
        async with admin.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'CREATE DATABASE "{env.db_name}"'))
        await admin.dispose()
        import redis.asyncio as aioredis

        r = aioredis.from_url(REDIS_URL)
        await r.flushdb()
        await r.aclose()
    owner = Database(env.owner_url, pool_size=2)
    await migrations.upgrade(owner.engine, plugins)
    if env.backend == "postgres":
        async with owner.engine.begin() as conn:
            for stmt in app_role_sql(APP_ROLE):
                await conn.execute(text(stmt))
    await owner.dispose()


async def drop_database(env: Env) -> None:
    if env.backend != "postgres":
        return
    from sqlalchemy import text

    from omnicloud.core.db import Database

    admin = Database(f"{PG_ADMIN}/postgres", pool_size=1)
    async with admin.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{env.db_name}" WITH (FORCE)'))
    await admin.dispose()
    import redis.asyncio as aioredis

    r = aioredis.from_url(REDIS_URL)
    await r.flushdb()
    await r.aclose()


def _products(index: int, count: int, unit_ids: tuple[UUID, UUID]) -> list[Any]:
    """``count`` products, each with one unit conversion (a case of 12 pieces)."""
    from omnicloud.catalog.models import Product, UnitConversion
    from omnicloud.core.ids import new_id

    rows: list[Any] = []
    for n in range(count):
        pid = new_id()
        rows.append(
            Product(
                id=pid,
                code=f"P{index:04d}-{n:03d}",
                name=f"Product {n} of tenant {index}",
                base_unit_id=unit_ids[0],
                description="A product created by the API benchmark, with a short description.",
                attributes={"color": "red", "size": "M", "shelf_life_days": 365},
            )
        )
        rows.append(UnitConversion(product_id=pid, unit_id=unit_ids[1], factor=12))
    return rows


async def provision(env: Env, plugins: Any, first: int, count: int, products_each: int) -> list[Any]:
    """Create ``count`` tenants through the operator service, in batches of one transaction each."""
    from omnicloud.catalog.models import Unit
    from omnicloud.core.db import Database
    from omnicloud.core.ids import new_id
    from omnicloud.core.tenancy import operator_scope
    from omnicloud.operator import service as operator
    from omnicloud.operator.schemas import TenantIn

    db = Database(env.owner_url, pool_size=2)
    created: list[Any] = []
    batch = 50
    try:
        with operator_scope():
            for start in range(first, first + count, batch):
                async with db.transaction() as session:
                    for i in range(start, min(start + batch, first + count)):
                        slug = f"bench-{i:04d}"
                        data = TenantIn(
                            slug=slug, name=f"Bench tenant {i}", admin_email=f"admin@{slug}.example"
                        )
                        result = await operator.create_tenant(session, data, plugins)
                        async with operator.within_tenant(session, result.tenant.id):
                            pcs, case = new_id(), new_id()
                            session.add_all(
                                [
                                    Unit(id=pcs, code="pcs", name="Piece"),
                                    Unit(id=case, code="case", name="Case"),
                                ]
                            )
                            await session.flush()
                            session.add_all(_products(i, products_each, (pcs, case)))
                        created.append(result)
        if env.backend == "postgres":
            from sqlalchemy import text

            async with db.engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("ANALYZE"))
    finally:
        await db.dispose()
    return created


async def capture_ours(env: Env, database_url: str, plugins: Any) -> dict[str, Any]:
    """One in-process request through the real app, recording the SQL it sends."""
    import httpx
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from omnicloud.app import create_app

    app = create_app(env.settings(database_url), plugins=plugins)
    statements: list[str] = []

    def on_execute(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        statements.append(" ".join(statement.split()))

    db = app.state.db
    engines = [db.engine.sync_engine]
    if isinstance(db.reader.engine, Engine):  # SQLite reads through an engine of their own
        engines.append(db.reader.engine)
    headers = {"Authorization": f"Bearer {env.api_key}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as c:
        first = await c.get(PATH, headers=headers)  # fills the credential cache
        for engine in engines:
            event.listen(engine, "before_cursor_execute", on_execute)
        r = await c.get(PATH, headers=headers)
        for engine in engines:
            event.remove(engine, "before_cursor_execute", on_execute)
    await app.state.db.dispose()
    if app.state.redis is not None:
        await app.state.redis.aclose()
    if first.status_code != 200 or r.status_code != 200:
        raise RuntimeError(f"ours answered {r.status_code}: {r.text[:500]}")
    return {"statements": statements, "body": r.content}


# =============================================================================================
# The run
# =============================================================================================


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.servers: list[Server] = []
        self.db_of: dict[str, str] = {}  # server name -> its PostgreSQL database

    def start(self, name: str, argv: list[str], environ: dict[str, str], env: Env) -> Server:
        port = free_port()
        server = Server(name, [*argv, "--port", str(port)], environ, port)
        self.servers.append(server)
        self.db_of[name] = env.db_name
        server.wait_ready()
        return server

    def stop_all(self) -> None:
        for s in self.servers:
            s.stop()
        self.servers.clear()

    def load(self, server: Server, headers: dict[str, str]) -> dict[str, Any]:
        a = self.args
        db_name = self.db_of.get(server.name, "")
        cpu0 = process_cpu_seconds(server.proc.pid)
        db0 = postgres_cpu(db_name) if db_name else {}
        result = load_in_subprocess(
            SCRIPT,
            server.port,
            PATH,
            headers,
            requests=a.requests,
            warmup=a.warmup,
            concurrency=a.concurrency,
            time_limit=a.time_limit,
        )
        # CPU per request, warm-up included (it is the same request): the server process, and
        # on PostgreSQL the backends serving this run's database.
        sent = a.requests + a.warmup
        result["server_cpu_ms"] = round((process_cpu_seconds(server.proc.pid) - cpu0) / sent * 1000, 3)
        if db_name:
            result["db_cpu_ms"] = round(postgres_cpu_delta(db0, db_name) / sent * 1000, 3)
        log(
            f"  {server.name:<14} {result['rps']:8.1f} req/s  p50 {result['p50_ms']:6.2f} ms  "
            f"p99 {result['p99_ms']:6.2f} ms  server CPU {result['server_cpu_ms']:.2f} ms/req"
            + (f"  db CPU {result['db_cpu_ms']:.2f} ms/req" if db_name else "")
            + f"  errors {result['errors']}"
        )
        if result["errors"]:
            raise RuntimeError(f"{server.name}: {result['errors']} failed requests: {result['statuses']}")
        return result

    def rounds(self, variants: list[tuple[str, Server, dict[str, str]]]) -> dict[str, dict[str, Any]]:
        """Interleave the variants round by round; keep each variant's best round."""
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in variants}
        for r in range(self.args.rounds):
            log(f" round {r + 1}/{self.args.rounds}")
            for name, server, headers in variants:
                runs[name].append(self.load(server, headers))
        best: dict[str, dict[str, Any]] = {}
        for name, results in runs.items():
            top = max(results, key=lambda x: x["rps"])
            best[name] = {**top, "rounds_rps": [x["rps"] for x in results]}
        return best

    def run_backend(self, backend: str) -> dict[str, Any]:
        """Two databases side by side: one holding only the measured tenant, one holding it and
        999 more. Their servers run together and are measured in the same interleaved rounds,
        so that drift of a busy machine does not land in ``ratio_1000_tenants``."""
        from omnicloud.plugins import PluginManager

        plugins = PluginManager.discover()
        out: dict[str, Any] = {}
        with tempfile.TemporaryDirectory(prefix="omnicloud-bench-") as tmp:
            one = Env(backend, Path(tmp), "one")
            many = Env(backend, Path(tmp), "many")
            out["redis"] = one.redis_url
            out["database"] = (
                "sqlite (files, WAL)"
                if backend == "sqlite"
                else f"postgresql ({one.db_name}, {many.db_name})"
            )
            created: list[Env] = []
            try:
                for env in (one, many):
                    log(f"{backend}: creating and migrating {env.label}")
                    created.append(env)
                    asyncio.run(create_database(env, plugins))
                out.update(self._measure(one, many, plugins))
            finally:
                self.stop_all()
                for env in created:
                    asyncio.run(drop_database(env))
        return out

    def _measure(self, one: Env, many: Env, plugins: Any) -> dict[str, Any]:
        a = self.args
        out: dict[str, Any] = {}
        t0 = time.perf_counter()
        backend = one.backend
        for env in (one, many):
            (tenant,) = asyncio.run(provision(env, plugins, 0, 1, a.products))
            env.tenant_id = tenant.tenant.id
            env.api_key = tenant.admin_api_key
        log(f"{backend}: measured tenant with {a.products} products in both databases")
        log(f"{backend}: provisioning {a.tenants - 1} more tenants with {a.products_other} products each")
        t1 = time.perf_counter()
        asyncio.run(provision(many, plugins, 1, a.tenants - 1, a.products_other))
        out["provision_seconds"] = round(time.perf_counter() - t1, 1)

        captured = asyncio.run(capture_ours(one, one.app_url, plugins))
        out["ours_sql"] = captured["statements"]
        out["limit_sql"] = list(LIMIT_SQL["postgresql" if backend == "postgres" else "sqlite"])
        body_file = one.workdir / "ours.json"
        body_file.write_bytes(captured["body"])
        ours_page = json.loads(captured["body"])
        out["items"] = len(ours_page["items"])

        py = [sys.executable, SCRIPT, "_serve"]
        raw = [*py, "limit", "--backend", backend, "--dsn", one.raw_dsn, "--tenant-id", str(one.tenant_id)]
        limit = self.start("limit", raw, one.server_env(one.app_url), one)
        ours = self.start("ours", [*py, "ours"], one.server_env(one.app_url), one)
        bare = self.start(
            "bare", [*py, "bare", "--body-file", str(body_file)], one.server_env(one.app_url), one
        )
        ours_many = self.start("ours_1000", [*py, "ours"], many.server_env(many.app_url), many)
        variants = [
            ("limit", limit, {}),
            ("ours", ours, one.auth),
            ("bare", bare, {}),
            ("ours_1000", ours_many, many.auth),
        ]
        if backend == "postgres":
            owner = self.start("ours_owner", [*py, "ours"], many.server_env(many.owner_url), many)
            variants.append(("ours_owner", owner, many.auth))

        status, limit_body = http_get(limit.port, PATH)
        if status != 200:
            raise RuntimeError(f"limit answered {status}: {limit_body[:300]!r}")
        out["limit_matches_ours"] = json.loads(limit_body) == ours_page
        if not out["limit_matches_ours"]:
            log("WARNING: the limit's page differs from ours")
        for name, server, headers in variants[1:]:
            if name == "bare":
                continue
            status, served = http_get(server.port, PATH, headers)
            if status != 200 or len(json.loads(served)["items"]) != PAGE:
                raise RuntimeError(f"{name} answered {status}: {served[:300]!r}")

        log(f"{backend}: " + ", ".join(v[0] for v in variants))
        best = self.rounds(variants)
        out.update(
            {
                "limit_rps": best["limit"]["rps"],
                "ours_rps": best["ours"]["rps"],
                "bare_rps": best["bare"]["rps"],
                "ratio_vs_raw": round(best["ours"]["rps"] / best["limit"]["rps"], 3),
                "ratio_vs_bare": round(best["ours"]["rps"] / best["bare"]["rps"], 3),
                "ours_1000_tenants_rps": best["ours_1000"]["rps"],
                "ratio_1000_tenants": round(best["ours_1000"]["rps"] / best["ours"]["rps"], 3),
            }
        )
        for name in ("limit", "ours", "bare", "ours_1000", "ours_owner"):
            if name not in best:
                continue
            prefix = name.replace("ours_1000", "ours_1000_tenants")
            out[f"{prefix}_p50_ms"] = best[name]["p50_ms"]
            out[f"{prefix}_p99_ms"] = best[name]["p99_ms"]
            out[f"{prefix}_server_cpu_ms"] = best[name]["server_cpu_ms"]
            if "db_cpu_ms" in best[name]:
                out[f"{prefix}_db_cpu_ms"] = best[name]["db_cpu_ms"]
        out["server_cpu_ratio_vs_raw"] = round(
            best["limit"]["server_cpu_ms"] / max(best["ours"]["server_cpu_ms"], 1e-9), 3
        )
        if "ours_owner" in best:
            out["ours_owner_rps"] = best["ours_owner"]["rps"]
            out["rls_ratio"] = round(best["ours_1000"]["rps"] / best["ours_owner"]["rps"], 3)
        out["response_bytes"] = best["ours"]["bytes_per_response"]
        out["targets"] = {k: v for k, v in TARGETS.items() if k in out}
        out["meets_targets"] = {k: out[k] >= v for k, v in out["targets"].items()}
        out["runs"] = best
        out["seconds"] = round(time.perf_counter() - t0, 1)
        return out


# =============================================================================================
# Profiling the ours path in-process
# =============================================================================================


def profile(args: argparse.Namespace) -> None:
    """Where ours spends its time, in-process (no HTTP server): a CPU breakdown and cProfile.

    Prints one JSON object (the breakdown and the top functions) on stdout and the full
    cProfile listings on stderr.
    """
    from omnicloud.plugins import PluginManager

    plugins = PluginManager.discover()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    report: dict[str, Any] = {"machine": machine_info(), "requests": args.profile_requests}
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix="omnicloud-bench-") as tmp:
            env = Env(backend, Path(tmp))
            log(f"{backend}: creating and migrating the database")
            asyncio.run(create_database(env, plugins))
            try:
                (tenant,) = asyncio.run(provision(env, plugins, 0, 1, args.products))
                env.tenant_id = tenant.tenant.id
                env.api_key = tenant.admin_api_key
                report[backend] = asyncio.run(_profile_backend(env, plugins, args.profile_requests))
            finally:
                asyncio.run(drop_database(env))
    print(json.dumps(report, indent=2))


async def _profile_backend(env: Env, plugins: Any, n: int) -> dict[str, Any]:
    import cProfile
    import io
    import pstats

    from omnicloud.app import create_app
    from omnicloud.core.tenancy import tenant_scope

    assert env.tenant_id is not None
    tid = env.tenant_id
    app = create_app(env.settings(env.app_url), plugins=plugins)
    state = app.state
    auth = {"Authorization": f"Bearer {env.api_key}"}
    raw = RawProducts(env.backend, env.raw_dsn, tid)
    limit = raw_app(raw)
    ours_body = (await asgi_get(app, PATH, auth))[1]
    bare = bare_app(ours_body)
    principal = None

    async def ok(target: Any, path: str, headers: dict[str, str] | None = None) -> None:
        status, body = await asgi_get(target, path, headers)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}: {body[:300]!r}")

    async def limiter() -> None:
        from omnicloud.core.http import authenticate_raw

        nonlocal principal
        if principal is None:
            principal = await authenticate_raw(state, env.api_key, PATH)
        await state.limiter.check(principal)

    async def transaction() -> None:
        with tenant_scope(tid):
            async with state.db.sessions() as session, session.begin():
                await session.connection()

    async def service_page() -> None:
        from omnicloud.catalog import service as catalog

        with tenant_scope(tid):
            await catalog.list_products(state.db.reader, None, PAGE)

    log(f"{env.backend}: CPU per call, in-process (best of 5 batches of {n // 5})")
    parts = {
        "ours_request": lambda: ok(app, PATH, auth),
        "limit_request": lambda: ok(limit, PATH),
        "bare_request": lambda: ok(bare, PATH),
        "ours_healthz_no_auth": lambda: ok(app, "/healthz"),
        "ours_me_auth_and_rate_limit_no_db": lambda: ok(app, "/api/v1/me", auth),
        "rate_limiter_check": limiter,
        "transaction_begin_set_tenant_commit": transaction,
        "ours_catalog_service_only": service_page,
        "limit_handler_body_only": raw.page,
    }
    cpu_us: dict[str, float] = {}
    for name, fn in parts.items():
        cpu_us[name] = await cpu_per_call(fn, n)
        log(f"  {name:<40} {cpu_us[name]:9.1f} us CPU")

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        await ok(app, PATH, auth)
    prof.disable()
    await raw.close()
    await state.db.dispose()
    if state.redis is not None:
        await state.redis.aclose()

    text = io.StringIO()
    stats = pstats.Stats(prof, stream=text)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats("omnicloud", 30)
    print(f"== {env.backend}: cProfile of {n} in-process requests ==", file=sys.stderr)
    print(text.getvalue(), file=sys.stderr)
    top = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:20]  # type: ignore[attr-defined]
    return {
        "redis": env.redis_url,
        "cpu_us_per_call": cpu_us,
        "in_process_cpu_ratio_vs_raw": round(cpu_us["limit_request"] / cpu_us["ours_request"], 3),
        "top_functions_by_own_time": [
            {
                "function": f"{_short(file)}:{line}({func})",
                "own_us_per_request": round(tt / n * 1e6, 1),
                "cumulative_us_per_request": round(ct / n * 1e6, 1),
                "calls_per_request": round(nc / n, 1),
            }
            for (file, line, func), (_cc, nc, tt, ct, _callers) in top
        ],
    }


def _short(path: str) -> str:
    for marker in ("site-packages/", "/platform/", "/lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


# =============================================================================================


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_load":
        p = argparse.ArgumentParser()
        p.add_argument("_cmd")
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--path", required=True)
        p.add_argument("--header", action="append", default=[])
        p.add_argument("--requests", type=int, required=True)
        p.add_argument("--warmup", type=int, required=True)
        p.add_argument("--concurrency", type=int, required=True)
        p.add_argument("--time-limit", type=float, required=True)
        a = p.parse_args(argv)
        headers = dict(h.split(": ", 1) for h in a.header)
        res = asyncio.run(
            run_load(
                a.port,
                a.path,
                headers,
                requests=a.requests,
                warmup=a.warmup,
                concurrency=a.concurrency,
                time_limit=a.time_limit,
            )
        )
        print(json.dumps(res.as_dict()))
        return
    if argv and argv[0] == "_serve":
        p = argparse.ArgumentParser()
        p.add_argument("_cmd")
        p.add_argument("kind", choices=["ours", "limit", "bare"])
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--backend", default="sqlite")
        p.add_argument("--dsn", default="")
        p.add_argument("--tenant-id", default="")
        p.add_argument("--body-file", default="")
        serve(p.parse_args(argv))
        return

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="bench/api.py")
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--requests", type=int, default=3000, help="measured requests per run (default 3000)")
    p.add_argument("--warmup", type=int, default=300, help="warm-up requests per run (default 300)")
    p.add_argument("--concurrency", type=int, default=16, help="keep-alive connections (default 16)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best counts (default 2)")
    p.add_argument(
        "--tenants", type=int, default=1000, help="tenants for the many-tenants run (default 1000)"
    )
    p.add_argument("--products", type=int, default=60, help="products of the measured tenant (default 60)")
    p.add_argument("--products-other", type=int, default=5, help="products of every other tenant (default 5)")
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds at most per load run (default 60)")
    p.add_argument(
        "--profile", action="store_true", help="instead: where ours spends its CPU, in-process (no server)"
    )
    p.add_argument(
        "--profile-requests", type=int, default=2000, help="calls per profiled part (default 2000)"
    )
    a = p.parse_args(argv)
    if a.profile:
        profile(a)
        return
    bench = Bench(a)
    result: dict[str, Any] = {
        "machine": machine_info(),
        "settings": {
            "path": PATH,
            "requests": a.requests,
            "warmup": a.warmup,
            "concurrency": a.concurrency,
            "rounds": a.rounds,
            "tenants": a.tenants,
            "products_measured_tenant": a.products,
            "products_other_tenants": a.products_other,
        },
    }
    result["machine"]["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    backends = ["sqlite", "postgres"] if a.backend == "both" else [a.backend]
    try:
        for backend in backends:
            result[backend] = bench.run_backend(backend)
    finally:
        bench.stop_all()
    result["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
