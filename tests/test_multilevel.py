"""Multi-level distribution (DOMAIN §7) through the real app: a level-2 dealer's order becomes its
level-1 dealer's sales order, paid in the level-1 dealer's pool, credit-checked against the
credit that dealer granted and shipped from its own warehouse. Balances in both pools and stock
in both warehouses are checked after every step, and every pool sums to zero on its own."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal as D
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import func, select

from omnicloud.pools.funds.models import FundAccount
from omnicloud.pools.orders.models import Order
from omnicloud.pools.sales.models import SalesFact
from tests.fixtures import TenantHandle, bearer
from tests.test_funds_api import API, assert_ledger_balanced, keyed, tx
from tests.world_distribution import Brand

TODAY = None  # set from the server's business day in the fixture


@dataclass
class Levels:
    """The brand with level-1 dealers L1 and L1B, L1's level-2 dealer L2 and L1B's L2B. L2 buys X
    from L1 (a supply relation) and Y from the brand; L1 prices X at 90 on its own list (the brand
    at 100, Y at 50). Warehouses: the brand's WB (100 X, 100 Y), L1's W1 (20 X), L1B's W1B (20 X)."""

    b: Brand
    t: TenantHandle

    def key(self, code: str) -> dict[str, str]:
        return bearer(self.b.ids[f"key:{code}"])

    def id(self, code: str) -> str:
        return self.b.ids[code]


@pytest.fixture
async def lv(client: httpx.AsyncClient, tenant_a: TenantHandle) -> Levels:
    b = await Brand(client, tenant_a).basics()
    for code, parent in (("L1", None), ("L2", "L1"), ("L1B", None), ("L2B", "L1B")):
        await b.customer(code, parent=parent)
        b.ids[f"key:{code}"] = await b.user_key(code, "dealer", b.ids[code])
    for code in ("X", "Y"):
        await b.sku(code)
    base = await b.post("/api/v1/price-lists", {"code": "BRAND", "name": "Brand", "step": "base"})
    for code, price in (("X", "100.00"), ("Y", "50.00")):
        await b.post(
            f"/api/v1/price-lists/{base['id']}/entries",
            {"sku_id": b.ids[code], "unit_id": b.ids["pcs"], "price": price},
        )
    for seller, buyer in (("L1", "L2"), ("L1B", "L2B")):
        await b.post(
            "/api/v1/supply-relations",
            {"buyer_id": b.ids[buyer], "seller_id": b.ids[seller], "sku_ids": [b.ids["X"]]},
        )
        own = await b.post(
            "/api/v1/price-lists",
            {"code": f"{seller}-BASE", "name": seller, "step": "base"},
            key=b.ids[f"key:{seller}"],
        )
        await b.post(
            f"/api/v1/price-lists/{own['id']}/entries",
            {"sku_id": b.ids["X"], "unit_id": b.ids["pcs"], "price": "90.00"},
            key=b.ids[f"key:{seller}"],
        )
    for code, owner, stock in (("WB", None, ("X", "Y")), ("W1", "L1", ("X",)), ("W1B", "L1B", ("X",))):
        body = {"code": code, "name": code, "owner_customer_id": b.ids[owner] if owner else None}
        b.ids[code] = (await b.post("/api/v1/warehouses", body))["id"]
        for sku in stock:
            await b.post(
                "/api/v1/stock/receipts",
                {
                    "warehouse_id": b.ids[code],
                    "sku_id": b.ids[sku],
                    "quantity": "100" if owner is None else "20",
                    "lot_no": "L1",
                },
            )
    return Levels(b=b, t=tenant_a)


async def call(
    c: httpx.AsyncClient, method: str, path: str, auth: dict[str, str], body: Any = None, **kw: Any
) -> httpx.Response:
    return await c.request(method, f"{API}{path}", headers=keyed(auth, str(uuid4())), json=body, **kw)


async def ok(c: httpx.AsyncClient, method: str, path: str, auth: dict[str, str], body: Any = None) -> Any:
    r = await call(c, method, path, auth, body)
    assert r.status_code in (200, 201), (method, path, r.status_code, r.text)
    return r.json()


