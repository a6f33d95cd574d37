"""Rate limits per API key and per tenant: 429 with Retry-After; shared through Redis across
processes; a Redis outage degrades to per-process counting instead of failing requests."""

from __future__ import annotations

import secrets

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from omnicloud.app import create_app
from omnicloud.core.db import Database
from omnicloud.core.ratelimit import Counter
from tests.fixtures import REDIS, bearer, make_tenant


@pytest.fixture
async def limited(backend):
    settings = msgspec.structs.replace(
        backend.settings,
        rate_limit_per_key=3,
        rate_limit_per_tenant=5,
        redis_prefix=f"test-{secrets.token_hex(4)}",
    )
    app = create_app(settings, plugins=backend.plugins, db=Database(settings.database_url, pool_size=2))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        yield client
    await app.state.db.dispose()


async def test_key_limit_answers_429_with_retry_after(limited):
    tenant = await make_tenant(limited)
    codes = [(await limited.get("/api/v1/me", headers=tenant.auth)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = await limited.get("/api/v1/me", headers=tenant.auth)
    assert r.status_code == 429 and r.json()["code"] == "rate_limited_key"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(r.headers["retry-after"]) <= 61


async def test_tenant_limit_spans_keys(limited):
    tenant = await make_tenant(limited)
    other = (await limited.post("/api/v1/api-keys", headers=tenant.auth, json={"name": "second"})).json()[
        "secret"
    ]
    responses = [await limited.get("/api/v1/me", headers=tenant.auth) for _ in range(2)]
    responses += [await limited.get("/api/v1/me", headers=bearer(other)) for _ in range(3)]
    # The tenant's fifth request after the key was made is its sixth: over 5, though no key is over 3.
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 429]
    assert responses[4].json()["code"] == "rate_limited_tenant"
    other_tenant = await make_tenant(limited)
    assert (await limited.get("/api/v1/me", headers=other_tenant.auth)).status_code == 200


async def test_processes_share_counts_through_redis():
    prefix = f"test-{secrets.token_hex(4)}"
    r1, r2 = aioredis.from_url(REDIS), aioredis.from_url(REDIS)
    a, b = Counter(r1, prefix=prefix, sync_seconds=0), Counter(r2, prefix=prefix, sync_seconds=0)
    try:
        for _ in range(3):
            a.hit(["k"], 7)
            await a.flush()
        b.hit(["k"], 7)
        await b.flush()
        assert b.hit(["k"], 7) == [5]  # a's three and b's own two
        assert await r1.get(f"{prefix}:rl:k:7") == b"4"
    finally:
        await r1.delete(f"{prefix}:rl:k:7")
        await r1.aclose()
        await r2.aclose()


async def test_redis_outage_keeps_counting_locally():
    down = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    counter = Counter(down, sync_seconds=0)
    for expected in range(1, 6):
        assert counter.hit(["k"], 1) == [expected]
        await counter.flush()
    await down.aclose()


async def test_requests_work_while_redis_is_away(backend):
    settings = msgspec.structs.replace(backend.settings, redis_url="redis://127.0.0.1:1/0")
    app = create_app(settings, plugins=backend.plugins, db=Database(settings.database_url, pool_size=2))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            tenant = await make_tenant(client)
            assert (await client.get("/api/v1/me", headers=tenant.auth)).status_code == 200
            # A write that emits an event: the relay's job falls back to this process.
            r = await client.post("/api/v1/units", headers=tenant.auth, json={"code": "pc", "name": "Piece"})
            assert r.status_code == 201
            ready = (await client.get("/readyz")).json()
            assert ready["database"] == "ok" and ready["redis"].startswith("unavailable")
    finally:
        await app.state.db.dispose()
