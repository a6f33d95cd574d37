"""Concurrent invoice requests, issues and receivable payments through the real app. On
PostgreSQL they really race (row locks and conditional UPDATEs decide); on SQLite writers
serialize, which must give the same answers."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from uuid import UUID

from sqlalchemy import func, select

from omnicloud.pools.invoices.models import InvoiceRequestLine, Receivable, ReceivablePayment
from tests.test_funds_api import API, account, assert_ledger_balanced, fund_cash, tx
from tests.test_invoices_api import issued, pay, request, requested, step, two_orders


async def test_concurrent_requests_for_the_same_units_exactly_one_wins(client, app, tenant_a):
    t = tenant_a
    o = await two_orders(client, t)
    d1 = o.s.d.keys["D1"]
    a1, b1 = o.line("A", "1"), o.line("B", "1")
    await requested(client, d1, [(a1, "4")])  # 6 of 10 left on A's first line
    responses = await asyncio.gather(
        *[request(client, d1, [(b1, "1"), (a1, "6")]) for _ in range(6)],
        *[request(client, t.auth, [(a1, "6")], customer_id=o.s.d.ids["D1"]) for _ in range(2)],
    )
    codes = [(r.status_code, r.json().get("code")) for r in responses]
    assert sum(r.status_code == 201 for r in responses) == 1, codes
    assert codes.count((422, "bad_invoice_request")) == 7, codes
    for r in responses:
        if r.status_code == 422:
            assert "lines" in r.json()["errors"][0]["field"], r.text
    async with tx(app, t) as session:
        held = await session.scalar(
            select(func.sum(InvoiceRequestLine.quantity)).where(InvoiceRequestLine.order_line_id == UUID(a1))
        )
    assert held == 10


async def test_concurrent_issues_of_one_number_exactly_one_wins(client, tenant_a):
    t = tenant_a
    o = await two_orders(client, t)
    d1 = o.s.d.keys["D1"]
    ids = []
    for line in (o.line("A", "1"), o.line("A", "2"), o.line("B", "1")):
        req = await requested(client, d1, [(line, "1")])
        assert (await step(client, t.auth, req["id"], "approve")).status_code == 200
        ids.append(req["id"])
    responses = await asyncio.gather(
        *[step(client, t.auth, rid, "issue", {"invoice_number": "SAME-1"}) for rid in ids]
    )
    codes = sorted((r.status_code, r.json().get("code")) for r in responses)
    assert codes == [(200, None), (409, "duplicate_invoice_number"), (409, "duplicate_invoice_number")], codes


async def test_concurrent_payments_never_overpay(client, app, tenant_a):
    t = tenant_a
    o = await two_orders(client, t)
    d1_id, d1 = o.s.d.ids["D1"], o.s.d.keys["D1"]
    req = await requested(client, d1, [(o.line("A", "1"), "10"), (o.line("A", "2"), "5")])
    rec_id = (await issued(client, t, req["id"], "RACE-1"))["invoice"]["receivable_id"]  # 50 owed
    await fund_cash(client, t, d1_id, "200.00", "RACE")
    responses = await asyncio.gather(*[pay(client, d1, rec_id, "10.00") for _ in range(12)])
    codes = [(r.status_code, r.json().get("code")) for r in responses]
    assert sum(r.status_code == 201 for r in responses) == 5, codes
    assert codes.count((409, "exceeds_outstanding")) == 7, codes
    got = (await client.get(f"{API}/receivables/{rec_id}", headers=d1)).json()
    assert (got["status"], D(got["paid_amount"]), len(got["payments"])) == ("paid", 50, 5)
    cash = await account(client, d1, o.cash_id)
    assert (D(cash["balance"]), D(cash["held"])) == (150, 0)
    async with tx(app, t) as session:
        assert await session.scalar(select(func.sum(ReceivablePayment.amount))) == 50
        assert await session.scalar(select(Receivable.paid_amount)) == 50
    await assert_ledger_balanced(app, t)
