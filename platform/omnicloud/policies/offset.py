"""Expense pool (费用池) offset planning and activity budget checks; pure functions."""

from datetime import date
from decimal import ROUND_DOWN, Decimal
from typing import Literal

import msgspec

from omnicloud.core.money import CENT, round_money
from omnicloud.policies.allocation import allocate

LineKind = Literal["goods", "gift", "labour", "discount"]
BudgetControlMode = Literal["rigid", "warn", "tolerance"]

ZERO = Decimal("0.00")


class OffsetLine(msgspec.Struct, frozen=True, kw_only=True):
    """An order line; at most ``amount × ratio`` of it may be paid from fees."""

    line_id: str
    amount: Decimal
    ratio: Decimal
    kind: LineKind = "goods"


class FeeAccount(msgspec.Struct, frozen=True, kw_only=True):
    account_id: str
    balance: Decimal
    expires_on: date
    valid_from: date | None = None


class AccountDraw(msgspec.Struct, frozen=True, kw_only=True):
    account_id: str
    amount: Decimal


class LineOffset(msgspec.Struct, frozen=True, kw_only=True):
    line_id: str
    cap: Decimal
    offset: Decimal
    payable: Decimal


class OffsetPlan(msgspec.Struct, frozen=True, kw_only=True):
    line_cap_total: Decimal
    balance_total: Decimal
    header_cap: Decimal | None
    total: Decimal
    lines: list[LineOffset]
    draws: list[AccountDraw]
    payable: Decimal


def line_cap(line: OffsetLine) -> Decimal:
    """Gift, labour, discount and zero-amount lines carry no fees; ratio 0 means none."""
    if line.kind != "goods" or line.amount <= 0 or line.ratio <= 0:
        return ZERO
    return (line.amount * line.ratio).quantize(CENT, rounding=ROUND_DOWN)


def plan_offset(
    lines: list[OffsetLine],
    accounts: list[FeeAccount],
    header_cap: Decimal | None = None,
    *,
    today: date,
) -> OffsetPlan:
    """Order cap = min(Σ line caps, Σ valid balances, header cap); earliest-expiry accounts are
    drawn first and the offset is spread over lines in proportion to their caps."""
    for line in lines:
        if line.amount < 0 or not (0 <= line.ratio <= 1):
            raise ValueError(f"line {line.line_id}: amount must be ≥ 0 and ratio between 0 and 1")
    if header_cap is not None and header_cap < 0:
        raise ValueError("header_cap must not be negative")
    ordered = sorted(lines, key=lambda ln: ln.line_id)
    caps = [line_cap(ln) for ln in ordered]
    valid = sorted(
        (
            a
            for a in accounts
            if a.balance > 0 and a.expires_on >= today and (a.valid_from is None or a.valid_from <= today)
        ),
        key=lambda a: (a.expires_on, a.account_id),
    )
    cap_total = sum(caps, ZERO)
    balance_total = sum((a.balance for a in valid), ZERO)
    limits = [cap_total, balance_total] + ([header_cap] if header_cap is not None else [])
    total = min(limits).quantize(CENT, rounding=ROUND_DOWN)
    draws: list[AccountDraw] = []
    remaining = total
    for account in valid:
        if remaining <= 0:
            break
        take = min(account.balance, remaining)
        draws.append(AccountDraw(account_id=account.account_id, amount=round_money(take)))
        remaining -= take
    shares = allocate(total, caps) if total > 0 else [ZERO for _ in caps]
    plan_lines = [
        LineOffset(line_id=ln.line_id, cap=cap, offset=share, payable=round_money(ln.amount - share))
        for ln, cap, share in zip(ordered, caps, shares, strict=True)
    ]
    gross = sum((ln.amount for ln in ordered), ZERO)
    return OffsetPlan(
        line_cap_total=cap_total,
        balance_total=balance_total,
        header_cap=header_cap,
        total=total,
        lines=plan_lines,
        draws=draws,
        payable=round_money(gross - total),
    )


class BudgetNode(msgspec.Struct, frozen=True, kw_only=True):
    """One org level's budget for a subject and period."""

    node_id: str
    amount: Decimal
    preoccupied: Decimal = ZERO
    used: Decimal = ZERO

    @property
    def available(self) -> Decimal:
        return self.amount - self.preoccupied - self.used


class BudgetControl(msgspec.Struct, frozen=True, kw_only=True):
    """``rigid`` blocks any overrun, ``warn`` lets it through with a warning, ``tolerance`` allows
    ``tolerance_ratio`` of the budget beyond it (e.g. 0.05 = +5 %)."""

    mode: BudgetControlMode = "rigid"
    tolerance_ratio: Decimal = ZERO


class BudgetCheck(msgspec.Struct, frozen=True, kw_only=True):
    outcome: Literal["pass", "warn", "block"]
    nodes: list[BudgetNode]
    shortfalls: dict[str, Decimal]


def preoccupy(budget_path_nodes: list[BudgetNode], amount: Decimal, control: BudgetControl) -> BudgetCheck:
    """Pre-occupy ``amount`` at every level of the org path (root first), so no child exceeds its
    parent. On ``block`` the returned nodes are unchanged."""
    if amount <= 0:
        raise ValueError("amount must be greater than zero")
    if control.tolerance_ratio < 0:
        raise ValueError("tolerance_ratio must not be negative")
    shortfalls: dict[str, Decimal] = {}
    blocked = False
    for node in budget_path_nodes:
        over = amount - node.available
        if over <= 0:
            continue
        shortfalls[node.node_id] = round_money(over)
        allowance = node.amount * control.tolerance_ratio if control.mode == "tolerance" else ZERO
        if control.mode == "rigid" or (control.mode == "tolerance" and over > allowance):
            blocked = True
    if blocked:
        return BudgetCheck(outcome="block", nodes=list(budget_path_nodes), shortfalls=shortfalls)
    nodes = [msgspec.structs.replace(n, preoccupied=n.preoccupied + amount) for n in budget_path_nodes]
    outcome: Literal["pass", "warn"] = "warn" if shortfalls and control.mode == "warn" else "pass"
    return BudgetCheck(outcome=outcome, nodes=nodes, shortfalls=shortfalls)


def release(budget_path_nodes: list[BudgetNode], amount: Decimal) -> list[BudgetNode]:
    """Rejection or closing of an application gives its pre-occupied amount back at every level."""
    if amount <= 0 or any(n.preoccupied < amount for n in budget_path_nodes):
        raise ValueError("release amount must be positive and not exceed what is pre-occupied")
    return [msgspec.structs.replace(n, preoccupied=n.preoccupied - amount) for n in budget_path_nodes]


def settle(budget_path_nodes: list[BudgetNode], preoccupied: Decimal, settled: Decimal) -> list[BudgetNode]:
    """Settlement (核销): the settled amount moves to used and the rest of the application is released."""
    if settled < 0 or settled > preoccupied:
        raise ValueError("settled amount must lie between 0 and the pre-occupied amount")
    if any(n.preoccupied < preoccupied for n in budget_path_nodes):
        raise ValueError("cannot settle more than is pre-occupied")
    return [
        msgspec.structs.replace(n, preoccupied=n.preoccupied - preoccupied, used=n.used + settled)
        for n in budget_path_nodes
    ]
