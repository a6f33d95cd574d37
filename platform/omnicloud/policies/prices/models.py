"""Price tables (价格表): the access sequence, price lists with their dimensions, entries and floors."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import CheckConstraint, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from omnicloud.core.db import Money, Quantity, TenantOwned, tenant_fk, utcnow

OWNER_KEY = "coalesce(owner_customer_id, '00000000-0000-0000-0000-000000000000')"


class PriceSequence(TenantOwned):
    """A tenant's access sequence, searched from specific to general; one row per tenant.
    ``steps`` is a list of ``{"name", "dimensions", "exclusive"}``. Without a row the built-in
    default sequence applies."""

    __tablename__ = "price_sequences"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    steps: Mapped[list[Any]]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)


class PriceList(TenantOwned):
    """A price list placed in one access-sequence step. Its dimensions say whom it prices for;
    every entry inherits them, with the list's currency, validity and priority. ``owner_customer_id``
    NULL is the brand's list; otherwise the list is a dealer's own (DOMAIN §7): it prices only the
    lines a supply relation routes to that dealer, inside the brand's guide price ranges."""

    __tablename__ = "price_lists"
    __table_args__ = (
        # A code is unique per owner: the brand's lists, and each dealer's own.
        Index("uq_price_lists_tenant_id_owner_code", "tenant_id", text(OWNER_KEY), "code", unique=True),
        tenant_fk("customer_id", "customers"),
        tenant_fk("region_id", "regions"),
        tenant_fk("sales_org_id", "sales_orgs"),
        tenant_fk("owner_customer_id", "customers"),
        Index(None, "tenant_id", "step"),
        Index(None, "tenant_id", "owner_customer_id"),
        CheckConstraint("valid_to IS NULL OR valid_from IS NULL OR valid_to >= valid_from", name="validity"),
    )

    code: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    step: Mapped[str] = mapped_column(String(60))
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    priority: Mapped[int] = mapped_column(default=0)
    customer_id: Mapped[UUID | None]
    customer_class: Mapped[str | None] = mapped_column(String(40))
    level: Mapped[str | None] = mapped_column(String(40))
    region_id: Mapped[UUID | None]
    channel: Mapped[str | None] = mapped_column(String(40))
    sales_org_id: Mapped[UUID | None]
    valid_from: Mapped[date | None]
    valid_to: Mapped[date | None]
    status: Mapped[str] = mapped_column(String(20), default="active")  # active|inactive
    owner_customer_id: Mapped[UUID | None]  # None: the brand's
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)


class PriceListEntry(TenantOwned):
    """A price for one SKU in one unit, optionally for a quantity band (in the base unit, bounds
    inclusive, ``max_qty`` NULL is open) and a narrower validity than its list."""

    __tablename__ = "price_list_entries"
    __table_args__ = (
        tenant_fk("price_list_id", "price_lists", ondelete="CASCADE"),
        tenant_fk("sku_id", "skus"),
        tenant_fk("unit_id", "units"),
        Index(None, "tenant_id", "price_list_id"),
        Index(None, "tenant_id", "sku_id"),
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("min_qty >= 0", name="min_qty_not_negative"),
        CheckConstraint("max_qty IS NULL OR max_qty >= min_qty", name="band"),
        CheckConstraint("valid_to IS NULL OR valid_from IS NULL OR valid_to >= valid_from", name="validity"),
    )

    price_list_id: Mapped[UUID]
    sku_id: Mapped[UUID]
    unit_id: Mapped[UUID]
    price: Mapped[Decimal] = mapped_column(Money)
    min_qty: Mapped[Decimal] = mapped_column(Quantity, default=Decimal(0))
    max_qty: Mapped[Decimal | None] = mapped_column(Quantity)
    mode: Mapped[str] = mapped_column(String(20), default="all_units")  # all_units|graduated
    valid_from: Mapped[date | None]
    valid_to: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)


class PriceFloor(TenantOwned):
    """A price floor (价盘): the lowest net unit price a SKU may sell at, per unit, and the action
    when a line goes below it."""

    __tablename__ = "price_floors"
    __table_args__ = (
        tenant_fk("sku_id", "skus"),
        tenant_fk("unit_id", "units"),
        Index(None, "tenant_id", "sku_id"),
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("valid_to IS NULL OR valid_from IS NULL OR valid_to >= valid_from", name="validity"),
    )

    sku_id: Mapped[UUID]
    unit_id: Mapped[UUID]
    price: Mapped[Decimal] = mapped_column(Money)
    action: Mapped[str] = mapped_column(String(20))  # warn|block|needs_approval
    valid_from: Mapped[date | None]
    valid_to: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)