async def remit_to(c: httpx.AsyncClient, lv: Levels, buyer: str, seller: str, amount: str) -> dict[str, Any]:
    """``buyer`` remits ``amount`` to its supplier ``seller``, who confirms it."""
    filed = await ok(
        c,
        "POST",
        "/remittances",
        lv.key(buyer),
        {
            "amount": amount,
            "bank_reference": f"B-{uuid4().hex[:8]}",
            "remitted_on": (await today(c, lv)),
            "seller_customer_id": lv.id(seller),
        },
    )
    return dict(await ok(c, "POST", f"/remittances/{filed['id']}/confirm", lv.key(seller)))


async def today(c: httpx.AsyncClient, lv: Levels) -> str:
    global TODAY
    if TODAY is None:
        r = await c.get(f"{API}/customers/{lv.id('L2')}/assets", headers=lv.t.auth)
        TODAY = r.json()["on"]
    return str(TODAY)


async def balance(c: httpx.AsyncClient, lv: Levels, account_id: str) -> tuple[D, D]:
    a = (await c.get(f"{API}/fund-accounts/{account_id}", headers=lv.t.auth)).json()
    return D(a["balance"]), D(a["held"])


async def stock(c: httpx.AsyncClient, lv: Levels, warehouse: str, sku: str) -> tuple[D, D]:
    r = await c.get(
        f"{API}/stock",
        headers=lv.t.auth,
        params={"warehouse_id": lv.id(warehouse), "sku_id": lv.id(sku)},
    )
    levels = r.json()["items"]  # one per lot: a received return is a lot of its own
    return sum((D(x["on_hand"]) for x in levels), D(0)), sum((D(x["reserved"]) for x in levels), D(0))


async def pool(c: httpx.AsyncClient, lv: Levels, owner: str) -> dict[str, D]:
    """The balances of every account in ``owner``'s pool, by slot kind (system code or kind)."""
    r = await c.get(
        f"{API}/fund-accounts", headers=lv.t.auth, params={"owner_customer_id": lv.id(owner), "limit": 200}
    )
    return {a["code"] or a["kind"]: D(a["balance"]) for a in r.json()["items"]}


def order_body(lv: Levels, warehouse: str, **quantities: str) -> dict[str, Any]:
    return {
        "warehouse_id": lv.id(warehouse),
        "lines": [
            {"line_id": str(i + 1), "sku_id": lv.id(sku), "quantity": q}
            for i, (sku, q) in enumerate(quantities.items())
        ],
    }


