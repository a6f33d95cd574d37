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
    PROMOTION_TYPES,
    AddOnPurchase,
    Audience,
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
    PromotionError,
    PromotionResult,
    ReductionTier,
    Scope,
    StraightDiscount,
    _ScopeIndex,
    apply_promotions,
    audience_matches,
    rule_fields,
    validate_promotion,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def line(line_id: str, price: str, quantity: int | str = 1, **kw: str) -> Line:
    return Line(
        line_id=line_id,
        sku_id=kw.pop("sku_id", line_id),
        quantity=D(quantity),
        unit_price=D(price),
        **kw,
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


# --- whole units, brands, validation -------------------------------------------------------------


def test_unit_count_promotions_count_whole_units() -> None:
    nth = NthItem(promotion_id="half", n=2, off_ratio=D("0.5"))
    # 2.5 kg at 100: two whole units, the second half price; the half kilogram pays in full.
    assert apply_promotions([line("A", "100", "2.5")], [nth], [], NOW).payable == D(200)
    assert apply_promotions([line("A", "100", "1.9")], [nth], [], NOW).payable == D(190)
    free = BuyXGetY(promotion_id="f", buy_quantity=2, get_quantity=1)
    assert apply_promotions([line("A", "10", "3.5")], [free], [], NOW).payable == D(25)
    gift = BuyXGetY(promotion_id="g", buy_quantity=2, get_quantity=1, gift_sku_id="cup")
    result = apply_promotions([line("A", "10", "5.99")], [gift], [], NOW)
    assert [(g.quantity, g.is_gift) for g in result.gift_lines] == [(D(2), True)]
    bundle = Bundle(promotion_id="set", components=[BundleComponent(sku_id=s) for s in "AB"], set_price=D(50))
    result = apply_promotions([line("A", "40", "1.5"), line("B", "20", "0.5")], [bundle], [], NOW)
    assert result.payable == D(70)  # B has no whole unit: no set


def test_straight_discount_on_a_fractional_quantity() -> None:
    pct = StraightDiscount(promotion_id="p", off_ratio=D("0.1"))
    assert apply_promotions([line("A", "30", "1.25")], [pct], [], NOW).payable == D("33.75")


def test_scope_matches_by_brand() -> None:
    lines = [line("A", "100", brand_id="acme"), line("B", "100", brand_id="other"), line("C", "100")]
    promo = StraightDiscount(promotion_id="p", amount_off=D(10), scope=Scope(brand_ids=frozenset({"acme"})))
    assert payables(apply_promotions(lines, [promo], [], NOW)) == {"A": D(90), "B": D(100), "C": D(100)}


def test_scope_matches_a_category_by_ancestor() -> None:
    """A promotion on "drinks" reaches a line in "drinks / tea", not one in "food"."""
    lines = [
        line("A", "100", category_id="tea", category_ancestors=("drinks",)),
        line("B", "100", category_id="bread", category_ancestors=("food",)),
    ]
    promo = StraightDiscount(
        promotion_id="p", amount_off=D(10), scope=Scope(category_ids=frozenset({"drinks"}))
    )
    assert payables(apply_promotions(lines, [promo], [], NOW)) == {"A": D(90), "B": D(100)}


def reduction(threshold: int, amount: int) -> ReductionTier:
    return ReductionTier(threshold=D(threshold), amount=D(amount))


@pytest.mark.parametrize(
    ("promotion", "field"),
    [
        (StraightDiscount(promotion_id="x", off_ratio=D("1.5")), "off_ratio"),
        (StraightDiscount(promotion_id="x", off_ratio=D("NaN")), "off_ratio"),
        (StraightDiscount(promotion_id="x", amount_off=D(-1)), "amount_off"),
        (FixedPrice(promotion_id="x", price=D("1e20")), "price"),
        (NthItem(promotion_id="x", n=0, off_ratio=D("0.5")), "n"),
        (Bundle(promotion_id="x", components=[], set_price=D(1)), "components"),
        (
            Bundle(
                promotion_id="x",
                components=[BundleComponent(sku_id="a"), BundleComponent(sku_id="a")],
                set_price=D(1),
            ),
            "components[1].sku_id",
        ),
        (
            Bundle(promotion_id="x", components=[BundleComponent(sku_id="a", quantity=0)], set_price=D(1)),
            "components[0].quantity",
        ),
        (FullReduction(promotion_id="x", tiers=[]), "tiers"),
        (
            FullReduction(
                promotion_id="x",
                tiers=[
                    ReductionTier(threshold=D(200), amount=D(9)),
                    ReductionTier(threshold=D(100), amount=D(5)),
                ],
            ),
            "tiers[1].threshold",
        ),
        (
            FullReduction(
                promotion_id="x",
                cumulative=True,
                tiers=[
                    ReductionTier(threshold=D(1), amount=D(1)),
                    ReductionTier(threshold=D(2), amount=D(1)),
                ],
            ),
            "tiers",
        ),
        (
            FullDiscount(promotion_id="x", tiers=[DiscountTier(threshold=D(9), off_ratio=D(2))]),
            "tiers[0].off_ratio",
        ),
        (BuyXGetY(promotion_id="x", buy_quantity=1, get_quantity=0), "get_quantity"),
        (AddOnPurchase(promotion_id="x", threshold=D(1), addon_price=D(1), max_quantity=0), "max_quantity"),
        (
            FixedPrice(
                promotion_id="x",
                price=D(1),
                valid_from=NOW,
                valid_to=datetime(2026, 1, 1, tzinfo=UTC),
            ),
            "valid_to",
        ),
    ],
)
def test_validation_names_the_field(promotion: Promotion, field: str) -> None:
    with pytest.raises(PromotionError) as caught:
        validate_promotion(promotion)
    assert caught.value.field == field


def test_every_type_has_a_tag_and_its_own_rule_fields() -> None:
    assert set(PROMOTION_TYPES) == {
        "straight_discount",
        "fixed_price",
        "nth_item",
        "bundle",
        "full_reduction",
        "full_discount",
        "buy_x_get_y",
        "add_on",
    }
    assert rule_fields(FullReduction) == ("tiers", "cumulative", "max_amount")


# --- audiences ----------------------------------------------------------------------------------

BUYER: dict[str, Any] = {
    "customer_id": "c1",
    "customer_class": "ka",
    "level": "A",
    "region_path": ("shanghai", "east", "china"),
    "channel": "b2b",
    "store_id": None,
}


def test_empty_audience_is_everyone_and_regions_match_by_ancestor() -> None:
    assert audience_matches(Audience(), **BUYER)
    anonymous = {k: (() if k == "region_path" else None) for k in BUYER}
    assert audience_matches(Audience(), **anonymous)
    assert audience_matches(Audience(region_ids=frozenset({"east"})), **BUYER)
    assert not audience_matches(Audience(region_ids=frozenset({"north"})), **BUYER)
    assert not audience_matches(Audience(region_ids=frozenset({"east"})), **anonymous)
    assert not audience_matches(Audience(store_ids=frozenset({"s1"})), **BUYER)
    both = Audience(levels=frozenset({"A", "B"}), channels=frozenset({"pos"}))
    assert not audience_matches(both, **BUYER)  # every restricted dimension must match
    assert audience_matches(both, **{**BUYER, "channel": "pos"})


AUDIENCE_FIELDS = {
    "customer_ids": "customer_id",
    "customer_classes": "customer_class",
    "levels": "level",
    "channels": "channel",
    "store_ids": "store_id",
}
labels = st.frozensets(st.sampled_from(["c1", "ka", "A", "b2b", "s1", "x", "y"]), max_size=3)


@settings(max_examples=200, deadline=None)
@given(
    st.builds(
        Audience,
        customer_ids=labels,
        customer_classes=labels,
        levels=labels,
        region_ids=st.frozensets(st.sampled_from(["shanghai", "east", "china", "north"]), max_size=2),
        channels=labels,
        store_ids=labels,
    ),
    st.fixed_dictionaries(
        {k: st.sampled_from(["c1", "ka", "A", "b2b", "s1", "x", None]) for k in AUDIENCE_FIELDS.values()}
    ),
    st.sampled_from([(), ("shanghai", "east", "china"), ("north",)]),
)
def test_audience_is_the_conjunction_of_its_dimensions(
    audience: Audience, buyer: dict[str, str | None], region_path: tuple[str, ...]
) -> None:
    expected = all(
        not getattr(audience, dim) or buyer[attr] in getattr(audience, dim)
        for dim, attr in AUDIENCE_FIELDS.items()
    ) and (not audience.region_ids or bool(audience.region_ids & set(region_path)))
    assert audience_matches(audience, region_path=region_path, **buyer) is expected
    # Clearing a dimension never shuts a buyer out.
    if expected:
        assert audience_matches(
            msgspec.structs.replace(audience, levels=frozenset()), region_path=region_path, **buyer
        )


# --- invariants ---------------------------------------------------------------------------------

prices = st.integers(min_value=0, max_value=50_000).map(lambda c: D(c) / 100)
quantities = st.one_of(
    st.integers(min_value=1, max_value=4).map(D),
    st.integers(min_value=1, max_value=450).map(lambda q: D(q) / 100),
)


@st.composite
def baskets(draw: st.DrawFn) -> list[Line]:
    count = draw(st.integers(min_value=1, max_value=5))
    return [
        Line(
            line_id=f"L{i}",
            sku_id=draw(st.sampled_from(["a", "b", "c"])),
            category_id=draw(st.sampled_from(["x", "y", None])),
            category_ancestors=draw(st.sampled_from([(), ("y",), ("z", "y")])),
            brand_id=draw(st.sampled_from(["m", None])),
            quantity=draw(quantities),
            unit_price=draw(prices),
        )
        for i in range(count)
    ]


scopes = st.builds(
    Scope,
    sku_ids=st.frozensets(st.sampled_from(["a", "b", "c"])),
    category_ids=st.frozensets(st.sampled_from(["x", "y", "z"])),
    brand_ids=st.frozensets(st.sampled_from(["m", "n"])),
)


@given(baskets(), scopes)
def test_the_scope_index_finds_exactly_the_lines_a_scope_matches(lines: list[Line], scope: Scope) -> None:
    ordered = sorted(lines, key=lambda ln: ln.line_id)
    assert _ScopeIndex(ordered).members(scope) == [ln for ln in ordered if scope.matches(ln)]


@st.composite
def promotion_sets(draw: st.DrawFn) -> list[Promotion]:
    def meta(pid: str) -> dict[str, Any]:
        return {
            "promotion_id": pid,
            "priority": draw(st.integers(min_value=0, max_value=3)),
            "mutex_group": draw(st.sampled_from([None, "g1", "g2"])),
            "scope": draw(
                st.sampled_from(
                    [
                        Scope(),
                        Scope(sku_ids=frozenset({"a"})),
                        Scope(category_ids=frozenset({"y"})),
                        Scope(brand_ids=frozenset({"m"})),
                    ]
                )
            ),
        }

    threshold = draw(prices.map(lambda p: p + D(1)))
    candidates: list[Promotion] = [
        StraightDiscount(off_ratio=D("0.15"), **meta("pct")),
        StraightDiscount(amount_off=draw(prices), **meta("off")),
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
        BuyXGetY(buy_quantity=3, get_quantity=1, gift_sku_id="gift", **meta("gift")),
    ]
    return draw(st.lists(st.sampled_from(candidates), unique_by=lambda p: p.promotion_id, max_size=6))


coupon_lists = st.lists(
    st.builds(
        Coupon,
        coupon_id=st.sampled_from(["c1", "c2", "c3"]),
        threshold=prices,
        amount=prices,
        scope=st.sampled_from([Scope(), Scope(sku_ids=frozenset({"b"}))]),
    ),
    unique_by=lambda c: c.coupon_id,
    max_size=3,
)


def with_strategy(promotions: list[Promotion], strategy: MutexStrategy) -> list[Promotion]:
    return [msgspec.structs.replace(p, mutex_strategy=strategy) for p in promotions]


PROPERTY = settings(max_examples=150, deadline=None)


@PROPERTY
@given(baskets(), promotion_sets(), coupon_lists)
def test_allocations_sum_exactly(
    lines: list[Line], promotions: list[Promotion], coupons: list[Coupon]
) -> None:
    result = apply_promotions(lines, promotions, coupons, NOW)
    for r in result.lines:
        assert r.gross - sum((a.amount for a in r.allocations), D(0)) == r.payable
        assert all(a.amount == a.amount.quantize(D("0.01")) for a in r.allocations)
    for applied in result.applied:
        booked = sum(
            (a.amount for r in result.lines for a in r.allocations if a.promotion_id == applied.promotion_id),
            D(0),
        )
        assert booked == applied.discount
    assert result.discount == sum((a.discount for a in result.applied), D(0))
    assert result.payable == sum((r.payable for r in result.lines), D(0))
    assert result.gross - result.discount == result.payable
    assert sum((t.discount for t in result.stage_totals), D(0)) == result.discount


@PROPERTY
@given(baskets(), promotion_sets(), coupon_lists)
def test_no_line_is_negative(lines: list[Line], promotions: list[Promotion], coupons: list[Coupon]) -> None:
    result = apply_promotions(lines, promotions, coupons, NOW)
    assert all(r.payable >= 0 for r in result.lines)
    assert all(a.amount > 0 for r in result.lines for a in r.allocations)
    assert all(g.payable == 0 and g.is_gift for g in result.gift_lines)


@PROPERTY
@given(baskets(), promotion_sets(), coupon_lists, st.randoms(use_true_random=False))
def test_result_is_invariant_under_reordering_of_lines(
    lines: list[Line], promotions: list[Promotion], coupons: list[Coupon], rnd: Random
) -> None:
    result = apply_promotions(lines, promotions, coupons, NOW)
    shuffled, promos, cps = list(lines), list(promotions), list(coupons)
    for items in (shuffled, promos, cps):
        rnd.shuffle(items)
    assert apply_promotions(shuffled, promos, cps, NOW) == result


@PROPERTY
@given(baskets(), promotion_sets(), coupon_lists)
def test_best_for_customer_never_worse_than_priority_first(
    lines: list[Line], promotions: list[Promotion], coupons: list[Coupon]
) -> None:
    priority = apply_promotions(lines, with_strategy(promotions, "priority_first"), coupons, NOW)
    best = apply_promotions(lines, with_strategy(promotions, "best_for_customer"), coupons, NOW)
    assert best.payable <= priority.payable


@PROPERTY
@given(baskets(), promotion_sets(), coupon_lists)
def test_a_coupon_never_exceeds_the_payable_amount(
    lines: list[Line], promotions: list[Promotion], coupons: list[Coupon]
) -> None:
    result = apply_promotions(lines, promotions, coupons, NOW)
    before = apply_promotions(lines, promotions, [], NOW)  # the payable the coupon stage starts from
    payable_before = {r.line_id: r.payable for r in before.lines}
    for coupon in coupons:
        per_line = {
            r.line_id: a.amount
            for r in result.lines
            for a in r.allocations
            if a.promotion_id == coupon.coupon_id
        }
        assert sum(per_line.values(), D(0)) <= coupon.amount
        assert all(amount <= payable_before[lid] for lid, amount in per_line.items())
    coupon_stage = next(t for t in result.stage_totals if t.stage == "coupon")
    assert coupon_stage.base == before.payable
    assert coupon_stage.discount <= coupon_stage.base
