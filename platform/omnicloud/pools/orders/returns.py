"""Returns (退货): shipped goods of an order come back and their money goes back the way it came.

A return is a document of its own (``pools.order_states.RETURN_TRANSITIONS``)::

    requested ─approve→ approved ─receive→ received
        │ reject → rejected        │ cancel → cancelled
        └ cancel → cancelled

- file (a dealer for its own orders, or staff): the order must have shipped something
  (``order_states.RETURNABLE``); each line's quantity is claimed on the order line at once
  (``returning_quantity``, a conditional UPDATE ``returned + returning + q <= shipped``), so
  concurrent returns can never take back more than shipped: the one that no longer fits is a 409
  ``exceeds_returnable`` and leaves nothing behind.
- approve / reject (the seller: brand staff, or for a dealer-sold order that dealer's users);
  cancel (the filer or staff, before receipt): reject and cancel give the claimed quantities back.
- receive (the seller, into a warehouse of the seller it chooses: the brand's for a brand-sold
  order, the selling dealer's for a dealer-sold one, whose pool refunds): the goods come back as a stock
  receipt (``reference="return:<id>"``); each returned line's parts are its cumulative shares
  (``orders.service.moved_parts`` after what earlier returns of the line took back), so all the
  returns of a line add up to exactly what shipped. The fee and rebate shares restore the fee and
  rebate accounts they came from, with their original expiry, and the special and cash shares go
  back to special and cash (原路返回): one ``funds.refund(by_kind=...)`` keyed ``return:<id>``, so a
  retried receipt never refunds twice, and never more than the order posted of each kind. The
  credit share is not money: it leaves the customer's shipped-not-invoiced exposure
  (``orders.credit_returned``). ``returned`` sales facts are written for the lines.

Gifts (赠品): a gift line can be returned like any other line; it carries no money. Returning the
goods a promotion's gift depended on is allowed and refunds those goods' payable shares (already
net of the promotion's discount); the gift itself is not clawed back unless it is returned too.

Every status change is one conditional UPDATE on the return's ``(id, status, version)``, so of two
concurrent actions on one return exactly one wins (409 ``return_changed`` for the other). Writers
of a return touch the order row first, as shipments do, so a return and a shipment of one order
wait for each other instead of deadlocking on its lines.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from omnicloud.channels import service as channels
from omnicloud.core import audit, events
from omnicloud.core.db import utcnow
from omnicloud.core.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PreconditionRequired,
    Unprocessable,
    field_error,
)
from omnicloud.core.ids import new_id
from omnicloud.core.paging import paged_query, split_page
from omnicloud.core.security import Principal
from omnicloud.core.tenancy import require_tenant
from omnicloud.inventory import service as inventory
from omnicloud.inventory.schemas import ReceiptIn
from omnicloud.pools import order_states
from omnicloud.pools.funds import service as funds
from omnicloud.pools.orders import service as orders
from omnicloud.pools.orders.models import Order, OrderEvent, OrderLine, OrderReturn, OrderReturnLine
from omnicloud.pools.orders.schemas import (
    ReturnIn,
    ReturnLineOut,
    ReturnOut,
    ReturnReceiptIn,
    ReturnSummary,
    ReturnTotals,
)
from omnicloud.pools.sales import service as sales

ZERO = Decimal("0.00")

ReceiptListener = Callable[..., Awaitable[None]]
_RECEIPT_LISTENERS: list[ReceiptListener] = []


def add_receipt_listener(listener: ReceiptListener) -> None:
    """Register ``listener(session, order, return_id=...)``, called in a return's receipt, after
    the refund, with the order row held: pools that depend on the order pool (the invoice pool's
    red-letter credits) follow returns without the order pool importing them."""
    if listener not in _RECEIPT_LISTENERS:
        _RECEIPT_LISTENERS.append(listener)


def stock_reference(return_id: UUID) -> str:
    """The reference of a return's stock receipts and the key of its refund."""
    return f"return:{return_id}"


def return_number(return_id: UUID, day: Any) -> str:
    return f"RT{day:%y%m%d}-{return_id.hex[-10:].upper()}"


