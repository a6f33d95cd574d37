"""Freezes (冻结) as the order service will use them, inside its own transaction: planned, frozen,
then posted or released exactly once; refunds go back where the money came from (原路返回), in
reverse payment order, fees keeping their expiry; a retry never moves money twice."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from omnicloud.core.errors import Conflict, Problem
from omnicloud.pools import payment
from omnicloud.pools.funds import service as funds
from omnicloud.pools.funds.schemas import Reference
from tests.fixtures import TenantHandle
from tests.test_funds_api import (
    FAR,
    TODAY,
    account,
    assert_ledger_balanced,
    dealers,
    entries,
    fund_cash,
    keyed,
    post,
    tx,
)


async def grant(
    client: httpx.AsyncClient, t: TenantHandle, customer_id: str, amount: str, expires_on: str
) -> str:
    body = {
        "customer_id": customer_id,
        "amount": amount,
        "fee_type": "promo",
        "source": "s",
        "expires_on": expires_on,
    }
    return str((await post(client, keyed(t.auth, str(uuid4())), "/fee-grants", body))["fund_account"]["id"])


def order(*amounts: tuple[str, str], **kw: Any) -> payment.PaymentRequest:
    """Lines (amount, fee cap), payable by the customer's accounts today."""
    lines = [
        payment.PayableLine(line_id=f"L{i}", amount=D(a), fee_cap=D(cap))
        for i, (a, cap) in enumerate(amounts)
    ]
    return payment.PaymentRequest(lines=lines, today=funds.business_day(), **kw)


async def pay(app: Any, t: TenantHandle, customer_id: str, request: payment.PaymentRequest) -> Reference:
    """Plan and freeze an order's payment in one transaction, as order submit will."""
    ref = Reference(type="order", id=uuid4())
    async with tx(app, t) as s:
        plan = await funds.plan_payment(s, customer_id=UUID(customer_id), sales_org_id=None, request=request)
        await funds.freeze(s, customer_id=UUID(customer_id), sales_org_id=None, plan=plan, reference=ref)
    return ref


async def balances(client: httpx.AsyncClient, t: TenantHandle, *ids: str) -> list[tuple[D, D]]:
    out = []
    for account_id in ids:
        a = await account(client, t.auth, account_id)
        out.append((D(a["balance"]), D(a["held"])))
    return out


async def test_freeze_post_and_refund_in_full(client, app, tenant_a):
    t = tenant_a
    d = await dealers(client, t)
    cid = d.ids["D1"]
    cash = await fund_cash(client, t, cid, "1000.00", "H-1")
    soon = (TODAY + timedelta(days=10)).isoformat()
    fee = await grant(client, t, cid, "200.00", soon)
    ref = await pay(app, t, cid, order(("600.00", "300.00")))
    assert await balances(client, t, fee, cash) == [(200, 200), (1000, 400)]
    async with tx(app, t) as s:
        holds = await funds.holds_for(s, ref)
    assert [(h.step, h.amount, h.state) for h in holds] == [("fee", 200, "placed"), ("cash", 400, "placed")]
    r = await client.get(
        f"/api/v1/fund-accounts/{cash}/holds", headers=d.keys["D1"], params={"state": "placed"}
    )
    assert [h["reference_id"] for h in r.json()["items"]] == [str(ref.id)]

    async with tx(app, t) as s:
        posted = await funds.post_holds(s, ref)
    assert posted is not None and posted.kind == "payment"
    assert sorted(leg.amount for leg in posted.legs) == [-400, -200, 600]
    assert await balances(client, t, fee, cash) == [(0, 0), (600, 0)]
    r = await client.get(
        f"/api/v1/fund-accounts/{cash}/holds", headers=d.keys["D1"], params={"state": "placed"}
    )
    assert r.json()["items"] == []
    async with tx(app, t) as s:
        assert await funds.post_holds(s, ref) is None  # exactly once: a second post does nothing
        assert await funds.void_holds(s, ref) == []
        assert {h.state for h in await funds.holds_for(s, ref)} == {"posted"}

    async with tx(app, t) as s:
        refunded = await funds.refund(s, ref, key="cancel-1")
    assert refunded is not None and sorted(leg.amount for leg in refunded.legs) == [-600, 200, 400]
    assert await balances(client, t, fee, cash) == [(200, 0), (1000, 0)]
    fee_account = await account(client, t.auth, fee)
    assert fee_account["expires_on"] == soon  # the fee came back to its own account, same expiry
    async with tx(app, t) as s:
        again = await funds.refund(s, ref, key="cancel-1")
        assert again is not None and again.id == refunded.id  # a retried refund moves nothing
        assert await funds.refund(s, ref, key="cancel-2") is None  # nothing left to refund
    assert [D(e["amount"]) for e in await entries(client, t.auth, cash)] == [1000, -400, 400]
    await assert_ledger_balanced(app, t)


