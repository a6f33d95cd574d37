"""The order pool (订单池): submit, approve or reject, cancel, ship and confirm receipt (签收).
Returns (退货) live in ``orders.returns``.

Submit, in the caller's one transaction (any Problem rolls all of it back, so a refused order
leaves no hold, reservation, coupon reservation, order row or audit entry behind):

1. price the basket with the quote service (``policies.quotes``), on the day of submission;
2. refuse a floor verdict ``block`` (422 ``below_price_floor`` naming the lines);
3. plan the payment sequence (DOMAIN §6: fees → rebate → special → cash → credit) over the
   customer's accounts and check the part left on credit with ``terms.credit_preview`` at the
   ``submit`` check point: ``block`` is a 409 ``credit_blocked`` with the reasons, ``warn`` is
   recorded on the order, ``needs_approval`` sends the order to approval; a remainder without
   a credit profile is a 409 ``insufficient_funds``;
4. freeze the plan (``funds.freeze``, ``Reference(type="order", id=...)``): money a concurrent
   order already froze is a 409 ``insufficient_funds``;
5. reserve stock for every line, gift lines included (``inventory.reserve_many``,
   ``reference="order:<id>"``), and reserve the coupon codes the quote applied;
6. write the order, its lines (each with its part of the plan: fee, rebate, special, cash,
   credit), the per-line promotion allocations, the first history entry, the audit entry and
   the ``order.submitted`` outbox event;
7. with the tenant's posting point ``approval`` and no approval needed, post every freeze now.

Approval: an order needs approval when its floor verdict or its credit verdict is
``needs_approval``, or when an active approval rule matches it (``policies.approvals``);
otherwise it is approved at submit. The reasons are kept on the order (``approval_reasons``),
with the roles the matching rules name (``approver_roles``: approve needs one of them, or a
tenant administrator). The promotions the quote applied take their budgets and per-customer
limits at submit (``promos.consume``, a 409 ``promotion_exhausted`` refuses the order) and give
them back when the order is rejected or cancelled before anything ships.

Every later step moves the order through ``pools.order_states`` with one conditional UPDATE on
``(id, status, version)`` *before* it touches money or stock, so of two concurrent actions on
one order exactly one wins; the other gets a 409 and changes nothing.

Posting point (DOMAIN §6, ``order_settings.posting_point``, copied onto the order at submit so
a later change of the setting never posts an order twice or never): ``shipment`` (the default)
deducts frozen money as goods ship; ``approval`` deducts all of it when the order is approved
(at submit when it needs no approval) and shipments post nothing.

Credit check points (DOMAIN §3): ``terms.credit_preview`` runs at ``submit`` on the credit part
of the plan, at ``approval`` when the order has a credit part, and at ``shipment`` when the
shipped goods carry one. At approval and shipment the order's own credit is already in the
exposure, so the check adds nothing for it (the same sum as "exposure without it + it"). ``block``
is a 409 ``credit_blocked`` that changes nothing; ``warn`` (and ``needs_approval`` at approval,
where the approver is the approval) is written to the history entry's ``detail.credit``;
``needs_approval`` at shipment blocks, as there is nobody to approve a shipment. Exposure
(``_order_exposure``): an order's credit part counts as *open orders* while unshipped
(``credit_amount − credit_shipped`` of an open order) and as *shipped-not-invoiced* once shipped
(``credit_shipped − credit_returned``); cancel, partial cancel and returns release it.

- approve: pending_approval → approved (with posting at approval, every freeze is posted).
- reject / cancel before shipment: every freeze is voided, the stock reservations released and
  the coupon codes returned to ``issued``; money an approval already posted is refunded to the
  accounts it came from (``funds.refund``, key ``order-cancel:<id>``).
- cancel after a partial shipment (partially_shipped → closed): the rest of the order is closed
  in reverse order, credit first: the status change takes the unshipped credit part out of the
  open-order exposure, then what is still frozen is voided (or, posted at approval, the unshipped
  goods' parts are refunded by kind, key ``order-close:<id>``) and the unshipped stock holds are
  released. Shipped goods stay shipped; the coupon codes stay redeemed.
- ship: stock is consumed for the shipped quantities (``inventory.consume_many``) and, posting at
  shipment, frozen money is deducted part by part: each shipped line deducts its share of its
  fee, rebate, special and cash parts (``sales.share`` of the cumulative quantity, so the parts
  of a line add up to it exactly) from holds of that kind (``funds.post_holds(by_kind=...)``);
  the shipment that completes the order posts whatever is still frozen. The credit share of
  the shipped goods moves from open orders to shipped-not-invoiced. The first shipment redeems
  the coupon codes.
- ship from a chosen warehouse (issue 4): a shipment line may name the warehouse it leaves from
  (the seller's, as at submit: a brand warehouse for a brand-sold order or a drop-ship purchase,
  one the selling dealer owns for a dealer-sold one; 422 on ``lines[<i>].warehouse_id``
  otherwise) and the lot. Such a line releases its quantity of the order's holds (the holds a
  shipment from them would have taken) and takes the goods from the chosen warehouse in
  ``inventory.allocation_key`` order, never from an expired lot unless the lot is named
  (reference ``order:<id>/<shipment id>``); a warehouse that cannot cover it is a 409
  ``insufficient_stock`` on ``lines[<i>].quantity`` that changes nothing. Money, credit, sales
  facts, statuses and drop-ship propagation are those of any shipment. The history entry's
  ``detail.stock`` keeps, per line, the warehouse and lots it left from.
- confirm receipt: shipped → completed.

Dealer-sold orders (DOMAIN §7): the quote routes each line to its seller (a supply relation
names a level-1 dealer, or the brand). An order whose lines are all sold by one dealer is that
dealer's sales order (``seller_customer_id``): it ships from a warehouse that dealer owns (422
otherwise), its payment plan runs over the buyer's accounts *in that dealer's pool*
(``funds.payment_accounts(owner=...)``; fees and rebate are the brand's, so special, cash and
credit pay it), its credit part is checked against the credit that dealer granted the buyer
(``terms.credit_preview(owner_customer_id=...)`` with the exposure of the orders that dealer
sells the buyer), its stock is reserved in that warehouse, every posting and refund goes to that
dealer's ``sales`` account, and its sales facts carry the seller. The brand's approval rules are
the brand's and do not apply (a floor or credit verdict ``needs_approval`` still does). A
basket mixing sellers is a 422 ``mixed_sellers`` naming each line's seller: the buyer sends one
order per seller. Brand-sold orders (``seller_customer_id`` null) are exactly as above, and the
brand's credit exposure counts only them.

Drop-ship (DOMAIN §7): when the selling dealer's warehouse is short and the supply relation of
every line allows it, a level-2 order naming ``drop_ship_warehouse_id`` (a brand warehouse) is
accepted without a reservation and spawns, in the same transaction, the seller's purchase from
the brand (:func:`_drop_ship`): priced for the seller, paid and credit-checked in the brand's pool,
reserved in that warehouse, ``source_order_id`` = the level-2 order and ``ship_to_customer_id`` =
its buyer; the level-2 order names it in ``drop_ship_order_id``. The purchase follows its level-2
order: the brand's shipment of it ships the level-2 order by the same quantities (money posts in
the seller's pool, none of the seller's stock moves), the level-2 buyer's receipt completes both,
cancelling or rejecting the level-2 order cancels (or closes) the purchase, and returns go through
the level-2 order (``orders.returns``). The purchase is never cancelled, confirmed or returned on
its own (409 ``drop_ship_linked``) and the level-2 order is never shipped by its seller (409
``drop_shipped``). Steps on a linked pair take the level-2 order's row first, then the purchase's.

Dealer users see the orders of their customer subtree (others answer 404), so a seller sees its
sub-dealers' purchases from it and a buyer never sees its seller's own purchases. A dealer acts as
a buyer only on its own customer's orders (cancel, confirm receipt, returns; 403 for a
sub-dealer's) and as a seller (``orders:sell``) on the orders it sells: approve, reject, ship,
cancel, and its returns' approve, reject and receive (403 for any other order it can see).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

import msgspec
from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from omnicloud.catalog import service as catalog
from omnicloud.channels import service as channels
from omnicloud.core import audit, events, revisions
from omnicloud.core.db import is_unique_violation, utcnow
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
from omnicloud.core.security import Principal, current_principal
from omnicloud.core.tenancy import require_tenant
from omnicloud.distribution import service as distribution
from omnicloud.inventory import service as inventory
from omnicloud.inventory.schemas import StockRequest, WarehouseOut
from omnicloud.policies import credit
from omnicloud.policies.approval import may_approve
from omnicloud.policies.approvals import service as approvals
from omnicloud.policies.promos import service as promos
from omnicloud.policies.quotes import service as quotes
from omnicloud.policies.quotes.schemas import PriceSource, QuoteIn, QuoteOut
from omnicloud.policies.terms import service as terms
from omnicloud.pools import order_states, payment
from omnicloud.pools.funds import service as funds
from omnicloud.pools.funds.schemas import Reference
from omnicloud.pools.orders.models import Order, OrderEvent, OrderLine, OrderLineAllocation, OrderSettings
from omnicloud.pools.orders.schemas import (
    AllocationOut,
    OrderEventOut,
    OrderIn,
    OrderLineOut,
    OrderOut,
    OrderSettingsIn,
    OrderSettingsOut,
    OrderSummary,
    OrderTotals,
    ShipmentIn,
)
from omnicloud.pools.sales import service as sales

ZERO = Decimal("0.00")
REFERENCE_TYPE = "order"
MAX_HOLDS = 100_000  # stock holds one order may have (lines × lots); far above the line limit


def fund_reference(order_id: UUID) -> Reference:
    """The reference of an order's fund holds and payments."""
    return Reference(type=REFERENCE_TYPE, id=order_id)


