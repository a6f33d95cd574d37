"""Returns (退货) through the real app: a return of part of a line paid by fee + rebate + cash
restores each account (the fees with their original expiry), brings the stock back, writes
``returned`` sales facts and takes the credit share out of the exposure; a retried receipt never
refunds twice; the rules of filing, deciding and receiving; dealers see their subtree only."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D
from typing import Any
from uuid import UUID, uuid4

import httpx
from sqlalchemy import select

from omnicloud.policies.terms import service as terms
from omnicloud.pools.funds import service as funds
from omnicloud.pools.funds.schemas import Reference
from omnicloud.pools.sales.models import SalesFact
from tests.fixtures import TenantHandle
from tests.test_funds_api import API, TODAY, assert_ledger_balanced, fund_cash, keyed, post, tx
from tests.test_orders_api import Shop, basket, cash, ship, shop, stock, submitted


async def file_return(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    order_id: str,
    *,
    key: str | None = None,
    **quantities: str,
) -> httpx.Response:
    lines = [{"line_id": k.removeprefix("l"), "quantity": v} for k, v in quantities.items()]
    return await client.post(
        f"{API}/orders/{order_id}/returns",
        headers=keyed(auth, key or str(uuid4())),
        json={"lines": lines, "reason": "damaged in transit"},
    )


async def filed(
    client: httpx.AsyncClient, auth: dict[str, str], order_id: str, **quantities: str
) -> dict[str, Any]:
    r = await file_return(client, auth, order_id, **quantities)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def decide(
    client: httpx.AsyncClient, auth: dict[str, str], return_id: str, action: str, body: Any = None
) -> httpx.Response:
    return await client.post(
        f"{API}/returns/{return_id}/{action}", headers=keyed(auth, str(uuid4())), json=body or {}
    )


async def receive(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    return_id: str,
    warehouse_id: str,
    *,
    key: str | None = None,
) -> httpx.Response:
    return await client.post(
        f"{API}/returns/{return_id}/receive",
        headers=keyed(auth, key or str(uuid4())),
        json={"warehouse_id": warehouse_id, "lot_no": "RET"},
    )


async def stock_total(client: httpx.AsyncClient, s: Shop, sku: str) -> tuple[D, D]:
    """On hand and reserved of ``sku`` in the shop's warehouse, every lot together."""
    r = await client.get(
        f"{API}/stock", headers=s.t.auth, params={"warehouse_id": s.warehouse_id, "sku_id": sku}
    )
    levels = r.json()["items"]
    return sum((D(x["on_hand"]) for x in levels), D(0)), sum((D(x["reserved"]) for x in levels), D(0))


async def balances(
    client: httpx.AsyncClient, t: TenantHandle, customer_id: str
) -> dict[str, tuple[D, D, str | None]]:
    """Every fund account of the customer: (balance, held, expires_on) by ``kind:expiry``."""
    r = await client.get(
        f"{API}/fund-accounts", headers=t.auth, params={"customer_id": customer_id, "limit": 200}
    )
    return {
        f"{a['kind']}:{a['expires_on']}": (D(a["balance"]), D(a["held"]), a["expires_on"])
        for a in r.json()["items"]
    }


async def grant_fee(
    client: httpx.AsyncClient, t: TenantHandle, customer_id: str, amount: str, days: int
) -> str:
    body = {
        "customer_id": customer_id,
        "amount": amount,
        "fee_type": "display",
        "source": "campaign",
        "expires_on": (TODAY + timedelta(days=days)).isoformat(),
    }
    grant = await post(client, keyed(t.auth, f"grant-{uuid4()}"), "/fee-grants", body)
    return str(grant["fund_account"]["expires_on"])


