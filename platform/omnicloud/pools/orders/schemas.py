"""Order request and response bodies. Money is a decimal string; quantities are decimal strings in
the line's unit."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from omnicloud.catalog.schemas import Input, check_decimal
from omnicloud.inventory.schemas import LotNo
from omnicloud.policies.quotes.schemas import PriceSource, QuoteIn

Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=400, pattern=r"^[^\x00]+$")]
LineRef = Annotated[str, msgspec.Meta(min_length=1, max_length=80, pattern=r"^[^\x00]+$")]
MAX_SHIPMENT_LINES = 1000


class OrderIn(QuoteIn, kw_only=True):
    """Submit an order: the basket as a quote takes it (see ``POST /api/v1/quotes``), plus the
    warehouse it ships from (the seller's). A dealer orders for itself; staff name the customer.

    ``drop_ship_warehouse_id``: for a level-2 order only, the brand warehouse that ships it when
    the level-1 seller's warehouse is short and every line's supply relation allows drop-ship
    (the order then spawns the seller's purchase from the brand; see docs/orders.md). Unused
    when the seller's warehouse has the stock."""

    warehouse_id: UUID
    drop_ship_warehouse_id: UUID | None = None


class ReasonIn(Input):
    reason: Reason | None = None


class ShipmentLineIn(Input):
    """``quantity`` of order line ``line_id`` (in the line's unit) leaves the warehouse.

    ``warehouse_id``: the seller's warehouse it leaves from (a brand warehouse for a brand-sold
    order, one the selling dealer owns for a dealer-sold one); omitted, the order's warehouse,
    from the line's holds. ``lot_no``: the lot it leaves from (``""``: the SKU's stock without a
    lot); omitted, the warehouse's lots in allocation order (earliest expiry first, never an
    expired lot). A line naming another warehouse or a lot releases that much of its holds."""

    line_id: LineRef
    quantity: Decimal
    warehouse_id: UUID | None = None
    lot_no: LotNo | None = None

    def __post_init__(self) -> None:
        check_decimal("quantity", self.quantity, places=4, positive=True)


class ShipmentIn(Input):
    lines: Annotated[list[ShipmentLineIn], msgspec.Meta(min_length=1, max_length=MAX_SHIPMENT_LINES)]


PostingPoint = Literal["shipment", "approval"]


class OrderSettingsIn(Input):
    """``posting_point``: when frozen money becomes a deduction, at ``shipment`` (default) or at
    ``approval`` (at submit for an order that needs no approval)."""

    posting_point: PostingPoint


class OrderSettingsOut(msgspec.Struct, kw_only=True):
    """The tenant's order settings; ``version`` 0 means the defaults were never changed."""

    posting_point: PostingPoint
    version: int
    updated_by: str | None
    updated_at: datetime | None


class AllocationOut(msgspec.Struct, kw_only=True):
    promotion_id: str
    stage: str
    amount: Decimal


class OrderLineOut(msgspec.Struct, kw_only=True):
    id: UUID
    line_id: str
    sku_id: UUID
    unit_id: UUID | None
    quantity: Decimal
    base_quantity: Decimal
    shipped_quantity: Decimal
    returned_quantity: Decimal
    returning_quantity: Decimal
    list_price: Decimal
    price_source: PriceSource | None
    gross: Decimal
    payable: Decimal
    net_unit_price: Decimal
    fee_offset: Decimal
    rebate: Decimal
    due: Decimal
    special: Decimal
    cash: Decimal
    credit: Decimal
    is_gift: bool
    gift_of: str | None
    allocations: list[AllocationOut]


class OrderEventOut(msgspec.Struct, kw_only=True):
    id: UUID
    action: str
    from_status: str | None
    to_status: str
    detail: dict[str, Any]
    actor: str
    at: datetime


class OrderTotals(msgspec.Struct, kw_only=True):
    """``after_promotions`` = gross − discount = fee_offset + rebate + special + cash + credit;
    ``due`` = after_promotions − fee_offset − rebate. Of ``frozen_amount``, ``posted_amount`` has
    been deducted and ``refunded_amount`` of that given back; of ``credit_amount``,
    ``credit_shipped`` has shipped and ``credit_returned`` of that come back."""

    gross: Decimal
    discount: Decimal
    after_promotions: Decimal
    fee_offset: Decimal
    rebate: Decimal
    due: Decimal
    special: Decimal
    cash: Decimal
    credit_amount: Decimal
    frozen_amount: Decimal
    posted_amount: Decimal
    refunded_amount: Decimal
    credit_shipped: Decimal
    credit_returned: Decimal


class OrderSummary(msgspec.Struct, kw_only=True):
    """``seller_customer_id``: the dealer that sells the order (its level-1 supplier's sales
    order, DOMAIN §7); null: the brand. Drop-ship: a level-2 order the brand ships names the
    level-1 dealer's purchase (``drop_ship_order_id``); that purchase names the level-2 order
    (``source_order_id``) and the dealer that receives the goods (``ship_to_customer_id``)."""

    id: UUID
    number: str
    customer_id: UUID
    seller_customer_id: UUID | None
    sales_org_id: UUID | None
    warehouse_id: UUID
    status: str
    version: int
    totals: OrderTotals
    posting_point: PostingPoint
    floor_verdict: str
    credit_action: str | None
    credit_reasons: list[str]
    approval_reasons: list[str]
    approver_roles: list[str]  # who may approve: a holder of one of these roles (empty: anyone allowed)
    coupon_code_ids: list[UUID]
    allowed_actions: list[str]
    source_order_id: UUID | None = None
    drop_ship_order_id: UUID | None = None
    ship_to_customer_id: UUID | None = None
    priced_at: datetime
    submitted_by: str
    created_at: datetime
    updated_at: datetime


class OrderOut(OrderSummary, kw_only=True):
    lines: list[OrderLineOut]
    history: list[OrderEventOut]


class OrderPage(msgspec.Struct, kw_only=True):
    items: list[OrderSummary]
    next_cursor: str | None


# --- returns (退货) ----------------------------------------------------------------------------


class ReturnLineIn(Input):
    """``quantity`` of order line ``line_id`` (in the line's unit) comes back; at most what has
    shipped and is not returned or claimed by another open return."""

    line_id: LineRef
    quantity: Decimal

    def __post_init__(self) -> None:
        check_decimal("quantity", self.quantity, places=4, positive=True)


class ReturnIn(Input):
    lines: Annotated[list[ReturnLineIn], msgspec.Meta(min_length=1, max_length=MAX_SHIPMENT_LINES)]
    reason: Reason


class ReturnReceiptIn(Input):
    """The brand warehouse the goods come back into, and the lot they are booked to (none:
    the warehouse's stock without a lot)."""

    warehouse_id: UUID
    lot_no: Annotated[str, msgspec.Meta(max_length=60, pattern=r"^([A-Za-z0-9][A-Za-z0-9_.\-/]*)?$")] = ""


class ReturnLineOut(msgspec.Struct, kw_only=True):
    """One returned line; the money columns are the parts the units carried (0 until received)."""

    id: UUID
    order_line_id: UUID
    line_id: str
    sku_id: UUID
    quantity: Decimal
    base_quantity: Decimal
    amount: Decimal
    fee: Decimal
    rebate: Decimal
    special: Decimal
    cash: Decimal
    credit: Decimal


class ReturnTotals(msgspec.Struct, kw_only=True):
    """What the receipt gave back: ``amount`` (the goods' payable value) = refund_fee +
    refund_rebate + refund_special + refund_cash + credit, up to a cent of rounding per part.
    ``credit`` is not money: it left the customer's credit exposure."""

    amount: Decimal
    refund_fee: Decimal
    refund_rebate: Decimal
    refund_special: Decimal
    refund_cash: Decimal
    credit: Decimal


class ReturnSummary(msgspec.Struct, kw_only=True):
    id: UUID
    number: str
    order_id: UUID
    customer_id: UUID
    status: str
    version: int
    reason: str
    decision_reason: str | None
    warehouse_id: UUID | None
    totals: ReturnTotals
    refund_transfer_id: UUID | None
    allowed_actions: list[str]
    requested_by: str
    decided_by: str | None
    received_by: str | None
    created_at: datetime
    updated_at: datetime
    received_at: datetime | None


class ReturnOut(ReturnSummary, kw_only=True):
    lines: list[ReturnLineOut]


class ReturnPage(msgspec.Struct, kw_only=True):
    items: list[ReturnSummary]
    next_cursor: str | None
