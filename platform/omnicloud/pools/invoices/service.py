"""The invoice pool (发票池): invoice requests (开票申请), issuing, receivables (应收) and their
payments.

Requesting. A dealer (for itself) or staff (naming the customer) asks for an invoice over shipped
quantities of one customer's orders: several orders in one request (merged) and part of a line
(partial) are both fine, as long as every order has the request's sales org. What a line may
still be requested for is shipped − returned − what live requests (requested, approved or
issued) already hold. The order lines are read ``FOR UPDATE`` (in id order) before the live
requests are summed, so of two concurrent requests for the last units exactly one gets them;
the other is a 422 naming its line. A line's amount is its share of the order line's ``due``
(payable − fee offset − rebate; the rebate is an on-invoice discount) by cumulative shares
(``engine.line_amount``), so the requests of a line add up to its ``due`` exactly.

Status. Every step goes through ``states`` with one conditional UPDATE on ``(id, status,
version)`` (409 ``illegal_transition`` or ``invoice_request_changed``), then writes the history,
audit entry and outbox event. Approve and reject are the brand's; cancel is the requester's
(a dealer's user for its own customer, or the staff user who filed it), before approval.

Issuing writes the invoice onto the request: its number (unique per tenant: 409
``duplicate_invoice_number``), issue date (today or earlier), tax rate (the body's or the
tenant's setting, 13% until changed) and the tax maths of ``engine.tax_split``. It then works
out the part of the invoice that was on credit: per order, the order's ``credit_amount`` share
(``credit_amount ÷ due``) of the amount invoiced, by cumulative shares over the order's issued
invoices (the orders are locked while it counts), so an order invoiced in full has exactly its
credit part invoiced. That part becomes one receivable, due ``credit_days`` after the issue date
and overdue after ``grace_days`` more (the customer's credit profile for the request's sales
org, else its profile without one; no profile: due on the issue date, no grace).

Credit exposure. The pool registers an exposure source with ``terms``: ``receivables`` is what
is unpaid of the customer's receivables, and ``shipped_not_invoiced`` is minus the credit part of
its issued invoices (the order pool counts the shipped credit part as shipped-not-invoiced, so
issuing moves it to receivables). ``terms.open_receivables`` reads :func:`unpaid_receivables`
for the overdue check.

Paying a receivable takes cash: one conditional UPDATE raises ``paid_amount`` only while it stays
within ``amount`` (so concurrent payments never overpay: 409 ``exceeds_outstanding``), then the
cash account is frozen (``funds.freeze``, a cash-only plan, ``Reference(type="receivable")``) and
the hold posted at once (``funds.post_holds``): 409 ``insufficient_funds`` when the cash is short,
and the whole payment rolls back. The API needs an Idempotency-Key, so a retry pays nothing more.
A payment lowers the receivable and with it the customer's exposure.

Dealer users see the requests and receivables of their customer subtree (others answer 404) and
act only on their own customer's (403 for a sub-dealer's).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import and_, case, false, func, literal_column, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from omnicloud.channels import service as channels
from omnicloud.core import audit, events
from omnicloud.core.db import Money, is_unique_violation, utcnow
from omnicloud.core.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    Unprocessable,
    field_error,
    invalid,
)
from omnicloud.core.ids import new_id
from omnicloud.core.paging import paged_query, split_page
from omnicloud.core.security import Principal
from omnicloud.core.tenancy import require_tenant
from omnicloud.policies import credit
from omnicloud.policies.terms import service as terms
from omnicloud.pools import payment
from omnicloud.pools.funds import service as funds
from omnicloud.pools.funds.schemas import Reference
from omnicloud.pools.invoices import engine, states
from omnicloud.pools.invoices.models import (
    InvoiceRequest,
    InvoiceRequestEvent,
    InvoiceRequestLine,
    InvoiceSetting,
    Receivable,
    ReceivableCredit,
    ReceivablePayment,
)
from omnicloud.pools.invoices.schemas import (
    InvoiceableLineOut,
    InvoiceOut,
    InvoiceRequestIn,
    InvoiceRequestOut,
    InvoiceRequestSummary,
    InvoiceSettingsIn,
    InvoiceSettingsOut,
    IssueIn,
    PaymentIn,
    ReceivableOut,
    ReceivablePaymentOut,
    ReceivableSummary,
    RequestEventOut,
    RequestLineOut,
)
from omnicloud.pools.orders import returns as orders_returns
from omnicloud.pools.orders.models import Order, OrderLine
from omnicloud.pools.rebates import service as rebate_accruals

ZERO = Decimal("0.00")
QUANTUM = Decimal("0.0001")
HALF_QUANTUM = Decimal("0.00005")  # a quantity left above this is at least one quantum
REFERENCE_TYPE = "receivable"
LIVE = tuple(sorted(states.ACTIVE))
MAX_PROFILES = 1000


def fund_reference(receivable_id: UUID) -> Reference:
    """The reference of a receivable's payments in the ledger."""
    return Reference(type=REFERENCE_TYPE, id=receivable_id)


def request_number(request_id: UUID, day: date) -> str:
    """A readable number (``IR261129-…``): the day, then the random tail of the UUIDv7 id."""
    return f"IR{day:%y%m%d}-{request_id.hex[-10:].upper()}"


def _cents(expr: Any) -> Any:
    # SQLite computes in floating point: round every result to the column's cents.
    return func.round(expr, literal_column("2"), type_=Money)


def _on(a: Any, b: Any, a_col: Any, b_col: Any) -> Any:
    """A join of two tenant tables on ``a_col = b_col`` within one tenant."""
    return and_(a.tenant_id == b.tenant_id, a_col == b_col)


# --- reading ----------------------------------------------------------------------------------


