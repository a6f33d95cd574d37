"""Rebate accrual runs and their lines (返利计提).

A run is one rebate policy over one period; it has at most one row per policy and period, so
running the same period again reuses (and recomputes) that row instead of adding a second one.
Its ``state`` moves only through ``rebates.states`` by a conditional UPDATE on ``version``. A line
is one customer's result: the achieved amount on the policy's basis, the engine's accrual with
the tier reached and why, what an earlier settled run carried in, and the amount finance settles
(the computed amount unless finance adjusted it, with a reason).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import CheckConstraint, Index, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from omnicloud.core.db import Money, TenantOwned, tenant_fk, utcnow
from omnicloud.pools.rebates.states import STATES

Ratio = Numeric(12, 6)


class RebateAccrualRun(TenantOwned):
    """One accrual of a rebate policy for one period; ``total`` is the sum of its lines' amounts."""

    __tablename__ = "rebate_accrual_runs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "rebate_policy_id", "period_start", "period_end"),
        tenant_fk("rebate_policy_id", "rebate_policies"),
        Index(None, "tenant_id", "rebate_policy_id", "period_end"),
        CheckConstraint("state IN (" + ", ".join(f"'{s}'" for s in STATES) + ")", name="state_known"),
        CheckConstraint("period_end >= period_start", name="period"),
    )

    rebate_policy_id: Mapped[UUID]
    period_start: Mapped[date]
    period_end: Mapped[date]
    state: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(default=1)
    basis: Mapped[str] = mapped_column(String(20))
    form: Mapped[str] = mapped_column(String(20))
    total: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    customers: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(String(400))
    requested_by: Mapped[str] = mapped_column(String(80))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    computed_at: Mapped[datetime | None]
    settled_by: Mapped[str | None] = mapped_column(String(80))
    settled_at: Mapped[datetime | None]


class RebateAccrualLine(TenantOwned):
    """One customer's accrual in a run. ``computed`` = ``accrual`` + ``carried_in``; ``amount`` is what
    settles (``computed`` unless adjusted). At settlement ``credited`` is what went to the rebate
    account (never negative) and ``carried_out`` the negative rest, which the next run takes in."""

    __tablename__ = "rebate_accrual_lines"
    __table_args__ = (
        UniqueConstraint("tenant_id", "run_id", "customer_id"),
        tenant_fk("run_id", "rebate_accrual_runs", ondelete="CASCADE"),
        tenant_fk("customer_id", "customers"),
        Index(None, "tenant_id", "customer_id"),
        CheckConstraint("credited IS NULL OR credited >= 0", name="credited_not_negative"),
        CheckConstraint("carried_out IS NULL OR carried_out <= 0", name="carried_out_not_positive"),
    )

    run_id: Mapped[UUID]
    customer_id: Mapped[UUID]
    achieved_amount: Mapped[Decimal] = mapped_column(Money)
    excluded_amount: Mapped[Decimal] = mapped_column(Money)
    achievement_ratio: Mapped[Decimal | None] = mapped_column(Ratio)
    tier_achievement: Mapped[Decimal | None] = mapped_column(Ratio)
    tier_rate: Mapped[Decimal | None] = mapped_column(Ratio)
    accrual: Mapped[Decimal] = mapped_column(Money)
    carried_in: Mapped[Decimal] = mapped_column(Money)
    computed: Mapped[Decimal] = mapped_column(Money)
    amount: Mapped[Decimal] = mapped_column(Money)
    adjustment_reason: Mapped[str | None] = mapped_column(String(400))
    adjusted_by: Mapped[str | None] = mapped_column(String(80))
    explanation: Mapped[list[str]]
    credited: Mapped[Decimal | None] = mapped_column(Money)
    carried_out: Mapped[Decimal | None] = mapped_column(Money)
    transfer_id: Mapped[UUID | None]
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
