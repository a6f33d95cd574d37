"""Request and response bodies of rebate accrual runs (返利计提). Money is a decimal string."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

import msgspec

from omnicloud.catalog.schemas import Input, check_decimal
from omnicloud.pools.rebates.states import Action, State

Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=400, pattern=r"^[^\x00]+$")]


class AccrualRunIn(Input):
    """Accrue ``rebate_policy_id`` for the days ``period_start`` to ``period_end`` (both included)."""

    rebate_policy_id: UUID
    period_start: date
    period_end: date

    def __post_init__(self) -> None:
        if self.period_end < self.period_start:
            raise ValueError("period_end: must not be before period_start")


class LineAdjustmentIn(Input):
    """Finance overrides one line's amount while the run is in review; the reason is audited."""

    amount: Decimal
    reason: Reason

    def __post_init__(self) -> None:
        if not self.amount.is_finite() or self.amount != self.amount.quantize(Decimal("0.01")):
            raise ValueError("amount: must be a number of whole cents")
        check_decimal("amount", abs(self.amount), places=2)


class AccrualLineOut(msgspec.Struct, kw_only=True):
    """One customer's accrual: ``computed`` = ``accrual`` + ``carried_in``; ``amount`` settles."""

    customer_id: UUID
    achieved_amount: Decimal
    excluded_amount: Decimal
    achievement_ratio: Decimal | None
    tier_achievement: Decimal | None
    tier_rate: Decimal | None
    accrual: Decimal
    carried_in: Decimal
    computed: Decimal
    amount: Decimal
    adjusted: bool
    adjustment_reason: str | None
    adjusted_by: str | None
    explanation: list[str]
    credited: Decimal | None
    carried_out: Decimal | None
    transfer_id: UUID | None
    version: int


class AccrualRunOut(msgspec.Struct, kw_only=True):
    id: UUID
    rebate_policy_id: UUID
    period_start: date
    period_end: date
    state: State
    allowed_actions: list[Action]
    version: int
    basis: str
    form: str
    total: Decimal
    customers: int
    error: str | None
    requested_by: str
    requested_at: datetime
    computed_at: datetime | None
    settled_by: str | None
    settled_at: datetime | None
    lines: list[AccrualLineOut] | None = None


class AccrualRunPage(msgspec.Struct, kw_only=True):
    items: list[AccrualRunOut]
    next_cursor: str | None
