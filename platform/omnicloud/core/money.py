"""Money is Decimal everywhere; this is the one rounding helper."""

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def round_money(value: Decimal, quantum: Decimal = CENT) -> Decimal:
    """Round half-up to the cent (or another quantum)."""
    return value.quantize(quantum, rounding=ROUND_HALF_UP)
