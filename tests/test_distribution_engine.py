"""The pure distribution rules, by property: an authorisation is decided by the rule that
maximises (subject specificity, product specificity, deny over grant) whatever the order of the
rules; listing candidates never misses an authorised SKU; routing is independent of order."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from omnicloud.distribution import engine
from omnicloud.distribution.engine import AuthRule, Buyer, Product, Products, Relation

DAY = date(2024, 5, 1)
BUYER = Buyer(customer_id="c1", customer_class="K", level="A", region_path=("r2", "r1", "r0"))
SUBJECTS: list[tuple[engine.Subject, str | None]] = [
    ("customer", "c1"),
    ("customer", "c2"),
    ("level", "A"),
    ("level", "B"),
    ("customer_class", "K"),
    ("region", "r2"),
    ("region", "r1"),
    ("region", "r0"),
    ("region", "x"),
    ("all", None),
]
PRODUCTS = [
    Product(sku_id="s1", categories=("k2", "k1", "k0"), brand_id="b1"),
    Product(sku_id="s2", categories=("k1", "k0"), brand_id="b2"),
    Product(sku_id="s3"),
]

products = st.builds(
    Products,
    sku_ids=st.frozensets(st.sampled_from(["s1", "s2", "s3"]), max_size=2),
    category_ids=st.frozensets(st.sampled_from(["k0", "k1", "k2"]), max_size=2),
    brand_ids=st.frozensets(st.sampled_from(["b1", "b2"]), max_size=1),
)


@st.composite
def rules(draw: st.DrawFn) -> list[AuthRule]:
    out = []
    for i in range(draw(st.integers(0, 8))):
        subject, value = draw(st.sampled_from(SUBJECTS))
        valid_from = draw(st.sampled_from([None, date(2024, 1, 1), date(2024, 6, 1)]))
        out.append(
            AuthRule(
                id=f"r{i}",
                effect=draw(st.sampled_from(["grant", "deny"])),
                subject=subject,
                subject_value=value,
                products=draw(products),
                valid_from=valid_from,
            )
        )
    return out


def _subject_key(rule: AuthRule) -> tuple[int, int] | None:
    """How specifically a rule's subject names BUYER, or None when it does not."""
    if rule.subject == "region":
        if rule.subject_value not in BUYER.region_path:
            return None
        return (engine.SUBJECT_RANK["region"], -BUYER.region_path.index(rule.subject_value))
    own = {"customer": BUYER.customer_id, "level": BUYER.level, "customer_class": BUYER.customer_class}
    if rule.subject != "all" and own[rule.subject] != rule.subject_value:
        return None
    return (engine.SUBJECT_RANK[rule.subject], 0)


def reference(all_rules: list[AuthRule], product: Product) -> bool:
    """Authorised unless the matching rule with the greatest (subject, product, deny) says deny."""
    best = None
    for rule in all_rules:
        subject = _subject_key(rule)
        match = rule.products.match(product)
        if subject is None or match is None or not engine.valid_on(rule.valid_from, rule.valid_to, DAY):
            continue
        key = (subject, match, rule.effect == "deny")
        best = key if best is None or key > best else best
    return best is None or not best[2]


@settings(max_examples=300, deadline=None)
@given(rules(), st.randoms(use_true_random=False))
def test_the_greatest_matching_rule_decides_in_any_order(all_rules: list[AuthRule], rnd) -> None:
    shuffled = list(all_rules)
    rnd.shuffle(shuffled)
    for ordering in (all_rules, shuffled):
        groups = engine.buyer_rules(engine.compile_rules(ordering), BUYER, DAY)
        for product in PRODUCTS:
            assert engine.decide(groups, product).authorized == reference(all_rules, product)
    denied = engine.unauthorized(engine.compile_rules(all_rules), BUYER, PRODUCTS, DAY)
    assert denied == {p.sku_id for p in PRODUCTS if not reference(all_rules, p)}


@settings(max_examples=300, deadline=None)
@given(rules())
def test_candidates_never_miss_an_authorised_sku(all_rules: list[AuthRule]) -> None:
    groups = engine.buyer_rules(engine.compile_rules(all_rules), BUYER, DAY)
    candidates = engine.only_grants_can_authorize(groups)
    if candidates is None:
        return
    for product in PRODUCTS:
        if engine.decide(groups, product).authorized:
            assert not candidates.everything and candidates.match(product) is not None


