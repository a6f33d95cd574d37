"""Inventory request and response bodies."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

import msgspec

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
LotNo = Annotated[str, msgspec.Meta(max_length=60, pattern=r"^([A-Za-z0-9][A-Za-z0-9_.\-/]*)?$")]
Status = Annotated[str, msgspec.Meta(pattern="^(active|inactive)$")]
Reference = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=60)]

MAX_QUANTITY = Decimal("1e14")
QUANTUM = Decimal("0.0001")


def check_quantity(field: str, value: Decimal, *, allow_zero: bool = False, signed: bool = False) -> Decimal:
    """Quantities are finite, carry at most 4 decimal places and fit the column; the value
    comes back with exactly 4 places, as the database returns it."""
    if not value.is_finite():
        raise ValueError(f"{field}: must be a finite number")
    if abs(value) >= MAX_QUANTITY:
        raise ValueError(f"{field}: must be less than {MAX_QUANTITY:f}")
    if value != value.quantize(QUANTUM):
        raise ValueError(f"{field}: at most 4 decimal places")
    if signed:
        if value == 0:
            raise ValueError(f"{field}: must not be 0")
    elif value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{field}: must be {'at least' if allow_zero else 'greater than'} 0")
    return value.quantize(QUANTUM)


def check_lot_dates(lot_no: str, production: date | None, expiry: date | None) -> None:
    if (production or expiry) and not lot_no:
        raise ValueError("lot_no: production and expiry dates need a lot number")
    if production and expiry and expiry < production:
        raise ValueError("expiry_date: must not be before production_date")


class Input(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: unknown fields are rejected."""


# --- warehouses -----------------------------------------------------------------------------


class WarehouseIn(Input):
    code: Code
    name: Name
    owner_customer_id: UUID | None = None  # empty: the brand's own warehouse
    region_id: UUID | None = None
    status: Status = "active"


class WarehousePatch(Input):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    owner_customer_id: UUID | msgspec.UnsetType | None = msgspec.UNSET
    region_id: UUID | msgspec.UnsetType | None = msgspec.UNSET
    status: Status | msgspec.UnsetType = msgspec.UNSET


class WarehouseOut(msgspec.Struct, kw_only=True):
    id: UUID
    code: str
    name: str
    owner_customer_id: UUID | None
    region_id: UUID | None
    status: str
    created_at: datetime


class WarehousePage(msgspec.Struct, kw_only=True):
    items: list[WarehouseOut]
    next_cursor: str | None


# --- lots -----------------------------------------------------------------------------------


class LotIn(Input):
    sku_id: UUID
    lot_no: Annotated[LotNo, msgspec.Meta(min_length=1)]
    production_date: date | None = None
    expiry_date: date | None = None

    def __post_init__(self) -> None:
        check_lot_dates(self.lot_no, self.production_date, self.expiry_date)


class LotOut(msgspec.Struct, kw_only=True):
    id: UUID
    sku_id: UUID
    lot_no: str
    production_date: date | None
    expiry_date: date | None
    created_at: datetime


class LotPage(msgspec.Struct, kw_only=True):
    items: list[LotOut]
    next_cursor: str | None


# --- stock operations -----------------------------------------------------------------------


class ReceiptIn(Input):
    """Goods arrive in a warehouse; a new lot number creates the lot."""

    warehouse_id: UUID
    sku_id: UUID
    quantity: Decimal
    lot_no: LotNo = ""
    production_date: date | None = None
    expiry_date: date | None = None
    reference: Reference | None = None

    def __post_init__(self) -> None:
        self.quantity = check_quantity("quantity", self.quantity)
        check_lot_dates(self.lot_no, self.production_date, self.expiry_date)


class IssueIn(Input):
    """Goods leave a warehouse; only available stock (on hand − reserved) can be issued."""

    warehouse_id: UUID
    sku_id: UUID
    quantity: Decimal
    lot_no: LotNo = ""
    reference: Reference | None = None

    def __post_init__(self) -> None:
        self.quantity = check_quantity("quantity", self.quantity)