def stock_reference(order_id: UUID) -> str:
    """The reference of an order's stock reservations."""
    return f"{REFERENCE_TYPE}:{order_id}"


def order_number(order_id: UUID, day: Any) -> str:
    """A readable number (``SO261129-…``): the day, then the random tail of the UUIDv7 id."""
    return f"SO{day:%y%m%d}-{order_id.hex[-10:].upper()}"


# --- reading ----------------------------------------------------------------------------------


def _totals(o: Order) -> OrderTotals:
    return OrderTotals(
        gross=o.gross,
        discount=o.discount,
        after_promotions=o.after_promotions,
        fee_offset=o.fee_offset,
        rebate=o.rebate,
        due=o.due,
        special=o.special,
        cash=o.cash,
        credit_amount=o.credit_amount,
        frozen_amount=o.frozen_amount,
        posted_amount=o.posted_amount,
        refunded_amount=o.refunded_amount,
        credit_shipped=o.credit_shipped,
        credit_returned=o.credit_returned,
    )


def _summary_fields(o: Order) -> dict[str, Any]:
    return {
        "id": o.id,
        "number": o.number,
        "customer_id": o.customer_id,
        "seller_customer_id": o.seller_customer_id,
        "sales_org_id": o.sales_org_id,
        "warehouse_id": o.warehouse_id,
        "status": o.status,
        "version": o.version,
        "totals": _totals(o),
        "posting_point": o.posting_point,
        "floor_verdict": o.floor_verdict,
        "credit_action": o.credit_action,
        "credit_reasons": list(o.credit_reasons),
        "approval_reasons": list(o.approval_reasons),
        "approver_roles": list(o.approver_roles),
        "coupon_code_ids": [UUID(c) for c in o.coupon_code_ids],
        "allowed_actions": order_states.allowed(o.status),  # type: ignore[arg-type]
        "source_order_id": o.source_order_id,
        "drop_ship_order_id": o.drop_ship_order_id,
        "ship_to_customer_id": o.ship_to_customer_id,
        "priced_at": o.priced_at,
        "submitted_by": o.submitted_by,
        "created_at": o.created_at,
        "updated_at": o.updated_at,
    }


def order_summary(o: Order) -> OrderSummary:
    return OrderSummary(**_summary_fields(o))


def _line_out(ln: OrderLine, allocations: Sequence[OrderLineAllocation]) -> OrderLineOut:
    return OrderLineOut(
        id=ln.id,
        line_id=ln.line_id,
        sku_id=ln.sku_id,
        unit_id=ln.unit_id,
        quantity=ln.quantity,
        base_quantity=ln.base_quantity,
        shipped_quantity=ln.shipped_quantity,
        returned_quantity=ln.returned_quantity,
        returning_quantity=ln.returning_quantity,
        list_price=ln.list_price,
        price_source=msgspec.convert(ln.price_source, PriceSource) if ln.price_source else None,
        gross=ln.gross,
        payable=ln.payable,
        net_unit_price=ln.net_unit_price,
        fee_offset=ln.fee_offset,
        rebate=ln.rebate,
        due=ln.due,
        special=ln.special,
        cash=ln.cash,
        credit=ln.credit,
        is_gift=ln.is_gift,
        gift_of=ln.gift_of,
        allocations=[
            AllocationOut(promotion_id=a.promotion_id, stage=a.stage, amount=a.amount) for a in allocations
        ],
    )


def _event_out(e: OrderEvent) -> OrderEventOut:
    return OrderEventOut(
        id=e.id,
        action=e.action,
        from_status=e.from_status,
        to_status=e.to_status,
        detail=e.detail,
        actor=e.actor,
        at=e.at,
    )


def _order_out(
    o: Order,
    lines: Sequence[OrderLine],
    allocations: Sequence[OrderLineAllocation],
    history: Sequence[OrderEvent],
) -> OrderOut:
    by_line: dict[UUID, list[OrderLineAllocation]] = defaultdict(list)
    for a in allocations:
        by_line[a.order_line_id].append(a)
    return OrderOut(
        **_summary_fields(o),
        lines=[_line_out(ln, by_line[ln.id]) for ln in sorted(lines, key=lambda ln: ln.position)],
        history=[_event_out(e) for e in sorted(history, key=lambda e: e.id)],
    )


async def _lines_of(session: AsyncSession, order_id: UUID) -> list[OrderLine]:
    rows = await session.scalars(
        select(OrderLine)
        .where(OrderLine.order_id == order_id)
        .order_by(OrderLine.position)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def _full_out(
    session: AsyncSession, order: Order, lines: Sequence[OrderLine] | None = None
) -> OrderOut:
    if lines is None:
        lines = await _lines_of(session, order.id)
    allocations = (
        await session.scalars(select(OrderLineAllocation).where(OrderLineAllocation.order_id == order.id))
    ).all()
    history = (
        await session.scalars(
            select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id)
        )
    ).all()
    return _order_out(order, lines, allocations, history)


async def _visible_order(
    session: AsyncSession, principal: Principal, order_id: UUID, *, lock: bool = False
) -> Order:
    """The order if the caller may see it; otherwise 404, whether or not it exists. Every step
    that changes an order passes ``lock``: it takes the order row before it reads anything else
    of the order, so steps on one order (a shipment, a cancel, a return's receipt) run one after
    the other on fresh figures, in one lock order (the order, then money, then stock)."""
    order = await session.get(
        Order, (require_tenant(), order_id), populate_existing=True, with_for_update=lock or None
    )
    if order is None:
        raise NotFound("no such order")
    if principal.is_dealer:
        try:
            await channels.visible_customer(session, order.customer_id, principal)
        except NotFound:
            raise NotFound("no such order") from None
    return order


def _own(principal: Principal, order: Order, *, seller_may: bool = False) -> None:
    """Dealers act only on their own customer's orders (or, ``seller_may``, on the orders they
    sell); a sub-dealer's they may only read."""
    if not principal.is_dealer or order.customer_id == principal.customer_id:
        return
    if seller_may and order.seller_customer_id == principal.customer_id:
        return
    raise Forbidden("a dealer acts only on its own orders", code="not_your_order")


def _sells(principal: Principal, order: Order) -> None:
    """A seller's steps (approve, reject, ship, a return's decision and receipt): a dealer takes
    them only on the orders it sells, with ``orders:sell``; staff on any."""
    if not principal.is_dealer:
        return
    if order.seller_customer_id is None or order.seller_customer_id != principal.customer_id:
        raise Forbidden("a dealer acts as the seller only on the orders it sells", code="not_your_sale")
    if not principal.can("orders:sell"):
        raise Forbidden("missing permission: orders:sell", code="missing_permission")


async def get_order(session: AsyncSession, principal: Principal, order_id: UUID) -> OrderOut:
    return await _full_out(session, await _visible_order(session, principal, order_id))


