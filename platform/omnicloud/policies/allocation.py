"""Split an amount over lines in proportion to weights, exactly to the cent (largest remainder)."""

from decimal import Decimal

from omnicloud.core.money import CENT


def _cents(value: Decimal) -> int:
    return int((value / CENT).to_integral_value())


def allocate(total: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """Shares of ``total`` proportional to ``weights``, summing exactly to ``total``.

    Each share is floored to the cent, then the leftover cents go one by one to the largest
    remainders (ties: larger weight, then lower index, so equal lines are interchangeable).
    A share never exceeds its weight when ``total`` ≤ Σweights, which makes this safe for
    spreading a discount over payable amounts without pushing a line below zero.
    """
    if total < 0 or total != total.quantize(CENT):
        raise ValueError("total must be a non-negative whole number of cents")
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    total_cents = _cents(total)
    if total_cents == 0:
        return [Decimal("0.00") for _ in weights]
    weight_sum = sum(weights, Decimal(0))
    if weight_sum == 0:
        raise ValueError("cannot allocate a non-zero total over zero weights")
    # Scale weights to integers so remainders compare exactly.
    exponent = min([w.as_tuple().exponent for w in weights if w != 0] + [0])
    scale = Decimal(10) ** -int(exponent)
    int_weights = [int(w * scale) for w in weights]
    int_sum = sum(int_weights)
    shares: list[int] = []
    remainders: list[int] = []
    for w in int_weights:
        q, r = divmod(total_cents * w, int_sum)
        shares.append(q)
        remainders.append(r)
    leftover = total_cents - sum(shares)
    limit = [int(w / CENT) if total <= weight_sum else None for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], -int_weights[i], i))
    while leftover > 0:
        given = False
        for i in order:
            if leftover == 0:
                break
            cap = limit[i]
            if int_weights[i] == 0 or (cap is not None and shares[i] + 1 > cap):
                continue
            shares[i] += 1
            leftover -= 1
            given = True
        if not given:
            raise ValueError("weights too small to carry the total to the cent")
    return [Decimal(s) * CENT for s in shares]
