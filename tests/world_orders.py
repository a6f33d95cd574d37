"""The orders part of the isolation world (see tests/world.py)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fixtures import TenantHandle, bearer
from tests.world import World


async def _post(
    client: httpx.AsyncClient, auth: dict[str, str], path: str, body: Any, *, key: str | None = None
) -> dict[str, Any]:
    headers = {**auth, **({"Idempotency-Key": key} if key else {})}
    r = await client.post(path, headers=headers, json=body)
    assert r.status_code in (200, 201), (path, r.status_code, r.text)
    return dict(r.json())


async def build(client: httpx.AsyncClient, t: TenantHandle, w: World) -> None:
    """An order of d1 and one of d2 (one unit each, paid from the cash the funds part remitted),
    shipped from a brand warehouse, and a requested return of another shipped order of each;
    record their ids in ``w.ids`` and ``w.other_dealer_ids``."""
    ids = w.ids
    warehouse = await _post(client, t.auth, "/api/v1/warehouses", {"code": "WB", "name": "Brand"})
    await _post(
        client,
        t.auth,
        "/api/v1/stock/receipts",
        {"warehouse_id": warehouse["id"], "sku_id": ids["sku_id"], "quantity": "10", "lot_no": "L1"},
    )
    body = {"warehouse_id": warehouse["id"], "lines": [{"sku_id": ids["sku_id"], "quantity": "1"}]}
    mine = await _post(client, bearer(w.dealer_keys["d1"]), "/api/v1/orders", body, key="world-order-d1")
    other = await _post(client, bearer(w.dealer_keys["d2"]), "/api/v1/orders", body, key="world-order-d2")
    ids["order_id"] = str(mine["id"])
    w.other_dealer_ids["order_id"] = str(other["id"])
    returned = {}
    for dealer in ("d1", "d2"):  # a shipped order of each dealer with a requested return of it
        auth = bearer(w.dealer_keys[dealer])
        order = await _post(client, auth, "/api/v1/orders", body, key=f"world-return-order-{dealer}")
        shipment = {"lines": [{"line_id": "1", "quantity": "1"}]}
        await _post(client, t.auth, f"/api/v1/orders/{order['id']}/shipments", shipment, key=f"wr-{dealer}")
        filed = await _post(
            client,
            auth,
            f"/api/v1/orders/{order['id']}/returns",
            {"lines": [{"line_id": "1", "quantity": "1"}], "reason": "world"},
            key=f"world-return-{dealer}",
        )
        returned[dealer] = str(filed["id"])
    ids["return_id"] = returned["d1"]
    w.other_dealer_ids["return_id"] = returned["d2"]
    w.bodies.update(
        {
            "rejectOrder": {"reason": "world"},
            "cancelOrder": {"reason": "world"},
            "shipOrder": {"lines": [{"line_id": "1", "quantity": "1"}]},
            "fileOrderReturn": {"lines": [{"line_id": "1", "quantity": "1"}], "reason": "world"},
            "rejectReturn": {"reason": "world"},
            "cancelReturn": {"reason": "world"},
            "receiveReturn": {"warehouse_id": warehouse["id"]},
        }
    )