async def list_orders(
    session: AsyncSession,
    principal: Principal,
    cursor: str | None,
    limit: int,
    *,
    status: str | None = None,
    customer_id: UUID | None = None,
    role: str | None = None,
    seller_customer_id: UUID | None = None,
) -> tuple[list[OrderSummary], str | None]:
    """Orders, oldest first. ``role`` ``sold``: the orders the caller's dealer sells (for the
    brand's staff: the brand-sold ones); ``bought``: the dealer's own purchases."""
    stmt = select(Order)
    prefix = await channels.dealer_scope_path(session, principal)
    if prefix is not None:
        stmt = stmt.where(Order.customer_id.in_(channels.subtree_ids(prefix)))
    if role == "sold":
        seller = principal.customer_id
        stmt = stmt.where(
            Order.seller_customer_id.is_(None) if seller is None else Order.seller_customer_id == seller
        )
    elif role == "bought":
        if principal.customer_id is None:
            raise invalid("role", "only a dealer buys: staff list a customer's orders with customer_id")
        stmt = stmt.where(Order.customer_id == principal.customer_id)
    if seller_customer_id is not None:
        stmt = stmt.where(Order.seller_customer_id == seller_customer_id)
    if status is not None:
        stmt = stmt.where(Order.status == status)
    if customer_id is not None:
        stmt = stmt.where(Order.customer_id == customer_id)
    rows = (await session.scalars(paged_query(stmt, Order.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [order_summary(o) for o in items], nxt


# --- submit -----------------------------------------------------------------------------------


def _buyer(principal: Principal, data: OrderIn) -> UUID:
    if principal.is_dealer:
        return data.customer_id or principal.customer_id  # type: ignore[return-value]
    if data.customer_id is None:
        raise invalid("customer_id", "name the customer who orders")
    return data.customer_id


async def _customer(session: AsyncSession, principal: Principal, customer_id: UUID) -> Any:
    """The buyer. A dealer orders for itself: a sub-dealer it can see is a 403, anyone else 404."""
    if principal.is_dealer and customer_id != principal.customer_id:
        await channels.visible_customer(session, customer_id, principal)
        raise Forbidden("a dealer orders only for itself", code="dealer_orders_for_itself")
    return await channels.require_customer(session, customer_id)


async def _warehouse(session: AsyncSession, warehouse_id: UUID, field: str = "warehouse_id") -> WarehouseOut:
    """An active warehouse, or a 422 naming ``field``."""
    try:
        warehouse = await inventory.get_warehouse(session, None, warehouse_id)
    except NotFound:
        raise invalid(field, "no such warehouse") from None
    if warehouse.status != "active":
        raise invalid(field, f"the warehouse is {warehouse.status}")
    return warehouse


def _sellers_warehouse(warehouse: WarehouseOut, seller: UUID | None, field: str = "warehouse_id") -> None:
    """The seller's goods move through its own warehouses: the brand's (no dealer owns them) for a
    brand-sold order, the selling dealer's for a dealer-sold one."""
    if seller is None and warehouse.owner_customer_id is not None:
        raise invalid(field, "orders ship from a brand warehouse, not a dealer's")
    if seller is not None and warehouse.owner_customer_id != seller:
        raise invalid(field, f"this order is sold by dealer {seller}: use a warehouse it owns")


async def _selling_warehouse(session: AsyncSession, warehouse_id: UUID, seller: UUID | None) -> None:
    """An active warehouse of the seller (see :func:`_sellers_warehouse`)."""
    _sellers_warehouse(await _warehouse(session, warehouse_id), seller)


def _seller_of(q: QuoteOut) -> UUID | None:
    """The one seller of every line (None: the brand); lines of several sellers are a 422
    ``mixed_sellers`` that names each line's seller, so the buyer can split the basket."""
    sellers = {ln.seller_customer_id for ln in q.lines}
    if len(sellers) <= 1:
        return next(iter(sellers), None)
    raise Unprocessable(
        "the lines are sold by different sellers: send one order per seller",
        code="mixed_sellers",
        errors=[
            {
                **field_error(
                    f"lines[{i}]",
                    "sold by the brand"
                    if ln.seller_customer_id is None
                    else f"sold by dealer {ln.seller_customer_id}",
                ),
                "line_id": ln.line_id,
                "seller_customer_id": None if ln.seller_customer_id is None else str(ln.seller_customer_id),
            }
            for i, ln in enumerate(q.lines)
        ],
    )


def _refuse_blocked_floor(q: QuoteOut) -> None:
    if q.floor_verdict != "block":
        return
    raise Unprocessable(
        "some lines are priced below their price floor (价盘)",
        code="below_price_floor",
        errors=[
            field_error(
                f"lines[{i}]",
                f"net unit price {ln.net_unit_price} is below the floor {ln.floor.floor_price}",
            )
            for i, ln in enumerate(q.lines)
            if ln.floor is not None and ln.floor.outcome == "block"
        ],
    )


async def _plan(
    session: AsyncSession,
    q: QuoteOut,
    customer_id: UUID,
    sales_org_id: UUID | None,
    day: Any,
    seller: UUID | None = None,
) -> payment.PaymentPlan:
    """The payment sequence over the customer's accounts in the seller's pool; SKU facts are read
    only when a special account's product scope needs them."""
    accounts = await funds.payment_accounts(
        session, customer_id=customer_id, sales_org_id=sales_org_id, today=day, owner=seller
    )
    facts: dict[UUID, catalog.SkuFacts] = {}
    if any(a.kind == "special" for a in accounts):
        facts = await catalog.sku_facts(session, [ln.sku_id for ln in q.lines])
    lines = []
    for ln in q.lines:
        known = facts.get(ln.sku_id)
        lines.append(
            payment.PayableLine(
                line_id=ln.line_id,
                amount=ln.payable,
                fee_cap=min(ln.fee_cap, ln.payable),
                sku_id=str(ln.sku_id),
                category_ids=tuple(str(c) for c in known.categories) if known else (),
                brand_id=str(known.brand_id) if known and known.brand_id else None,
            )
        )
    request = payment.PaymentRequest(
        lines=lines,
        today=day,
        rebate_cap=q.rebate.cap,
        use_fees=q.fees.usable,
        use_rebate=q.rebate.usable,
        use_credit=True,
    )
    try:
        return payment.plan_payment(request, accounts)
    except ValueError as exc:
        raise invalid("lines", str(exc)) from None


def _credit_blocked(check_point: str, reasons: Sequence[str]) -> Conflict:
    return Conflict(
        f"credit check at {check_point}: {'; '.join(reasons)}",
        code="credit_blocked",
        errors=[field_error("credit", r) for r in reasons],
    )


async def _credit_verdict(
    session: AsyncSession,
    customer: Any,
    amount: Decimal,
    check_point: str,
    day: Any,
    *,
    lock: bool,
    seller: UUID | None = None,
) -> credit.CreditVerdict | None:
    """The verdict of the brand's credit, or of the credit ``seller`` granted the customer."""
    revs = await revisions.current(session, (terms.TOPIC,))
    book = await terms.terms_book(session, revs[terms.TOPIC])
    return await terms.credit_preview(
        session,
        book,
        customer_id=customer.id,
        customer_class=customer.customer_class,
        amount=amount,
        check_point=check_point,
        today=day,
        sales_org_id=customer.sales_org_id if seller is None else None,
        lock=lock,
        owner_customer_id=seller,
        exposure=None if seller is None else functools.partial(seller_exposure, seller_id=seller),
    )


async def _check_credit(
    session: AsyncSession, customer: Any, amount: Decimal, day: Any, seller: UUID | None = None
) -> tuple[str | None, list[str]]:
    """The credit verdict on the part of the order left on credit (check point ``submit``)."""
    if amount <= 0:
        return None, []
    # Locked: concurrent orders of one customer take their credit one after the other.
    verdict = await _credit_verdict(session, customer, amount, "submit", day, lock=True, seller=seller)
    if verdict is None:
        raise funds.insufficient(f"the accounts leave {amount} unpaid and the customer has no credit line")
    if verdict.action == "block":
        raise _credit_blocked("submit", verdict.reasons)
    return verdict.action, list(verdict.reasons)


async def _credit_at(
    session: AsyncSession, order: Order, check_point: str, carried: Decimal
) -> dict[str, Any] | None:
    """The credit check at ``approval`` or ``shipment`` for an order whose step carries
    ``carried`` of credit (nothing to check when it carries none). The order is already in the
    exposure, so the document adds 0. Returns what the history records (None when it passes)."""
    if carried <= 0:
        return None
    customer = await channels.require_customer(session, order.customer_id)
    verdict = await _credit_verdict(
        session,
        customer,
        ZERO,
        check_point,
        funds.business_day(),
        lock=False,
        seller=order.seller_customer_id,
    )
    if verdict is None or verdict.action == "pass":
        return None
    if verdict.action == "block" or (verdict.action == "needs_approval" and check_point == "shipment"):
        raise _credit_blocked(check_point, verdict.reasons)
    return {"check_point": check_point, "action": verdict.action, "reasons": list(verdict.reasons)}


async def _exposure(
    session: AsyncSession, customer_id: UUID, seller_id: UUID | None
) -> credit.ExposureInputs:
    """What the customer's orders from one seller (None: the brand) keep on credit: the unshipped
    credit part of open orders, and the shipped credit part net of returns of every order that
    shipped (until invoices, which another pool subtracts, and payments against credit)."""
    seller = Order.seller_customer_id
    of_seller = seller.is_(None) if seller_id is None else seller == seller_id
    open_part = case(
        (Order.status.in_(order_states.OPEN), Order.credit_amount - Order.credit_shipped), else_=0
    )
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(open_part), 0),
                func.coalesce(func.sum(Order.credit_shipped - Order.credit_returned), 0),
            ).where(
                Order.customer_id == customer_id,
                of_seller,
                Order.status.not_in(("cancelled", "rejected")),
            )
        )
    ).one()
    return credit.ExposureInputs(
        open_orders=Decimal(row[0]).quantize(ZERO), shipped_not_invoiced=Decimal(row[1]).quantize(ZERO)
    )


async def _order_exposure(session: AsyncSession, customer_id: UUID) -> credit.ExposureInputs:
    """The brand's credit exposure from orders: the brand-sold ones (module docstring)."""
    return await _exposure(session, customer_id, None)


