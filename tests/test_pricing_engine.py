"""The pricing engine (DOMAIN §1): access sequence, bands, validity, ties and the price floor."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnicloud.core.money import round_money
from omnicloud.policies.pricing import (
    AccessStep,
    Floor,
    PriceEntry,
    PriceLine,
    PricingContext,
    check_floor,
    compile_index,
    price_order,
    validate_rules,
)

D = Decimal
DAY = date(2024, 5, 1)
SEQUENCE = (
    AccessStep(name="customer", dimensions=("customer_id",), exclusive=True),
    AccessStep(name="level_region", dimensions=("level", "region_id")),
    AccessStep(name="level", dimensions=("level",)),
    AccessStep(name="region", dimensions=("region_id",)),
    AccessStep(name="base"),
)
C1 = PricingContext(date=DAY, customer_id="C1", level="A", region_path=("shanghai", "east_china", "china"))


def entry(id: str, step: str, price: str, **kw: object) -> PriceEntry:
    fields: dict[str, object] = {"price_list_id": f"list-{step}", "sku_id": "S1", "uom": "pc"}
    fields.update(kw)
    return PriceEntry(id=id, step=step, price=D(price), **fields)  # type: ignore[arg-type]


def line(qty: str | int, sku: str = "S1", uom: str = "pc") -> PriceLine:
    return PriceLine(sku_id=sku, uom=uom, quantity=D(qty))


def worked_example(level_priority: int = 0) -> list[PriceEntry]:
    return [
        entry("e-base", "base", "100"),
        entry("e-level", "level", "92", level="A", priority=level_priority),
        entry("e-c1-low", "customer", "95", customer_id="C1", min_qty=D(1), max_qty=D(99)),
        entry("e-c1-high", "customer", "90", customer_id="C1", min_qty=D(100)),
    ]


def price_one(entries: list[PriceEntry], ctx: PricingContext, qty: str | int, sequence=SEQUENCE):
    return price_order(compile_index(entries, sequence), ctx, [line(qty)])[0]


def test_worked_example_customer_bands_and_exclusive_step() -> None:
    index = compile_index(worked_example(), SEQUENCE)
    big, small = price_order(index, C1, [line(120), line(50)])
    assert (big.unit_price, big.amount) == (D("90"), D("10800.00"))
    assert big.explanation is not None
    assert big.explanation.step == "customer"
    assert big.explanation.price_list_id == "list-customer"
    assert big.explanation.entry_ids == ("e-c1-high",)
    assert (big.explanation.bands[0].min_qty, big.explanation.bands[0].max_qty) == (D(100), None)
    assert (small.unit_price, small.amount) == (D("95"), D("4750.00"))
    assert small.explanation is not None and small.explanation.entry_ids == ("e-c1-low",)


def test_worked_example_floor_blocks_net_price_below_it() -> None:
    verdict = check_floor(D("84.50"), D("85"), "block")
    assert verdict.outcome == "block"
    assert verdict.shortfall == D("0.50")


def test_exclusive_step_stops_search_even_against_a_higher_priority_later_record() -> None:
    entries = worked_example(level_priority=10)
    assert price_one(entries, C1, 50).unit_price == D("95")
    open_sequence = (AccessStep(name="customer", dimensions=("customer_id",)), *SEQUENCE[1:])
    priced = price_one(entries, C1, 50, open_sequence)
    assert priced.unit_price == D("92")
    assert priced.explanation is not None and priced.explanation.step == "level"


def test_non_exclusive_priority_tie_goes_to_the_more_specific_step() -> None:
    open_sequence = (AccessStep(name="customer", dimensions=("customer_id",)), *SEQUENCE[1:])
    assert price_one(worked_example(), C1, 50, open_sequence).unit_price == D("95")


def test_other_customers_fall_through_to_level_and_base() -> None:
    entries = worked_example()
    level_a = PricingContext(date=DAY, customer_id="C2", level="A")
    nobody = PricingContext(date=DAY, customer_id="C3")
    assert price_one(entries, level_a, 50).unit_price == D("92")
    priced = price_one(entries, nobody, 50)
    assert priced.unit_price == D("100")
    assert priced.explanation is not None and priced.explanation.step == "base"


def test_region_price_applies_to_a_customer_in_a_descendant_region() -> None:
    entries = [
        entry("e-base", "base", "100"),
        entry("e-east", "region", "97", region_id="east_china"),
        entry("e-china", "region", "99", region_id="china"),
    ]
    shanghai = PricingContext(date=DAY, region_path=("shanghai", "east_china", "china"))
    beijing = PricingContext(date=DAY, region_path=("beijing", "north_china", "china"))
    nowhere = PricingContext(date=DAY)
    priced = price_one(entries, shanghai, 3)
    assert priced.unit_price == D("97")
    assert priced.explanation is not None and priced.explanation.entry_ids == ("e-east",)
    assert price_one(entries, beijing, 3).unit_price == D("99")
    assert price_one(entries, nowhere, 3).unit_price == D("100")


def test_priority_outranks_region_nearness_within_a_step() -> None:
    entries = [
        entry("e-sh", "region", "98", region_id="shanghai"),
        entry("e-east", "region", "97", region_id="east_china", priority=5),
    ]
    shanghai = PricingContext(date=DAY, region_path=("shanghai", "east_china"))
    assert price_one(entries, shanghai, 1).unit_price == D("97")
    assert price_one(
        [entries[0], entry("e-east", "region", "97", region_id="east_china")], shanghai, 1
    ).unit_price == D("98")


def test_level_and_region_step_matches_ancestor_region() -> None:
    entries = [entry("e-lr", "level_region", "91", level="A", region_id="east_china"), *worked_example()]
    ctx = PricingContext(date=DAY, customer_id="C9", level="A", region_path=("shanghai", "east_china"))
    assert price_one(entries, ctx, 5).unit_price == D("91")


def test_validity_dates_are_inclusive_and_expired_records_fall_through() -> None:
    entries = [
        entry("e-base", "base", "100"),
        entry("e-level", "level", "92", level="A", valid_from=date(2024, 1, 1), valid_to=date(2024, 6, 30)),
    ]
    for day, expected in [(date(2024, 6, 30), "92"), (date(2024, 1, 1), "92"), (date(2024, 7, 1), "100")]:
        ctx = PricingContext(date=day, level="A")
        assert price_one(entries, ctx, 1).unit_price == D(expected)


def test_quantity_outside_every_band_of_a_step_falls_through() -> None:
    entries = [
        entry("e-base", "base", "100"),
        entry("e-c1", "customer", "95", customer_id="C1", max_qty=D(10)),
    ]
    assert price_one(entries, C1, 10).unit_price == D("95")
    assert price_one(entries, C1, 11).unit_price == D("100")


def test_highest_priority_wins_within_a_step() -> None:
    entries = [
        entry("e-1", "base", "100", priority=1),
        entry("e-2", "base", "80", priority=5, price_list_id="promo-list"),
    ]
    priced = price_one(entries, C1, 1)
    assert priced.unit_price == D("80")
    assert priced.explanation is not None and priced.explanation.price_list_id == "promo-list"


def test_graduated_prices_each_unit_in_its_band() -> None:
    entries = [
        entry("g-1", "customer", "95", customer_id="C1", min_qty=D(1), max_qty=D(99), mode="graduated"),
        entry("g-2", "customer", "90", customer_id="C1", min_qty=D(100), mode="graduated"),
    ]
    priced = price_one(entries, C1, 120)
    assert priced.amount == D("11295.00")  # 99 × 95 + 21 × 90
    assert priced.unit_price == D("94.13")
    assert priced.explanation is not None
    assert priced.explanation.entry_ids == ("g-1", "g-2")
    assert [b.quantity for b in priced.explanation.bands] == [D(99), D(21)]
    assert price_one(entries, C1, 99).amount == D("9405.00")


def test_unpriced_line_and_other_uom_carry_no_price() -> None:
    index = compile_index([entry("e-box", "base", "1100", uom="box")], SEQUENCE)
    missing, other_sku = price_order(index, C1, [line(2), line(1, sku="S2")])
    assert (missing.unit_price, missing.amount, missing.explanation) == (None, None, None)
    assert other_sku.amount is None
    assert price_order(index, C1, [line(2, uom="box")])[0].amount == D("2200.00")


def test_validate_rules_reports_ties_naming_both_entries() -> None:
    a = entry("e-a", "customer", "95", customer_id="C1", min_qty=D(1), max_qty=D(99))
    b = entry("e-b", "customer", "94", customer_id="C1", min_qty=D(50), max_qty=D(150))
    conflicts = validate_rules([b, a], SEQUENCE)
    assert [(c.kind, c.entry_ids) for c in conflicts] == [("tie", ("e-a", "e-b"))]
    assert "e-a" in conflicts[0].message and "e-b" in conflicts[0].message


def test_validate_rules_accepts_disjoint_bands_dates_priorities_and_keys() -> None:
    entries = [
        *worked_example(),
        entry("e-c1-old", "customer", "96", customer_id="C1", valid_to=date(2023, 12, 31), priority=1),
        entry("e-c1-new", "customer", "93", customer_id="C1", valid_from=date(2024, 1, 1), priority=1),
        entry("e-c2", "customer", "95", customer_id="C2"),
    ]
    assert validate_rules(entries, SEQUENCE) == []


def test_validate_rules_reports_entries_that_do_not_fit_their_step() -> None:
    conflicts = validate_rules(
        [
            entry("e-x", "nope", "1"),
            entry("e-y", "customer", "1"),
            entry("e-z", "base", "1", channel="online"),
        ],
        SEQUENCE,
    )
    assert [(c.kind, c.entry_ids) for c in conflicts] == [
        ("unknown_step", ("e-x",)),
        ("missing_dimension", ("e-y",)),
        ("extra_dimension", ("e-z",)),
    ]


def test_conflicting_data_prices_deterministically_by_entry_id() -> None:
    a = entry("e-a", "base", "100")
    b = entry("e-b", "base", "90")
    assert validate_rules([a, b], SEQUENCE)
    assert price_one([a, b], C1, 1).unit_price == D("100")
    assert price_one([b, a], C1, 1).unit_price == D("100")


@pytest.mark.parametrize(
    ("net", "floor", "action", "outcome"),
    [
        ("84.50", "85", "warn", "warn"),
        ("84.50", "85", "needs_approval", "needs_approval"),
        ("85", "85", "block", "pass"),
        ("120", None, "block", "pass"),
    ],
)
def test_floor_actions(net: str, floor: str | None, action, outcome: str) -> None:
    verdict = check_floor(D(net), None if floor is None else D(floor), action)
    assert verdict.outcome == outcome


def test_bad_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="price"):
        entry("e", "base", "-1")
    with pytest.raises(ValueError, match="max_qty"):
        entry("e", "base", "1", min_qty=D(10), max_qty=D(5))
    with pytest.raises(ValueError, match="valid_to"):
        entry("e", "base", "1", valid_from=date(2024, 2, 1), valid_to=date(2024, 1, 1))
    with pytest.raises(ValueError, match="quantity"):
        line(0)


def test_large_order_is_priced_line_by_line() -> None:
    entries = [entry(f"e-{n}", "base", str(n + 1), sku_id=f"S{n}") for n in range(2000)]
    lines = [line(2, sku=f"S{n}") for n in range(0, 2000, 2)]
    priced = price_order(compile_index(entries, SEQUENCE), C1, lines)
    assert len(priced) == 1000
    assert all(p.amount == D(2 * (int(p.sku_id[1:]) + 1)) for p in priced)


# --- properties ----------------------------------------------------------------------------------

prices = st.decimals(min_value=0, max_value=1000, places=2)


@st.composite
def ladders(draw: st.DrawFn) -> tuple[list[int], list[Decimal]]:
    """Contiguous bands starting at 1: upper bounds (last open) and prices."""
    cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=500), min_size=0, max_size=4)))
    band_prices = draw(st.lists(prices, min_size=len(cuts) + 1, max_size=len(cuts) + 1))
    return cuts, band_prices


def ladder_entries(cuts: list[int], band_prices: list[Decimal], mode: str) -> list[PriceEntry]:
    lows = [1, *[c + 1 for c in cuts]]
    highs: list[int | None] = [*cuts, None]
    return [
        entry(
            f"{mode}-{i}",
            "base",
            str(p),
            min_qty=D(lo),
            max_qty=None if hi is None else D(hi),
            mode=mode,
        )
        for i, (lo, hi, p) in enumerate(zip(lows, highs, band_prices, strict=True))
    ]


@settings(max_examples=150, deadline=None)
@given(ladder=ladders(), data=st.data())
def test_graduated_and_all_units_agree_inside_the_first_band(ladder, data: st.DataObject) -> None:
    cuts, band_prices = ladder
    top = cuts[0] if cuts else 10_000
    qty = data.draw(st.decimals(min_value=1, max_value=top, places=3))
    graduated = price_one(ladder_entries(cuts, band_prices, "graduated"), C1, qty)
    all_units = price_one(ladder_entries(cuts, band_prices, "all_units"), C1, qty)
    assert graduated.amount == all_units.amount


@settings(max_examples=150, deadline=None)
@given(ladder=ladders(), qty=st.integers(min_value=1, max_value=2000))
def test_graduated_amount_is_the_sum_of_band_slices(ladder, qty: int) -> None:
    cuts, band_prices = ladder
    priced = price_one(ladder_entries(cuts, band_prices, "graduated"), C1, qty)
    assert priced.explanation is not None
    assert sum(b.quantity for b in priced.explanation.bands) == qty
    assert priced.amount == sum(b.price * b.quantity for b in priced.explanation.bands)


random_entries = st.lists(
    st.builds(
        lambda n, step, price, priority, lo, span, mode: entry(
            f"r-{n}",
            step,
            str(price),
            priority=priority,
            min_qty=D(lo),
            max_qty=None if span is None else D(lo + span),
            mode=mode,
            **{
                "customer": {"customer_id": "C1"},
                "level": {"level": "A"},
                "region": {"region_id": "east_china"},
            }.get(step, {}),
        ),
        st.integers(min_value=0, max_value=10_000),
        st.sampled_from(["customer", "level", "region", "base"]),
        prices,
        st.integers(min_value=0, max_value=3),
        st.integers(min_value=0, max_value=50),
        st.none() | st.integers(min_value=0, max_value=50),
        st.sampled_from(["all_units", "graduated"]),
    ),
    max_size=12,
    unique_by=lambda e: e.id,
)
random_lines = st.lists(
    st.builds(line, st.integers(min_value=1, max_value=120), st.sampled_from(["S1", "S2"])),
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(entries=random_entries, lines=random_lines, data=st.data())
def test_prices_do_not_depend_on_order_of_entries_or_lines(entries, lines, data: st.DataObject) -> None:
    shuffled_entries = data.draw(st.permutations(entries))
    order = data.draw(st.permutations(range(len(lines))))
    first = price_order(compile_index(entries, SEQUENCE), C1, lines)
    second = price_order(compile_index(shuffled_entries, SEQUENCE), C1, [lines[i] for i in order])
    assert [first[i] for i in order] == second
    assert all(p.amount is None or p.amount >= 0 for p in first)
    assert all(p.unit_price is None or p.unit_price >= 0 for p in first)


# --- units: bands in the base unit, prices per line unit -----------------------------------------

CASE = 12  # 1 case = 12 pieces


def case_line(cases: str | int, factor: Decimal | int = CASE) -> PriceLine:
    return PriceLine(sku_id="S1", uom="case", quantity=D(cases), base_quantity=D(cases) * factor)


def test_case_line_matches_bands_in_pieces_and_is_priced_per_case() -> None:
    entries = [
        entry("c-low", "base", "60", uom="case", min_qty=D(1), max_qty=D(119)),
        entry("c-high", "base", "55", uom="case", min_qty=D(120)),
    ]
    index = compile_index(entries, SEQUENCE)
    ten, nine = price_order(index, C1, [case_line(10), case_line(9)])
    assert (ten.unit_price, ten.amount) == (D("55"), D("550.00"))  # 120 pieces reach the 120+ band
    assert ten.explanation is not None and ten.explanation.bands[0].quantity == D(120)
    assert (nine.unit_price, nine.amount) == (D("60"), D("540.00"))  # 108 pieces


def test_graduated_slices_in_pieces_convert_back_to_cases() -> None:
    entries = [
        entry("g-low", "base", "60", uom="case", min_qty=D(1), max_qty=D(120), mode="graduated"),
        entry("g-high", "base", "54", uom="case", min_qty=D(121), mode="graduated"),
    ]
    priced = price_order(compile_index(entries, SEQUENCE), C1, [case_line(15)])[0]
    assert priced.amount == D("870.00")  # 120 pieces = 10 cases × 60, 60 pieces = 5 cases × 54
    assert priced.unit_price == D("58.00")
    assert priced.explanation is not None
    assert [(b.entry_id, b.quantity) for b in priced.explanation.bands] == [
        ("g-low", D(120)),
        ("g-high", D(60)),
    ]


def test_base_quantity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="base_quantity"):
        PriceLine(sku_id="S1", uom="case", quantity=D(1), base_quantity=D(0))


def test_validate_rules_names_the_dimensions_at_fault() -> None:
    conflicts = validate_rules(
        [
            entry("e-y", "level_region", "1", level="A"),
            entry("e-z", "base", "1", channel="online", level="A"),
        ],
        SEQUENCE,
    )
    assert [(c.kind, c.fields) for c in conflicts] == [
        ("missing_dimension", ("region_id",)),
        ("extra_dimension", ("level", "channel")),
    ]


def test_floor_validity_is_inclusive() -> None:
    floor = Floor(
        id="f", price=D("85"), action="block", valid_from=date(2024, 1, 1), valid_to=date(2024, 1, 31)
    )
    assert floor.valid_on(date(2024, 1, 1)) and floor.valid_on(date(2024, 1, 31))
    assert not floor.valid_on(date(2024, 2, 1))
    assert Floor(id="g", price=D("85"), action="warn").valid_on(DAY)


# Factors of the form 2^a × 5^b, so the quantity in cases is an exact decimal.
factors = st.sampled_from([D(1), D(2), D(8), D("0.5"), D("2.5"), D("0.25")])


@settings(max_examples=150, deadline=None)
@given(ladder=ladders(), factor=factors, data=st.data())
def test_graduated_and_all_units_agree_inside_a_single_band_in_any_unit(
    ladder, factor: Decimal, data: st.DataObject
) -> None:
    cuts, band_prices = ladder
    top = cuts[0] if cuts else 10_000
    pieces = data.draw(st.decimals(min_value=1, max_value=top, places=3))
    cases = pieces / factor
    lines = [PriceLine(sku_id="S1", uom="pc", quantity=cases, base_quantity=pieces)]

    def amount(mode: str) -> Decimal | None:
        index = compile_index(ladder_entries(cuts, band_prices, mode), SEQUENCE)
        return price_order(index, C1, lines)[0].amount

    assert amount("graduated") == amount("all_units")
    assert amount("all_units") == round_money(band_prices[0] * cases)


@settings(max_examples=150, deadline=None)
@given(entries=random_entries, quantities=st.lists(st.integers(1, 30), max_size=6), data=st.data())
def test_converted_unit_prices_do_not_depend_on_the_order_of_entries(
    entries, quantities: list[int], data: st.DataObject
) -> None:
    lines = [case_line(q, factor=4) for q in quantities]
    shuffled = data.draw(st.permutations(entries))
    first = price_order(compile_index(entries, SEQUENCE), C1, lines)
    assert first == price_order(compile_index(shuffled, SEQUENCE), C1, lines)
