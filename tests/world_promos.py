"""The promos part of the isolation world (see tests/world.py)."""

from __future__ import annotations

import httpx

from tests.fixtures import TenantHandle
from tests.world import World


async def _post(client: httpx.AsyncClient, t: TenantHandle, path: str, body: object) -> dict[str, object]:
    r = await client.post(path, headers=t.auth, json=body)
    assert r.status_code == 201, (path, r.status_code, r.text)
    return r.json()  # type: ignore[no-any-return]


async def build(client: httpx.AsyncClient, t: TenantHandle, w: World) -> None:
    """Create one of every promos object in ``w.tenant`` and record its id in ``w.ids``."""
    promotion = await _post(
        client,
        t,
        "/api/v1/promotions",
        {
            "code": "M500",
            "name": "500 minus 60",
            "type": "full_reduction",
            "rule": {"tiers": [{"threshold": "500", "amount": "60"}]},
            "products": {"sku_ids": [w.ids["sku_id"]]},
            "audience": {"customer_ids": [w.ids["customer_id"]]},
        },
    )
    w.ids["promotion_id"] = str(promotion["id"])
    template = await _post(
        client,
        t,
        "/api/v1/coupon-templates",
        {"code": "C20", "name": "400 minus 20", "threshold": "400", "amount": "20", "total_quantity": 100},
    )
    w.ids["coupon_template_id"] = str(template["id"])
    issued = await _post(
        client,
        t,
        f"/api/v1/coupon-templates/{template['id']}/issue",
        {"customer_ids": [w.ids["customer_id"]]},
    )
    w.ids["coupon_code_id"] = str(issued["codes"][0]["id"])  # type: ignore[index]
    w.bodies["updatePromotion"] = {"name": "renamed"}
    w.bodies["updateCouponTemplate"] = {"name": "renamed"}
    w.bodies["issueCouponCodes"] = {"quantity": 1}
