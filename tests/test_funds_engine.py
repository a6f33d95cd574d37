"""The payment sequence engine (pools.payment): the DOMAIN §4, §5 and §6 examples, and properties
(never beyond a balance or a cap, exact to the cent, deterministic)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnicloud.policies.offset import OffsetLine, line_cap
from omnicloud.policies.rebates import ProductScope, usable
from omnicloud.pools.payment import Account, PayableLine, PaymentPlan, PaymentRequest, plan_payment

TODAY = date(2024, 5, 1)
Z = D("0.00")


def _line(line_id: str, amount: str, ratio: str = "0", **kw: object) -> PayableLine:
    cap = line_cap(OffsetLine(line_id=line_id, amount=D(amount), ratio=D(ratio)))
    return PayableLine(line_id=line_id, amount=D(amount), fee_cap=cap, **kw)  # type: ignore[arg-type]


def _draws(plan: PaymentPlan) -> list[tuple[str, str, D]]:
    return [(d.step, d.account_id, d.amount) for d in plan.draws]


def test_domain_5_expense_offset_earliest_expiry_first():
    """Lines A 10,000 at 20 %, B 5,000 at 0 %, C 5,000 at 10 % → cap 2,500; P1 1,500 (06-30) and
    P2 3,000 (12-31) → 1,500 from P1, 1,000 from P2; payable 17,500."""
    lines = [_line("A", "10000", "0.2"), _line("B", "5000", "0"), _line("C", "5000", "0.1")]
    accounts = [
        Account(account_id="P2", kind="fee", available=D(3000), expires_on=date(2024, 12, 31)),
        Account(account_id="P1", kind="fee", available=D(1500), expires_on=date(2024, 6, 30)),
        Account(account_id="CASH", kind="cash", available=D(100000)),
    ]
    plan = plan_payment(PaymentRequest(lines=lines, today=TODAY), accounts)
    assert plan.fee_cap == 2500 and plan.fee == 2500
    assert _draws(plan) == [("fee", "P1", 1500), ("fee", "P2", 1000), ("cash", "CASH", 17500)]
    assert plan.total - plan.fee == D(17500) == plan.cash
    assert {ln.line_id: ln.fee for ln in plan.lines} == {"A": 2000, "B": 0, "C": 500}
    assert plan.covered and plan.credit == 0


def test_domain_4_rebate_capped_by_the_usage_ratio():
    """Balance 50,000, order 100,000, cap 10 % → 10,000 usable."""
    cap = usable(D(50000), D(100000), D("0.1"), D(100000))
    request = PaymentRequest(lines=[_line("A", "100000")], today=TODAY, rebate_cap=cap, use_credit=True)
    plan = plan_payment(request, [Account(account_id="R", kind="rebate", available=D(50000))])
    assert plan.rebate == D(10000) and _draws(plan) == [("rebate", "R", 10000)]
    assert plan.credit == D(90000) and plan.covered


def test_domain_6_the_whole_sequence_and_the_remainder_on_credit():
    """expense → rebate → special funds in scope → cash → credit, each min(remaining, available, cap)."""
    lines = [
        _line("L1", "6000", "0.1", sku_id="tea", brand_id="BR"),
        _line("L2", "4000", "0.1", sku_id="rice", brand_id="XX"),
    ]
    accounts = [
        Account(account_id="F", kind="fee", available=D(300), expires_on=date(2024, 9, 30)),
        Account(account_id="R", kind="rebate", available=D(5000)),
        Account(
            account_id="S", kind="special", available=D(9000), scope=ProductScope(brand_ids=frozenset({"BR"}))
        ),
        Account(account_id="C", kind="cash", available=D(1000)),
        Account(account_id="DEP", kind="cash", available=D(0)),
    ]
    request = PaymentRequest(lines=lines, today=TODAY, rebate_cap=D(1000), use_credit=True)
    plan = plan_payment(request, accounts)
    assert (plan.fee, plan.rebate, plan.special, plan.cash, plan.credit) == (300, 1000, 5220, 1000, 2480)
    by_line = {ln.line_id: ln for ln in plan.lines}
    # L1: fee 180 (600 of the 1,000 caps), rebate 600 (5,820 of the 9,700 still owed), special the rest
    assert (by_line["L1"].fee, by_line["L1"].rebate, by_line["L1"].special) == (180, 600, 5220)
    assert by_line["L2"].special == 0  # outside the special account's scope
    assert all(
        ln.fee + ln.rebate + ln.special + ln.cash + ln.credit + ln.shortfall == ln.amount for ln in plan.lines
    )
    without_credit = plan_payment(PaymentRequest(lines=lines, today=TODAY, rebate_cap=D(1000)), accounts)
    assert without_credit.shortfall == D(2480) and not without_credit.covered


def test_buyer_choices_and_validity_windows():
    lines = [_line("A", "1000", "0.5")]
    accounts = [
        Account(account_id="OLD", kind="fee", available=D(900), expires_on=TODAY - timedelta(days=1)),
        Account(
            account_id="LATER",
            kind="fee",
            available=D(900),
            valid_from=TODAY + timedelta(days=1),
            expires_on=TODAY + timedelta(days=9),
        ),
        Account(account_id="OK", kind="fee", available=D(900), expires_on=TODAY),
        Account(account_id="C", kind="cash", available=D(5000)),
    ]
    plan = plan_payment(PaymentRequest(lines=lines, today=TODAY, use_fees=D(120)), accounts)
    assert _draws(plan) == [("fee", "OK", 120), ("cash", "C", 880)]
    none = plan_payment(PaymentRequest(lines=lines, today=TODAY, use_fees=Z, use_cash=False), accounts)
    assert none.draws == [] and none.shortfall == D(1000)
    header = plan_payment(PaymentRequest(lines=lines, today=TODAY, fee_header_cap=D(50)), accounts)
    assert header.fee == D(50) and header.fee_cap == D(50)


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        plan_payment(PaymentRequest(lines=[_line("A", "1"), _line("A", "2")], today=TODAY), [])
    with pytest.raises(ValueError):
        plan_payment(PaymentRequest(lines=[PayableLine(line_id="A", amount=D("1.001"))], today=TODAY), [])
    with pytest.raises(ValueError):
        plan_payment(
            PaymentRequest(lines=[PayableLine(line_id="A", amount=D(5), fee_cap=D(6))], today=TODAY), []
        )


# --- properties --------------------------------------------------------------------------------

cents = st.integers(min_value=0, max_value=500_000).map(lambda n: D(n) / 100)
SKUS = ["s1", "s2", "s3"]


@st.composite
def lines_st(draw: st.DrawFn) -> list[PayableLine]:
    count = draw(st.integers(min_value=1, max_value=6))
    out = []
    for i in range(count):
        amount = draw(cents)
        ratio = draw(st.sampled_from(["0", "0.05", "0.1", "0.333", "1"]))
        cap = line_cap(OffsetLine(line_id=f"L{i}", amount=amount, ratio=D(ratio)))
        out.append(
            PayableLine(
                line_id=f"L{i}",
                amount=amount,
                fee_cap=cap,
                rebate_eligible=draw(st.booleans()),
                sku_id=draw(st.sampled_from(SKUS)),
            )
        )
    return out


@st.composite
def accounts_st(draw: st.DrawFn) -> list[Account]:
    out = []
    for i in range(draw(st.integers(min_value=0, max_value=8))):
        kind = draw(st.sampled_from(["fee", "rebate", "special", "cash"]))
        expires = draw(st.one_of(st.none(), st.integers(-3, 30).map(lambda d: TODAY + timedelta(days=d))))
        if kind == "fee" and expires is None:
            expires = TODAY + timedelta(days=5)
        scope = None
        if kind == "special":
            scope = ProductScope(sku_ids=frozenset(draw(st.sets(st.sampled_from(SKUS), min_size=1))))
        out.append(
            Account(account_id=f"A{i}", kind=kind, available=draw(cents), expires_on=expires, scope=scope)
        )
    return out


@st.composite
def requests_st(draw: st.DrawFn) -> PaymentRequest:
    return PaymentRequest(
        lines=draw(lines_st()),
        today=TODAY,
        rebate_cap=draw(cents),
        fee_header_cap=draw(st.one_of(st.none(), cents)),
        use_fees=draw(st.one_of(st.none(), cents)),
        use_rebate=draw(st.one_of(st.none(), cents)),
        use_special=draw(st.booleans()),
        use_cash=draw(st.booleans()),
        use_credit=draw(st.booleans()),
    )


@settings(max_examples=300, deadline=None)
@given(request=requests_st(), accounts=accounts_st())
def test_plan_never_exceeds_balances_or_caps_and_sums_exactly(request, accounts):
    plan = plan_payment(request, accounts)
    by_id = {a.account_id: a for a in accounts}
    drawn: dict[str, D] = {}
    for d in plan.draws:
        account = by_id[d.account_id]
        assert d.amount > 0 and d.step == account.kind
        assert account.usable_on(TODAY)
        drawn[d.account_id] = drawn.get(d.account_id, Z) + d.amount
    assert all(drawn[a] <= by_id[a].available for a in drawn)
    for step in ("fee", "rebate", "special", "cash"):
        assert sum((d.amount for d in plan.draws if d.step == step), Z) == getattr(plan, step)
        assert sum((getattr(ln, step) for ln in plan.lines), Z) == getattr(plan, step)
    assert plan.fee <= sum((ln.fee_cap for ln in request.lines), Z)
    for cap in (request.fee_header_cap, request.use_fees):
        assert cap is None or plan.fee <= cap
    assert plan.rebate <= request.rebate_cap and (
        request.use_rebate is None or plan.rebate <= request.use_rebate
    )
    originals = {ln.line_id: ln for ln in request.lines}
    for ln in plan.lines:
        parts = (ln.fee, ln.rebate, ln.special, ln.cash, ln.credit, ln.shortfall)
        assert all(p >= 0 for p in parts) and sum(parts, Z) == ln.amount
        assert ln.fee <= originals[ln.line_id].fee_cap
        assert ln.rebate == 0 or originals[ln.line_id].rebate_eligible
        if ln.special > 0:
            assert any(
                a.kind == "special"
                and a.scope is not None
                and originals[ln.line_id].sku_id in a.scope.sku_ids
                for a in accounts
            )
    assert plan.fee + plan.rebate + plan.special + plan.cash + plan.credit + plan.shortfall == plan.total
    cash = sum((a.available for a in accounts if a.kind == "cash" and a.usable_on(TODAY)), Z)
    if request.use_credit or (request.use_cash and cash >= plan.total):
        assert plan.shortfall == 0  # funds suffice: the plan pays exactly the payable amount
    if plan.shortfall > 0 and request.use_cash:
        assert plan.cash == cash  # a shortfall only once cash is exhausted
    assert not (request.use_credit and plan.shortfall) and (request.use_credit or plan.credit == 0)


@settings(max_examples=150, deadline=None)
@given(request=requests_st(), accounts=accounts_st(), data=st.data())
def test_plan_is_deterministic_whatever_the_input_order(request, accounts, data):
    shuffled_lines = data.draw(st.permutations(request.lines))
    shuffled_accounts = data.draw(st.permutations(accounts))
    again = plan_payment(
        PaymentRequest(
            **{**{f: getattr(request, f) for f in request.__struct_fields__}, "lines": shuffled_lines}
        ),
        shuffled_accounts,
    )
    assert again == plan_payment(request, accounts)
