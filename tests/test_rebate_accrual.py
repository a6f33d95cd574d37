"""Rebate accrual runs through the real app (DOMAIN §4): the three tier modes and the cap over real
shipped orders, re-runs without double counting, review with audited adjustments, settlement
that credits each rebate account exactly once (also under concurrent settles), returns after
settlement as a negative accrual carried into the next period, configuration errors, brand
versus dealer sales, and the state table."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal as D
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import func, select

from omnicloud.core.db import utcnow
from omnicloud.core.ids import new_id
from omnicloud.core.models import AuditEntry
from omnicloud.core.tenancy import tenant_scope
from omnicloud.policies.terms.models import RebatePolicy
from omnicloud.pools.funds.models import FundAccount, FundTransfer
from omnicloud.pools.orders.models import OrderLine
from omnicloud.pools.rebates import service as accruals
from omnicloud.pools.rebates.job import ACCRUAL_JOB
from omnicloud.pools.sales import service as sales
from tests.fixtures import TenantHandle
from tests.test_funds_api import API, assert_ledger_balanced, fund_cash, keyed, post, tx
from tests.test_invoices_api import issued, requested
from tests.test_orders_api import Shop, basket, ship, shop, submitted

TODAY = utcnow().date()
TIERS = [
    {"achievement": "0.8", "rate": "0.02"},
    {"achievement": "1", "rate": "0.03"},
    {"achievement": "1.2", "rate": "0.05"},
]


def month_of(day: date) -> tuple[date, date]:
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(days=1)


THIS_MONTH = month_of(TODAY)
NEXT_MONTH = month_of(THIS_MONTH[1] + timedelta(days=1))
MONTH_AFTER = month_of(NEXT_MONTH[1] + timedelta(days=1))


async def policy(client: httpx.AsyncClient, t: TenantHandle, **fields: Any) -> dict[str, Any]:
    body = {
        "code": f"RB-{uuid4().hex[:8]}",
        "name": "Monthly volume rebate",
        "period": "month",
        "mode": "retroactive",
        "target": "1000.00",
        "tiers": TIERS,
        **fields,
    }
    return dict(await post(client, t.auth, "/rebate-policies", body))


async def request(
    client: httpx.AsyncClient, t: TenantHandle, policy_id: str, period: tuple[date, date]
) -> httpx.Response:
    return await client.post(
        f"{API}/rebate-accruals",
        headers=t.auth,
        json={
            "rebate_policy_id": policy_id,
            "period_start": period[0].isoformat(),
            "period_end": period[1].isoformat(),
        },
    )


async def compute(app: Any, t: TenantHandle, run_id: str) -> bool:
    """Run the queued job the way a worker would (the queue's registered job, tenant scoped)."""
    with tenant_scope(UUID(t.id)):
        return bool(
            await app.state.queue.handlers[ACCRUAL_JOB](tenant_id=UUID(t.id), rebate_accrual_id=run_id)
        )


async def accrue(
    client: httpx.AsyncClient,
    app: Any,
    t: TenantHandle,
    policy_id: str,
    period: tuple[date, date] = THIS_MONTH,
) -> dict[str, Any]:
    r = await request(client, t, policy_id, period)
    assert r.status_code == 202, r.text
    assert r.json()["state"] == "computing"
    assert await compute(app, t, r.json()["id"])
    return await run(client, t, r.json()["id"])


async def run(client: httpx.AsyncClient, t: TenantHandle, run_id: str) -> dict[str, Any]:
    r = await client.get(f"{API}/rebate-accruals/{run_id}", headers=t.auth)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def settle(
    client: httpx.AsyncClient, t: TenantHandle, run_id: str, key: str | None = None
) -> httpx.Response:
    return await client.post(
        f"{API}/rebate-accruals/{run_id}/settle", headers=keyed(t.auth, key or str(uuid4())), json={}
    )


def line_of(r: dict[str, Any], customer_id: str) -> dict[str, Any]:
    [line] = [x for x in r["lines"] if x["customer_id"] == customer_id]
    return line


async def shipped(client: httpx.AsyncClient, s: Shop, code: str, *quantities: str) -> dict[str, Any]:
    """An order of dealer ``code`` (10.00 a unit) shipped in full."""
    total = sum(D(q) for q in quantities) * 10
    await fund_cash(client, s.t, s.d.ids[code], f"{total:.2f}", f"RB-{code}-{uuid4().hex[:6]}")
    order = await submitted(client, s.d.keys[code], basket(s, *quantities))
    lines = {f"l{i + 1}": q for i, q in enumerate(quantities)}
    r = await ship(client, s.t.auth, order["id"], **lines)
    assert r.status_code in (200, 201), r.text
    return order


async def rebate_balance(app: Any, t: TenantHandle, customer_id: str) -> D:
    async with tx(app, t) as s:
        total = await s.scalar(
            select(func.sum(FundAccount.balance)).where(
                FundAccount.customer_id == UUID(customer_id), FundAccount.kind == "rebate"
            )
        )
    return D(total or 0)


# --- DOMAIN §4: the tier modes over real shipments -----------------------------------------


@pytest.mark.parametrize(
    ("fields", "accrual", "tier"),
    [
        ({"mode": "retroactive"}, "33.00", "0.03"),  # 1,100 of 1,000 = 110 %: 3 % on the whole
        ({"mode": "incremental"}, "7.00", "0.03"),  # 200 at 2 % + 100 at 3 %
        ({"mode": "flat", "target": "0", "tiers": [{"achievement": "0", "rate": "0.02"}]}, "22.00", "0.02"),
        ({"mode": "retroactive", "cap": "30.00"}, "30.00", "0.03"),
    ],
)
async def test_a_run_accrues_each_tier_mode_on_shipped_sales(client, app, tenant_a, fields, accrual, tier):
    t = tenant_a
    s = await shop(client, t, stock="1000")
    await shipped(client, s, "D1", "60", "50")  # 1,100.00 shipped
    await shipped(client, s, "D2", "10")  # 100.00: 10 % of the target, below the first tier
    p = await policy(client, t, customers={"customer_ids": [s.d.ids["D1"], s.d.ids["D2"]]}, **fields)
    r = await accrue(client, app, t, p["id"])
    assert r["state"] == "review" and r["allowed_actions"] == ["request", "adjust", "settle", "discard"]
    d1 = line_of(r, s.d.ids["D1"])
    assert D(d1["achieved_amount"]) == D("1100.00")
    assert D(d1["accrual"]) == D(d1["amount"]) == D(accrual)
    assert D(d1["tier_rate"]) == D(tier)
    assert d1["explanation"][-1] == f"accrual {accrual}, paid as cash"
    if "cap" in fields:
        assert any("capped at 30.00" in x for x in d1["explanation"])
    d2 = line_of(r, s.d.ids["D2"])
    expected_d2 = "2.00" if fields["mode"] == "flat" else "0.00"
    assert D(d2["achieved_amount"]) == D("100.00") and D(d2["accrual"]) == D(expected_d2)
    assert D(r["total"]) == D(accrual) + D(expected_d2) and r["customers"] == 2

    r = await settle(client, t, r["id"])
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "settled"
    assert await rebate_balance(app, t, s.d.ids["D1"]) == D(accrual)
    await assert_ledger_balanced(app, t)


async def test_only_sales_in_the_product_scope_count(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, stock="1000")
    await shipped(client, s, "D1", "100", "30")  # S0 1,000.00, S1 300.00
    p = await policy(client, t, products={"sku_ids": [s.skus[0]]})
    r = await accrue(client, app, t, p["id"])
    d1 = line_of(r, s.d.ids["D1"])
    assert D(d1["achieved_amount"]) == D("1000.00") and D(d1["excluded_amount"]) == D("300.00")
    assert D(d1["accrual"]) == D("30.00")
    assert "outside the product scope" in d1["explanation"][0]


async def test_a_dealers_own_sales_and_rebate_paid_parts_do_not_count(client, app, tenant_a):
    """A fact a dealer sold (seller set) is that dealer's sale, not the brand's; the part of a
    brand sale paid with rebate is not achievement either."""
    t = tenant_a
    s = await shop(client, t, stock="1000")
    order = await shipped(client, s, "D1", "100")
    async with tx(app, t) as session:
        line = await session.scalar(select(OrderLine).where(OrderLine.order_id == UUID(order["id"])))
        assert line is not None
        for buyer, seller, amount, paid_by_rebate in (
            ("D1a", "D1", "5000.00", "0"),  # D1 sold to its sub-dealer
            ("D1", None, "500.00", "200.00"),  # a brand sale, 200.00 of it paid with rebate
        ):
            await sales.record(
                session,
                kind="shipped",
                day=TODAY,
                document_id=new_id(),
                order_id=line.order_id,
                customer_id=UUID(s.d.ids[buyer]),
                seller_customer_id=UUID(s.d.ids[seller]) if seller else None,
                sales_org_id=None,
                movements=[
                    sales.Movement(
                        order_line_id=line.id,
                        sku_id=line.sku_id,
                        base_quantity=D(50),
                        amount=D(amount),
                        fee=D(0),
                        rebate=D(paid_by_rebate),
                    )
                ],
            )
    r = await accrue(client, app, t, (await policy(client, t))["id"])
    assert [x["customer_id"] for x in r["lines"]] == [s.d.ids["D1"]]
    assert D(r["lines"][0]["achieved_amount"]) == D("1300.00")


# --- re-running --------------------------------------------------------------------------------


async def test_re_running_replaces_the_draft_and_never_double_counts(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, stock="1000")
    await shipped(client, s, "D1", "100")
    p = await policy(client, t)
    first = await accrue(client, app, t, p["id"])
    assert D(first["total"]) == D("30.00")

    # Unchanged: a no-op that keeps finance's adjustment.
    r = await client.patch(
        f"{API}/rebate-accruals/{first['id']}/lines/{s.d.ids['D1']}",
        headers={**t.auth, "If-Match": '"1"'},
        json={"amount": "25.00", "reason": "goodwill deduction agreed with D1"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["adjusted"] and D(r.json()["amount"]) == D("25.00") and r.json()["version"] == 2
    stale = await client.patch(
        f"{API}/rebate-accruals/{first['id']}/lines/{s.d.ids['D1']}",
        headers={**t.auth, "If-Match": '"1"'},
        json={"amount": "20.00", "reason": "again"},
    )
    assert stale.status_code == 412
    again = await accrue(client, app, t, p["id"])
    assert again["id"] == first["id"]
    assert D(line_of(again, s.d.ids["D1"])["amount"]) == D("25.00") and D(again["total"]) == D("25.00")

    # Changed: more shipped in the period; the run is recomputed, not added to.
    await shipped(client, s, "D1", "30")
    third = await accrue(client, app, t, p["id"])
    assert third["id"] == first["id"]
    d1 = line_of(third, s.d.ids["D1"])
    assert D(d1["achieved_amount"]) == D("1300.00") and D(d1["amount"]) == D("65.00") and not d1["adjusted"]
    assert D(third["total"]) == D("65.00")
    r = await client.get(f"{API}/rebate-accruals", headers=t.auth, params={"rebate_policy_id": p["id"]})
    assert [x["id"] for x in r.json()["items"]] == [first["id"]]

    # A job delivered twice does nothing the second time.
    assert not await compute(app, t, first["id"])
    async with tx(app, t) as session:
        audited = await session.scalar(
            select(func.count(AuditEntry.id)).where(AuditEntry.object_type == "rebate_accrual_line")
        )
    assert audited == 1  # the one adjustment; the stale one changed nothing

    # Settled: the period cannot run again, and an overlapping period is refused.
    assert (await settle(client, t, first["id"])).status_code == 200
    r = await request(client, t, p["id"], THIS_MONTH)
    assert r.status_code == 409 and r.json()["code"] == "illegal_transition"
    q = await policy(client, t, period="custom", period_start="2020-01-01", period_end="2030-12-31")
    assert (await request(client, t, q["id"], (THIS_MONTH[0], THIS_MONTH[1]))).status_code == 202
    r = await request(client, t, q["id"], (THIS_MONTH[0] + timedelta(days=1), THIS_MONTH[1]))
    assert r.status_code == 409 and r.json()["code"] == "period_overlaps"


# --- settlement ----------------------------------------------------------------------------------


async def test_settling_credits_each_rebate_account_exactly_once(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, stock="1000")
    await shipped(client, s, "D1", "100")
    await shipped(client, s, "D1a", "90")
    r = await accrue(client, app, t, (await policy(client, t))["id"])
    run_id = r["id"]
    no_key = await client.post(f"{API}/rebate-accruals/{run_id}/settle", headers=t.auth, json={})
    assert no_key.status_code == 428
    first = await settle(client, t, run_id, key="settle-1")
    assert first.status_code == 200, first.text
    replay = await settle(client, t, run_id, key="settle-1")
    assert replay.status_code == 200 and replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json() == first.json()
    other = await settle(client, t, run_id, key="settle-2")
    assert other.status_code == 409 and other.json()["code"] == "illegal_transition"
    lines = {x["customer_id"]: x for x in first.json()["lines"]}
    assert D(lines[s.d.ids["D1"]]["credited"]) == D("30.00") and lines[s.d.ids["D1"]]["transfer_id"]
    assert D(lines[s.d.ids["D1a"]]["credited"]) == D("18.00")  # 90 % of the target: 2 %
    assert await rebate_balance(app, t, s.d.ids["D1"]) == D("30.00")
    assert await rebate_balance(app, t, s.d.ids["D1a"]) == D("18.00")
    async with tx(app, t) as session:
        transfers = await session.scalar(
            select(func.count(FundTransfer.id)).where(FundTransfer.ref_id == UUID(run_id))
        )
        account = await session.scalar(
            select(FundAccount).where(
                FundAccount.customer_id == UUID(s.d.ids["D1"]), FundAccount.kind == "rebate"
            )
        )
    assert transfers == 2
    assert account is not None and account.valid_from == THIS_MONTH[1] + timedelta(days=1)
    await assert_ledger_balanced(app, t)


async def test_goods_form_records_the_entitlement_without_money(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, stock="1000")
    await shipped(client, s, "D1", "100")
    r = await accrue(client, app, t, (await policy(client, t, form="goods"))["id"])
    out = (await settle(client, t, r["id"])).json()
    d1 = line_of(out, s.d.ids["D1"])
    assert D(d1["credited"]) == D("30.00") and d1["transfer_id"] is None
    assert await rebate_balance(app, t, s.d.ids["D1"]) == 0


async def test_concurrent_settles_pay_once(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, stock="1000")
    await shipped(client, s, "D1", "100")
    r = await accrue(client, app, t, (await policy(client, t))["id"])
    answers = await asyncio.gather(*(settle(client, t, r["id"]) for _ in range(4)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 409, 409, 409], [a.text for a in answers]
    assert await rebate_balance(app, t, s.d.ids["D1"]) == D("30.00")
    await assert_ledger_balanced(app, t)


# --- returns after settlement --------------------------------------------------------------------


async def _returned(app: Any, t: TenantHandle, order_id: str, day: date, quantity: int) -> None:
    async with tx(app, t) as session:
        line = await session.scalar(select(OrderLine).where(OrderLine.order_id == UUID(order_id)))
        assert line is not None
        await sales.record(
            session,
            kind="returned",
            day=day,
            document_id=new_id(),
            order_id=line.order_id,
            customer_id=await _buyer(session, line.order_id),
            seller_customer_id=None,
            sales_org_id=None,
            movements=[
                sales.Movement(
                    order_line_id=line.id,
                    sku_id=line.sku_id,
                    base_quantity=D(quantity),
                    amount=D(quantity) * 10,
                    fee=D(0),
                    rebate=D(0),
                )
            ],
        )


async def _buyer(session: Any, order_id: UUID) -> UUID:
    from omnicloud.pools.orders.models import Order

    return UUID(str(await session.scalar(select(Order.customer_id).where(Order.id == order_id))))


async def test_returns_after_settlement_are_a_negative_accrual_carried_into_the_next_run(
    client, app, tenant_a
):
    t = tenant_a
    s = await shop(client, t, stock="1000")
    order = await shipped(client, s, "D1", "100")
    p = await policy(client, t)
    first = await accrue(client, app, t, p["id"])
    assert (await settle(client, t, first["id"])).status_code == 200
    assert await rebate_balance(app, t, s.d.ids["D1"]) == D("30.00")

    await _returned(app, t, order["id"], NEXT_MONTH[0] + timedelta(days=3), 40)  # 400.00 back
    second = await accrue(client, app, t, p["id"], NEXT_MONTH)
    d1 = line_of(second, s.d.ids["D1"])
    assert D(d1["achieved_amount"]) == D("-400.00")
    assert D(d1["accrual"]) == D("-12.00")  # at the 3 % the settled month paid
    assert "negative accrual" in d1["explanation"][0]
    out = (await settle(client, t, second["id"])).json()
    d1 = line_of(out, s.d.ids["D1"])
    assert D(d1["credited"]) == 0 and D(d1["carried_out"]) == D("-12.00") and d1["transfer_id"] is None
    assert await rebate_balance(app, t, s.d.ids["D1"]) == D("30.00")  # never taken back from the account

    third = await accrue(client, app, t, p["id"], MONTH_AFTER)  # no sales: the debt stays visible
    d1 = line_of(third, s.d.ids["D1"])
    assert D(d1["carried_in"]) == D("-12.00") and D(d1["amount"]) == D("-12.00")
    await assert_ledger_balanced(app, t)


# --- configuration errors, permissions and the state table ----------------------------------------


async def test_a_policy_that_cannot_accrue_is_a_422_that_creates_nothing(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    async with tx(app, t) as session:  # saved before validation existed, or by a faulty import
        broken = RebatePolicy(
            code="ZERO",
            name="Target 0",
            period="month",
            customers={},
            products={},
            basis="shipped",
            mode="retroactive",
            target=D(0),
            tiers=TIERS,
            form="cash",
            usage_cap_ratio=D(1),
            status="active",
            version=1,
            created_at=utcnow(),
        )
        session.add(broken)
        await session.flush()
        broken_id = str(broken.id)
    r = await request(client, t, broken_id, THIS_MONTH)
    assert r.status_code == 422 and r.json()["code"] == "policy_misconfigured"
    assert "target" in r.json()["detail"]

    paid = await policy(client, t, basis="paid")  # no pool registers the paid basis yet
    r = await request(client, t, paid["id"], THIS_MONTH)
    assert r.status_code == 422 and r.json()["code"] == "basis_unavailable"

    monthly = await policy(client, t)
    r = await request(client, t, monthly["id"], (THIS_MONTH[0], THIS_MONTH[0] + timedelta(days=6)))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "period_end"
    r = await request(client, t, str(uuid4()), THIS_MONTH)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "rebate_policy_id"
    r = await client.post(
        f"{API}/rebate-accruals",
        headers=t.auth,
        json={"rebate_policy_id": monthly["id"], "period_start": "2024-02-01", "period_end": "2024-01-31"},
    )
    assert r.status_code in (400, 422)
    assert (await client.get(f"{API}/rebate-accruals", headers=t.auth)).json()["items"] == []
    r = await client.post(
        f"{API}/rebate-accruals",
        headers=s.d.keys["D1"],
        json={
            "rebate_policy_id": monthly["id"],
            "period_start": THIS_MONTH[0].isoformat(),
            "period_end": THIS_MONTH[1].isoformat(),
        },
    )
    assert r.status_code == 403


async def test_a_registered_basis_source_is_used(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    sku, d1 = UUID(s.skus[0]), UUID(s.d.ids["D1"])

    async def paid(session: Any, start: date, end: date) -> list[tuple[UUID, UUID, D]]:
        assert (start, end) == THIS_MONTH
        return [(d1, sku, D("1250.00"))]

    accruals.add_basis_source("paid", paid)
    try:
        r = await accrue(client, app, t, (await policy(client, t, basis="paid"))["id"])
    finally:
        accruals._BASIS_SOURCES.pop("paid")
    assert r["basis"] == "paid"
    assert D(line_of(r, s.d.ids["D1"])["accrual"]) == D("62.50")  # 125 %: 5 %


async def test_the_invoiced_basis_counts_what_was_invoiced(client, app, tenant_a):
    """Shipped 1,100 but invoiced 600 of it this month: the invoiced basis achieves 600."""
    t = tenant_a
    s = await shop(client, t)
    order = await shipped(client, s, "D1", "100", "10")
    first = next(ln for ln in order["lines"] if ln["line_id"] == "1")
    req = await requested(client, s.d.keys["D1"], [(first["id"], "60")])
    await issued(client, t, req["id"], f"INV-{uuid4().hex[:8]}")
    r = await accrue(client, app, t, (await policy(client, t, basis="invoiced"))["id"])
    line = line_of(r, s.d.ids["D1"])
    assert D(line["achieved_amount"]) == D("600.00")


async def test_illegal_moves_are_409s_that_change_nothing(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    await shipped(client, s, "D1", "10")
    p = await policy(client, t)
    r = await request(client, t, p["id"], THIS_MONTH)
    run_id = r.json()["id"]
    r = await settle(client, t, run_id)  # still computing
    assert r.status_code == 409 and r.json()["code"] == "illegal_transition"
    await compute(app, t, run_id)
    r = await client.post(f"{API}/rebate-accruals/{run_id}/discard", headers=t.auth)
    assert r.status_code == 200 and r.json()["state"] == "discarded"
    for action in ("settle", "discard"):
        if action == "settle":
            r = await settle(client, t, run_id)
        else:
            r = await client.post(f"{API}/rebate-accruals/{run_id}/discard", headers=t.auth)
        assert r.status_code == 409, action
    r = await client.patch(
        f"{API}/rebate-accruals/{run_id}/lines/{s.d.ids['D1']}",
        headers=t.auth,
        json={"amount": "1.00", "reason": "too late"},
    )
    assert r.status_code == 409
    assert (await run(client, t, run_id))["state"] == "discarded"
    reopened = await accrue(client, app, t, p["id"])  # a discarded period may run again
    assert reopened["id"] == run_id and reopened["state"] == "review"
    r = await client.patch(
        f"{API}/rebate-accruals/{run_id}/lines/{uuid4()}",
        headers=t.auth,
        json={"amount": "1.00", "reason": "x"},
    )
    assert r.status_code == 404


async def test_a_policy_that_became_uncomputable_fails_the_run_with_the_reason(client, app, tenant_a):
    t = tenant_a
    p = await policy(client, t)
    r = await request(client, t, p["id"], THIS_MONTH)
    run_id = r.json()["id"]
    changed = await client.patch(
        f"{API}/rebate-policies/{p['id']}", headers={**t.auth, "If-Match": '"1"'}, json={"basis": "paid"}
    )
    assert changed.status_code == 200, changed.text
    assert await compute(app, t, run_id)
    out = await run(client, t, run_id)
    assert out["state"] == "discarded" and "basis 'paid'" in out["error"] and out["lines"] == []


async def test_periods_settle_in_order_on_figures_that_saw_the_settlement_before(client, app, tenant_a):
    """A carry into the next period is read when that period is computed: settling out of order,
    or on figures computed before the previous period settled, would lose it (409s)."""
    t = tenant_a
    s = await shop(client, t)
    await shipped(client, s, "D1", "10")
    p = await policy(client, t)
    last = month_of(THIS_MONTH[0] - timedelta(days=1))
    earlier = await accrue(client, app, t, p["id"], last)
    now = await accrue(client, app, t, p["id"])
    r = await settle(client, t, now["id"])
    assert (r.status_code, r.json()["code"]) == (409, "settle_in_order")
    assert (await settle(client, t, earlier["id"])).status_code == 200
    r = await settle(client, t, now["id"])
    assert (r.status_code, r.json()["code"]) == (409, "stale_run")
    again = await accrue(client, app, t, p["id"])  # requesting the period again recomputes it
    assert again["id"] == now["id"]
    r = await settle(client, t, now["id"])
    assert r.status_code == 200, r.text
