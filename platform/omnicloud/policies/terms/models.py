"""Commercial terms agreed with customers: credit profiles and rules (信用), rebate policies (返利)
and expense offset ratios (费用核销比例)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import CheckConstraint, Index, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from omnicloud.core.db import Money, TenantOwned, tenant_fk, utcnow

Ratio = Numeric(9, 6)


class CreditProfile(TenantOwned):
    """A customer's credit line, optionally for one sales org: limit, credit days and grace days.
    ``owner_customer_id`` is who grants it: NULL the brand, or a dealer for a sub-dealer it
    supplies (its orders to that dealer are checked against it; never with a sales org)."""

    __tablename__ = "credit_profiles"
    __table_args__ = (
        UniqueConstraint("tenant_id", "customer_id", "sales_org_id"),
        tenant_fk("customer_id", "customers"),
        tenant_fk("sales_org_id", "sales_orgs"),
        tenant_fk("owner_customer_id", "customers"),
        Index(None, "tenant_id", "owner_customer_id", "customer_id"),
        CheckConstraint("credit_limit >= 0 AND credit_days >= 0 AND grace_days >= 0", name="not_negative"),
        CheckConstraint(
            "owner_customer_id IS NULL OR sales_org_id IS NULL", name="dealer_grant_has_no_sales_org"
        ),
    )

    customer_id: Mapped[UUID]
    sales_org_id: Mapped[UUID | None]
    owner_customer_id: Mapped[UUID | None]
    credit_limit: Mapped[Decimal] = mapped_column(Money)
    credit_days: Mapped[int] = mapped_column(default=0)
    grace_days: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)


class TemporaryCreditLine(TenantOwned):
    """A temporary extra line (临时额度) on a credit profile, valid up to and including ``expires_on``."""

    __tablename__ = "temporary_credit_lines"
    __table_args__ = (
        tenant_fk("profile_id", "credit_profiles", ondelete="CASCADE"),
        Index(None, "tenant_id", "profile_id"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    profile_id: Mapped[UUID]
    amount: Mapped[Decimal] = mapped_column(Money)
    expires_on: Mapped[date]
    reason: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CreditRule(TenantOwned):
    """The action at one check point (submit, approval, shipment) when a document goes over the line
    or the customer has overdue receivables; optionally for one customer class only."""

    __tablename__ = "credit_rules"
    __table_args__ = (UniqueConstraint("tenant_id", "check_point", "customer_class"),)

    check_point: Mapped[str] = mapped_column(String(20))  # submit|approval|shipment
    customer_class: Mapped[str | None] = mapped_column(String(40))
    over_limit: Mapped[str] = mapped_column(String(20), default="pass")  # pass|warn|block|needs_approval
    overdue: Mapped[str] = mapped_column(String(20), default="pass")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)


class RebatePolicy(TenantOwned):
    """A rebate policy: who and what it covers, the basis, target, tiers and mode, the cap, the form
    it pays in and how much of a later order it may pay (usage cap ratio)."""

    __tablename__ = "rebate_policies"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        CheckConstraint("usage_cap_ratio >= 0 AND usage_cap_ratio <= 1", name="usage_cap_ratio"),
        CheckConstraint(
            "period_end IS NULL OR period_start IS NULL OR period_end >= period_start", name="period"
        ),
    )

    code: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    period: Mapped[str] = mapped_column(String(20))  # month|quarter|year|custom
    period_start: Mapped[date | None]
    period_end: Mapped[date | None]
    customers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    products: Mapped[dict[str, Any]] = mapped_column(default=dict)
    basis: Mapped[str] = mapped_column(String(20))  # shipped|invoiced|paid
    mode: Mapped[str] = mapped_column(String(20))  # retroactive|incremental|flat
    target: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    tiers: Mapped[list[Any]]
    cap: Mapped[Decimal | None] = mapped_column(Money)
    form: Mapped[str] = mapped_column(String(20), default="cash")  # cash|discount|goods
    usage_cap_ratio: Mapped[Decimal] = mapped_column(Ratio, default=Decimal(1))
    status: Mapped[str] = mapped_column(String(20), default="active")  # draft|active|closed
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)


class OffsetRatio(TenantOwned):
    """How much of a line may be paid from fees (费用): per customer or sales org (or everyone), and
    per SKU or category (or everything). The most specific ratio wins."""

    __tablename__ = "offset_ratios"
    __table_args__ = (
        UniqueConstraint("tenant_id", "customer_id", "sales_org_id", "sku_id", "category_id"),
        tenant_fk("customer_id", "customers"),
        tenant_fk("sales_org_id", "sales_orgs"),
        tenant_fk("sku_id", "skus"),
        tenant_fk("category_id", "categories"),
        CheckConstraint("ratio >= 0 AND ratio <= 1", name="ratio"),
        CheckConstraint("customer_id IS NULL OR sales_org_id IS NULL", name="one_party"),
        CheckConstraint("sku_id IS NULL OR category_id IS NULL", name="one_product"),
    )

    customer_id: Mapped[UUID | None]
    sales_org_id: Mapped[UUID | None]
    sku_id: Mapped[UUID | None]
    category_id: Mapped[UUID | None]
    ratio: Mapped[Decimal] = mapped_column(Ratio)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)
