"""Catalog tables."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import CheckConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from omnicloud.core.db import Money, Quantity, TenantOwned, tenant_fk, utcnow


class Unit(TenantOwned):
    """A unit of measure (piece, case, kg, g)."""

    __tablename__ = "units"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))


class Brand(TenantOwned):
    __tablename__ = "brands"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    code: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))


class Category(TenantOwned):
    """A node of the category tree."""

    __tablename__ = "categories"
    __table_args__ = (UniqueConstraint("tenant_id", "code"), tenant_fk("parent_id", "categories"))

    code: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[UUID | None]


class Region(TenantOwned):
    """A node of the region tree (country → province → city); prices match by ancestor."""

    __tablename__ = "regions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        tenant_fk("parent_id", "regions"),
        Index(None, "tenant_id", "path"),
    )

    code: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[UUID | None]
    path: Mapped[str] = mapped_column(String(2000))  # "/<root id>/.../<own id>/"


class Product(TenantOwned):
    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        tenant_fk("brand_id", "brands"),
        tenant_fk("category_id", "categories"),
        tenant_fk("base_unit_id", "units"),
        Index(None, "tenant_id", "category_id"),
    )

    code: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    brand_id: Mapped[UUID | None]
    category_id: Mapped[UUID | None]
    base_unit_id: Mapped[UUID]
    description: Mapped[str | None] = mapped_column(String(4000))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="active")  # active|inactive
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)


class UnitConversion(TenantOwned):
    """``1 <unit> = factor × base unit`` for one product."""

    __tablename__ = "unit_conversions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "product_id", "unit_id"),
        tenant_fk("product_id", "products"),
        tenant_fk("unit_id", "units"),
        CheckConstraint("factor > 0", name="factor_positive"),
    )

    product_id: Mapped[UUID]
    unit_id: Mapped[UUID]
    factor: Mapped[Decimal] = mapped_column(Quantity)


class Sku(TenantOwned):
    __tablename__ = "skus"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        UniqueConstraint("tenant_id", "barcode"),
        tenant_fk("product_id", "products"),
        Index(None, "tenant_id", "product_id"),
        CheckConstraint("list_price IS NULL OR list_price >= 0", name="list_price_nonneg"),
        CheckConstraint("cost_price IS NULL OR cost_price >= 0", name="cost_price_nonneg"),
    )

    product_id: Mapped[UUID]
    code: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    barcode: Mapped[str | None] = mapped_column(String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    list_price: Mapped[Decimal | None] = mapped_column(Money)
    cost_price: Mapped[Decimal | None] = mapped_column(Money)
    weight_g: Mapped[Decimal | None] = mapped_column(Quantity)
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)
