"""Order pool tables (订单池): orders, their lines, the per-line promotion allocations and the
status history.

An order is priced once, at submit (``priced_at``); later price-list edits never re-price it. Its
status changes only through ``pools.order_states`` by a conditional UPDATE on ``version``, so two
concurrent actions on one order cannot both win. Lines keep what refunds and returns will need:
the list price with its source, the payable amount, the expense offset and rebate each line got,
and (``order_line_allocations``) every promotion's and coupon's share of it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import CheckConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from omnicloud.core.db import Money, Quantity, TenantOwned, tenant_fk, utcnow
from omnicloud.pools.order_states import STATUSES

FLOOR_VERDICTS = ("pass", "warn", "needs_approval", "block")
CREDIT_ACTIONS = ("pass", "warn", "needs_approval", "block")


def _known(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class Order(TenantOwned):
    """A dealer's order (订单) to the brand: priced, credit-checked, paid by freezes on its fund
    accounts (``Reference(type="order", id=...)``) and with its stock reserved
    (``reference="order:<id>"``). ``frozen_amount`` is what the accounts froze, ``posted_amount``
    what shipments have deducted of it so far; ``credit_amount`` is the part left on credit."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        UniqueConstraint("tenant_id", "idempotency_key"),
        tenant_fk("customer_id", "customers"),
        tenant_fk("sales_org_id", "sales_orgs"),
        tenant_fk("warehouse_id", "warehouses"),
        Index(None, "tenant_id", "customer_id", "id"),
        Index(None, "tenant_id", "status", "id"),
        CheckConstraint(_known("status", STATUSES), name="status_known"),
        CheckConstraint(_known("floor_verdict", FLOOR_VERDICTS), name="floor_verdict_known"),
        CheckConstraint(
            "credit_action IS NULL OR " + _known("credit_action", CREDIT_ACTIONS), name="credit_action_known"
        ),
        CheckConstraint("posted_amount >= 0 AND posted_amount <= frozen_amount", name="posted_within_frozen"),
        CheckConstraint("credit_amount >= 0", name="credit_not_negative"),
    )

    number: Mapped[str] = mapped_column(String(40))
    customer_id: Mapped[UUID]
    sales_org_id: Mapped[UUID | None]
    warehouse_id: Mapped[UUID]
    status: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(default=1)
    gross: Mapped[Decimal] = mapped_column(Money)
    discount: Mapped[Decimal] = mapped_column(Money)
    after_promotions: Mapped[Decimal] = mapped_column(Money)
    fee_offset: Mapped[Decimal] = mapped_column(Money)
    rebate: Mapped[Decimal] = mapped_column(Money)
    due: Mapped[Decimal] = mapped_column(Money)
    special: Mapped[Decimal] = mapped_column(Money)
    cash: Mapped[Decimal] = mapped_column(Money)
    credit_amount: Mapped[Decimal] = mapped_column(Money)
    frozen_amount: Mapped[Decimal] = mapped_column(Money)
    posted_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    floor_verdict: Mapped[str] = mapped_column(String(20))
    credit_action: Mapped[str | None] = mapped_column(String(20))
    credit_reasons: Mapped[list[str]]
    approval_reasons: Mapped[list[str]]
    coupon_code_ids: Mapped[list[str]]
    channel: Mapped[str | None] = mapped_column(String(40))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    priced_at: Mapped[datetime]
    submitted_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class OrderLine(TenantOwned):
    """One line as priced at submit. ``quantity`` and ``shipped_quantity`` are in ``unit_id`` (a
    gift line, 赠品, counts in the SKU's base unit); ``base_quantity`` is what stock reserves.
    ``returned_quantity`` is the part of the shipped quantity that came back."""

    __tablename__ = "order_lines"
    __table_args__ = (
        UniqueConstraint("tenant_id", "order_id", "line_id"),
        tenant_fk("order_id", "orders"),
        tenant_fk("sku_id", "skus"),
        tenant_fk("unit_id", "units"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint(
            "shipped_quantity >= 0 AND shipped_quantity <= quantity", name="shipped_within_quantity"
        ),
        CheckConstraint(
            "returned_quantity >= 0 AND returned_quantity <= shipped_quantity", name="returned_within_shipped"
        ),
        CheckConstraint("NOT is_gift OR payable = 0", name="gift_is_free"),
    )

    order_id: Mapped[UUID]
    position: Mapped[int]
    line_id: Mapped[str] = mapped_column(String(80))
    sku_id: Mapped[UUID]
    unit_id: Mapped[UUID | None]
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    base_quantity: Mapped[Decimal] = mapped_column(Quantity)
    list_price: Mapped[Decimal] = mapped_column(Money)
    price_source: Mapped[dict[str, Any]]
    gross: Mapped[Decimal] = mapped_column(Money)
    payable: Mapped[Decimal] = mapped_column(Money)
    net_unit_price: Mapped[Decimal] = mapped_column(Money)
    fee_offset: Mapped[Decimal] = mapped_column(Money)
    rebate: Mapped[Decimal] = mapped_column(Money)
    due: Mapped[Decimal] = mapped_column(Money)
    shipped_quantity: Mapped[Decimal] = mapped_column(Quantity, default=Decimal(0))
    returned_quantity: Mapped[Decimal] = mapped_column(Quantity, default=Decimal(0))
    is_gift: Mapped[bool] = mapped_column(default=False)
    gift_of: Mapped[str | None] = mapped_column(String(80))  # the promotion that gave it


class OrderLineAllocation(TenantOwned):
    """One promotion's or coupon's share of one line (``promotion_id`` is the coupon code's id
    for the ``coupon`` stage); refunds and returns claw back exactly these amounts."""

    __tablename__ = "order_line_allocations"
    __table_args__ = (
        tenant_fk("order_id", "orders"),
        tenant_fk("order_line_id", "order_lines"),
        Index(None, "tenant_id", "order_id"),
    )

    order_id: Mapped[UUID]
    order_line_id: Mapped[UUID]
    promotion_id: Mapped[str] = mapped_column(String(80))
    stage: Mapped[str] = mapped_column(String(20))
    amount: Mapped[Decimal] = mapped_column(Money)


class OrderEvent(TenantOwned):
    """One step of an order's history: the action, the status before and after, who and when;
    ``detail`` carries what the step moved (a shipment's quantities and posted amount, a reason)."""

    __tablename__ = "order_events"
    __table_args__ = (
        tenant_fk("order_id", "orders"),
        Index(None, "tenant_id", "order_id", "id"),
    )

    order_id: Mapped[UUID]
    action: Mapped[str] = mapped_column(String(20))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    detail: Mapped[dict[str, Any]]
    actor: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(default=utcnow)
