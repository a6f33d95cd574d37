"""The trading dashboard (经营看板): amounts and quantities by period, product and party, top and
slow sellers, for the whole business or inside one dealer's subtree.

Two measures:

``ordered``
    order lines of orders that are not cancelled or rejected, by the day (UTC) the order was
    created: ``payable`` and ``base_quantity``.
``shipped``
    the sales facts (shipments less returns, so net of returns), by the day the goods moved:
    ``amount`` and ``quantity``.

Every figure is one aggregate statement (GROUP BY) on both databases; only the period bucket
differs by dialect (:func:`bucket`). The dashboard is a read model over several domains' tables
(orders, sales facts, SKUs, products, customers), so it joins them directly instead of loading
rows through each service. ``category`` is the product's own category; ``region`` and
``dealer`` are the buyer's.

Scope: dealer users see their own customer's subtree only (a level-1 dealer sees its
sub-dealers' trading); ``customer_id`` narrows to one visible customer, with ``subtree`` to it and
everything under it. A customer the caller may not see is a 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Select, and_, func, literal, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.catalog.models import Product, Sku
from omnicloud.channels import service as channels
from omnicloud.channels.models import Customer
from omnicloud.core.db import Money, Quantity
from omnicloud.core.errors import invalid
from omnicloud.core.security import Principal
from omnicloud.distribution import service as distribution
from omnicloud.pools.orders.models import Order, OrderLine
from omnicloud.pools.sales.models import SalesFact
from omnicloud.pools.sales.schemas import (
    DashboardOut,
    DashboardRow,
    Figures,
    RankingsOut,
    SkuRank,
)

ZERO = Decimal("0.00")
NOT_TRADING = ("cancelled", "rejected")
MAX_DAYS = 3660


def bucket(column: Any, granularity: str, dialect: str, *, stamped: bool = False) -> ColumnElement[str]:
    """The first day (YYYY-MM-DD) of the day, ISO week (from Monday) or month ``column`` falls in,
    for a date or (``stamped``) a UTC timestamp column, on PostgreSQL or SQLite."""
    if dialect == "postgresql":
        if stamped:  # the day in UTC, whatever the connection's time zone
            column = func.timezone("UTC", column)
        return func.to_char(func.date_trunc(granularity, column), "YYYY-MM-DD")
    if granularity == "day":
        return func.date(column)
    if granularity == "week":  # the next Sunday (or the day itself), then back to its Monday
        return func.date(column, "weekday 0", "-6 days")
    return func.strftime("%Y-%m-01", column)


def _round(expr: Any, type_: Any) -> ColumnElement[Decimal]:
    # SQLite sums in floating point: round every sum to the column's places.
    places = 2 if type_ is Money else 4
    return func.round(func.coalesce(func.sum(expr), 0), literal_column(str(places)), type_=type_)


@dataclass(frozen=True)
class Source:
    """One measure's columns: the rows, their tenant, amount, quantity, buyer, SKU and the day
    (``stamped`` when it is a timestamp)."""

    stmt: Select[Any]
    tenant: Any
    amount: Any
    quantity: Any
    buyer: Any
    sku: Any
    when: Any
    stamped: bool


def _source(measure: str, start: date, end: date) -> Source:
    if measure == "ordered":
        since = datetime.combine(start, time.min, UTC)
        until = datetime.combine(end, time.max, UTC)  # the whole last day, even on date.max
        stmt = (
            select()
            .select_from(OrderLine)
            .join(Order, and_(Order.tenant_id == OrderLine.tenant_id, Order.id == OrderLine.order_id))
            .where(Order.status.notin_(NOT_TRADING), Order.created_at >= since, Order.created_at <= until)
        )
        return Source(
            stmt,
            Order.tenant_id,
            OrderLine.payable,
            OrderLine.base_quantity,
            Order.customer_id,
            OrderLine.sku_id,
            Order.created_at,
            stamped=True,
        )
    stmt = select().select_from(SalesFact).where(SalesFact.day >= start, SalesFact.day <= end)
    return Source(
        stmt,
        SalesFact.tenant_id,
        SalesFact.amount,
        SalesFact.quantity,
        SalesFact.customer_id,
        SalesFact.sku_id,
        SalesFact.day,
        stamped=False,
    )


async def _scoped(
    session: AsyncSession, principal: Principal, src: Source, customer_id: UUID | None, subtree: bool
) -> Select[Any]:
    stmt = src.stmt
    if customer_id is not None:
        customer = await channels.visible_customer(session, customer_id, principal)
        if subtree:
            return stmt.where(src.buyer.in_(channels.subtree_ids(customer.path)))
        return stmt.where(src.buyer == customer_id)
    prefix = await channels.dealer_scope_path(session, principal)
    if prefix is not None:
        stmt = stmt.where(src.buyer.in_(channels.subtree_ids(prefix)))
    return stmt


def _check_period(start: date, end: date) -> None:
    if end < start:
        raise invalid("to", "must not be before from")
    if (end - start).days > MAX_DAYS:
        raise invalid("from", f"a dashboard covers at most {MAX_DAYS} days")


def _key(
    src: Source, group_by: str, granularity: str, dialect: str, stmt: Select[Any]
) -> tuple[Any, Select[Any]]:
    """The grouping expression for a dimension, with the joins it needs."""
    if group_by == "period":
        return bucket(src.when, granularity, dialect, stamped=src.stamped), stmt
    if group_by == "sku":
        return src.sku, stmt
    if group_by == "dealer":
        return src.buyer, stmt
    if group_by == "region":
        joined = stmt.join(Customer, and_(Customer.tenant_id == src.tenant, Customer.id == src.buyer))
        return Customer.region_id, joined
    joined = stmt.join(Sku, and_(Sku.tenant_id == src.tenant, Sku.id == src.sku))
    if group_by == "product":
        return Sku.product_id, joined
    joined = joined.join(Product, and_(Product.tenant_id == Sku.tenant_id, Product.id == Sku.product_id))
    return Product.category_id, joined


async def dashboard(
    session: AsyncSession,
    principal: Principal,
    *,
    measure: str,
    start: date,
    end: date,
    group_by: str,
    granularity: str,
    customer_id: UUID | None,
    subtree: bool,
) -> DashboardOut:
    """Amount and quantity per group, largest amount first (periods in date order), and the total."""
    _check_period(start, end)
    src = _source(measure, start, end)
    stmt = await _scoped(session, principal, src, customer_id, subtree)
    dialect = session.get_bind().dialect.name
    key, stmt = _key(src, group_by, granularity, dialect, stmt)
    amount, quantity = _round(src.amount, Money), _round(src.quantity, Quantity)
    grouped = stmt.add_columns(key.label("key"), amount.label("amount"), quantity.label("quantity")).group_by(
        key
    )
    rows = [
        DashboardRow(key=None if k is None else str(k), amount=Decimal(a), quantity=Decimal(q))
        for k, a, q in (await session.execute(grouped)).all()
    ]
    if group_by == "period":
        rows.sort(key=lambda r: r.key or "")
    else:
        rows.sort(key=lambda r: (-r.amount, r.key or ""))
    totals = (await session.execute(stmt.add_columns(amount, quantity))).one()
    return DashboardOut(
        measure=measure,  # type: ignore[arg-type]
        date_from=start,
        date_to=end,
        group_by=group_by,  # type: ignore[arg-type]
        granularity=granularity,  # type: ignore[arg-type]
        customer_id=customer_id,
        subtree=subtree,
        total=Figures(amount=Decimal(totals[0]), quantity=Decimal(totals[1])),
        rows=rows,
    )


async def rankings(
    session: AsyncSession,
    principal: Principal,
    *,
    measure: str,
    start: date,
    end: date,
    customer_id: UUID | None,
    subtree: bool,
    limit: int,
) -> RankingsOut:
    """Top sellers (SKUs by amount, largest first) and slow sellers: active SKUs, for one customer
    those it is authorised to buy, by amount from none up; ties by SKU code."""
    _check_period(start, end)
    src = _source(measure, start, end)
    stmt = await _scoped(session, principal, src, customer_id, subtree)
    amount, quantity = _round(src.amount, Money), _round(src.quantity, Quantity)
    per_sku = (
        stmt.add_columns(src.sku.label("sku_id"), amount.label("amount"), quantity.label("quantity"))
        .group_by(src.sku)
        .subquery()
    )
    joined = and_(per_sku.c.sku_id == Sku.id)
    top_stmt = (
        select(Sku.id, Sku.code, per_sku.c.amount, per_sku.c.quantity)
        .join(per_sku, joined)
        .order_by(per_sku.c.amount.desc(), Sku.code)
        .limit(limit)
    )
    top = [
        SkuRank(sku_id=i, code=c, amount=Decimal(a), quantity=Decimal(q))
        for i, c, a, q in await session.execute(top_stmt)
    ]
    sold = func.coalesce(per_sku.c.amount, literal(0))
    slow_stmt = (
        select(Sku.id, Sku.code, sold, func.coalesce(per_sku.c.quantity, literal(0)))
        .outerjoin(per_sku, joined)
        .where(Sku.status == "active")
        .order_by(sold, Sku.code)
    )
    if customer_id is not None:
        active = list((await session.scalars(select(Sku.id).where(Sku.status == "active"))).all())
        denied = await distribution.unauthorized_skus(
            session, customer_id=customer_id, sku_ids=active, day=datetime.now(UTC).date()
        )
        if denied:
            slow_stmt = slow_stmt.where(Sku.id.notin_(denied))
    slow = [
        SkuRank(sku_id=i, code=c, amount=Decimal(a).quantize(ZERO), quantity=Decimal(q))
        for i, c, a, q in await session.execute(slow_stmt.limit(limit))
    ]
    return RankingsOut(
        measure=measure,  # type: ignore[arg-type]
        date_from=start,
        date_to=end,
        customer_id=customer_id,
        subtree=subtree,
        top=top,
        slow=slow,
    )
