"""Order pool tables (订单池): orders, their lines, the per-line promotion allocations, the
status history, returns (退货) with their lines, and the tenant's order settings.

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
from omnicloud.pools.order_states import RETURN_STATUSES, STATUSES

FLOOR_VERDICTS = ("pass", "warn", "needs_approval", "block")
CREDIT_ACTIONS = ("pass", "warn", "needs_approval", "block")
POSTING_POINTS = ("shipment", "approval")


def _known(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class Order(TenantOwned):
    """A dealer's order (订单) to the brand: priced, credit-checked, paid by freezes on its fund
    accounts (``Reference(type="order", id=...)``) and with its stock reserved
    (``reference="order:<id>"``). ``frozen_amount`` is what the accounts froze, ``posted_amount``
    what has been deducted of it so far (at shipment or at approval, as ``posting_point`` was
    set when the order was submitted) and ``refunded_amount`` what cancels and returns gave back
    of that. ``credit_amount`` is the part left on credit; ``credit_shipped`` the part of it the
    shipped goods carry and ``credit_returned`` the part returns took back.

    ``seller_customer_id`` is the dealer that sells it (DOMAIN §7: a level-2 dealer's order routed
    to its level-1 supplier): it ships from that dealer's warehouse and is paid and credit-checked
    in that dealer's pool. NULL: the brand sells it.

    Drop-ship (DOMAIN §7): a level-2 order its level-1 seller cannot supply from stock spawns the
    seller's purchase from the brand, shipped by the brand straight to the level-2 dealer. The
    level-2 order names it (``drop_ship_order_id``); the purchase names its source
    (``source_order_id``) and who receives the goods (``ship_to_customer_id``)."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        UniqueConstraint("tenant_id", "idempotency_key"),
        tenant_fk("customer_id", "customers"),
        tenant_fk("sales_org_id", "sales_orgs"),
        tenant_fk("warehouse_id", "warehouses"),
        tenant_fk("seller_customer_id", "customers"),
        tenant_fk("source_order_id", "orders"),
        tenant_fk("drop_ship_order_id", "orders"),
        tenant_fk("ship_to_customer_id", "customers"),
        Index(None, "tenant_id", "customer_id", "id"),
        Index(None, "tenant_id", "seller_customer_id", "id"),
        Index(None, "tenant_id", "status", "id"),
        CheckConstraint(_known("status", STATUSES), name="status_known"),
        CheckConstraint(_known("floor_verdict", FLOOR_VERDICTS), name="floor_verdict_known"),
        CheckConstraint(
            "credit_action IS NULL OR " + _known("credit_action", CREDIT_ACTIONS), name="credit_action_known"
        ),
        CheckConstraint("posted_amount >= 0 AND posted_amount <= frozen_amount", name="posted_within_frozen"),
        CheckConstraint("credit_amount >= 0", name="credit_not_negative"),
        CheckConstraint(_known("posting_point", POSTING_POINTS), name="posting_point_known"),
        CheckConstraint(
            "refunded_amount >= 0 AND refunded_amount <= posted_amount", name="refunded_within_posted"
        ),
        CheckConstraint(
            "credit_returned >= 0 AND credit_returned <= credit_shipped AND credit_shipped <= credit_amount",
            name="credit_parts_nested",
        ),
    )

    number: Mapped[str] = mapped_column(String(40))
    customer_id: Mapped[UUID]
    seller_customer_id: Mapped[UUID | None]
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
    refunded_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    credit_shipped: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    credit_returned: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    posting_point: Mapped[str] = mapped_column(String(20), default="shipment")
    floor_verdict: Mapped[str] = mapped_column(String(20))
    credit_action: Mapped[str | None] = mapped_column(String(20))
    credit_reasons: Mapped[list[str]]
    approval_reasons: Mapped[list[str]]
    approver_roles: Mapped[list[str]] = mapped_column(default=list)  # from the approval rules that matched
    coupon_code_ids: Mapped[list[str]]
    source_order_id: Mapped[UUID | None] = mapped_column(default=None)  # a drop-ship purchase's order
    drop_ship_order_id: Mapped[UUID | None] = mapped_column(default=None)  # the purchase it spawned
    ship_to_customer_id: Mapped[UUID | None] = mapped_column(default=None)  # a drop-ship's receiver
    channel: Mapped[str | None] = mapped_column(String(40))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    priced_at: Mapped[datetime]
    submitted_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class OrderLine(TenantOwned):
    """One line as priced at submit. ``quantity`` and ``shipped_quantity`` are in ``unit_id`` (a
    gift line, 赠品, counts in the SKU's base unit); ``base_quantity`` is what stock reserves.
    ``returned_quantity`` is the part of the shipped quantity that came back and
    ``returning_quantity`` the part open returns have claimed. ``payable`` is paid by
    ``fee_offset + rebate + special + cash + credit`` (the payment plan's line parts), so a
    shipment deducts and a return refunds each part of exactly the goods it moves."""

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
        CheckConstraint(
            "returning_quantity >= 0 AND returned_quantity + returning_quantity <= shipped_quantity",
            name="returning_within_shipped",
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
    special: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    cash: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    credit: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    shipped_quantity: Mapped[Decimal] = mapped_column(Quantity, default=Decimal(0))
    returned_quantity: Mapped[Decimal] = mapped_column(Quantity, default=Decimal(0))
    returning_quantity: Mapped[Decimal] = mapped_column(Quantity, default=Decimal(0))
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


class OrderReturn(TenantOwned):
    """A return (退货) of shipped goods of one order. Filing it claims the quantities on the order
    lines (``returning_quantity``), so concurrent returns can never take back more than shipped;
    receiving it puts the goods into ``warehouse_id`` (a stock receipt, ``reference="return:<id>"``)
    and refunds the money parts they carried (``refund_*``, filled at receipt) to the accounts
    they came from. ``credit`` is the credit part: not money, it leaves the exposure."""

    __tablename__ = "order_returns"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        UniqueConstraint("tenant_id", "idempotency_key"),
        tenant_fk("order_id", "orders"),
        tenant_fk("customer_id", "customers"),
        tenant_fk("warehouse_id", "warehouses"),
        Index(None, "tenant_id", "order_id", "id"),
        Index(None, "tenant_id", "customer_id", "id"),
        Index(None, "tenant_id", "status", "id"),
        CheckConstraint(_known("status", RETURN_STATUSES), name="status_known"),
        CheckConstraint("status <> 'received' OR warehouse_id IS NOT NULL", name="received_into_a_warehouse"),
    )

    number: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[UUID]
    customer_id: Mapped[UUID]
    status: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(default=1)
    reason: Mapped[str] = mapped_column(String(400))
    decision_reason: Mapped[str | None] = mapped_column(String(400))
    warehouse_id: Mapped[UUID | None]
    amount: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    refund_fee: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    refund_rebate: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    refund_special: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    refund_cash: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    credit: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    refund_transfer_id: Mapped[UUID | None]
    idempotency_key: Mapped[str] = mapped_column(String(255))
    requested_by: Mapped[str] = mapped_column(String(80))
    decided_by: Mapped[str | None] = mapped_column(String(80))
    received_by: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    received_at: Mapped[datetime | None]


