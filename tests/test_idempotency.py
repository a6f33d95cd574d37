"""Idempotency-Key on creating POSTs: one object, identical responses, reuse with a
different body is a 422."""

from __future__ import annotations

import asyncio


async def test_twenty_concurrent_posts_create_one_object(client, tenant_a):
    body = {"code": "dup_role", "name": "Dup", "permissions": ["catalog:read"]}
    headers = {**tenant_a.auth, "Idempotency-Key": "k-1"}
    responses = await asyncio.gather(
        *[client.post("/api/v1/roles", headers=headers, json=body) for _ in range(20)]
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1
    roles = (await client.get("/api/v1/roles", headers=tenant_a.auth, params={"limit": 200})).json()["items"]
    assert [r["code"] for r in roles].count("dup_role") == 1


async def test_same_key_different_body_is_422_and_changes_nothing(client, tenant_a):
    headers = {**tenant_a.auth, "Idempotency-Key": "k-2"}
    first = await client.post(
        "/api/v1/roles", headers=headers, json={"code": "a1", "name": "A", "permissions": []}
    )
    assert first.status_code == 201
    again = await client.post(
        "/api/v1/roles", headers=headers, json={"code": "a2", "name": "A", "permissions": []}
    )
    assert again.status_code == 422 and again.json()["code"] == "idempotency_key_reused"
    roles = (await client.get("/api/v1/roles", headers=tenant_a.auth, params={"limit": 200})).json()["items"]
    assert "a2" not in [r["code"] for r in roles]
    replay = await client.post(
        "/api/v1/roles", headers=headers, json={"code": "a1", "name": "A", "permissions": []}
    )
    assert replay.status_code == 201 and replay.content == first.content
    assert replay.headers.get("idempotent-replayed") == "true"


async def test_failed_request_does_not_burn_the_key(client, tenant_a):
    headers = {**tenant_a.auth, "Idempotency-Key": "k-3"}
    bad = await client.post(
        "/api/v1/roles", headers=headers, json={"code": "b", "name": "B", "permissions": ["zz"]}
    )
    assert bad.status_code == 422
    good = await client.post(
        "/api/v1/roles", headers=headers, json={"code": "b", "name": "B", "permissions": []}
    )
    assert good.status_code == 201


async def test_keys_are_per_tenant(client, tenant_a, tenant_b):
    body = {"code": "same", "name": "S", "permissions": []}
    ra = await client.post("/api/v1/roles", headers={**tenant_a.auth, "Idempotency-Key": "shared"}, json=body)
    rb = await client.post("/api/v1/roles", headers={**tenant_b.auth, "Idempotency-Key": "shared"}, json=body)
    assert ra.status_code == rb.status_code == 201
    assert ra.json()["id"] != rb.json()["id"]
