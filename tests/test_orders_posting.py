"""Partial cancel, the posting point and the credit check points through the real app.

- Cancelling a partially shipped order closes the rest (``closed``): credit first, then the
  frozen money, then the unshipped stock holds (DOMAIN §6).
- ``posting_point=approval`` deducts every freeze at approval (at submit without approval);
  shipments then post nothing and a cancel refunds instead of voiding.
- Credit rules per check point (DOMAIN §3): warn at submit, block at shipment, and a temporary
  line makes the shipment pass; a block at approval changes nothing.
"""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import select

from omnicloud.policies.terms import service as terms
from omnicloud.pools.funds.models import FundHold
from tests.fixtures import TenantHandle
from tests.test_funds_api import API, assert_ledger_balanced, fund_cash, post, tx
from tests.test_orders_api import _floor, act, basket, cash, ship, shop, stock, submit, submitted


async def exposure(app: Any, t: TenantHandle, customer_id: str) -> tuple[D, D]:
    async with tx(app, t) as db:
        e = await terms.exposure_inputs(db, UUID(customer_id))
    return e.open_orders, e.shipped_not_invoiced


async def set_posting_point(client: httpx.AsyncClient, t: TenantHandle, point: str) -> dict[str, Any]:
    current = (await client.get(f"{API}/order-settings", headers=t.auth)).json()
    r = await client.put(
        f"{API}/order-settings",
        headers={**t.auth, "If-Match": f'"{current["version"]}"'},
        json={"posting_point": point},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


# --- partial cancel ---------------------------------------------------------------------------


async def test_cancelling_a_partly_shipped_order_closes_the_rest_credit_first(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    d1 = s.d.ids["D1"]
    await post(client, t.auth, "/credit-profiles", {"customer_id": d1, "credit_limit": "1000.00"})
    cash_id = await fund_cash(client, t, d1, "100.00", "CLOSE")
    o = await submitted(client, s.d.keys["D1"], basket(s, "10", "5"))  # 150: cash 100, credit 50
    totals = o["totals"]
    assert (D(totals["cash"]), D(totals["credit_amount"]), D(totals["frozen_amount"])) == (100, 50, 100)
    assert await exposure(app, t, d1) == (50, 0)
    r = await ship(client, t.auth, o["id"], l1="4")
    assert r.status_code == 201, r.text
    part = r.json()
    # Line 1 (100) is paid by cash 66.67 and credit 33.33, line 2 (50) by cash 33.33 and credit 16.67
    # (the plan spreads cash over the lines by what they owe): 4 of 10 units carry 26.67 + 13.33.
    assert (D(part["totals"]["posted_amount"]), D(part["totals"]["credit_shipped"])) == (
        D("26.67"),
        D("13.33"),
    )
    assert await cash(client, t, cash_id) == (D("73.33"), D("73.33"))
    assert await exposure(app, t, d1) == (D("36.67"), D("13.33"))

    r = await act(client, s.d.keys["D1a"], o["id"], "cancel")
    assert r.status_code == 404  # a sub-dealer does not see its parent's orders
    r = await act(client, s.d.keys["D1"], o["id"], "cancel", {"reason": "the rest is not needed"})
    assert r.status_code == 200, r.text
    closed = r.json()
    assert (closed["status"], closed["allowed_actions"]) == ("closed", [])
    assert closed["history"][-1]["action"] == "cancel"
    assert closed["history"][-1]["detail"] == {
        "released_credit": "36.67",
        "reason": "the rest is not needed",
        "released": "73.33",
    }
    assert await exposure(app, t, d1) == (0, D("13.33"))  # the shipped credit stays
    assert await cash(client, t, cash_id) == (D("73.33"), 0)
    assert await stock(client, s, s.skus[0]) == (96, 0)
    assert await stock(client, s, s.skus[1]) == (100, 0)
    r = await ship(client, t.auth, o["id"], l1="1")
    assert r.status_code == 409 and r.json()["code"] == "illegal_transition"
    r = await act(client, s.d.keys["D1"], o["id"], "cancel")
    assert r.status_code == 409 and r.json()["code"] == "illegal_transition"
    async with tx(app, t) as db:
        states = (await db.scalars(select(FundHold.state).where(FundHold.ref_id == UUID(o["id"])))).all()
    assert sorted(states) == ["posted", "voided"]
    await assert_ledger_balanced(app, t)


# --- posting point ----------------------------------------------------------------------------


async def test_order_settings_need_if_match_and_a_known_posting_point(client, tenant_a):
    t = tenant_a
    r = await client.get(f"{API}/order-settings", headers=t.auth)
    assert r.json() == {"posting_point": "shipment", "version": 0, "updated_by": None, "updated_at": None}
    r = await client.put(f"{API}/order-settings", headers=t.auth, json={"posting_point": "approval"})
    assert r.status_code == 428
    r = await client.put(
        f"{API}/order-settings", headers={**t.auth, "If-Match": '"3"'}, json={"posting_point": "approval"}
    )
    assert r.status_code == 412
    r = await client.put(
        f"{API}/order-settings", headers={**t.auth, "If-Match": '"0"'}, json={"posting_point": "invoice"}
    )
    assert r.status_code == 400 or r.status_code == 422
    first = await set_posting_point(client, t, "approval")
    assert (first["posting_point"], first["version"]) == ("approval", 1)
    r = await client.put(
        f"{API}/order-settings", headers={**t.auth, "If-Match": '"0"'}, json={"posting_point": "shipment"}
    )
    assert r.status_code == 412  # stale
    assert (await set_posting_point(client, t, "shipment"))["version"] == 2
    s = await shop(client, t, skus=1)
    r = await client.put(
        f"{API}/order-settings",
        headers={**s.d.keys["D1"], "If-Match": '"2"'},
        json={"posting_point": "approval"},
    )
    assert r.status_code == 403


async def test_posting_at_approval_deducts_early_and_cancels_refund(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, skus=1)
    cash_id = await fund_cash(client, t, s.d.ids["D1"], "500.00", "AT-APPROVAL")
    d1 = s.d.keys["D1"]
    early = await submitted(client, d1, basket(s, "5"))  # submitted under the default: posts at shipment
    await set_posting_point(client, t, "approval")

    o = await submitted(client, d1, basket(s, "10"))  # needs no approval: posted at submit
    assert (o["status"], o["posting_point"], D(o["totals"]["posted_amount"])) == ("approved", "approval", 100)
    assert await cash(client, t, cash_id) == (400, 50)  # the early order's 50 is still frozen
    r = await ship(client, t.auth, o["id"], l1="4")
    assert r.status_code == 201 and r.json()["history"][-1]["detail"]["posted"] == "0.00"
    assert await cash(client, t, cash_id) == (400, 50)
    r = await act(client, d1, o["id"], "cancel")  # partial cancel: the unshipped 60 comes back
    assert r.status_code == 200 and r.json()["status"] == "closed", r.text
    assert r.json()["history"][-1]["detail"]["refunded"] == "60.00"
    assert D(r.json()["totals"]["refunded_amount"]) == 60
    assert await cash(client, t, cash_id) == (460, 50)
    assert await stock(client, s, s.skus[0]) == (96, 5)

    whole = await submitted(client, d1, basket(s, "3"))
    assert await cash(client, t, cash_id) == (430, 50)
    r = await act(client, d1, whole["id"], "cancel")  # approved and posted: refunded, not voided
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert await cash(client, t, cash_id) == (460, 50)

    r = await ship(client, t.auth, early["id"], l1="5")  # the early order keeps its posting point
    assert r.status_code == 201 and r.json()["posting_point"] == "shipment"
    assert await cash(client, t, cash_id) == (410, 0)

    await _floor(client, s, "11.00", "needs_approval")
    waiting = await submitted(client, d1, basket(s, "2"))
    assert waiting["status"] == "pending_approval" and D(waiting["totals"]["posted_amount"]) == 0
    assert await cash(client, t, cash_id) == (410, 20)
    r = await act(client, t.auth, waiting["id"], "approve")
    assert r.status_code == 200 and D(r.json()["totals"]["posted_amount"]) == 20
    assert r.json()["history"][-1]["detail"] == {"posted": "20.00"}
    assert await cash(client, t, cash_id) == (390, 0)
    rejected = await submitted(client, d1, basket(s, "1"))
    r = await act(client, t.auth, rejected["id"], "reject")
    assert r.status_code == 200 and await cash(client, t, cash_id) == (390, 0)
    await assert_ledger_balanced(app, t)


# --- credit check points ----------------------------------------------------------------------


async def test_the_domain_credit_example_warns_at_submit_and_blocks_at_shipment(client, app, tenant_a):
    """DOMAIN §3: limit 100,000; receivables 60,000 (here: goods shipped on credit and not yet
    invoiced, which count the same); open orders 25,000; a new order of 20,000 is over by 5,000:
    warn at submit, block at shipment; a temporary line of +10,000 makes it pass."""
    t = tenant_a
    s = await shop(client, t, skus=1, stock="20000")
    d1 = s.d.ids["D1"]
    profile = await post(client, t.auth, "/credit-profiles", {"customer_id": d1, "credit_limit": "100000.00"})
    await post(client, t.auth, "/credit-rules", {"check_point": "submit", "over_limit": "warn"})
    await post(client, t.auth, "/credit-rules", {"check_point": "shipment", "over_limit": "block"})
    dealer = s.d.keys["D1"]
    shipped = await submitted(client, dealer, basket(s, "6000"))
    assert (await ship(client, t.auth, shipped["id"], l1="6000")).status_code == 201
    await submitted(client, dealer, basket(s, "2500"))
    assert await exposure(app, t, d1) == (25000, 60000)

    o = await submitted(client, dealer, basket(s, "2000"))
    assert (o["status"], o["credit_action"]) == ("approved", "warn")
    assert o["credit_reasons"] == ["over the credit line by 5000.00"]
    before = (await client.get(f"{API}/orders/{o['id']}", headers=t.auth)).json()
    r = await ship(client, t.auth, o["id"], l1="1000")
    assert r.status_code == 409 and r.json()["code"] == "credit_blocked", r.text
    assert "shipment" in r.json()["detail"] and r.json()["errors"][0]["field"] == "credit"
    assert (await client.get(f"{API}/orders/{o['id']}", headers=t.auth)).json() == before
    assert await stock(client, s, s.skus[0]) == (14000, 4500)

    await post(
        client,
        t.auth,
        f"/credit-profiles/{profile['id']}/temporary-lines",
        {"amount": "10000.00", "expires_on": "2099-12-31"},
    )
    r = await ship(client, t.auth, o["id"], l1="1000")
    assert r.status_code == 201 and r.json()["status"] == "partially_shipped", r.text
    assert await exposure(app, t, d1) == (35000, 70000)


async def test_a_block_at_approval_changes_nothing_and_a_warning_is_recorded(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, skus=1)
    d1 = s.d.ids["D1"]
    await post(client, t.auth, "/credit-profiles", {"customer_id": d1, "credit_limit": "100.00"})
    await _floor(client, s, "11.00", "needs_approval")
    rule = await post(client, t.auth, "/credit-rules", {"check_point": "approval", "over_limit": "block"})
    first = await submitted(client, s.d.keys["D1"], basket(s, "8"))  # 80 on credit
    second = await submitted(client, s.d.keys["D1"], basket(s, "5"))  # 50 more: 130 > 100
    r = await act(client, t.auth, second["id"], "approve")
    assert r.status_code == 409 and r.json()["code"] == "credit_blocked"
    got = (await client.get(f"{API}/orders/{second['id']}", headers=t.auth)).json()
    assert (got["status"], got["version"]) == ("pending_approval", 1)
    r = await client.patch(
        f"{API}/credit-rules/{rule['id']}",
        headers={**t.auth, "If-Match": f'"{rule["version"]}"'},
        json={"over_limit": "warn"},
    )
    assert r.status_code == 200, r.text
    r = await act(client, t.auth, second["id"], "approve")
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert r.json()["history"][-1]["detail"] == {
        "credit": {"check_point": "approval", "action": "warn", "reasons": ["over the credit line by 30.00"]}
    }
    r = await act(client, t.auth, second["id"], "cancel")
    assert r.status_code == 200
    r = await act(client, t.auth, first["id"], "approve")  # 80 alone fits
    assert r.status_code == 200 and r.json()["history"][-1]["detail"] == {}
    assert await exposure(app, t, d1) == (80, 0)
    r = await submit(client, s.d.keys["D1"], basket(s, "3"))
    assert r.status_code == 201  # no rule at submit: pass
