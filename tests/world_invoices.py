"""The invoices part of the isolation world (see tests/world.py)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fixtures import TenantHandle, bearer
from tests.world import World

TITLE = {"title": "World Trading", "tax_id": "91310000WORLD0001X"}


async def _post(
    client: httpx.AsyncClient, auth: dict[str, str], path: str, body: Any = None, *, key: str | None = None
) -> dict[str, Any]:
    headers = {**auth, **({"Idempotency-Key": key} if key else {})}
    r = await client.post(path, headers=headers, json=body)
    assert r.status_code in (200, 201), (path, r.status_code, r.text)
    return dict(r.json())


async def _invoiced(
    client: httpx.AsyncClient, t: TenantHandle, dealer: str, warehouse_id: str, sku_id: str, customer_id: str
) -> tuple[str, str]:
    """A credit order of ``dealer``, shipped, requested, approved and issued: the ids of its
    invoice request and of the receivable for its credit part."""
    await _post(
        client,
        t.auth,
        "/api/v1/credit-profiles",
        {"customer_id": customer_id, "credit_limit": "100000.00", "credit_days": 30},
        key=f"world-credit-{dealer}",
    )
    auth = bearer(dealer)
    body = {"warehouse_id": warehouse_id, "lines": [{"sku_id": sku_id, "quantity": "10"}]}
    order = await _post(client, auth, "/api/v1/orders", body, key=f"world-invoice-order-{customer_id}")
    assert order["totals"]["credit_amount"] != "0.00", order["totals"]
    await _post(
        client,
        t.auth,
        f"/api/v1/orders/{order['id']}/shipments",
        {"lines": [{"line_id": "1", "quantity": "10"}]},
        key=f"world-invoice-ship-{customer_id}",
    )
    request_body = {**TITLE, "lines": [{"order_line_id": order["lines"][0]["id"], "quantity": "10"}]}
    req = await _post(client, auth, "/api/v1/invoice-requests", request_body, key=f"world-ir-{customer_id}")
    await _post(client, t.auth, f"/api/v1/invoice-requests/{req['id']}/approve")
    out = await _post(
        client,
        t.auth,
        f"/api/v1/invoice-requests/{req['id']}/issue",
        {"invoice_number": f"W{customer_id[-8:]}"},
    )
    return str(req["id"]), str(out["invoice"]["receivable_id"])


async def build(client: httpx.AsyncClient, t: TenantHandle, w: World) -> None:
    """For d1 and d2 each, an issued invoice with its receivable; record their ids in ``w.ids``
    and ``w.other_dealer_ids``, and valid bodies for the actions the isolation suite replays."""
    ids = w.ids
    warehouse = await _post(client, t.auth, "/api/v1/warehouses", {"code": "WI", "name": "Invoices"})
    await _post(
        client,
        t.auth,
        "/api/v1/stock/receipts",
        {"warehouse_id": warehouse["id"], "sku_id": ids["sku_id"], "quantity": "100", "lot_no": "L1"},
    )
    d1, d2 = ids["customer_id"], w.other_dealer_ids["customer_id"]
    mine = await _invoiced(client, t, w.dealer_keys["d1"], warehouse["id"], ids["sku_id"], d1)
    other = await _invoiced(client, t, w.dealer_keys["d2"], warehouse["id"], ids["sku_id"], d2)
    ids["invoice_request_id"], ids["receivable_id"] = mine
    w.other_dealer_ids["invoice_request_id"], w.other_dealer_ids["receivable_id"] = other
    w.bodies.update(
        {
            "rejectInvoiceRequest": {"reason": "world"},
            "cancelInvoiceRequest": {"reason": "world"},
            "issueInvoice": {"invoice_number": "ISO-1"},
            "payReceivable": {"amount": "1.00"},
        }
    )
