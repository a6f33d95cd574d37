"""Rebate accrual/redemption (DOMAIN §4), expense pool offset and activity budgets (DOMAIN §5)."""

from datetime import date
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnicloud.policies.offset import (
    BudgetControl,
    BudgetNode,
    FeeAccount,
    OffsetLine,
    plan_offset,
    preoccupy,
    release,
    settle,
)
from omnicloud.policies.rebates import (
    CustomerScope,
    ProductScope,
    RebatePolicy,
    RebatePolicyError,
    RebateTier,
    accrue,
    breakdown,
    usable,
    validate_policy,
)

TIERS = [
    RebateTier(achievement=D("0.8"), rate=D("0.01")),
    RebateTier(achievement=D("1.0"), rate=D("0.02")),
    RebateTier(achievement=D("1.2"), rate=D("0.03")),
]


def policy(mode: str, **kw: object) -> RebatePolicy:
    return RebatePolicy(mode=mode, tiers=kw.pop("tiers", TIERS), target=D(1_000_000), **kw)  # type: ignore[arg-type]


# --- rebates ------------------------------------------------------------------------------------


def test_retroactive_applies_reached_rate_to_whole_amount() -> None:
    assert accrue(policy("retroactive"), D(700_000)) == D(0)
    assert accrue(policy("retroactive"), D(900_000)) == D(9_000)
    assert accrue(policy("retroactive"), D(1_100_000)) == D(22_000)
    assert accrue(policy("retroactive"), D(1_300_000)) == D(39_000)


def test_incremental_charges_each_slice_at_its_own_rate() -> None:
    assert accrue(policy("incremental"), D(700_000)) == D(0)
    assert accrue(policy("incremental"), D(900_000)) == D(1_000)
    # 800k–1M at 1 % + 1M–1.1M at 2 %
    assert accrue(policy("incremental"), D(1_100_000)) == D(4_000)
    # 2,000 + 4,000 + 100k at 3 %
    assert accrue(policy("incremental"), D(1_300_000)) == D(9_000)


def test_flat_cap_and_rounding() -> None:
    flat = RebatePolicy(mode="flat", tiers=[RebateTier(achievement=D(0), rate=D("0.015"))])
    assert accrue(flat, D("1234.57")) == D("18.52")
    assert accrue(policy("retroactive", cap=D(5_000)), D(1_100_000)) == D(5_000)


def test_policy_validation() -> None:
    with pytest.raises(RebatePolicyError, match="target"):
        validate_policy(RebatePolicy(mode="retroactive", tiers=TIERS, target=D(0)))
    with pytest.raises(RebatePolicyError, match="target"):
        accrue(RebatePolicy(mode="incremental", tiers=TIERS), D(10))
    with pytest.raises(RebatePolicyError, match="tiers"):
        validate_policy(policy("retroactive", tiers=[TIERS[1], TIERS[0]]))
    with pytest.raises(RebatePolicyError, match="tiers"):
        validate_policy(RebatePolicy(mode="flat", tiers=TIERS))
    with pytest.raises(RebatePolicyError, match="usage_cap_ratio"):
        validate_policy(policy("retroactive", usage_cap_ratio=D("1.5")))
    validate_policy(RebatePolicy(mode="flat", tiers=[RebateTier(achievement=D(0), rate=D("0.01"))]))


def test_usable_rebate_example() -> None:
    assert usable(D(50_000), D(100_000), D("0.10"), D(100_000)) == D(10_000)
    assert usable(D(5_000), D(100_000), D("0.10"), D(100_000)) == D(5_000)
    assert usable(D(50_000), D(100_000), D("0.10"), D(3_000)) == D(3_000)
    assert usable(D(-5), D(100), D(1), D(100)) == D(0)
    with pytest.raises(ValueError):
        usable(D(1), D(1), D(2), D(1))


money = st.integers(min_value=0, max_value=500_000_000).map(lambda c: D(c) / 100)


@settings(max_examples=200, deadline=None)
@given(money)
def test_incremental_never_exceeds_retroactive(achieved: D) -> None:
    assert D(0) <= accrue(policy("incremental"), achieved) <= accrue(policy("retroactive"), achieved)


