"""Price request and response bodies: the access sequence, price lists, entries and floors.

``*In`` bodies create and refer to other objects by id; ``*Patch`` bodies change only the fields
they carry (``null`` clears a field). Money has at most 2 decimals, quantities at most 4; quantity
bands are in the SKU's base unit, both bounds inclusive, ``max_qty: null`` is open.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from omnicloud.catalog.schemas import check_decimal
from omnicloud.policies.pricing import Dimension, FloorAction, Mode

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
UnitCode = Annotated[str, msgspec.Meta(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
# PostgreSQL text cannot hold NUL, so free text refuses it up front.
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[^\x00]+$")]
StepName = Annotated[str, msgspec.Meta(min_length=1, max_length=60, pattern=r"^[a-z][a-z0-9_]*$")]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
Priority = Annotated[int, msgspec.Meta(ge=-1_000_000, le=1_000_000)]
Status = Literal["active", "inactive"]


class Input(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: unknown fields are rejected."""


def _check_dates(valid_from: date | UnsetType | None, valid_to: date | UnsetType | None) -> None:
    if isinstance(valid_from, date) and isinstance(valid_to, date) and valid_to < valid_from:
        raise ValueError("valid_to must not be before valid_from")


def _check_band(min_qty: Decimal | UnsetType, max_qty: Decimal | UnsetType | None) -> None:
    check_decimal("min_qty", min_qty, places=4)
    check_decimal("max_qty", max_qty, places=4)
    if isinstance(min_qty, Decimal) and isinstance(max_qty, Decimal) and max_qty < min_qty:
        raise ValueError("max_qty must not be below min_qty")


# --- the access sequence --------------------------------------------------------------------


class StepIn(Input):
    """A step of the access sequence; its price lists carry exactly these dimensions.
    An exclusive step that finds a price stops the search."""

    name: StepName
    dimensions: Annotated[list[Dimension], msgspec.Meta(max_length=6)] = []
    exclusive: bool = False

    def __post_init__(self) -> None:
        if len(set(self.dimensions)) != len(self.dimensions):
            raise ValueError(f"step {self.name} names a dimension twice")


class SequenceIn(Input):
    """The whole access sequence, searched from the first step (most specific) to the last."""

    steps: Annotated[list[StepIn], msgspec.Meta(min_length=1, max_length=20)]

    def __post_init__(self) -> None:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError("step names must be unique")


class StepOut(msgspec.Struct, kw_only=True):
    name: str
    dimensions: list[str]
    exclusive: bool


class SequenceOut(msgspec.Struct, kw_only=True):
    """``version`` 0 is the built-in default (no stored sequence yet)."""

    steps: list[StepOut]
    version: int
    updated_at: datetime | None


# --- price lists ----------------------------------------------------------------------------


class PriceListIn(Input):
    """A price list (价格表) placed in one step; it sets exactly that step's dimensions."""

    code: Code
    name: Name
    step: StepName
    currency: Currency = "CNY"
    priority: Priority = 0
    customer_id: UUID | None = None
    customer_class: Label | None = None
    level: Label | None = None
    region_id: UUID | None = None
    channel: Label | None = None
    sales_org_id: UUID | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    status: Status = "active"

    def __post_init__(self) -> None:
        _check_dates(self.valid_from, self.valid_to)


class PriceListPatch(Input):
    code: Code | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    step: StepName | UnsetType = UNSET
    currency: Currency | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET
    customer_id: UUID | UnsetType | None = UNSET
    customer_class: Label | UnsetType | None = UNSET
    level: Label | UnsetType | None = UNSET
    region_id: UUID | UnsetType | None = UNSET
    channel: Label | UnsetType | None = UNSET
    sales_org_id: UUID | UnsetType | None = UNSET
    valid_from: date | UnsetType | None = UNSET
    valid_to: date | UnsetType | None = UNSET
    status: Status | UnsetType = UNSET

    def __post_init__(self) -> None:
        _check_dates(self.valid_from, self.valid_to)