class AdjustmentIn(Input):
    """A stock count: either the counted quantity or a signed correction, never below reserved."""

    warehouse_id: UUID
    sku_id: UUID
    lot_no: LotNo = ""
    counted_quantity: Decimal | None = None
    delta: Decimal | None = None
    production_date: date | None = None
    expiry_date: date | None = None
    reason: Reason | None = None
    reference: Reference | None = None

    def __post_init__(self) -> None:
        if (self.counted_quantity is None) == (self.delta is None):
            raise ValueError("counted_quantity: send exactly one of counted_quantity and delta")
        if self.counted_quantity is not None:
            self.counted_quantity = check_quantity("counted_quantity", self.counted_quantity, allow_zero=True)
        if self.delta is not None:
            self.delta = check_quantity("delta", self.delta, signed=True)
        check_lot_dates(self.lot_no, self.production_date, self.expiry_date)


class ReservationIn(Input):
    """Hold available stock for an order until it is consumed or released."""

    warehouse_id: UUID
    sku_id: UUID
    quantity: Decimal
    lot_no: LotNo = ""
    reference: Reference | None = None

    def __post_init__(self) -> None:
        self.quantity = check_quantity("quantity", self.quantity)


class StockRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a batched hold (``inventory.service.reserve_many``), built by services, not
    decoded from a request: ``lot_no`` None takes any lot of the SKU in the warehouse, in
    allocation order; ``""`` is the SKU's stock without a lot."""

    warehouse_id: UUID
    sku_id: UUID
    quantity: Decimal
    lot_no: str | None = None


class TransferIn(Input):
    """Move available stock of one lot from one warehouse to another, atomically."""

    from_warehouse_id: UUID
    to_warehouse_id: UUID
    sku_id: UUID
    quantity: Decimal
    lot_no: LotNo = ""
    reference: Reference | None = None

    def __post_init__(self) -> None:
        self.quantity = check_quantity("quantity", self.quantity)
        if self.from_warehouse_id == self.to_warehouse_id:
            raise ValueError("to_warehouse_id: must differ from from_warehouse_id")


class MovementOut(msgspec.Struct, kw_only=True):
    id: UUID
    warehouse_id: UUID
    sku_id: UUID
    lot_no: str
    kind: str
    on_hand_delta: Decimal
    reserved_delta: Decimal
    on_hand_after: Decimal
    reserved_after: Decimal
    reservation_id: UUID | None
    transfer_id: UUID | None
    reason: str | None
    reference: str | None
    actor: str
    at: datetime


class MovementPage(msgspec.Struct, kw_only=True):
    items: list[MovementOut]
    next_cursor: str | None


class StockLevelOut(msgspec.Struct, kw_only=True):
    id: UUID
    warehouse_id: UUID
    sku_id: UUID
    lot_no: str
    production_date: date | None
    expiry_date: date | None
    on_hand: Decimal
    reserved: Decimal
    available: Decimal
    updated_at: datetime


class StockPage(msgspec.Struct, kw_only=True):
    items: list[StockLevelOut]
    next_cursor: str | None


class StockChangeOut(msgspec.Struct, kw_only=True):
    """The movements one request recorded and the levels they left behind."""

    movements: list[MovementOut]
    levels: list[StockLevelOut]


class ReservationOut(msgspec.Struct, kw_only=True):
    id: UUID
    warehouse_id: UUID
    sku_id: UUID
    lot_no: str
    quantity: Decimal
    status: str  # placed | released | consumed
    reference: str | None
    created_at: datetime
    closed_at: datetime | None


class ReservationPage(msgspec.Struct, kw_only=True):
    items: list[ReservationOut]
    next_cursor: str | None


# --- CSV ------------------------------------------------------------------------------------

CSV_COLUMNS = ("warehouse_code", "sku_code", "lot_no", "production_date", "expiry_date", "quantity")


class StockCsvRow(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One line of a stock import: the on-hand quantity to set."""

    warehouse_code: Code
    sku_code: Annotated[str, msgspec.Meta(min_length=1, max_length=60)]
    quantity: Decimal
    lot_no: LotNo = ""
    production_date: date | None = None
    expiry_date: date | None = None

    def __post_init__(self) -> None:
        self.quantity = check_quantity("quantity", self.quantity, allow_zero=True)
        check_lot_dates(self.lot_no, self.production_date, self.expiry_date)


class ImportResult(msgspec.Struct, kw_only=True):
    rows: int
    changed: int  # rows whose on-hand quantity moved
    reference: str  # carried by this import's movements
