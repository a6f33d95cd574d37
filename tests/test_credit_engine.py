"""The credit engine (DOMAIN §3): exposure, credit line, temporary lines, overdue and check points."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnicloud.policies.credit import (
    SEVERITY,
    CreditProfile,
    CreditRule,
    ExposureInputs,
    Receivable,
    TemporaryLine,
    check_credit,
    exposure,
)

D = Decimal
TODAY = date(2024, 4, 5)
RULES = (
    CreditRule(check_point="submit", over_limit="warn", overdue="warn"),
    CreditRule(check_point="approval", over_limit="needs_approval", overdue="needs_approval"),
    CreditRule(check_point="shipment", over_limit="block", overdue="block"),
)
EXAMPLE = ExposureInputs(receivables=D(60_000), open_orders=D(25_000))


def test_worked_example_over_limit_warns_at_submit_and_blocks_at_shipment() -> None:
    profile = CreditProfile(limit=D(100_000))
    submit = check_credit(profile, RULES, EXAMPLE, D(20_000), "submit", TODAY)
    assert submit.action == "warn"
    assert submit.over_by == D(5_000)
    assert submit.exposure == D(85_000)
    assert submit.available == D(15_000)
    assert submit.reasons == ("over the credit line by 5000",)
    assert check_credit(profile, RULES, EXAMPLE, D(20_000), "approval", TODAY).action == "needs_approval"
    assert check_credit(profile, RULES, EXAMPLE, D(20_000), "shipment", TODAY).action == "block"


def test_worked_example_temporary_line_makes_it_pass() -> None:
    profile = CreditProfile(
        limit=D(100_000), temporary_lines=(TemporaryLine(amount=D(10_000), expires_on=date(2024, 4, 30)),)
    )
    for point in ("submit", "approval", "shipment"):
        verdict = check_credit(profile, RULES, EXAMPLE, D(20_000), point, TODAY)
        assert (verdict.action, verdict.over_by, verdict.reasons) == ("pass", D(0), ())
        assert verdict.credit_line == D(110_000)


def test_expired_temporary_lines_do_not_count_and_expiry_day_is_included() -> None:
    def profile(expires_on: date) -> CreditProfile:
        return CreditProfile(
            limit=D(100_000), temporary_lines=(TemporaryLine(amount=D(10_000), expires_on=expires_on),)
        )

    expired = check_credit(profile(date(2024, 4, 4)), RULES, EXAMPLE, D(20_000), "shipment", TODAY)
    assert (expired.action, expired.credit_line, expired.over_by) == ("block", D(100_000), D(5_000))
    last_day = check_credit(profile(TODAY), RULES, EXAMPLE, D(20_000), "shipment", TODAY)
    assert last_day.action == "pass"


def test_worked_example_overdue_invoice_blocks() -> None:
    invoice = Receivable(id="inv-1", amount=D(8_000), due_date=date(2024, 3, 31), grace_days=3)
    profile = CreditProfile(limit=D(100_000))
    small = ExposureInputs(receivables=D(8_000))
    verdict = check_credit(profile, RULES, small, D(1_000), "shipment", TODAY, [invoice])
    assert verdict.action == "block"
    assert verdict.over_by == D(0)
    assert verdict.overdue == (invoice,)
    assert verdict.reasons == ("1 receivable(s) overdue, 8000 in all",)


@pytest.mark.parametrize(("day", "overdue"), [(date(2024, 4, 3), False), (date(2024, 4, 4), True)])
def test_grace_days_end_inclusive(day: date, overdue: bool) -> None:
    invoice = Receivable(id="inv-1", amount=D(8_000), due_date=date(2024, 3, 31), grace_days=3)
    assert invoice.overdue_on(day) is overdue


def test_paid_receivables_are_never_overdue() -> None:
    paid = Receivable(id="inv-2", amount=D(0), due_date=date(2020, 1, 1))
    verdict = check_credit(
        CreditProfile(limit=D(10)), RULES, ExposureInputs(), D(1), "shipment", TODAY, [paid]
    )
    assert (verdict.action, verdict.overdue) == ("pass", ())


def test_most_severe_action_wins_and_both_reasons_are_given() -> None:
    rules = (CreditRule(check_point="submit", over_limit="warn", overdue="block"),)
    invoice = Receivable(id="inv-1", amount=D(5), due_date=date(2024, 1, 1))
    verdict = check_credit(
        CreditProfile(limit=D(10)), rules, ExposureInputs(), D(20), "submit", TODAY, [invoice]
    )
    assert verdict.action == "block"
    assert len(verdict.reasons) == 2


def test_check_point_without_a_rule_passes_but_explains() -> None:
    rules = (CreditRule(check_point="shipment", over_limit="block"),)
    verdict = check_credit(CreditProfile(limit=D(100_000)), rules, EXAMPLE, D(20_000), "submit", TODAY)
    assert verdict.action == "pass"
    assert verdict.over_by == D(5_000)
    assert verdict.reasons


def test_prepayments_and_shipped_not_invoiced_enter_exposure() -> None:
    inputs = ExposureInputs(
        open_orders=D(10), shipped_not_invoiced=D(20), receivables=D(30), unapplied_prepayments=D(45)
    )
    assert exposure(inputs) == D(15)
    verdict = check_credit(CreditProfile(limit=D(100)), RULES, inputs, D(85), "shipment", TODAY)
    assert (verdict.action, verdict.available) == ("pass", D(85))
    assert (
        check_credit(CreditProfile(limit=D(100)), RULES, inputs, D(86), "shipment", TODAY).action == "block"
    )


def test_bad_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="limit"):
        CreditProfile(limit=D(-1))
    with pytest.raises(ValueError, match="amount"):
        TemporaryLine(amount=D(-1), expires_on=TODAY)
    with pytest.raises(ValueError, match="grace_days"):
        Receivable(id="r", amount=D(1), due_date=TODAY, grace_days=-1)
    with pytest.raises(ValueError, match="document_amount"):
        check_credit(CreditProfile(limit=D(1)), RULES, ExposureInputs(), D(-1), "submit", TODAY)


# --- properties ----------------------------------------------------------------------------------

money = st.decimals(min_value=0, max_value=1_000_000, places=2)
inputs = st.builds(
    ExposureInputs,
    open_orders=money,
    shipped_not_invoiced=money,
    receivables=money,
    unapplied_prepayments=money,
)
actions = st.sampled_from(["pass", "warn", "needs_approval", "block"])
points = st.sampled_from(["submit", "approval", "shipment"])
rules = st.lists(st.builds(CreditRule, check_point=points, over_limit=actions, overdue=actions), max_size=3)
receivables = st.lists(
    st.builds(
        Receivable,
        id=st.text(min_size=1, max_size=4),
        amount=money,
        due_date=st.dates(min_value=date(2024, 1, 1), max_value=date(2024, 6, 30)),
        grace_days=st.integers(min_value=0, max_value=10),
    ),
    max_size=3,
)


@settings(max_examples=200, deadline=None)
@given(
    limit=money,
    raise_by=money,
    exposure_inputs=inputs,
    document=money,
    rule_set=rules,
    point=points,
    open_items=receivables,
)
def test_raising_the_limit_never_makes_the_verdict_stricter(
    limit, raise_by, exposure_inputs, document, rule_set, point, open_items
) -> None:
    low = check_credit(
        CreditProfile(limit=limit), rule_set, exposure_inputs, document, point, TODAY, open_items
    )
    high = check_credit(
        CreditProfile(limit=limit + raise_by), rule_set, exposure_inputs, document, point, TODAY, open_items
    )
    assert SEVERITY[high.action] <= SEVERITY[low.action]
    assert high.over_by <= low.over_by
    if low.action == "pass":
        assert high.action == "pass"


@settings(max_examples=200, deadline=None)
@given(a=inputs, b=inputs)
def test_exposure_is_additive(a: ExposureInputs, b: ExposureInputs) -> None:
    assert exposure(a + b) == exposure(a) + exposure(b)
