"""The payment sequence (支付顺序, DOMAIN §6): which accounts pay how much of an order. Pure.

Given the order's payable lines (each with its expense cap from ``policies.offset``), the rebate
usable cap (``policies.rebates``), the customer's accounts and what the buyer asked to use, the
plan takes, step by step:

1. expense (费用, §5): at most min(Σ line caps, header cap, requested, Σ valid balances), drawn
   from the earliest-expiring fee account first and spread over the lines in proportion to their
   caps;
2. rebate (返利, §4): at most min(rebate cap, requested, Σ valid balances, what the eligible lines
   still owe), drawn earliest expiry first, spread over the eligible lines in proportion to what
   they still owe;
3. special funds (专项资金): each special account, earliest expiry first, pays the lines in its
   product scope, in proportion to what they still owe;
4. cash (现金/预付款): whatever is still owed, up to the cash balance;
5. credit (信用): the remainder, when the buyer may use credit; otherwise it is ``shortfall``.

Every step takes min(remaining, available, cap); ``available`` is balance − held. Accounts that are
not yet valid or already expired on ``today`` pay nothing; deposit (保证金) accounts never pay.
Amounts are whole cents. The plan is deterministic: the order of the lines and accounts given
does not change it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Literal

import msgspec

from omnicloud.core.money import CENT
from omnicloud.policies.allocation import allocate
from omnicloud.policies.rebates import ProductScope

Step = Literal["fee", "rebate", "special", "cash"]
STEPS: tuple[Step, ...] = ("fee", "rebate", "special", "cash")
ZERO = Decimal("0.00")
NEVER = date.max


class PayableLine(msgspec.Struct, frozen=True, kw_only=True):
    """One order line as payment sees it: what it costs after promotions (``amount``), how much of
    it fees may pay (``fee_cap``, from ``policies.offset.line_cap``), whether rebates may pay it,
    and the product facts special funds are scoped by (``category_ids``: own category first, then
    its ancestors)."""

    line_id: str
    amount: Decimal
    fee_cap: Decimal = ZERO
    rebate_eligible: bool = True
    sku_id: str = ""
    category_ids: tuple[str, ...] = ()
    brand_id: str | None = None


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """A customer account that may pay orders; ``available`` is balance − held."""

    account_id: str
    kind: Literal["fee", "rebate", "special", "cash"]
    available: Decimal
    valid_from: date | None = None
    expires_on: date | None = None
    scope: ProductScope | None = None  # special funds only

    def usable_on(self, day: date) -> bool:
        return (
            self.available > 0
            and (self.valid_from is None or self.valid_from <= day)
            and (self.expires_on is None or day <= self.expires_on)
        )


class PaymentRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What to pay and what the buyer asked to use. ``use_fees`` and ``use_rebate`` cap those steps
    (None: as much as the rules allow; 0: none). ``rebate_cap`` is the order's rebate usable cap
    (order amount × usage cap ratio); ``fee_header_cap`` an optional order-level expense cap.
    With ``use_credit`` the remainder goes on credit, otherwise it is reported as shortfall."""

    lines: list[PayableLine]
    today: date
    rebate_cap: Decimal = ZERO
    fee_header_cap: Decimal | None = None
    use_fees: Decimal | None = None
    use_rebate: Decimal | None = None
    use_special: bool = True
    use_cash: bool = True
    use_credit: bool = False


class Draw(msgspec.Struct, frozen=True, kw_only=True):
    """One account's part of the payment: what is frozen on it."""

    step: Step
    account_id: str
    amount: Decimal


class LinePayment(msgspec.Struct, frozen=True, kw_only=True):
    """How one line is paid; the parts sum to ``amount``."""

    line_id: str
    amount: Decimal
    fee: Decimal
    rebate: Decimal
    special: Decimal
    cash: Decimal
    credit: Decimal
    shortfall: Decimal


class PaymentPlan(msgspec.Struct, frozen=True, kw_only=True):
    """The freezes to place (``draws``, in sequence), the amount left on credit and any shortfall;
    ``fee_cap`` and ``rebate_cap`` are the caps the expense and rebate steps worked under."""

    total: Decimal
    fee: Decimal
    rebate: Decimal
    special: Decimal
    cash: Decimal
    credit: Decimal
    shortfall: Decimal
    fee_cap: Decimal
    rebate_cap: Decimal
    draws: list[Draw]
    lines: list[LinePayment]

    @property
    def covered(self) -> bool:
        """True when accounts and credit pay the whole order."""
        return self.shortfall == 0


def _cents(name: str, value: Decimal) -> None:
    if not value.is_finite() or value < 0 or value != value.quantize(CENT):
        raise ValueError(f"{name} must be a non-negative whole number of cents")


