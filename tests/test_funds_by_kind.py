"""Posting and refunding by account kind, as shipments and returns use them: a shipment posts
the fee, rebate and cash parts of exactly the goods it ships; a return refunds each kind's part,
never more of a kind than the document posted of it, and a retry moves nothing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D
from uuid import UUID, uuid4

import pytest

from omnicloud.core.errors import Conflict
from omnicloud.pools.funds import service as funds
from omnicloud.pools.funds.schemas import Reference
from tests.test_funds_api import TODAY, assert_ledger_balanced, dealers, fund_cash, tx
from tests.test_funds_holds import balances, grant, order, pay


async def test_post_and_refund_by_kind(client, app, tenant_a):
    t = tenant_a
    d = await dealers(client, t)
    cid = d.ids["D1"]
    cash = await fund_cash(client, t, cid, "1000.00", "K-1")
    early = await grant(client, t, cid, "60.00", (TODAY + timedelta(days=5)).isoformat())
    late = await grant(client, t, cid, "100.00", (TODAY + timedelta(days=50)).isoformat())
    async with tx(app, t) as s:
        await funds.credit_rebate(
            s,
            customer_id=UUID(cid),
            sales_org_id=None,
            amount=D("500.00"),
            reference=Reference(type="rebate_settlement", id=uuid4()),
            key="k-rebate",
        )
    ref = await pay(
        app, t, cid, order(("1000.00", "150.00"), rebate_cap=D("100.00"))
    )  # fee 60+90, rebate 100
    async with tx(app, t) as s:
        with pytest.raises(Conflict) as exc:
            await funds.post_holds(s, ref, by_kind={"special": D("1.00")})
        assert exc.value.code == "exceeds_holds"
    async with tx(app, t) as s:
        with pytest.raises(Conflict) as exc:
            await funds.post_holds(s, ref, by_kind={"fee": D("150.01")})
        assert exc.value.code == "exceeds_holds"
    async with tx(app, t) as s:
        posted = await funds.post_holds(
            s, ref, by_kind={"fee": D("75.00"), "rebate": D("50.00"), "cash": D("375.00")}
        )
        assert posted is not None and sum(leg.amount for leg in posted.legs if leg.amount > 0) == 500
        assert await funds.post_holds(s, ref, by_kind={"fee": D(0)}) is None
    # fees post earliest expiry first: 60 from the early account, 15 from the late one
    assert await balances(client, t, early, late, cash) == [(0, 0), (85, 75), (625, 375)]
    async with tx(app, t) as s:
        with pytest.raises(Conflict) as exc:
            await funds.refund(s, ref, key="r-too-much", by_kind={"rebate": D("50.01")})
        assert exc.value.code == "exceeds_refundable"
    async with tx(app, t) as s:
        first = await funds.refund(s, ref, key="r-1", by_kind={"fee": D("20.00"), "cash": D("100.00")})
        again = await funds.refund(s, ref, key="r-1", by_kind={"fee": D("20.00"), "cash": D("100.00")})
        assert first is not None and again is not None and again.id == first.id
        assert await funds.refund(s, ref, key="r-2", by_kind={"fee": D(0)}) is None
    # the fee goes back latest expiry first: the late account's 15, then 5 to the early one
    assert await balances(client, t, early, late, cash) == [(5, 0), (100, 75), (725, 375)]
    async with tx(app, t) as s:
        rest = await funds.refund(
            s, ref, key="r-3", by_kind={"fee": D("55.00"), "rebate": D("50.00"), "cash": D("275.00")}
        )
        assert rest is not None
        with pytest.raises(Conflict):
            await funds.refund(s, ref, key="r-4", by_kind={"cash": D("0.01")})
    assert await balances(client, t, early, late, cash) == [(60, 0), (100, 75), (1000, 375)]
    await assert_ledger_balanced(app, t)
