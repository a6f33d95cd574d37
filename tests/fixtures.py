"""Test fixtures, loaded by the root conftest.py.

On PostgreSQL the schema is migrated as the owner (``postgres``) into a fresh database, and
the app connects as ``omnicloud_app``, a role that neither owns the tables nor bypasses
row-level security, so every test exercises RLS. Redis (db 15) is used on that backend.
Each test gets fresh tenants with random slugs, so tests never see each other's data.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from omnicloud import migrations
from omnicloud.admin.service import ENABLED_CACHE
from omnicloud.app import create_app
from omnicloud.core.db import Database, app_role_sql
from omnicloud.identity.service import AUTH_CACHE
from omnicloud.plugins import PluginManager
from omnicloud.settings import Settings

BACKEND = os.environ.get("OMNICLOUD_TEST_BACKEND", "sqlite")
PG_ADMIN = os.environ.get("OMNICLOUD_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
REDIS = os.environ.get("OMNICLOUD_TEST_REDIS", "redis://127.0.0.1:6379/15")
APP_ROLE = "omnicloud_app"
OPERATOR_TOKEN = "oco_" + "0" * 32 + "_test-operator-secret"


def pytest_report_header(config: Any) -> str:
    return f"omnicloud backend: {BACKEND}"


def registered_plugins() -> PluginManager:
    """Tests never load installed plugins implicitly: they register the ones they test."""
    import industry_jewelry.plugin as jewelry

    manager = PluginManager()
    manager.add("industry_jewelry", jewelry, version="test")
    return manager


@dataclass
class Backend:
    settings: Settings
    owner_url: str
    plugins: PluginManager


async def prepare_postgres(plugins: PluginManager) -> tuple[str, str]:
    """A fresh database migrated by the owner, plus the URL of the application role."""
    owner_url, app_url = await _create_postgres()
    owner = Database(owner_url, pool_size=2)
    await migrations.upgrade(owner.engine, plugins)
    async with owner.engine.begin() as conn:
        for stmt in app_role_sql(APP_ROLE):
            await conn.execute(text(stmt))
    await owner.dispose()
    return owner_url, app_url


async def _create_postgres() -> tuple[str, str]:
    name = f"omnicloud_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = Database(f"{PG_ADMIN}/postgres", pool_size=1)
    async with admin.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return f"{PG_ADMIN}/{name}", f"{PG_ADMIN.replace('postgres@', APP_ROLE + '@')}/{name}"


async def drop_postgres(owner_url: str) -> None:
    name = owner_url.rsplit("/", 1)[1]
    admin = Database(f"{PG_ADMIN}/postgres", pool_size=1)
    async with admin.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


@pytest.fixture(scope="session")
async def backend(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Backend]:
    tmp = tmp_path_factory.mktemp("db")
    plugins = registered_plugins()
    redis_url = None
    if BACKEND == "postgres":
        owner_url, app_url = await prepare_postgres(plugins)
        redis_url = REDIS
    elif BACKEND == "sqlite":
        owner_url = app_url = f"sqlite+aiosqlite:///{tmp / 'test.db'}"
    else:
        raise pytest.UsageError(f"unknown OMNICLOUD_TEST_BACKEND {BACKEND!r}")
    if BACKEND == "sqlite":
        owner = Database(owner_url, pool_size=2)
        await migrations.upgrade(owner.engine, plugins)
        await owner.dispose()
    settings = Settings(
        database_url=app_url,
        migration_database_url=owner_url,
        redis_url=redis_url,
        redis_prefix=f"test-{os.getpid()}-{secrets.token_hex(3)}",  # runs sharing a Redis stay apart
        operator_token=OPERATOR_TOKEN,
        rate_limit_per_key=100_000,
        rate_limit_per_tenant=1_000_000,
    )
    yield Backend(settings=settings, owner_url=owner_url, plugins=plugins)
    if BACKEND == "postgres":
        await drop_postgres(owner_url)


@pytest.fixture
async def redis() -> AsyncIterator[Any]:
    """Redis, on every backend run: CI and ./dev test start it for both."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS, socket_connect_timeout=2)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def app(backend: Backend) -> AsyncIterator[Any]:
    application = create_app(backend.settings, plugins=backend.plugins)
    yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the real ASGI app, in the test's own event loop (so tests may also
    use ``app.state.db`` directly and run requests concurrently)."""
    AUTH_CACHE.clear()
    ENABLED_CACHE.clear()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


OPERATOR = bearer(OPERATOR_TOKEN)


@dataclass
class TenantHandle:
    id: str
    slug: str
    key: str
    admin_user_id: str

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.key)


async def make_tenant(
    client: httpx.AsyncClient, *, plugins: dict[str, Any] | None = None, prefix: str = "t"
) -> TenantHandle:
    slug = f"{prefix}-{secrets.token_hex(4)}"
    r = await client.post(
        "/api/v1/operator/tenants",
        headers=OPERATOR,
        json={
            "slug": slug,
            "name": f"Tenant {slug}",
            "admin_email": f"admin@{slug}.example",
            "plugins": plugins or {},
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    return TenantHandle(
        id=body["tenant"]["id"], slug=slug, key=body["admin_api_key"], admin_user_id=body["admin_user_id"]
    )


@pytest.fixture
async def tenant_a(client: httpx.AsyncClient) -> TenantHandle:
    return await make_tenant(client, prefix="a")


@pytest.fixture
async def tenant_b(client: httpx.AsyncClient) -> TenantHandle:
    return await make_tenant(client, prefix="b")
