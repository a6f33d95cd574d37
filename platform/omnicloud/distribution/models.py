"""Distribution tables: join applications (申请加盟), product authorisations (商品授权), supply
relations (供货关系) and guide price ranges (指导价). Product and region lists are JSON arrays of
id strings, checked against the catalog when saved (an empty list means "all")."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import CheckConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from omnicloud.core.db import Money, TenantOwned, tenant_fk, utcnow

VALIDITY = "valid_to IS NULL OR valid_from IS NULL OR valid_to >= valid_from"


class JoinApplication(TenantOwned):
    """A prospective dealer's application to join (申请加盟), filed by a dealer for a sub-dealer
    under itself or recorded by the brand's staff. ``pending`` → ``approved`` | ``rejected``."""

    __tablename__ = "join_applications"
    __table_args__ = (
        tenant_fk("region_id", "regions"),
        tenant_fk("requested_parent_id", "customers"),
        tenant_fk("filed_by_customer_id", "customers"),
        tenant_fk("customer_id", "customers"),
        tenant_fk("user_id", "users"),
        Index(None, "tenant_id", "state"),
        Index(None, "tenant_id", "requested_parent_id"),
        Index(None, "tenant_id", "filed_by_customer_id"),
    )

    company_name: Mapped[str] = mapped_column(String(200))
    contact_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(40))
    region_id: Mapped[UUID | None]
    channel: Mapped[str | None] = mapped_column(String(40))
    requested_parent_id: Mapped[UUID | None]  # None: a level-1 dealer under the brand
    requested_level: Mapped[str | None] = mapped_column(String(40))
    requested_class: Mapped[str | None] = mapped_column(String(40))
    note: Mapped[str | None] = mapped_column(String(2000))
    filed_by_customer_id: Mapped[UUID | None]  # the dealer that filed it; None: the brand's staff
    state: Mapped[str] = mapped_column(String(20), default="pending")  # pending|approved|rejected
    reject_reason: Mapped[str | None] = mapped_column(String(500))
    customer_id: Mapped[UUID | None]  # the dealer created on approval
    user_id: Mapped[UUID | None]  # the dealer user created on approval, if any
    decided_by: Mapped[str | None] = mapped_column(String(80))
    decided_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProductAuthorization(TenantOwned):
    """A rule granting or denying products to buyers (商品授权). The subject is at most one of
    customer, level, customer class or region (by ancestor); none means every buyer. The
    products are SKUs, categories (by ancestor) and brands; all empty means every product."""

    __tablename__ = "product_authorizations"
    __table_args__ = (
        tenant_fk("customer_id", "customers"),
        tenant_fk("region_id", "regions"),
        Index(None, "tenant_id", "customer_id"),
        CheckConstraint(VALIDITY, name="validity"),
        CheckConstraint("effect IN ('grant', 'deny')", name="effect"),
    )

    effect: Mapped[str] = mapped_column(String(10))
    customer_id: Mapped[UUID | None]
    customer_class: Mapped[str | None] = mapped_column(String(40))
    level: Mapped[str | None] = mapped_column(String(40))
    region_id: Mapped[UUID | None]
    sku_ids: Mapped[list[str]]
    category_ids: Mapped[list[str]]
    brand_ids: Mapped[list[str]]
    valid_from: Mapped[date | None]
    valid_to: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)


class SupplyRelation(TenantOwned):
    """Which seller supplies which buyer (供货关系): the brand (``seller_id`` NULL) or an ancestor
    dealer of the buyer, for some products and ship-to regions (empty lists: all), with a
    priority (higher wins), a validity and whether the seller may have the brand drop-ship."""

    __tablename__ = "supply_relations"
    __table_args__ = (
        tenant_fk("seller_id", "customers"),
        tenant_fk("buyer_id", "customers"),
        Index(None, "tenant_id", "buyer_id"),
        Index(None, "tenant_id", "seller_id"),
        CheckConstraint(VALIDITY, name="validity"),
    )

    seller_id: Mapped[UUID | None]
    buyer_id: Mapped[UUID]
    sku_ids: Mapped[list[str]]
    category_ids: Mapped[list[str]]
    brand_ids: Mapped[list[str]]
    region_ids: Mapped[list[str]]
    priority: Mapped[int] = mapped_column(default=0)
    drop_ship_allowed: Mapped[bool] = mapped_column(default=False)
    valid_from: Mapped[date | None]
    valid_to: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)


class GuidePrice(TenantOwned):
    """The brand's guide price range (指导价) for a SKU in a unit: every level-1 dealer's own
    price for it must lie within ``[min_price, max_price]`` (both inclusive)."""

    __tablename__ = "guide_prices"
    __table_args__ = (
        tenant_fk("sku_id", "skus"),
        tenant_fk("unit_id", "units"),
        Index(None, "tenant_id", "sku_id"),
        CheckConstraint("min_price >= 0", name="min_price_not_negative"),
        CheckConstraint("max_price >= min_price", name="range"),
        CheckConstraint(VALIDITY, name="validity"),
    )

    sku_id: Mapped[UUID]
    unit_id: Mapped[UUID]
    min_price: Mapped[Decimal] = mapped_column(Money)
    max_price: Mapped[Decimal] = mapped_column(Money)
    valid_from: Mapped[date | None]
    valid_to: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)