def test_breakdown_shows_the_tier_and_slices_behind_each_accrual() -> None:
    retro = breakdown(policy("retroactive"), D(1_100_000))
    assert (retro.achievement_ratio, retro.reached_tier, retro.accrual) == (D("1.1"), TIERS[1], D(22_000))
    assert [(s.achievement, s.base, s.rebate) for s in retro.slices] == [(D("1.0"), D(1_100_000), D(22_000))]
    incremental = breakdown(policy("incremental"), D(1_300_000))
    assert [(s.rate, s.base, s.rebate) for s in incremental.slices] == [
        (D("0.01"), D(200_000), D(2_000)),
        (D("0.02"), D(200_000), D(4_000)),
        (D("0.03"), D(100_000), D(3_000)),
    ]
    assert incremental.reached_tier == TIERS[2] and incremental.accrual == D(9_000)
    below = breakdown(policy("retroactive"), D("799999.99"))
    assert (below.achievement_ratio, below.reached_tier, below.slices, below.accrual) == (
        D("0.7999"),
        None,
        (),
        0,
    )
    flat = breakdown(RebatePolicy(mode="flat", tiers=[RebateTier(achievement=D(0), rate=D("0.015"))]), D(100))
    assert (flat.achievement_ratio, flat.accrual, len(flat.slices)) == (None, D("1.50"), 1)
    capped = breakdown(policy("retroactive", cap=D(5_000)), D(1_100_000))
    assert (capped.uncapped, capped.accrual, capped.capped) == (D(22_000), D(5_000), True)
    assert not breakdown(policy("retroactive", cap=D(22_000)), D(1_100_000)).capped


@settings(max_examples=200, deadline=None)
@given(achieved=money, mode=st.sampled_from(["retroactive", "incremental"]), cap=st.none() | money)
def test_breakdown_agrees_with_accrue(achieved: D, mode: str, cap: D | None) -> None:
    p = policy(mode, cap=cap)
    b = breakdown(p, achieved)
    assert b.accrual == accrue(p, achieved)
    assert b.accrual == (b.uncapped if cap is None else min(b.uncapped, cap))
    assert b.capped == (cap is not None and b.uncapped > cap) or b.uncapped == cap
    first = TIERS[0].achievement * p.target
    covered = sum((s.base for s in b.slices), D(0))
    if mode == "incremental":
        assert covered == max(D(0), achieved - first)
    else:
        assert covered == (achieved if b.reached_tier else 0)


def test_customer_scope_needs_every_list_that_is_set() -> None:
    who = {"customer_id": "c1", "customer_class": "KA", "level": "A", "region_path": ("sh", "east")}
    assert CustomerScope().covers(**who)
    assert CustomerScope(customer_classes=frozenset({"KA"}), region_ids=frozenset({"east"})).covers(**who)
    assert not CustomerScope(customer_classes=frozenset({"KA"}), levels=frozenset({"B"})).covers(**who)
    assert not CustomerScope(region_ids=frozenset({"west"})).covers(**who)
    assert not CustomerScope(customer_ids=frozenset({"c2"})).covers(**who)
    assert not CustomerScope(customer_classes=frozenset({"KA"})).covers(**{**who, "customer_class": None})


def test_product_scope_matches_categories_by_ancestor() -> None:
    tea = {"sku_id": "a", "category_path": ("tea", "drink"), "brand_id": "br"}
    assert ProductScope().covers(**tea)
    assert ProductScope(category_ids=frozenset({"drink"})).covers(**tea)
    assert not ProductScope(category_ids=frozenset({"food"})).covers(**tea)
    assert not ProductScope(category_ids=frozenset({"drink"}), brand_ids=frozenset({"other"})).covers(**tea)
    assert ProductScope(sku_ids=frozenset({"a"}), brand_ids=frozenset({"br"})).covers(**tea)
    assert not ProductScope(brand_ids=frozenset({"br"})).covers(**{**tea, "brand_id": None})


# --- expense pool -------------------------------------------------------------------------------

TODAY = date(2026, 5, 1)


def test_offset_example() -> None:
    lines = [
        OffsetLine(line_id="A", amount=D(10_000), ratio=D("0.2")),
        OffsetLine(line_id="B", amount=D(5_000), ratio=D(0)),
        OffsetLine(line_id="C", amount=D(5_000), ratio=D("0.1")),
    ]
    accounts = [
        FeeAccount(account_id="P2", balance=D(3_000), expires_on=date(2026, 12, 31)),
        FeeAccount(account_id="P1", balance=D(1_500), expires_on=date(2026, 6, 30)),
    ]
    plan = plan_offset(lines, accounts, today=TODAY)
    assert plan.line_cap_total == D(2_500)
    assert plan.total == D(2_500)
    assert [(d.account_id, d.amount) for d in plan.draws] == [("P1", D(1_500)), ("P2", D(1_000))]
    assert {ln.line_id: ln.offset for ln in plan.lines} == {"A": D(2_000), "B": D(0), "C": D(500)}
    assert plan.payable == D(17_500)