async def test_partial_cancel_releases_in_reverse_order_and_partial_post_keeps_the_rest(
    client, app, tenant_a
):
    t = tenant_a
    d = await dealers(client, t)
    cid = d.ids["D1"]
    cash = await fund_cash(client, t, cid, "1000.00", "H-2")
    fee = await grant(client, t, cid, "200.00", FAR)
    ref = await pay(app, t, cid, order(("500.00", "200.00")))
    async with tx(app, t) as s:
        released = await funds.release_holds(s, ref, D("350.00"))
    # cash (300) goes back first, then 50 of the fee; 150 of the fee stays frozen in a child hold
    assert [(h.step, h.amount, h.state) for h in released] == [
        ("cash", 300, "voided"),
        ("fee", 200, "voided"),
        ("fee", 150, "placed"),
    ]
    assert released[2].parent_id == released[1].id
    assert await balances(client, t, fee, cash) == [(200, 150), (1000, 0)]

    async with tx(app, t) as s:
        with pytest.raises(Conflict) as exc:
            await funds.post_holds(s, ref, D("150.01"))
        assert exc.value.code == "exceeds_holds"
    async with tx(app, t) as s:
        posted = await funds.post_holds(s, ref, D("100.00"))
    assert posted is not None and sorted(leg.amount for leg in posted.legs) == [-100, 100]
    assert await balances(client, t, fee, cash) == [(100, 50), (1000, 0)]
    async with tx(app, t) as s:
        holds = await funds.holds_for(s, ref)
        assert [(h.amount, h.state, h.posted_amount) for h in holds if h.step == "fee"] == [
            (200, "voided", 0),
            (150, "posted", 100),
            (50, "placed", 0),
        ]
        assert [h.amount for h in await funds.void_holds(s, ref)] == [50]
    assert await balances(client, t, fee, cash) == [(100, 0), (1000, 0)]
    async with tx(app, t) as s:
        assert await funds.void_holds(s, ref) == []  # a second void does nothing
        with pytest.raises(Conflict):
            await funds.release_holds(s, ref, D("1.00"))
    await assert_ledger_balanced(app, t)


