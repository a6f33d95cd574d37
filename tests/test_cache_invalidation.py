"""Cached identity and plugin state is dropped after the commit that changes it, in this
process and, through Redis, in every other."""

from __future__ import annotations

import asyncio
import secrets

import redis.asyncio as aioredis

from omnicloud.admin.service import ENABLED_CACHE
from omnicloud.core.cache import InvalidationBus
from omnicloud.core.ids import new_id
from tests.fixtures import REDIS, bearer


async def test_disabling_a_user_takes_effect_at_once(client, tenant_a):
    user = (
        await client.post(
            "/api/v1/users",
            headers=tenant_a.auth,
            json={"email": "c@x.example", "name": "C", "role": "sales_rep"},
        )
    ).json()
    key = (
        await client.post(
            "/api/v1/api-keys", headers=tenant_a.auth, json={"name": "k", "user_id": user["id"]}
        )
    ).json()["secret"]
    assert (await client.get("/api/v1/me", headers=bearer(key))).status_code == 200  # now cached
    await client.patch(f"/api/v1/users/{user['id']}", headers=tenant_a.auth, json={"role": "auditor"})
    assert (await client.get("/api/v1/me", headers=bearer(key))).json()["roles"] == ["auditor"]
    await client.patch(f"/api/v1/users/{user['id']}", headers=tenant_a.auth, json={"status": "disabled"})
    assert (await client.get("/api/v1/me", headers=bearer(key))).status_code == 403


async def test_disabling_a_plugin_takes_effect_at_once(client, tenant_a):
    await client.put("/api/v1/plugins/industry_jewelry", headers=tenant_a.auth, json={"settings": {}})
    url = "/api/v1/x/industry_jewelry/board-prices"
    assert (await client.get(url, headers=tenant_a.auth)).status_code == 200  # enabled set now cached
    await client.delete("/api/v1/plugins/industry_jewelry", headers=tenant_a.auth)
    assert (await client.get(url, headers=tenant_a.auth)).status_code == 404


async def test_changes_reach_other_processes_through_redis():
    prefix = f"test-{secrets.token_hex(4)}"
    r1, r2 = aioredis.from_url(REDIS), aioredis.from_url(REDIS)
    sender, listener = InvalidationBus(), InvalidationBus()
    sender.configure(r1, prefix)
    listener.configure(r2, prefix)
    await listener.start()
    tenant = new_id()
    try:
        for _ in range(50):  # wait until the listener is subscribed
            if (await r1.pubsub_numsub(f"{prefix}:invalidate"))[0][1]:
                break
            await asyncio.sleep(0.05)
        ENABLED_CACHE.put(tenant, {"industry_jewelry": {}})
        sender.publish([tenant])
        for _ in range(50):
            if ENABLED_CACHE.get(tenant) is None:
                break
            await asyncio.sleep(0.05)
        assert ENABLED_CACHE.get(tenant) is None
    finally:
        await listener.stop()
        await sender.stop()
        await r1.aclose()
        await r2.aclose()
