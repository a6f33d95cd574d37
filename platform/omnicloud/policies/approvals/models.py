"""Approval rules: the conditions under which an order waits for a person (see
``policies.approval``). Scopes are stored as JSON lists of ids and labels."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from omnicloud.core.db import Money, TenantOwned, utcnow
from omnicloud.policies.terms.models import Ratio


class ApprovalRule(TenantOwned):
    __tablename__ = "approval_rules"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        CheckConstraint("min_amount IS NULL OR min_amount >= 0", name="min_amount_not_negative"),
        CheckConstraint(
            "min_discount_ratio IS NULL OR (min_discount_ratio >= 0 AND min_discount_ratio <= 1)",
            name="min_discount_ratio_range",
        ),
    )

    code: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    min_amount: Mapped[Decimal | None] = mapped_column(Money)
    min_discount_ratio: Mapped[Decimal | None] = mapped_column(Ratio)
    uses_credit: Mapped[bool] = mapped_column(default=False)
    customers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    products: Mapped[dict[str, Any]] = mapped_column(default=dict)
    channels: Mapped[list[str]]
    approver_role: Mapped[str | None] = mapped_column(String(60))
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
