"""Concurrent order submits, cancels and shipments through the real app. On PostgreSQL they really
race (row locks and conditional UPDATEs decide); on SQLite writers serialize, which must give the
same answers."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from uuid import UUID

from sqlalchemy import func, select

from omnicloud.pools.orders.models import Order
from tests.test_funds_api import API, assert_ledger_balanced, fund_cash, tx
from tests.test_orders_api import act, basket, cash, ship, shop, stock, submit, submitted

K = 23


async def test_sixty_four_submits_against_cash_for_exactly_k_orders(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, skus=1, stock="1000")
    cash_id = await fund_cash(client, t, s.d.ids["D1"], str(D("10.00") * K), "RACE")
    d1 = s.d.keys["D1"]
    responses = await asyncio.gather(*[submit(client, d1, basket(s, "1")) for _ in range(64)])
    codes = [(r.status_code, r.json().get("code")) for r in responses]
    assert sum(r.status_code == 201 for r in responses) == K, codes
    assert codes.count((409, "insufficient_funds")) == 64 - K, codes
    assert await cash(client, t, cash_id) == (10 * K, 10 * K)
    assert await stock(client, s, s.skus[0]) == (1000, K)
    async with tx(app, t) as session:
        assert await session.scalar(select(func.count(Order.id))) == K
    await assert_ledger_balanced(app, t)


async def test_sixty_four_submits_for_n_units_reserve_exactly_n(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, skus=1, stock="7")
    await fund_cash(client, t, s.d.ids["D1"], "10000.00", "UNITS")
    d1 = s.d.keys["D1"]
    responses = await asyncio.gather(*[submit(client, d1, basket(s, "1")) for _ in range(64)])
    codes = [(r.status_code, r.json().get("code")) for r in responses]
    assert sum(r.status_code == 201 for r in responses) == 7, codes
    assert codes.count((409, "insufficient_stock")) == 57, codes
    assert await stock(client, s, s.skus[0]) == (7, 7)
    await assert_ledger_balanced(app, t)


async def test_concurrent_cancel_and_ship_of_one_order_exactly_one_wins(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, skus=1, stock="100")
    cash_id = await fund_cash(client, t, s.d.ids["D1"], "1000.00", "ONE")
    d1 = s.d.keys["D1"]
    orders = [await submitted(client, d1, basket(s, "2")) for _ in range(8)]
    races = []
    for o in orders:
        races += [act(client, d1, o["id"], "cancel"), ship(client, t.auth, o["id"], l1="2")]
    responses = await asyncio.gather(*races)
    shipped = 0
    for o, cancel, shipment in zip(orders, responses[::2], responses[1::2], strict=True):
        outcomes = sorted([cancel.status_code, shipment.status_code])
        assert outcomes in ([200, 409], [201, 409]), (cancel.text, shipment.text)
        loser = cancel if cancel.status_code == 409 else shipment
        assert loser.json()["code"] in ("illegal_transition", "order_changed"), loser.text
        got = (await client.get(f"{API}/orders/{o['id']}", headers=d1)).json()
        assert got["status"] == ("shipped" if shipment.status_code == 201 else "cancelled")
        assert len(got["history"]) == 2
        shipped += shipment.status_code == 201
    assert await cash(client, t, cash_id) == (1000 - 20 * shipped, 0)
    assert await stock(client, s, s.skus[0]) == (100 - 2 * shipped, 0)
    async with tx(app, t) as session:
        statuses = (
            await session.scalars(select(Order.status).where(Order.id.in_([UUID(o["id"]) for o in orders])))
        ).all()
    assert sorted(statuses).count("shipped") == shipped
    await assert_ledger_balanced(app, t)


async def test_concurrent_orders_on_credit_never_pass_a_check_only_one_fits(client, app, tenant_a):
    """DOMAIN §3: credit is occupied by every open order, and concurrent orders of one customer are
    checked one after the other: with a limit of 100 and no cash, 16 concurrent orders of 30 on
    credit give exactly three orders, and the next one is blocked by what those three occupy."""
    t = tenant_a
    s = await shop(client, t, skus=1, stock="1000")
    d1_id, d1 = s.d.ids["D1"], s.d.keys["D1"]
    for path, body in (
        ("/credit-profiles", {"customer_id": d1_id, "credit_limit": "100.00"}),
        ("/credit-rules", {"check_point": "submit", "over_limit": "block"}),
    ):
        r = await client.post(f"{API}{path}", headers=t.auth, json=body)
        assert r.status_code == 201, r.text
    responses = await asyncio.gather(*[submit(client, d1, basket(s, "3")) for _ in range(16)])
    codes = [(r.status_code, r.json().get("code")) for r in responses]
    assert sum(r.status_code == 201 for r in responses) == 3, codes
    assert codes.count((409, "credit_blocked")) == 13, codes
    async with tx(app, t) as session:
        occupied = await session.scalar(select(func.sum(Order.credit_amount)))
    assert occupied == D("90.00")
    # A quote now shows the exposure the open orders hold.
    r = await client.post(f"{API}/quotes", headers=d1, json={"lines": basket(s, "1")["lines"]})
    assert r.status_code == 200 and D(r.json()["credit"]["exposure"]) == D("90.00"), r.text
