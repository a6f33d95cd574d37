"""Concurrent freezes, posts, voids and refunds against one customer's money. On PostgreSQL they
really race (row locks and conditional UPDATEs decide); on SQLite writers serialize, which must
give the same answers."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from typing import Any
from uuid import UUID, uuid4

from omnicloud.core.errors import Problem
from omnicloud.pools.funds import service as funds
from omnicloud.pools.funds.schemas import Reference
from tests.test_funds_api import account, assert_ledger_balanced, dealers, entries, fund_cash, tx
from tests.test_funds_holds import order, pay

K = 23
PRICE = D("10.00")


async def test_sixty_four_freezes_against_a_balance_for_exactly_k(client, app, tenant_a):
    t = tenant_a
    d = await dealers(client, t)
    cid = d.ids["D1"]
    cash = await fund_cash(client, t, cid, str(PRICE * K), "RACE")

    async def submit() -> tuple[int, str]:
        try:
            await pay(app, t, cid, order((str(PRICE), "0")))
        except Problem as exc:
            return exc.status, exc.code
        return 201, "frozen"

    outcomes = await asyncio.gather(*[submit() for _ in range(64)])
    assert outcomes.count((201, "frozen")) == K, outcomes
    assert outcomes.count((409, "insufficient_funds")) == 64 - K, outcomes
    got = await account(client, t.auth, cash)
    assert (D(got["balance"]), D(got["held"]), D(got["available"])) == (PRICE * K, PRICE * K, 0)
    r = await client.get(f"/api/v1/fund-accounts/{cash}/holds", headers=t.auth, params={"limit": 200})
    assert [h["state"] for h in r.json()["items"]] == ["placed"] * K  # the losers left no hold
    assert len(await entries(client, t.auth, cash)) == 1  # freezes move no money
    await assert_ledger_balanced(app, t)


async def _try(app: Any, t: Any, work: Any) -> Any:
    try:
        async with tx(app, t) as s:
            return await work(s)
    except Problem as exc:
        return exc.code


async def test_concurrent_posts_and_voids_of_one_order_close_its_holds_once(client, app, tenant_a):
    t = tenant_a
    d = await dealers(client, t)
    cid = d.ids["D1"]
    cash = await fund_cash(client, t, cid, "100.00", "ONCE")
    ref = await pay(app, t, cid, order(("60.00", "0")))
    jobs = [funds.post_holds if i % 2 else funds.void_holds for i in range(12)]
    results = await asyncio.gather(*[_try(app, t, lambda s, job=job: job(s, ref)) for job in jobs])
    winners = [r for r in results if r not in (None, [], "holds_closed", "duplicate_transfer")]
    assert len(winners) == 1, results
    async with tx(app, t) as s:
        [hold] = await funds.holds_for(s, ref)
    got = await account(client, t.auth, cash)
    if hold.state == "posted":
        assert (D(got["balance"]), D(got["held"])) == (40, 0)
    else:
        assert (hold.state, D(got["balance"]), D(got["held"])) == ("voided", 100, 0)
    await assert_ledger_balanced(app, t)


async def test_concurrent_refunds_with_one_key_refund_once(client, app, tenant_a):
    t = tenant_a
    d = await dealers(client, t)
    cid = d.ids["D1"]
    cash = await fund_cash(client, t, cid, "100.00", "REFUND")
    ref = await pay(app, t, cid, order(("60.00", "0")))
    async with tx(app, t) as s:
        await funds.post_holds(s, ref)
    results = await asyncio.gather(
        *[_try(app, t, lambda s: funds.refund(s, ref, D("25.00"), key="return-7")) for _ in range(10)]
    )
    transfers = {r.id for r in results if not isinstance(r, str)}
    assert len(transfers) == 1 and set(r for r in results if isinstance(r, str)) <= {"duplicate_transfer"}
    assert D((await account(client, t.auth, cash))["balance"]) == 65
    other = Reference(type="order", id=uuid4())
    assert await _try(app, t, lambda s: funds.refund(s, other, key="return-7")) == "idempotency_key_reused"
    await assert_ledger_balanced(app, t)


async def test_concurrent_freezes_of_two_customers_each_get_their_own_funded_count(client, app, tenant_a):
    t = tenant_a
    d = await dealers(client, t)
    ids = [d.ids["D1"], d.ids["D2"]]
    for i, cid in enumerate(ids):
        await fund_cash(client, t, cid, "50.00", f"TWO-{i}")
    outcomes = await asyncio.gather(*[_try(app, t, lambda s, cid=cid: _freeze(s, cid)) for cid in ids * 8])
    assert sum(isinstance(o, list) for o in outcomes) == 10  # five of 10.00 for each customer
    await assert_ledger_balanced(app, t)


async def _freeze(s: Any, customer_id: str) -> Any:
    cid = UUID(customer_id)
    plan = await funds.plan_payment(s, customer_id=cid, sales_org_id=None, request=order((str(PRICE), "0")))
    return await funds.freeze(
        s, customer_id=cid, sales_org_id=None, plan=plan, reference=Reference(type="o", id=uuid4())
    )
