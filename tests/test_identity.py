"""Users, roles and API keys, as a tenant admin and its users see them."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from omnicloud.core.tenancy import tenant_scope
from omnicloud.identity.models import ApiKey
from tests.fixtures import bearer


async def _user_with_key(client, tenant, role: str, **extra) -> tuple[str, str]:
    r = await client.post(
        "/api/v1/users",
        headers=tenant.auth,
        json={"email": f"{role}-{len(extra)}@x.example", "name": role.title(), "role": role, **extra},
    )
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    r = await client.post("/api/v1/api-keys", headers=tenant.auth, json={"name": "k", "user_id": user_id})
    assert r.status_code == 201, r.text
    return user_id, r.json()["secret"]


async def test_key_secret_is_shown_once_and_stored_hashed(client, app, tenant_a):
    r = await client.post("/api/v1/api-keys", headers=tenant_a.auth, json={"name": "ci"})
    assert r.status_code == 201
    created = r.json()
    secret = created["secret"]
    assert created["prefix"] in (secret[:12] + "…" + secret[-4:],)
    listed = (await client.get("/api/v1/api-keys", headers=tenant_a.auth)).json()["items"]
    assert all("secret" not in k for k in listed)
    assert secret not in str(listed)
    from uuid import UUID

    with tenant_scope(UUID(tenant_a.id)):
        async with app.state.db.transaction() as s:
            row = await s.scalar(select(ApiKey).where(ApiKey.id == UUID(created["id"])))
    raw_secret = secret.split("_", 3)[3]
    assert row.secret_hash == hashlib.sha256(raw_secret.encode()).hexdigest()
    assert secret not in row.secret_hash


async def test_last_use_is_recorded(client, tenant_a):
    r = await client.post("/api/v1/api-keys", headers=tenant_a.auth, json={"name": "used"})
    key = r.json()
    assert key["last_used_at"] is None
    assert (await client.get("/api/v1/me", headers=bearer(key["secret"]))).status_code == 200
    listed = (await client.get("/api/v1/api-keys", headers=tenant_a.auth)).json()["items"]
    used = next(k for k in listed if k["id"] == key["id"])
    assert used["last_used_at"] is not None


async def test_revoked_key_gets_401(client, tenant_a):
    key = (await client.post("/api/v1/api-keys", headers=tenant_a.auth, json={"name": "temp"})).json()
    assert (await client.get("/api/v1/me", headers=bearer(key["secret"]))).status_code == 200
    r = await client.post(f"/api/v1/api-keys/{key['id']}/revoke", headers=tenant_a.auth)
    assert r.status_code == 200 and r.json()["revoked_at"]
    r = await client.get("/api/v1/me", headers=bearer(key["secret"]))
    assert r.status_code == 401 and r.json()["code"] == "credential_revoked"


async def test_tampered_secret_is_rejected(client, tenant_a):
    good = tenant_a.key
    bad = good[:-3] + ("aaa" if not good.endswith("aaa") else "bbb")
    assert (await client.get("/api/v1/me", headers=bearer(bad))).status_code == 401
    assert (await client.get("/api/v1/me", headers=bearer(good))).status_code == 200


async def test_role_permits_exactly_its_permissions(client, tenant_a):
    _, key = await _user_with_key(client, tenant_a, "sales_rep")
    assert (await client.get("/api/v1/users", headers=bearer(key))).status_code == 403
    r = await client.post(
        "/api/v1/users", headers=bearer(key), json={"email": "x@y.z", "name": "X", "role": "auditor"}
    )
    assert r.status_code == 403 and r.json()["code"] == "missing_permission"
    _, auditor = await _user_with_key(client, tenant_a, "auditor")
    assert (await client.get("/api/v1/users", headers=bearer(auditor))).status_code == 200
    r = await client.post(
        "/api/v1/roles", headers=bearer(auditor), json={"code": "x", "name": "X", "permissions": []}
    )
    assert r.status_code == 403


async def test_custom_role_and_unknown_permission(client, tenant_a):
    r = await client.post(
        "/api/v1/roles",
        headers=tenant_a.auth,
        json={"code": "price_clerk", "name": "Price clerk", "permissions": ["catalog:read", "nope"]},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "permissions[1]"
    r = await client.post(
        "/api/v1/roles",
        headers=tenant_a.auth,
        json={"code": "price_clerk", "name": "Price clerk", "permissions": ["catalog:read"]},
    )
    assert r.status_code == 201
    r = await client.post(
        "/api/v1/roles",
        headers=tenant_a.auth,
        json={"code": "price_clerk", "name": "Again", "permissions": []},
    )
    assert r.status_code == 409
    _, key = await _user_with_key(client, tenant_a, "price_clerk")
    me = (await client.get("/api/v1/me", headers=bearer(key))).json()
    assert me["permissions"] == ["catalog:read"]


async def test_dealer_user_needs_a_customer(client, tenant_a):
    r = await client.post(
        "/api/v1/users", headers=tenant_a.auth, json={"email": "d@x.example", "name": "D", "role": "dealer"}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "customer_id"
    r = await client.post(
        "/api/v1/users",
        headers=tenant_a.auth,
        json={
            "email": "d@x.example",
            "name": "D",
            "role": "dealer",
            "customer_id": "01900000-0000-7000-8000-000000000000",
        },
    )
    assert r.status_code == 422


async def test_disabled_user_is_refused_and_admin_cannot_lock_itself_out(client, tenant_a):
    user_id, key = await _user_with_key(client, tenant_a, "finance")
    r = await client.patch(f"/api/v1/users/{user_id}", headers=tenant_a.auth, json={"status": "disabled"})
    assert r.status_code == 200
    r = await client.get("/api/v1/me", headers=bearer(key))
    assert r.status_code == 403 and r.json()["code"] == "user_disabled"
    r = await client.patch(
        f"/api/v1/users/{tenant_a.admin_user_id}", headers=tenant_a.auth, json={"role": "auditor"}
    )
    assert r.status_code == 403


async def test_user_cannot_revoke_or_see_others_keys_without_permission(client, tenant_a):
    _, rep = await _user_with_key(client, tenant_a, "sales_rep")
    admin_keys = (await client.get("/api/v1/api-keys", headers=tenant_a.auth)).json()["items"]
    r = await client.post(f"/api/v1/api-keys/{admin_keys[0]['id']}/revoke", headers=bearer(rep))
    assert r.status_code == 404
    own = (await client.get("/api/v1/api-keys", headers=bearer(rep))).json()["items"]
    assert len(own) == 1


async def test_audit_log_records_who_did_what(client, tenant_a):
    await client.post(
        "/api/v1/roles",
        headers=tenant_a.auth,
        json={"code": "viewer", "name": "Viewer", "permissions": ["catalog:read"]},
    )
    r = await client.get("/api/v1/audit", headers=tenant_a.auth, params={"object_type": "role"})
    items = r.json()["items"]
    assert [i["action"] for i in items] == ["create"]
    assert items[0]["actor"] == f"user:{tenant_a.admin_user_id}"
    assert items[0]["after"]["code"] == "viewer"
    by_actor = (
        await client.get(
            "/api/v1/audit", headers=tenant_a.auth, params={"actor": f"user:{tenant_a.admin_user_id}"}
        )
    ).json()["items"]
    assert any(i["object_type"] == "role" for i in by_actor)


async def test_paging_is_capped_and_cursor_walks_everything(client, tenant_a):
    for i in range(5):
        await client.post(
            "/api/v1/roles", headers=tenant_a.auth, json={"code": f"r{i}", "name": f"R{i}", "permissions": []}
        )
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/roles", headers=tenant_a.auth, params=params)).json()
        assert len(page["items"]) <= 3
        seen += [i["code"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 9 + 5
    r = await client.get("/api/v1/roles", headers=tenant_a.auth, params={"cursor": "garbage!!"})
    assert r.status_code == 422
