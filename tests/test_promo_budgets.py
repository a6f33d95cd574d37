"""Promotion budgets and per-customer limits (DOMAIN §2: reserved atomically when the order is
submitted): :func:`promos.consume` and :func:`promos.release` called in an order's transaction,
the budget and limit maths, quotes leaving out what is used up ("budget exhausted"), release
giving uses back exactly once, coupon templates' per-customer limits, and concurrent orders
that can never exceed a budget or a limit."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from omnicloud.core import revisions
from omnicloud.core.errors import Conflict
from omnicloud.core.ids import new_id
from omnicloud.policies.promos import service as promos
from omnicloud.policies.promos.models import Promotion, PromotionUse
from omnicloud.policies.quotes.schemas import AppliedOut
from tests.fixtures import TenantHandle
from tests.test_funds_api import tx
from tests.test_quotes_api import Shop

D = Decimal


@pytest.fixture
async def shop(client: httpx.AsyncClient, tenant_a: TenantHandle) -> Shop:
    """SKU X at 100 in the base list, customers C1 and C2."""
    s = Shop(client, tenant_a)
    await s.basics()
    s.ids["X"] = await s.sku("X")
    await s.price_list("BASE", "base", [{"sku_id": s.ids["X"], "price": "100.00"}])
    s.ids["C1"] = await s.customer("C1")
    s.ids["C2"] = await s.customer("C2")
    return s


async def promotion(s: Shop, code: str = "TEN", **limits: Any) -> str:
    """10% off everything, with the given budget and limits."""
    return await s.promotion(code, "straight_discount", {"off_ratio": "0.1"}, **limits)


def used(promotion_id: str, amount: str = "10.00") -> list[AppliedOut]:
    return [AppliedOut(promotion_id=promotion_id, stage="item", discount=D(amount), explanation="")]


async def consume(app: Any, s: Shop, customer: str | None, applications: list[AppliedOut]) -> UUID:
    order_id = new_id()
    async with tx(app, s.t) as session:
        await promos.consume(
            session,
            customer_id=UUID(s.ids[customer]) if customer else None,
            order_id=order_id,
            applications=applications,
        )
    return order_id


async def refused(app: Any, s: Shop, customer: str | None, applications: list[AppliedOut]) -> Conflict:
    with pytest.raises(Conflict) as caught:
        await consume(app, s, customer, applications)
    assert caught.value.code == "promotion_exhausted"
    return caught.value


async def release(app: Any, s: Shop, order_id: UUID) -> None:
    async with tx(app, s.t) as session:
        await promos.release(session, order_id=order_id)


async def counters(app: Any, s: Shop, promotion_id: str) -> tuple[int, Decimal, int]:
    """(used_count, used_amount, consumed uses) of a promotion."""
    async with tx(app, s.t) as session:
        p = await session.get(Promotion, (UUID(s.t.id), UUID(promotion_id)))
        assert p is not None
        uses = await session.scalar(
            select(func.count(PromotionUse.id)).where(
                PromotionUse.promotion_id == p.id, PromotionUse.state == "consumed"
            )
        )
        return p.used_count, p.used_amount, uses or 0


async def quoted(s: Shop, customer: str) -> tuple[str, list[dict[str, str]]]:
    """A quote of one X for ``customer``: (due, not applicable promotions)."""
    q = await s.quote({"customer_id": s.ids[customer], "lines": [{"sku_id": s.ids["X"], "quantity": "1"}]})
    return q["totals"]["due"], q["not_applicable"]


async def test_a_count_budget_is_used_up_refused_then_given_back(app: Any, shop: Shop) -> None:
    s = shop
    pid = await promotion(s, budget_count=2)
    assert await quoted(s, "C1") == ("90.00", [])
    first = await consume(app, s, "C1", used(pid))
    stamp = await _stamp(app, s)
    await consume(app, s, "C2", used(pid))
    assert await _stamp(app, s) != stamp  # used up: later quotes must stop offering it
    problem = await refused(app, s, "C1", used(pid))
    assert problem.errors[0]["promotion_id"] == pid and "budget exhausted" in problem.detail
    assert await counters(app, s, pid) == (2, D("20.00"), 2)  # the refused order left nothing
    assert await quoted(s, "C1") == ("100.00", [{"promotion_id": pid, "reason": "budget exhausted"}])
    await release(app, s, first)
    await release(app, s, first)  # exactly once
    assert await counters(app, s, pid) == (1, D("10.00"), 1)
    assert await quoted(s, "C1") == ("90.00", [])
    got = (await s.c.get(f"/api/v1/promotions/{pid}", headers=s.t.auth)).json()
    assert (got["used_count"], got["remaining_count"]) == (1, 1)


async def _stamp(app: Any, s: Shop) -> revisions.Revision:
    async with tx(app, s.t) as session:
        return (await revisions.current(session, (promos.TOPIC,)))[promos.TOPIC]


async def test_an_amount_budget_never_goes_over(app: Any, shop: Shop) -> None:
    """Budget 50, each order's discount 30: the second order would use 60 and is refused; the
    quote sees that 20 left cannot cover its 10% of 300 and leaves it out."""
    s = shop
    pid = await promotion(s, budget_amount="50.00")
    await consume(app, s, "C1", used(pid, "30.00"))
    await refused(app, s, "C2", used(pid, "30.00"))
    assert await counters(app, s, pid) == (1, D("30.00"), 1)
    q = await s.quote({"customer_id": s.ids["C2"], "lines": [{"sku_id": s.ids["X"], "quantity": "3"}]})
    assert (q["totals"]["due"], q["promotions"]) == ("300.00", [])
    assert q["not_applicable"] == [{"promotion_id": pid, "reason": "budget exhausted"}]
    # A smaller basket still fits what is left: 10 ≤ 20.
    assert await quoted(s, "C2") == ("90.00", [])
    await consume(app, s, "C2", used(pid, "20.00"))
    assert await counters(app, s, pid) == (2, D("50.00"), 2)
    assert await quoted(s, "C1") == ("100.00", [{"promotion_id": pid, "reason": "budget exhausted"}])


async def test_a_per_customer_limit_counts_each_customers_orders(app: Any, shop: Shop) -> None:
    s = shop
    pid = await promotion(s, per_customer_limit=1)
    first = await consume(app, s, "C1", used(pid))
    problem = await refused(app, s, "C1", used(pid))
    assert "per-customer limit reached" in problem.detail
    assert await quoted(s, "C1") == (
        "100.00",
        [{"promotion_id": pid, "reason": "per-customer limit reached"}],
    )
    assert await quoted(s, "C2") == ("90.00", [])
    await consume(app, s, "C2", used(pid))
    await release(app, s, first)
    assert await quoted(s, "C1") == ("90.00", [])
    await consume(app, s, "C1", used(pid))
    assert await counters(app, s, pid) == (2, D("20.00"), 2)


async def test_an_order_with_one_exhausted_promotion_consumes_nothing(app: Any, shop: Shop) -> None:
    s = shop
    open_ = await promotion(s, "OPEN", budget_count=10)
    tight = await promotion(s, "TIGHT", budget_count=1)
    await consume(app, s, "C1", used(tight))
    await refused(app, s, "C2", [*used(open_), *used(tight)])
    assert await counters(app, s, open_) == (0, D("0.00"), 0)
    # A promotion that orders have used is ended, never deleted.
    r = await s.c.delete(f"/api/v1/promotions/{tight}", headers={**s.t.auth, "If-Match": '"1"'})
    assert r.status_code == 409 and r.json()["code"] == "promotion_in_use"


async def test_a_coupon_templates_per_customer_limit_holds_at_consume(
    app: Any, client: httpx.AsyncClient, shop: Shop
) -> None:
    """Two unassigned codes of a template limited to one per customer: C1's first order holds
    one; its second order with the other code is refused."""
    s = shop
    tpl = await s.post(
        "/api/v1/coupon-templates", {"code": "C5", "name": "5 off", "amount": "5.00", "per_customer_limit": 1}
    )
    codes = (await s.post(f"/api/v1/coupon-templates/{tpl['id']}/issue", {"quantity": 2}, status=201))[
        "codes"
    ]
    coupon = [AppliedOut(promotion_id=codes[0]["id"], stage="coupon", discount=D("5.00"), explanation="")]
    async with tx(app, s.t) as session:
        await promos.transition_coupon_code(
            session, UUID(codes[0]["id"]), "reserved", customer_id=UUID(s.ids["C1"])
        )
        await promos.consume(session, customer_id=UUID(s.ids["C1"]), order_id=new_id(), applications=coupon)
    other = [AppliedOut(promotion_id=codes[1]["id"], stage="coupon", discount=D("5.00"), explanation="")]
    problem = await refused(app, s, "C1", other)
    assert problem.errors[0]["coupon_template_id"] == tpl["id"]
    await consume(app, s, "C2", other)


async def test_concurrent_orders_never_exceed_a_budget(app: Any, shop: Shop) -> None:
    """32 concurrent orders against a count budget of 5: exactly 5 consume it (on PostgreSQL the
    conditional UPDATE decides; on SQLite writers serialize)."""
    s = shop
    pid = await promotion(s, budget_count=5)
    customers = [UUID(s.ids["C1"]), UUID(s.ids["C2"])]

    async def one(i: int) -> str:
        try:
            async with tx(app, s.t) as session:
                await promos.consume(
                    session, customer_id=customers[i % 2], order_id=new_id(), applications=used(pid)
                )
        except Conflict as exc:
            return exc.code
        return "ok"

    outcomes = await asyncio.gather(*[one(i) for i in range(32)])
    assert outcomes.count("ok") == 5 and outcomes.count("promotion_exhausted") == 27, outcomes
    assert await counters(app, s, pid) == (5, D("50.00"), 5)
    assert await quoted(s, "C1") == ("100.00", [{"promotion_id": pid, "reason": "budget exhausted"}])


async def test_concurrent_orders_of_one_customer_never_exceed_its_limit(app: Any, shop: Shop) -> None:
    s = shop
    pid = await promotion(s, per_customer_limit=2)

    async def one() -> str:
        try:
            await consume(app, s, "C1", used(pid))
        except Conflict as exc:
            return exc.code
        return "ok"

    outcomes = await asyncio.gather(*[one() for _ in range(16)])
    assert outcomes.count("ok") == 2, outcomes
    assert await counters(app, s, pid) == (2, D("20.00"), 2)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=1, max_size=12))
async def test_counters_always_equal_the_consumed_uses(
    app: Any, shop: Shop, ops: list[tuple[bool, int]]
) -> None:
    """Any run of consumes and releases: the promotion's counters are the sum of its consumed
    uses and never exceed its budget."""
    s = shop
    pid = await promotion(s, f"P{new_id().hex[-12:]}", budget_count=3, budget_amount="25.00")
    orders: list[UUID] = []
    for is_consume, n in ops:
        if is_consume or not orders:
            try:
                orders.append(await consume(app, s, "C1", used(pid, f"{n + 1}.00")))
            except Conflict:
                pass
        else:
            await release(app, s, orders[n % len(orders)])
    async with tx(app, s.t) as session:
        p = await session.get(Promotion, (UUID(s.t.id), UUID(pid)))
        assert p is not None
        live = (
            await session.execute(
                select(func.count(PromotionUse.id), func.coalesce(func.sum(PromotionUse.amount), 0)).where(
                    PromotionUse.promotion_id == p.id, PromotionUse.state == "consumed"
                )
            )
        ).one()
    assert (p.used_count, p.used_amount) == (live[0], D(live[1]).quantize(D("0.01")))
    assert p.used_count <= 3 and p.used_amount <= D("25.00")