def _invoice_out(r: InvoiceRequest, receivable_id: UUID | None) -> InvoiceOut | None:
    if r.status != "issued":
        return None
    assert r.invoice_number and r.issue_date and r.tax_rate is not None
    assert r.net_amount is not None and r.tax_amount is not None and r.credit_amount is not None
    return InvoiceOut(
        invoice_number=r.invoice_number,
        issue_date=r.issue_date,
        amount=r.amount,
        tax_rate=r.tax_rate,
        net_amount=r.net_amount,
        tax_amount=r.tax_amount,
        credit_amount=r.credit_amount,
        receivable_id=receivable_id,
    )


def _summary_fields(r: InvoiceRequest, receivable_id: UUID | None) -> dict[str, Any]:
    return {
        "id": r.id,
        "number": r.number,
        "customer_id": r.customer_id,
        "sales_org_id": r.sales_org_id,
        "status": r.status,
        "version": r.version,
        "title": r.title,
        "tax_id": r.tax_id,
        "address": r.address,
        "bank_account": r.bank_account,
        "note": r.note,
        "amount": r.amount,
        "invoice": _invoice_out(r, receivable_id),
        "allowed_actions": states.allowed(r.status),  # type: ignore[arg-type]
        "requested_by": r.requested_by,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
    }


def _line_out(ln: InvoiceRequestLine) -> RequestLineOut:
    return RequestLineOut(
        id=ln.id,
        order_id=ln.order_id,
        order_line_id=ln.order_line_id,
        sku_id=ln.sku_id,
        quantity=ln.quantity,
        amount=ln.amount,
        credit_amount=ln.credit_amount,
    )


def _event_out(e: InvoiceRequestEvent) -> RequestEventOut:
    return RequestEventOut(
        id=e.id,
        action=e.action,
        from_status=e.from_status,
        to_status=e.to_status,
        detail=e.detail,
        actor=e.actor,
        at=e.at,
    )


async def _receivable_ids(session: AsyncSession, request_ids: Sequence[UUID]) -> dict[UUID, UUID]:
    if not request_ids:
        return {}
    rows = await session.execute(
        select(Receivable.request_id, Receivable.id).where(Receivable.request_id.in_(request_ids))
    )
    return {request_id: receivable_id for request_id, receivable_id in rows}


