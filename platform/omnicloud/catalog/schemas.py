"""Catalog request and response bodies.

``*In`` bodies create through REST and refer to other objects by id; ``*Patch`` bodies change
only the fields they carry; ``*Spec`` bodies drive the idempotent upserts (tenant manifests,
CSV import) and refer to other objects by code. In a ``Patch`` or a ``Spec`` an omitted field
keeps its current value (on create it takes its default); ``null`` clears it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
UnitCode = Annotated[str, msgspec.Meta(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
# PostgreSQL text cannot hold NUL, so free text refuses it up front.
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
Description = Annotated[str, msgspec.Meta(max_length=4000, pattern=r"^[^\x00]*$")]
BARCODE_PATTERN = r"^[A-Za-z0-9\-]+$"
Barcode = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=BARCODE_PATTERN)]
Status = Literal["active", "inactive"]

MAX_AMOUNT = Decimal(10) ** 15


def check_decimal(
    field: str, value: Decimal | UnsetType | None, *, places: int, positive: bool = False
) -> None:
    """Money and quantities: finite, not negative (or > 0), at most ``places`` decimals."""
    if value is None or value is UNSET:
        return
    assert isinstance(value, Decimal)
    if not value.is_finite():
        raise ValueError(f"{field} must be a finite number")
    if positive and value <= 0:
        raise ValueError(f"{field} must be greater than 0")
    if value < 0:
        raise ValueError(f"{field} must not be negative")
    if value >= MAX_AMOUNT:
        raise ValueError(f"{field} is too large")
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        raise ValueError(f"{field} has more than {places} decimal places")


class Input(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: unknown fields are rejected."""


# --- units and brands --------------------------------------------------------------------


class UnitIn(Input):
    code: UnitCode
    name: Name


class NamePatch(Input):
    name: Name | UnsetType = UNSET


class UnitOut(msgspec.Struct, kw_only=True):
    id: UUID
    code: str
    name: str


class UnitPage(msgspec.Struct, kw_only=True):
    items: list[UnitOut]
    next_cursor: str | None


class BrandIn(Input):
    code: Code
    name: Name


class BrandOut(msgspec.Struct, kw_only=True):
    id: UUID
    code: str
    name: str


class BrandPage(msgspec.Struct, kw_only=True):
    items: list[BrandOut]
    next_cursor: str | None


# --- categories and regions (trees) --------------------------------------------------------


class CategoryIn(Input):
    code: Code
    name: Name
    parent_id: UUID | None = None


class TreePatch(Input):
    """Rename a node or move it (``parent_id: null`` makes it a root)."""

    name: Name | UnsetType = UNSET
    parent_id: UUID | UnsetType | None = UNSET


class CategorySpec(Input):
    code: Code
    name: Name
    parent_code: Code | UnsetType | None = UNSET


class CategoryOut(msgspec.Struct, kw_only=True):
    id: UUID
    code: str
    name: str
    parent_id: UUID | None


class CategoryPage(msgspec.Struct, kw_only=True):
    items: list[CategoryOut]
    next_cursor: str | None


class RegionIn(Input):
    code: Code
    name: Name
    parent_id: UUID | None = None


class RegionSpec(Input):
    code: Code
    name: Name
    parent_code: Code | UnsetType | None = UNSET


class RegionOut(msgspec.Struct, kw_only=True):
    id: UUID
    code: str
    name: str
    parent_id: UUID | None
    path: str


class RegionPage(msgspec.Struct, kw_only=True):
    items: list[RegionOut]
    next_cursor: str | None


# --- products -------------------------------------------------------------------------------


class ConversionIn(Input):
    """``1 unit = factor × base unit``."""

    unit_id: UUID
    factor: Decimal

    def __post_init__(self) -> None:
        check_decimal("factor", self.factor, places=4, positive=True)


class ConversionSpec(Input):
    unit_code: UnitCode
    factor: Decimal

    def __post_init__(self) -> None:
        check_decimal("factor", self.factor, places=4, positive=True)


class ConversionOut(msgspec.Struct, kw_only=True):
    unit_id: UUID
    factor: Decimal


class ProductIn(Input):
    code: Code
    name: Name
    base_unit_id: UUID
    brand_id: UUID | None = None
    category_id: UUID | None = None
    description: Description | None = None
    attributes: dict[str, Any] = {}
    status: Status = "active"
    conversions: list[ConversionIn] = []


class ProductPatch(Input):
    name: Name | UnsetType = UNSET
    base_unit_id: UUID | UnsetType = UNSET
    brand_id: UUID | UnsetType | None = UNSET
    category_id: UUID | UnsetType | None = UNSET
    description: Description | UnsetType | None = UNSET
    attributes: dict[str, Any] | UnsetType = UNSET
    status: Status | UnsetType = UNSET
    conversions: list[ConversionIn] | UnsetType = UNSET  # replaces the whole set