async def fee_rebate_and_cash(client: httpx.AsyncClient, app: Any, s: Shop) -> dict[str, str]:
    """D1 may pay 20% of a line from fees and 10% of an order from rebate; it holds fee accounts
    P1 15.00 (expiring in 30 days) and P2 100.00 (in 60), rebate 50.00 and cash 100.00."""
    t, d1 = s.t, s.d.ids["D1"]
    await post(client, t.auth, "/offset-ratios", {"customer_id": d1, "ratio": "0.2"})
    await post(
        client,
        t.auth,
        "/rebate-policies",
        {
            "code": "Q",
            "name": "Quarterly",
            "period": "quarter",
            "customers": {"customer_ids": [d1]},
            "mode": "retroactive",
            "target": "100000",
            "tiers": [{"achievement": "1", "rate": "0.02"}],
            "usage_cap_ratio": "0.1",
        },
    )
    p1 = await grant_fee(client, t, d1, "15.00", 30)
    p2 = await grant_fee(client, t, d1, "100.00", 60)
    async with tx(app, t) as db:
        await funds.credit_rebate(
            db,
            customer_id=UUID(d1),
            sales_org_id=None,
            amount=D("50.00"),
            reference=Reference(type="rebate_settlement", id=uuid4()),
            key="returns-rebate",
        )
    cash_id = await fund_cash(client, t, d1, "100.00", "RET-CASH")
    return {
        "p1": f"fee:{p1}",
        "p2": f"fee:{p2}",
        "rebate": "rebate:None",
        "cash": "cash:None",
        "cash_id": cash_id,
    }


async def test_a_return_restores_fee_rebate_and_cash_the_way_they_paid(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, skus=1)
    acc = await fee_rebate_and_cash(client, app, s)
    d1 = s.d.keys["D1"]
    # 100.00: fee 20 (P1 15, P2 5), rebate 10, cash 70
    o = await submitted(client, d1, basket(s, "10", use_fees="100.00", use_rebate="100.00"))
    totals = {k: D(v) for k, v in o["totals"].items()}
    assert (totals["fee_offset"], totals["rebate"], totals["cash"], totals["credit_amount"]) == (
        20,
        10,
        70,
        0,
    )
    line = o["lines"][0]
    assert (
        D(line["fee_offset"]),
        D(line["rebate"]),
        D(line["cash"]),
        D(line["special"]),
        D(line["credit"]),
    ) == (
        20,
        10,
        70,
        0,
        0,
    )
    r = await ship(client, t.auth, o["id"], l1="10")
    assert r.status_code == 201, r.text
    before = await balances(client, t, s.d.ids["D1"])
    assert before[acc["p1"]][:2] == (0, 0) and before[acc["p2"]][:2] == (95, 0)
    assert before[acc["rebate"]][:2] == (40, 0) and before[acc["cash"]][:2] == (30, 0)
    assert await stock(client, s, s.skus[0]) == (90, 0)

    ret = await filed(client, d1, o["id"], l1="4")
    assert (ret["status"], ret["allowed_actions"]) == ("requested", ["approve", "reject", "cancel"])
    assert ret["number"].startswith("RT") and D(ret["totals"]["amount"]) == 0
    got = (await client.get(f"{API}/orders/{o['id']}", headers=d1)).json()
    assert (D(got["lines"][0]["returning_quantity"]), D(got["lines"][0]["returned_quantity"])) == (4, 0)
    assert await balances(client, t, s.d.ids["D1"]) == before  # filing moves nothing

    r = await decide(client, d1, ret["id"], "approve")
    assert r.status_code == 403  # dealers do not approve returns
    r = await decide(client, t.auth, ret["id"], "approve")
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    r = await receive(client, d1, ret["id"], s.warehouse_id)
    assert r.status_code == 403  # dealers do not receive goods into brand warehouses

    key = str(uuid4())
    r = await receive(client, t.auth, ret["id"], s.warehouse_id, key=key)
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["status"], done["warehouse_id"], done["allowed_actions"]) == ("received", s.warehouse_id, [])
    assert {k: D(v) for k, v in done["totals"].items()} == {
        "amount": 40,
        "refund_fee": 8,
        "refund_rebate": 4,
        "refund_special": 0,
        "refund_cash": 28,
        "credit": 0,
    }
    after = await balances(client, t, s.d.ids["D1"])
    # The fee goes back to the accounts it came from, latest expiry first: P2's 5, then 3 to P1;
    # both keep their own expiry.
    assert after[acc["p2"]] == (D(100), D(0), acc["p2"].split(":")[1])
    assert after[acc["p1"]] == (D(3), D(0), acc["p1"].split(":")[1])
    assert after[acc["rebate"]][:2] == (44, 0) and after[acc["cash"]][:2] == (58, 0)
    assert await stock_total(client, s, s.skus[0]) == (94, 0)
    r = await client.get(
        f"{API}/stock",
        headers=t.auth,
        params={"warehouse_id": s.warehouse_id, "sku_id": s.skus[0], "lot_no": "RET"},
    )
    assert [D(level["on_hand"]) for level in r.json()["items"]] == [4]

    replay = await receive(client, t.auth, ret["id"], s.warehouse_id, key=key)
    assert replay.status_code == 200 and replay.headers.get("Idempotent-Replayed") == "true"
    again = await receive(client, t.auth, ret["id"], s.warehouse_id)
    assert again.status_code == 409 and again.json()["code"] == "illegal_transition"
    assert await balances(client, t, s.d.ids["D1"]) == after  # a retried receipt refunds nothing more
    assert await stock_total(client, s, s.skus[0]) == (94, 0)

    order = (await client.get(f"{API}/orders/{o['id']}", headers=t.auth)).json()
    assert (D(order["lines"][0]["returned_quantity"]), D(order["lines"][0]["returning_quantity"])) == (4, 0)
    assert (D(order["totals"]["refunded_amount"]), order["status"]) == (40, "shipped")
    assert [h["action"] for h in order["history"]][-3:] == [
        "return_requested",
        "return_approved",
        "return_received",
    ]

    # The rest of the line can come back too, and the parts add up to the line exactly.
    rest = await filed(client, t.auth, o["id"], l1="6")
    assert (await decide(client, t.auth, rest["id"], "approve")).status_code == 200
    r = await receive(client, t.auth, rest["id"], s.warehouse_id)
    assert r.status_code == 200, r.text
    final = await balances(client, t, s.d.ids["D1"])
    assert final[acc["p1"]][:2] == (15, 0) and final[acc["p2"]][:2] == (100, 0)
    assert final[acc["rebate"]][:2] == (50, 0) and final[acc["cash"]][:2] == (100, 0)
    r = await file_return(client, t.auth, o["id"], l1="1")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "lines[0].quantity"

    async with tx(app, t) as db:
        facts = (
            await db.execute(
                select(
                    SalesFact.kind, SalesFact.quantity, SalesFact.amount, SalesFact.fee, SalesFact.rebate
                ).order_by(SalesFact.at)
            )
        ).all()
    assert [tuple(f) for f in facts] == [
        ("shipped", 10, 100, 20, 10),
        ("returned", -4, -40, -8, -4),
        ("returned", -6, -60, -12, -6),
    ]
    await assert_ledger_balanced(app, t)


