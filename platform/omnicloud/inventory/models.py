"""Inventory tables. Stock levels are a cache of the movement journal, updated in the same
transaction by conditional UPDATEs; CHECK constraints are the backstop."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import CheckConstraint, Date, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from omnicloud.core.db import Quantity, TenantOwned, tenant_fk, utcnow

MOVEMENT_KINDS = ("receipt", "issue", "adjust", "reserve", "release", "transfer_out", "transfer_in")


class Warehouse(TenantOwned):
    """Owned by the brand (``owner_customer_id`` empty) or by a dealer."""

    __tablename__ = "warehouses"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        tenant_fk("owner_customer_id", "customers"),
        tenant_fk("region_id", "regions"),
        Index(None, "tenant_id", "owner_customer_id"),
        CheckConstraint("status IN ('active', 'inactive')", name="status_known"),
    )

    code: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    owner_customer_id: Mapped[UUID | None]
    region_id: Mapped[UUID | None]
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Lot(TenantOwned):
    """A production lot (批次) of one SKU."""

    __tablename__ = "lots"
    __table_args__ = (
        UniqueConstraint("tenant_id", "sku_id", "lot_no"),
        tenant_fk("sku_id", "skus"),
        Index(None, "tenant_id", "expiry_date"),
        CheckConstraint(
            "expiry_date IS NULL OR production_date IS NULL OR expiry_date >= production_date",
            name="expiry_after_production",
        ),
    )

    sku_id: Mapped[UUID]
    lot_no: Mapped[str] = mapped_column(String(60))
    production_date: Mapped[date | None] = mapped_column(Date)
    expiry_date: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StockLevel(TenantOwned):
    """On hand and reserved per warehouse, SKU and lot (``lot_no`` '' means no lot)."""

    __tablename__ = "stock_levels"
    __table_args__ = (
        UniqueConstraint("tenant_id", "warehouse_id", "sku_id", "lot_no"),
        tenant_fk("warehouse_id", "warehouses"),
        tenant_fk("sku_id", "skus"),
        Index(None, "tenant_id", "sku_id"),
        CheckConstraint("on_hand >= 0", name="on_hand_nonneg"),
        CheckConstraint("reserved >= 0 AND reserved <= on_hand", name="reserved_within_on_hand"),
    )

    warehouse_id: Mapped[UUID]
    sku_id: Mapped[UUID]
    lot_no: Mapped[str] = mapped_column(String(60), default="")
    on_hand: Mapped[Decimal] = mapped_column(Quantity, default=Decimal(0))
    reserved: Mapped[Decimal] = mapped_column(Quantity, default=Decimal(0))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class StockReservation(TenantOwned):
    """A hold on one stock level: placed, then released or consumed exactly once. ``quantity``
    is what it holds: a partial consume (``consume_many``) lowers it and leaves it placed."""

    __tablename__ = "stock_reservations"
    __table_args__ = (
        tenant_fk("level_id", "stock_levels"),
        tenant_fk("warehouse_id", "warehouses"),
        tenant_fk("sku_id", "skus"),
        Index(None, "tenant_id", "warehouse_id", "status"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("status IN ('placed', 'released', 'consumed')", name="status_known"),
    )

    level_id: Mapped[UUID]
    warehouse_id: Mapped[UUID]
    sku_id: Mapped[UUID]
    lot_no: Mapped[str] = mapped_column(String(60), default="")
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    status: Mapped[str] = mapped_column(String(20), default="placed")
    reference: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]


class StockMovement(TenantOwned):
    """One recorded change of stock. Append-only: corrections are new movements."""

    __tablename__ = "stock_movements"
    __table_args__ = (
        tenant_fk("warehouse_id", "warehouses"),
        tenant_fk("sku_id", "skus"),
        tenant_fk("reservation_id", "stock_reservations"),
        Index(None, "tenant_id", "warehouse_id", "sku_id"),
        Index(None, "tenant_id", "reservation_id"),
        CheckConstraint("kind IN (" + ", ".join(f"'{k}'" for k in MOVEMENT_KINDS) + ")", name="kind_known"),
    )

    warehouse_id: Mapped[UUID]
    sku_id: Mapped[UUID]
    lot_no: Mapped[str] = mapped_column(String(60), default="")
    kind: Mapped[str] = mapped_column(String(20))
    on_hand_delta: Mapped[Decimal] = mapped_column(Quantity)
    reserved_delta: Mapped[Decimal] = mapped_column(Quantity)
    on_hand_after: Mapped[Decimal] = mapped_column(Quantity)
    reserved_after: Mapped[Decimal] = mapped_column(Quantity)
    reservation_id: Mapped[UUID | None]
    transfer_id: Mapped[UUID | None]  # shared by the two legs of one transfer
    reason: Mapped[str | None] = mapped_column(String(60))
    reference: Mapped[str | None] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(default=utcnow)