class ProductOut(msgspec.Struct, kw_only=True):
    id: UUID
    code: str
    name: str
    base_unit_id: UUID
    brand_id: UUID | None
    category_id: UUID | None
    description: str | None
    attributes: dict[str, Any]
    status: str
    conversions: list[ConversionOut]
    version: int
    created_at: datetime


class ProductPage(msgspec.Struct, kw_only=True):
    items: list[ProductOut]
    next_cursor: str | None


# --- SKUs ----------------------------------------------------------------------------------


class SkuIn(Input):
    product_id: UUID
    code: Code
    name: Name
    barcode: Barcode | None = None
    attributes: dict[str, Any] = {}
    list_price: Decimal | None = None
    cost_price: Decimal | None = None
    weight_g: Decimal | None = None
    status: Status = "active"

    def __post_init__(self) -> None:
        _check_sku_numbers(self)


class SkuPatch(Input):
    name: Name | UnsetType = UNSET
    barcode: Barcode | UnsetType | None = UNSET
    attributes: dict[str, Any] | UnsetType = UNSET
    list_price: Decimal | UnsetType | None = UNSET
    cost_price: Decimal | UnsetType | None = UNSET
    weight_g: Decimal | UnsetType | None = UNSET
    status: Status | UnsetType = UNSET

    def __post_init__(self) -> None:
        _check_sku_numbers(self)


class SkuSpec(Input):
    code: Code
    name: Name
    barcode: Barcode | UnsetType | None = UNSET
    attributes: dict[str, Any] | UnsetType = UNSET
    list_price: Decimal | UnsetType | None = UNSET
    cost_price: Decimal | UnsetType | None = UNSET
    weight_g: Decimal | UnsetType | None = UNSET
    status: Status | UnsetType = UNSET

    def __post_init__(self) -> None:
        _check_sku_numbers(self)


def _check_sku_numbers(s: SkuIn | SkuPatch | SkuSpec) -> None:
    check_decimal("list_price", s.list_price, places=2)
    check_decimal("cost_price", s.cost_price, places=2)
    check_decimal("weight_g", s.weight_g, places=4)


class ProductSpec(Input):
    """A product with its SKUs, keyed by code (SKUs not listed are left alone)."""

    code: Code
    name: Name
    base_unit_code: UnitCode | UnsetType = UNSET  # required when the product is new
    brand_code: Code | UnsetType | None = UNSET
    category_code: Code | UnsetType | None = UNSET
    description: Description | UnsetType | None = UNSET
    attributes: dict[str, Any] | UnsetType = UNSET
    status: Status | UnsetType = UNSET
    conversions: list[ConversionSpec] | UnsetType = UNSET  # replaces the whole set when given
    skus: list[SkuSpec] = []


class SkuOut(msgspec.Struct, kw_only=True):
    """A SKU as callers see it; ``cost_price`` is null unless the caller may see cost."""

    id: UUID
    product_id: UUID
    code: str
    name: str
    barcode: str | None
    attributes: dict[str, Any]
    list_price: Decimal | None
    cost_price: Decimal | None
    weight_g: Decimal | None
    status: str
    version: int
    created_at: datetime


class SkuPage(msgspec.Struct, kw_only=True):
    items: list[SkuOut]
    next_cursor: str | None


# --- prices --------------------------------------------------------------------------------


class UnitPrice(msgspec.Struct, kw_only=True):
    """What a ``resolve_unit_price`` implementation answers: the price and how it was found."""

    unit_price: Decimal
    source: str
    detail: dict[str, Any] = {}


class PriceOut(msgspec.Struct, kw_only=True):
    sku_id: UUID
    customer_id: UUID | None
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    source: str
    detail: dict[str, Any]


# --- CSV -----------------------------------------------------------------------------------

PRODUCT_CSV_COLUMNS = (
    "product_code",
    "product_name",
    "category_code",
    "brand_code",
    "unit_code",
    "sku_code",
    "sku_name",
    "barcode",
    "list_price",
    "cost_price",
    "weight_g",
)


class ProductCsvRow(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One row of a product CSV: a product and (optionally) one of its SKUs. An empty cell
    keeps the current value. Numbers are checked per column by the import, so that each
    error names its column."""

    product_code: Code
    product_name: Name
    category_code: Code | None = None
    brand_code: Code | None = None
    unit_code: UnitCode | None = None
    sku_code: Code | None = None
    sku_name: Name | None = None
    barcode: Barcode | None = None
    list_price: Decimal | None = None
    cost_price: Decimal | None = None
    weight_g: Decimal | None = None


class ImportResult(msgspec.Struct, kw_only=True):
    created: int
    updated: int
    unchanged: int
