"""The first minutes of a new operator and tenant admin."""

from __future__ import annotations

from tests.fixtures import OPERATOR, bearer


async def test_health(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200 and r.json()["database"] == "ok"


async def test_operator_creates_tenant_and_admin_key_works(client, tenant_a):
    r = await client.get("/api/v1/me", headers=tenant_a.auth)
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["tenant_id"] == tenant_a.id and me["roles"] == ["tenant_admin"]
    r = await client.get(f"/api/v1/operator/tenants/{tenant_a.slug}", headers=OPERATOR)
    assert r.json()["status"] == "active"


async def test_missing_and_bad_credentials(client):
    r = await client.get("/api/v1/me")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "missing_credential"
    assert (await client.get("/api/v1/me", headers=bearer("nonsense"))).status_code == 401
    assert (await client.get("/api/v1/me", headers=bearer(OPERATOR["Authorization"][7:]))).status_code == 403


async def test_suspended_tenant_gets_403_with_reason(client, tenant_a):
    r = await client.post(
        f"/api/v1/operator/tenants/{tenant_a.slug}/suspend",
        headers=OPERATOR,
        json={"reason": "invoice overdue"},
    )
    assert r.status_code == 200, r.text
    r = await client.get("/api/v1/me", headers=tenant_a.auth)
    assert r.status_code == 403
    assert "invoice overdue" in r.json()["detail"] and r.json()["code"] == "tenant_suspended"
    await client.post(f"/api/v1/operator/tenants/{tenant_a.slug}/resume", headers=OPERATOR)
    assert (await client.get("/api/v1/me", headers=tenant_a.auth)).status_code == 200


async def test_operator_reads_a_tenants_plugins(client):
    from tests.fixtures import make_tenant

    tenant = await make_tenant(client, plugins={"industry_jewelry": {}})
    for _ in range(3):  # reads reuse pooled connections that served other tenants
        r = await client.get(f"/api/v1/operator/tenants/{tenant.slug}", headers=OPERATOR)
        assert r.json()["plugins"] == ["industry_jewelry"]
        assert (await client.get("/api/v1/me", headers=tenant.auth)).status_code == 200
