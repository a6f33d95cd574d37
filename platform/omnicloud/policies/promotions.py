"""Promotion engine: prices a whole basket in one pass through the stages of DOMAIN §2.

Stages run item → bundle → order → coupon; each stage's threshold base is the amount left after the
previous stages. Every discount is allocated to lines (stored per line per promotion for refunds) and
explained. Lines are processed in line-id order, so reordering the input changes nothing.

Quantities are Decimal (kilograms, metres); promotions that count units (第N件, 买赠, bundles) count
whole units only, the floor of each line's quantity. Who may get a promotion (its audience) is decided
before the basket is priced, by :func:`audience_matches`.
"""

import itertools
from datetime import datetime
from decimal import Decimal
from typing import Literal

import msgspec

from omnicloud.core.money import round_money
from omnicloud.policies.allocation import allocate

Stage = Literal["item", "bundle", "order", "coupon"]
MutexStrategy = Literal["priority_first", "best_for_customer", "stack_all"]

ZERO = Decimal("0.00")
STAGES: tuple[Stage, ...] = ("item", "bundle", "order", "coupon")
MAX_COMBINATIONS = 64
MAX_AMOUNT = Decimal(10) ** 15
MAX_COUNT = 1_000_000


class PromotionError(ValueError):
    """A promotion the engine cannot apply; ``field`` names the offending field of the promotion
    (``tiers``, ``off_ratio``, ``components[0].quantity``), so a save can answer a 422 naming it."""

    def __init__(self, promotion_id: str, field: str, message: str) -> None:
        super().__init__(f"{promotion_id}: {field}: {message}")
        self.field = field
        self.message = message


