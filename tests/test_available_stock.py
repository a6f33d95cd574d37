"""What a dealer can get: authorisation and available stock per brand warehouse, for the SKUs it
asks about; unexpired lots only, dealers' own warehouses left out, nothing shown for SKUs it may
not buy, and only its own subtree."""

from __future__ import annotations

from decimal import Decimal as D
from uuid import UUID

from tests.test_funds_api import API, fund_cash, post
from tests.test_orders_api import basket, shop, submitted


async def _ask(client, auth, customer_id: str, *skus: str, **params: str):
    return await client.get(
        f"{API}/customers/{customer_id}/available-stock",
        headers=auth,
        params={"sku_id": list(skus), **params},
    )


async def test_a_dealer_sees_what_it_may_buy_and_where(client, tenant_a):
    t = tenant_a
    s = await shop(client, t, skus=3)  # brand warehouse BR: 100 of each in lot L1
    d1, key = s.d.ids["D1"], s.d.keys["D1"]
    a, b, c = s.skus
    # An expired lot of A in the brand warehouse and stock in a dealer's warehouse do not count.
    await post(
        client,
        t.auth,
        "/stock/receipts",
        {
            "warehouse_id": s.warehouse_id,
            "sku_id": a,
            "quantity": "7",
            "lot_no": "OLD",
            "expiry_date": "2020-01-31",
        },
    )
    own = await post(client, t.auth, "/warehouses", {"code": "D1W", "name": "D1's", "owner_customer_id": d1})
    await post(client, t.auth, "/stock/receipts", {"warehouse_id": own["id"], "sku_id": a, "quantity": "50"})
    # D1 may not buy C.
    await post(
        client, t.auth, "/product-authorizations", {"effect": "deny", "customer_id": d1, "sku_ids": [c]}
    )
    await fund_cash(client, t, d1, "1000.00", "AVAIL")
    await submitted(client, key, basket(s, "10"))  # reserves 10 of A

    r = await _ask(client, key, d1, a, b, c, a)
    assert r.status_code == 200, r.text
    got = r.json()
    assert [i["sku_id"] for i in got["items"]] == [a, b, c]  # as asked, each once
    first, second, third = got["items"]
    assert (first["authorized"], D(first["available"])) == (True, 90)
    [wh] = first["warehouses"]
    assert (wh["warehouse_id"], wh["code"], D(wh["available"])) == (s.warehouse_id, "BR", 90)
    assert (second["authorized"], D(second["available"])) == (True, 100)
    assert (third["authorized"], third["available"], third["warehouses"]) == (False, "0", [])

    # The parent reads its sub-dealer's view; a sibling dealer and strangers get 404.
    assert (await _ask(client, key, s.d.ids["D1a"], b)).status_code == 200
    assert (await _ask(client, s.d.keys["D2"], d1, b)).status_code == 404
    assert (await _ask(client, t.auth, str(UUID(int=3)), b)).status_code == 404
    r = await _ask(client, key, d1, *([b] * 101))
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "sku_id")
    r = await client.get(f"{API}/customers/{d1}/available-stock", headers=key)
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "sku_id")