async def test_partial_refund_goes_back_in_reverse_payment_order(client, app, tenant_a):
    t = tenant_a
    d = await dealers(client, t)
    cid = d.ids["D1"]
    cash = await fund_cash(client, t, cid, "1000.00", "H-3")
    early = await grant(client, t, cid, "100.00", (TODAY + timedelta(days=5)).isoformat())
    late = await grant(client, t, cid, "100.00", (TODAY + timedelta(days=50)).isoformat())
    async with tx(app, t) as s:
        await funds.credit_rebate(
            s,
            customer_id=UUID(cid),
            sales_org_id=None,
            amount=D("500.00"),
            reference=Reference(type="rebate_settlement", id=uuid4()),
            key="q1",
        )
    ref = await pay(app, t, cid, order(("1000.00", "150.00"), rebate_cap=D("100.00")))
    async with tx(app, t) as s:
        plan_holds = await funds.holds_for(s, ref)
        assert [(h.step, h.amount) for h in plan_holds] == [
            ("fee", 100),
            ("fee", 50),
            ("rebate", 100),
            ("cash", 750),
        ]
        await funds.post_holds(s, ref)
    async with tx(app, t) as s:
        first = await funds.refund(s, ref, D("800.00"), key="return-1")
        assert first is not None
        # cash 750 first, then rebate 50
        refunded = {leg.fund_account_id: leg.amount for leg in first.legs if leg.amount > 0}
        assert sorted(refunded.values()) == [50, 750]
        second = await funds.refund(s, ref, D("120.00"), key="return-2")
        assert second is not None
        assert sorted(leg.amount for leg in second.legs if leg.amount > 0) == [20, 50, 50]
    # the fee with the later expiry came back before the earlier one
    assert await balances(client, t, late, early) == [(100, 0), (20, 0)]
    async with tx(app, t) as s:
        with pytest.raises(Conflict) as exc:
            await funds.refund(s, ref, D("80.01"), key="return-3")
        assert exc.value.code == "exceeds_refundable"
    async with tx(app, t) as s:
        with pytest.raises(Conflict):
            await funds.refund(s, Reference(type="order", id=uuid4()), key="return-1")  # key of another order
    assert D((await account(client, t.auth, cash))["balance"]) == 1000
    await assert_ledger_balanced(app, t)


async def test_a_freeze_that_does_not_fit_leaves_nothing_behind(client, app, tenant_a):
    t = tenant_a
    d = await dealers(client, t)
    cid = d.ids["D1"]
    cash = await fund_cash(client, t, cid, "100.00", "H-4")
    deposit = await post(
        client,
        keyed(t.auth, "dep"),
        "/remittances",
        {
            "customer_id": cid,
            "amount": "900.00",
            "bank_reference": "DEP",
            "remitted_on": TODAY.isoformat(),
            "account_kind": "deposit",
        },
    )
    await post(client, t.auth, f"/remittances/{deposit['id']}/confirm")
    with pytest.raises(Problem) as exc:
        await pay(app, t, cid, order(("100.01", "0")))
    assert (exc.value.status, exc.value.code) == (409, "insufficient_funds")  # deposits never pay
    async with tx(app, t) as s:
        plan = await funds.plan_payment(
            s, customer_id=UUID(cid), sales_org_id=None, request=order(("80.00", "0"))
        )
    await pay(app, t, cid, order(("30.00", "0")))  # the account changed since the plan was made
    with pytest.raises(Conflict) as exc:
        async with tx(app, t) as s:
            ref = Reference(type="order", id=uuid4())
            await funds.freeze(s, customer_id=UUID(cid), sales_org_id=None, plan=plan, reference=ref)
    assert exc.value.code == "insufficient_funds"
    assert await balances(client, t, cash) == [(100, 30)]
    with pytest.raises(Conflict):  # a plan made for another customer cannot freeze this one's money
        async with tx(app, t) as s:
            plan = await funds.plan_payment(
                s, customer_id=UUID(cid), sales_org_id=None, request=order(("5.00", "0"))
            )
            await funds.freeze(
                s,
                customer_id=UUID(d.ids["D2"]),
                sales_org_id=None,
                plan=plan,
                reference=Reference(type="o", id=uuid4()),
            )
    async with tx(app, t) as s:
        plan = await funds.plan_payment(
            s, customer_id=UUID(cid), sales_org_id=None, request=order(("200.00", "0"), use_credit=True)
        )
        assert (plan.cash, plan.credit) == (70, 130)  # what the credit check must pass
    await assert_ledger_balanced(app, t)


