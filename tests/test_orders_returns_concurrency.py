"""Concurrent returns through the real app. On PostgreSQL they really race (row locks and
conditional UPDATEs decide); on SQLite writers serialize, which must give the same answers:
concurrent receipts of one return refund exactly once, and concurrent returns never take back
more than shipped."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from uuid import UUID

from sqlalchemy import func, select

from omnicloud.pools.funds.models import FundTransfer
from omnicloud.pools.orders.models import OrderLine
from tests.test_funds_api import API, assert_ledger_balanced, fund_cash, tx
from tests.test_orders_api import basket, cash, ship, shop, submitted
from tests.test_orders_returns import decide, file_return, filed, receive, stock_total


async def test_concurrent_receipts_of_one_return_refund_exactly_once(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, skus=1)
    cash_id = await fund_cash(client, t, s.d.ids["D1"], "100.00", "RACE-RECEIVE")
    o = await submitted(client, s.d.keys["D1"], basket(s, "10"))
    assert (await ship(client, t.auth, o["id"], l1="10")).status_code == 201
    ret = await filed(client, s.d.keys["D1"], o["id"], l1="3")
    assert (await decide(client, t.auth, ret["id"], "approve")).status_code == 200
    responses = await asyncio.gather(*[receive(client, t.auth, ret["id"], s.warehouse_id) for _ in range(12)])
    codes = [(r.status_code, r.json().get("code")) for r in responses]
    assert sum(r.status_code == 200 for r in responses) == 1, codes
    assert all(code in ("illegal_transition", "return_changed") for status, code in codes if status != 200), (
        codes
    )
    assert await cash(client, t, cash_id) == (30, 0)  # 100 − 100 shipped + 30 back, once
    assert await stock_total(client, s, s.skus[0]) == (93, 0)
    async with tx(app, t) as db:
        refunds = await db.scalar(
            select(func.count(FundTransfer.id)).where(
                FundTransfer.kind == "refund", FundTransfer.ref_id == UUID(o["id"])
            )
        )
    assert refunds == 1
    await assert_ledger_balanced(app, t)


async def test_concurrent_returns_never_take_back_more_than_shipped(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, skus=1)
    await fund_cash(client, t, s.d.ids["D1"], "100.00", "RACE-RETURN")
    d1 = s.d.keys["D1"]
    o = await submitted(client, d1, basket(s, "10"))
    assert (await ship(client, t.auth, o["id"], l1="5")).status_code == 201
    responses = await asyncio.gather(*[file_return(client, d1, o["id"], l1="2") for _ in range(16)])
    codes = [(r.status_code, r.json().get("code")) for r in responses]
    assert sum(r.status_code == 201 for r in responses) == 2, codes  # 2 + 2 of 5; a third does not fit
    assert all(c in ((409, "exceeds_returnable"), (422, "bad_return")) for c in codes if c[0] != 201), codes
    responses = await asyncio.gather(*[file_return(client, d1, o["id"], l1="1") for _ in range(8)])
    assert sum(r.status_code == 201 for r in responses) == 1, [r.text for r in responses]
    async with tx(app, t) as db:
        line = (await db.scalars(select(OrderLine).where(OrderLine.order_id == UUID(o["id"])))).one()
    assert (line.shipped_quantity, line.returning_quantity, line.returned_quantity) == (5, 5, 0)
    listed = (await client.get(f"{API}/returns", headers=t.auth, params={"order_id": o["id"]})).json()[
        "items"
    ]
    assert sorted(D(r["totals"]["amount"]) for r in listed) == [0, 0, 0] and len(listed) == 3
