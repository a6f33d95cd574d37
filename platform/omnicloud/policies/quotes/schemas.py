"""Quote request and answer. Money is a decimal string; every figure explains where it came from."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from omnicloud.catalog.schemas import Input

LineId = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")]
CouponCode = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9\-]+$")]
Channel = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[^\x00]+$")]


class QuoteLineIn(Input):
    """``quantity`` is in ``unit_id`` (default: the product's base unit). ``addon_of`` names the
    add-on promotion (加价购) this line is bought under."""

    sku_id: UUID
    quantity: Decimal
    unit_id: UUID | None = None
    line_id: LineId | None = None
    addon_of: UUID | None = None


class QuoteIn(Input):
    """Price a basket without changing anything. A dealer quotes for itself (``customer_id`` may
    be left out); other callers may quote for any customer, or for nobody (a walk-in buyer)."""

    lines: Annotated[list[QuoteLineIn], msgspec.Meta(min_length=1)]
    customer_id: UUID | None = None
    channel: Channel | None = None
    date: date | None = None
    coupon_codes: Annotated[list[CouponCode], msgspec.Meta(max_length=20)] = []
    use_fees: Decimal | None = None
    use_rebate: Decimal | None = None


class Band(msgspec.Struct, kw_only=True):
    entry_id: UUID
    min_qty: Decimal
    max_qty: Decimal | None
    price: Decimal
    quantity: Decimal


class PriceSource(msgspec.Struct, kw_only=True):
    """Where a list price came from: a price-list entry found by the access sequence, or a
    pricing hook (a plugin, or the SKU's list price)."""

    kind: Literal["price_list", "hook"]
    price_list_id: UUID | None = None
    price_list_code: str | None = None
    step: str | None = None
    mode: str | None = None
    bands: list[Band] = []
    source: str | None = None
    detail: dict[str, Any] = {}


class LineDiscount(msgspec.Struct, kw_only=True):
    promotion_id: str
    stage: str
    amount: Decimal


class FloorCheck(msgspec.Struct, kw_only=True):
    floor_price: Decimal
    action: str
    outcome: str
    shortfall: Decimal


class QuoteLineOut(msgspec.Struct, kw_only=True):
    """``seller_customer_id`` is the dealer that sells this line to the buyer (its supply relation
    routes the SKU to that dealer, whose own price lists price it); null: the brand sells it."""

    line_id: str
    sku_id: UUID
    unit_id: UUID
    quantity: Decimal
    base_quantity: Decimal
    list_price: Decimal
    gross: Decimal
    price_source: PriceSource
    discounts: list[LineDiscount]
    payable: Decimal
    net_unit_price: Decimal
    floor: FloorCheck | None
    fee_cap: Decimal
    fee_offset: Decimal
    rebate: Decimal
    due: Decimal
    seller_customer_id: UUID | None = None


class GiftLineOut(msgspec.Struct, kw_only=True):
    line_id: str
    sku_id: UUID
    quantity: Decimal
    promotion_id: str


class StageOut(msgspec.Struct, kw_only=True):
    stage: str
    base: Decimal
    discount: Decimal
    after: Decimal


class AppliedOut(msgspec.Struct, kw_only=True):
    promotion_id: str
    stage: str
    discount: Decimal
    explanation: str


class FeesOut(msgspec.Struct, kw_only=True):
    """Expense offset (费用抵扣): at most Σ line caps (line amount × offset ratio); account balances
    and their expiry are drawn when the order is submitted."""

    requested: Decimal
    line_cap_total: Decimal
    usable: Decimal


class RebateOut(msgspec.Struct, kw_only=True):
    """Rebate use (返利抵扣): at most the payable amount × the usage cap ratio; the rebate balance is
    drawn when the order is submitted."""

    requested: Decimal
    usage_cap_ratio: Decimal
    cap: Decimal
    usable: Decimal


class CreditOut(msgspec.Struct, kw_only=True):
    check_point: str
    action: str
    exposure: Decimal
    credit_line: Decimal
    available: Decimal
    over_by: Decimal
    overdue: list[str]
    reasons: list[str]


class TotalsOut(msgspec.Struct, kw_only=True):
    gross: Decimal
    discount: Decimal
    after_promotions: Decimal
    fee_offset: Decimal
    rebate: Decimal
    due: Decimal


class SellerOut(msgspec.Struct, kw_only=True):
    """The lines one seller sells (``seller_customer_id`` null: the brand), with their sums; an
    order splits by these."""

    seller_customer_id: UUID | None
    line_ids: list[str]
    gross: Decimal
    payable: Decimal


class NotApplicableOut(msgspec.Struct, kw_only=True):
    """A promotion offered to this buyer that the quote left out, and why (``budget exhausted``,
    ``per-customer limit reached``)."""

    promotion_id: str
    reason: str


class QuoteOut(msgspec.Struct, kw_only=True):
    customer_id: UUID | None
    channel: str | None
    date: date
    lines: list[QuoteLineOut]
    gift_lines: list[GiftLineOut]
    stages: list[StageOut]
    promotions: list[AppliedOut]
    fees: FeesOut
    rebate: RebateOut
    credit: CreditOut | None
    floor_verdict: str
    totals: TotalsOut
    sellers: list[SellerOut] = []
    not_applicable: list[NotApplicableOut] = []