async def _request_lines(session: AsyncSession, request_id: UUID) -> list[InvoiceRequestLine]:
    rows = await session.scalars(
        select(InvoiceRequestLine)
        .where(InvoiceRequestLine.request_id == request_id)
        .order_by(InvoiceRequestLine.position)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def _full_out(session: AsyncSession, r: InvoiceRequest) -> InvoiceRequestOut:
    lines = await _request_lines(session, r.id)
    history = (
        await session.scalars(
            select(InvoiceRequestEvent)
            .where(InvoiceRequestEvent.request_id == r.id)
            .order_by(InvoiceRequestEvent.id)
        )
    ).all()
    receivable = (await _receivable_ids(session, [r.id])).get(r.id)
    return InvoiceRequestOut(
        **_summary_fields(r, receivable),
        lines=[_line_out(ln) for ln in lines],
        history=[_event_out(e) for e in history],
    )


async def _visible_request(session: AsyncSession, principal: Principal, request_id: UUID) -> InvoiceRequest:
    """The request if the caller may see it; otherwise 404, whether or not it exists."""
    r = await session.get(InvoiceRequest, (require_tenant(), request_id), populate_existing=True)
    if r is None:
        raise NotFound("no such invoice request")
    if principal.is_dealer:
        try:
            await channels.visible_customer(session, r.customer_id, principal)
        except NotFound:
            raise NotFound("no such invoice request") from None
    return r


def _own(principal: Principal, customer_id: UUID, what: str) -> None:
    """Dealers act only for their own customer; a sub-dealer's documents they may only read."""
    if principal.is_dealer and customer_id != principal.customer_id:
        raise Forbidden(f"a dealer acts only on its own {what}", code="not_yours")


async def get_request(session: AsyncSession, principal: Principal, request_id: UUID) -> InvoiceRequestOut:
    return await _full_out(session, await _visible_request(session, principal, request_id))


async def list_requests(
    session: AsyncSession,
    principal: Principal,
    cursor: str | None,
    limit: int,
    *,
    status: str | None = None,
    customer_id: UUID | None = None,
) -> tuple[list[InvoiceRequestSummary], str | None]:
    stmt = select(InvoiceRequest)
    prefix = await channels.dealer_scope_path(session, principal)
    if prefix is not None:
        stmt = stmt.where(InvoiceRequest.customer_id.in_(channels.subtree_ids(prefix)))
    if status is not None:
        stmt = stmt.where(InvoiceRequest.status == status)
    if customer_id is not None:
        stmt = stmt.where(InvoiceRequest.customer_id == customer_id)
    rows = (await session.scalars(paged_query(stmt, InvoiceRequest.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    receivables = await _receivable_ids(session, [r.id for r in items if r.status == "issued"])
    return [InvoiceRequestSummary(**_summary_fields(r, receivables.get(r.id))) for r in items], nxt


# --- what may still be requested ----------------------------------------------------------------


def _requested_totals() -> Any:
    """Per order line, the quantity and amount live requests hold (a subquery)."""
    return (
        select(
            InvoiceRequestLine.order_line_id.label("order_line_id"),
            func.sum(InvoiceRequestLine.quantity).label("quantity"),
            func.sum(InvoiceRequestLine.amount).label("amount"),
        )
        .join(
            InvoiceRequest,
            _on(InvoiceRequest, InvoiceRequestLine, InvoiceRequest.id, InvoiceRequestLine.request_id),
        )
        .where(InvoiceRequest.status.in_(LIVE))
        .group_by(InvoiceRequestLine.order_line_id)
    )


def _qty(value: Any) -> Decimal:
    return Decimal(value or 0).quantize(QUANTUM)


def _money(value: Any) -> Decimal:
    return Decimal(value or 0).quantize(ZERO)


async def _requested(
    session: AsyncSession, order_line_ids: Sequence[UUID]
) -> dict[UUID, tuple[Decimal, Decimal]]:
    rows = await session.execute(
        _requested_totals().where(InvoiceRequestLine.order_line_id.in_(order_line_ids))
    )
    return {r.order_line_id: (_qty(r.quantity), _money(r.amount)) for r in rows}


async def invoiceable_lines(
    session: AsyncSession,
    principal: Principal,
    cursor: str | None,
    limit: int,
    *,
    customer_id: UUID | None = None,
) -> tuple[list[InvoiceableLineOut], str | None]:
    """Order lines (no gift lines: they carry no money) with quantities left to request, oldest
    first; dealers see their subtree's."""
    held = _requested_totals().subquery()
    held_quantity = func.coalesce(held.c.quantity, 0)
    stmt = (
        select(OrderLine, Order.number, Order.customer_id, held.c.quantity, held.c.amount)
        .join(Order, _on(Order, OrderLine, Order.id, OrderLine.order_id))
        .outerjoin(held, held.c.order_line_id == OrderLine.id)
        .where(
            OrderLine.is_gift == false(),
            Order.seller_customer_id.is_(None),  # the brand's sales; a dealer invoices its own
            OrderLine.shipped_quantity - OrderLine.returned_quantity - held_quantity > HALF_QUANTUM,
        )
    )
    prefix = await channels.dealer_scope_path(session, principal)
    if prefix is not None:
        stmt = stmt.where(Order.customer_id.in_(channels.subtree_ids(prefix)))
    if customer_id is not None:
        stmt = stmt.where(Order.customer_id == customer_id)
    rows = (await session.execute(paged_query(stmt, OrderLine.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit, lambda r: r[0].id)
    out = []
    for ln, number, customer, held_qty, held_amount in items:
        requested, taken = _qty(held_qty), _money(held_amount)
        left = ln.shipped_quantity - ln.returned_quantity - requested
        out.append(
            InvoiceableLineOut(
                order_line_id=ln.id,
                order_id=ln.order_id,
                order_number=number,
                customer_id=customer,
                line_id=ln.line_id,
                sku_id=ln.sku_id,
                unit_id=ln.unit_id,
                quantity=ln.quantity,
                shipped_quantity=ln.shipped_quantity,
                returned_quantity=ln.returned_quantity,
                requested_quantity=requested,
                invoiceable_quantity=left,
                due=ln.due,
                requested_amount=taken,
                invoiceable_amount=engine.line_amount(ln.due, ln.quantity, requested, left, taken),
            )
        )
    return out, nxt


# --- requesting -----------------------------------------------------------------------------


async def _requester_customer(session: AsyncSession, principal: Principal, data: InvoiceRequestIn) -> Any:
    """The customer the invoice is for. A dealer asks for itself: a sub-dealer it can see is a
    403, anyone else a 404; staff name the customer."""
    if principal.is_dealer:
        customer_id = data.customer_id or principal.customer_id
        assert customer_id is not None
        if customer_id != principal.customer_id:
            await channels.visible_customer(session, customer_id, principal)
            raise Forbidden("a dealer requests invoices only for itself", code="not_yours")
    elif data.customer_id is None:
        raise invalid("customer_id", "name the customer the invoice is for")
    else:
        customer_id = data.customer_id
    return await channels.require_customer(session, customer_id)


def _left_text(ln: OrderLine, number: str, requested: Decimal) -> str:
    left = ln.shipped_quantity - ln.returned_quantity - requested
    return (
        f"only {max(left, Decimal(0)).normalize():f} of order {number} line {ln.line_id} is left to invoice "
        f"(shipped {ln.shipped_quantity.normalize():f}, returned {ln.returned_quantity.normalize():f}, "
        f"already requested {requested.normalize():f})"
    )


async def create_request(
    session: AsyncSession, principal: Principal, data: InvoiceRequestIn, *, key: str
) -> InvoiceRequestOut:
    """Check the quantities against what is left under lock and write the request (see the
    module docstring); every problem is one 422 naming the lines."""
    customer = await _requester_customer(session, principal, data)
    wanted = [item.order_line_id for item in data.lines]
    rows = (
        await session.execute(
            select(OrderLine, Order.number, Order.customer_id, Order.sales_org_id, Order.seller_customer_id)
            .join(Order, _on(Order, OrderLine, Order.id, OrderLine.order_id))
            .where(OrderLine.id.in_(wanted))
            .order_by(OrderLine.id)
            .with_for_update(of=OrderLine)
            .execution_options(populate_existing=True)
        )
    ).all()
    found = {r[0].id: r for r in rows}
    requested = await _requested(session, wanted)
    errors: list[dict[str, str]] = []
    seen: set[UUID] = set()
    orgs: set[UUID | None] = set()
    lines: list[InvoiceRequestLine] = []
    request_id = new_id()
    for i, item in enumerate(data.lines):
        row = found.get(item.order_line_id)
        if row is None or row.customer_id != customer.id:
            errors.append(field_error(f"lines[{i}].order_line_id", "no such order line of this customer"))
            continue
        ln, number = row[0], row.number
        held, taken = requested.get(ln.id, (Decimal(0), ZERO))
        if ln.id in seen:
            errors.append(field_error(f"lines[{i}].order_line_id", "the line appears twice in this request"))
        elif ln.is_gift:
            errors.append(field_error(f"lines[{i}].order_line_id", "a gift line carries nothing to invoice"))
        elif row.seller_customer_id is not None:
            errors.append(
                field_error(
                    f"lines[{i}].order_line_id",
                    "this order is a dealer's sale: the brand's invoice pool invoices the brand's sales only",
                )
            )
        elif item.quantity > ln.shipped_quantity - ln.returned_quantity - held:
            errors.append(field_error(f"lines[{i}].quantity", _left_text(ln, number, held)))
        else:
            orgs.add(row.sales_org_id)
            lines.append(
                InvoiceRequestLine(
                    id=new_id(),
                    request_id=request_id,
                    position=i,
                    order_id=ln.order_id,
                    order_line_id=ln.id,
                    sku_id=ln.sku_id,
                    quantity=item.quantity,
                    amount=engine.line_amount(ln.due, ln.quantity, held, item.quantity, taken),
                    credit_amount=ZERO,
                )
            )
        seen.add(item.order_line_id)
    if not errors and len(orgs) > 1:
        errors.append(field_error("lines", "the orders of one request belong to one sales org"))
    if errors:
        raise Unprocessable(
            "the request does not fit what is left to invoice", code="bad_invoice_request", errors=errors
        )
    amount = sum((ln.amount for ln in lines), ZERO)
    if amount <= 0:
        raise invalid("lines", "these quantities carry no amount to invoice (their due is 0)")
    now = utcnow()
    request = InvoiceRequest(
        id=request_id,
        number=request_number(request_id, funds.business_day()),
        customer_id=customer.id,
        sales_org_id=orgs.pop(),
        status=states.START,
        version=1,
        title=data.title,
        tax_id=data.tax_id,
        address=data.address,
        bank_account=data.bank_account,
        note=data.note,
        amount=amount,
        idempotency_key=key,
        requested_by=principal.actor,
        created_at=now,
        updated_at=now,
    )
    session.add(request)
    await session.flush()  # the request row before its lines (composite foreign keys)
    session.add_all(lines)
    session.add(
        InvoiceRequestEvent(
            id=new_id(),
            request_id=request_id,
            action="request",
            from_status=None,
            to_status=states.START,
            detail={"lines": len(lines), "amount": str(amount)},
            actor=principal.actor,
            at=now,
        )
    )
    summary = _event_summary(request)
    audit.record(session, "request", "invoice_request", request_id, after=summary)
    events.emit(session, "invoice_request.requested", {"id": str(request_id), **summary})
    await session.flush()
    return await _full_out(session, request)


def _event_summary(r: InvoiceRequest) -> dict[str, Any]:
    return {
        "number": r.number,
        "customer_id": str(r.customer_id),
        "status": r.status,
        "amount": str(r.amount),
        "invoice_number": r.invoice_number,
    }


# --- status changes ---------------------------------------------------------------------------


def _legal(r: InvoiceRequest, action: states.Action) -> states.Status:
    try:
        return states.transition(r.status, action)  # type: ignore[arg-type]
    except states.IllegalTransition as exc:
        raise Conflict(str(exc), code="illegal_transition") from None


async def _move(
    session: AsyncSession,
    principal: Principal,
    r: InvoiceRequest,
    action: states.Action,
    detail: dict[str, Any] | None = None,
    **values: Any,
) -> None:
    """Take the request one step along ``states`` exactly once: a conditional UPDATE on its status
    and version, then its history entry, audit entry and outbox event."""
    before = r.status
    after = _legal(r, action)
    now = utcnow()
    try:
        result = await session.execute(
            update(InvoiceRequest)
            .where(
                InvoiceRequest.id == r.id,
                InvoiceRequest.status == before,
                InvoiceRequest.version == r.version,
            )
            .values(status=after, version=r.version + 1, updated_at=now, **values)
            .execution_options(synchronize_session=False)
        )
    except IntegrityError as exc:
        if is_unique_violation(exc) and "invoice_number" in values:
            raise _duplicate_number(values["invoice_number"]) from None
        raise
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(
            "the invoice request was changed by a concurrent request; read it again",
            code="invoice_request_changed",
        )
    for name, value in {"status": after, "version": r.version + 1, "updated_at": now, **values}.items():
        set_committed_value(r, name, value)
    session.add(
        InvoiceRequestEvent(
            id=new_id(),
            request_id=r.id,
            action=action,
            from_status=before,
            to_status=after,
            detail=detail or {},
            actor=principal.actor,
            at=now,
        )
    )
    audit.record(
        session,
        action,
        "invoice_request",
        r.id,
        before={"status": before},
        after={"status": after, **(detail or {})},
    )
    events.emit(session, f"invoice_request.{after}", {"id": str(r.id), "action": action, **_event_summary(r)})
    await session.flush()


async def approve(session: AsyncSession, principal: Principal, request_id: UUID) -> InvoiceRequestOut:
    r = await _visible_request(session, principal, request_id)
    await _move(session, principal, r, "approve")
    return await _full_out(session, r)


async def reject(
    session: AsyncSession, principal: Principal, request_id: UUID, reason: str | None
) -> InvoiceRequestOut:
    r = await _visible_request(session, principal, request_id)
    await _move(session, principal, r, "reject", {"reason": reason} if reason else None)
    return await _full_out(session, r)


async def cancel(
    session: AsyncSession, principal: Principal, request_id: UUID, reason: str | None
) -> InvoiceRequestOut:
    """The requester withdraws: a dealer's user for its own customer, or the staff user who
    filed the request (anyone else is a 403; the brand rejects instead)."""
    r = await _visible_request(session, principal, request_id)
    if principal.is_dealer:
        _own(principal, r.customer_id, "invoice requests")
    elif r.requested_by != principal.actor:
        raise Forbidden("only the requester cancels a request; reject it instead", code="not_the_requester")
    await _move(session, principal, r, "cancel", {"reason": reason} if reason else None)
    return await _full_out(session, r)


def _duplicate_number(number: str) -> Conflict:
    return Conflict(f"invoice number {number} is already issued", code="duplicate_invoice_number")


async def _credit_terms(
    session: AsyncSession, customer_id: UUID, sales_org_id: UUID | None
) -> tuple[int, int]:
    """(credit days, grace days) of the customer's credit profile for the sales org, else of its
    profile without one; (0, 0) without a profile."""
    profiles, _ = await terms.list_credit_profiles(session, None, MAX_PROFILES, customer_id=customer_id)
    by_org = {p.sales_org_id: p for p in profiles}
    profile = by_org.get(sales_org_id) or by_org.get(None)
    return (profile.credit_days, profile.grace_days) if profile else (0, 0)


async def _credit_shares(session: AsyncSession, lines: Sequence[InvoiceRequestLine]) -> None:
    """Set each line's ``credit_amount``: its order line's credit part (what the payment plan
    left on credit for that line) shared over the line's ``due`` by the amounts invoiced,
    cumulative over the line's issued invoices, so a line paid in full by cash or special funds
    opens no receivable. The orders stay locked while this counts."""
    order_ids = sorted({ln.order_id for ln in lines})
    await session.execute(
        select(Order.id).where(Order.id.in_(order_ids)).order_by(Order.id).with_for_update()
    )
    line_ids = sorted({ln.order_line_id for ln in lines})
    order_lines = {
        ol.id: ol
        for ol in await session.scalars(
            select(OrderLine).where(OrderLine.id.in_(line_ids)).execution_options(populate_existing=True)
        )
    }
    rows = await session.execute(
        select(InvoiceRequestLine.order_line_id, func.sum(InvoiceRequestLine.amount))
        .join(
            InvoiceRequest,
            _on(InvoiceRequest, InvoiceRequestLine, InvoiceRequest.id, InvoiceRequestLine.request_id),
        )
        .where(InvoiceRequestLine.order_line_id.in_(line_ids), InvoiceRequest.status == "issued")
        .group_by(InvoiceRequestLine.order_line_id)
    )
    invoiced: dict[UUID, Decimal] = defaultdict(lambda: ZERO, {lid: _money(total) for lid, total in rows})
    for ln in lines:
        ol = order_lines[ln.order_line_id]
        ln.credit_amount = engine.credit_part(ol.credit, ol.due, invoiced[ln.order_line_id], ln.amount)
        invoiced[ln.order_line_id] += ln.amount


async def _still_shipped(session: AsyncSession, lines: Sequence[InvoiceRequestLine]) -> None:
    """Goods returned after the request was filed must not be invoiced: with this request, no
    order line may have more invoiced than it has shipped and kept (a 409 naming the lines; the
    requester cancels and asks again for what is left)."""
    line_ids = [ln.order_line_id for ln in lines]
    kept = dict(
        (
            await session.execute(
                select(OrderLine.id, OrderLine.shipped_quantity - OrderLine.returned_quantity).where(
                    OrderLine.id.in_(line_ids)
                )
            )
        ).all()
    )
    issued = dict(
        (
            await session.execute(
                select(InvoiceRequestLine.order_line_id, func.sum(InvoiceRequestLine.quantity))
                .join(
                    InvoiceRequest,
                    _on(InvoiceRequest, InvoiceRequestLine, InvoiceRequest.id, InvoiceRequestLine.request_id),
                )
                .where(InvoiceRequestLine.order_line_id.in_(line_ids), InvoiceRequest.status == "issued")
                .group_by(InvoiceRequestLine.order_line_id)
            )
        ).all()
    )
    errors = [
        field_error(
            f"lines[{ln.position}]",
            f"only {Decimal(kept[ln.order_line_id]) - Decimal(issued.get(ln.order_line_id) or 0):f} of this "
            "line is shipped, kept and not invoiced yet: goods came back after the request",
        )
        for ln in lines
        if Decimal(issued.get(ln.order_line_id) or 0) + ln.quantity > Decimal(kept[ln.order_line_id])
    ]
    if errors:
        raise Conflict(
            "goods of this request came back after it was filed: cancel it and request what is left",
            code="returned_since_requested",
            errors=errors,
        )


async def issue(
    session: AsyncSession, principal: Principal, request_id: UUID, data: IssueIn
) -> InvoiceRequestOut:
    """Issue the invoice and open the receivable for its credit part (see the module docstring)."""
    r = await _visible_request(session, principal, request_id)
    _legal(r, "issue")
    today = funds.business_day()
    issue_date = data.issue_date or today
    if issue_date > today:
        raise invalid("issue_date", f"an invoice is not issued in the future (today is {today.isoformat()})")
    if data.amount is not None and data.amount != r.amount:
        raise invalid("amount", f"the invoice is for the request's amount, {r.amount}")
    rate = data.tax_rate if data.tax_rate is not None else (await get_settings(session)).tax_rate
    if await session.scalar(
        select(InvoiceRequest.id).where(InvoiceRequest.invoice_number == data.invoice_number)
    ):
        raise _duplicate_number(data.invoice_number)
    lines = await _request_lines(session, r.id)
    await _credit_shares(session, lines)  # locks the orders, so no return is received meanwhile
    await _still_shipped(session, lines)
    credit_total = sum((ln.credit_amount for ln in lines), ZERO)
    net, tax = engine.tax_split(r.amount, rate)
    await _move(
        session,
        principal,
        r,
        "issue",
        {"invoice_number": data.invoice_number, "credit_amount": str(credit_total)},
        invoice_number=data.invoice_number,
        issue_date=issue_date,
        tax_rate=rate,
        net_amount=net,
        tax_amount=tax,
        credit_amount=credit_total,
    )
    if credit_total > 0:
        credit_days, grace_days = await _credit_terms(session, r.customer_id, r.sales_org_id)
        due = issue_date + timedelta(days=credit_days)
        receivable = Receivable(
            id=new_id(),
            request_id=r.id,
            customer_id=r.customer_id,
            sales_org_id=r.sales_org_id,
            invoice_number=data.invoice_number,
            amount=credit_total,
            paid_amount=ZERO,
            credited_amount=ZERO,
            status="open",
            issue_date=issue_date,
            due_date=due,
            grace_days=grace_days,
            grace_ends_on=due + timedelta(days=grace_days),
            version=1,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        session.add(receivable)
        after = {
            "invoice_number": data.invoice_number,
            "customer_id": str(r.customer_id),
            "amount": str(credit_total),
            "due_date": due.isoformat(),
        }
        audit.record(session, "create", "receivable", receivable.id, after=after)
        events.emit(session, "receivable.opened", {"id": str(receivable.id), **after})
    await session.flush()
    return await _full_out(session, r)


# --- receivables ------------------------------------------------------------------------------


def _receivable_status(rec: Receivable, today: date) -> str:
    if rec.status == "paid":
        return "paid"
    return "overdue" if rec.grace_ends_on < today else "open"


def _receivable_fields(rec: Receivable, today: date) -> dict[str, Any]:
    return {
        "id": rec.id,
        "invoice_request_id": rec.request_id,
        "invoice_number": rec.invoice_number,
        "customer_id": rec.customer_id,
        "sales_org_id": rec.sales_org_id,
        "amount": rec.amount,
        "paid_amount": rec.paid_amount,
        "credited_amount": rec.credited_amount,
        "outstanding": rec.amount - rec.paid_amount - rec.credited_amount,
        "status": _receivable_status(rec, today),
        "issue_date": rec.issue_date,
        "due_date": rec.due_date,
        "grace_days": rec.grace_days,
        "grace_ends_on": rec.grace_ends_on,
        "version": rec.version,
        "created_at": rec.created_at,
        "updated_at": rec.updated_at,
    }


async def _receivable_out(session: AsyncSession, rec: Receivable) -> ReceivableOut:
    payments = (
        await session.scalars(
            select(ReceivablePayment)
            .where(ReceivablePayment.receivable_id == rec.id)
            .order_by(ReceivablePayment.id)
        )
    ).all()
    return ReceivableOut(
        **_receivable_fields(rec, funds.business_day()),
        payments=[
            ReceivablePaymentOut(
                id=p.id, amount=p.amount, transfer_id=p.transfer_id, paid_by=p.paid_by, at=p.at
            )
            for p in payments
        ],
    )


async def _visible_receivable(session: AsyncSession, principal: Principal, receivable_id: UUID) -> Receivable:
    """The receivable if the caller may see it; otherwise 404, whether or not it exists."""
    rec = await session.get(Receivable, (require_tenant(), receivable_id), populate_existing=True)
    if rec is None:
        raise NotFound("no such receivable")
    if principal.is_dealer:
        try:
            await channels.visible_customer(session, rec.customer_id, principal)
        except NotFound:
            raise NotFound("no such receivable") from None
    return rec


async def get_receivable(session: AsyncSession, principal: Principal, receivable_id: UUID) -> ReceivableOut:
    return await _receivable_out(session, await _visible_receivable(session, principal, receivable_id))


async def list_receivables(
    session: AsyncSession,
    principal: Principal,
    cursor: str | None,
    limit: int,
    *,
    status: str | None = None,
    customer_id: UUID | None = None,
) -> tuple[list[ReceivableSummary], str | None]:
    today = funds.business_day()
    stmt = select(Receivable)
    prefix = await channels.dealer_scope_path(session, principal)
    if prefix is not None:
        stmt = stmt.where(Receivable.customer_id.in_(channels.subtree_ids(prefix)))
    if status == "paid":
        stmt = stmt.where(Receivable.status == "paid")
    elif status == "open":
        stmt = stmt.where(Receivable.status == "open", Receivable.grace_ends_on >= today)
    elif status == "overdue":
        stmt = stmt.where(Receivable.status == "open", Receivable.grace_ends_on < today)
    if customer_id is not None:
        stmt = stmt.where(Receivable.customer_id == customer_id)
    rows = (await session.scalars(paged_query(stmt, Receivable.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [ReceivableSummary(**_receivable_fields(rec, today)) for rec in items], nxt


async def pay_receivable(
    session: AsyncSession, principal: Principal, receivable_id: UUID, data: PaymentIn, *, key: str | None
) -> ReceivableOut:
    """Pay part or all of what is outstanding from the customer's cash (see the module docstring);
    ``key`` is the request's Idempotency-Key, which a payment needs (428 without one)."""
    rec = await _visible_receivable(session, principal, receivable_id)
    _own(principal, rec.customer_id, "receivables")
    if key is None:
        raise PreconditionRequired(
            "send an Idempotency-Key: a payment moves money", code="idempotency_key_required"
        )
    amount, now = data.amount, utcnow()
    # The invoiced orders first, as a return's receipt takes its order before money and then the
    # receivable (its red-letter credit): one lock order, so the two never wait crosswise.
    await session.execute(
        select(Order.id)
        .where(
            Order.id.in_(
                select(InvoiceRequestLine.order_id).where(InvoiceRequestLine.request_id == rec.request_id)
            )
        )
        .order_by(Order.id)
        .with_for_update()
    )
    settled = _cents(Receivable.paid_amount + amount)
    outstanding = _cents(Receivable.amount - Receivable.paid_amount - Receivable.credited_amount)
    result = await session.execute(
        update(Receivable)
        .where(Receivable.id == rec.id, outstanding >= amount)
        .values(
            paid_amount=settled,
            status=case((settled + Receivable.credited_amount >= Receivable.amount, "paid"), else_="open"),
            version=Receivable.version + 1,
            updated_at=now,
        )
        .returning(Receivable.paid_amount, Receivable.status, Receivable.version)
        .execution_options(synchronize_session=False)
    )
    row = result.first()
    if row is None:
        await session.refresh(rec)
        raise Conflict(
            f"only {rec.amount - rec.paid_amount - rec.credited_amount} of the receivable is outstanding",
            code="exceeds_outstanding",
        )
    for name, value in (
        ("paid_amount", _money(row[0])),
        ("status", row[1]),
        ("version", row[2]),
        ("updated_at", now),
    ):
        set_committed_value(rec, name, value)
    plan = await funds.plan_payment(
        session,
        customer_id=rec.customer_id,
        sales_org_id=rec.sales_org_id,
        request=payment.PaymentRequest(
            lines=[payment.PayableLine(line_id="receivable", amount=amount, rebate_eligible=False)],
            today=funds.business_day(),
            use_fees=ZERO,
            use_rebate=ZERO,
            use_special=False,
        ),
    )
    if plan.shortfall > 0:
        raise funds.insufficient(f"the cash account has {plan.cash} of {amount} available")
    reference = fund_reference(rec.id)
    await funds.freeze(
        session, customer_id=rec.customer_id, sales_org_id=rec.sales_org_id, plan=plan, reference=reference
    )
    transfer = await funds.post_holds(session, reference, amount)
    assert transfer is not None
    session.add(
        ReceivablePayment(
            id=new_id(),
            receivable_id=rec.id,
            amount=amount,
            transfer_id=transfer.id,
            idempotency_key=key,
            paid_by=principal.actor,
            at=now,
        )
    )
    after = {"amount": str(amount), "paid_amount": str(rec.paid_amount), "status": rec.status}
    audit.record(session, "pay", "receivable", rec.id, after=after)
    events.emit(session, "receivable.paid", {"id": str(rec.id), "customer_id": str(rec.customer_id), **after})
    await session.flush()
    return await _receivable_out(session, rec)


async def unpaid_receivables(session: AsyncSession, customer_id: UUID) -> list[tuple[UUID, Decimal, date]]:
    """The customer's receivables with something outstanding: (id, outstanding, due date)."""
    rows = await session.execute(
        select(
            Receivable.id,
            Receivable.amount - Receivable.paid_amount - Receivable.credited_amount,
            Receivable.due_date,
        )
        .where(Receivable.customer_id == customer_id, Receivable.status == "open")
        .order_by(Receivable.due_date, Receivable.id)
    )
    return [(rid, _money(outstanding), due) for rid, outstanding, due in rows]


async def _invoice_exposure(session: AsyncSession, customer_id: UUID) -> credit.ExposureInputs:
    """What the invoice pool adds to a customer's exposure (see the module docstring): the unpaid
    receivables, and minus the credit part invoiced, per order never more than the order still
    counts as shipped on credit (goods returned after they were invoiced must not take the
    exposure below zero)."""
    unpaid = (
        select(
            func.coalesce(
                func.sum(Receivable.amount - Receivable.paid_amount - Receivable.credited_amount), 0
            )
        )
        .where(Receivable.customer_id == customer_id, Receivable.status == "open")
        .scalar_subquery()
    )
    per_order = (
        select(
            InvoiceRequestLine.order_id.label("order_id"),
            func.sum(InvoiceRequestLine.credit_amount).label("c"),
        )
        .join(
            InvoiceRequest,
            _on(InvoiceRequest, InvoiceRequestLine, InvoiceRequest.id, InvoiceRequestLine.request_id),
        )
        .where(InvoiceRequest.customer_id == customer_id, InvoiceRequest.status == "issued")
        .group_by(InvoiceRequestLine.order_id)
        .subquery()
    )
    still_shipped = Order.credit_shipped - Order.credit_returned
    moved = case((per_order.c.c > still_shipped, still_shipped), else_=per_order.c.c)
    row = (
        await session.execute(
            select(func.coalesce(func.sum(moved), 0), unpaid)
            .select_from(per_order)
            .join(Order, and_(Order.tenant_id == require_tenant(), Order.id == per_order.c.order_id))
        )
    ).one()
    return credit.ExposureInputs(receivables=_money(row[1]), shipped_not_invoiced=-_money(row[0]))


terms.add_exposure_source(_invoice_exposure)
terms.add_receivables_source(unpaid_receivables)


# --- red-letter credits -------------------------------------------------------------------------


async def credit_returned_goods(session: AsyncSession, order: Order, *, return_id: UUID) -> None:
    """A red-letter credit (红字冲销) for goods that came back after they were invoiced on credit.

    Per order, the credit part invoiced beyond what the order still counts as shipped on credit
    (``credit_shipped − credit_returned``) is no longer owed. That excess, less what earlier
    returns credited, is taken off the order's receivables, oldest first, each at most by the
    order's own credit part on it: first from what is outstanding, then, for a part the customer
    had paid already, by refunding that payment to its cash (the ledger's refund of the
    receivable's payments, keyed by the return, so a retried receipt refunds nothing more). The
    caller (a return's receipt) holds the order row. Goods returned before they were invoiced
    simply leave less to invoice."""
    issued_lines = (
        select(
            InvoiceRequestLine.request_id.label("request_id"),
            func.sum(InvoiceRequestLine.credit_amount).label("part"),
        )
        .join(
            InvoiceRequest,
            _on(InvoiceRequest, InvoiceRequestLine, InvoiceRequest.id, InvoiceRequestLine.request_id),
        )
        .where(InvoiceRequestLine.order_id == order.id, InvoiceRequest.status == "issued")
        .group_by(InvoiceRequestLine.request_id)
        .subquery()
    )
    rows = (
        await session.execute(
            select(Receivable, issued_lines.c.part)
            .join(issued_lines, issued_lines.c.request_id == Receivable.request_id)
            .order_by(Receivable.issue_date, Receivable.id)
            .with_for_update(of=Receivable)
            .execution_options(populate_existing=True)
        )
    ).all()
    if not rows:
        return
    prior = dict(
        (
            await session.execute(
                select(ReceivableCredit.receivable_id, func.sum(ReceivableCredit.amount))
                .where(ReceivableCredit.order_id == order.id)
                .group_by(ReceivableCredit.receivable_id)
            )
        ).all()
    )
    invoiced = sum((_money(part) for _, part in rows), ZERO)
    credited = sum((_money(v) for v in prior.values()), ZERO)
    still = order.credit_shipped - order.credit_returned
    due = max(invoiced - still, ZERO) - credited
    now = utcnow()
    for rec, part in rows:
        if due <= 0:
            break
        take = min(due, _money(part) - _money(prior.get(rec.id, ZERO)))
        if take <= 0:
            continue
        outstanding = rec.amount - rec.paid_amount - rec.credited_amount
        refunded = max(take - outstanding, ZERO)
        transfer_id = None
        if refunded > 0:
            transfer = await funds.refund(
                session,
                fund_reference(rec.id),
                refunded,
                key=f"red-letter:{return_id}:{rec.id}",
                memo=f"red-letter credit on invoice {rec.invoice_number}",
            )
            transfer_id = transfer.id if transfer is not None else None
        rec.paid_amount -= refunded
        rec.credited_amount += take
        rec.status = "paid" if rec.paid_amount + rec.credited_amount >= rec.amount else "open"
        rec.version += 1
        rec.updated_at = now
        session.add(
            ReceivableCredit(
                id=new_id(),
                receivable_id=rec.id,
                order_id=order.id,
                return_id=return_id,
                amount=take,
                refunded=refunded,
                transfer_id=transfer_id,
                at=now,
            )
        )
        after = {"credited": str(take), "refunded": str(refunded), "return_id": str(return_id)}
        audit.record(session, "credit", "receivable", rec.id, after=after)
        events.emit(
            session, "receivable.credited", {"id": str(rec.id), "customer_id": str(rec.customer_id), **after}
        )
        due -= take
    await session.flush()


orders_returns.add_receipt_listener(credit_returned_goods)


async def invoiced_basis(session: AsyncSession, start: date, end: date) -> list[tuple[UUID, UUID, Decimal]]:
    """The rebate basis ``invoiced`` (DOMAIN §4): per customer and SKU, the amount of the invoices
    issued from ``start`` to ``end`` (both included). An invoice line's amount is its share of
    the order line's ``due``, so it already leaves out what rebates (an on-invoice discount) and
    fees paid; it is tax-inclusive, as the shipped basis is."""
    rows = await session.execute(
        select(InvoiceRequest.customer_id, InvoiceRequestLine.sku_id, func.sum(InvoiceRequestLine.amount))
        .join(
            InvoiceRequest,
            _on(InvoiceRequest, InvoiceRequestLine, InvoiceRequest.id, InvoiceRequestLine.request_id),
        )
        .where(
            InvoiceRequest.status == "issued",
            InvoiceRequest.issue_date >= start,
            InvoiceRequest.issue_date <= end,
        )
        .group_by(InvoiceRequest.customer_id, InvoiceRequestLine.sku_id)
        .order_by(InvoiceRequest.customer_id, InvoiceRequestLine.sku_id)
    )
    return [(customer_id, sku_id, _money(total)) for customer_id, sku_id, total in rows]


rebate_accruals.add_basis_source("invoiced", invoiced_basis)


# --- settings ---------------------------------------------------------------------------------


async def _setting(session: AsyncSession) -> InvoiceSetting | None:
    return await session.scalar(select(InvoiceSetting).execution_options(populate_existing=True))


def _settings_out(row: InvoiceSetting | None) -> InvoiceSettingsOut:
    if row is None:
        return InvoiceSettingsOut(tax_rate=engine.DEFAULT_TAX_RATE, version=0, updated_at=None)
    return InvoiceSettingsOut(tax_rate=row.tax_rate, version=row.version, updated_at=row.updated_at)


async def get_settings(session: AsyncSession) -> InvoiceSettingsOut:
    """The tenant's invoice settings; the defaults (13%) at version 0 until first changed."""
    return _settings_out(await _setting(session))


async def update_settings(
    session: AsyncSession, data: InvoiceSettingsIn, expected_version: int
) -> InvoiceSettingsOut:
    row = await _setting(session)
    current = _settings_out(row)
    if current.version != expected_version:
        raise PreconditionFailed(
            f"the invoice settings are at version {current.version}", code="stale_version"
        )
    before = {"tax_rate": str(current.tax_rate)}
    if row is None:
        row = InvoiceSetting(id=new_id(), tax_rate=data.tax_rate, version=1, updated_at=utcnow())
        session.add(row)
        try:
            await session.flush()
        except IntegrityError as exc:
            if is_unique_violation(exc):
                raise PreconditionFailed(
                    "the invoice settings were changed by a concurrent request", code="stale_version"
                ) from None
            raise
    elif row.tax_rate != data.tax_rate:
        row.tax_rate = data.tax_rate
        row.version += 1
        row.updated_at = utcnow()
        await session.flush()
    else:
        return current
    audit.record_change(session, "invoice_settings", row.id, before, {"tax_rate": str(row.tax_rate)})
    return _settings_out(row)
