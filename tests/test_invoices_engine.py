"""The invoice pool's pure parts: the request state machine, every (status, action) pair, and the
arithmetic (``pools.invoices.engine``) with hypothesis properties: net + tax = amount at any rate,
the requests of a line add up to its due however they are split, withdrawn and requested again,
and an order's credit part is invoiced exactly once it is invoiced in full."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnicloud.core.money import round_money
from omnicloud.pools.invoices import engine
from omnicloud.pools.invoices import states as sm
from omnicloud.pools.sales.service import share

EXPECTED = {
    "requested": {"approve": "approved", "reject": "rejected", "cancel": "cancelled"},
    "approved": {"issue": "issued", "reject": "rejected"},
    "issued": {},
    "rejected": {},
    "cancelled": {},
}

cents = st.integers(min_value=0, max_value=10**11).map(lambda c: D(c) / 100)
rates = st.integers(min_value=0, max_value=9999).map(lambda r: D(r) / 10000)
units = st.integers(min_value=1, max_value=10_000).map(lambda q: D(q) / 100)


def test_the_table_names_every_status():
    assert set(EXPECTED) == set(sm.STATUSES)


@pytest.mark.parametrize("status", sm.STATUSES)
@pytest.mark.parametrize("action", sm.ACTIONS)
def test_every_pair(status, action):
    after = EXPECTED[status].get(action)
    if after is None:
        with pytest.raises(sm.IllegalTransition) as caught:
            sm.transition(status, action)
        assert (caught.value.status, caught.value.action) == (status, action)
        assert status in str(caught.value)
    else:
        assert sm.transition(status, action) == after


@pytest.mark.parametrize("status", sm.STATUSES)
def test_allowed_lists_exactly_the_legal_actions(status):
    assert sm.allowed(status) == [a for a in sm.ACTIONS if a in EXPECTED[status]]


def test_final_statuses_allow_nothing_and_live_ones_hold_quantities():
    assert all(sm.allowed(s) == [] for s in sm.FINAL)
    assert sm.ACTIVE == {"requested", "approved", "issued"}
    assert sm.START == "requested"


# --- tax --------------------------------------------------------------------------------------


def test_thirteen_percent_of_an_invoice():
    assert engine.tax_split(D("113.00"), D("0.13")) == (D("100.00"), D("13.00"))
    assert engine.tax_split(D("60.00"), D("0.13")) == (D("53.10"), D("6.90"))
    assert engine.tax_split(D("60.00"), D("0")) == (D("60.00"), D("0.00"))
    with pytest.raises(ValueError):
        engine.tax_split(D("1.00"), D("-0.01"))


@given(amount=cents, rate=rates)
def test_net_plus_tax_is_the_amount(amount, rate):
    net, tax = engine.tax_split(amount, rate)
    assert net + tax == amount
    assert tax == round_money(amount * rate / (1 + rate))
    assert D(0) <= tax <= amount and net >= 0
    assert tax == tax.quantize(D("0.01")) and net == net.quantize(D("0.01"))


# --- line amounts ----------------------------------------------------------------------------


@given(total=cents, parts=st.lists(units, min_size=1, max_size=8))
def test_without_withdrawals_a_line_amount_is_its_cumulative_share(total, parts):
    whole = sum(parts, D(0))
    done, taken = D(0), D("0.00")
    for now in parts:
        amount = engine.line_amount(total, whole, done, now, taken)
        assert amount == share(total, done, now, whole)
        done, taken = done + now, taken + amount
    assert taken == total


@given(
    total=cents,
    whole=st.integers(min_value=1, max_value=50).map(D),
    moves=st.lists(st.tuples(st.booleans(), st.integers(min_value=1, max_value=50)), max_size=30),
)
def test_requests_of_a_line_add_up_to_its_due_whatever_is_withdrawn(total, whole, moves):
    """A live request set is built by requesting (True) or withdrawing (False: the oldest live
    request) in any order; requesting what is left at the end makes the live amounts add up to
    the line's due exactly, and no amount is ever negative."""
    live: list[tuple[D, D]] = []  # (quantity, amount)
    for request, size in moves:
        done = sum((q for q, _ in live), D(0))
        if request:
            now = min(D(size), whole - done)
            if now <= 0:
                continue
            amount = engine.line_amount(total, whole, done, now, sum((a for _, a in live), D("0.00")))
            assert D(0) <= amount <= total
            live.append((now, amount))
        elif live:
            live.pop(0)
    done = sum((q for q, _ in live), D(0))
    if done < whole:
        taken = sum((a for _, a in live), D("0.00"))
        live.append((whole - done, engine.line_amount(total, whole, done, whole - done, taken)))
    assert sum((a for _, a in live), D("0.00")) == total
    assert all(a >= 0 for _, a in live)


# --- credit parts ----------------------------------------------------------------------------


@given(
    due=cents, ratio=st.integers(min_value=0, max_value=100), cuts=st.lists(st.integers(1, 99), max_size=6)
)
def test_an_order_invoiced_in_full_has_exactly_its_credit_part_invoiced(due, ratio, cuts):
    credit = round_money(due * ratio / 100)
    points = sorted({round_money(due * c / 100) for c in cuts} | {due})
    invoiced, parts = D("0.00"), []
    for point in points:
        now = point - invoiced
        part = engine.credit_part(credit, due, invoiced, now)
        assert D(0) <= part <= now or due == 0
        parts.append(part)
        invoiced = point
    assert sum(parts, D("0.00")) == (credit if due > 0 else 0)


def test_nothing_is_on_credit_without_credit_or_due():
    assert engine.credit_part(D("0.00"), D("100.00"), D("0"), D("50.00")) == 0
    assert engine.credit_part(D("10.00"), D("0.00"), D("0"), D("0.00")) == 0
    # DOMAIN §3-sized example: an order of 150 with 50 on credit, invoiced 40 then 110.
    assert engine.credit_part(D("50.00"), D("150.00"), D("0.00"), D("40.00")) == D("13.33")
    assert engine.credit_part(D("50.00"), D("150.00"), D("40.00"), D("110.00")) == D("36.67")
