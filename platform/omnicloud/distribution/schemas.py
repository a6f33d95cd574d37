"""Distribution request and response bodies: join applications, product authorisations, supply
relations and guide price ranges.

``*In`` bodies create and refer to other objects by id; ``*Patch`` bodies change only the fields
they carry (``null`` clears a field). Product lists (``sku_ids``, ``category_ids``, ``brand_ids``)
and ``region_ids`` left empty mean "all". Money has at most 2 decimals.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from omnicloud.catalog.schemas import check_decimal
from omnicloud.channels.schemas import CustomerOut
from omnicloud.identity.schemas import ApiKeyCreated, UserOut

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
# PostgreSQL text cannot hold NUL, so free text refuses it up front.
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[^\x00]+$")]
Note = Annotated[str, msgspec.Meta(min_length=1, max_length=2000, pattern=r"^[^\x00]+$")]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=r"^[^\x00]+$")]
Phone = Annotated[str, msgspec.Meta(min_length=3, max_length=40, pattern=r"^\+?[0-9][0-9 ()\-]*$")]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s\x00]+@[^@\s\x00]+$")]
Priority = Annotated[int, msgspec.Meta(ge=-1_000_000, le=1_000_000)]
SkuIds = Annotated[list[UUID], msgspec.Meta(max_length=1000)]
GroupIds = Annotated[list[UUID], msgspec.Meta(max_length=100)]
ApplicationState = Literal["pending", "approved", "rejected"]
Effect = Literal["grant", "deny"]
Subject = Literal["customer", "level", "customer_class", "region", "all"]


class Input(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: unknown fields are rejected."""


def _check_dates(valid_from: date | UnsetType | None, valid_to: date | UnsetType | None) -> None:
    if isinstance(valid_from, date) and isinstance(valid_to, date) and valid_to < valid_from:
        raise ValueError("valid_to must not be before valid_from")


def _check_range(min_price: Decimal | UnsetType, max_price: Decimal | UnsetType) -> None:
    check_decimal("min_price", min_price, places=2)
    check_decimal("max_price", max_price, places=2)
    if isinstance(min_price, Decimal) and isinstance(max_price, Decimal) and max_price < min_price:
        raise ValueError("max_price must not be below min_price")


# --- join applications ----------------------------------------------------------------------


class JoinApplicationIn(Input):
    """An application to join (申请加盟). ``requested_parent_id`` is the dealer to join under;
    null asks to be a level-1 dealer of the brand. A dealer files under its own subtree only,
    and when it omits the field it applies under itself."""

    company_name: Name
    contact_name: Name
    phone: Phone
    region_id: UUID | None = None
    channel: Label | None = None
    requested_parent_id: UUID | UnsetType | None = UNSET
    requested_level: Label | None = None
    requested_class: Label | None = None
    note: Note | None = None


class JoinApplicationOut(msgspec.Struct, kw_only=True):
    id: UUID
    company_name: str
    contact_name: str
    phone: str
    region_id: UUID | None
    channel: str | None
    requested_parent_id: UUID | None
    requested_level: str | None
    requested_class: str | None
    note: str | None
    filed_by_customer_id: UUID | None
    state: str
    reject_reason: str | None
    customer_id: UUID | None
    user_id: UUID | None
    decided_by: str | None
    decided_at: datetime | None
    created_at: datetime


class JoinApplicationPage(msgspec.Struct, kw_only=True):
    items: list[JoinApplicationOut]
    next_cursor: str | None


class DealerUserIn(Input):
    """A dealer user to create for the new dealer, with an API key shown once."""

    email: Email
    name: Name


class ApprovalIn(Input):
    """Approve: the new dealer's customer ``code``; ``customer_class``, ``level`` and
    ``sales_org_id`` default to the application's request (none for the sales org)."""

    code: Code
    customer_class: Label | None = None
    level: Label | None = None
    sales_org_id: UUID | None = None
    dealer_user: DealerUserIn | None = None


class ApprovalOut(msgspec.Struct, kw_only=True):
    """The decided application and what approval created; ``api_key.secret`` is shown once."""

    application: JoinApplicationOut
    customer: CustomerOut
    user: UserOut | None
    api_key: ApiKeyCreated | None


class RejectionIn(Input):
    reason: Reason


# --- product authorisations -----------------------------------------------------------------


class ProductAuthorizationIn(Input):
    """Grant or deny products (商品授权). The subject is at most one of ``customer_id``,
    ``level``, ``customer_class`` or ``region_id`` (by ancestor); none means every buyer. Products
    are SKUs, categories (by ancestor) and brands; all empty means every product."""

    effect: Effect
    customer_id: UUID | None = None
    level: Label | None = None
    customer_class: Label | None = None
    region_id: UUID | None = None
    sku_ids: SkuIds = []
    category_ids: GroupIds = []
    brand_ids: GroupIds = []
    valid_from: date | None = None
    valid_to: date | None = None

    def __post_init__(self) -> None:
        _check_dates(self.valid_from, self.valid_to)