async def test_rebate_credits_are_idempotent_and_kept_per_validity(client, app, tenant_a):
    t = tenant_a
    d = await dealers(client, t)
    cid = UUID(d.ids["D1"])
    settlement = Reference(type="rebate_settlement", id=uuid4())
    ends = TODAY + timedelta(days=90)
    async with tx(app, t) as s:
        first = await funds.credit_rebate(
            s,
            customer_id=cid,
            sales_org_id=None,
            amount=D("40.00"),
            reference=settlement,
            key="s1",
            expires_on=ends,
        )
        again = await funds.credit_rebate(
            s,
            customer_id=cid,
            sales_org_id=None,
            amount=D("40.00"),
            reference=settlement,
            key="s1",
            expires_on=ends,
        )
        assert again.id == first.id
        other = await funds.credit_rebate(
            s,
            customer_id=cid,
            sales_org_id=None,
            amount=D("5.00"),
            reference=settlement,
            key="s2",
            expires_on=ends,
        )
        open_ended = await funds.credit_rebate(
            s, customer_id=cid, sales_org_id=None, amount=D("7.00"), reference=settlement, key="s3"
        )
    rebate_of = {leg.fund_account_id for leg in first.legs if leg.amount > 0}
    assert rebate_of == {leg.fund_account_id for leg in other.legs if leg.amount > 0}
    assert rebate_of != {leg.fund_account_id for leg in open_ended.legs if leg.amount > 0}
    r = await client.get("/api/v1/fund-accounts", headers=d.keys["D1"], params={"kind": "rebate"})
    assert sorted(D(a["balance"]) for a in r.json()["items"]) == [7, 45]
    await assert_ledger_balanced(app, t)


async def test_special_funds_pay_only_their_scope_and_sales_orgs_keep_their_own_money(client, app, tenant_a):
    t = tenant_a
    d = await dealers(client, t)
    cid, org = d.ids["D1"], d.ids["org"]
    brand = (await post(client, t.auth, "/brands", {"code": "TEA", "name": "Tea"}))["id"]
    special = (
        await post(
            client,
            t.auth,
            "/fund-accounts",
            {"customer_id": cid, "name": "Tea", "scope": {"brand_ids": [brand]}},
        )
    )["id"]
    await post(
        client,
        keyed(t.auth, "sp"),
        "/fund-adjustments",
        {"fund_account_id": special, "amount": "300.00", "reason": "subsidy"},
    )
    org_remittance = await post(
        client,
        keyed(t.auth, "org"),
        "/remittances",
        {
            "customer_id": cid,
            "sales_org_id": org,
            "amount": "1000.00",
            "bank_reference": "ORG-1",
            "remitted_on": TODAY.isoformat(),
        },
    )
    org_cash = (await post(client, t.auth, f"/remittances/{org_remittance['id']}/confirm"))["fund_account_id"]
    lines = [
        payment.PayableLine(line_id="tea", amount=D("500.00"), sku_id=str(uuid4()), brand_id=brand),
        payment.PayableLine(line_id="rice", amount=D("200.00"), sku_id=str(uuid4())),
    ]
    request = payment.PaymentRequest(lines=lines, today=funds.business_day(), use_credit=True)
    async with tx(app, t) as s:
        general = await funds.plan_payment(s, customer_id=UUID(cid), sales_org_id=None, request=request)
        assert (general.special, general.cash, general.credit) == (
            300,
            0,
            400,
        )  # org cash is not the customer's
        for_org = await funds.plan_payment(s, customer_id=UUID(cid), sales_org_id=UUID(org), request=request)
        assert (for_org.special, for_org.cash) == (0, 700)  # the special account has no sales org
        ref = Reference(type="order", id=uuid4())
        holds = await funds.freeze(s, customer_id=UUID(cid), sales_org_id=None, plan=general, reference=ref)
        assert [(h.step, str(h.fund_account_id), h.amount) for h in holds] == [("special", special, 300)]
        assert {ln.line_id: ln.special for ln in general.lines} == {"tea": 300, "rice": 0}
    assert await balances(client, t, special, org_cash) == [(300, 300), (1000, 0)]
    await assert_ledger_balanced(app, t)
