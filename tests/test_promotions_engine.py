"""Promotion engine (DOMAIN §2): worked examples, stacking, mutex strategies and invariants."""

from datetime import UTC, datetime
from decimal import Decimal as D
from random import Random
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnicloud.policies.allocation import allocate
from omnicloud.policies.promotions import (
    AddOnPurchase,
    Bundle,
    BundleComponent,
    BuyXGetY,
    Coupon,
    DiscountTier,
    FixedPrice,
    FullDiscount,
    FullReduction,
    Line,
    MutexStrategy,
    NthItem,
    Promotion,
    PromotionResult,
    ReductionTier,
    Scope,
    StraightDiscount,
    apply_promotions,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def line(line_id: str, price: str, quantity: int = 1, **kw: str) -> Line:
    return Line(
        line_id=line_id, sku_id=kw.pop("sku_id", line_id), quantity=quantity, unit_price=D(price), **kw
    )


def payables(result: PromotionResult) -> dict[str, D]:
    return {r.line_id: r.payable for r in result.lines}


def allocated(result: PromotionResult, promotion_id: str) -> dict[str, D]:
    return {
        r.line_id: a.amount for r in result.lines for a in r.allocations if a.promotion_id == promotion_id
    }


def full_500_minus_60() -> FullReduction:
    return FullReduction(promotion_id="m500", tiers=[ReductionTier(threshold=D(500), amount=D(60))])


# --- allocation ---------------------------------------------------------------------------------


def test_allocate_largest_remainder_and_tie_break() -> None:
    assert allocate(D("0.02"), [D(1), D(1), D(1)]) == [D("0.01"), D("0.01"), D("0.00")]
    assert allocate(D("10.00"), [D(1), D(2)]) == [D("3.33"), D("6.67")]
    assert allocate(D(0), [D(0), D(0)]) == [D("0.00"), D("0.00")]


def test_allocate_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        allocate(D(1), [D(0), D(0)])
    with pytest.raises(ValueError):
        allocate(D(-1), [D(1)])
    with pytest.raises(ValueError):
        allocate(D("0.005"), [D(1)])
    with pytest.raises(ValueError):
        allocate(D(1), [D(-1), D(2)])


cents = st.integers(min_value=0, max_value=10_000_000).map(lambda c: D(c) / 100)


@settings(max_examples=200, deadline=None)
@given(st.lists(cents, min_size=1, max_size=12), st.data())
def test_allocate_properties(weights: list[D], data: st.DataObject) -> None:
    weight_sum = sum(weights, D(0))
    if weight_sum == 0:
        return
    total = data.draw(cents.filter(lambda t: t <= weight_sum * 2))
    shares = allocate(total, weights)
    assert sum(shares, D(0)) == total
    assert all(s >= 0 for s in shares)
    if total <= weight_sum:
        assert all(s <= w for s, w in zip(shares, weights, strict=True))
    perm = data.draw(st.permutations(range(len(weights))))
    permuted = allocate(total, [weights[i] for i in perm])
    # Shares follow their lines; lines of equal weight are interchangeable.
    assert sorted(zip([weights[i] for i in perm], permuted, strict=True)) == sorted(
        zip(weights, shares, strict=True)
    )


# --- worked examples of DOMAIN §2 ---------------------------------------------------------------


def test_full_reduction_then_coupon_example() -> None:
    lines = [line("A", "150", 2), line("B", "200")]
    coupon = Coupon(coupon_id="c400", threshold=D(400), amount=D(20))
    result = apply_promotions(lines, [full_500_minus_60()], [coupon], NOW)
    assert allocated(result, "m500") == {"A": D(36), "B": D(24)}
    assert allocated(result, "c400") == {"A": D(12), "B": D(8)}
    assert result.payable == D(420)
    totals = {t.stage: (t.base, t.discount, t.after) for t in result.stage_totals}
    assert totals["order"] == (D(500), D(60), D(440))
    assert totals["coupon"] == (D(440), D(20), D(420))
    assert len(result.explanations) == 2


def test_bundle_example() -> None:
    lines = [line("A", "60"), line("B", "40"), line("C", "50")]
    bundle = Bundle(
        promotion_id="set", components=[BundleComponent(sku_id=s) for s in "ABC"], set_price=D(120)
    )
    result = apply_promotions(lines, [bundle], [], NOW)
    assert allocated(result, "set") == {"A": D(12), "B": D(8), "C": D(10)}
    assert result.payable == D(120)


def test_bundle_incomplete_set_gives_nothing() -> None:
    bundle = Bundle(promotion_id="set", components=[BundleComponent(sku_id=s) for s in "AB"], set_price=D(50))
    assert apply_promotions([line("A", "60")], [bundle], [], NOW).payable == D(60)


def test_second_item_half_price_example() -> None:
    nth = NthItem(promotion_id="half", n=2, off_ratio=D("0.5"))
    assert apply_promotions([line("A", "100", 3)], [nth], [], NOW).payable == D(250)


def test_nth_item_discounts_cheapest_units() -> None:
    nth = NthItem(promotion_id="half", n=2, off_ratio=D("0.5"))
    result = apply_promotions([line("A", "100"), line("B", "40")], [nth], [], NOW)
    assert payables(result) == {"A": D(100), "B": D(20)}


# --- other promotion types ----------------------------------------------------------------------


def test_straight_discount_ratio_amount_and_scope() -> None:
    lines = [line("A", "100", 2, category_id="tea"), line("B", "50", category_id="cups")]
    ratio = StraightDiscount(
        promotion_id="p", off_ratio=D("0.1"), scope=Scope(category_ids=frozenset({"tea"}))
    )
    assert payables(apply_promotions(lines, [ratio], [], NOW)) == {"A": D(180), "B": D(50)}
    amount = StraightDiscount(promotion_id="p", amount_off=D(80), scope=Scope(sku_ids=frozenset({"B"})))
    assert payables(apply_promotions(lines, [amount], [], NOW)) == {"A": D(200), "B": D(0)}


def test_item_level_never_discount_on_discount() -> None:
    fixed = FixedPrice(promotion_id="fix", price=D(70), priority=2)
    pct = StraightDiscount(promotion_id="pct", off_ratio=D("0.5"), priority=1)
    result = apply_promotions([line("A", "100")], [fixed, pct], [], NOW)
    assert payables(result) == {"A": D(70)}
    assert [a.promotion_id for a in result.lines[0].allocations] == ["fix"]


def test_full_reduction_tiered_and_cumulative() -> None:
    tiered = FullReduction(
        promotion_id="t",
        tiers=[ReductionTier(threshold=D(100), amount=D(10)), ReductionTier(threshold=D(300), amount=D(50))],
    )
    assert apply_promotions([line("A", "350")], [tiered], [], NOW).payable == D(300)
    assert apply_promotions([line("A", "299")], [tiered], [], NOW).payable == D(289)
    each = FullReduction(
        promotion_id="e",
        cumulative=True,
        max_amount=D(25),
        tiers=[ReductionTier(threshold=D(100), amount=D(10))],
    )
    assert apply_promotions([line("A", "250")], [each], [], NOW).payable == D(230)
    assert apply_promotions([line("A", "990")], [each], [], NOW).payable == D(965)


def test_threshold_base_is_amount_after_previous_stage() -> None:
    pct = StraightDiscount(promotion_id="pct", off_ratio=D("0.1"))
    result = apply_promotions([line("A", "150", 2), line("B", "200")], [pct, full_500_minus_60()], [], NOW)
    assert result.payable == D(450)  # 500 → 450 after item stage, below the 满500 threshold


def test_full_discount() -> None:
    promo = FullDiscount(promotion_id="f", tiers=[DiscountTier(threshold=D(200), off_ratio=D("0.1"))])
    result = apply_promotions([line("A", "150"), line("B", "50")], [promo], [], NOW)
    assert payables(result) == {"A": D(135), "B": D(45)}


def test_buy_x_get_y_gift_line_and_free_units() -> None:
    gift = BuyXGetY(promotion_id="g", buy_quantity=2, get_quantity=1, gift_sku_id="cup")
    result = apply_promotions([line("A", "30", 5)], [gift], [], NOW)
    assert result.payable == D(150)
    assert [(g.sku_id, g.quantity, g.payable, g.is_gift) for g in result.gift_lines] == [
        ("cup", 2, D(0), True)
    ]
    free = BuyXGetY(promotion_id="f", buy_quantity=2, get_quantity=1)
    result = apply_promotions([line("A", "30", 2), line("B", "10")], [free], [], NOW)
    assert payables(result) == {"A": D(60), "B": D(0)}


def test_add_on_needs_threshold_and_never_counts_towards_it() -> None:
    addon = AddOnPurchase(promotion_id="add", threshold=D(100), addon_price=D(1), max_quantity=1)
    extra = line("X", "20", 2, addon_of="add")
    assert payables(apply_promotions([line("A", "100"), extra], [addon], [], NOW))["X"] == D(21)
    # The add-on line's own 40 does not lift a 90 basket over the threshold.
    assert payables(apply_promotions([line("A", "90"), extra], [addon], [], NOW))["X"] == D(40)
    reduction = FullReduction(promotion_id="r", tiers=[ReductionTier(threshold=D(100), amount=D(10))])
    assert apply_promotions([line("A", "90"), extra], [reduction], [], NOW).payable == D(130)


def test_coupon_never_exceeds_remaining_payable() -> None:
    coupon = Coupon(coupon_id="big", threshold=D(0), amount=D(500))
    result = apply_promotions([line("A", "120")], [], [coupon], NOW)
    assert result.payable == D(0)
    assert allocated(result, "big") == {"A": D(120)}


def test_inactive_promotions_are_ignored() -> None:
    expired = StraightDiscount(
        promotion_id="old", off_ratio=D("0.5"), valid_to=datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert apply_promotions([line("A", "100")], [expired], [], NOW).payable == D(100)


def test_invalid_input_is_rejected() -> None:
    with pytest.raises(ValueError):
        apply_promotions([line("A", "100", 0)], [], [], NOW)
    with pytest.raises(ValueError):
        apply_promotions([line("A", "1"), line("A", "2")], [], [], NOW)
    with pytest.raises(ValueError):
        apply_promotions([line("A", "1")], [StraightDiscount(promotion_id="x")], [], NOW)
    with pytest.raises(ValueError):
        apply_promotions([line("A", "1")], [NthItem(promotion_id="x", n=0, off_ratio=D("0.5"))], [], NOW)


# --- mutex groups -------------------------------------------------------------------------------


def grouped(strategy: MutexStrategy) -> list[Promotion]:
    small_first = FullReduction(
        promotion_id="r10",
        priority=5,
        mutex_group="g",
        mutex_strategy=strategy,
        tiers=[ReductionTier(threshold=D(100), amount=D(10))],
    )
    bigger = FullDiscount(
        promotion_id="d20",
        priority=1,
        mutex_group="g",
        mutex_strategy=strategy,
        tiers=[DiscountTier(threshold=D(100), off_ratio=D("0.2"))],
    )
    return [small_first, bigger]


def test_mutex_strategies() -> None:
    lines = [line("A", "200")]
    assert apply_promotions(lines, grouped("priority_first"), [], NOW).payable == D(190)
    assert apply_promotions(lines, grouped("best_for_customer"), [], NOW).payable == D(160)
    assert apply_promotions(lines, grouped("stack_all"), [], NOW).payable == D(152)


def test_priority_first_skips_a_member_that_does_not_apply() -> None:
    promos = grouped("priority_first")
    assert apply_promotions([line("A", "50")], promos, [], NOW).payable == D(50)
    high = FullReduction(
        promotion_id="hi", priority=9, mutex_group="g", tiers=[ReductionTier(threshold=D(1000), amount=D(99))]
    )
    assert apply_promotions([line("A", "200")], [high, *promos], [], NOW).payable == D(190)


# --- invariants ---------------------------------------------------------------------------------

prices = st.integers(min_value=0, max_value=50_000).map(lambda c: D(c) / 100)


@st.composite
def baskets(draw: st.DrawFn) -> list[Line]:
    count = draw(st.integers(min_value=1, max_value=5))
    return [
        Line(
            line_id=f"L{i}",
            sku_id=draw(st.sampled_from(["a", "b", "c"])),
            category_id=draw(st.sampled_from(["x", "y", None])),
            quantity=draw(st.integers(min_value=1, max_value=4)),
            unit_price=draw(prices),
        )
        for i in range(count)
    ]


@st.composite
def promotion_sets(draw: st.DrawFn) -> list[Promotion]:
    def meta(pid: str) -> dict[str, Any]:
        return {
            "promotion_id": pid,
            "priority": draw(st.integers(min_value=0, max_value=3)),
            "mutex_group": draw(st.sampled_from([None, "g1", "g2"])),
            "scope": draw(
                st.sampled_from(
                    [Scope(), Scope(sku_ids=frozenset({"a"})), Scope(category_ids=frozenset({"y"}))]
                )
            ),
        }

    threshold = draw(prices.map(lambda p: p + D(1)))
    candidates: list[Promotion] = [
        StraightDiscount(off_ratio=D("0.15"), **meta("pct")),
        FixedPrice(price=draw(prices), **meta("fix")),
        NthItem(n=2, off_ratio=D("0.5"), **meta("nth")),
        Bundle(
            promotion_id="bun",
            components=[BundleComponent(sku_id="a"), BundleComponent(sku_id="b")],
            set_price=D(5),
        ),
        FullReduction(tiers=[ReductionTier(threshold=threshold, amount=D(30))], **meta("red")),
        FullReduction(
            cumulative=True,
            tiers=[ReductionTier(threshold=threshold, amount=D(7))],
            **meta("each"),
        ),
        FullDiscount(tiers=[DiscountTier(threshold=threshold, off_ratio=D("0.1"))], **meta("fd")),
        BuyXGetY(buy_quantity=2, get_quantity=1, **meta("bxgy")),
    ]
    return draw(st.lists(st.sampled_from(candidates), unique_by=lambda p: p.promotion_id, max_size=6))


coupon_lists = st.lists(
    st.builds(
        Coupon,
        coupon_id=st.sampled_from(["c1", "c2"]),
        threshold=prices,
        amount=prices,
    ),
    unique_by=lambda c: c.coupon_id,
    max_size=2,
)


def with_strategy(promotions: list[Promotion], strategy: MutexStrategy) -> list[Promotion]:
    return [msgspec.structs.replace(p, mutex_strategy=strategy) for p in promotions]


@settings(max_examples=150, deadline=None)
@given(baskets(), promotion_sets(), coupon_lists, st.randoms(use_true_random=False))
def test_engine_invariants(
    lines: list[Line], promotions: list[Promotion], coupons: list[Coupon], rnd: Random
) -> None:
    result = apply_promotions(lines, promotions, coupons, NOW)
    assert all(r.payable >= 0 for r in result.lines)
    assert result.payable == sum((r.payable for r in result.lines), D(0))
    for r in result.lines:
        assert r.gross - sum((a.amount for a in r.allocations), D(0)) == r.payable
    for applied in result.applied:
        booked = sum(
            (a.amount for r in result.lines for a in r.allocations if a.promotion_id == applied.promotion_id),
            D(0),
        )
        assert booked == applied.discount
    shuffled = list(lines)
    rnd.shuffle(shuffled)
    assert apply_promotions(shuffled, promotions, coupons, NOW) == result


@settings(max_examples=150, deadline=None)
@given(baskets(), promotion_sets(), coupon_lists)
def test_best_for_customer_never_worse_than_priority_first(
    lines: list[Line], promotions: list[Promotion], coupons: list[Coupon]
) -> None:
    priority = apply_promotions(lines, with_strategy(promotions, "priority_first"), coupons, NOW)
    best = apply_promotions(lines, with_strategy(promotions, "best_for_customer"), coupons, NOW)
    assert best.payable <= priority.payable
