"""Shared steps of the jewelry pack's tests."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
from tests.fixtures import TenantHandle, bearer, make_tenant

PLUGIN_URL = "/api/v1/plugins/industry_jewelry"
X = "/api/v1/x/industry_jewelry"


async def enable(client: httpx.AsyncClient, tenant: TenantHandle, **settings: Any) -> dict[str, Any]:
    r = await client.put(PLUGIN_URL, headers=tenant.auth, json={"settings": settings})
    assert r.status_code == 200, r.text
    return r.json()


async def jewelry_tenant(client: httpx.AsyncClient, prefix: str = "j", **settings: Any) -> TenantHandle:
    tenant = await make_tenant(client, prefix=prefix)
    await enable(client, tenant, **settings)
    return tenant


async def set_price(
    client: httpx.AsyncClient, tenant: TenantHandle, purity: str = "Au999", metal: str = "gold", **body: Any
) -> dict[str, Any]:
    r = await client.post(
        f"{X}/board-prices", headers=tenant.auth, json={"metal": metal, "purity": purity, **body}
    )
    assert r.status_code == 201, r.text
    return r.json()


async def user_key(client: httpx.AsyncClient, tenant: TenantHandle, permissions: list[str]) -> dict[str, str]:
    """An API key of a new user whose custom role grants exactly ``permissions``."""
    code = f"r_{secrets.token_hex(3)}"
    r = await client.post(
        "/api/v1/roles", headers=tenant.auth, json={"code": code, "name": code, "permissions": permissions}
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/v1/users",
        headers=tenant.auth,
        json={"email": f"{code}@{tenant.slug}.example", "name": code, "role": code},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/v1/api-keys", headers=tenant.auth, json={"name": code, "user_id": r.json()["id"]}
    )
    assert r.status_code == 201, r.text
    return bearer(r.json()["secret"])
