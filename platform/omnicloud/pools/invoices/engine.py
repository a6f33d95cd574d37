"""Invoice arithmetic (发票计算). Pure: no I/O.

Amounts on an invoice are tax-inclusive (含税). The tax is what the rate takes out of the
amount, ``round(amount × rate ÷ (1 + rate))``, and the net amount (不含税金额) is the rest, so
net + tax = amount to the cent whatever the rate.

Money is split by cumulative shares (``pools.sales.share``): the part of ``total`` that ``now``
more units carry after ``done`` of ``whole`` units. A request line takes its order line's
``due`` (payable − fee offset − rebate: the rebate is an on-invoice discount) for its quantity;
an issued invoice takes, order by order, the order's credit part (``credit_amount``) for the
amount of that order it invoices. Whatever the split, the parts of one total add up to it, and
the part that completes a total takes the cents rounding left behind.
"""

from __future__ import annotations

from decimal import Decimal

from omnicloud.core.money import round_money
from omnicloud.pools.sales.service import share

ZERO = Decimal("0.00")
DEFAULT_TAX_RATE = Decimal("0.13")


def tax_split(amount: Decimal, rate: Decimal) -> tuple[Decimal, Decimal]:
    """``(net, tax)`` of a tax-inclusive ``amount`` at ``rate`` (0.13 is 13%)."""
    if rate < 0:
        raise ValueError("a tax rate is not negative")
    tax = round_money(amount * rate / (1 + rate))
    return amount - tax, tax


def line_amount(total: Decimal, whole: Decimal, done: Decimal, now: Decimal, taken: Decimal) -> Decimal:
    """What ``now`` more units of a line of ``whole`` units and ``total`` money carry, when active
    requests already hold ``done`` units worth ``taken``.

    Without withdrawn requests ``taken`` is the cumulative share of ``done`` and this is exactly
    ``share(total, done, now, whole)``. A rejected or cancelled request frees its units but the
    remaining requests keep their amounts, so the cumulative share is measured against what
    they really hold: never below zero, never above what is left, and the request that takes
    the last unit takes all that is left."""
    left = total - taken
    if done + now >= whole:
        return left
    upto = share(total, ZERO, done + now, whole)
    return min(max(upto - taken, ZERO), left)


def credit_part(credit: Decimal, due: Decimal, invoiced: Decimal, now: Decimal) -> Decimal:
    """The part of ``now`` more invoiced money of an order (``due`` in all, ``credit`` of it on
    credit) that is on credit, after ``invoiced`` was invoiced before."""
    if due <= 0 or credit <= 0:
        return ZERO
    return share(credit, invoiced, now, due)
