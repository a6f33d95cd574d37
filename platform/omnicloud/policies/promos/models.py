"""Promotion tables (促销): promotions, coupon templates and the coupon codes issued from them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import CheckConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from omnicloud.core.db import Money, TenantOwned, tenant_fk, utcnow


class Promotion(TenantOwned):
    """A promotion of one type (see ``policies.promotions``). ``rule`` holds the type's own fields
    (tiers, set price, n, ...), validated by the engine's Struct when saved. ``products`` scopes the
    lines it touches (sku, category, brand ids); ``audience`` scopes who gets it (customer ids,
    classes, levels, region ids matched by ancestor, channels, store ids). Empty means everyone."""

    __tablename__ = "promotions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        Index(None, "tenant_id", "status", "valid_to"),
        CheckConstraint("valid_to IS NULL OR valid_from IS NULL OR valid_to > valid_from", name="validity"),
        CheckConstraint("budget_amount IS NULL OR budget_amount >= 0", name="budget_amount_not_negative"),
        CheckConstraint("budget_count IS NULL OR budget_count >= 0", name="budget_count_not_negative"),
        CheckConstraint("used_amount >= 0 AND used_count >= 0", name="used_not_negative"),
    )

    code: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(40))
    rule: Mapped[dict[str, Any]]
    products: Mapped[dict[str, Any]] = mapped_column(default=dict)
    audience: Mapped[dict[str, Any]] = mapped_column(default=dict)
    priority: Mapped[int] = mapped_column(default=0)
    mutex_group: Mapped[str | None] = mapped_column(String(60))
    mutex_strategy: Mapped[str] = mapped_column(String(30), default="priority_first")
    valid_from: Mapped[datetime | None]
    valid_to: Mapped[datetime | None]
    budget_amount: Mapped[Decimal | None] = mapped_column(Money)
    budget_count: Mapped[int | None]
    used_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    used_count: Mapped[int] = mapped_column(default=0)
    per_customer_limit: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(20), default="active")  # draft|active|paused|ended
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)


class CouponTemplate(TenantOwned):
    """What a coupon is worth (``amount`` off once the eligible amount reaches ``threshold``), where it
    applies, and how many codes may be issued from it."""

    __tablename__ = "coupon_templates"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        CheckConstraint("amount > 0 AND threshold >= 0", name="amounts"),
        CheckConstraint(
            "total_quantity IS NULL OR issued_count <= total_quantity", name="issued_within_total"
        ),
        CheckConstraint("valid_to IS NULL OR valid_from IS NULL OR valid_to > valid_from", name="validity"),
    )

    code: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    threshold: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    amount: Mapped[Decimal] = mapped_column(Money)
    products: Mapped[dict[str, Any]] = mapped_column(default=dict)
    valid_from: Mapped[datetime | None]
    valid_to: Mapped[datetime | None]
    total_quantity: Mapped[int | None]
    issued_count: Mapped[int] = mapped_column(default=0)
    per_customer_limit: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(20), default="active")  # active|paused|ended
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)


class CouponCode(TenantOwned):
    """One issued coupon code. State: issued → reserved (by a submitted order) → redeemed, or
    released back to issued; void when withdrawn; expiry follows the template's validity."""

    __tablename__ = "coupon_codes"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        tenant_fk("template_id", "coupon_templates"),
        tenant_fk("customer_id", "customers"),
        Index(None, "tenant_id", "template_id"),
        Index(None, "tenant_id", "customer_id"),
    )

    template_id: Mapped[UUID]
    code: Mapped[str] = mapped_column(String(40))
    customer_id: Mapped[UUID | None]
    state: Mapped[str] = mapped_column(String(20), default="issued")  # issued|reserved|redeemed|void
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    redeemed_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(default=1)


class PromotionUse(TenantOwned):
    """One order's use of one promotion (促销预算占用): one unit of its count budget and ``amount``
    of its amount budget, and one of the customer's uses under ``per_customer_limit``.
    ``consumed`` at submit, ``released`` (given back) when the order is cancelled or rejected
    before shipment. ``order_id`` is the consuming document's id (not a foreign key, so any
    channel's order may consume)."""

    __tablename__ = "promotion_uses"
    __table_args__ = (
        UniqueConstraint("tenant_id", "order_id", "promotion_id"),
        tenant_fk("promotion_id", "promotions"),
        tenant_fk("customer_id", "customers"),
        Index(None, "tenant_id", "promotion_id", "customer_id", "state"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint("state IN ('consumed', 'released')", name="state"),
    )

    promotion_id: Mapped[UUID]
    order_id: Mapped[UUID]
    customer_id: Mapped[UUID | None]
    amount: Mapped[Decimal] = mapped_column(Money)
    state: Mapped[str] = mapped_column(String(20), default="consumed")  # consumed|released
    consumed_at: Mapped[datetime] = mapped_column(default=utcnow)
    released_at: Mapped[datetime | None]