class ProductAuthorizationPatch(Input):
    effect: Effect | UnsetType = UNSET
    customer_id: UUID | UnsetType | None = UNSET
    level: Label | UnsetType | None = UNSET
    customer_class: Label | UnsetType | None = UNSET
    region_id: UUID | UnsetType | None = UNSET
    sku_ids: SkuIds | UnsetType = UNSET
    category_ids: GroupIds | UnsetType = UNSET
    brand_ids: GroupIds | UnsetType = UNSET
    valid_from: date | UnsetType | None = UNSET
    valid_to: date | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        _check_dates(self.valid_from, self.valid_to)


class ProductAuthorizationOut(msgspec.Struct, kw_only=True):
    id: UUID
    effect: str
    subject: Subject
    customer_id: UUID | None
    level: str | None
    customer_class: str | None
    region_id: UUID | None
    sku_ids: list[UUID]
    category_ids: list[UUID]
    brand_ids: list[UUID]
    valid_from: date | None
    valid_to: date | None
    version: int
    created_at: datetime


class ProductAuthorizationPage(msgspec.Struct, kw_only=True):
    items: list[ProductAuthorizationOut]
    next_cursor: str | None


class AuthorizedSkuOut(msgspec.Struct, kw_only=True):
    """A SKU the customer may buy, and the rule that authorised it (null: no rule applies, and a
    SKU no rule names is authorised)."""

    sku_id: UUID
    code: str
    name: str
    product_id: UUID
    brand_id: UUID | None
    category_id: UUID | None
    rule_id: UUID | None


class AuthorizedSkuPage(msgspec.Struct, kw_only=True):
    items: list[AuthorizedSkuOut]
    next_cursor: str | None


# --- supply relations -----------------------------------------------------------------------


class SupplyRelationIn(Input):
    """Who supplies ``buyer_id`` (供货关系): the brand (``seller_id`` null) or one of the buyer's
    ancestors in the dealer tree, for these products and ship-to regions (by ancestor)."""

    buyer_id: UUID
    seller_id: UUID | None = None
    sku_ids: SkuIds = []
    category_ids: GroupIds = []
    brand_ids: GroupIds = []
    region_ids: GroupIds = []
    priority: Priority = 0
    drop_ship_allowed: bool = False
    valid_from: date | None = None
    valid_to: date | None = None

    def __post_init__(self) -> None:
        _check_dates(self.valid_from, self.valid_to)


class SupplyRelationPatch(Input):
    seller_id: UUID | UnsetType | None = UNSET
    sku_ids: SkuIds | UnsetType = UNSET
    category_ids: GroupIds | UnsetType = UNSET
    brand_ids: GroupIds | UnsetType = UNSET
    region_ids: GroupIds | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET
    drop_ship_allowed: bool | UnsetType = UNSET
    valid_from: date | UnsetType | None = UNSET
    valid_to: date | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        _check_dates(self.valid_from, self.valid_to)


class SupplyRelationOut(msgspec.Struct, kw_only=True):
    id: UUID
    buyer_id: UUID
    seller_id: UUID | None
    sku_ids: list[UUID]
    category_ids: list[UUID]
    brand_ids: list[UUID]
    region_ids: list[UUID]
    priority: int
    drop_ship_allowed: bool
    valid_from: date | None
    valid_to: date | None
    version: int
    created_at: datetime


class SupplyRelationPage(msgspec.Struct, kw_only=True):
    items: list[SupplyRelationOut]
    next_cursor: str | None


# --- guide prices ---------------------------------------------------------------------------


class GuidePriceIn(Input):
    """The guide price range (指导价) of a SKU in a unit (its base unit or a converted unit):
    level-1 dealers' own prices must lie within it, both bounds inclusive."""

    sku_id: UUID
    unit_id: UUID
    min_price: Decimal
    max_price: Decimal
    valid_from: date | None = None
    valid_to: date | None = None

    def __post_init__(self) -> None:
        _check_range(self.min_price, self.max_price)
        _check_dates(self.valid_from, self.valid_to)


class GuidePricePut(Input):
    """Replace a range and its validity (the SKU and unit stay)."""

    min_price: Decimal
    max_price: Decimal
    valid_from: date | None = None
    valid_to: date | None = None

    def __post_init__(self) -> None:
        _check_range(self.min_price, self.max_price)
        _check_dates(self.valid_from, self.valid_to)


class GuidePricePatch(Input):
    min_price: Decimal | UnsetType = UNSET
    max_price: Decimal | UnsetType = UNSET
    valid_from: date | UnsetType | None = UNSET
    valid_to: date | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        _check_range(self.min_price, self.max_price)
        _check_dates(self.valid_from, self.valid_to)


class GuidePriceOut(msgspec.Struct, kw_only=True):
    id: UUID
    sku_id: UUID
    unit_id: UUID
    min_price: Decimal
    max_price: Decimal
    valid_from: date | None
    valid_to: date | None
    version: int
    created_at: datetime


class GuidePricePage(msgspec.Struct, kw_only=True):
    items: list[GuidePriceOut]
    next_cursor: str | None
