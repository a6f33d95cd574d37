"""Pure distribution rules: product authorisation (商品授权) and supply routing (供货关系).

No I/O: the service loads rules, buyers and SKU facts and calls these functions, so a whole
basket is decided in one pass over compiled rules.

Authorisation. A rule names a subject (a customer, a level, a customer class, a region matched by
ancestor, or every buyer) and products (SKUs, categories matched by ancestor, brands, or every
product), and grants or denies them. For each SKU the most specific matching rule wins:
subject first (customer > level > customer class > region, nearer region first > every buyer),
then product (SKU > category, nearer category first > brand > every product). At equal
specificity deny beats grant. A SKU no rule matches is authorised, so a tenant without rules
sells everything to everyone; a whitelist is one deny rule for every buyer and every product,
which every more specific grant overrides.

Routing. Among the relations of a buyer that are valid on the day, match the SKU and match the
ship-to region (by ancestor), the highest priority wins, then the more specific product match,
then the older relation. Overlapping relations at one priority are refused when saved, so the
tie-breaks only matter after the catalog moved a product.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Literal

import msgspec

Effect = Literal["grant", "deny"]
Subject = Literal["customer", "level", "customer_class", "region", "all"]
Specificity = tuple[int, int]  # (rank, -distance): higher is more specific

SUBJECT_RANK: dict[str, int] = {"customer": 4, "level": 3, "customer_class": 2, "region": 1, "all": 0}
SKU, CATEGORY, BRAND, EVERY_PRODUCT = 3, 2, 1, 0


def valid_on(valid_from: date | None, valid_to: date | None, day: date) -> bool:
    return (valid_from is None or valid_from <= day) and (valid_to is None or day <= valid_to)


def dates_overlap(a_from: date | None, a_to: date | None, b_from: date | None, b_to: date | None) -> bool:
    return (a_to is None or b_from is None or b_from <= a_to) and (
        b_to is None or a_from is None or a_from <= b_to
    )


class Product(msgspec.Struct, frozen=True, kw_only=True):
    """A SKU as the rules see it; ``categories`` is its product's category, then the ancestors."""

    sku_id: str
    categories: tuple[str, ...] = ()
    brand_id: str | None = None


class Buyer(msgspec.Struct, frozen=True, kw_only=True):
    """Who buys; ``region_path`` is the customer's region, then its ancestors."""

    customer_id: str
    customer_class: str | None = None
    level: str | None = None
    region_path: tuple[str, ...] = ()


class Products(msgspec.Struct, frozen=True, kw_only=True):
    """Products named by SKU, category (with its descendants) or brand; all empty: every product."""

    sku_ids: frozenset[str] = frozenset()
    category_ids: frozenset[str] = frozenset()
    brand_ids: frozenset[str] = frozenset()

    @property
    def everything(self) -> bool:
        return not (self.sku_ids or self.category_ids or self.brand_ids)

    def match(self, product: Product) -> Specificity | None:
        """How specifically these products name ``product``, or None when they do not."""
        if product.sku_id in self.sku_ids:
            return (SKU, 0)
        for distance, category in enumerate(product.categories):
            if category in self.category_ids:
                return (CATEGORY, -distance)
        if product.brand_id is not None and product.brand_id in self.brand_ids:
            return (BRAND, 0)
        if self.everything:
            return (EVERY_PRODUCT, 0)
        return None


# --- authorisation ------------------------------------------------------------------------