class OrderReturnLine(TenantOwned):
    """``quantity`` (in the order line's unit) of one order line; the money columns are the
    shares of the line's parts these units carried, filled at receipt."""

    __tablename__ = "order_return_lines"
    __table_args__ = (
        UniqueConstraint("tenant_id", "return_id", "order_line_id"),
        tenant_fk("return_id", "order_returns"),
        tenant_fk("order_line_id", "order_lines"),
        tenant_fk("sku_id", "skus"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    return_id: Mapped[UUID]
    order_line_id: Mapped[UUID]
    position: Mapped[int]
    line_id: Mapped[str] = mapped_column(String(80))
    sku_id: Mapped[UUID]
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    base_quantity: Mapped[Decimal] = mapped_column(Quantity)
    amount: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    fee: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    rebate: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    special: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    cash: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    credit: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))


class OrderSettings(TenantOwned):
    """The tenant's order settings, one row (none: the defaults). ``posting_point`` says when
    frozen money becomes a deduction (DOMAIN §6): ``shipment`` (in proportion to what ships) or
    ``approval`` (all of it when the order is approved, or at submit when it needs no approval)."""

    __tablename__ = "order_settings"
    __table_args__ = (
        UniqueConstraint("tenant_id"),
        CheckConstraint(_known("posting_point", POSTING_POINTS), name="posting_point_known"),
    )

    posting_point: Mapped[str] = mapped_column(String(20), default="shipment")
    version: Mapped[int] = mapped_column(default=1)
    updated_by: Mapped[str] = mapped_column(String(80))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
