"""Drop-ship (DOMAIN §7) through the real app: a level-2 order its level-1 dealer cannot supply from
stock spawns that dealer's purchase from the brand, shipped by the brand straight to the level-2
dealer. Balances in both pools and stock in the brand's and the level-1 dealer's warehouses are
checked after every step; shipments, receipt, cancel and returns travel along the link."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from omnicloud.inventory.models import StockReservation
from omnicloud.pools.funds.models import FundHold
from omnicloud.pools.orders import service as orders_service
from omnicloud.pools.orders.models import Order, OrderReturn
from omnicloud.pools.sales.models import SalesFact
from tests.test_funds_api import API, assert_ledger_balanced, tx
from tests.test_multilevel import Levels, balance, call, lv, ok, order_body, pool, remit_to, stock, today

__all__ = ["lv"]  # the fixture, shared with tests/test_multilevel.py


async def allow_drop_ship(c: httpx.AsyncClient, lv: Levels, buyer: str = "L2", allowed: bool = True) -> None:
    """Let the supply relation of ``buyer`` drop-ship."""
    r = await c.get(f"{API}/supply-relations", headers=lv.t.auth, params={"buyer_id": lv.id(buyer)})
    [relation] = r.json()["items"]
    r = await c.patch(
        f"{API}/supply-relations/{relation['id']}",
        headers={**lv.t.auth, "If-Match": f'"{relation["version"]}"'},
        json={"drop_ship_allowed": allowed},
    )
    assert r.status_code == 200, r.text


async def brand_cash(c: httpx.AsyncClient, lv: Levels, customer: str, amount: str) -> str:
    """The brand's finance records ``customer``'s remittance to the brand; its cash account there."""
    filed = await ok(
        c,
        "POST",
        "/remittances",
        lv.t.auth,
        {
            "customer_id": lv.id(customer),
            "amount": amount,
            "bank_reference": f"{customer}-BRAND-{amount}",
            "remitted_on": await today(c, lv),
        },
    )
    return str((await ok(c, "POST", f"/remittances/{filed['id']}/confirm", lv.t.auth))["fund_account_id"])


async def brand_pool(c: httpx.AsyncClient, lv: Levels) -> dict[str, D]:
    r = await c.get(f"{API}/fund-accounts", headers=lv.t.auth, params={"brand_pool": "true", "limit": 200})
    return {a["code"] or a["kind"]: D(a["balance"]) for a in r.json()["items"]}


def dropship_body(lv: Levels, quantity: str, warehouse: str = "WB") -> dict[str, Any]:
    return {**order_body(lv, "W1", X=quantity), "drop_ship_warehouse_id": lv.id(warehouse)}


async def order(c: httpx.AsyncClient, lv: Levels, order_id: str, who: str | None = None) -> dict[str, Any]:
    r = await c.get(f"{API}/orders/{order_id}", headers=lv.t.auth if who is None else lv.key(who))
    assert r.status_code == 200, r.text
    return dict(r.json())


def ship_body(quantity: str) -> dict[str, Any]:
    return {"lines": [{"line_id": "1", "quantity": quantity}]}


@pytest.fixture
async def funded(client: httpx.AsyncClient, lv: Levels) -> tuple[str, str]:
    """Drop-ship allowed on L1 → L2; L2 has 3,000 of cash at L1, L1 5,000 at the brand."""
    await allow_drop_ship(client, lv)
    at_l1 = (await remit_to(client, lv, "L2", "L1", "3000.00"))["fund_account_id"]
    return str(at_l1), await brand_cash(client, lv, "L1", "5000.00")


async def test_a_drop_shipped_order_flows_through_both_levels(client, app, lv, funded):
    c, t = client, lv.t
    l2_at_l1, l1_at_brand = funded

    # 1. L2 orders 30 X from W1 (20 on hand): the order is accepted in L1's pool and spawns L1's
    #    purchase of 30 X from the brand (brand price 100), reserved in WB, paid in the brand's pool.
    o2 = await ok(c, "POST", "/orders", lv.key("L2"), dropship_body(lv, "30"))
    assert o2["seller_customer_id"] == lv.id("L1") and o2["status"] == "approved"
    assert D(o2["totals"]["frozen_amount"]) == 2700 and o2["drop_ship_order_id"] is not None
    assert [h["action"] for h in o2["history"]] == ["submit", "drop_ship"]
    purchase_id = o2["drop_ship_order_id"]
    p = await order(c, lv, purchase_id, "L1")
    assert p["customer_id"] == lv.id("L1") and p["seller_customer_id"] is None
    assert p["source_order_id"] == o2["id"] and p["ship_to_customer_id"] == lv.id("L2")
    assert p["warehouse_id"] == lv.id("WB") and D(p["totals"]["cash"]) == 3000
    assert D(p["lines"][0]["list_price"]) == 100 and p["history"][0]["detail"]["source_order_id"] == o2["id"]
    assert await balance(c, lv, l2_at_l1) == (3000, 2700)
    assert await balance(c, lv, l1_at_brand) == (5000, 3000)
    assert await stock(c, lv, "W1", "X") == (20, 0)
    assert await stock(c, lv, "WB", "X") == (100, 30)

    # Visibility: L2 never sees the purchase; L1 sees both; another branch sees neither.
    assert (await c.get(f"{API}/orders/{purchase_id}", headers=lv.key("L2"))).status_code == 404
    listed = (await c.get(f"{API}/orders", headers=lv.key("L2"))).json()["items"]
    assert [x["id"] for x in listed] == [o2["id"]]
    for who in ("L1B", "L2B"):
        for oid in (o2["id"], purchase_id):
            assert (await c.get(f"{API}/orders/{oid}", headers=lv.key(who))).status_code == 404
    r = await call(c, "POST", f"/orders/{purchase_id}/shipments", lv.key("L2"), ship_body("1"))
    assert r.status_code == 404, r.text

    # The link holds: L1 cannot ship its sale from W1, nor cancel or confirm its purchase alone;
    # L1 cannot ship the brand's purchase either.
    r = await call(c, "POST", f"/orders/{o2['id']}/shipments", lv.key("L1"), ship_body("1"))
    assert (r.status_code, r.json()["code"]) == (409, "drop_shipped"), r.text
    r = await call(c, "POST", f"/orders/{purchase_id}/cancel", lv.key("L1"), {})
    assert (r.status_code, r.json()["code"]) == (409, "drop_ship_linked"), r.text
    r = await call(c, "POST", f"/orders/{purchase_id}/cancel", t.auth, {})
    assert (r.status_code, r.json()["code"]) == (409, "drop_ship_linked"), r.text
    r = await call(c, "POST", f"/orders/{purchase_id}/shipments", lv.key("L1"), ship_body("1"))
    assert r.status_code == 403, r.text

    # 2. The brand ships 10: both orders move, money posts in both pools, only WB's stock moves.
    await ok(c, "POST", f"/orders/{purchase_id}/shipments", t.auth, ship_body("10"))
    o2_now, p_now = await order(c, lv, o2["id"]), await order(c, lv, purchase_id)
    assert (o2_now["status"], p_now["status"]) == ("partially_shipped", "partially_shipped")
    assert D(o2_now["lines"][0]["shipped_quantity"]) == 10 and D(p_now["lines"][0]["shipped_quantity"]) == 10
    step = o2_now["history"][-1]
    assert step["action"] == "ship_partial" and step["detail"]["drop_ship_order_id"] == purchase_id
    assert step["detail"]["posted"] == "900.00"
    assert await balance(c, lv, l2_at_l1) == (2100, 1800)
    assert await balance(c, lv, l1_at_brand) == (4000, 2000)
    assert await pool(c, lv, "L1") == {"cash": 2100, "receipts": -3000, "sales": 900}
    assert await brand_pool(c, lv) == {"cash": 4000, "receipts": -5000, "sales": 1000}
    assert await stock(c, lv, "W1", "X") == (20, 0)
    assert await stock(c, lv, "WB", "X") == (90, 20)

    # 3. The brand ships the rest: both orders are shipped.
    await ok(c, "POST", f"/orders/{purchase_id}/shipments", t.auth, ship_body("20"))
    o2_now, p_now = await order(c, lv, o2["id"]), await order(c, lv, purchase_id)
    assert (o2_now["status"], p_now["status"]) == ("shipped", "shipped")
    assert await balance(c, lv, l2_at_l1) == (300, 0)
    assert await balance(c, lv, l1_at_brand) == (2000, 0)
    assert await pool(c, lv, "L1") == {"cash": 300, "receipts": -3000, "sales": 2700}
    assert await brand_pool(c, lv) == {"cash": 2000, "receipts": -5000, "sales": 3000}
    assert await stock(c, lv, "W1", "X") == (20, 0)
    assert await stock(c, lv, "WB", "X") == (70, 0)
    async with tx(app, t) as s:
        facts = (
            await s.execute(select(SalesFact.order_id, SalesFact.seller_customer_id, SalesFact.amount))
        ).all()
    assert sorted((str(o), str(sc), a) for o, sc, a in facts) == sorted(
        [
            (o2["id"], lv.id("L1"), D("900.00")),
            (o2["id"], lv.id("L1"), D("1800.00")),
            (purchase_id, "None", D("1000.00")),
            (purchase_id, "None", D("2000.00")),
        ]
    )

    # 4. L1 cannot confirm its purchase; L2 confirms receipt, which completes both.
    r = await call(c, "POST", f"/orders/{purchase_id}/confirm-receipt", lv.key("L1"))
    assert (r.status_code, r.json()["code"]) == (409, "drop_ship_linked"), r.text
    await ok(c, "POST", f"/orders/{o2['id']}/confirm-receipt", lv.key("L2"))
    o2_now, p_now = await order(c, lv, o2["id"]), await order(c, lv, purchase_id)
    assert (o2_now["status"], p_now["status"]) == ("completed", "completed")
    assert p_now["history"][-1]["detail"] == {"source_order_id": o2["id"]}

    # 5. A return of 5 goes back through both levels into the brand's warehouse.
    r = await call(
        c,
        "POST",
        f"/orders/{purchase_id}/returns",
        lv.key("L1"),
        {"lines": [{"line_id": "1", "quantity": "1"}], "reason": "mine"},
    )
    assert (r.status_code, r.json()["code"]) == (409, "drop_ship_linked"), r.text
    ret = await ok(
        c,
        "POST",
        f"/orders/{o2['id']}/returns",
        lv.key("L2"),
        {"lines": [{"line_id": "1", "quantity": "5"}], "reason": "dented"},
    )
    await ok(c, "POST", f"/returns/{ret['id']}/approve", lv.key("L1"))
    r = await call(c, "POST", f"/returns/{ret['id']}/receive", lv.key("L1"), {"warehouse_id": lv.id("W1")})
    assert (r.status_code, r.json()["code"]) == (403, "brand_receives"), r.text
    r = await call(c, "POST", f"/returns/{ret['id']}/receive", t.auth, {"warehouse_id": lv.id("W1")})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "warehouse_id", r.text
    received = await ok(c, "POST", f"/returns/{ret['id']}/receive", t.auth, {"warehouse_id": lv.id("WB")})
    assert received["status"] == "received" and D(received["totals"]["refund_cash"]) == 450
    assert await balance(c, lv, l2_at_l1) == (750, 0)
    assert await balance(c, lv, l1_at_brand) == (2500, 0)
    assert await pool(c, lv, "L1") == {"cash": 750, "receipts": -3000, "sales": 2250}
    assert await brand_pool(c, lv) == {"cash": 2500, "receipts": -5000, "sales": 2500}
    assert await stock(c, lv, "W1", "X") == (20, 0)
    assert await stock(c, lv, "WB", "X") == (75, 0)
    mirrors = (await c.get(f"{API}/returns", headers=lv.key("L1"), params={"order_id": purchase_id})).json()
    [mirror] = mirrors["items"]
    assert mirror["status"] == "received" and D(mirror["totals"]["refund_cash"]) == 500
    assert (await c.get(f"{API}/returns/{mirror['id']}", headers=lv.key("L2"))).status_code == 404
    o2_now, p_now = await order(c, lv, o2["id"]), await order(c, lv, purchase_id)
    assert D(o2_now["lines"][0]["returned_quantity"]) == 5 and D(p_now["lines"][0]["returned_quantity"]) == 5
    assert o2_now["history"][-1]["action"] == "return_drop_shipped"
    assert o2_now["history"][-1]["detail"]["drop_ship_return_id"] == mirror["id"]
    assert [h["action"] for h in p_now["history"]][-3:] == [
        "return_requested",
        "return_approved",
        "return_received",
    ]
    await assert_ledger_balanced(app, t)


async def test_short_without_drop_ship_is_refused_as_before(client, app, lv):
    c = client
    await remit_to(c, lv, "L2", "L1", "10000.00")
    await brand_cash(c, lv, "L1", "11000.00")
    # The relation does not allow drop-ship: 409 whether or not a brand warehouse is named.
    for body in (order_body(lv, "W1", X="30"), dropship_body(lv, "30")):
        r = await call(c, "POST", "/orders", lv.key("L2"), body)
        assert (r.status_code, r.json()["code"]) == (409, "insufficient_stock"), r.text
    # Allowed, but no brand warehouse named: still the 409, saying what would help.
    await allow_drop_ship(c, lv)
    r = await call(c, "POST", "/orders", lv.key("L2"), order_body(lv, "W1", X="30"))
    assert (r.status_code, r.json()["code"]) == (409, "insufficient_stock"), r.text
    assert "drop_ship_warehouse_id" in r.json()["detail"]
    # A dealer's warehouse cannot drop-ship; a brand-sold order has nothing to drop-ship.
    r = await call(c, "POST", "/orders", lv.key("L2"), dropship_body(lv, "30", warehouse="W1B"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "drop_ship_warehouse_id", r.text
    brand_sold = {**order_body(lv, "WB", Y="1"), "drop_ship_warehouse_id": lv.id("WB")}
    r = await call(c, "POST", "/orders", lv.key("L2"), brand_sold)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "drop_ship_warehouse_id", r.text
    # The brand warehouse short too: the purchase's 409.
    r = await call(c, "POST", "/orders", lv.key("L2"), dropship_body(lv, "101"))
    assert (r.status_code, r.json()["code"]) == (409, "insufficient_stock"), r.text
    # With stock in W1 the order ships from W1 as before, the brand warehouse unused.
    o2 = await ok(c, "POST", "/orders", lv.key("L2"), dropship_body(lv, "5"))
    assert o2["drop_ship_order_id"] is None and o2["warehouse_id"] == lv.id("W1")
    assert await stock(c, lv, "W1", "X") == (20, 5)
    assert await stock(c, lv, "WB", "X") == (100, 0)
    async with tx(app, lv.t) as s:
        assert await s.scalar(select(func.count(Order.id))) == 1
    await assert_ledger_balanced(app, lv.t)


async def test_a_level_1_dealer_that_cannot_pay_the_purchase_refuses_the_order_and_leaves_nothing(
    client, app, lv
):
    c = client
    await allow_drop_ship(c, lv)
    l2_at_l1 = (await remit_to(c, lv, "L2", "L1", "3000.00"))["fund_account_id"]
    l1_at_brand = await brand_cash(c, lv, "L1", "100.00")
    r = await call(c, "POST", "/orders", lv.key("L2"), dropship_body(lv, "30"))
    assert (r.status_code, r.json()["code"]) == (409, "insufficient_funds"), r.text
    assert await balance(c, lv, l2_at_l1) == (3000, 0)
    assert await balance(c, lv, l1_at_brand) == (100, 0)
    assert await stock(c, lv, "WB", "X") == (100, 0)
    assert await stock(c, lv, "W1", "X") == (20, 0)
    async with tx(app, lv.t) as s:
        assert await s.scalar(select(func.count(Order.id))) == 0
        assert await s.scalar(select(func.count(FundHold.id))) == 0
        assert await s.scalar(select(func.count(StockReservation.id))) == 0
    # A brand credit line for L1 with a blocking rule: the purchase's credit_blocked refuses it too.
    await ok(c, "POST", "/credit-profiles", lv.t.auth, {"customer_id": lv.id("L1"), "credit_limit": "1000"})
    await ok(c, "POST", "/credit-rules", lv.t.auth, {"check_point": "submit", "over_limit": "block"})
    r = await call(c, "POST", "/orders", lv.key("L2"), dropship_body(lv, "30"))
    assert (r.status_code, r.json()["code"]) == (409, "credit_blocked"), r.text
    async with tx(app, lv.t) as s:
        assert await s.scalar(select(func.count(Order.id))) == 0
    await assert_ledger_balanced(app, lv.t)


async def test_cancelling_the_level_2_order_cancels_or_closes_the_purchase(client, app, lv, funded):
    c, t = client, lv.t
    l2_at_l1, l1_at_brand = funded
    # Before shipment, L2 cancels: both orders are cancelled and everything of both released.
    o2 = await ok(c, "POST", "/orders", lv.key("L2"), dropship_body(lv, "30"))
    await ok(c, "POST", f"/orders/{o2['id']}/cancel", lv.key("L2"), {"reason": "changed my mind"})
    p = await order(c, lv, o2["drop_ship_order_id"])
    assert (await order(c, lv, o2["id"]))["status"] == "cancelled" and p["status"] == "cancelled"
    assert p["history"][-1]["detail"]["source_order_id"] == o2["id"]
    assert await balance(c, lv, l2_at_l1) == (3000, 0)
    assert await balance(c, lv, l1_at_brand) == (5000, 0)
    assert await stock(c, lv, "WB", "X") == (100, 0)

    # After a partial shipment, L1 closes its sale: the purchase closes too.
    o2 = await ok(c, "POST", "/orders", lv.key("L2"), dropship_body(lv, "30"))
    await ok(c, "POST", f"/orders/{o2['drop_ship_order_id']}/shipments", t.auth, ship_body("10"))
    await ok(c, "POST", f"/orders/{o2['id']}/cancel", lv.key("L1"), {})
    p = await order(c, lv, o2["drop_ship_order_id"])
    assert (await order(c, lv, o2["id"]))["status"] == "closed" and p["status"] == "closed"
    assert await balance(c, lv, l2_at_l1) == (2100, 0)
    assert await balance(c, lv, l1_at_brand) == (4000, 0)
    assert await stock(c, lv, "WB", "X") == (90, 0)
    assert await stock(c, lv, "W1", "X") == (20, 0)

    async with tx(app, t) as s:
        assert await s.scalar(select(func.count(OrderReturn.id))) == 0
    await assert_ledger_balanced(app, t)


async def test_the_brand_ships_only_what_the_seller_approved_and_a_rejection_cancels_the_purchase(
    client, app, lv
):
    c, t = client, lv.t
    await allow_drop_ship(c, lv)
    l1_at_brand = await brand_cash(c, lv, "L1", "5000.00")
    # L2 buys on a small credit line L1 granted it: over the line, L1 must approve its sale.
    await ok(c, "POST", "/credit-grants", lv.key("L1"), {"customer_id": lv.id("L2"), "credit_limit": "100"})
    await ok(c, "POST", "/credit-rules", t.auth, {"check_point": "submit", "over_limit": "needs_approval"})
    o2 = await ok(c, "POST", "/orders", lv.key("L2"), dropship_body(lv, "30"))
    purchase_id = o2["drop_ship_order_id"]
    assert o2["status"] == "pending_approval" and D(o2["totals"]["credit_amount"]) == 2700
    assert (await order(c, lv, purchase_id))["status"] == "approved"
    # The brand cannot ship before L1 approved its sale; nothing moves.
    r = await call(c, "POST", f"/orders/{purchase_id}/shipments", t.auth, ship_body("10"))
    assert (r.status_code, r.json()["code"]) == (409, "source_not_approved"), r.text
    assert await stock(c, lv, "WB", "X") == (100, 30)
    assert await balance(c, lv, l1_at_brand) == (5000, 3000)
    # The brand cannot reject or cancel the purchase on its own; L1 rejecting its sale cancels it.
    r = await call(c, "POST", f"/orders/{purchase_id}/cancel", t.auth, {})
    assert (r.status_code, r.json()["code"]) == (409, "drop_ship_linked"), r.text
    await ok(c, "POST", f"/orders/{o2['id']}/reject", lv.key("L1"), {"reason": "over the line"})
    p = await order(c, lv, purchase_id)
    assert (await order(c, lv, o2["id"]))["status"] == "rejected" and p["status"] == "cancelled"
    assert p["history"][-1]["detail"]["reason"] == f"the drop-shipped order {o2['id']} was rejected"
    assert await stock(c, lv, "WB", "X") == (100, 0)
    assert await balance(c, lv, l1_at_brand) == (5000, 0)
    await assert_ledger_balanced(app, t)


async def test_a_concurrent_shipment_of_the_purchase_and_cancel_of_the_level_2_order_never_split(
    client, app, lv, funded
):
    """Both steps take the level-2 order's row first, then the purchase's: of a shipment of the
    purchase and a cancel of its level-2 order sent together exactly one wins, and the two
    orders always end in matching states."""
    c, t = client, lv.t
    await remit_to(c, lv, "L2", "L1", "10000.00")
    await brand_cash(c, lv, "L1", "10000.00")
    for _ in range(3):  # 21 X: more than W1 holds
        o2 = await ok(c, "POST", "/orders", lv.key("L2"), dropship_body(lv, "21"))
        shipped, cancelled = await asyncio.gather(
            call(c, "POST", f"/orders/{o2['drop_ship_order_id']}/shipments", t.auth, ship_body("21")),
            call(c, "POST", f"/orders/{o2['id']}/cancel", lv.key("L2"), {}),
        )
        codes = sorted([shipped.status_code, cancelled.status_code])
        assert codes in ([200, 409], [201, 409]), (shipped.text, cancelled.text)
        both = (
            (await order(c, lv, o2["id"]))["status"],
            (await order(c, lv, o2["drop_ship_order_id"]))["status"],
        )
        assert both in (("shipped", "shipped"), ("cancelled", "cancelled")), both
    _, reserved = await stock(c, lv, "WB", "X")
    assert reserved == 0
    await assert_ledger_balanced(app, t)


async def test_a_drop_ship_submit_and_a_purchase_shipment_never_deadlock(client, app, lv, monkeypatch):
    """Both take the level-1 dealer's pool before the brand's (found by review: a shipment posted
    the brand's pool first and deadlocked with a submit on PostgreSQL). The pauses only widen the
    window in which they would cross."""
    c, t = client, lv.t
    await allow_drop_ship(c, lv)
    await remit_to(c, lv, "L2", "L1", "10000.00")
    await brand_cash(c, lv, "L1", "10000.00")
    o_a = await ok(c, "POST", "/orders", lv.key("L2"), dropship_body(lv, "21"))

    real_source, real_drop = orders_service._ship_source, orders_service._drop_ship

    async def slow_source(
        *a: Any, **kw: Any
    ) -> Any:  # the purchase's money (L1 at the brand) is posted already
        await asyncio.sleep(0.8)
        return await real_source(*a, **kw)

    async def slow_drop(*a: Any, **kw: Any) -> Any:  # the level-2 order's freeze (L2 at L1) is placed already
        await asyncio.sleep(0.8)
        return await real_drop(*a, **kw)

    monkeypatch.setattr(orders_service, "_ship_source", slow_source)
    monkeypatch.setattr(orders_service, "_drop_ship", slow_drop)

    async def shipping() -> Any:
        return await call(
            c, "POST", f"/orders/{o_a['drop_ship_order_id']}/shipments", t.auth, ship_body("21")
        )

    async def submitting() -> Any:
        await asyncio.sleep(0.3)
        return await call(c, "POST", "/orders", lv.key("L2"), dropship_body(lv, "21"))

    shipped, submitted = await asyncio.gather(shipping(), submitting())
    assert shipped.status_code == 201, shipped.text
    assert submitted.status_code == 201, submitted.text


async def test_the_brand_may_refuse_a_purchase_and_the_level_2_order_goes_with_it(client, app, lv, funded):
    """A drop-ship purchase the brand's approval rules hold is the brand's to decide: rejecting it
    cancels the level-2 order it would have supplied, and every hold of both is released."""
    c, t = client, lv.t
    at_l1, at_brand = funded
    await ok(c, "POST", "/approval-rules", t.auth, {"code": "ALL", "name": "Every order"})
    placed = await ok(c, "POST", "/orders", lv.key("L2"), dropship_body(lv, "21"))  # L1 has 20
    purchase = await order(c, lv, placed["drop_ship_order_id"])
    assert purchase["status"] == "pending_approval"
    r = await call(c, "POST", f"/orders/{purchase['id']}/reject", t.auth, {"reason": "no allocation"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "rejected"
    level2 = await order(c, lv, placed["id"])
    assert level2["status"] == "cancelled"
    assert "the brand rejected the drop-ship purchase" in level2["history"][-1]["detail"]["reason"]
    assert (await balance(c, lv, at_l1))[1] == 0 and (await balance(c, lv, at_brand))[1] == 0
    await assert_ledger_balanced(app, t)