class AuthRule(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    effect: Effect
    subject: Subject
    subject_value: str | None  # the customer id, level, class or region id; None for "all"
    products: Products
    valid_from: date | None = None
    valid_to: date | None = None


class AuthIndex(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's rules by subject, so a buyer's rules are a few dictionary lookups."""

    by_subject: dict[tuple[str, str | None], tuple[AuthRule, ...]]
    size: int


def compile_rules(rules: Iterable[AuthRule]) -> AuthIndex:
    grouped: dict[tuple[str, str | None], list[AuthRule]] = {}
    size = 0
    for rule in rules:
        grouped.setdefault((rule.subject, rule.subject_value), []).append(rule)
        size += 1
    return AuthIndex(by_subject={k: tuple(v) for k, v in grouped.items()}, size=size)


def buyer_rules(index: AuthIndex, buyer: Buyer, day: date) -> list[tuple[Specificity, tuple[AuthRule, ...]]]:
    """The rules that apply to ``buyer`` on ``day``, grouped by subject, most specific first."""
    keys: list[tuple[Specificity, tuple[str, str | None]]] = [
        ((SUBJECT_RANK["customer"], 0), ("customer", buyer.customer_id))
    ]
    if buyer.level is not None:
        keys.append(((SUBJECT_RANK["level"], 0), ("level", buyer.level)))
    if buyer.customer_class is not None:
        keys.append(((SUBJECT_RANK["customer_class"], 0), ("customer_class", buyer.customer_class)))
    keys.extend(
        ((SUBJECT_RANK["region"], -distance), ("region", region))
        for distance, region in enumerate(buyer.region_path)
    )
    keys.append(((SUBJECT_RANK["all"], 0), ("all", None)))
    out = []
    for specificity, key in keys:
        rules = tuple(r for r in index.by_subject.get(key, ()) if valid_on(r.valid_from, r.valid_to, day))
        if rules:
            out.append((specificity, rules))
    return out


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    authorized: bool
    rule_id: str | None  # the deciding rule; None: no rule matched (authorised by default)


def decide(groups: list[tuple[Specificity, tuple[AuthRule, ...]]], product: Product) -> Decision:
    """The most specific matching rule decides; deny beats grant at the same specificity."""
    for _, rules in groups:
        best: Specificity | None = None
        winner: AuthRule | None = None
        for rule in rules:
            found = rule.products.match(product)
            if found is None:
                continue
            if best is None or found > best or (found == best and rule.effect == "deny"):
                best, winner = found, rule
        if winner is not None:
            return Decision(authorized=winner.effect == "grant", rule_id=winner.id)
    return Decision(authorized=True, rule_id=None)


def unauthorized(index: AuthIndex, buyer: Buyer, products: Iterable[Product], day: date) -> set[str]:
    """The SKU ids of ``products`` that ``buyer`` may not buy on ``day``."""
    if index.size == 0:
        return set()
    groups = buyer_rules(index, buyer, day)
    return {p.sku_id for p in products if not decide(groups, p).authorized}


def only_grants_can_authorize(groups: list[tuple[Specificity, tuple[AuthRule, ...]]]) -> Products | None:
    """When a deny for every product applies to the buyer above every grant for every product,
    the only SKUs it may buy are those its more specific grants name: returns them. Otherwise
    (unmatched SKUs are authorised) returns None. Lets a listing look at candidates only."""
    names: dict[str, set[str]] = {"sku_ids": set(), "category_ids": set(), "brand_ids": set()}
    for _, rules in groups:
        for r in rules:
            if r.effect == "grant":
                names["sku_ids"] |= r.products.sku_ids
                names["category_ids"] |= r.products.category_ids
                names["brand_ids"] |= r.products.brand_ids
        everything = [r for r in rules if r.products.everything]
        if any(r.effect == "deny" for r in everything):
            return Products(**{k: frozenset(v) for k, v in names.items()})
        if everything:  # a grant for every product: any SKU may be authorised
            return None
    return None


# --- supply routing -------------------------------------------------------------------------


class Relation(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    seller_id: str | None  # None: the brand
    products: Products
    region_ids: frozenset[str] = frozenset()
    priority: int = 0
    drop_ship_allowed: bool = False
    valid_from: date | None = None
    valid_to: date | None = None


def route(
    relations: Iterable[Relation], product: Product, region_path: tuple[str, ...], day: date
) -> Relation | None:
    """The relation that supplies ``product`` shipped to a region with ``region_path`` (the region,
    then its ancestors) on ``day``, or None when none does: the highest priority, then the more
    specific product match, then the older relation (ids are time-ordered)."""
    best: tuple[int, Specificity] | None = None
    winner: Relation | None = None
    for rel in sorted(relations, key=lambda r: r.id):
        if not valid_on(rel.valid_from, rel.valid_to, day):
            continue
        if rel.region_ids and not rel.region_ids.intersection(region_path):
            continue
        found = rel.products.match(product)
        if found is None:
            continue
        key = (rel.priority, found)
        if best is None or key > best:
            best, winner = key, rel
    return winner


def products_overlap(
    a: Products,
    b: Products,
    facts: Mapping[str, Product],
    category_lineage: Mapping[str, tuple[str, ...]],
) -> bool:
    """Whether some SKU could match both: conservatively true for a category against a brand (a
    product of the brand may sit in the category, now or later)."""
    if a.everything or b.everything:
        return True
    if a.sku_ids & b.sku_ids or a.brand_ids & b.brand_ids:
        return True
    if (a.category_ids and b.brand_ids) or (a.brand_ids and b.category_ids):
        return True
    for x, y in ((a, b), (b, a)):
        for cat in x.category_ids:
            if y.category_ids.intersection(category_lineage.get(cat, (cat,))):
                return True
        for sku in x.sku_ids:
            product = facts.get(sku)
            if product is None:
                continue
            if y.category_ids.intersection(product.categories):
                return True
            if product.brand_id is not None and product.brand_id in y.brand_ids:
                return True
    return False


def regions_overlap(
    a: frozenset[str], b: frozenset[str], region_lineage: Mapping[str, tuple[str, ...]]
) -> bool:
    """Whether some ship-to region matches both lists (empty: every region)."""
    if not a or not b:
        return True
    return any(
        y.intersection(region_lineage.get(region, (region,))) for x, y in ((a, b), (b, a)) for region in x
    )
