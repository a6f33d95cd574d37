"""Promotion and coupon request and response bodies.

A promotion's ``rule`` holds the fields of its ``type`` (see ``policies.promotions``: ``tiers`` for
``full_reduction``, ``n`` and ``off_ratio`` for ``nth_item``, ...) and is checked against that type
when saved. ``*Patch`` bodies change only the fields they carry; ``null`` clears a field. Money
(two decimals, not negative) and timestamps (with a timezone, storable in UTC) are checked by the
service, so that a 422 names the field.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=60, pattern=r"^[^\x00]+$")]
Instant = Annotated[datetime, msgspec.Meta(tz=True)]
Priority = Annotated[int, msgspec.Meta(ge=-1_000_000, le=1_000_000)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2_000_000_000)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
MAX_REFS = 1000
Ids = Annotated[list[UUID], msgspec.Meta(max_length=MAX_REFS)]
Labels = Annotated[list[Label], msgspec.Meta(max_length=MAX_REFS)]

PromotionType = Literal[
    "straight_discount",
    "fixed_price",
    "nth_item",
    "bundle",
    "full_reduction",
    "full_discount",
    "buy_x_get_y",
    "add_on",
]
MutexStrategy = Literal["priority_first", "best_for_customer", "stack_all"]
PromotionStatus = Literal["draft", "active", "paused", "ended"]
TemplateStatus = Literal["active", "paused", "ended"]
CodeState = Literal["issued", "reserved", "redeemed", "void"]


class Input(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: unknown fields are rejected."""


class Products(Input):
    """Which lines a promotion or coupon touches: a line matches by SKU, category or brand.
    All empty means every line."""

    sku_ids: Ids = []
    category_ids: Ids = []
    brand_ids: Ids = []


class AudienceIn(Input):
    """Who gets a promotion. Each non-empty list must match the buyer; all empty means everyone.
    A region covers its descendants. ``store_ids`` name the selling stores (POS)."""

    customer_ids: Ids = []
    customer_classes: Labels = []
    levels: Labels = []
    region_ids: Ids = []
    channels: Labels = []
    store_ids: Ids = []


# --- promotions ------------------------------------------------------------------------------


class PromotionIn(Input):
    code: Code
    name: Name
    type: PromotionType
    rule: dict[str, Any]
    products: Products = msgspec.field(default_factory=Products)
    audience: AudienceIn = msgspec.field(default_factory=AudienceIn)
    priority: Priority = 0
    mutex_group: Label | None = None
    mutex_strategy: MutexStrategy = "priority_first"
    valid_from: Instant | None = None
    valid_to: Instant | None = None
    budget_amount: Decimal | None = None
    budget_count: Count | None = None
    per_customer_limit: Limit | None = None
    status: PromotionStatus = "active"


class PromotionPatch(Input):
    """Replace some fields; ``rule`` is replaced as a whole and checked against the (new) type."""

    name: Name | UnsetType = UNSET
    type: PromotionType | UnsetType = UNSET
    rule: dict[str, Any] | UnsetType = UNSET
    products: Products | UnsetType = UNSET
    audience: AudienceIn | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET
    mutex_group: Label | UnsetType | None = UNSET
    mutex_strategy: MutexStrategy | UnsetType = UNSET
    valid_from: Instant | UnsetType | None = UNSET
    valid_to: Instant | UnsetType | None = UNSET
    budget_amount: Decimal | UnsetType | None = UNSET
    budget_count: Count | UnsetType | None = UNSET
    per_customer_limit: Limit | UnsetType | None = UNSET
    status: PromotionStatus | UnsetType = UNSET


class ProductsOut(msgspec.Struct, kw_only=True):
    sku_ids: list[UUID]
    category_ids: list[UUID]
    brand_ids: list[UUID]


class AudienceOut(msgspec.Struct, kw_only=True):
    customer_ids: list[UUID]
    customer_classes: list[str]
    levels: list[str]
    region_ids: list[UUID]
    channels: list[str]
    store_ids: list[UUID]


class PromotionOut(msgspec.Struct, kw_only=True):
    """A promotion with its budget state. ``used_*`` are consumed when orders are submitted;
    ``remaining_*`` is null for an unlimited budget."""

    id: UUID
    code: str
    name: str
    type: str
    rule: dict[str, Any]
    products: ProductsOut
    audience: AudienceOut
    priority: int
    mutex_group: str | None
    mutex_strategy: str
    valid_from: datetime | None
    valid_to: datetime | None
    budget_amount: Decimal | None
    budget_count: int | None
    used_amount: Decimal
    used_count: int
    remaining_amount: Decimal | None
    remaining_count: int | None
    per_customer_limit: int | None
    status: str
    version: int
    created_at: datetime


class PromotionPage(msgspec.Struct, kw_only=True):
    items: list[PromotionOut]
    next_cursor: str | None


# --- coupon templates ------------------------------------------------------------------------


class CouponTemplateIn(Input):
    """A coupon (优惠券): ``amount`` off once the eligible amount reaches ``threshold``."""

    code: Code
    name: Name
    amount: Decimal
    threshold: Decimal = Decimal(0)
    products: Products = msgspec.field(default_factory=Products)
    valid_from: Instant | None = None
    valid_to: Instant | None = None
    total_quantity: Count | None = None
    per_customer_limit: Limit | None = None
    status: TemplateStatus = "active"


class CouponTemplatePatch(Input):
    name: Name | UnsetType = UNSET
    threshold: Decimal | UnsetType = UNSET
    amount: Decimal | UnsetType = UNSET
    products: Products | UnsetType = UNSET
    valid_from: Instant | UnsetType | None = UNSET
    valid_to: Instant | UnsetType | None = UNSET
    total_quantity: Count | UnsetType | None = UNSET
    per_customer_limit: Limit | UnsetType | None = UNSET
    status: TemplateStatus | UnsetType = UNSET


class CouponTemplateOut(msgspec.Struct, kw_only=True):
    id: UUID
    code: str
    name: str
    threshold: Decimal
    amount: Decimal
    products: ProductsOut
    valid_from: datetime | None
    valid_to: datetime | None
    total_quantity: int | None
    issued_count: int
    remaining_quantity: int | None
    per_customer_limit: int | None
    status: str
    version: int
    created_at: datetime


class CouponTemplatePage(msgspec.Struct, kw_only=True):
    items: list[CouponTemplateOut]
    next_cursor: str | None


# --- coupon codes ----------------------------------------------------------------------------

MAX_ISSUE = 1000


class CouponIssue(Input):
    """Issue ``quantity`` codes to each listed customer, or ``quantity`` unassigned codes (anyone
    may use them) when ``customer_ids`` is empty. At most 1,000 codes per request."""

    customer_ids: Annotated[list[UUID], msgspec.Meta(max_length=MAX_ISSUE)] = []
    quantity: Annotated[int, msgspec.Meta(ge=1, le=MAX_ISSUE)] = 1


class CouponCodeOut(msgspec.Struct, kw_only=True):
    id: UUID
    template_id: UUID
    code: str
    customer_id: UUID | None
    state: str
    issued_at: datetime
    redeemed_at: datetime | None
    version: int


class CouponCodePage(msgspec.Struct, kw_only=True):
    items: list[CouponCodeOut]
    next_cursor: str | None


class CouponIssueResult(msgspec.Struct, kw_only=True):
    template_id: UUID
    issued_count: int
    codes: list[CouponCodeOut]