# --- reading ----------------------------------------------------------------------------------


def _summary_fields(r: OrderReturn) -> dict[str, Any]:
    return {
        "id": r.id,
        "number": r.number,
        "order_id": r.order_id,
        "customer_id": r.customer_id,
        "status": r.status,
        "version": r.version,
        "reason": r.reason,
        "decision_reason": r.decision_reason,
        "warehouse_id": r.warehouse_id,
        "totals": ReturnTotals(
            amount=r.amount,
            refund_fee=r.refund_fee,
            refund_rebate=r.refund_rebate,
            refund_special=r.refund_special,
            refund_cash=r.refund_cash,
            credit=r.credit,
        ),
        "refund_transfer_id": r.refund_transfer_id,
        "allowed_actions": order_states.return_allowed(r.status),  # type: ignore[arg-type]
        "requested_by": r.requested_by,
        "decided_by": r.decided_by,
        "received_by": r.received_by,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "received_at": r.received_at,
    }


def _line_out(ln: OrderReturnLine) -> ReturnLineOut:
    return ReturnLineOut(
        id=ln.id,
        order_line_id=ln.order_line_id,
        line_id=ln.line_id,
        sku_id=ln.sku_id,
        quantity=ln.quantity,
        base_quantity=ln.base_quantity,
        amount=ln.amount,
        fee=ln.fee,
        rebate=ln.rebate,
        special=ln.special,
        cash=ln.cash,
        credit=ln.credit,
    )


