"""Credit control (信用控制): exposure against the credit line, and overdue receivables.

Pure functions over msgspec Structs. Exposure = open orders + shipped-not-invoiced + receivables
− unapplied prepayments; a document passes the limit check when exposure + document ≤ limit + the
temporary lines still valid today. A receivable is overdue when due date + grace days < today.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Literal

import msgspec

ZERO = Decimal(0)
CreditAction = Literal["pass", "warn", "needs_approval", "block"]
CheckPoint = Literal["submit", "approval", "shipment"]
SEVERITY: dict[CreditAction, int] = {"pass": 0, "warn": 1, "needs_approval": 2, "block": 3}


def _not_negative(name: str, value: Decimal) -> None:
    if value < 0:
        raise ValueError(f"{name} must not be negative")


class TemporaryLine(msgspec.Struct, frozen=True, kw_only=True):
    """Extra credit (临时额度) valid up to and including `expires_on`."""

    amount: Decimal
    expires_on: date

    def __post_init__(self) -> None:
        _not_negative("amount", self.amount)


class CreditProfile(msgspec.Struct, frozen=True, kw_only=True):
    limit: Decimal
    temporary_lines: tuple[TemporaryLine, ...] = ()

    def __post_init__(self) -> None:
        _not_negative("limit", self.limit)

    def credit_line(self, today: date) -> Decimal:
        """The limit plus the temporary lines that have not expired."""
        extra = sum((t.amount for t in self.temporary_lines if today <= t.expires_on), ZERO)
        return self.limit + extra


class CreditRule(msgspec.Struct, frozen=True, kw_only=True):
    """What to do at one check point when the limit is exceeded and when receivables are overdue."""

    check_point: CheckPoint
    over_limit: CreditAction = "pass"
    overdue: CreditAction = "pass"


class ExposureInputs(msgspec.Struct, frozen=True, kw_only=True):
    open_orders: Decimal = ZERO
    shipped_not_invoiced: Decimal = ZERO
    receivables: Decimal = ZERO
    unapplied_prepayments: Decimal = ZERO

    def __add__(self, other: ExposureInputs) -> ExposureInputs:
        return ExposureInputs(
            open_orders=self.open_orders + other.open_orders,
            shipped_not_invoiced=self.shipped_not_invoiced + other.shipped_not_invoiced,
            receivables=self.receivables + other.receivables,
            unapplied_prepayments=self.unapplied_prepayments + other.unapplied_prepayments,
        )


class Receivable(msgspec.Struct, frozen=True, kw_only=True):
    """An open receivable (its unpaid amount) with its due date and grace days (宽限期)."""

    id: str
    amount: Decimal
    due_date: date
    grace_days: int = 0

    def __post_init__(self) -> None:
        _not_negative("amount", self.amount)
        if self.grace_days < 0:
            raise ValueError("grace_days must not be negative")

    def overdue_on(self, today: date) -> bool:
        return self.amount > 0 and self.due_date + timedelta(days=self.grace_days) < today


class CreditVerdict(msgspec.Struct, frozen=True, kw_only=True):
    action: CreditAction
    exposure: Decimal
    credit_line: Decimal
    available: Decimal
    over_by: Decimal
    overdue: tuple[Receivable, ...]
    reasons: tuple[str, ...]


def exposure(inputs: ExposureInputs) -> Decimal:
    """Credit exposure (信用占用)."""
    return (
        inputs.open_orders + inputs.shipped_not_invoiced + inputs.receivables - inputs.unapplied_prepayments
    )


def _worst(actions: Iterable[CreditAction]) -> CreditAction:
    return max(actions, key=SEVERITY.__getitem__, default="pass")


def check_credit(
    profile: CreditProfile,
    rules: Sequence[CreditRule],
    exposure_inputs: ExposureInputs,
    document_amount: Decimal,
    check_point: CheckPoint,
    today: date,
    receivables: Iterable[Receivable] = (),
) -> CreditVerdict:
    """Check one document at one check point; the most severe applicable action wins.

    A check point without a rule passes. Over-limit and overdue are both reported in `reasons`
    whatever the action, so a warning can explain itself.
    """
    _not_negative("document_amount", document_amount)
    current = exposure(exposure_inputs)
    line = profile.credit_line(today)
    over_by = max(ZERO, current + document_amount - line)
    overdue = tuple(sorted((r for r in receivables if r.overdue_on(today)), key=lambda r: (r.due_date, r.id)))
    reasons: list[str] = []
    actions: list[CreditAction] = []
    rule = next((r for r in rules if r.check_point == check_point), None)
    if over_by > 0:
        reasons.append(f"over the credit line by {over_by}")
        if rule is not None:
            actions.append(rule.over_limit)
    if overdue:
        reasons.append(
            f"{len(overdue)} receivable(s) overdue, {sum((r.amount for r in overdue), ZERO)} in all"
        )
        if rule is not None:
            actions.append(rule.overdue)
    return CreditVerdict(
        action=_worst(actions),
        exposure=current,
        credit_line=line,
        available=line - current,
        over_by=over_by,
        overdue=overdue,
        reasons=tuple(reasons),
    )