class Line(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A basket line. ``addon_of`` names the add-on promotion (加价购) the line was bought under;
    ``category_ancestors`` are the ancestors of ``category_id``, nearest first, so that a promotion
    on "Drinks" reaches a line in "Drinks / Tea"."""

    line_id: str
    sku_id: str
    quantity: Decimal
    unit_price: Decimal
    category_id: str | None = None
    category_ancestors: tuple[str, ...] = ()
    brand_id: str | None = None
    addon_of: str | None = None


def whole_units(quantity: Decimal) -> int:
    """The units a unit-counting promotion sees in a line: the floor of its quantity."""
    return int(quantity // 1)


class Scope(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Empty scope means every line; otherwise a line matches by sku, category or brand id."""

    sku_ids: frozenset[str] = frozenset()
    category_ids: frozenset[str] = frozenset()
    brand_ids: frozenset[str] = frozenset()

    def matches(self, line: Line) -> bool:
        if not self.sku_ids and not self.category_ids and not self.brand_ids:
            return True
        return (
            line.sku_id in self.sku_ids
            or (line.category_id is not None and line.category_id in self.category_ids)
            or any(c in self.category_ids for c in line.category_ancestors)
            or (line.brand_id is not None and line.brand_id in self.brand_ids)
        )


class Audience(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Who may get a promotion. Each non-empty dimension must match (any of its values); an empty
    dimension, and so an empty audience, means everyone. Regions match by ancestor."""

    customer_ids: frozenset[str] = frozenset()
    customer_classes: frozenset[str] = frozenset()
    levels: frozenset[str] = frozenset()
    region_ids: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    store_ids: frozenset[str] = frozenset()


def _one_of(allowed: frozenset[str], value: str | None) -> bool:
    return not allowed or (value is not None and value in allowed)


def audience_matches(
    audience: Audience,
    *,
    customer_id: str | None,
    customer_class: str | None,
    level: str | None,
    region_path: tuple[str, ...],
    channel: str | None,
    store_id: str | None,
) -> bool:
    """Whether a buyer belongs to ``audience``. ``region_path`` is the buyer's region followed by
    its ancestors, so a promotion for East China reaches a customer in Shanghai. A buyer without a
    value for a restricted dimension (an anonymous walk-in, a customer without a level) is out."""
    return (
        _one_of(audience.customer_ids, customer_id)
        and _one_of(audience.customer_classes, customer_class)
        and _one_of(audience.levels, level)
        and _one_of(audience.channels, channel)
        and _one_of(audience.store_ids, store_id)
        and (not audience.region_ids or any(r in audience.region_ids for r in region_path))
    )


class _Promotion(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", forbid_unknown_fields=True):
    promotion_id: str
    name: str = ""
    priority: int = 0
    scope: Scope = Scope()
    mutex_group: str | None = None
    mutex_strategy: MutexStrategy = "priority_first"
    valid_from: datetime | None = None
    valid_to: datetime | None = None

    def active(self, now: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= now) and (
            self.valid_to is None or now < self.valid_to
        )


class StraightDiscount(_Promotion, frozen=True, kw_only=True, tag="straight_discount"):
    """Item level: ``off_ratio`` of the unit price (0.2 = 20 % off) or ``amount_off`` per unit."""

    off_ratio: Decimal | None = None
    amount_off: Decimal | None = None


class FixedPrice(_Promotion, frozen=True, kw_only=True, tag="fixed_price"):
    """Item level (一口价): the unit price becomes ``price`` when that is lower."""

    price: Decimal


class NthItem(_Promotion, frozen=True, kw_only=True, tag="nth_item"):
    """Item level (第N件): every ``n``-th eligible unit gets ``off_ratio`` off, cheapest units first."""

    n: int
    off_ratio: Decimal


class BundleComponent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    sku_id: str
    quantity: int = 1


class Bundle(_Promotion, frozen=True, kw_only=True, tag="bundle"):
    """Bundle stage (组合/套餐): each complete set of components sells for ``set_price``."""

    components: list[BundleComponent]
    set_price: Decimal


class ReductionTier(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    threshold: Decimal
    amount: Decimal


class FullReduction(_Promotion, frozen=True, kw_only=True, tag="full_reduction"):
    """Order level (满减): the highest reached tier, or with ``cumulative`` (每满) the single tier for
    every full threshold, capped by ``max_amount``."""

    tiers: list[ReductionTier]
    cumulative: bool = False
    max_amount: Decimal | None = None


class DiscountTier(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    threshold: Decimal
    off_ratio: Decimal


class FullDiscount(_Promotion, frozen=True, kw_only=True, tag="full_discount"):
    """Order level (满折): the highest reached tier's ``off_ratio`` on the eligible amount."""

    tiers: list[DiscountTier]


class BuyXGetY(_Promotion, frozen=True, kw_only=True, tag="buy_x_get_y"):
    """Order level (买赠): for every ``buy_quantity`` eligible units, ``get_quantity`` of ``gift_sku_id``
    as a zero-price gift line; without a gift sku the cheapest eligible units are free instead."""

    buy_quantity: int
    get_quantity: int
    gift_sku_id: str | None = None


class AddOnPurchase(_Promotion, frozen=True, kw_only=True, tag="add_on"):
    """Order level (加价购): once the eligible basket reaches ``threshold``, lines bought under this
    promotion cost ``addon_price`` per unit for up to ``max_quantity`` units."""

    threshold: Decimal
    addon_price: Decimal
    max_quantity: int = 1


Promotion = (
    StraightDiscount | FixedPrice | NthItem | Bundle | FullReduction | FullDiscount | BuyXGetY | AddOnPurchase
)
PROMOTION_TYPES: dict[str, type[Promotion]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (
        StraightDiscount,
        FixedPrice,
        NthItem,
        Bundle,
        FullReduction,
        FullDiscount,
        BuyXGetY,
        AddOnPurchase,
    )
}
"""Each promotion type by its tag (the ``type`` of a stored promotion)."""
COMMON_FIELDS = frozenset(_Promotion.__struct_fields__)
"""Fields every type shares; the others are the type's own rule (``tiers``, ``n``, ...)."""


def rule_fields(kind: type[Promotion]) -> tuple[str, ...]:
    """The fields of one promotion type that are its own rule, in declaration order."""
    return tuple(f for f in kind.__struct_fields__ if f not in COMMON_FIELDS)


class Coupon(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Coupon stage: ``amount`` off once the eligible remaining amount reaches ``threshold``."""

    coupon_id: str
    threshold: Decimal
    amount: Decimal
    scope: Scope = Scope()


class Allocation(msgspec.Struct, frozen=True, kw_only=True):
    promotion_id: str
    stage: Stage
    amount: Decimal


class LineResult(msgspec.Struct, frozen=True, kw_only=True):
    line_id: str
    sku_id: str
    quantity: Decimal
    gross: Decimal
    payable: Decimal
    is_gift: bool = False
    allocations: list[Allocation] = []


class StageTotal(msgspec.Struct, frozen=True, kw_only=True):
    stage: Stage
    base: Decimal
    discount: Decimal
    after: Decimal


class AppliedPromotion(msgspec.Struct, frozen=True, kw_only=True):
    promotion_id: str
    stage: Stage
    discount: Decimal
    explanation: str


class PromotionResult(msgspec.Struct, frozen=True, kw_only=True):
    lines: list[LineResult]
    gift_lines: list[LineResult]
    stage_totals: list[StageTotal]
    applied: list[AppliedPromotion]
    gross: Decimal
    discount: Decimal
    payable: Decimal
    explanations: list[str]


def _stage_of(promotion: Promotion) -> Stage:
    if isinstance(promotion, StraightDiscount | FixedPrice | NthItem):
        return "item"
    if isinstance(promotion, Bundle):
        return "bundle"
    return "order"


def _numbers(value: object, path: str) -> list[tuple[str, Decimal | int]]:
    """Every number inside a rule value, with its path (``tiers[1].amount``)."""
    if isinstance(value, Decimal) or (isinstance(value, int) and not isinstance(value, bool)):
        return [(path, value)]
    if isinstance(value, list):
        return [n for i, item in enumerate(value) for n in _numbers(item, f"{path}[{i}]")]
    if isinstance(value, msgspec.Struct):
        return [n for f in value.__struct_fields__ for n in _numbers(getattr(value, f), f"{path}.{f}")]
    return []


def rule_numbers(promotion: Promotion) -> list[tuple[str, Decimal | int]]:
    """Every amount, ratio and count of a promotion's rule, with its path (``tiers[1].amount``)."""
    return [n for name in rule_fields(type(promotion)) for n in _numbers(getattr(promotion, name), name)]


def _check_rule_numbers(promotion: Promotion) -> None:
    """Every amount, ratio and count of a rule is finite, not negative and of sane size, so no
    configuration can overflow or poison the arithmetic at quote time."""
    for path, number in rule_numbers(promotion):
        if isinstance(number, Decimal) and not number.is_finite():
            raise PromotionError(promotion.promotion_id, path, "must be a finite number")
        if number < 0:
            raise PromotionError(promotion.promotion_id, path, "must not be negative")
        if number >= (MAX_AMOUNT if isinstance(number, Decimal) else MAX_COUNT):
            raise PromotionError(promotion.promotion_id, path, "is too large")


def _check_tiers(promotion: FullReduction | FullDiscount) -> None:
    pid = promotion.promotion_id
    if not promotion.tiers:
        raise PromotionError(pid, "tiers", "give at least one tier")
    previous = ZERO
    for i, tier in enumerate(promotion.tiers):
        if tier.threshold <= previous:
            message = "must be positive" if i == 0 else "must be above the previous tier's threshold"
            raise PromotionError(pid, f"tiers[{i}].threshold", message)
        previous = tier.threshold
        if isinstance(tier, DiscountTier) and tier.off_ratio > 1:
            raise PromotionError(pid, f"tiers[{i}].off_ratio", "must lie between 0 and 1")
    if isinstance(promotion, FullReduction) and promotion.cumulative and len(promotion.tiers) != 1:
        raise PromotionError(pid, "tiers", "a cumulative (每满) reduction has exactly one tier")


def validate_promotion(promotion: Promotion) -> None:
    """Raise :class:`PromotionError` (a ValueError naming the field) for a promotion the engine
    cannot apply."""
    pid = promotion.promotion_id
    if (
        promotion.valid_from is not None
        and promotion.valid_to is not None
        and promotion.valid_to <= promotion.valid_from
    ):
        raise PromotionError(pid, "valid_to", "must be after valid_from")
    _check_rule_numbers(promotion)
    if isinstance(promotion, StraightDiscount):
        if (promotion.off_ratio is None) == (promotion.amount_off is None):
            raise PromotionError(pid, "off_ratio", "give exactly one of off_ratio and amount_off")
        if promotion.off_ratio is not None and promotion.off_ratio > 1:
            raise PromotionError(pid, "off_ratio", "must lie between 0 and 1")
    elif isinstance(promotion, NthItem):
        if promotion.n < 1:
            raise PromotionError(pid, "n", "must be at least 1")
        if promotion.off_ratio > 1:
            raise PromotionError(pid, "off_ratio", "must lie between 0 and 1")
    elif isinstance(promotion, Bundle):
        if not promotion.components:
            raise PromotionError(pid, "components", "a bundle needs at least one component")
        seen: set[str] = set()
        for i, component in enumerate(promotion.components):
            if component.quantity < 1:
                raise PromotionError(pid, f"components[{i}].quantity", "must be at least 1")
            if component.sku_id in seen:
                raise PromotionError(pid, f"components[{i}].sku_id", "already a component of this bundle")
            seen.add(component.sku_id)
    elif isinstance(promotion, FullReduction | FullDiscount):
        _check_tiers(promotion)
    elif isinstance(promotion, BuyXGetY):
        if promotion.buy_quantity < 1:
            raise PromotionError(pid, "buy_quantity", "must be at least 1")
        if promotion.get_quantity < 1:
            raise PromotionError(pid, "get_quantity", "must be at least 1")
    elif isinstance(promotion, AddOnPurchase) and promotion.max_quantity < 1:
        raise PromotionError(pid, "max_quantity", "must be at least 1")


class _ScopeIndex:
    """The lines of one basket by SKU, category (with ancestors) and brand, so that a promotion
    scoped to a few products finds its lines without scanning the basket: one order is evaluated
    many times over (mutex groups), and most promotions touch a handful of its lines."""

    def __init__(self, lines: list[Line]) -> None:
        self.lines = lines
        self.by_sku: dict[str, list[Line]] = {}
        self.by_category: dict[str, list[Line]] = {}
        self.by_brand: dict[str, list[Line]] = {}
        for ln in lines:
            self.by_sku.setdefault(ln.sku_id, []).append(ln)
            for category in (ln.category_id, *ln.category_ancestors):
                if category is not None:
                    self.by_category.setdefault(category, []).append(ln)
            if ln.brand_id is not None:
                self.by_brand.setdefault(ln.brand_id, []).append(ln)
        self._members: dict[Scope, list[Line]] = {}
        self.gross = {ln.line_id: round_money(ln.unit_price * ln.quantity) for ln in lines}

    def members(self, scope: Scope) -> list[Line]:
        """The lines a scope matches, in basket (line id) order."""
        found = self._members.get(scope)
        if found is None:
            if not scope.sku_ids and not scope.category_ids and not scope.brand_ids:
                found = self.lines
            else:
                hits = {
                    ln.line_id: ln
                    for keys, index in (
                        (scope.sku_ids, self.by_sku),
                        (scope.category_ids, self.by_category),
                        (scope.brand_ids, self.by_brand),
                    )
                    for key in keys
                    for ln in index.get(key, ())
                }
                found = [hits[i] for i in sorted(hits)]
            self._members[scope] = found
        return found


class _Basket:
    """Mutable working state of one evaluation: current payable per line plus allocations."""

    def __init__(self, index: _ScopeIndex) -> None:
        lines = index.lines
        self.index = index
        self.lines = lines
        self.payable: dict[str, Decimal] = dict(index.gross)
        self.allocations: dict[str, list[Allocation]] = {ln.line_id: [] for ln in lines}
        self.item_discounted: set[str] = set()
        self.gifts: list[LineResult] = []
        self.applied: list[AppliedPromotion] = []

    def total(self) -> Decimal:
        return sum(self.payable.values(), ZERO)

    def eligible(self, scope: Scope) -> list[Line]:
        """Lines in scope that still have something to pay; add-on lines never count."""
        return [
            ln for ln in self.index.members(scope) if ln.addon_of is None and self.payable[ln.line_id] > 0
        ]

    def book(
        self, promotion_id: str, stage: Stage, per_line: dict[str, Decimal], explanation: str
    ) -> Decimal:
        booked = ZERO
        for line_id in sorted(per_line):
            amount = per_line[line_id]
            if amount <= 0:
                continue
            self.payable[line_id] -= amount
            self.allocations[line_id].append(
                Allocation(promotion_id=promotion_id, stage=stage, amount=amount)
            )
            booked += amount
        if booked > 0:
            self.applied.append(
                AppliedPromotion(
                    promotion_id=promotion_id, stage=stage, discount=booked, explanation=explanation
                )
            )
        return booked

    def spread(
        self, promotion_id: str, stage: Stage, lines: list[Line], amount: Decimal, explanation: str
    ) -> None:
        """Allocate an order-level amount over ``lines`` in proportion to their current payable."""
        weights = [self.payable[ln.line_id] for ln in lines]
        amount = min(round_money(amount), sum(weights, ZERO))
        if amount <= 0:
            return
        shares = allocate(amount, weights)
        self.book(
            promotion_id, stage, {ln.line_id: s for ln, s in zip(lines, shares, strict=True)}, explanation
        )


def _cheapest_units_discount(
    basket: _Basket, lines: list[Line], count: int, off_ratio: Decimal
) -> dict[str, Decimal]:
    """Discount ``count`` of the cheapest units among ``lines`` by ``off_ratio`` of their unit price."""
    per_line: dict[str, Decimal] = {}
    for ln in sorted(lines, key=lambda ln: (basket.payable[ln.line_id] / ln.quantity, ln.line_id)):
        if count <= 0:
            break
        units = min(count, whole_units(ln.quantity))
        if units == 0:
            continue
        count -= units
        unit_off = round_money(basket.payable[ln.line_id] / ln.quantity * off_ratio)
        per_line[ln.line_id] = min(unit_off * units, basket.payable[ln.line_id])
    return per_line


def _apply_item(basket: _Basket, promotion: StraightDiscount | FixedPrice | NthItem) -> None:
    # No discount-on-discount: a line takes at most one item-level promotion.
    lines = [ln for ln in basket.eligible(promotion.scope) if ln.line_id not in basket.item_discounted]
    per_line: dict[str, Decimal] = {}
    if isinstance(promotion, NthItem):
        count = sum(whole_units(ln.quantity) for ln in lines) // promotion.n
        per_line = _cheapest_units_discount(basket, lines, count, promotion.off_ratio)
        text = f"each {promotion.n}-th unit {promotion.off_ratio:%} off, cheapest first"
    else:
        for ln in lines:
            if isinstance(promotion, FixedPrice):
                unit_off = max(ZERO, ln.unit_price - promotion.price)
            elif promotion.off_ratio is not None:
                unit_off = ln.unit_price * promotion.off_ratio
            else:
                unit_off = min(ln.unit_price, promotion.amount_off or ZERO)
            per_line[ln.line_id] = min(round_money(unit_off * ln.quantity), basket.payable[ln.line_id])
        text = (
            f"fixed price {promotion.price}"
            if isinstance(promotion, FixedPrice)
            else f"{promotion.off_ratio:%} off"
            if promotion.off_ratio is not None
            else f"{promotion.amount_off} off per unit"
        )
    if basket.book(promotion.promotion_id, "item", per_line, f"{promotion.promotion_id}: {text}") > 0:
        basket.item_discounted.update(lid for lid, v in per_line.items() if v > 0)


def _apply_bundle(basket: _Basket, promotion: Bundle) -> None:
    by_sku = {c.sku_id: basket.eligible(Scope(sku_ids=frozenset({c.sku_id}))) for c in promotion.components}
    sets = min(
        sum(whole_units(ln.quantity) for ln in by_sku.get(c.sku_id, [])) // c.quantity
        for c in promotion.components
    )
    if sets == 0:
        return
    weights: dict[str, Decimal] = {}
    for component in promotion.components:
        needed = sets * component.quantity
        for ln in by_sku[component.sku_id]:
            if needed == 0:
                break
            take = min(needed, whole_units(ln.quantity))
            if take == 0:
                continue
            weights[ln.line_id] = (
                weights.get(ln.line_id, ZERO) + basket.payable[ln.line_id] * take / ln.quantity
            )
            needed -= take
    weights = {lid: round_money(w) for lid, w in weights.items()}
    discount = sum(weights.values(), ZERO) - round_money(promotion.set_price * sets)
    if discount <= 0:
        return
    ids = sorted(weights)
    shares = allocate(discount, [weights[i] for i in ids])
    text = f"{promotion.promotion_id}: {sets} set(s) for {promotion.set_price} each, {discount} off"
    basket.book(promotion.promotion_id, "bundle", dict(zip(ids, shares, strict=True)), text)


def _apply_order(basket: _Basket, promotion: FullReduction | FullDiscount | BuyXGetY | AddOnPurchase) -> None:
    lines = basket.eligible(promotion.scope)
    base = sum((basket.payable[ln.line_id] for ln in lines), ZERO)
    pid = promotion.promotion_id
    if isinstance(promotion, FullReduction):
        if promotion.cumulative:
            tier = promotion.tiers[0]
            amount = (base // tier.threshold) * tier.amount
            text = f"{pid}: {tier.amount} off per full {tier.threshold} on {base}"
        else:
            reached = [t for t in promotion.tiers if t.threshold <= base]
            amount = reached[-1].amount if reached else ZERO
            text = f"{pid}: {amount} off for reaching {reached[-1].threshold if reached else '-'} on {base}"
        if promotion.max_amount is not None:
            amount = min(amount, promotion.max_amount)
        basket.spread(pid, "order", lines, amount, text)
    elif isinstance(promotion, FullDiscount):
        reached_d = [t for t in promotion.tiers if t.threshold <= base]
        if reached_d:
            tier_d = reached_d[-1]
            text = f"{pid}: {tier_d.off_ratio:%} off for reaching {tier_d.threshold} on {base}"
            basket.spread(pid, "order", lines, base * tier_d.off_ratio, text)
    elif isinstance(promotion, BuyXGetY):
        units = sum(whole_units(ln.quantity) for ln in lines)
        if promotion.gift_sku_id is None:
            count = (units // (promotion.buy_quantity + promotion.get_quantity)) * promotion.get_quantity
            per_line = _cheapest_units_discount(basket, lines, count, Decimal(1))
            text = f"{pid}: buy {promotion.buy_quantity} get {promotion.get_quantity} free, cheapest units"
            basket.book(pid, "order", per_line, text)
        elif units >= promotion.buy_quantity:
            quantity = (units // promotion.buy_quantity) * promotion.get_quantity
            gift = LineResult(
                line_id=f"gift:{pid}",
                sku_id=promotion.gift_sku_id,
                quantity=Decimal(quantity),
                gross=ZERO,
                payable=ZERO,
                is_gift=True,
            )
            basket.gifts.append(gift)
            text = f"{pid}: {quantity} × {promotion.gift_sku_id} free for {units} eligible units"
            basket.applied.append(
                AppliedPromotion(promotion_id=pid, stage="order", discount=ZERO, explanation=text)
            )
    else:
        addons = [ln for ln in basket.lines if ln.addon_of == pid and basket.payable[ln.line_id] > 0]
        if base < promotion.threshold or not addons:
            return
        remaining = Decimal(promotion.max_quantity)
        per_line: dict[str, Decimal] = {}
        for ln in addons:
            units_at_price = min(remaining, ln.quantity)
            remaining -= units_at_price
            off = max(ZERO, ln.unit_price - promotion.addon_price) * units_at_price
            per_line[ln.line_id] = min(round_money(off), basket.payable[ln.line_id])
        text = f"{pid}: add-on at {promotion.addon_price} for a basket of {base} ≥ {promotion.threshold}"
        basket.book(pid, "order", per_line, text)


def _apply_coupon(basket: _Basket, coupon: Coupon) -> None:
    lines = basket.eligible(coupon.scope)
    base = sum((basket.payable[ln.line_id] for ln in lines), ZERO)
    if base < coupon.threshold or base <= 0:
        return
    amount = min(coupon.amount, base)
    text = f"coupon {coupon.coupon_id}: {amount} off for reaching {coupon.threshold} on {base}"
    basket.spread(coupon.coupon_id, "coupon", lines, amount, text)


def _ranked(promotions: list[Promotion]) -> list[Promotion]:
    return sorted(promotions, key=lambda p: (-p.priority, p.promotion_id))


def _evaluate(index: _ScopeIndex, chosen: list[Promotion], coupons: list[Coupon]) -> PromotionResult:
    lines = index.lines
    basket = _Basket(index)
    stage_totals: list[StageTotal] = []
    for stage in STAGES:
        base = basket.total()
        if stage == "coupon":
            for coupon in sorted(coupons, key=lambda c: c.coupon_id):
                _apply_coupon(basket, coupon)
        else:
            for promotion in _ranked([p for p in chosen if _stage_of(p) == stage]):
                if isinstance(promotion, StraightDiscount | FixedPrice | NthItem):
                    _apply_item(basket, promotion)
                elif isinstance(promotion, Bundle):
                    _apply_bundle(basket, promotion)
                else:
                    _apply_order(basket, promotion)
        after = basket.total()
        stage_totals.append(StageTotal(stage=stage, base=base, discount=base - after, after=after))
    results = [
        LineResult(
            line_id=ln.line_id,
            sku_id=ln.sku_id,
            quantity=ln.quantity,
            gross=index.gross[ln.line_id],
            payable=basket.payable[ln.line_id],
            allocations=basket.allocations[ln.line_id],
        )
        for ln in lines
    ]
    gross = sum((r.gross for r in results), ZERO)
    payable = sum((r.payable for r in results), ZERO)
    return PromotionResult(
        lines=results,
        gift_lines=basket.gifts,
        stage_totals=stage_totals,
        applied=basket.applied,
        gross=gross,
        discount=gross - payable,
        payable=payable,
        explanations=[a.explanation for a in basket.applied],
    )


def _priority_pick(
    index: _ScopeIndex, fixed: list[Promotion], members: list[Promotion], coupons: list[Coupon]
) -> list[Promotion]:
    """The highest-priority member that actually discounts something alongside the fixed set."""
    for member in _ranked(members):
        result = _evaluate(index, [*fixed, member], coupons)
        if any(a.promotion_id == member.promotion_id for a in result.applied):
            return [member]
    return []


def apply_promotions(
    lines: list[Line], promotions: list[Promotion], coupons: list[Coupon], now: datetime
) -> PromotionResult:
    """Price ``lines`` under the promotions active at ``now`` and the given coupons.

    Ungrouped promotions always apply. In a mutex group the strategy of its highest-priority member
    decides: ``stack_all`` applies every member, ``priority_first`` the highest-priority member that
    discounts something, ``best_for_customer`` the choice (one member or none per group) with the
    lowest payable, searching at most MAX_COMBINATIONS combinations after the priority-first choice.
    Raises ValueError for malformed lines, promotions or coupons.
    """
    for line in lines:
        if not (line.quantity.is_finite() and line.unit_price.is_finite()):
            raise ValueError(f"line {line.line_id}: quantity and unit price must be finite")
        if line.quantity <= 0 or line.unit_price < 0:
            raise ValueError(f"line {line.line_id}: quantity must be > 0 and unit price ≥ 0")
    if len({ln.line_id for ln in lines}) != len(lines):
        raise ValueError("line ids must be unique")
    for promotion in promotions:
        validate_promotion(promotion)
    for coupon in coupons:
        if coupon.amount < 0 or coupon.threshold < 0:
            raise ValueError(f"coupon {coupon.coupon_id}: amount and threshold must not be negative")
    ordered = _ScopeIndex(sorted(lines, key=lambda ln: ln.line_id))
    active = [p for p in promotions if p.active(now)]
    fixed: list[Promotion] = [p for p in active if p.mutex_group is None]
    groups: dict[str, list[Promotion]] = {}
    for p in active:
        if p.mutex_group is not None:
            groups.setdefault(p.mutex_group, []).append(p)
    best_groups: list[list[Promotion]] = []
    for name in sorted(groups):
        members = groups[name]
        strategy = _ranked(members)[0].mutex_strategy
        if strategy == "stack_all":
            fixed.extend(members)
        elif strategy == "priority_first":
            fixed.extend(_priority_pick(ordered, fixed, members, coupons))
        else:
            best_groups.append(_ranked(members))
    if not best_groups:
        return _evaluate(ordered, fixed, coupons)
    # Evaluate the priority-first choice first so best_for_customer is never worse, even when capped.
    first = [p for g in best_groups for p in _priority_pick(ordered, fixed, g, coupons)]
    options = [[*([[m] for m in g]), []] for g in best_groups]
    best = _evaluate(ordered, [*fixed, *first], coupons)
    for combination in itertools.islice(itertools.product(*options), MAX_COMBINATIONS):
        chosen = [p for choice in combination for p in choice]
        result = _evaluate(ordered, [*fixed, *chosen], coupons)
        if result.payable < best.payable:
            best = result
    return best
