"""Request and response bodies for commercial terms: credit profiles, temporary lines and credit
rules (信用), rebate policies and their preview (返利), expense offset ratios (费用核销比例).

``*In`` bodies create; ``*Patch`` bodies change only the fields they carry (``null`` clears an
optional field). Money and ratios are decimal strings.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from omnicloud.catalog.schemas import check_decimal
from omnicloud.channels.schemas import Code, Label, Name

CheckPoint = Literal["submit", "approval", "shipment"]
CreditAction = Literal["pass", "warn", "block", "needs_approval"]
Period = Literal["month", "quarter", "year", "custom"]
Basis = Literal["shipped", "invoiced", "paid"]
Mode = Literal["retroactive", "incremental", "flat"]
Form = Literal["cash", "discount", "goods"]
PolicyStatus = Literal["draft", "active", "closed"]
Days = Annotated[int, msgspec.Meta(ge=0, le=3650)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=400, pattern=r"^[^\x00]+$")]
MAX_SCOPE = 500
MAX_TIERS = 20
MAX_SALES_LINES = 1000
MAX_ACHIEVEMENT = Decimal(1000)


def check_ratio(field: str, value: Decimal | UnsetType | None) -> None:
    """A ratio between 0 and 1 with at most 6 decimals (the column's scale)."""
    check_decimal(field, value, places=6)
    if isinstance(value, Decimal) and value > 1:
        raise ValueError(f"{field} must lie between 0 and 1")


class Input(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: unknown fields are rejected."""


# --- credit profiles and temporary lines -----------------------------------------------------


class CreditProfileIn(Input, kw_only=True):
    """A customer's credit line (信用额度), optionally for one sales org; one per customer and org."""

    customer_id: UUID
    sales_org_id: UUID | None = None
    credit_limit: Decimal
    credit_days: Days = 0
    grace_days: Days = 0

    def __post_init__(self) -> None:
        check_decimal("credit_limit", self.credit_limit, places=2)


class CreditProfilePatch(Input):
    credit_limit: Decimal | UnsetType = UNSET
    credit_days: Days | UnsetType = UNSET
    grace_days: Days | UnsetType = UNSET

    def __post_init__(self) -> None:
        check_decimal("credit_limit", self.credit_limit, places=2)


class TemporaryLineIn(Input):
    """Extra credit (临时额度) valid up to and including ``expires_on``, which may not be past."""

    amount: Decimal
    expires_on: date
    reason: Reason | None = None

    def __post_init__(self) -> None:
        check_decimal("amount", self.amount, places=2, positive=True)


class TemporaryLineOut(msgspec.Struct, kw_only=True):
    id: UUID
    credit_profile_id: UUID
    amount: Decimal
    expires_on: date
    reason: str | None
    valid: bool  # not expired today
    created_at: datetime


class CreditProfileOut(msgspec.Struct, kw_only=True):
    """``temporary_total`` sums the temporary lines valid today; ``credit_line`` adds the limit."""

    id: UUID
    customer_id: UUID
    sales_org_id: UUID | None
    credit_limit: Decimal
    credit_days: int
    grace_days: int
    temporary_lines: list[TemporaryLineOut]
    temporary_total: Decimal
    credit_line: Decimal
    version: int
    created_at: datetime


class CreditProfilePage(msgspec.Struct, kw_only=True):
    items: list[CreditProfileOut]
    next_cursor: str | None


# --- credit rules ----------------------------------------------------------------------------


class CreditRuleIn(Input):
    """What to do at a check point when a document goes over the credit line (``over_limit``) or
    the customer has overdue receivables (``overdue``); a class-specific rule wins over the
    rule without a class."""

    check_point: CheckPoint
    customer_class: Label | None = None
    over_limit: CreditAction = "pass"
    overdue: CreditAction = "pass"


class CreditRulePatch(Input):
    check_point: CheckPoint | UnsetType = UNSET
    customer_class: Label | UnsetType | None = UNSET
    over_limit: CreditAction | UnsetType = UNSET
    overdue: CreditAction | UnsetType = UNSET


class CreditRuleOut(msgspec.Struct, kw_only=True):
    id: UUID
    check_point: str
    customer_class: str | None
    over_limit: str
    overdue: str
    version: int
    created_at: datetime


class CreditRulePage(msgspec.Struct, kw_only=True):
    items: list[CreditRuleOut]
    next_cursor: str | None


# --- rebate policies -------------------------------------------------------------------------


class CustomerScopeBody(Input):
    """Every list that is not empty must match; empty lists cover every customer. Regions match
    by ancestor."""

    customer_ids: Annotated[list[UUID], msgspec.Meta(max_length=MAX_SCOPE)] = []
    customer_classes: Annotated[list[Label], msgspec.Meta(max_length=MAX_SCOPE)] = []
    levels: Annotated[list[Label], msgspec.Meta(max_length=MAX_SCOPE)] = []
    region_ids: Annotated[list[UUID], msgspec.Meta(max_length=MAX_SCOPE)] = []


class ProductScopeBody(Input):
    """Every list that is not empty must match; empty lists count every product. Categories
    match by ancestor."""

    sku_ids: Annotated[list[UUID], msgspec.Meta(max_length=MAX_SCOPE)] = []
    category_ids: Annotated[list[UUID], msgspec.Meta(max_length=MAX_SCOPE)] = []
    brand_ids: Annotated[list[UUID], msgspec.Meta(max_length=MAX_SCOPE)] = []


class TierBody(Input):
    """From ``achievement`` (achieved ÷ target, 0.8 = 80 %) on, ``rate`` (0.02 = 2 %) applies."""

    achievement: Decimal
    rate: Decimal

    def __post_init__(self) -> None:
        check_decimal("achievement", self.achievement, places=6)
        if self.achievement > MAX_ACHIEVEMENT:
            raise ValueError(f"achievement must not exceed {MAX_ACHIEVEMENT}")
        check_ratio("rate", self.rate)


Tiers = Annotated[list[TierBody], msgspec.Meta(min_length=1, max_length=MAX_TIERS)]


def _check_policy_numbers(p: RebatePolicyIn | RebatePolicyPatch) -> None:
    check_decimal("target", p.target, places=2)
    check_decimal("cap", p.cap, places=2)
    check_ratio("usage_cap_ratio", p.usage_cap_ratio)


class RebatePolicyIn(Input, kw_only=True):
    """A rebate policy (返利政策). ``period`` month, quarter or year accrues per calendar period
    (``period_start``/``period_end`` optionally bound when the policy is in force); ``custom`` is
    one period from ``period_start`` to ``period_end``."""

    code: Code
    name: Name
    period: Period
    period_start: date | None = None
    period_end: date | None = None
    customers: CustomerScopeBody = msgspec.field(default_factory=CustomerScopeBody)
    products: ProductScopeBody = msgspec.field(default_factory=ProductScopeBody)
    basis: Basis = "shipped"
    mode: Mode
    target: Decimal = Decimal(0)
    tiers: Tiers
    cap: Decimal | None = None
    form: Form = "cash"
    usage_cap_ratio: Decimal = Decimal(1)
    status: PolicyStatus = "active"

    def __post_init__(self) -> None:
        _check_policy_numbers(self)


class RebatePolicyPatch(Input):
    name: Name | UnsetType = UNSET
    period: Period | UnsetType = UNSET
    period_start: date | UnsetType | None = UNSET
    period_end: date | UnsetType | None = UNSET
    customers: CustomerScopeBody | UnsetType = UNSET
    products: ProductScopeBody | UnsetType = UNSET
    basis: Basis | UnsetType = UNSET
    mode: Mode | UnsetType = UNSET
    target: Decimal | UnsetType = UNSET
    tiers: Tiers | UnsetType = UNSET
    cap: Decimal | UnsetType | None = UNSET
    form: Form | UnsetType = UNSET
    usage_cap_ratio: Decimal | UnsetType = UNSET
    status: PolicyStatus | UnsetType = UNSET

    def __post_init__(self) -> None:
        _check_policy_numbers(self)


class CustomerScopeOut(msgspec.Struct, kw_only=True):
    customer_ids: list[UUID]
    customer_classes: list[str]
    levels: list[str]
    region_ids: list[UUID]


class ProductScopeOut(msgspec.Struct, kw_only=True):
    sku_ids: list[UUID]
    category_ids: list[UUID]
    brand_ids: list[UUID]


class TierOut(msgspec.Struct, kw_only=True):
    achievement: Decimal
    rate: Decimal


class RebatePolicyOut(msgspec.Struct, kw_only=True):
    id: UUID
    code: str
    name: str
    period: str
    period_start: date | None
    period_end: date | None
    customers: CustomerScopeOut
    products: ProductScopeOut
    basis: str
    mode: str
    target: Decimal
    tiers: list[TierOut]
    cap: Decimal | None
    form: str
    usage_cap_ratio: Decimal
    status: str
    version: int
    created_at: datetime


class RebatePolicyPage(msgspec.Struct, kw_only=True):
    items: list[RebatePolicyOut]
    next_cursor: str | None


class SalesLine(Input):
    """Sales of one SKU in the period; ``returned_amount`` is deducted (the basis is net of returns)."""

    sku_id: UUID
    amount: Decimal
    returned_amount: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        check_decimal("amount", self.amount, places=2)
        check_decimal("returned_amount", self.returned_amount, places=2)


class RebatePreviewIn(Input):
    """What would the policy pay this customer for this period, given these sales?"""

    customer_id: UUID
    period_start: date
    period_end: date
    sales: Annotated[list[SalesLine], msgspec.Meta(max_length=MAX_SALES_LINES)] = []


class SliceOut(msgspec.Struct, kw_only=True):
    """``base`` × ``rate`` = ``rebate`` (rounded to the cent; the accrual is rounded once)."""

    achievement: Decimal
    rate: Decimal
    base: Decimal
    rebate: Decimal


class RebatePreviewOut(msgspec.Struct, kw_only=True):
    """``achieved_amount`` counts the lines in the product scope, net of returns; ``excluded_amount``
    the rest. ``achievement_ratio`` and ``target`` are null for a flat policy."""

    rebate_policy_id: UUID
    customer_id: UUID
    period_start: date
    period_end: date
    covered: bool
    achieved_amount: Decimal
    excluded_amount: Decimal
    target: Decimal | None
    achievement_ratio: Decimal | None
    reached_tier: TierOut | None
    rate: Decimal | None
    slices: list[SliceOut]
    uncapped_accrual: Decimal
    accrual: Decimal
    cap: Decimal | None
    capped: bool
    form: str
    explanation: list[str]


# --- offset ratios ---------------------------------------------------------------------------


class OffsetRatioIn(Input, kw_only=True):
    """At most ``line amount × ratio`` of a line may be paid from fees. Name a customer or a sales
    org (or neither: every customer) and a SKU or a category (or neither: every product)."""

    customer_id: UUID | None = None
    sales_org_id: UUID | None = None
    sku_id: UUID | None = None
    category_id: UUID | None = None
    ratio: Decimal

    def __post_init__(self) -> None:
        check_ratio("ratio", self.ratio)


class OffsetRatioPatch(Input):
    ratio: Decimal | UnsetType = UNSET

    def __post_init__(self) -> None:
        check_ratio("ratio", self.ratio)


class OffsetRatioOut(msgspec.Struct, kw_only=True):
    id: UUID
    customer_id: UUID | None
    sales_org_id: UUID | None
    sku_id: UUID | None
    category_id: UUID | None
    ratio: Decimal
    version: int
    created_at: datetime


class OffsetRatioPage(msgspec.Struct, kw_only=True):
    items: list[OffsetRatioOut]
    next_cursor: str | None
