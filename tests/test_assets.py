"""A customer's assets: accounts with totals per kind, and the credit standing that open orders
occupy; dealers read their own subtree's only."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D
from uuid import UUID

from tests.test_funds_api import API, TODAY, fund_cash, post
from tests.test_orders_api import basket, shop, submitted


async def test_assets_show_accounts_and_the_credit_an_order_occupies(client, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    d1 = s.d.ids["D1"]
    await fund_cash(client, t, d1, "100.00", "ASSETS")
    profile = await post(client, t.auth, "/credit-profiles", {"customer_id": d1, "credit_limit": "500.00"})
    soon = (TODAY + timedelta(days=30)).isoformat()
    await post(
        client,
        t.auth,
        f"/credit-profiles/{profile['id']}/temporary-lines",
        {"amount": "100.00", "expires_on": soon},
    )
    order = await submitted(client, s.d.keys["D1"], basket(s, "10", "5"))  # 150: 100 cash, 50 credit
    assert D(order["totals"]["credit_amount"]) == 50

    r = await client.get(f"{API}/customers/{d1}/assets", headers=s.d.keys["D1"])
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["customer_id"] == d1 and a["on"] == TODAY.isoformat()
    [cash] = a["totals"]
    assert (cash["kind"], D(cash["balance"]), D(cash["held"]), D(cash["available"]), cash["accounts"]) == (
        "cash",
        100,
        100,
        0,
        1,
    )
    assert [x["kind"] for x in a["accounts"]] == ["cash"]
    [standing] = a["credit"]
    assert (D(standing["limit"]), D(standing["credit_line"])) == (500, 600)
    assert [D(x["amount"]) for x in standing["temporary_lines"]] == [100]
    assert D(standing["exposure"]["open_orders"]) == 50 and D(standing["exposure"]["total"]) == 50
    assert D(standing["available"]) == 550 and standing["overdue"] == []

    # Staff see it too; the parent dealer sees its sub-dealer's; a sibling and strangers get 404.
    assert (await client.get(f"{API}/customers/{d1}/assets", headers=t.auth)).status_code == 200
    sub = await client.get(f"{API}/customers/{s.d.ids['D1a']}/assets", headers=s.d.keys["D1"])
    assert sub.status_code == 200 and sub.json()["credit"] == [] and sub.json()["accounts"] == []
    assert (await client.get(f"{API}/customers/{d1}/assets", headers=s.d.keys["D2"])).status_code == 404
    assert (await client.get(f"{API}/customers/{UUID(int=5)}/assets", headers=t.auth)).status_code == 404
