"""Sales facts split an order line's money between the documents that move it."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from omnicloud.pools.sales import service as sales


@given(
    total=st.decimals(min_value=0, max_value=10**9, places=2),
    parts=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=8),
)
def test_shares_of_a_line_add_up_to_the_line_however_it_is_split(total, parts):
    whole = Decimal(sum(parts))
    done, got = Decimal(0), []
    for p in parts:
        got.append(sales.share(total, done, Decimal(p), whole))
        done += p
    assert sum(got) == total
    assert all(g >= 0 for g in got)


def test_a_third_of_ten_cents_takes_the_remainder_last():
    ten = Decimal("0.10")
    three = Decimal(3)
    assert [sales.share(ten, Decimal(d), Decimal(1), three) for d in range(3)] == [
        Decimal("0.03"),
        Decimal("0.04"),
        Decimal("0.03"),
    ]
