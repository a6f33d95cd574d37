"""One of everything in a tenant, created through the public API, for the isolation suites.

``ids`` maps a path parameter name to an object of this tenant; ``names`` maps natural-key
parameters (barcode, metal, purity) to values of this tenant; ``other_dealer_ids`` maps a
parameter to an object that dealer ``d1`` must not see: those of its sibling dealer ``d2``. For
those parameters ``ids`` holds ``d1``'s own objects, which its level-2 dealer ``d1a`` must not see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx

from tests.fixtures import TenantHandle


@dataclass
class World:
    tenant: TenantHandle
    ids: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    bodies: dict[str, Any] = field(default_factory=dict)
    dealer_keys: dict[str, str] = field(default_factory=dict)
    other_dealer_ids: dict[str, str] = field(default_factory=dict)


async def _post(client: httpx.AsyncClient, tenant: TenantHandle, path: str, body: Any) -> dict[str, Any]:
    r = await client.post(path, headers=tenant.auth, json=body)
    assert r.status_code in (200, 201), (path, r.status_code, r.text)
    return r.json()


async def _dealer(
    client: httpx.AsyncClient, t: TenantHandle, code: str, **extra: Any
) -> tuple[dict[str, Any], str]:
    customer = await _post(
        client, t, "/api/v1/customers", {"code": code, "name": code, "kind": "dealer", **extra}
    )
    user = await _post(
        client,
        t,
        "/api/v1/users",
        {"email": f"{code}@w.example", "name": code, "role": "dealer", "customer_id": customer["id"]},
    )
    key = await _post(client, t, "/api/v1/api-keys", {"name": code, "user_id": user["id"]})
    return customer, key["secret"]


async def build_world(client: httpx.AsyncClient, t: TenantHandle, app: Any = None) -> World:
    w = World(tenant=t)
    ids = w.ids
    user = await _post(
        client, t, "/api/v1/users", {"email": "rep@w.example", "name": "Rep", "role": "sales_rep"}
    )
    ids["user_id"] = user["id"]
    ids["key_id"] = (await _post(client, t, "/api/v1/api-keys", {"name": "w", "user_id": user["id"]}))["id"]
    ids["unit_id"] = (await _post(client, t, "/api/v1/units", {"code": "pc", "name": "Piece"}))["id"]
    ids["brand_id"] = (await _post(client, t, "/api/v1/brands", {"code": "B", "name": "Brand"}))["id"]
    ids["category_id"] = (await _post(client, t, "/api/v1/categories", {"code": "C", "name": "Cat"}))["id"]
    ids["region_id"] = (await _post(client, t, "/api/v1/regions", {"code": "R", "name": "Region"}))["id"]
    ids["sales_org_id"] = (await _post(client, t, "/api/v1/sales-orgs", {"code": "S", "name": "Org"}))["id"]
    product = await _post(
        client,
        t,
        "/api/v1/products",
        {
            "code": "P",
            "name": "Product",
            "base_unit_id": ids["unit_id"],
            "brand_id": ids["brand_id"],
            "category_id": ids["category_id"],
        },
    )
    ids["product_id"] = product["id"]
    sku = await _post(
        client,
        t,
        "/api/v1/skus",
        {
            "product_id": product["id"],
            "code": "P-1",
            "name": "Sku",
            "barcode": f"BC{t.slug.replace('-', '')}",
            "list_price": "100.00",
            "cost_price": "60.00",
        },
    )
    ids["sku_id"] = sku["id"]
    w.names["barcode"] = sku["barcode"]
    w.names["metal"], w.names["purity"] = "gold", "Au99.99"

    d1, w.dealer_keys["d1"] = await _dealer(client, t, "d1", region_id=ids["region_id"])
    d2, w.dealer_keys["d2"] = await _dealer(client, t, "d2")
    _, w.dealer_keys["d1a"] = await _dealer(client, t, "d1a", parent_id=d1["id"])  # d1's level-2 dealer
    ids["customer_id"] = d1["id"]
    wh1 = await _post(
        client, t, "/api/v1/warehouses", {"code": "W1", "name": "W1", "owner_customer_id": d1["id"]}
    )
    wh2 = await _post(
        client, t, "/api/v1/warehouses", {"code": "W2", "name": "W2", "owner_customer_id": d2["id"]}
    )
    ids["warehouse_id"] = wh1["id"]
    for wh in (wh1, wh2):
        await _post(
            client,
            t,
            "/api/v1/stock/receipts",
            {"warehouse_id": wh["id"], "sku_id": sku["id"], "quantity": "10", "lot_no": "L1"},
        )
    lots = (await client.get("/api/v1/lots", headers=t.auth)).json()["items"]
    ids["lot_id"] = lots[0]["id"]
    res1 = await _post(
        client,
        t,
        "/api/v1/stock/reservations",
        {"warehouse_id": wh1["id"], "sku_id": sku["id"], "quantity": "1", "lot_no": "L1"},
    )
    res2 = await _post(
        client,
        t,
        "/api/v1/stock/reservations",
        {"warehouse_id": wh2["id"], "sku_id": sku["id"], "quantity": "1", "lot_no": "L1"},
    )
    ids["reservation_id"] = res1["id"]
    w.other_dealer_ids = {"customer_id": d2["id"], "warehouse_id": wh2["id"], "reservation_id": res2["id"]}

    await client.post(
        "/api/v1/x/industry_jewelry/board-prices",
        headers=t.auth,
        json={"metal": "gold", "purity": "Au99.99", "price": "600.00"},
    )
    hook = await _post(
        client, t, "/api/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "event_types": ["webhook.*"]}
    )
    ids["webhook_id"] = hook["id"]
    w.bodies["updateWebhook"] = {"description": "renamed"}
    r = await client.get("/api/v1/events", params={"type": "webhook.created"}, headers=t.auth)
    ids["event_id"] = r.json()["items"][0]["id"]
    if app is not None:  # the relay turns webhook.created into a delivery for this webhook
        await app.state.relay.relay_tenant(UUID(t.id))
        r = await client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=t.auth)
        ids["delivery_id"] = r.json()["items"][0]["id"]
    from tests import (
        world_approvals,
        world_distribution,
        world_funds,
        world_invoices,
        world_orders,
        world_prices,
        world_promos,
        world_rebates,
        world_terms,
    )

    for part in (
        world_prices,
        world_promos,
        world_terms,
        world_funds,
        world_distribution,
        world_orders,
        world_approvals,
        world_rebates,
        world_invoices,
    ):
        await part.build(client, t, w)
    return w
