"""The approval-rules part of the isolation world (see tests/world.py)."""

from __future__ import annotations

import httpx

from tests.fixtures import TenantHandle
from tests.world import World


async def build(client: httpx.AsyncClient, t: TenantHandle, w: World) -> None:
    """One approval rule, inactive so that the world's later orders are not held; record its id."""
    r = await client.post(
        "/api/v1/approval-rules",
        headers=t.auth,
        json={"code": "WORLD", "name": "World", "min_amount": "1.00", "active": False},
    )
    assert r.status_code == 201, r.text
    w.ids["approval_rule_id"] = r.json()["id"]
    w.bodies["updateApprovalRule"] = {"name": "World rule"}
