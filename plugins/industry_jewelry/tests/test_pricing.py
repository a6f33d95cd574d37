"""The pure pricing engine: DOMAIN.md §10 examples and properties."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from industry_jewelry import pricing
from industry_jewelry.pricing import (
    BY_GRAM_LABOUR_PER_GRAM,
    BY_GRAM_LABOUR_PER_PIECE,
    BY_PIECE,
    Item,
    PricingError,
)

D = Decimal


def gold(method: str, **kw: Decimal) -> Item:
    return Item(metal="gold", purity="Au999", method=method, **kw)


def test_domain_examples():
    # weight 10 g, board 600, labour 20/g -> 6,200; labour 150 per piece -> 6,150
    assert pricing.unit_price(
        gold(BY_GRAM_LABOUR_PER_GRAM, weight_g=D(10), labour_per_gram=D(20)), D(600)
    ) == D("6200.00")
    assert pricing.unit_price(
        gold(BY_GRAM_LABOUR_PER_PIECE, weight_g=D(10), labour_per_piece=D(150)), D(600)
    ) == D("6150.00")
    # by piece: the tag price, whatever the board says
    assert pricing.unit_price(gold(BY_PIECE, tag_price=D("1999")), D(600)) == D("1999.00")
    assert pricing.unit_price(gold(BY_PIECE, tag_price=D("1999")), None) == D("1999.00")
    # board = exchange + premium
    assert pricing.board_price(D("560.35"), D("39.65")) == D("600.00")
    # old gold: 10 g × (1 − 3%) × 560
    assert pricing.trade_in_value(D(10), D(3), D(560)) == D("5432.00")


def test_quote_breakdown_adds_up_and_rounds_half_up():
    q = pricing.quote(gold(BY_GRAM_LABOUR_PER_GRAM, weight_g=D("3.335"), labour_per_gram=D("15")), D("600.5"))
    # 3.335 × 600.5 = 2002.6675 -> 2002.67; 3.335 × 15 = 50.025 -> 50.03 (half up)
    assert (q.metal_value, q.labour, q.unit_price) == (D("2002.67"), D("50.03"), D("2052.70"))


@pytest.mark.parametrize(
    ("item", "board", "code"),
    [
        (gold(BY_GRAM_LABOUR_PER_GRAM, weight_g=D(1)), None, "jewelry_board_price_missing"),
        (gold(BY_GRAM_LABOUR_PER_GRAM), D(600), "jewelry_weight_missing"),
        (gold(BY_GRAM_LABOUR_PER_PIECE, weight_g=D(1)), D(600), "jewelry_labour_missing"),
        (gold(BY_PIECE), D(600), "jewelry_tag_price_missing"),
    ],
)
def test_missing_inputs_are_errors(item, board, code):
    with pytest.raises(PricingError) as err:
        pricing.quote(item, board)
    assert err.value.code == code


def test_item_from_attributes():
    attrs = {
        "metal": "gold",
        "purity": "Au999",
        "pricing_method": BY_GRAM_LABOUR_PER_GRAM,
        "labour_per_gram": 20,
    }
    item = pricing.item_from_attributes(attrs, weight_g=D("10.5"), default_labour_per_gram=D(8))
    assert (item.weight_g, item.labour_per_gram) == (D("10.5"), D(20))
    # the item's own attributes beat the SKU column and the tenant default; floats are read exactly
    item = pricing.item_from_attributes(
        {**attrs, "weight_g": 2.2, "labour_per_gram": None}, weight_g=D(9), default_labour_per_gram=D(8)
    )
    assert (item.weight_g, item.labour_per_gram) == (D("2.2"), D(8))
    item = pricing.item_from_attributes(
        {"metal": "gold", "purity": "Au750", "pricing_method": BY_PIECE}, list_price=D("2999")
    )
    assert item.tag_price == D("2999") and not item.needs_board
    assert (
        pricing.is_jewelry(attrs)
        and not pricing.is_jewelry({"metal": "gold"})
        and not pricing.is_jewelry(None)
    )


@pytest.mark.parametrize(
    ("attrs", "field"),
    [
        ({"pricing_method": "by_weight"}, "pricing_method"),
        ({"metal": ""}, "metal"),
        ({"purity": 999}, "purity"),
        ({"weight_g": "-1"}, "weight_g"),
        ({"weight_g": 0}, "weight_g"),
        ({"labour_per_gram": "abc"}, "labour_per_gram"),
        ({"labour_per_piece": True}, "labour_per_piece"),
        ({"tag_price": "NaN"}, "tag_price"),
        ({"tag_price": [1]}, "tag_price"),
        ({"tag_price": 1e300}, "tag_price"),
        ({"weight_g": "1e400"}, "weight_g"),
    ],
)
def test_bad_attributes_name_the_attribute(attrs, field):
    base = {"metal": "gold", "purity": "Au999", "pricing_method": BY_GRAM_LABOUR_PER_GRAM}
    with pytest.raises(PricingError) as err:
        pricing.item_from_attributes({**base, **attrs})
    assert err.value.field == field


def test_trade_in_bounds():
    with pytest.raises(PricingError):
        pricing.trade_in_value(D(0), D(0), D(500))
    with pytest.raises(PricingError):
        pricing.trade_in_value(D(1), D(100), D(500))
    with pytest.raises(PricingError):
        pricing.trade_in_value(D(1), D(-1), D(500))


money = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)
grams = st.decimals(min_value=D("0.001"), max_value=D("5000"), places=3)


@given(weight=grams, board=money, labour=money)
def test_by_gram_properties(weight, board, labour):
    per_gram = pricing.quote(gold(BY_GRAM_LABOUR_PER_GRAM, weight_g=weight, labour_per_gram=labour), board)
    per_piece = pricing.quote(gold(BY_GRAM_LABOUR_PER_PIECE, weight_g=weight, labour_per_piece=labour), board)
    for q in (per_gram, per_piece):
        assert q.unit_price == q.metal_value + q.labour
        assert q.unit_price == q.unit_price.quantize(D("0.01")) and q.unit_price >= 0
        assert abs(q.metal_value - weight * board) <= D("0.005")
    assert per_piece.labour == labour
    assert abs(per_gram.unit_price - weight * (board + labour)) <= D("0.01")
    # a higher board never lowers the price
    higher = pricing.quote(gold(BY_GRAM_LABOUR_PER_GRAM, weight_g=weight, labour_per_gram=labour), board + 1)
    assert higher.unit_price >= per_gram.unit_price


@given(weight=grams, loss=st.decimals(min_value=D(0), max_value=D("99.99"), places=2), price=money)
def test_trade_in_never_exceeds_full_value(weight, loss, price):
    value = pricing.trade_in_value(weight, loss, price)
    assert D(0) <= value <= (weight * price).quantize(D("0.01")) + D("0.01")
