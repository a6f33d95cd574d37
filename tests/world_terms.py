"""The terms part of the isolation world (see tests/world.py)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fixtures import TenantHandle
from tests.world import World

FAR = "2999-12-31"


async def _post(client: httpx.AsyncClient, t: TenantHandle, path: str, body: Any) -> dict[str, Any]:
    r = await client.post(path, headers=t.auth, json=body)
    assert r.status_code == 201, (path, r.status_code, r.text)
    return r.json()


async def build(client: httpx.AsyncClient, t: TenantHandle, w: World) -> None:
    """Create one of every terms object in ``w.tenant`` and record its id in ``w.ids``."""
    ids = w.ids
    profile = await _post(
        client,
        t,
        "/api/v1/credit-profiles",
        {"customer_id": ids["customer_id"], "sales_org_id": ids["sales_org_id"], "credit_limit": "1000.00"},
    )
    ids["credit_profile_id"] = profile["id"]
    line_body = {"amount": "100.00", "expires_on": FAR, "reason": "world"}
    line = await _post(client, t, f"/api/v1/credit-profiles/{profile['id']}/temporary-lines", line_body)
    ids["credit_line_id"] = line["id"]
    rule = await _post(
        client,
        t,
        "/api/v1/credit-rules",
        {"check_point": "shipment", "over_limit": "block", "overdue": "block"},
    )
    ids["credit_rule_id"] = rule["id"]
    policy = await _post(
        client,
        t,
        "/api/v1/rebate-policies",
        {
            "code": "RB-W",
            "name": "World rebate",
            "period": "quarter",
            "customers": {"customer_ids": [ids["customer_id"]]},
            "products": {"sku_ids": [ids["sku_id"]]},
            "mode": "retroactive",
            "target": "1000.00",
            "tiers": [{"achievement": "1", "rate": "0.02"}],
            "usage_cap_ratio": "0.1",
        },
    )
    ids["rebate_policy_id"] = policy["id"]
    ratio = await _post(
        client,
        t,
        "/api/v1/offset-ratios",
        {"customer_id": ids["customer_id"], "sku_id": ids["sku_id"], "ratio": "0.2"},
    )
    ids["offset_ratio_id"] = ratio["id"]
    w.bodies.update(
        {
            "updateCreditProfile": {"credit_limit": "2000.00"},
            "createTemporaryCreditLine": line_body,
            "updateCreditRule": {"over_limit": "warn"},
            "updateRebatePolicy": {"name": "Renamed"},
            "previewRebatePolicy": {
                "customer_id": ids["customer_id"],
                "period_start": "2024-01-01",
                "period_end": "2024-03-31",
                "sales": [{"sku_id": ids["sku_id"], "amount": "1000.00"}],
            },
            "updateOffsetRatio": {"ratio": "0.3"},
        }
    )
