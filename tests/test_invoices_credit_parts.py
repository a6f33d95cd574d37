"""An invoice's credit part is its own lines' credit; goods that come back after they were
invoiced on credit get a red-letter credit on the receivable (a paid part goes back to cash), so
the customer never owes, nor has paid, for goods it returned, and exposure never goes below zero."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from typing import Any
from uuid import UUID, uuid4

from omnicloud.policies import credit
from omnicloud.policies.terms import service as terms
from omnicloud.pools.funds import service as funds
from omnicloud.pools.invoices import service as invoices
from omnicloud.pools.orders import returns as orders_returns
from tests.test_funds_api import API, assert_ledger_balanced, fund_cash, keyed, post, tx
from tests.test_invoices_api import credit_profile, issued, pay, requested, step
from tests.test_orders_api import basket, cash, ship, shop, submitted
from tests.test_orders_returns import decide, filed, receive


async def test_invoicing_a_line_paid_by_special_funds_opens_no_receivable(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, skus=2)
    d1 = s.d.ids["D1"]
    await credit_profile(client, t, d1, "1000.00")
    special = await post(
        client,
        t.auth,
        "/fund-accounts",
        {"customer_id": d1, "name": "S0 subsidy", "scope": {"sku_ids": [s.skus[0]]}},
    )
    r = await client.post(
        f"{API}/fund-adjustments",
        headers=keyed(t.auth, str(uuid4())),
        json={"fund_account_id": special["id"], "amount": "100.00", "reason": "subsidy"},
    )
    assert r.status_code in (200, 201), r.text
    o = await submitted(client, s.d.keys["D1"], basket(s, "10", "10"))
    l1, l2 = o["lines"]
    assert (D(l1["special"]), D(l1["credit"])) == (100, 0)
    assert (D(l2["special"]), D(l2["credit"])) == (0, 100)
    assert (await ship(client, t.auth, o["id"], l1="10", l2="10")).status_code == 201

    inv = await issued(
        client, t, (await requested(client, s.d.keys["D1"], [(l1["id"], "10")]))["id"], "INV-S-1"
    )
    assert D(inv["invoice"]["credit_amount"]) == 0  # line 1 owed nothing on credit
    inv = await issued(
        client, t, (await requested(client, s.d.keys["D1"], [(l2["id"], "10")]))["id"], "INV-S-2"
    )
    assert D(inv["invoice"]["credit_amount"]) == 100


async def test_exposure_never_goes_below_zero_when_invoiced_goods_come_back(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, skus=1)
    d1 = s.d.ids["D1"]
    await credit_profile(client, t, d1, "100.00")
    o = await submitted(client, s.d.keys["D1"], basket(s, "10"))  # 100 on credit
    assert (await ship(client, t.auth, o["id"], l1="10")).status_code == 201
    inv = await issued(
        client, t, (await requested(client, s.d.keys["D1"], [(o["lines"][0]["id"], "10")]))["id"], "N-1"
    )
    cash_id = await fund_cash(client, t, d1, "100.00", "PAYREC")
    r = await pay(client, s.d.keys["D1"], inv["invoice"]["receivable_id"], "100.00")
    assert r.status_code in (200, 201), r.text
    ret = await filed(client, s.d.keys["D1"], o["id"], l1="10")
    assert (await decide(client, t.auth, ret["id"], "approve")).status_code == 200
    assert (await receive(client, t.auth, ret["id"], s.warehouse_id)).status_code == 200
    async with tx(app, t) as db:
        e = await terms.exposure_inputs(db, UUID(d1))
    assert credit.exposure(e) == 0 and e.shipped_not_invoiced == 0 and e.receivables == 0, e
    # The 100 paid on the receivable went back to cash, and the receivable shows the credit.
    rec = (await client.get(f"{API}/receivables/{inv['invoice']['receivable_id']}", headers=t.auth)).json()
    assert (D(rec["paid_amount"]), D(rec["credited_amount"]), D(rec["outstanding"]), rec["status"]) == (
        0,
        100,
        0,
        "paid",
    )
    assert await cash(client, t, cash_id) == (100, 0)
    await assert_ledger_balanced(app, t)


async def test_a_return_after_invoicing_takes_the_goods_off_what_is_owed(client, app, tenant_a):
    """Shipped 10 on credit (10.00 each), invoiced 6: returning 5 comes out of the 4 not invoiced
    first, so 1 unit's 10.00 is credited on the open receivable, and nothing moves in cash."""
    t = tenant_a
    s = await shop(client, t, skus=1)
    d1 = s.d.ids["D1"]
    await credit_profile(client, t, d1, "100.00")
    o = await submitted(client, s.d.keys["D1"], basket(s, "10"))
    assert (await ship(client, t.auth, o["id"], l1="10")).status_code == 201
    inv = await issued(
        client, t, (await requested(client, s.d.keys["D1"], [(o["lines"][0]["id"], "6")]))["id"], "N-2"
    )
    rid = inv["invoice"]["receivable_id"]
    ret = await filed(client, s.d.keys["D1"], o["id"], l1="5")
    assert (await decide(client, t.auth, ret["id"], "approve")).status_code == 200
    key = str(uuid4())
    for _ in range(2):  # a retried receipt credits nothing more
        r = await receive(client, t.auth, ret["id"], s.warehouse_id, key=key)
        assert r.status_code == 200, r.text
    rec = (await client.get(f"{API}/receivables/{rid}", headers=t.auth)).json()
    assert (D(rec["amount"]), D(rec["credited_amount"]), D(rec["outstanding"]), rec["status"]) == (
        60,
        10,
        50,
        "open",
    )
    async with tx(app, t) as db:
        e = await terms.exposure_inputs(db, UUID(d1))
    assert (e.shipped_not_invoiced, e.receivables, credit.exposure(e)) == (0, 50, 50)  # the 5 kept
    await assert_ledger_balanced(app, t)


