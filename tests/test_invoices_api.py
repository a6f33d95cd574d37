"""The invoice pool through the real app (DOMAIN §3): merged and partial invoice requests, the
request states, issuing with the tax maths, receivables for the credit part, the overdue example
end to end, exposure moving from shipped-not-invoiced to receivables and falling on payment,
paying receivables from cash, the invoice settings and dealer visibility."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal as D
from typing import Any
from uuid import UUID, uuid4

import httpx
from sqlalchemy import func, select

from omnicloud.core.models import AuditEntry, OutboxEvent
from omnicloud.policies.terms import service as terms
from omnicloud.pools.funds import service as funds
from omnicloud.pools.invoices import service as invoices
from omnicloud.pools.invoices.models import InvoiceRequest, Receivable
from tests.fixtures import TenantHandle
from tests.test_funds_api import API, account, assert_ledger_balanced, fund_cash, keyed, post, tx
from tests.test_orders_api import Shop, basket, ship, shop, submitted

TITLE = {"title": "D1 Trading Co., Ltd.", "tax_id": "91310000MA1FL0XX1Y"}


# --- helpers ----------------------------------------------------------------------------------


@dataclass
class Orders:
    """Orders A (10 × S0 + 5 × S1 = 150: 100 cash, 50 on credit, shipped in full) and B (3 × S0 =
    30, all on credit, 2 shipped) of dealer D1, whose credit profile gives ``credit_days``."""

    s: Shop
    a: dict[str, Any]
    b: dict[str, Any]
    cash_id: str
    profile_id: str

    def line(self, order: str, line_id: str) -> str:
        o = self.a if order == "A" else self.b
        return next(ln["id"] for ln in o["lines"] if ln["line_id"] == line_id)


async def credit_profile(
    client: httpx.AsyncClient, t: TenantHandle, customer_id: str, limit: str, days: int = 30, grace: int = 3
) -> str:
    body = {"customer_id": customer_id, "credit_limit": limit, "credit_days": days, "grace_days": grace}
    return str((await post(client, t.auth, "/credit-profiles", body))["id"])


async def two_orders(client: httpx.AsyncClient, t: TenantHandle) -> Orders:
    s = await shop(client, t)
    d1 = s.d.keys["D1"]
    profile_id = await credit_profile(client, t, s.d.ids["D1"], "1000.00")
    cash_id = await fund_cash(client, t, s.d.ids["D1"], "100.00", "INV")
    a = await submitted(client, d1, basket(s, "10", "5"))
    b = await submitted(client, d1, basket(s, "3"))
    assert (D(a["totals"]["cash"]), D(a["totals"]["credit_amount"])) == (100, 50)
    assert (D(b["totals"]["cash"]), D(b["totals"]["credit_amount"])) == (0, 30)
    r = await ship(client, t.auth, a["id"], l1="10", l2="5")
    assert r.status_code == 201, r.text
    r = await ship(client, t.auth, b["id"], l1="2")
    assert r.status_code == 201, r.text
    return Orders(s=s, a=a, b=b, cash_id=cash_id, profile_id=profile_id)


async def request(
    client: httpx.AsyncClient, auth: dict[str, str], lines: list[tuple[str, str]], **extra: Any
) -> httpx.Response:
    body = {**TITLE, "lines": [{"order_line_id": i, "quantity": q} for i, q in lines], **extra}
    return await client.post(f"{API}/invoice-requests", headers=keyed(auth, str(uuid4())), json=body)


async def requested(
    client: httpx.AsyncClient, auth: dict[str, str], lines: list[tuple[str, str]], **extra: Any
) -> dict[str, Any]:
    r = await request(client, auth, lines, **extra)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def step(
    client: httpx.AsyncClient, auth: dict[str, str], request_id: str, action: str, body: Any = None
) -> httpx.Response:
    return await client.post(
        f"{API}/invoice-requests/{request_id}/{action}", headers=keyed(auth, str(uuid4())), json=body or {}
    )


async def issued(
    client: httpx.AsyncClient, t: TenantHandle, request_id: str, number: str, **extra: Any
) -> dict[str, Any]:
    r = await step(client, t.auth, request_id, "approve")
    assert r.status_code == 200, r.text
    r = await step(client, t.auth, request_id, "issue", {"invoice_number": number, **extra})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def pay(
    client: httpx.AsyncClient, auth: dict[str, str], receivable_id: str, amount: str, key: str | None = None
) -> httpx.Response:
    return await client.post(
        f"{API}/receivables/{receivable_id}/payments",
        headers=keyed(auth, key or str(uuid4())),
        json={"amount": amount},
    )


async def invoiceable(client: httpx.AsyncClient, auth: dict[str, str], **params: str) -> dict[str, D]:
    r = await client.get(f"{API}/invoiceable-lines", headers=auth, params=params)
    assert r.status_code == 200, r.text
    return {ln["order_line_id"]: D(ln["invoiceable_quantity"]) for ln in r.json()["items"]}


async def exposure(app: Any, t: TenantHandle, customer_id: str) -> Any:
    async with tx(app, t) as session:
        return await terms.exposure_inputs(session, UUID(customer_id))


def money(out: dict[str, Any], *names: str) -> tuple[D, ...]:
    return tuple(D(out[n]) for n in names)


# --- requests -------------------------------------------------------------------------------


async def test_merged_and_partial_requests_take_exactly_what_is_left(client, app, tenant_a):
    t = tenant_a
    o = await two_orders(client, t)
    d1 = o.s.d.keys["D1"]
    a1, a2, b1 = o.line("A", "1"), o.line("A", "2"), o.line("B", "1")
    assert await invoiceable(client, d1) == {a1: 10, a2: 5, b1: 2}  # B's third unit is not shipped

    merged = await requested(client, d1, [(a1, "4"), (b1, "2")], address="1 Bund Rd, Shanghai")
    assert (merged["status"], merged["customer_id"], merged["allowed_actions"]) == (
        "requested",
        o.s.d.ids["D1"],
        ["approve", "reject", "cancel"],
    )
    assert merged["number"].startswith("IR") and merged["invoice"] is None
    assert [(ln["order_line_id"], D(ln["quantity"]), D(ln["amount"])) for ln in merged["lines"]] == [
        (a1, 4, 40),
        (b1, 2, 20),
    ]
    assert (D(merged["amount"]), merged["title"], merged["tax_id"]) == (60, TITLE["title"], TITLE["tax_id"])
    assert await invoiceable(client, d1) == {a1: 6, a2: 5}

    r = await request(client, d1, [(a2, "5"), (a1, "7")])
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "bad_invoice_request"
    assert [e["field"] for e in problem["errors"]] == ["lines[1].quantity"]
    assert "only 6 of order" in problem["errors"][0]["message"] and "already requested 4" in r.text
    assert await invoiceable(client, d1) == {a1: 6, a2: 5}  # a refused request holds nothing

    rest = await requested(client, d1, [(a1, "6"), (a2, "5")])
    assert money(rest, "amount") == (110,)
    assert await invoiceable(client, d1) == {}
    r = await step(client, t.auth, rest["id"], "reject", {"reason": "wrong title"})
    assert r.status_code == 200 and r.json()["status"] == "rejected", r.text
    assert await invoiceable(client, d1) == {a1: 6, a2: 5}  # rejected quantities are free again

    r = await client.get(f"{API}/invoice-requests/{merged['id']}", headers=d1)
    assert r.status_code == 200 and r.json() == merged
    r = await client.get(f"{API}/invoice-requests", headers=t.auth, params={"status": "rejected"})
    assert [x["id"] for x in r.json()["items"]] == [rest["id"]]


async def test_request_input_problems_are_422s_naming_the_line(client, tenant_a):
    t = tenant_a
    o = await two_orders(client, t)
    d1, d2 = o.s.d.keys["D1"], o.s.d.keys["D2"]
    a1 = o.line("A", "1")
    cases = [
        ([(str(uuid4()), "1")], "lines[0].order_line_id"),
        ([(a1, "1"), (a1, "1")], "lines[1].order_line_id"),
        ([(a1, "10.5")], "lines[0].quantity"),
    ]
    for lines, field in cases:
        r = await request(client, d1, lines)
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == [field], r.text
    r = await request(client, d2, [(a1, "1")])  # D2 cannot invoice D1's lines
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "lines[0].order_line_id"
    r = await request(client, t.auth, [(a1, "1")])  # staff name the customer
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "customer_id"
    r = await request(client, d1, [(a1, "1")], customer_id=o.s.d.ids["D1a"])
    assert (r.status_code, r.json()["code"]) == (403, "not_yours")
    r = await client.post(
        f"{API}/invoice-requests",
        headers=d1,
        json={**TITLE, "lines": [{"order_line_id": a1, "quantity": "1"}]},
    )
    assert r.status_code == 428
    staff = await requested(client, t.auth, [(a1, "1")], customer_id=o.s.d.ids["D1"])
    assert staff["customer_id"] == o.s.d.ids["D1"]


async def test_states_illegal_moves_are_409_and_only_the_requester_cancels(client, app, tenant_a):
    t = tenant_a
    o = await two_orders(client, t)
    d1, a1 = o.s.d.keys["D1"], o.line("A", "1")
    first = await requested(client, d1, [(a1, "1")])
    r = await step(client, t.auth, first["id"], "cancel")
    assert (r.status_code, r.json()["code"]) == (403, "not_the_requester")
    r = await step(client, t.auth, first["id"], "issue", {"invoice_number": "N1"})
    assert (r.status_code, r.json()["code"]) == (409, "illegal_transition")
    r = await step(client, d1, first["id"], "approve")
    assert r.status_code == 403  # dealers have no invoices:approve
    r = await step(client, d1, first["id"], "cancel", {"reason": "typo"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    assert [(h["action"], h["to_status"]) for h in r.json()["history"]] == [
        ("request", "requested"),
        ("cancel", "cancelled"),
    ]
    for action in ("approve", "reject", "cancel"):
        r = await step(client, t.auth if action != "cancel" else d1, first["id"], action)
        assert (r.status_code, r.json()["code"]) == (409, "illegal_transition"), (action, r.text)

    second = await requested(client, d1, [(a1, "1")])
    assert (await step(client, t.auth, second["id"], "approve")).status_code == 200
    r = await step(client, d1, second["id"], "cancel")
    assert (r.status_code, r.json()["code"]) == (409, "illegal_transition")  # approved: too late
    r = await step(client, t.auth, second["id"], "issue", {"invoice_number": "INV-0001"})
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["status"], done["allowed_actions"]) == ("issued", [])
    for action in ("approve", "reject", "cancel", "issue"):
        who = d1 if action == "cancel" else t.auth
        r = await step(
            client, who, second["id"], action, {"invoice_number": "X"} if action == "issue" else None
        )
        assert (r.status_code, r.json()["code"]) == (409, "illegal_transition"), (action, r.text)
    async with tx(app, t) as session:
        actions = (
            await session.scalars(select(AuditEntry.action).where(AuditEntry.object_id == second["id"]))
        ).all()
        kinds = (
            await session.scalars(select(OutboxEvent.type).where(OutboxEvent.type.like("invoice_request.%")))
        ).all()
    assert sorted(actions) == ["approve", "issue", "request"]
    assert "invoice_request.issued" in kinds and "invoice_request.cancelled" in kinds


# --- issuing and receivables ----------------------------------------------------------------


async def test_issue_taxes_the_amount_and_opens_a_receivable_for_the_credit_part(client, app, tenant_a):
    t = tenant_a
    o = await two_orders(client, t)
    d1 = o.s.d.keys["D1"]
    a1, a2, b1 = o.line("A", "1"), o.line("A", "2"), o.line("B", "1")
    merged = await requested(client, d1, [(a1, "4"), (b1, "2")])
    out = await issued(client, t, merged["id"], "04400001", issue_date=funds.business_day().isoformat())
    invoice = out["invoice"]
    # 60 at 13%: tax = round(60 × 0.13 ÷ 1.13) = 6.90. Credit: A's 40 of 150 at 50/150 → 13.33,
    # B's 20 of its 30, all on credit → 20.00.
    assert money(invoice, "amount", "tax_rate", "net_amount", "tax_amount", "credit_amount") == (
        60,
        D("0.13"),
        D("53.10"),
        D("6.90"),
        D("33.33"),
    )
    assert [D(ln["credit_amount"]) for ln in out["lines"]] == [D("13.33"), D("20.00")]
    rec = (await client.get(f"{API}/receivables/{invoice['receivable_id']}", headers=d1)).json()
    today = funds.business_day()
    assert (D(rec["amount"]), D(rec["outstanding"]), rec["status"], rec["invoice_number"]) == (
        D("33.33"),
        D("33.33"),
        "open",
        "04400001",
    )
    assert (date.fromisoformat(rec["due_date"]) - today).days == 30 and rec["grace_days"] == 3

    rest = await requested(client, d1, [(a1, "6"), (a2, "5")])
    r = await step(client, t.auth, rest["id"], "approve")
    r = await step(client, t.auth, rest["id"], "issue", {"invoice_number": "04400001"})
    assert (r.status_code, r.json()["code"]) == (409, "duplicate_invoice_number")
    r = await step(client, t.auth, rest["id"], "issue", {"invoice_number": "04400002", "amount": "100.00"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "amount"
    r = await step(
        client, t.auth, rest["id"], "issue", {"invoice_number": "04400002", "issue_date": "2999-01-01"}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "issue_date"
    r = await step(
        client,
        t.auth,
        rest["id"],
        "issue",
        {"invoice_number": "04400002", "amount": "110.00", "tax_rate": "0.06"},
    )
    assert r.status_code == 200, r.text
    second = r.json()["invoice"]
    # A's credit part is now complete: 50 in all over its two invoices, whatever the rounding.
    assert money(second, "tax_rate", "net_amount", "tax_amount", "credit_amount") == (
        D("0.06"),
        D("103.77"),
        D("6.23"),
        D("36.67"),
    )
    async with tx(app, t) as session:
        by_order = (await session.execute(select(func.sum(InvoiceRequest.credit_amount)))).scalar()
        assert D(by_order) == D("70.00")  # A's 50 + B's 20 of its 30 (one unit is not shipped)
        basis = await invoices.invoiced_basis(session, today, today)
    assert basis == sorted(
        [
            (UUID(o.s.d.ids["D1"]), UUID(o.s.skus[0]), D("120.00")),
            (UUID(o.s.d.ids["D1"]), UUID(o.s.skus[1]), D("50.00")),
        ]
    )


async def test_the_overdue_example_blocks_through_the_real_api(client, app, tenant_a, monkeypatch):
    """DOMAIN §3: an invoice of 8,000 due 2024-03-31 with 3 grace days, checked on 2024-04-05 →
    overdue → block (and not yet on 2024-04-03, the last day of grace)."""
    t = tenant_a
    s = await shop(client, t, skus=1, stock="1000")
    d1_id, d1 = s.d.ids["D1"], s.d.keys["D1"]
    await credit_profile(client, t, d1_id, "100000.00", days=30, grace=3)
    await post(
        client, t.auth, "/credit-rules", {"check_point": "submit", "over_limit": "warn", "overdue": "block"}
    )
    order = await submitted(client, d1, basket(s, "800"))
    assert D(order["totals"]["credit_amount"]) == 8000
    assert (await ship(client, t.auth, order["id"], l1="800")).status_code == 201
    req = await requested(client, d1, [(order["lines"][0]["id"], "800")])
    out = await issued(client, t, req["id"], "24000001", issue_date="2024-03-01")
    rec_id = out["invoice"]["receivable_id"]
    rec = (await client.get(f"{API}/receivables/{rec_id}", headers=d1)).json()
    assert (rec["due_date"], rec["grace_ends_on"], D(rec["amount"])) == ("2024-03-31", "2024-04-03", 8000)

    def quote_on(day: str) -> Any:
        return client.post(f"{API}/quotes", headers=d1, json={"lines": basket(s, "1")["lines"], "date": day})

    r = await quote_on("2024-04-03")
    assert r.status_code == 200 and r.json()["credit"]["action"] == "pass", r.text
    r = await quote_on("2024-04-05")
    verdict = r.json()["credit"]
    assert (verdict["action"], verdict["overdue"], verdict["reasons"]) == (
        "block",
        [rec_id],
        ["1 receivable(s) overdue, 8000.00 in all"],
    )
    monkeypatch.setattr(funds, "business_day", lambda: date(2024, 4, 5))
    r = await client.post(f"{API}/orders", headers=keyed(d1, str(uuid4())), json=basket(s, "1"))
    assert (r.status_code, r.json()["code"]) == (409, "credit_blocked"), r.text
    assert "overdue" in r.json()["detail"]
    r = await client.get(f"{API}/receivables", headers=d1, params={"status": "overdue"})
    assert [x["id"] for x in r.json()["items"]] == [rec_id]

    monkeypatch.undo()
    await fund_cash(client, t, d1_id, "8000.00", "PAYOFF")
    r = await pay(client, d1, rec_id, "8000.00")
    assert r.status_code == 201 and r.json()["status"] == "paid", r.text
    r = await quote_on("2024-04-05")
    assert (r.json()["credit"]["action"], r.json()["credit"]["overdue"]) == ("pass", [])  # paid: none overdue


async def test_exposure_moves_to_receivables_and_falls_with_payment(client, app, tenant_a):
    t = tenant_a
    o = await two_orders(client, t)
    d1_id, d1 = o.s.d.ids["D1"], o.s.d.keys["D1"]
    before = await exposure(app, t, d1_id)
    assert before.receivables == 0
    total = before.open_orders + before.shipped_not_invoiced
    req = await requested(client, d1, [(o.line("A", "1"), "10"), (o.line("A", "2"), "5")])
    out = await issued(client, t, req["id"], "EXP-1")
    rec_id = out["invoice"]["receivable_id"]
    after = await exposure(app, t, d1_id)
    assert after.receivables == 50  # all of A's credit part
    assert after.shipped_not_invoiced - before.shipped_not_invoiced == -50
    assert after.open_orders == before.open_orders
    assert after.open_orders + after.shipped_not_invoiced + after.receivables == total  # moved, not added

    r = await pay(client, d1, rec_id, "30.00")
    assert r.status_code == 409 and r.json()["code"] == "insufficient_funds", r.text  # cash went to order A
    assert (await exposure(app, t, d1_id)).receivables == 50  # a refused payment changes nothing
    await fund_cash(client, t, d1_id, "45.00", "PAY")
    key = str(uuid4())
    r = await pay(client, d1, rec_id, "30.00", key)
    assert r.status_code == 201, r.text
    part = r.json()
    assert (part["status"], D(part["paid_amount"]), D(part["outstanding"])) == ("open", 30, 20)
    replay = await pay(client, d1, rec_id, "30.00", key)
    assert replay.json() == part and replay.headers.get("Idempotent-Replayed") == "true"
    assert (await exposure(app, t, d1_id)).receivables == 20
    cash = await account(client, d1, o.cash_id)
    assert (D(cash["balance"]), D(cash["held"])) == (15, 0)  # 100 + 45 − 100 (order A) − 30

    r = await pay(client, d1, rec_id, "20.01")
    assert (r.status_code, r.json()["code"]) == (409, "exceeds_outstanding")
    r = await pay(client, d1, rec_id, "20.00")
    assert r.status_code == 409 and r.json()["code"] == "insufficient_funds"
    await fund_cash(client, t, d1_id, "5.00", "PAY2")
    r = await pay(client, d1, rec_id, "20.00")
    assert r.status_code == 201, r.text
    paid = r.json()
    assert (paid["status"], D(paid["outstanding"]), len(paid["payments"])) == ("paid", 0, 2)
    assert (await exposure(app, t, d1_id)).receivables == 0
    r = await client.get(f"{API}/receivables", headers=d1, params={"status": "paid"})
    assert [x["id"] for x in r.json()["items"]] == [rec_id]
    r = await pay(client, d1, rec_id, "0.01")
    assert (r.status_code, r.json()["code"]) == (409, "exceeds_outstanding")
    await assert_ledger_balanced(app, t)
    async with tx(app, t) as session:
        assert (await session.scalar(select(Receivable.paid_amount))) == 50


async def test_no_receivable_without_credit_and_dealers_see_their_subtree(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    d1, d2, d1a = s.d.keys["D1"], s.d.keys["D2"], s.d.keys["D1a"]
    await fund_cash(client, t, s.d.ids["D1a"], "100.00", "SUB")
    order = await submitted(client, d1a, basket(s, "2"))
    assert (await ship(client, t.auth, order["id"], l1="2")).status_code == 201
    req = await requested(client, d1a, [(order["lines"][0]["id"], "2")])
    out = await issued(client, t, req["id"], "CASH-1")
    assert (D(out["invoice"]["credit_amount"]), out["invoice"]["receivable_id"]) == (0, None)

    r = await client.get(f"{API}/invoice-requests/{req['id']}", headers=d1)  # its sub-dealer's
    assert r.status_code == 200
    r = await step(client, d1, req["id"], "cancel")
    assert (r.status_code, r.json()["code"]) == (403, "not_yours")
    r = await client.get(f"{API}/invoice-requests/{req['id']}", headers=d2)
    assert r.status_code == 404
    r = await client.get(f"{API}/invoice-requests", headers=d2)
    assert r.json()["items"] == []
    assert await invoiceable(client, d2) == {}


async def test_invoice_settings_give_the_default_rate(client, tenant_a):
    t = tenant_a
    r = await client.get(f"{API}/invoice-settings", headers=t.auth)
    assert r.status_code == 200 and r.json()["tax_rate"] == "0.13" and r.headers["etag"] == '"0"'
    r = await client.put(f"{API}/invoice-settings", headers=t.auth, json={"tax_rate": "0.09"})
    assert r.status_code == 428
    r = await client.put(
        f"{API}/invoice-settings", headers={**t.auth, "If-Match": '"3"'}, json={"tax_rate": "0.09"}
    )
    assert r.status_code == 412
    r = await client.put(
        f"{API}/invoice-settings", headers={**t.auth, "If-Match": '"0"'}, json={"tax_rate": "1"}
    )
    assert r.status_code == 422
    r = await client.put(
        f"{API}/invoice-settings", headers={**t.auth, "If-Match": '"0"'}, json={"tax_rate": "0.09"}
    )
    assert r.status_code == 200 and r.json()["version"] == 1, r.text
    o = await two_orders(client, t)
    req = await requested(client, o.s.d.keys["D1"], [(o.line("B", "1"), "2")])
    out = await issued(client, t, req["id"], "RATE-9")
    # 20 at 9%: tax = round(20 × 0.09 ÷ 1.09) = 1.65.
    assert money(out["invoice"], "tax_rate", "net_amount", "tax_amount") == (D("0.09"), D("18.35"), D("1.65"))
