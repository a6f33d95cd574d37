"""The jewelry pricing engine: pure functions, no I/O.

* Board price (金价牌) per metal and purity = exchange price + brand premium.
* Pricing methods per item (计价方式):
  ``by_gram_labour_per_gram`` (按克计价, 克工费): weight × board + weight × labour per gram;
  ``by_gram_labour_per_piece`` (按克计价, 件工费): weight × board + labour per piece;
  ``by_piece`` (一口价): the tag price.
* Old-gold trade-in (旧金回收): weight × (1 − loss %) × recycle price.

Amounts are ``Decimal``, rounded half-up to the cent by ``round_money``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from omnicloud.core.money import round_money

BY_GRAM_LABOUR_PER_GRAM = "by_gram_labour_per_gram"
BY_GRAM_LABOUR_PER_PIECE = "by_gram_labour_per_piece"
BY_PIECE = "by_piece"
METHODS = (BY_GRAM_LABOUR_PER_GRAM, BY_GRAM_LABOUR_PER_PIECE, BY_PIECE)

#: Bounds that keep every product representable in a ``Numeric(18, 2)`` column.
MAX_AMOUNT = Decimal("1e12")
MAX_WEIGHT_G = Decimal("1e6")

#: SKU attributes that make a SKU a jewelry item priced by this engine.
MARKER_ATTRIBUTES = frozenset({"metal", "purity", "pricing_method"})


class PricingError(ValueError):
    """An item cannot be priced; ``code`` is stable, ``field`` names the attribute at fault."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class Item(msgspec.Struct, frozen=True, kw_only=True):
    """One jewelry item as the engine sees it."""

    metal: str
    purity: str
    method: str
    weight_g: Decimal | None = None
    labour_per_gram: Decimal | None = None
    labour_per_piece: Decimal | None = None
    tag_price: Decimal | None = None

    @property
    def needs_board(self) -> bool:
        return self.method != BY_PIECE


def board_price(exchange_price: Decimal, brand_premium: Decimal) -> Decimal:
    """The board price a shop shows: the exchange price plus the brand's premium."""
    return round_money(exchange_price + brand_premium)


def is_jewelry(attributes: Mapping[str, Any] | None) -> bool:
    return bool(attributes) and MARKER_ATTRIBUTES <= set(attributes or ())


def to_amount(value: Any, field: str, *, positive: bool = False) -> Decimal:
    """A non-negative (or positive) decimal from a JSON attribute (string, int or float)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise PricingError("jewelry_bad_attribute", f"{field} must be a decimal number", field)
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise PricingError("jewelry_bad_attribute", f"{field} must be a decimal number", field) from None
    limit = MAX_WEIGHT_G if field == "weight_g" else MAX_AMOUNT
    if not amount.is_finite() or amount < 0 or (positive and amount == 0) or amount >= limit:
        bound = "> 0" if positive else ">= 0"
        raise PricingError("jewelry_bad_attribute", f"{field} must be {bound} and below {limit:f}", field)
    return amount


def item_from_attributes(
    attributes: Mapping[str, Any],
    *,
    weight_g: Decimal | None = None,
    list_price: Decimal | None = None,
    default_labour_per_gram: Decimal = Decimal("0"),
) -> Item:
    """Read an item from SKU attributes; the SKU's own weight and list price are fallbacks
    for ``weight_g`` and ``tag_price``, the tenant's default for ``labour_per_gram``."""
    method = attributes["pricing_method"]
    if method not in METHODS:
        raise PricingError(
            "jewelry_bad_pricing_method",
            f"pricing_method must be one of {', '.join(METHODS)}, not {method!r}",
            "pricing_method",
        )
    metal, purity = attributes["metal"], attributes["purity"]
    if not isinstance(metal, str) or not metal:
        raise PricingError("jewelry_bad_attribute", "metal must be a non-empty string", "metal")
    if not isinstance(purity, str) or not purity:
        raise PricingError("jewelry_bad_attribute", "purity must be a non-empty string", "purity")

    def amount(key: str, fallback: Decimal | None = None, *, positive: bool = False) -> Decimal | None:
        raw = attributes.get(key)
        if raw is None:
            return fallback
        return to_amount(raw, key, positive=positive)

    return Item(
        metal=metal,
        purity=purity,
        method=method,
        weight_g=amount("weight_g", weight_g, positive=True),
        labour_per_gram=amount("labour_per_gram", default_labour_per_gram),
        labour_per_piece=amount("labour_per_piece"),
        tag_price=amount("tag_price", list_price),
    )


class Quote(msgspec.Struct, frozen=True, kw_only=True):
    """A priced piece. ``metal_value`` and ``labour`` are each rounded to the cent and
    ``unit_price`` is their sum, so the breakdown a customer sees adds up exactly. A
    ``by_piece`` item has neither part: its tag price is the whole price."""

    unit_price: Decimal
    metal_value: Decimal | None = None
    labour: Decimal | None = None


def quote(item: Item, board: Decimal | None) -> Quote:
    """Price one piece. ``board`` is the board price per gram of the item's purity (ignored
    for ``by_piece``)."""
    if item.method == BY_PIECE:
        if item.tag_price is None:
            raise PricingError("jewelry_tag_price_missing", "a by_piece item needs a tag_price", "tag_price")
        return Quote(unit_price=round_money(item.tag_price))
    if board is None:
        raise PricingError(
            "jewelry_board_price_missing", f"no board price for {item.metal} {item.purity}", "purity"
        )
    if item.weight_g is None:
        raise PricingError("jewelry_weight_missing", "a by-gram item needs weight_g", "weight_g")
    if item.method == BY_GRAM_LABOUR_PER_GRAM:
        labour = item.weight_g * (item.labour_per_gram or Decimal("0"))
    elif item.labour_per_piece is None:
        raise PricingError(
            "jewelry_labour_missing",
            "a by_gram_labour_per_piece item needs labour_per_piece",
            "labour_per_piece",
        )
    else:
        labour = item.labour_per_piece
    metal_value, labour = round_money(item.weight_g * board), round_money(labour)
    return Quote(unit_price=metal_value + labour, metal_value=metal_value, labour=labour)


def unit_price(item: Item, board: Decimal | None) -> Decimal:
    return quote(item, board).unit_price


def trade_in_value(weight_g: Decimal, loss_pct: Decimal, recycle_price: Decimal) -> Decimal:
    """What old gold is worth towards a purchase: weight × (1 − loss %) × recycle price."""
    if not weight_g.is_finite() or not 0 < weight_g < MAX_WEIGHT_G:
        raise PricingError(
            "jewelry_bad_weight", f"weight_g must be > 0 and below {MAX_WEIGHT_G:f}", "weight_g"
        )
    if not loss_pct.is_finite() or not Decimal("0") <= loss_pct < Decimal("100"):
        raise PricingError("jewelry_bad_loss", "loss_pct must be >= 0 and < 100", "loss_pct")
    return round_money(weight_g * (Decimal("100") - loss_pct) / Decimal("100") * recycle_price)