async def _lines_of(session: AsyncSession, return_id: UUID) -> list[OrderReturnLine]:
    rows = await session.scalars(
        select(OrderReturnLine)
        .where(OrderReturnLine.return_id == return_id)
        .order_by(OrderReturnLine.position)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def _out(
    session: AsyncSession, r: OrderReturn, lines: Sequence[OrderReturnLine] | None = None
) -> ReturnOut:
    if lines is None:
        lines = await _lines_of(session, r.id)
    return ReturnOut(**_summary_fields(r), lines=[_line_out(ln) for ln in lines])


async def _visible(session: AsyncSession, principal: Principal, return_id: UUID) -> OrderReturn:
    """The return if the caller may see it (dealers: their subtree's); otherwise 404."""
    r = await session.get(OrderReturn, (require_tenant(), return_id), populate_existing=True)
    if r is None:
        raise NotFound("no such return")
    if principal.is_dealer:
        try:
            await channels.visible_customer(session, r.customer_id, principal)
        except NotFound:
            raise NotFound("no such return") from None
    return r


def _own(principal: Principal, r: OrderReturn) -> None:
    if principal.is_dealer and r.customer_id != principal.customer_id:
        raise Forbidden("a dealer acts only on its own returns", code="not_your_return")


async def get_return(session: AsyncSession, principal: Principal, return_id: UUID) -> ReturnOut:
    return await _out(session, await _visible(session, principal, return_id))


async def list_returns(
    session: AsyncSession,
    principal: Principal,
    cursor: str | None,
    limit: int,
    *,
    status: str | None = None,
    order_id: UUID | None = None,
    customer_id: UUID | None = None,
) -> tuple[list[ReturnSummary], str | None]:
    stmt = select(OrderReturn)
    prefix = await channels.dealer_scope_path(session, principal)
    if prefix is not None:
        stmt = stmt.where(OrderReturn.customer_id.in_(channels.subtree_ids(prefix)))
    if status is not None:
        stmt = stmt.where(OrderReturn.status == status)
    if order_id is not None:
        stmt = stmt.where(OrderReturn.order_id == order_id)
    if customer_id is not None:
        stmt = stmt.where(OrderReturn.customer_id == customer_id)
    rows = (await session.scalars(paged_query(stmt, OrderReturn.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [ReturnSummary(**_summary_fields(r)) for r in items], nxt


# --- writing ----------------------------------------------------------------------------------


async def _touch(session: AsyncSession, order: Order) -> None:
    """Take the order's row first, as every writer of the order does (see the module docstring)."""
    await orders._set(session, order, updated_at=utcnow())


def _history(
    session: AsyncSession, principal: Principal, order: Order, action: str, detail: dict[str, Any]
) -> None:
    """A return step in its order's history; the order's status does not change."""
    session.add(
        OrderEvent(
            id=new_id(),
            order_id=order.id,
            action=action,
            from_status=order.status,
            to_status=order.status,
            detail=detail,
            actor=principal.actor,
            at=utcnow(),
        )
    )


def _wanted(data: ReturnIn, lines: Sequence[OrderLine]) -> dict[UUID, Decimal]:
    """The quantity to return per order line; each problem is a 422 naming the field."""
    by_ref = {ln.line_id: ln for ln in lines}
    wanted: dict[UUID, Decimal] = {}
    errors = []
    for i, item in enumerate(data.lines):
        line = by_ref.get(item.line_id)
        if line is None:
            errors.append(field_error(f"lines[{i}].line_id", "no such line on this order"))
        elif line.id in wanted:
            errors.append(field_error(f"lines[{i}].line_id", "the line appears twice in this return"))
        elif item.quantity > line.shipped_quantity - line.returned_quantity - line.returning_quantity:
            left = (line.shipped_quantity - line.returned_quantity - line.returning_quantity).normalize()
            errors.append(field_error(f"lines[{i}].quantity", f"only {left:f} shipped and not returned"))
        else:
            wanted[line.id] = item.quantity
    if errors:
        raise Unprocessable("the return does not fit the order", code="bad_return", errors=errors)
    return wanted


def _key_required() -> PreconditionRequired:
    return PreconditionRequired(
        "send an Idempotency-Key: a return moves stock and money", code="idempotency_key_required"
    )


def _q(expr: Any) -> Any:
    # SQLite computes in floating point: round to the column's scale before comparing.
    return func.round(expr, 4)


async def _claim(session: AsyncSession, wanted: dict[UUID, Decimal]) -> None:
    """Claim the quantities on the order lines, in line order, each by a conditional UPDATE."""
    for line_id in sorted(wanted):
        q = wanted[line_id]
        result = await session.execute(
            update(OrderLine)
            .where(
                OrderLine.id == line_id,
                _q(OrderLine.returned_quantity + OrderLine.returning_quantity + q)
                <= OrderLine.shipped_quantity,
            )
            .values(returning_quantity=_q(OrderLine.returning_quantity + q))
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict(
                "a concurrent return already claimed these goods; read the order again",
                code="exceeds_returnable",
            )


async def _unclaim(session: AsyncSession, lines: Sequence[OrderReturnLine], *, received: bool) -> None:
    """Give the claimed quantities back (reject, cancel) or turn them into returned (receive)."""
    for ln in sorted(lines, key=lambda ln: ln.order_line_id):
        values: dict[str, Any] = {"returning_quantity": _q(OrderLine.returning_quantity - ln.quantity)}
        if received:
            values["returned_quantity"] = _q(OrderLine.returned_quantity + ln.quantity)
        result = await session.execute(
            update(OrderLine)
            .where(OrderLine.id == ln.order_line_id, OrderLine.returning_quantity >= ln.quantity)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict("the order line no longer holds this return's claim", code="return_changed")


async def file_return(
    session: AsyncSession, principal: Principal, order_id: UUID, data: ReturnIn, *, key: str | None
) -> ReturnOut:
    """File a return of shipped goods (see the module docstring)."""
    order = await orders._visible_order(session, principal, order_id)
    if key is None:
        raise _key_required()
    orders._own(principal, order)
    orders._not_linked(order, "return goods of")
    lines = await orders._lines_of(session, order.id)
    _returnable(order)
    r, return_lines = await _file(session, principal, order, lines, _wanted(data, lines), data.reason, key)
    return await _out(session, r, return_lines)


def _returnable(order: Order) -> None:
    if order.status not in order_states.RETURNABLE:
        raise Conflict(
            f"an order that is {order.status.replace('_', ' ')} has shipped nothing to return",
            code="not_returnable",
        )


async def _file(
    session: AsyncSession,
    principal: Principal,
    order: Order,
    lines: Sequence[OrderLine],
    wanted: dict[UUID, Decimal],
    reason: str,
    key: str,
    extra: dict[str, Any] | None = None,
) -> tuple[OrderReturn, list[OrderReturnLine]]:
    """Claim ``wanted`` (order line id → quantity) and write the requested return."""
    await _touch(session, order)
    await _claim(session, wanted)
    return_id, now = new_id(), utcnow()
    r = OrderReturn(
        id=return_id,
        number=return_number(return_id, funds.business_day()),
        order_id=order.id,
        customer_id=order.customer_id,
        status="requested",
        version=1,
        reason=reason,
        decision_reason=None,
        warehouse_id=None,
        amount=ZERO,
        refund_fee=ZERO,
        refund_rebate=ZERO,
        refund_special=ZERO,
        refund_cash=ZERO,
        credit=ZERO,
        refund_transfer_id=None,
        idempotency_key=key,
        requested_by=principal.actor,
        decided_by=None,
        received_by=None,
        created_at=now,
        updated_at=now,
        received_at=None,
    )
    by_id = {ln.id: ln for ln in lines}
    return_lines = [
        OrderReturnLine(
            id=new_id(),
            return_id=return_id,
            order_line_id=line_id,
            position=position,
            line_id=by_id[line_id].line_id,
            sku_id=by_id[line_id].sku_id,
            quantity=q,
            base_quantity=orders._base(by_id[line_id], q),
            amount=ZERO,
            fee=ZERO,
            rebate=ZERO,
            special=ZERO,
            cash=ZERO,
            credit=ZERO,
        )
        for position, (line_id, q) in enumerate(wanted.items())
    ]
    session.add(r)
    session.add_all(return_lines)
    detail = {
        "return_id": str(return_id),
        "lines": {ln.line_id: str(ln.quantity) for ln in return_lines},
        **(extra or {}),
    }
    _history(session, principal, order, "return_requested", detail)
    audit.record(session, "request", "order_return", return_id, after={"order_id": str(order.id), **detail})
    events.emit(session, "order_return.requested", {"id": return_id, "order_id": order.id, **detail})
    await session.flush()
    return r, return_lines


async def _move(
    session: AsyncSession,
    principal: Principal,
    order: Order,
    r: OrderReturn,
    action: order_states.ReturnAction,
    detail: dict[str, Any],
    **values: Any,
) -> None:
    """Take the return one step exactly once (conditional UPDATE on status and version)."""
    before = r.status
    try:
        after = order_states.return_transition(before, action)  # type: ignore[arg-type]
    except order_states.IllegalTransition as exc:
        raise Conflict(str(exc), code="illegal_transition") from None
    now = utcnow()
    changes = {"status": after, "version": r.version + 1, "updated_at": now, **values}
    result = await session.execute(
        update(OrderReturn)
        .where(OrderReturn.id == r.id, OrderReturn.status == before, OrderReturn.version == r.version)
        .values(**changes)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("the return was changed by a concurrent request; read it again", code="return_changed")
    for name, value in changes.items():
        set_committed_value(r, name, value)
    _history(session, principal, order, f"return_{after}", {"return_id": str(r.id), **detail})
    audit.record(
        session, action, "order_return", r.id, before={"status": before}, after={"status": after, **detail}
    )
    events.emit(
        session, f"order_return.{after}", {"id": r.id, "order_id": r.order_id, "action": action, **detail}
    )
    await session.flush()


async def _order_of(session: AsyncSession, r: OrderReturn, *, lock: bool = False) -> Order:
    """The return's order; ``lock`` takes its row first, as every step that changes the order does."""
    order = await session.get(
        Order, (require_tenant(), r.order_id), populate_existing=True, with_for_update=lock or None
    )
    assert order is not None, "a return's order exists (foreign key)"
    return order


async def approve_return(session: AsyncSession, principal: Principal, return_id: UUID) -> ReturnOut:
    r = await _visible(session, principal, return_id)
    order = await _order_of(session, r)
    orders._sells(principal, order)
    await _move(session, principal, order, r, "approve", {}, decided_by=principal.actor)
    return await _out(session, r)


async def _close_unreceived(
    session: AsyncSession,
    principal: Principal,
    r: OrderReturn,
    action: order_states.ReturnAction,
    reason: str | None,
) -> ReturnOut:
    """Reject or cancel: the claimed quantities go back to the order lines."""
    order = await _order_of(session, r)
    detail = {"reason": reason} if reason else {}
    await _move(
        session, principal, order, r, action, detail, decision_reason=reason, decided_by=principal.actor
    )
    await _touch(session, order)
    lines = await _lines_of(session, r.id)
    await _unclaim(session, lines, received=False)
    return await _out(session, r, lines)


async def reject_return(
    session: AsyncSession, principal: Principal, return_id: UUID, reason: str | None
) -> ReturnOut:
    r = await _visible(session, principal, return_id)
    orders._sells(principal, await _order_of(session, r))
    return await _close_unreceived(session, principal, r, "reject", reason)


async def cancel_return(
    session: AsyncSession, principal: Principal, return_id: UUID, reason: str | None
) -> ReturnOut:
    r = await _visible(session, principal, return_id)
    _own(principal, r)
    return await _close_unreceived(session, principal, r, "cancel", reason)


async def receive_return(
    session: AsyncSession, principal: Principal, return_id: UUID, data: ReturnReceiptIn, *, keyed: bool
) -> ReturnOut:
    """Receive the goods and give the money back (see the module docstring). A return of a
    drop-shipped level-2 order goes back through both levels (see :func:`_receive_drop_ship`)."""
    r = await _visible(session, principal, return_id)
    if not keyed:
        raise _key_required()
    order = await _order_of(session, r, lock=True)
    orders._sells(principal, order)
    if order.drop_ship_order_id is not None:
        if principal.is_dealer:
            raise Forbidden(
                "the goods of a drop-shipped order go back to the brand: the brand receives them",
                code="brand_receives",
            )
        await orders._drop_ship_warehouse(session, data.warehouse_id, "warehouse_id")
    else:
        await orders._selling_warehouse(session, data.warehouse_id, order.seller_customer_id)
    try:
        order_states.return_transition(r.status, "receive")  # type: ignore[arg-type]
    except order_states.IllegalTransition as exc:
        raise Conflict(str(exc), code="illegal_transition") from None
    lines = await _lines_of(session, r.id)
    if order.drop_ship_order_id is None:
        await _receive(session, principal, order, r, lines, data, stock=True)
    else:
        await _receive(session, principal, order, r, lines, data, stock=False)
        await _receive_drop_ship(session, principal, order, r, lines, data)
    return await _out(session, r, lines)


async def _receive_drop_ship(
    session: AsyncSession,
    principal: Principal,
    order: Order,
    r: OrderReturn,
    lines: Sequence[OrderReturnLine],
    data: ReturnReceiptIn,
) -> None:
    """The level-2 return is received (its refund came out of the level-1 dealer's pool, no
    stock moved there): the same goods go back on the level-1 dealer's drop-ship purchase, whose
    return is filed, approved and received in one step into the brand warehouse, refunding the
    level-1 dealer in the brand's pool and putting the goods into stock. Lines match by
    ``line_id``; each step is in both orders' histories."""
    assert order.drop_ship_order_id is not None
    purchase = await orders._locked(session, order.drop_ship_order_id)  # the level-2 order first
    _returnable(purchase)
    purchase_lines = {ln.line_id: ln for ln in await orders._lines_of(session, purchase.id)}
    wanted: dict[UUID, Decimal] = {}
    for ln in lines:
        line = purchase_lines.get(ln.line_id)
        if (
            line is None
            or line.shipped_quantity - line.returned_quantity - line.returning_quantity < ln.quantity
        ):
            raise Conflict(
                f"the drop-ship purchase {purchase.id} has no goods of line {ln.line_id} left to return",
                code="exceeds_returnable",
            )
        wanted[line.id] = ln.quantity
    link = {"source_order_id": str(order.id), "source_return_id": str(r.id)}
    mirror, mirror_lines = await _file(
        session,
        principal,
        purchase,
        list(purchase_lines.values()),
        wanted,
        f"drop-ship return {r.number}: {r.reason}"[:400],
        f"drop-ship-return:{r.id}",
        link,
    )
    await _move(session, principal, purchase, mirror, "approve", link, decided_by=principal.actor)
    await _receive(session, principal, purchase, mirror, mirror_lines, data, stock=True, extra=link)
    _history(
        session,
        principal,
        order,
        "return_drop_shipped",
        {
            "return_id": str(r.id),
            "drop_ship_order_id": str(purchase.id),
            "drop_ship_return_id": str(mirror.id),
        },
    )
    await session.flush()


async def _receive(
    session: AsyncSession,
    principal: Principal,
    order: Order,
    r: OrderReturn,
    lines: Sequence[OrderReturnLine],
    data: ReturnReceiptIn,
    *,
    stock: bool,
    extra: dict[str, Any] | None = None,
) -> None:
    """The receipt of an approved return of the locked ``order``: the status move, the refund, the
    returned quantities, the goods into ``data.warehouse_id`` (``stock``) and the sales facts."""
    order_lines = {ln.id: ln for ln in await orders._lines_of(session, order.id)}
    total: dict[str, Decimal] = {}
    movements: list[sales.Movement] = []
    for ln in lines:
        line = order_lines[ln.order_line_id]
        parts = orders.moved_parts(line, line.returned_quantity, ln.quantity)
        orders.add_parts(total, parts)
        ln.amount = sales.share(line.payable, line.returned_quantity, ln.quantity, line.quantity)
        ln.fee, ln.rebate, ln.special = parts["fee"], parts["rebate"], parts["special"]
        ln.cash, ln.credit = parts["cash"], parts["credit"]
        movements.append(orders._movement(line, line.returned_quantity, ln.quantity))
    money = {k: total.get(k, ZERO) for k in orders.MONEY_PARTS}
    refunded = sum(money.values(), ZERO)
    amount = sum((ln.amount for ln in lines), ZERO)
    now = utcnow()
    detail = {
        "warehouse_id": str(data.warehouse_id),
        "refunded": {k: str(v) for k, v in money.items() if v},
        "credit": str(total.get("credit", ZERO)),
        **(extra or {}),
    }
    await _move(
        session,
        principal,
        order,
        r,
        "receive",
        detail,
        warehouse_id=data.warehouse_id,
        amount=amount,
        refund_fee=money["fee"],
        refund_rebate=money["rebate"],
        refund_special=money["special"],
        refund_cash=money["cash"],
        credit=total.get("credit", ZERO),
        received_by=principal.actor,
        received_at=now,
    )
    # The order row, then its lines, then money, then stock: the lock order of a shipment.
    await orders._set(
        session,
        order,
        updated_at=now,
        refunded_amount=order.refunded_amount + refunded,
        credit_returned=order.credit_returned + total.get("credit", ZERO),
    )
    await _unclaim(session, lines, received=True)
    transfer = await funds.refund(
        session,
        orders.fund_reference(order.id),
        key=stock_reference(r.id),
        memo=f"return {r.number}",
        by_kind=money,
        owner=order.seller_customer_id,
    )
    if transfer is not None:
        await session.execute(
            update(OrderReturn)
            .where(OrderReturn.id == r.id)
            .values(refund_transfer_id=transfer.id)
            .execution_options(synchronize_session=False)
        )
        set_committed_value(r, "refund_transfer_id", transfer.id)
    for ln in lines if stock else ():
        await inventory.receive(
            session,
            None,
            ReceiptIn(
                warehouse_id=data.warehouse_id,
                sku_id=ln.sku_id,
                quantity=ln.base_quantity,
                lot_no=data.lot_no,
                reference=stock_reference(r.id),
            ),
        )
    for listener in _RECEIPT_LISTENERS:  # e.g. the invoice pool's red-letter credit
        await listener(session, order, return_id=r.id)
    await sales.record(
        session,
        kind="returned",
        day=funds.business_day(),
        document_id=r.id,
        order_id=order.id,
        customer_id=order.customer_id,
        seller_customer_id=order.seller_customer_id,
        sales_org_id=order.sales_org_id,
        movements=movements,
    )
    await session.flush()