async def test_return_rules_and_decisions(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    await fund_cash(client, t, s.d.ids["D1"], "500.00", "RULES")
    await fund_cash(client, t, s.d.ids["D1a"], "100.00", "RULES-A")
    d1, d2 = s.d.keys["D1"], s.d.keys["D2"]
    o = await submitted(client, d1, basket(s, "5", "5"))
    r = await file_return(client, d1, o["id"], l1="1")
    assert r.status_code == 409 and r.json()["code"] == "not_returnable"  # nothing shipped yet
    assert (await ship(client, t.auth, o["id"], l1="3")).status_code == 201

    r = await client.post(
        f"{API}/orders/{o['id']}/returns",
        headers=d1,
        json={"lines": [{"line_id": "1", "quantity": "1"}], "reason": "x"},
    )
    assert r.status_code == 428 and r.json()["code"] == "idempotency_key_required"
    for bad, field in (
        ({"l1": "4"}, "lines[0].quantity"),
        ({"l2": "1"}, "lines[0].quantity"),
        ({"l9": "1"}, "lines[0].line_id"),
    ):
        r = await file_return(client, d1, o["id"], **bad)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text
    r = await file_return(client, d2, o["id"], l1="1")
    assert r.status_code == 404  # another dealer's order does not exist for D2

    first = await filed(client, d1, o["id"], l1="2")
    r = await file_return(client, d1, o["id"], l1="2")
    assert r.status_code == 422  # 3 shipped, 2 claimed: only 1 left
    second = await filed(client, d1, o["id"], l1="1")
    r = await decide(client, t.auth, first["id"], "reject", {"reason": "not damaged"})
    assert (
        r.status_code == 200
        and r.json()["status"] == "rejected"
        and r.json()["decision_reason"] == "not damaged"
    )
    again = await filed(client, d1, o["id"], l1="2")  # the rejected quantity may be returned again
    r = await decide(client, d1, second["id"], "cancel", {"reason": "found it"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    for action in ("approve", "reject", "cancel"):
        r = await decide(client, t.auth, second["id"], action)
        assert r.status_code == 409 and r.json()["code"] == "illegal_transition"
    r = await receive(client, t.auth, again["id"], s.warehouse_id)
    assert r.status_code == 409 and r.json()["code"] == "illegal_transition"  # not approved yet
    assert (await decide(client, t.auth, again["id"], "approve")).status_code == 200
    own = await post(
        client, t.auth, "/warehouses", {"code": "D1W", "name": "D1's", "owner_customer_id": s.d.ids["D1"]}
    )
    r = await receive(client, t.auth, again["id"], own["id"])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "warehouse_id"
    r = await client.post(
        f"{API}/returns/{again['id']}/receive", headers=t.auth, json={"warehouse_id": s.warehouse_id}
    )
    assert r.status_code == 428
    got = (await client.get(f"{API}/returns/{again['id']}", headers=d1)).json()
    assert (got["status"], got["version"]) == ("approved", 2)

    # Dealers see the returns of their subtree; they act on their own only.
    child = await submitted(client, s.d.keys["D1a"], basket(s, "1"))
    assert (await ship(client, t.auth, child["id"], l1="1")).status_code == 201
    r = await file_return(client, d1, child["id"], l1="1")
    assert r.status_code == 403  # D1 sees its sub-dealer's order but does not return its goods
    theirs = await filed(client, s.d.keys["D1a"], child["id"], l1="1")
    r = await decide(client, d1, theirs["id"], "cancel")
    assert r.status_code == 403 and r.json()["code"] == "not_your_return"
    listed = (await client.get(f"{API}/returns", headers=d1)).json()["items"]
    assert {i["id"] for i in listed} == {first["id"], second["id"], again["id"], theirs["id"]}
    assert (await client.get(f"{API}/returns", headers=d2)).json()["items"] == []
    assert (await client.get(f"{API}/returns/{theirs['id']}", headers=d2)).status_code == 404
    r = await client.get(f"{API}/returns", headers=t.auth, params={"status": "approved", "order_id": o["id"]})
    assert [i["id"] for i in r.json()["items"]] == [again["id"]]
    await assert_ledger_balanced(app, t)


async def test_a_return_of_goods_on_credit_leaves_the_exposure(client, app, tenant_a):
    """Exposure (DOMAIN §3): an order's credit part is an open order while unshipped, becomes
    shipped-not-invoiced as it ships, and a return takes its credit share out."""
    t = tenant_a
    s = await shop(client, t, skus=1)
    d1 = s.d.ids["D1"]
    await post(client, t.auth, "/credit-profiles", {"customer_id": d1, "credit_limit": "1000.00"})
    cash_id = await fund_cash(client, t, d1, "40.00", "ON-CREDIT")
    o = await submitted(client, s.d.keys["D1"], basket(s, "10"))  # 100: cash 40, credit 60

    async def exposure() -> tuple[D, D]:
        async with tx(app, t) as db:
            e = await terms.exposure_inputs(db, UUID(d1))
        return e.open_orders, e.shipped_not_invoiced

    assert await exposure() == (60, 0)
    assert (await ship(client, t.auth, o["id"], l1="5")).status_code == 201
    assert await exposure() == (30, 30)
    assert (await ship(client, t.auth, o["id"], l1="5")).status_code == 201
    assert await exposure() == (0, 60)
    ret = await filed(client, t.auth, o["id"], l1="5")
    assert await exposure() == (0, 60)  # a request moves nothing
    assert (await decide(client, t.auth, ret["id"], "approve")).status_code == 200
    r = await receive(client, t.auth, ret["id"], s.warehouse_id)
    assert r.status_code == 200, r.text
    assert {k: D(v) for k, v in r.json()["totals"].items()} == {
        "amount": 50,
        "refund_fee": 0,
        "refund_rebate": 0,
        "refund_special": 0,
        "refund_cash": 20,
        "credit": 30,
    }
    assert await exposure() == (0, 30)
    order = (await client.get(f"{API}/orders/{o['id']}", headers=t.auth)).json()["totals"]
    assert (D(order["credit_shipped"]), D(order["credit_returned"]), D(order["refunded_amount"])) == (
        60,
        30,
        20,
    )
    assert await cash(client, t, cash_id) == (20, 0)
    await assert_ledger_balanced(app, t)