async def test_a_level_2_order_flows_through_its_level_1_dealer(client, app, lv):
    c = client
    # 1. L2 remits 1,000 to L1; only L1 (and the brand) decide it; L1B does not even see it.
    filed = await ok(
        c,
        "POST",
        "/remittances",
        lv.key("L2"),
        {
            "amount": "1000.00",
            "bank_reference": "L2-TO-L1",
            "remitted_on": await today(c, lv),
            "seller_customer_id": lv.id("L1"),
        },
    )
    assert filed["seller_customer_id"] == lv.id("L1") and filed["status"] == "pending"
    for who in ("L1B", "L2B"):
        assert (await c.get(f"{API}/remittances/{filed['id']}", headers=lv.key(who))).status_code == 404
        r = await call(c, "POST", f"/remittances/{filed['id']}/confirm", lv.key(who))
        assert r.status_code == 404, r.text
    r = await call(c, "POST", f"/remittances/{filed['id']}/confirm", lv.key("L2"))
    assert r.status_code == 403 and r.json()["code"] == "not_your_pool", r.text
    confirmed = await ok(c, "POST", f"/remittances/{filed['id']}/confirm", lv.key("L1"))
    cash_at_l1 = confirmed["fund_account_id"]
    account = (await c.get(f"{API}/fund-accounts/{cash_at_l1}", headers=lv.key("L2"))).json()
    assert account["owner_customer_id"] == lv.id("L1") and account["customer_id"] == lv.id("L2")
    assert await balance(c, lv, cash_at_l1) == (1000, 0)
    assert await pool(c, lv, "L1") == {"cash": 1000, "receipts": -1000}
    # L2 has nothing at the brand: the brand's pool is untouched.
    brand = await c.get(f"{API}/fund-accounts", headers=lv.t.auth, params={"brand_pool": "true"})
    assert brand.json()["items"] == []

    # 2. A brand warehouse cannot ship L1's sale; a basket of X (L1's) and Y (the brand's) is split.
    r = await call(c, "POST", "/orders", lv.key("L2"), order_body(lv, "WB", X="3"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "warehouse_id", r.text
    r = await call(c, "POST", "/orders", lv.key("L2"), order_body(lv, "W1B", X="3"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "warehouse_id", r.text
    r = await call(c, "POST", "/orders", lv.key("L2"), order_body(lv, "W1", X="3", Y="1"))
    assert r.status_code == 422 and r.json()["code"] == "mixed_sellers", r.text
    assert [(e["field"], e["seller_customer_id"]) for e in r.json()["errors"]] == [
        ("lines[0]", lv.id("L1")),
        ("lines[1]", None),
    ]

    # 3. L2 orders 3 X from W1: L1's price (90), frozen on L2's cash at L1, reserved in W1.
    order = await ok(c, "POST", "/orders", lv.key("L2"), order_body(lv, "W1", X="3"))
    assert order["seller_customer_id"] == lv.id("L1") and order["status"] == "approved"
    assert D(order["totals"]["cash"]) == 270 and D(order["totals"]["frozen_amount"]) == 270
    assert D(order["lines"][0]["list_price"]) == 90
    assert await balance(c, lv, cash_at_l1) == (1000, 270)
    assert await stock(c, lv, "W1", "X") == (20, 3)
    assert await stock(c, lv, "WB", "X") == (100, 0)

    # Who sees it: L2 as its purchase, L1 as its sale; L1B and L2B not at all.
    def ids(r: httpx.Response) -> list[str]:
        return [o["id"] for o in r.json()["items"]]

    sold = await c.get(f"{API}/orders", headers=lv.key("L1"), params={"role": "sold"})
    bought = await c.get(f"{API}/orders", headers=lv.key("L2"), params={"role": "bought"})
    assert ids(sold) == [order["id"]] and ids(bought) == [order["id"]]
    assert ids(await c.get(f"{API}/orders", headers=lv.key("L1"), params={"role": "bought"})) == []
    for who in ("L1B", "L2B"):
        assert (await c.get(f"{API}/orders/{order['id']}", headers=lv.key(who))).status_code == 404
        one = {"lines": [{"line_id": "1", "quantity": "1"}]}
        r = await call(c, "POST", f"/orders/{order['id']}/shipments", lv.key(who), one)
        assert r.status_code == 404, r.text
    # The buyer cannot ship its own purchase.
    r = await call(
        c,
        "POST",
        f"/orders/{order['id']}/shipments",
        lv.key("L2"),
        {"lines": [{"line_id": "1", "quantity": "1"}]},
    )
    assert r.status_code == 403 and r.json()["code"] == "not_your_sale", r.text

    # 4. L1 ships 2, then 1: money moves from L2's cash at L1 to L1's sales account, stock leaves W1.
    await ok(
        c,
        "POST",
        f"/orders/{order['id']}/shipments",
        lv.key("L1"),
        {"lines": [{"line_id": "1", "quantity": "2"}]},
    )
    assert await balance(c, lv, cash_at_l1) == (820, 90)
    assert await stock(c, lv, "W1", "X") == (18, 1)
    assert await pool(c, lv, "L1") == {"cash": 820, "receipts": -1000, "sales": 180}
    done = await ok(
        c,
        "POST",
        f"/orders/{order['id']}/shipments",
        lv.key("L1"),
        {"lines": [{"line_id": "1", "quantity": "1"}]},
    )
    assert done["status"] == "shipped"
    assert await balance(c, lv, cash_at_l1) == (730, 0)
    assert await stock(c, lv, "W1", "X") == (17, 0)
    assert await stock(c, lv, "WB", "X") == (100, 0)
    assert await pool(c, lv, "L1") == {"cash": 730, "receipts": -1000, "sales": 270}
    async with tx(app, lv.t) as s:
        facts = (await s.scalars(select(SalesFact).where(SalesFact.order_id == UUID(order["id"])))).all()
        assert {f.seller_customer_id for f in facts} == {UUID(lv.id("L1"))}
        assert sum(f.amount for f in facts) == 270
    # The brand's invoice pool invoices the brand's sales only: L1's sale is neither offered nor taken.
    left = await ok(c, "GET", "/invoiceable-lines", lv.key("L2"))
    assert all(x["order_id"] != order["id"] for x in left["items"])
    r = await call(
        c,
        "POST",
        "/invoice-requests",
        lv.key("L2"),
        {
            "title": "L2 Co",
            "tax_id": "91310000L2",
            "lines": [{"order_line_id": done["lines"][0]["id"], "quantity": "1"}],
        },
    )
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "lines[0].order_line_id")

    # 5. L2 confirms receipt and returns 1: L1 decides and receives it into its own warehouse; the
    #    money comes back out of L1's pool.
    await ok(c, "POST", f"/orders/{order['id']}/confirm-receipt", lv.key("L2"))
    ret = await ok(
        c,
        "POST",
        f"/orders/{order['id']}/returns",
        lv.key("L2"),
        {"lines": [{"line_id": "1", "quantity": "1"}], "reason": "dented"},
    )
    r = await call(c, "POST", f"/returns/{ret['id']}/approve", lv.key("L2"))
    assert r.status_code == 403, r.text
    await ok(c, "POST", f"/returns/{ret['id']}/approve", lv.key("L1"))
    r = await call(c, "POST", f"/returns/{ret['id']}/receive", lv.key("L1"), {"warehouse_id": lv.id("WB")})
    assert r.status_code == 422, r.text
    received = await ok(
        c, "POST", f"/returns/{ret['id']}/receive", lv.key("L1"), {"warehouse_id": lv.id("W1")}
    )
    assert received["status"] == "received" and D(received["totals"]["refund_cash"]) == 90
    assert await balance(c, lv, cash_at_l1) == (820, 0)
    assert await stock(c, lv, "W1", "X") == (18, 0)
    assert await pool(c, lv, "L1") == {"cash": 820, "receipts": -1000, "sales": 180}
    await assert_ledger_balanced(app, lv.t)


async def test_a_level_2_dealer_never_sees_its_level_1_dealers_own_purchases(client, app, lv):
    c, t = client, lv.t
    filed = await ok(
        c,
        "POST",
        "/remittances",
        t.auth,
        {
            "customer_id": lv.id("L1"),
            "amount": "500.00",
            "bank_reference": "L1-BRAND",
            "remitted_on": await today(c, lv),
        },
    )
    await ok(c, "POST", f"/remittances/{filed['id']}/confirm", t.auth)
    # L1 buys from the brand (brand warehouse, brand price 100); the brand ships it.
    purchase = await ok(c, "POST", "/orders", lv.key("L1"), order_body(lv, "WB", X="2"))
    assert purchase["seller_customer_id"] is None and D(purchase["totals"]["cash"]) == 200
    # L1 cannot act as the seller on its own purchase; the brand's staff ship it.
    r = await call(
        c,
        "POST",
        f"/orders/{purchase['id']}/shipments",
        lv.key("L1"),
        {"lines": [{"line_id": "1", "quantity": "2"}]},
    )
    assert r.status_code == 403, r.text
    await ok(
        c,
        "POST",
        f"/orders/{purchase['id']}/shipments",
        t.auth,
        {"lines": [{"line_id": "1", "quantity": "2"}]},
    )
    assert await stock(c, lv, "WB", "X") == (98, 0)
    assert await stock(c, lv, "W1", "X") == (20, 0)
    # L2 sees none of it: not the order, not L1's brand account, not its remittance.
    assert (await c.get(f"{API}/orders/{purchase['id']}", headers=lv.key("L2"))).status_code == 404
    assert (await c.get(f"{API}/orders", headers=lv.key("L2"))).json()["items"] == []
    assert (await c.get(f"{API}/remittances/{filed['id']}", headers=lv.key("L2"))).status_code == 404
    accounts = (await c.get(f"{API}/fund-accounts", headers=lv.key("L2"))).json()["items"]
    assert accounts == []
    # L1 sees its own purchase as bought and nothing as sold.
    bought = (await c.get(f"{API}/orders", headers=lv.key("L1"), params={"role": "bought"})).json()
    assert [o["id"] for o in bought["items"]] == [purchase["id"]]
    assert (await c.get(f"{API}/orders", headers=lv.key("L1"), params={"role": "sold"})).json()["items"] == []
    await assert_ledger_balanced(app, t)


async def test_credit_granted_by_the_level_1_dealer_pays_the_rest_and_is_its_own(client, app, lv):
    c = client
    cash_at_l1 = (await remit_to(c, lv, "L2", "L1", "100.00"))["fund_account_id"]
    # Without a grant, the rest of an order beyond the cash at L1 is refused.
    r = await call(c, "POST", "/orders", lv.key("L2"), order_body(lv, "W1", X="2"))
    assert r.status_code == 409 and r.json()["code"] == "insufficient_funds", r.text
    # A brand credit profile does not pay a dealer's sale.
    r = await call(
        c, "POST", "/credit-profiles", lv.t.auth, {"customer_id": lv.id("L2"), "credit_limit": "1000"}
    )
    assert r.status_code == 201, r.text
    r = await call(c, "POST", "/orders", lv.key("L2"), order_body(lv, "W1", X="2"))
    assert r.status_code == 409 and r.json()["code"] == "insufficient_funds", r.text
    # L1 grants L2 200 of credit: its own grant, unseen by anyone else.
    grant = await ok(
        c, "POST", "/credit-grants", lv.key("L1"), {"customer_id": lv.id("L2"), "credit_limit": "200.00"}
    )
    for who in ("L1B", "L2"):
        assert (await c.get(f"{API}/credit-grants/{grant['id']}", headers=lv.key(who))).status_code == 404
        assert (await c.get(f"{API}/credit-grants", headers=lv.key(who))).json()["items"] == []
    assert (await c.get(f"{API}/credit-profiles/{grant['id']}", headers=lv.t.auth)).status_code == 404
    r = await call(
        c, "POST", "/credit-grants", lv.key("L1"), {"customer_id": lv.id("L1B"), "credit_limit": "1"}
    )
    assert r.status_code == 422, r.text
    r = await call(
        c, "POST", "/credit-grants", lv.key("L1"), {"customer_id": lv.id("L2"), "credit_limit": "1"}
    )
    assert r.status_code == 409, r.text
    # The order now takes 100 of cash at L1 and 80 on L1's credit.
    order = await ok(c, "POST", "/orders", lv.key("L2"), order_body(lv, "W1", X="2"))
    assert D(order["totals"]["cash"]) == 100 and D(order["totals"]["credit_amount"]) == 80
    assert await balance(c, lv, cash_at_l1) == (100, 100)
    # L2's assets show both pools: nothing at the brand but its brand credit, cash and L1's credit at L1.
    assets = (await c.get(f"{API}/customers/{lv.id('L2')}/assets", headers=lv.key("L2"))).json()
    pools = {p["owner_customer_id"]: p for p in assets["pools"]}
    assert set(pools) == {None, lv.id("L1")}
    assert assets["totals"] == [] and D(assets["credit"][0]["exposure"]["total"]) == 0
    at_l1 = pools[lv.id("L1")]
    assert [(k["kind"], D(k["balance"]), D(k["held"])) for k in at_l1["totals"]] == [("cash", 100, 100)]
    [standing] = at_l1["credit"]
    assert D(standing["credit_line"]) == 200 and D(standing["exposure"]["open_orders"]) == 80
    assert D(standing["available"]) == 120
    # Credit rules block at submit: a second order of 180 on credit does not fit L1's line.
    await ok(c, "POST", "/credit-rules", lv.t.auth, {"check_point": "submit", "over_limit": "block"})
    r = await call(c, "POST", "/orders", lv.key("L2"), order_body(lv, "W1", X="2"))
    assert r.status_code == 409 and r.json()["code"] == "credit_blocked", r.text
    # L1 raises the line with a temporary line; now it fits.
    await ok(
        c,
        "POST",
        f"/credit-grants/{grant['id']}/temporary-lines",
        lv.key("L1"),
        {"amount": "100.00", "expires_on": "2999-12-31"},
    )
    second = await ok(c, "POST", "/orders", lv.key("L2"), order_body(lv, "W1", X="2"))
    assert D(second["totals"]["credit_amount"]) == 180
    # Cancelling by the seller releases everything.
    await ok(c, "POST", f"/orders/{second['id']}/cancel", lv.key("L1"), {"reason": "no"})
    assert await stock(c, lv, "W1", "X") == (20, 2)
    await assert_ledger_balanced(app, lv.t)


async def test_a_level_1_dealer_cannot_touch_another_level_1_dealers_pool_or_orders(client, app, lv):
    c = client
    confirmed = await remit_to(c, lv, "L2B", "L1B", "500.00")
    order = await ok(c, "POST", "/orders", lv.key("L2B"), order_body(lv, "W1B", X="1"))
    grant = await ok(
        c, "POST", "/credit-grants", lv.key("L1B"), {"customer_id": lv.id("L2B"), "credit_limit": "9"}
    )
    l1 = lv.key("L1")
    for path in (
        f"/fund-accounts/{confirmed['fund_account_id']}",
        f"/remittances/{confirmed['id']}",
        f"/orders/{order['id']}",
        f"/credit-grants/{grant['id']}",
    ):
        assert (await c.get(f"{API}{path}", headers=l1)).status_code == 404, path
    for path, body in (
        (f"/orders/{order['id']}/approve", None),
        (f"/orders/{order['id']}/cancel", {}),
        (f"/orders/{order['id']}/shipments", {"lines": [{"line_id": "1", "quantity": "1"}]}),
        (f"/credit-grants/{grant['id']}/temporary-lines", {"amount": "1.00", "expires_on": "2999-12-31"}),
    ):
        r = await call(c, "POST", path, l1, body)
        assert r.status_code == 404, (path, r.text)
    r = await c.patch(
        f"{API}/credit-grants/{grant['id']}", headers={**l1, "If-Match": '"1"'}, json={"credit_limit": "99"}
    )
    assert r.status_code == 404, r.text
    for path in ("/orders", "/fund-accounts", "/remittances", "/credit-grants"):
        listed = (await c.get(f"{API}{path}", headers=l1)).json()["items"]
        assert listed == [], path
    # A remittance naming a dealer that does not supply the customer is refused.
    r = await call(
        c,
        "POST",
        "/remittances",
        lv.key("L2"),
        {
            "amount": "1.00",
            "bank_reference": "WRONG",
            "remitted_on": await today(c, lv),
            "seller_customer_id": lv.id("L1B"),
        },
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "seller_customer_id", r.text
    await assert_ledger_balanced(app, lv.t)


K = 7


async def test_concurrent_level_2_orders_against_cash_at_level_1_for_exactly_k(client, app, lv):
    """The buyer's cash at its level-1 dealer is funded for exactly K orders of one X (90): of 24
    concurrent orders exactly K pass, the rest are 409 ``insufficient_funds``."""
    c = client
    cash_at_l1 = (await remit_to(c, lv, "L2", "L1", str(D("90.00") * K)))["fund_account_id"]
    responses = await asyncio.gather(
        *[call(c, "POST", "/orders", lv.key("L2"), order_body(lv, "W1", X="1")) for _ in range(24)]
    )
    codes = [(r.status_code, r.json().get("code")) for r in responses]
    assert sum(r.status_code == 201 for r in responses) == K, codes
    assert codes.count((409, "insufficient_funds")) == 24 - K, codes
    assert await balance(c, lv, cash_at_l1) == (90 * K, 90 * K)
    assert await stock(c, lv, "W1", "X") == (20, K)
    async with tx(app, lv.t) as s:
        assert await s.scalar(select(func.count(Order.id))) == K
        owners = await s.execute(
            select(FundAccount.owner_customer_id, func.sum(FundAccount.balance)).group_by(
                FundAccount.owner_customer_id
            )
        )
        assert {o: D(total) for o, total in owners} == {UUID(lv.id("L1")): 0}
    await assert_ledger_balanced(app, lv.t)


async def test_concurrent_level_2_orders_on_the_level_1_grant_never_pass_a_check_only_one_fits(
    client, app, lv
):
    """Concurrent orders on a dealer's credit grant are checked one after the other (the grant's
    row is locked, the exposure read after): a grant of 300 and no cash give exactly three orders
    of 90 out of 12."""
    c = client
    await ok(
        c, "POST", "/credit-grants", lv.key("L1"), {"customer_id": lv.id("L2"), "credit_limit": "300.00"}
    )
    await ok(c, "POST", "/credit-rules", lv.t.auth, {"check_point": "submit", "over_limit": "block"})
    responses = await asyncio.gather(
        *[call(c, "POST", "/orders", lv.key("L2"), order_body(lv, "W1", X="1")) for _ in range(12)]
    )
    codes = [(r.status_code, r.json().get("code")) for r in responses]
    assert sum(r.status_code == 201 for r in responses) == 3, codes
    assert codes.count((409, "credit_blocked")) == 9, codes
    async with tx(app, lv.t) as s:
        occupied = await s.scalar(select(func.sum(Order.credit_amount)))
    assert occupied == D("270.00")
    assert await stock(c, lv, "W1", "X") == (20, 3)


async def test_a_dealer_tied_to_its_level_1_cannot_be_moved_away(client, lv):
    """Pools, grants and sales belong to a dealer; who sees them follows the tree. Moving L2 away
    from L1 while it keeps money, credit or open orders with L1 would hand them to another dealer
    and hide them from L1, so the move is a 409 until they are settled; L1 keeps its sale."""
    c = client
    cash_at_l1 = (await remit_to(c, lv, "L2", "L1", "1000.00"))["fund_account_id"]
    sale = await ok(c, "POST", "/orders", lv.key("L2"), order_body(lv, "W1", X="3"))
    customer = (await c.get(f"{API}/customers/{lv.id('L2')}", headers=lv.t.auth)).json()
    r = await c.patch(
        f"{API}/customers/{lv.id('L2')}",
        headers={**lv.t.auth, "If-Match": f'"{customer["version"]}"'},
        json={"parent_id": lv.id("L1B")},
    )
    assert (r.status_code, r.json()["code"]) == (409, "has_dealer_relations"), r.text
    assert "money" in r.json()["detail"]
    assert (await c.get(f"{API}/fund-accounts/{cash_at_l1}", headers=lv.key("L1B"))).status_code == 404
    assert (await c.get(f"{API}/orders/{sale['id']}", headers=lv.key("L1"))).status_code == 200
    after = (await c.get(f"{API}/customers/{lv.id('L2')}", headers=lv.t.auth)).json()
    assert (after["parent_id"], after["version"]) == (lv.id("L1"), customer["version"])


async def test_ids_elsewhere_in_the_tree_answer_like_unknown_ones(client, lv):
    """A dealer granting credit, or a dealer remitting to a supplier, learns nothing about
    customers outside its branch: another branch's id answers exactly as an unknown id."""
    c = client
    answers = []
    for other in (lv.id("L2B"), str(UUID(int=9))):
        r = await call(
            c, "POST", "/credit-grants", lv.key("L1"), {"customer_id": other, "credit_limit": "1.00"}
        )
        answers.append((r.status_code, r.json()["errors"][0]["field"], r.json()["errors"][0]["message"]))
        r = await call(
            c,
            "POST",
            "/remittances",
            lv.key("L2"),
            {
                "amount": "1.00",
                "bank_reference": f"X-{other}",
                "remitted_on": await today(c, lv),
                "seller_customer_id": other,
            },
        )
        answers.append((r.status_code, r.json()["errors"][0]["field"], r.json()["errors"][0]["message"]))
    assert answers[0] == answers[2] and answers[1] == answers[3], answers
    assert answers[0][0] == 422 and answers[1][0] == 422