def _validate(request: PaymentRequest, accounts: Sequence[Account]) -> None:
    seen: set[str] = set()
    for line in request.lines:
        if line.line_id in seen:
            raise ValueError(f"line {line.line_id} appears twice")
        seen.add(line.line_id)
        _cents(f"line {line.line_id} amount", line.amount)
        _cents(f"line {line.line_id} fee_cap", line.fee_cap)
        if line.fee_cap > line.amount:
            raise ValueError(f"line {line.line_id}: fee_cap exceeds the amount")
    for name in ("rebate_cap", "fee_header_cap", "use_fees", "use_rebate"):
        value = getattr(request, name)
        if value is not None:
            _cents(name, value)
    ids: set[str] = set()
    for account in accounts:
        if account.account_id in ids:
            raise ValueError(f"account {account.account_id} appears twice")
        ids.add(account.account_id)
        if not account.available.is_finite() or account.available != account.available.quantize(CENT):
            raise ValueError(f"account {account.account_id}: available must be whole cents")


def _by_expiry(account: Account) -> tuple[date, str]:
    return (account.expires_on or NEVER, account.account_id)


def _greedy(step: Step, accounts: list[Account], total: Decimal) -> list[Draw]:
    """Draw ``total`` from ``accounts`` in their order, each up to its available amount."""
    draws: list[Draw] = []
    remaining = total
    for account in accounts:
        if remaining <= 0:
            break
        take = min(account.available, remaining)
        draws.append(Draw(step=step, account_id=account.account_id, amount=take.quantize(CENT)))
        remaining -= take
    return draws


def _spread(amount: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """``amount`` over ``weights`` to the cent; never more than a weight when amount ≤ Σ weights."""
    if amount <= 0:
        return [ZERO for _ in weights]
    return allocate(amount, weights)


def _minimum(*caps: Decimal | None) -> Decimal:
    return min(c for c in caps if c is not None)


def plan_payment(request: PaymentRequest, accounts: Sequence[Account]) -> PaymentPlan:
    """The payment plan for ``request`` over ``accounts`` (see the module docstring)."""
    _validate(request, accounts)
    lines = sorted(request.lines, key=lambda ln: ln.line_id)
    owed = [ln.amount.quantize(CENT) for ln in lines]
    parts: dict[str, list[Decimal]] = {step: [ZERO for _ in lines] for step in STEPS}
    usable = sorted((a for a in accounts if a.usable_on(request.today)), key=_by_expiry)
    pools = {step: [a for a in usable if a.kind == step] for step in STEPS}
    draws: list[Draw] = []

    def pay(step: Step, amount: Decimal, weights: list[Decimal], pool: list[Account]) -> None:
        draws.extend(_greedy(step, pool, amount))
        for i, share in enumerate(_spread(amount, weights)):
            parts[step][i] += share
            owed[i] -= share

    # 1. expense, capped by the lines' offset caps (§5)
    fee_accounts = pools["fee"]
    fee_cap = _minimum(sum((ln.fee_cap for ln in lines), ZERO), request.fee_header_cap, request.use_fees)
    fee_total = min(fee_cap, sum((a.available for a in fee_accounts), ZERO))
    pay("fee", fee_total, [ln.fee_cap for ln in lines], fee_accounts)

    # 2. rebate, capped by the usage cap (§4) and by what eligible lines still owe
    rebate_accounts = pools["rebate"]
    eligible = [o if ln.rebate_eligible else ZERO for ln, o in zip(lines, owed, strict=True)]
    rebate_cap = _minimum(request.rebate_cap, request.use_rebate)
    rebate_total = min(rebate_cap, sum(eligible, ZERO), sum((a.available for a in rebate_accounts), ZERO))
    pay("rebate", rebate_total, eligible, rebate_accounts)

    # 3. special funds, each for the lines in its product scope
    if request.use_special:
        for account in pools["special"]:
            assert account.scope is not None, "a special account has a product scope"
            scope = account.scope
            weights = [
                o
                if scope.covers(sku_id=ln.sku_id, category_path=ln.category_ids, brand_id=ln.brand_id)
                else ZERO
                for ln, o in zip(lines, owed, strict=True)
            ]
            pay("special", min(account.available, sum(weights, ZERO)), weights, [account])

    # 4. cash, for whatever is still owed
    if request.use_cash:
        cash_accounts = pools["cash"]
        cash_total = min(sum(owed, ZERO), sum((a.available for a in cash_accounts), ZERO))
        pay("cash", cash_total, list(owed), cash_accounts)

    # 5. credit takes the remainder, or it is a shortfall
    credit = list(owed) if request.use_credit else [ZERO for _ in lines]
    shortfall = [ZERO for _ in lines] if request.use_credit else list(owed)
    total = {step: sum(parts[step], ZERO) for step in STEPS}
    return PaymentPlan(
        total=sum((ln.amount for ln in lines), ZERO).quantize(CENT),
        fee=total["fee"],
        rebate=total["rebate"],
        special=total["special"],
        cash=total["cash"],
        credit=sum(credit, ZERO),
        shortfall=sum(shortfall, ZERO),
        fee_cap=fee_cap,
        rebate_cap=rebate_cap,
        draws=draws,
        lines=[
            LinePayment(
                line_id=ln.line_id,
                amount=ln.amount.quantize(CENT),
                fee=parts["fee"][i],
                rebate=parts["rebate"][i],
                special=parts["special"][i],
                cash=parts["cash"][i],
                credit=credit[i],
                shortfall=shortfall[i],
            )
            for i, ln in enumerate(lines)
        ],
    )