def test_no_rules_authorise_everything_and_a_deny_all_rule_makes_a_whitelist() -> None:
    assert engine.unauthorized(engine.compile_rules([]), BUYER, PRODUCTS, DAY) == set()
    whitelist = [
        AuthRule(id="a", effect="deny", subject="all", subject_value=None, products=Products()),
        AuthRule(
            id="b",
            effect="grant",
            subject="region",
            subject_value="r0",
            products=Products(category_ids=frozenset({"k1"})),
        ),
    ]
    index = engine.compile_rules(whitelist)
    assert engine.unauthorized(index, BUYER, PRODUCTS, DAY) == {"s3"}
    groups = engine.buyer_rules(index, BUYER, DAY)
    assert engine.only_grants_can_authorize(groups) == Products(category_ids=frozenset({"k1"}))
    decision = engine.decide(groups, PRODUCTS[0])
    assert decision == engine.Decision(authorized=True, rule_id="b")


relations = st.lists(
    st.builds(
        Relation,
        id=st.uuids().map(str),
        seller_id=st.sampled_from([None, "d1", "d2"]),
        products=products,
        region_ids=st.frozensets(st.sampled_from(["r0", "r1", "x"]), max_size=2),
        priority=st.integers(0, 2),
        drop_ship_allowed=st.booleans(),
        valid_to=st.sampled_from([None, date(2024, 1, 1)]),
    ),
    max_size=6,
    unique_by=lambda r: r.id,
)


@settings(max_examples=300, deadline=None)
@given(relations, st.randoms(use_true_random=False))
def test_routing_is_independent_of_order_and_picks_the_best(rels: list[Relation], rnd) -> None:
    shuffled = list(rels)
    rnd.shuffle(shuffled)
    path = ("r2", "r1", "r0")
    for product in PRODUCTS:
        winner = engine.route(rels, product, path, DAY)
        assert engine.route(shuffled, product, path, DAY) == winner
        eligible = [
            r
            for r in rels
            if engine.valid_on(r.valid_from, r.valid_to, DAY)
            and (not r.region_ids or r.region_ids & set(path))
            and r.products.match(product) is not None
        ]
        if not eligible:
            assert winner is None
            continue
        assert winner is not None
        best = max((r.priority, r.products.match(product)) for r in eligible)
        assert (winner.priority, winner.products.match(product)) == best
        assert winner.id == min(r.id for r in eligible if (r.priority, r.products.match(product)) == best)


def test_overlap_is_conservative_between_a_category_and_a_brand() -> None:
    lineage = {"k2": ("k2", "k1", "k0"), "k1": ("k1", "k0"), "k0": ("k0",)}
    facts = {p.sku_id: p for p in PRODUCTS}

    def overlap(a: Products, b: Products) -> bool:
        return engine.products_overlap(a, b, facts, lineage) and engine.products_overlap(b, a, facts, lineage)

    assert overlap(Products(category_ids=frozenset({"k0"})), Products(category_ids=frozenset({"k2"})))
    assert overlap(Products(sku_ids=frozenset({"s1"})), Products(category_ids=frozenset({"k1"})))
    assert overlap(Products(sku_ids=frozenset({"s1"})), Products(brand_ids=frozenset({"b1"})))
    assert overlap(Products(category_ids=frozenset({"k2"})), Products(brand_ids=frozenset({"b2"})))
    assert overlap(Products(), Products(sku_ids=frozenset({"s3"})))
    assert not engine.products_overlap(
        Products(sku_ids=frozenset({"s2"})), Products(category_ids=frozenset({"k2"})), facts, lineage
    )
    assert not engine.products_overlap(
        Products(sku_ids=frozenset({"s3"})), Products(brand_ids=frozenset({"b1"})), facts, lineage
    )
    regions = {"r2": ("r2", "r1", "r0"), "r1": ("r1", "r0"), "x": ("x",)}
    assert engine.regions_overlap(frozenset({"r2"}), frozenset({"r0"}), regions)
    assert engine.regions_overlap(frozenset(), frozenset({"x"}), regions)
    assert not engine.regions_overlap(frozenset({"r2"}), frozenset({"x"}), regions)