def test_offset_excludes_kinds_expired_accounts_and_respects_header_cap() -> None:
    lines = [
        OffsetLine(line_id="A", amount=D(1_000), ratio=D("0.5")),
        OffsetLine(line_id="G", amount=D(1_000), ratio=D("0.5"), kind="gift"),
        OffsetLine(line_id="L", amount=D(1_000), ratio=D("0.5"), kind="labour"),
    ]
    accounts = [
        FeeAccount(account_id="old", balance=D(9_000), expires_on=date(2026, 4, 30)),
        FeeAccount(
            account_id="future", balance=D(9_000), expires_on=date(2027, 1, 1), valid_from=date(2026, 6, 1)
        ),
        FeeAccount(account_id="ok", balance=D(300), expires_on=date(2026, 5, 1)),
    ]
    plan = plan_offset(lines, accounts, today=TODAY)
    assert plan.total == D(300)
    assert [d.account_id for d in plan.draws] == ["ok"]
    assert plan_offset(lines, accounts, D(120), today=TODAY).total == D(120)
    with pytest.raises(ValueError):
        plan_offset([OffsetLine(line_id="A", amount=D(1), ratio=D(2))], accounts, today=TODAY)


offset_lines = st.lists(
    st.builds(
        OffsetLine,
        line_id=st.uuids().map(str),
        amount=money,
        ratio=st.integers(min_value=0, max_value=100).map(lambda r: D(r) / 100),
        kind=st.sampled_from(["goods", "goods", "gift", "discount"]),
    ),
    max_size=6,
    unique_by=lambda ln: ln.line_id,
)
fee_accounts = st.lists(
    st.builds(
        FeeAccount,
        account_id=st.uuids().map(str),
        balance=money,
        expires_on=st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 1, 1)),
    ),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(offset_lines, fee_accounts, st.none() | money)
def test_offset_invariants(lines: list[OffsetLine], accounts: list[FeeAccount], header_cap: D | None) -> None:
    plan = plan_offset(lines, accounts, header_cap, today=TODAY)
    assert (
        plan.total == sum((d.amount for d in plan.draws), D(0)) == sum((ln.offset for ln in plan.lines), D(0))
    )
    assert plan.total <= plan.line_cap_total and plan.total <= plan.balance_total
    assert header_cap is None or plan.total <= header_cap
    assert all(D(0) <= ln.offset <= ln.cap for ln in plan.lines)
    by_id = {a.account_id: a for a in accounts}
    assert all(
        d.amount <= by_id[d.account_id].balance and by_id[d.account_id].expires_on >= TODAY
        for d in plan.draws
    )
    expiries = [by_id[d.account_id].expires_on for d in plan.draws]
    assert expiries == sorted(expiries)
    assert plan_offset(list(reversed(lines)), accounts, header_cap, today=TODAY) == plan


# --- budgets ------------------------------------------------------------------------------------


def test_budget_example_apply_then_settle() -> None:
    path = [BudgetNode(node_id="hq", amount=D(1_000_000))]
    check = preoccupy(path, D(50_000), BudgetControl())
    assert check.outcome == "pass"
    assert check.nodes[0].available == D(950_000)
    settled = settle(check.nodes, D(50_000), D(42_000))
    assert settled[0].available == D(958_000)
    assert settled[0].used == D(42_000) and settled[0].preoccupied == D(0)
    assert release(check.nodes, D(50_000))[0].available == D(1_000_000)


def test_budget_child_never_exceeds_parent_and_controls() -> None:
    path = [
        BudgetNode(node_id="hq", amount=D(100_000), used=D(95_000)),
        BudgetNode(node_id="east", amount=D(50_000)),
    ]
    rigid = preoccupy(path, D(10_000), BudgetControl(mode="rigid"))
    assert rigid.outcome == "block" and rigid.nodes == path and rigid.shortfalls == {"hq": D(5_000)}
    warn = preoccupy(path, D(10_000), BudgetControl(mode="warn"))
    assert warn.outcome == "warn" and [n.preoccupied for n in warn.nodes] == [D(10_000), D(10_000)]
    assert (
        preoccupy(path, D(10_000), BudgetControl(mode="tolerance", tolerance_ratio=D("0.05"))).outcome
        == "pass"
    )
    assert (
        preoccupy(path, D(10_001), BudgetControl(mode="tolerance", tolerance_ratio=D("0.05"))).outcome
        == "block"
    )
    with pytest.raises(ValueError):
        preoccupy(path, D(0), BudgetControl())
    with pytest.raises(ValueError):
        settle(path, D(10), D(5))
    with pytest.raises(ValueError):
        release(path, D(10))