async def seller_exposure(
    session: AsyncSession, customer_id: UUID, *, seller_id: UUID
) -> credit.ExposureInputs:
    """The exposure of the credit ``seller_id`` granted the customer: the orders it sells it."""
    return await _exposure(session, customer_id, seller_id)


terms.add_exposure_source(_order_exposure)


# --- settings ---------------------------------------------------------------------------------

DEFAULT_POSTING_POINT = "shipment"


def _settings_out(row: OrderSettings | None) -> OrderSettingsOut:
    if row is None:
        return OrderSettingsOut(
            posting_point=DEFAULT_POSTING_POINT, version=0, updated_by=None, updated_at=None
        )
    return OrderSettingsOut(
        posting_point=row.posting_point,
        version=row.version,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


async def _settings_row(session: AsyncSession, *, lock: bool = False) -> OrderSettings | None:
    stmt = select(OrderSettings).execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()


SETTINGS_TOPIC = "order_settings"


async def get_settings(session: AsyncSession) -> OrderSettingsOut:
    """The tenant's order settings; the defaults (version 0) until someone sets them."""
    return _settings_out(await _settings_row(session))


async def settings_for(session: AsyncSession, revision: revisions.Revision) -> OrderSettingsOut:
    """The settings as of ``revision`` (the ``order_settings`` stamp), read once per revision."""
    return await revisions.COMPILED.get(SETTINGS_TOPIC, revision, lambda: get_settings(session))


async def update_settings(
    session: AsyncSession, data: OrderSettingsIn, expected: int | None
) -> OrderSettingsOut:
    """Replace the settings; ``If-Match`` carries the version read (0 for the defaults). Orders
    keep the posting point they were submitted with."""
    await revisions.bump(session, SETTINGS_TOPIC)
    row = await _settings_row(session, lock=True)
    current = row.version if row is not None else 0
    if expected is not None and expected != current:
        raise PreconditionFailed(f"the order settings are at version {current}", code="stale_version")
    before = None if row is None else {"posting_point": row.posting_point, "version": row.version}
    actor = p.actor if (p := current_principal()) is not None else "system"
    if row is None:
        row = OrderSettings(id=new_id(), posting_point=data.posting_point, version=1, updated_by=actor)
        session.add(row)
    else:
        row.posting_point = data.posting_point
        row.version += 1
        row.updated_by = actor
        row.updated_at = utcnow()
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent first change created the row
        if not is_unique_violation(exc):
            raise
        raise PreconditionFailed(
            "the order settings were changed concurrently", code="stale_version"
        ) from None
    audit.record_change(
        session,
        "order_settings",
        row.id,
        before,
        {"posting_point": row.posting_point, "version": row.version},
    )
    return _settings_out(row)


def _stock_requests(warehouse_id: UUID, quantities: Sequence[tuple[UUID, Decimal]]) -> list[StockRequest]:
    """One request per SKU from (SKU, base quantity) pairs: a product line and its gift line
    share one reservation."""
    per_sku: dict[UUID, Decimal] = defaultdict(Decimal)
    for sku_id, quantity in quantities:
        per_sku[sku_id] += quantity
    return [
        StockRequest(warehouse_id=warehouse_id, sku_id=sku_id, quantity=quantity)
        for sku_id, quantity in sorted(per_sku.items())
    ]


def _build_lines(
    order_id: UUID, q: QuoteOut, plan: payment.PaymentPlan
) -> tuple[list[OrderLine], list[OrderLineAllocation]]:
    paid = {p.line_id: p for p in plan.lines}
    lines: list[OrderLine] = []
    allocations: list[OrderLineAllocation] = []
    for position, ln in enumerate(q.lines):
        part = paid[ln.line_id]
        line = OrderLine(
            id=new_id(),
            order_id=order_id,
            position=position,
            line_id=ln.line_id,
            sku_id=ln.sku_id,
            unit_id=ln.unit_id,
            quantity=ln.quantity,
            base_quantity=ln.base_quantity,
            list_price=ln.list_price,
            price_source=msgspec.to_builtins(ln.price_source),
            gross=ln.gross,
            payable=ln.payable,
            net_unit_price=ln.net_unit_price,
            fee_offset=part.fee,
            rebate=part.rebate,
            due=ln.payable - part.fee - part.rebate,
            special=part.special,
            cash=part.cash,
            credit=part.credit,
            shipped_quantity=Decimal(0),
            is_gift=False,
        )
        lines.append(line)
        allocations += [
            OrderLineAllocation(
                id=new_id(),
                order_id=order_id,
                order_line_id=line.id,
                promotion_id=d.promotion_id,
                stage=d.stage,
                amount=d.amount,
            )
            for d in ln.discounts
        ]
    for i, gift in enumerate(q.gift_lines, start=len(q.lines)):
        lines.append(
            OrderLine(
                id=new_id(),
                order_id=order_id,
                position=i,
                line_id=gift.line_id,
                sku_id=gift.sku_id,
                unit_id=None,
                quantity=gift.quantity,
                base_quantity=gift.quantity,
                list_price=ZERO,
                price_source={},
                gross=ZERO,
                payable=ZERO,
                net_unit_price=ZERO,
                fee_offset=ZERO,
                rebate=ZERO,
                due=ZERO,
                special=ZERO,
                cash=ZERO,
                credit=ZERO,
                shipped_quantity=Decimal(0),
                is_gift=True,
                gift_of=gift.promotion_id,
            )
        )
    return lines, allocations


async def submit(
    session: AsyncSession,
    plugins: Any,
    principal: Principal,
    data: OrderIn,
    *,
    key: str,
    max_lines: int,
) -> OrderOut:
    """Price, credit-check, freeze, reserve and write one order (see the module docstring); a
    level-2 order its seller cannot supply from stock may drop-ship (see :func:`_drop_ship`)."""
    customer_id = _buyer(principal, data)
    day = funds.business_day()
    if data.date is not None and data.date != day:
        raise invalid("date", f"an order is priced on the day it is submitted ({day.isoformat()})")
    # Held here, so the quote finds the customer in the identity map instead of reading it again.
    customer = await _customer(session, principal, customer_id)
    warehouse = await _warehouse(session, data.warehouse_id)
    q = await quotes.quote(
        session,
        plugins,
        principal,
        QuoteIn(
            lines=data.lines,
            customer_id=customer_id,
            channel=data.channel,
            coupon_codes=data.coupon_codes,
            use_fees=data.use_fees,
            use_rebate=data.use_rebate,
        ),
        max_lines=max_lines,
        credit_preview=False,  # the order checks credit on its own plan's credit part below
    )
    seller = _seller_of(q)
    _sellers_warehouse(warehouse, seller)
    if data.drop_ship_warehouse_id is not None:
        if seller is None:
            raise invalid("drop_ship_warehouse_id", "only an order a level-1 dealer sells may drop-ship")
        await _drop_ship_warehouse(session, data.drop_ship_warehouse_id)
    _refuse_blocked_floor(q)
    placed = await _place(
        session,
        principal,
        customer=customer,
        q=q,
        seller=seller,
        warehouse_id=data.warehouse_id,
        key=key,
        day=day,
        drop_ship_warehouse_id=data.drop_ship_warehouse_id,
    )
    order, lines, allocations, history = placed.order, placed.lines, placed.allocations, placed.history
    if placed.drop_ship:
        assert data.drop_ship_warehouse_id is not None and seller is not None
        history.append(
            await _drop_ship(session, plugins, principal, order, data, seller, max_lines=max_lines)
        )
    return _order_out(order, lines, allocations, history)


class _Placed(NamedTuple):
    order: Order
    lines: list[OrderLine]
    allocations: list[OrderLineAllocation]
    history: list[OrderEvent]
    drop_ship: bool = False


async def _place(
    session: AsyncSession,
    principal: Principal,
    *,
    customer: Any,
    q: QuoteOut,
    seller: UUID | None,
    warehouse_id: UUID,
    key: str,
    day: Any,
    drop_ship_warehouse_id: UUID | None = None,
    source: Order | None = None,
) -> _Placed:
    """Steps 3 to 7 of submit for a priced basket ``q`` of ``customer`` sold by ``seller``.
    ``source``: the level-2 order a drop-ship purchase is placed for. A shortage of stock is
    the 409 it is, unless the order may drop-ship (then nothing is reserved and the result says
    so: the purchase's reservation stands for it)."""
    customer_id = customer.id
    sales_org_id = customer.sales_org_id if seller is None else None  # a dealer's pool has no orgs
    order_id, now = new_id(), utcnow()
    plan = await _plan(session, q, customer_id, sales_org_id, day, seller)
    credit_action, credit_reasons = await _check_credit(session, customer, plan.credit, day, seller)
    revs = await revisions.current(session, (SETTINGS_TOPIC, approvals.TOPIC))
    rules = (
        await approvals.approval_for(
            session,
            customer=customer,
            channel=q.channel,
            gross=q.totals.gross,
            amount=q.totals.after_promotions,
            credit_amount=plan.credit,
            sku_ids=[ln.sku_id for ln in q.lines],
            revision=revs[approvals.TOPIC],
        )
        if seller is None  # the brand's approval rules are the brand's
        else []
    )
    approval: list[str] = []
    if q.floor_verdict == "needs_approval":
        approval.append("a line is priced below its floor (价盘) and needs approval")
    if credit_action == "needs_approval":
        approval += [f"credit: {r}" for r in credit_reasons]
    approval += [m.reason for m in rules]
    approver_roles = sorted({m.approver_role for m in rules if m.approver_role})
    status = order_states.submitted(needs_approval=bool(approval))
    posting_point = (await settings_for(session, revs[SETTINGS_TOPIC])).posting_point

    reference = fund_reference(order_id)
    await funds.freeze(
        session,
        customer_id=customer_id,
        sales_org_id=sales_org_id,
        plan=plan,
        reference=reference,
        owner=seller,
    )
    lines, allocations = _build_lines(order_id, q, plan)
    drop_ship = False
    try:
        await inventory.reserve_many(
            session,
            None,
            _stock_requests(warehouse_id, [(ln.sku_id, ln.base_quantity) for ln in lines]),
            reference=stock_reference(order_id),
        )
    except Conflict as exc:  # reserve_many checks all before it writes: nothing was held
        if exc.code != "insufficient_stock" or seller is None:
            raise
        if not await _may_drop_ship(session, customer_id, seller, lines, day):
            raise
        if drop_ship_warehouse_id is None:
            raise Conflict(
                f"{exc.detail}; every line may drop-ship: name the brand warehouse that ships it "
                "in drop_ship_warehouse_id",
                code="insufficient_stock",
                errors=exc.errors,
            ) from None
        drop_ship = True
    coupon_ids = [a.promotion_id for a in q.promotions if a.stage == "coupon"]
    for coupon_id in coupon_ids:
        await promos.transition_coupon_code(session, UUID(coupon_id), "reserved", customer_id=customer_id)
    if q.promotions:
        # Budgets and per-customer limits, or the order is refused (409). Last of the locks (money,
        # stock, coupons, promotions; a cancel takes them in the same order), so a popular
        # promotion's row is held only for the end of the transaction, not all of it.
        await promos.consume(session, customer_id=customer_id, order_id=order_id, applications=q.promotions)

    frozen = plan.total - plan.credit
    post_now = posting_point == "approval" and status == "approved"
    if post_now:
        await funds.post_holds(session, reference, owner=seller)
    order = Order(
        id=order_id,
        number=order_number(order_id, day),
        customer_id=customer_id,
        seller_customer_id=seller,
        sales_org_id=sales_org_id,
        warehouse_id=warehouse_id,
        status=status,
        version=1,
        gross=q.totals.gross,
        discount=q.totals.discount,
        after_promotions=q.totals.after_promotions,
        fee_offset=plan.fee,
        rebate=plan.rebate,
        due=q.totals.after_promotions - plan.fee - plan.rebate,
        special=plan.special,
        cash=plan.cash,
        credit_amount=plan.credit,
        frozen_amount=frozen,
        posted_amount=frozen if post_now else ZERO,
        refunded_amount=ZERO,
        credit_shipped=ZERO,
        credit_returned=ZERO,
        posting_point=posting_point,
        floor_verdict=q.floor_verdict,
        credit_action=credit_action,
        credit_reasons=credit_reasons,
        approval_reasons=approval,
        approver_roles=approver_roles,
        coupon_code_ids=coupon_ids,
        source_order_id=None if source is None else source.id,
        drop_ship_order_id=None,
        ship_to_customer_id=None if source is None else source.customer_id,
        channel=q.channel,
        idempotency_key=key,
        priced_at=now,
        submitted_by=principal.actor,
        created_at=now,
        updated_at=now,
    )
    detail: dict[str, Any] = {"approval_reasons": approval, "credit_action": credit_action}
    if source is not None:
        detail["source_order_id"] = str(source.id)
    history = OrderEvent(
        id=new_id(),
        order_id=order_id,
        action="submit",
        from_status=None,
        to_status=status,
        detail=detail,
        actor=principal.actor,
        at=now,
    )
    session.add(order)
    session.add_all(lines)
    session.add_all(allocations)
    session.add(history)
    summary = _event_summary(order)
    audit.record(session, "submit", "order", order_id, after=summary)
    events.emit(session, "order.submitted", {"id": order_id, **summary})
    await session.flush()
    return _Placed(order, lines, allocations, [history], drop_ship)


# --- drop-ship --------------------------------------------------------------------------------


async def _drop_ship_warehouse(
    session: AsyncSession, warehouse_id: UUID, field: str = "drop_ship_warehouse_id"
) -> None:
    """An active brand warehouse, or a 422 naming ``field``."""
    try:
        warehouse = await inventory.get_warehouse(session, None, warehouse_id)
    except NotFound:
        raise invalid(field, "no such warehouse") from None
    if warehouse.status != "active":
        raise invalid(field, f"the warehouse is {warehouse.status}")
    if warehouse.owner_customer_id is not None:
        raise invalid(field, "the goods of a drop-ship move through a brand warehouse: name one")


async def _may_drop_ship(
    session: AsyncSession, customer_id: UUID, seller: UUID, lines: Sequence[OrderLine], day: Any
) -> bool:
    """Whether the whole order may drop-ship: the supply relation that routes every line to
    ``seller`` allows it (one line that does not keeps the 409 of the shortage)."""
    routes = await distribution.route_supplier(
        session, buyer_id=customer_id, sku_ids=[ln.sku_id for ln in lines], region_id=None, day=day
    )
    for ln in lines:
        route = routes.get(ln.sku_id)
        if route is None or route.seller_id != seller or not route.drop_ship_allowed:
            return False
    return True


async def _drop_ship(
    session: AsyncSession,
    plugins: Any,
    principal: Principal,
    order: Order,
    data: OrderIn,
    seller: UUID,
    *,
    max_lines: int,
) -> OrderEvent:
    """Place the level-1 seller's purchase from the brand for a level-2 ``order`` it cannot supply
    from stock: the same lines, priced by the quote service for the seller (the brand's prices
    for it), paid and credit-checked in the brand's pool like any brand order of the seller, with
    the stock reserved in the brand warehouse ``data.drop_ship_warehouse_id``. A purchase the
    seller cannot pay (or the brand cannot supply) refuses the level-2 order with its Problem;
    the caller's transaction then leaves nothing of either behind. Returns the level-2 order's
    history entry of the link."""
    assert data.drop_ship_warehouse_id is not None
    buyer = await channels.require_customer(session, seller)
    as_seller = msgspec.structs.replace(principal, customer_id=seller)  # the seller buys for itself
    q = await quotes.quote(
        session,
        plugins,
        as_seller,
        QuoteIn(lines=data.lines, customer_id=seller),
        max_lines=max_lines,
        credit_preview=False,
    )
    if _seller_of(q) is not None:
        raise Conflict(
            "the level-1 dealer does not buy these goods from the brand", code="drop_ship_unavailable"
        )
    _refuse_blocked_floor(q)
    purchase = await _place(
        session,
        principal,
        customer=buyer,
        q=q,
        seller=None,
        warehouse_id=data.drop_ship_warehouse_id,
        key=f"drop-ship:{order.id}",
        day=funds.business_day(),
        source=order,
    )
    await _set(session, order, drop_ship_order_id=purchase.order.id)
    event = OrderEvent(
        id=new_id(),
        order_id=order.id,
        action="drop_ship",
        from_status=order.status,
        to_status=order.status,
        detail={
            "drop_ship_order_id": str(purchase.order.id),
            "warehouse_id": str(data.drop_ship_warehouse_id),
        },
        actor=principal.actor,
        at=utcnow(),
    )
    session.add(event)
    audit.record(
        session,
        "drop_ship",
        "order",
        order.id,
        after={"drop_ship_order_id": str(purchase.order.id)},
    )
    events.emit(
        session,
        "order.drop_shipped",
        {"id": order.id, "drop_ship_order_id": purchase.order.id, **_event_summary(order)},
    )
    await session.flush()
    return event


def _event_summary(o: Order) -> dict[str, Any]:
    return {
        "number": o.number,
        "customer_id": str(o.customer_id),
        "seller_customer_id": None if o.seller_customer_id is None else str(o.seller_customer_id),
        "status": o.status,
        "after_promotions": str(o.after_promotions),
        "frozen_amount": str(o.frozen_amount),
        "credit_amount": str(o.credit_amount),
    }


# --- status changes ---------------------------------------------------------------------------


def _legal(order: Order, action: order_states.Action) -> order_states.Status:
    try:
        return order_states.transition(order.status, action)  # type: ignore[arg-type]
    except order_states.IllegalTransition as exc:
        raise Conflict(str(exc), code="illegal_transition") from None


async def _move(
    session: AsyncSession,
    principal: Principal,
    order: Order,
    action: order_states.Action,
    detail: dict[str, Any] | None = None,
    **values: Any,
) -> OrderEvent:
    """Take the order one step along the state machine exactly once: a conditional UPDATE on its
    status and version, then its history entry (returned), audit entry and outbox event."""
    before = order.status
    after = _legal(order, action)
    now = utcnow()
    result = await session.execute(
        update(Order)
        .where(Order.id == order.id, Order.status == before, Order.version == order.version)
        .values(status=after, version=order.version + 1, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("the order was changed by a concurrent request; read it again", code="order_changed")
    for name, value in {"status": after, "version": order.version + 1, "updated_at": now, **values}.items():
        set_committed_value(order, name, value)
    entry = OrderEvent(
        id=new_id(),
        order_id=order.id,
        action=action,
        from_status=before,
        to_status=after,
        detail=detail or {},
        actor=principal.actor,
        at=now,
    )
    session.add(entry)
    audit.record(
        session,
        action,
        "order",
        order.id,
        before={"status": before},
        after={"status": after, **(detail or {})},
    )
    events.emit(session, f"order.{after}", {"id": order.id, "action": action, **_event_summary(order)})
    await session.flush()
    return entry


async def _coupons(session: AsyncSession, order: Order, to: str) -> None:
    for coupon_id in order.coupon_code_ids:
        await promos.transition_coupon_code(session, UUID(coupon_id), to)  # type: ignore[arg-type]


MONEY_PARTS = ("fee", "rebate", "special", "cash")
"""The paying account kinds, as ``funds`` names them; a line's ``credit`` is not money."""


def line_parts(line: OrderLine) -> dict[str, Decimal]:
    """How ``line.payable`` is paid, by part. Lines written before the split was kept carry
    only fees and rebate: the rest of them counts as cash."""
    parts = {
        "fee": line.fee_offset,
        "rebate": line.rebate,
        "special": line.special,
        "cash": line.cash,
        "credit": line.credit,
    }
    if sum(parts.values(), ZERO) != line.payable:
        parts.update(special=ZERO, credit=ZERO, cash=line.payable - line.fee_offset - line.rebate)
    return parts


def moved_parts(line: OrderLine, done: Decimal, now: Decimal) -> dict[str, Decimal]:
    """The parts ``now`` more units of ``line`` carry after ``done`` (``sales.share`` of each)."""
    return {k: sales.share(v, done, now, line.quantity) for k, v in line_parts(line).items()}


def add_parts(into: dict[str, Decimal], parts: dict[str, Decimal]) -> None:
    for k, v in parts.items():
        into[k] = into.get(k, ZERO) + v


def _money(parts: dict[str, Decimal]) -> dict[str, Decimal]:
    return {k: parts.get(k, ZERO) for k in MONEY_PARTS}


async def _release_everything(session: AsyncSession, order: Order, action: str) -> dict[str, Any]:
    """Before any shipment: void every freeze, refund what an approval already posted, release
    the stock and give the coupon codes back. Returns what the history records."""
    reference = fund_reference(order.id)
    await funds.void_holds(session, reference)
    moved: dict[str, Any] = {}
    if order.posted_amount > order.refunded_amount:
        await funds.refund(
            session,
            reference,
            key=f"order-{action}:{order.id}",
            memo=f"order {action}",
            owner=order.seller_customer_id,
        )
        moved["refunded"] = str(order.posted_amount - order.refunded_amount)
        await _set(session, order, refunded_amount=order.posted_amount)
    await inventory.release_many(session, None, stock_reference(order.id))
    await _coupons(session, order, "issued")
    # Promotions last, as submit takes them last: one lock order, so a cancel and a submit that
    # share a promotion and an account never wait on each other crosswise.
    await promos.release(session, order_id=order.id)
    return moved


async def _set(session: AsyncSession, order: Order, **values: Any) -> None:
    """Write money columns the order's status move does not own (a refund, a return's credit);
    the status and version stay as they are, so this never races an action's conditional move."""
    await session.execute(
        update(Order)
        .where(Order.id == order.id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    for name, value in values.items():
        set_committed_value(order, name, value)


async def _post_all(session: AsyncSession, order: Order) -> dict[str, Any]:
    """Posting at approval: every freeze becomes a deduction now."""
    await funds.post_holds(session, fund_reference(order.id), owner=order.seller_customer_id)
    return {"posted": str(order.frozen_amount)}


def _may_decide(principal: Principal, order: Order) -> None:
    """Approving and rejecting are one decision: both need a role the order's rules named."""
    if not may_approve(order.approver_roles, principal.roles):
        raise Forbidden(
            "the approval rules that caught this order name who decides on it: "
            + ", ".join(order.approver_roles),
            code="approver_role_required",
        )


async def approve(session: AsyncSession, principal: Principal, order_id: UUID) -> OrderOut:
    order = await _visible_order(session, principal, order_id, lock=True)
    _sells(principal, order)
    _legal(order, "approve")
    _may_decide(principal, order)
    checked = await _credit_at(session, order, "approval", order.credit_amount)
    post = order.posting_point == "approval"
    detail = {"credit": checked} if checked else {}
    if post:
        detail["posted"] = str(order.frozen_amount)
    await _move(
        session,
        principal,
        order,
        "approve",
        detail,
        **({"posted_amount": order.frozen_amount} if post else {}),
    )
    if post:
        await _post_all(session, order)
    return await _full_out(session, order)


async def reject(session: AsyncSession, principal: Principal, order_id: UUID, reason: str | None) -> OrderOut:
    """Refuse an order waiting for approval. The brand refusing a drop-ship purchase refuses to
    supply its level-2 order too: that order is cancelled with it (the level-2 order first, then
    the purchase: the lock order of every drop-ship step)."""
    peek = await _visible_order(session, principal, order_id)
    source = None if peek.source_order_id is None else await _locked(session, peek.source_order_id)
    order = await _locked(session, peek.id)
    _sells(principal, order)
    _legal(order, "reject")
    _may_decide(principal, order)
    if source is not None:
        why = f"the brand rejected the drop-ship purchase {order.number}" + (f": {reason}" if reason else "")
        await _move(
            session, principal, source, "cancel", {"reason": why, "drop_ship_order_id": str(order.id)}
        )
        await _release_everything(session, source, "cancel")
    await _move(session, principal, order, "reject", {"reason": reason} if reason else None)
    await _release_everything(session, order, "reject")
    await _cancel_purchase(session, principal, order, "rejected")
    return await _full_out(session, order)


async def cancel(session: AsyncSession, principal: Principal, order_id: UUID, reason: str | None) -> OrderOut:
    """Cancel before shipment, or close the rest after a partial shipment (module docstring); the
    buyer or the seller may."""
    order = await _visible_order(session, principal, order_id, lock=True)
    _own(principal, order, seller_may=True)
    _not_linked(order, "cancel")
    if order.status == "partially_shipped":
        out = await _close(session, principal, order, reason)
    else:
        await _move(session, principal, order, "cancel", {"reason": reason} if reason else None)
        await _release_everything(session, order, "cancel")
        out = None
    await _cancel_purchase(session, principal, order, "cancelled")
    return out if out is not None else await _full_out(session, order)


def _not_linked(order: Order, action: str) -> None:
    """A drop-ship purchase follows its level-2 order: it is cancelled, completed and returned
    through that order only (409 ``drop_ship_linked``)."""
    if order.source_order_id is not None:
        raise Conflict(
            f"this purchase drop-ships the order {order.source_order_id}: "
            f"{action.replace('_', ' ')} that order instead",
            code="drop_ship_linked",
        )


async def _cancel_purchase(session: AsyncSession, principal: Principal, order: Order, what: str) -> None:
    """A cancelled, rejected or closed level-2 order takes its drop-ship purchase with it: the
    purchase is cancelled (releasing its freezes and brand stock) or, shipped in part, closed."""
    if order.drop_ship_order_id is None:
        return
    purchase = await _locked(session, order.drop_ship_order_id)
    if purchase.status not in order_states.OPEN:
        return
    reason = f"the drop-shipped order {order.id} was {what}"
    if purchase.status == "partially_shipped":
        await _close(session, principal, purchase, reason)
        return
    await _move(session, principal, purchase, "cancel", {"reason": reason, "source_order_id": str(order.id)})
    await _release_everything(session, purchase, "cancel")


async def _close(session: AsyncSession, principal: Principal, order: Order, reason: str | None) -> OrderOut:
    """Partial cancel: credit first (the status change), then money, then stock."""
    lines = await _lines_of(session, order.id)
    unshipped: dict[str, Decimal] = {}
    for ln in lines:
        add_parts(unshipped, moved_parts(ln, ln.shipped_quantity, ln.quantity - ln.shipped_quantity))
    detail: dict[str, Any] = {"released_credit": str(order.credit_amount - order.credit_shipped)}
    if reason:
        detail["reason"] = reason
    reference = fund_reference(order.id)
    placed = sum((h.amount for h in await funds.holds_for(session, reference) if h.state == "placed"), ZERO)
    refund = _money(unshipped) if order.posting_point == "approval" else {}
    if placed:
        detail["released"] = str(placed)
    if any(refund.values()):
        detail["refunded"] = str(sum(refund.values(), ZERO))
    await _move(session, principal, order, "cancel", detail)
    await funds.void_holds(session, reference)
    if any(refund.values()):
        await funds.refund(
            session,
            reference,
            key=f"order-close:{order.id}",
            memo="order closed",
            by_kind=refund,
            owner=order.seller_customer_id,
        )
        await _set(session, order, refunded_amount=order.refunded_amount + sum(refund.values(), ZERO))
    await inventory.release_many(session, None, stock_reference(order.id))
    return await _full_out(session, order, lines)


async def confirm_receipt(session: AsyncSession, principal: Principal, order_id: UUID) -> OrderOut:
    """签收 by the buyer. For a drop-shipped level-2 order it completes the purchase too (the
    level-1 dealer never handled the goods); the purchase is never confirmed on its own."""
    order = await _visible_order(session, principal, order_id, lock=True)
    _own(principal, order)
    _not_linked(order, "confirm_receipt")
    await _move(session, principal, order, "confirm_receipt")
    if order.drop_ship_order_id is not None:
        purchase = await _locked(session, order.drop_ship_order_id)
        await _move(session, principal, purchase, "confirm_receipt", {"source_order_id": str(order.id)})
    return await _full_out(session, order)


def _shipment(data: ShipmentIn, lines: Sequence[OrderLine]) -> dict[UUID, Decimal]:
    """The quantity to ship per line; each problem is a 422 naming the field."""
    by_ref = {ln.line_id: ln for ln in lines}
    wanted: dict[UUID, Decimal] = {}
    errors = []
    for i, item in enumerate(data.lines):
        line = by_ref.get(item.line_id)
        if line is None:
            errors.append(field_error(f"lines[{i}].line_id", "no such line on this order"))
        elif line.id in wanted:
            errors.append(field_error(f"lines[{i}].line_id", "the line appears twice in this shipment"))
        elif item.quantity > line.quantity - line.shipped_quantity:
            left = (line.quantity - line.shipped_quantity).normalize()
            errors.append(field_error(f"lines[{i}].quantity", f"only {left:f} left to ship"))
        else:
            wanted[line.id] = item.quantity
    if errors:
        raise Unprocessable("the shipment does not fit the order", code="bad_shipment", errors=errors)
    return wanted


class _Source(NamedTuple):
    """Where a shipment line leaves from when the shipment names it (``index``: its place in the
    shipment, for the Problems that name it)."""

    index: int
    warehouse_id: UUID
    lot_no: str | None


async def _sources(
    session: AsyncSession, order: Order, data: ShipmentIn, lines: Sequence[OrderLine]
) -> dict[UUID, _Source]:
    """The lines (order line id → source) that leave from elsewhere than their holds: a line
    naming another warehouse, or a lot. The warehouse is the seller's, as at submit: a brand
    warehouse for a brand-sold order (a drop-ship purchase too), one the selling dealer owns for
    a dealer-sold one; anything else is a 422 on ``lines[<i>].warehouse_id``. A line naming the
    order's own warehouse and no lot ships from its holds."""
    by_ref = {ln.line_id: ln for ln in lines}
    checked: set[UUID] = {order.warehouse_id}
    sources: dict[UUID, _Source] = {}
    for i, item in enumerate(data.lines):
        if item.warehouse_id is None and item.lot_no is None:
            continue
        warehouse_id = item.warehouse_id or order.warehouse_id
        if warehouse_id not in checked:
            field = f"lines[{i}].warehouse_id"
            warehouse = await _warehouse(session, warehouse_id, field)
            _sellers_warehouse(warehouse, order.seller_customer_id, field)
            checked.add(warehouse_id)
        if warehouse_id != order.warehouse_id or item.lot_no is not None:
            sources[by_ref[item.line_id].id] = _Source(i, warehouse_id, item.lot_no)
    return sources


async def ship(
    session: AsyncSession, principal: Principal, order_id: UUID, data: ShipmentIn, *, keyed: bool
) -> OrderOut:
    """Ship some or all of what is left (see the module docstring). Shipping a drop-ship purchase
    ships its level-2 order's lines by the same quantities (see :func:`_ship_source`)."""
    order = await _visible_order(session, principal, order_id)
    if not keyed:
        raise PreconditionRequired(
            "send an Idempotency-Key: a shipment moves stock and money", code="idempotency_key_required"
        )
    _sells(principal, order)
    if order.drop_ship_order_id is not None:
        raise Conflict(
            f"the brand ships this order: it drop-ships the purchase {order.drop_ship_order_id}",
            code="drop_shipped",
        )
    # The level-2 order first, then its purchase: the lock order of every drop-ship step.
    source = None if order.source_order_id is None else await _locked(session, order.source_order_id)
    order = await _locked(session, order.id)
    _legal(order, "ship_partial")  # both kinds of shipment leave the same statuses
    lines = await _lines_of(session, order.id)
    shipped = _shipment(data, lines)
    sources = await _sources(session, order, data, lines)
    shipment_id = new_id()
    extra = {} if source is None else {"ship_to_customer_id": str(order.ship_to_customer_id)}
    if source is not None:
        # The level-2 order's money (the level-1 dealer's pool) before the purchase's (the
        # brand's), as the drop-ship submit froze them: one lock order for every drop-ship step.
        await _ship_source(session, principal, source, order, lines, shipped, shipment_id)
    await _ship_lines(
        session, principal, order, lines, shipped, shipment_id, extra, consume=True, sources=sources
    )
    return await _full_out(session, order, lines)


async def _locked(session: AsyncSession, order_id: UUID) -> Order:
    """The order's row, taken for update and read fresh."""
    order = await session.get(
        Order, (require_tenant(), order_id), populate_existing=True, with_for_update=True
    )
    assert order is not None, "a linked order exists (foreign key)"
    return order


async def _ship_source(
    session: AsyncSession,
    principal: Principal,
    source: Order,
    purchase: Order,
    purchase_lines: Sequence[OrderLine],
    shipped: dict[UUID, Decimal],
    shipment_id: UUID,
) -> None:
    """The brand's shipment of a drop-ship purchase is the level-2 order's shipment too: its lines
    of the same ``line_id`` ship the same quantities, its money posts in the level-1 dealer's pool
    as that dealer's own shipment would, and no stock of the level-1 dealer moves (the goods left
    the brand's warehouse). Lines the purchase has and the level-2 order has not (a gift of the
    brand's promotions to the level-1 dealer) ship on the purchase only. A level-2 order still
    waiting for its seller's approval cannot ship: 409 ``source_not_approved``."""
    by_ref = {ln.line_id: ln for ln in await _lines_of(session, source.id)}
    mirrored: dict[UUID, Decimal] = {}
    for ln in purchase_lines:
        if ln.id in shipped and ln.line_id in by_ref:
            mirrored[by_ref[ln.line_id].id] = shipped[ln.id]
    if not mirrored:
        return
    if (source.status, "ship_partial") not in order_states.TRANSITIONS:
        raise Conflict(
            f"the level-2 order {source.id} is {source.status.replace('_', ' ')}: "
            "its seller approves it before the brand ships",
            code="source_not_approved",
        )
    extra = {"drop_ship_order_id": str(purchase.id), "drop_ship_shipment_id": str(shipment_id)}
    lines = list(by_ref.values())
    await _ship_lines(session, principal, source, lines, mirrored, new_id(), extra, consume=False)


async def _ship_lines(
    session: AsyncSession,
    principal: Principal,
    order: Order,
    lines: Sequence[OrderLine],
    shipped: dict[UUID, Decimal],
    shipment_id: UUID,
    extra: dict[str, Any],
    *,
    consume: bool,
    sources: dict[UUID, _Source] | None = None,
) -> None:
    """Ship ``shipped`` (order line id → quantity) of the locked ``order``: the status move, the
    money, the stock (``consume``; ``sources``: the lines leaving from elsewhere than their
    holds, see :func:`_stock_plan`), the sales facts and the coupon codes."""
    plan = await _stock_plan(session, order, lines, shipped, sources or {}) if consume else None
    full = all(ln.shipped_quantity + shipped.get(ln.id, Decimal(0)) == ln.quantity for ln in lines)
    parts: dict[str, Decimal] = {}
    for ln in lines:
        if ln.id in shipped:
            add_parts(parts, moved_parts(ln, ln.shipped_quantity, shipped[ln.id]))
    checked = await _credit_at(session, order, "shipment", parts.get("credit", ZERO))
    at_shipment = order.posting_point == "shipment"
    post = _money(parts) if at_shipment and not full else {}
    amount = (
        (sum(post.values(), ZERO) if not full else order.frozen_amount - order.posted_amount)
        if at_shipment
        else ZERO
    )
    credit_shipped = order.credit_amount if full else order.credit_shipped + parts.get("credit", ZERO)
    first = order.status == "approved"
    detail: dict[str, Any] = {
        "shipment_id": str(shipment_id),
        "lines": {ln.line_id: str(shipped[ln.id]) for ln in lines if ln.id in shipped},
        "posted": str(amount),
        "credit": str(credit_shipped - order.credit_shipped),
        **extra,
    }
    if checked:
        detail["credit_check"] = checked
    if plan is not None:  # a copy: the lots of lines leaving from elsewhere are filled in below
        detail["stock"] = {line_id: dict(where) for line_id, where in plan.record.items()}
    entry = await _move(
        session,
        principal,
        order,
        "ship_full" if full else "ship_partial",
        detail,
        posted_amount=order.posted_amount + amount,
        credit_shipped=credit_shipped,
    )
    # Money before stock, as at submit and cancel: one lock order, so concurrent orders of one
    # customer cannot deadlock on its account and a shared stock level.
    if amount > 0:
        owner = order.seller_customer_id
        if full:
            await funds.post_holds(session, fund_reference(order.id), owner=owner)
        else:
            await funds.post_holds(session, fund_reference(order.id), by_kind=post, owner=owner)
    if plan is not None:
        await _take_stock(session, order, plan, shipment_id)
        if plan.moved:  # the lots the chosen warehouses gave are known now
            entry.detail = {**entry.detail, "stock": plan.record}
    await sales.record(
        session,
        kind="shipped",
        day=funds.business_day(),
        document_id=shipment_id,
        order_id=order.id,
        customer_id=order.customer_id,
        seller_customer_id=order.seller_customer_id,
        sales_org_id=order.sales_org_id,
        movements=[_movement(ln, ln.shipped_quantity, shipped[ln.id]) for ln in lines if ln.id in shipped],
    )
    for ln in lines:
        if ln.id in shipped:
            ln.shipped_quantity = ln.shipped_quantity + shipped[ln.id]
    if first:
        await _coupons(session, order, "redeemed")
    await session.flush()


@dataclass
class _StockPlan:
    """What a shipment does to stock, worked out before anything moves. ``consume`` and
    ``release``: order hold id → quantity shipped from it, and released from it for lines that
    leave from elsewhere (``moved``: those lines with their base quantity and source).
    ``record``: per line id, the warehouse and the lots (lot number → base quantity) it leaves
    from, as the shipment's history keeps it."""

    consume: dict[UUID, Decimal]
    release: dict[UUID, Decimal]
    moved: list[tuple[OrderLine, Decimal, _Source]]
    record: dict[str, dict[str, Any]]


async def _stock_plan(
    session: AsyncSession,
    order: Order,
    lines: Sequence[OrderLine],
    shipped: dict[UUID, Decimal],
    sources: dict[UUID, _Source],
) -> _StockPlan:
    """Walk each SKU's placed holds in the order they were placed (the allocation order of its
    lots): the lines shipping from their holds take the first ones, then the lines leaving from
    elsewhere take what they release, so a later shipment from the holds still gets the lots it
    would have got. Holds that no longer cover the shipment are a 409 ``reservation_closed``."""
    holds, _ = await inventory.list_reservations(
        session, None, None, MAX_HOLDS, status="placed", reference=stock_reference(order.id)
    )
    by_sku: dict[UUID, list[Any]] = defaultdict(list)
    for hold in holds:
        by_sku[hold.sku_id].append(hold)
    left = {hold.id: hold.quantity for hold in holds}
    plan = _StockPlan({}, {}, [], {})

    def take(line: OrderLine, quantity: Decimal, into: dict[UUID, Decimal]) -> dict[str, str]:
        lots: dict[str, Decimal] = defaultdict(Decimal)
        for hold in by_sku[line.sku_id]:
            part = min(quantity, left[hold.id])
            if part > 0:
                left[hold.id] -= part
                into[hold.id] = into.get(hold.id, Decimal(0)) + part
                lots[hold.lot_no] += part
                quantity -= part
        if quantity > 0:
            raise Conflict("the order's stock holds no longer cover this shipment", code="reservation_closed")
        return {lot: f"{q.normalize():f}" for lot, q in lots.items()}

    going = [ln for ln in lines if ln.id in shipped]
    for ln in going:
        if ln.id not in sources:
            lots = take(ln, _base(ln, shipped[ln.id]), plan.consume)
            plan.record[ln.line_id] = {"warehouse_id": str(order.warehouse_id), "lots": lots}
    for ln in going:
        if ln.id in sources:
            src, base = sources[ln.id], _base(ln, shipped[ln.id])
            take(ln, base, plan.release)
            plan.moved.append((ln, base, src))
            plan.record[ln.line_id] = {
                "warehouse_id": str(src.warehouse_id),
                "lots": {} if src.lot_no is None else {src.lot_no: f"{base.normalize():f}"},
                "released_from": str(order.warehouse_id),
            }
    return plan


def shipment_stock_reference(order_id: UUID, shipment_id: UUID) -> str:
    """The stock reference of the goods one shipment takes from a warehouse it names (79
    characters: it fits the 80 a stock reference may have)."""
    return f"{stock_reference(order_id)}/{shipment_id}"


async def _take_stock(session: AsyncSession, order: Order, plan: _StockPlan, shipment_id: UUID) -> None:
    """Move the stock of a shipment: in the order's warehouse, consume the holds shipped from
    and release the holds of lines leaving from elsewhere; in each warehouse a line names, hold
    and consume its goods (``reference`` ``order:<id>/<shipment id>``), each warehouse's steps
    together and the warehouses in id order, so two shipments that cross between the same
    warehouses take their stock levels in one order and never wait on each other crosswise."""
    reference = stock_reference(order.id)
    elsewhere: dict[UUID, list[tuple[OrderLine, Decimal, _Source]]] = defaultdict(list)
    for item in plan.moved:
        elsewhere[item[2].warehouse_id].append(item)
    home_done = False
    for warehouse_id in sorted(elsewhere):
        if not home_done and warehouse_id >= order.warehouse_id:  # same warehouse: release first
            await _from_holds(session, reference, plan)
            home_done = True
        await _from_warehouse(session, order, plan, elsewhere[warehouse_id], shipment_id)
    if not home_done:
        await _from_holds(session, reference, plan)


async def _from_holds(session: AsyncSession, reference: str, plan: _StockPlan) -> None:
    """Consume what ships from the order's holds, then release the part of them whose goods
    leave from elsewhere; the rest of each hold stays placed, in its lot."""
    if plan.consume:
        await inventory.consume_many(session, None, reference, quantities=plan.consume)
    if plan.release:
        await inventory.release_many(session, None, reference, quantities=plan.release)


async def _from_warehouse(
    session: AsyncSession,
    order: Order,
    plan: _StockPlan,
    items: Sequence[tuple[OrderLine, Decimal, _Source]],
    shipment_id: UUID,
) -> None:
    """Hold, then consume, the goods of ``items`` in the one warehouse they name, in allocation
    order (``inventory.allocation_key``: earliest expiry first, never an expired lot unless the
    lot is named). A warehouse that cannot cover a line is a 409 ``insufficient_stock`` naming
    the line (``lines[<i>].quantity``); the caller's transaction then leaves nothing behind."""
    reference = shipment_stock_reference(order.id, shipment_id)
    requests = [
        StockRequest(warehouse_id=src.warehouse_id, sku_id=ln.sku_id, quantity=base, lot_no=src.lot_no)
        for ln, base, src in items
    ]
    try:
        holds = await inventory.reserve_many(session, None, requests, reference=reference)
    except Conflict as exc:
        if exc.code != "insufficient_stock":
            raise
        index = int(str(exc.errors[0]["field"]).split("[", 1)[1].split("]", 1)[0]) if exc.errors else 0
        ln, _, src = items[index]
        short = str(exc.detail).split(": ", 1)[-1]
        field = f"lines[{src.index}].quantity"
        raise Conflict(
            f"line {ln.line_id} cannot ship from warehouse {src.warehouse_id}: {short}",
            code="insufficient_stock",
            errors=[{**field_error(field, short), "line_id": ln.line_id}],
        ) from None
    await inventory.consume_many(session, None, reference)
    taken = iter(holds)  # in request order; each request's holds add up to it
    for ln, base, _ in items:
        lots: dict[str, Decimal] = defaultdict(Decimal)
        while base > 0:
            hold = next(taken)
            lots[hold.lot_no] += hold.quantity
            base -= hold.quantity
        plan.record[ln.line_id]["lots"] = {lot: f"{q.normalize():f}" for lot, q in lots.items()}


def _movement(line: OrderLine, done: Decimal, now: Decimal) -> sales.Movement:
    """The goods and money ``now`` more units of ``line`` carry after ``done`` (sales facts)."""
    return sales.Movement(
        order_line_id=line.id,
        sku_id=line.sku_id,
        base_quantity=_base(line, now),
        amount=sales.share(line.payable, done, now, line.quantity),
        fee=sales.share(line.fee_offset, done, now, line.quantity),
        rebate=sales.share(line.rebate, done, now, line.quantity),
        is_gift=line.is_gift,
    )


def _base(line: OrderLine, quantity: Decimal) -> Decimal:
    """``quantity`` of ``line`` (in its unit) in base units, as stock counts it."""
    if quantity == line.quantity:
        return line.base_quantity
    return (line.base_quantity * quantity / line.quantity).quantize(Decimal("0.0001"))