async def test_goods_returned_while_a_request_waits_are_not_invoiced(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, skus=1)
    d1 = s.d.ids["D1"]
    await credit_profile(client, t, d1, "100.00")
    o = await submitted(client, s.d.keys["D1"], basket(s, "10"))  # 100 on credit
    assert (await ship(client, t.auth, o["id"], l1="10")).status_code == 201
    line_id = o["lines"][0]["id"]
    req = await requested(client, s.d.keys["D1"], [(line_id, "10")])
    ret = await filed(client, s.d.keys["D1"], o["id"], l1="5")
    assert (await decide(client, t.auth, ret["id"], "approve")).status_code == 200
    assert (await receive(client, t.auth, ret["id"], s.warehouse_id)).status_code == 200
    r = await step(client, t.auth, req["id"], "approve")
    assert r.status_code == 200, r.text
    r = await step(client, t.auth, req["id"], "issue", {"invoice_number": "N-PEND"})
    assert (r.status_code, r.json()["code"], r.json()["errors"][0]["field"]) == (
        409,
        "returned_since_requested",
        "lines[0]",
    )
    assert (await client.get(f"{API}/invoice-requests/{req['id']}", headers=t.auth)).json()[
        "status"
    ] == "approved"
    # The requester cannot cancel an approved request; the brand rejects it and the dealer asks again.
    assert (await step(client, t.auth, req["id"], "reject", {"reason": "goods came back"})).status_code == 200
    inv = await issued(client, t, (await requested(client, s.d.keys["D1"], [(line_id, "5")]))["id"], "N-KEPT")
    rec = (await client.get(f"{API}/receivables/{inv['invoice']['receivable_id']}", headers=t.auth)).json()
    assert D(rec["outstanding"]) == 50
    async with tx(app, t) as db:
        assert credit.exposure(await terms.exposure_inputs(db, UUID(d1))) == 50


async def test_a_receipt_and_a_payment_of_the_same_goods_never_deadlock(client, app, tenant_a, monkeypatch):
    """A return's receipt takes its order, the cash (refund) and then the receivable (red-letter
    credit); a payment takes the invoiced orders first, so the two wait in line (the pauses only
    widen the window in which they would otherwise cross on PostgreSQL)."""
    t = tenant_a
    s = await shop(client, t, skus=1)
    d1 = s.d.ids["D1"]
    await credit_profile(client, t, d1, "1000.00")
    await fund_cash(client, t, d1, "100.00", "C1")
    o = await submitted(client, s.d.keys["D1"], basket(s, "20"))  # 100 cash, 100 credit
    assert (await ship(client, t.auth, o["id"], l1="20")).status_code == 201
    inv = await issued(
        client, t, (await requested(client, s.d.keys["D1"], [(o["lines"][0]["id"], "20")]))["id"], "DL"
    )
    await fund_cash(client, t, d1, "500.00", "C2")
    ret = await filed(client, s.d.keys["D1"], o["id"], l1="10")
    assert (await decide(client, t.auth, ret["id"], "approve")).status_code == 200
    real_plan = funds.plan_payment

    async def slow_plan(*a: Any, **kw: Any) -> Any:
        await asyncio.sleep(0.5)
        return await real_plan(*a, **kw)

    monkeypatch.setattr(invoices.funds, "plan_payment", slow_plan)
    listeners = list(orders_returns._RECEIPT_LISTENERS)

    async def slow_listener(session: Any, order: Any, *, return_id: Any) -> None:
        await asyncio.sleep(0.5)
        for fn in listeners:
            await fn(session, order, return_id=return_id)

    monkeypatch.setattr(orders_returns, "_RECEIPT_LISTENERS", [slow_listener])

    async def receiving() -> Any:
        await asyncio.sleep(0.1)
        return await receive(client, t.auth, ret["id"], s.warehouse_id)

    paid, received = await asyncio.gather(
        pay(client, s.d.keys["D1"], inv["invoice"]["receivable_id"], "10.00"), receiving()
    )
    assert paid.status_code in (200, 201), paid.text
    assert received.status_code == 200, received.text
    await assert_ledger_balanced(app, t)