class PriceListOut(msgspec.Struct, kw_only=True):
    """``owner_customer_id`` null is the brand's list; otherwise the dealer whose own list it is."""

    id: UUID
    code: str
    name: str
    step: str
    currency: str
    priority: int
    customer_id: UUID | None
    customer_class: str | None
    level: str | None
    region_id: UUID | None
    channel: str | None
    sales_org_id: UUID | None
    valid_from: date | None
    valid_to: date | None
    status: str
    owner_customer_id: UUID | None = None
    version: int
    created_at: datetime


class PriceListPage(msgspec.Struct, kw_only=True):
    items: list[PriceListOut]
    next_cursor: str | None


# --- entries --------------------------------------------------------------------------------


class PriceEntryIn(Input):
    """A price per ``unit_id`` (the SKU's base unit or one of its product's converted units),
    for a quantity band in base units and an optional validity inside the list's."""

    sku_id: UUID
    unit_id: UUID
    price: Decimal
    min_qty: Decimal = Decimal(0)
    max_qty: Decimal | None = None
    mode: Mode = "all_units"
    valid_from: date | None = None
    valid_to: date | None = None

    def __post_init__(self) -> None:
        check_decimal("price", self.price, places=2)
        _check_band(self.min_qty, self.max_qty)
        _check_dates(self.valid_from, self.valid_to)


class PriceEntryPatch(Input):
    price: Decimal | UnsetType = UNSET
    min_qty: Decimal | UnsetType = UNSET
    max_qty: Decimal | UnsetType | None = UNSET
    mode: Mode | UnsetType = UNSET
    valid_from: date | UnsetType | None = UNSET
    valid_to: date | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        check_decimal("price", self.price, places=2)
        _check_band(self.min_qty, self.max_qty)
        _check_dates(self.valid_from, self.valid_to)


class PriceEntryOut(msgspec.Struct, kw_only=True):
    """``guide_violation`` says why an entry of a dealer's list is outside the brand's guide
    price range (the brand narrowed it after the entry was saved); quotes refuse such a price."""

    id: UUID
    price_list_id: UUID
    sku_id: UUID
    unit_id: UUID
    price: Decimal
    min_qty: Decimal
    max_qty: Decimal | None
    mode: str
    valid_from: date | None
    valid_to: date | None
    version: int
    created_at: datetime
    guide_violation: str | None = None


class PriceEntryPage(msgspec.Struct, kw_only=True):
    items: list[PriceEntryOut]
    next_cursor: str | None


ENTRY_CSV_COLUMNS = ("sku_code", "unit_code", "price", "min_qty", "max_qty", "mode", "valid_from", "valid_to")


class PriceEntryCsvRow(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One entry of a price list CSV; numbers are checked per column by the import."""

    sku_code: Code
    unit_code: UnitCode
    price: Decimal
    min_qty: Decimal | None = None
    max_qty: Decimal | None = None
    mode: Mode | None = None
    valid_from: date | None = None
    valid_to: date | None = None


class PriceImportResult(msgspec.Struct, kw_only=True):
    """What an entries CSV import did; ``deleted`` counts entries a ``replace`` import removed."""

    created: int
    updated: int
    unchanged: int
    deleted: int


# --- floors ---------------------------------------------------------------------------------


class PriceFloorIn(Input):
    """A price floor (价盘): the lowest net unit price of a SKU in a unit, and what happens below it."""

    sku_id: UUID
    unit_id: UUID
    price: Decimal
    action: FloorAction
    valid_from: date | None = None
    valid_to: date | None = None

    def __post_init__(self) -> None:
        check_decimal("price", self.price, places=2)
        _check_dates(self.valid_from, self.valid_to)


class PriceFloorPatch(Input):
    price: Decimal | UnsetType = UNSET
    action: FloorAction | UnsetType = UNSET
    valid_from: date | UnsetType | None = UNSET
    valid_to: date | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        check_decimal("price", self.price, places=2)
        _check_dates(self.valid_from, self.valid_to)


class PriceFloorOut(msgspec.Struct, kw_only=True):
    id: UUID
    sku_id: UUID
    unit_id: UUID
    price: Decimal
    action: str
    valid_from: date | None
    valid_to: date | None
    version: int
    created_at: datetime


class PriceFloorPage(msgspec.Struct, kw_only=True):
    items: list[PriceFloorOut]
    next_cursor: str | None
