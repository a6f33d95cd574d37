"""The rebate accrual part of the isolation world (see tests/world.py): one run of the world's
rebate policy, computed, with a line for dealer d1 (the line route takes ``customer_id``)."""

from __future__ import annotations

import httpx

from tests.fixtures import TenantHandle
from tests.world import World


async def build(client: httpx.AsyncClient, t: TenantHandle, w: World) -> None:
    start, end = "2024-01-01", "2024-03-31"  # a calendar quarter: the world policy is quarterly
    r = await client.post(
        "/api/v1/rebate-accruals",
        headers=t.auth,
        json={"rebate_policy_id": w.ids["rebate_policy_id"], "period_start": start, "period_end": end},
    )
    assert r.status_code == 202, r.text
    w.ids["rebate_accrual_id"] = r.json()["id"]
    w.bodies["requestRebateAccrual"] = {
        "rebate_policy_id": w.ids["rebate_policy_id"],
        "period_start": start,
        "period_end": end,
    }
    w.bodies["adjustRebateAccrualLine"] = {"amount": "1.00", "reason": "world"}
