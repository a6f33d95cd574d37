"""Defects a review found, kept fixed: submits and cancels sharing a promotion take their locks in
one order (no deadlock, no 500); concurrent receipts of different returns of one order keep the
order's totals; rejecting needs the approver role the rules name, as approving does. The races run
on both backends and bite on PostgreSQL."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

from tests.test_funds_api import API, assert_ledger_balanced, fund_cash, post
from tests.test_orders_api import act, basket, cash, ship, shop, submit, submitted
from tests.test_orders_returns import decide, filed, receive
from tests.test_orders_rules import _user_key


async def test_submits_and_cancels_sharing_a_promotion_never_deadlock(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, skus=1, stock="100000")
    promotion = {"code": "TEN", "name": "TEN", "type": "straight_discount", "rule": {"off_ratio": "0.1"}}
    await post(client, t.auth, "/promotions", promotion)
    await fund_cash(client, t, s.d.ids["D1"], "100000.00", "DL1")
    await fund_cash(client, t, s.d.ids["D2"], "100000.00", "DL2")
    for _round in range(3):
        olds = [await submitted(client, s.d.keys[c], basket(s, "1")) for c in ("D1", "D2") * 4]
        assert all(D(o["totals"]["discount"]) > 0 for o in olds)
        jobs = [
            act(client, s.d.keys["D1" if i % 2 == 0 else "D2"], o["id"], "cancel") for i, o in enumerate(olds)
        ]
        jobs += [submit(client, s.d.keys[c], basket(s, "1")) for c in ("D1", "D2") * 4]
        responses = await asyncio.gather(*jobs)
        assert {r.status_code for r in responses} <= {200, 201}, [
            r.text for r in responses if r.status_code > 201
        ]
    await assert_ledger_balanced(app, t)


async def test_concurrent_receipts_of_different_returns_keep_the_order_totals(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, skus=1)
    cash_id = await fund_cash(client, t, s.d.ids["D1"], "100.00", "RACE-TWO")
    d1 = s.d.keys["D1"]
    o = await submitted(client, d1, basket(s, "10"))
    assert (await ship(client, t.auth, o["id"], l1="10")).status_code == 201
    returns = []
    for _ in range(8):
        r = await filed(client, d1, o["id"], l1="1")
        assert (await decide(client, t.auth, r["id"], "approve")).status_code == 200
        returns.append(r)
    responses = await asyncio.gather(*[receive(client, t.auth, r["id"], s.warehouse_id) for r in returns])
    assert [x.status_code for x in responses] == [200] * 8, [x.text for x in responses]
    assert await cash(client, t, cash_id) == (80, 0)
    got = (await client.get(f"{API}/orders/{o['id']}", headers=t.auth)).json()
    assert D(got["lines"][0]["returned_quantity"]) == 8
    assert D(got["totals"]["refunded_amount"]) == 80
    await assert_ledger_balanced(app, t)


async def test_rejecting_needs_the_approver_role_too(client, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    await fund_cash(client, t, s.d.ids["D1"], "1000.00", "RJ")
    rule = {"code": "BIG", "name": "Big", "min_amount": "100.00", "approver_role": "finance"}
    await post(client, t.auth, "/approval-rules", rule)
    big = await submitted(client, s.d.keys["D1"], basket(s, "10", "5"))
    manager = await _user_key(client, t, "sales_manager")
    for action in ("approve", "reject"):
        r = await act(client, manager, big["id"], action)
        assert (r.status_code, r.json()["code"]) == (403, "approver_role_required")
    got = (await client.get(f"{API}/orders/{big['id']}", headers=t.auth)).json()
    assert (got["status"], got["version"]) == ("pending_approval", 1)
