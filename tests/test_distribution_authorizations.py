"""Product authorisation (商品授权) through the real app: the most specific rule wins (subject, then
product, categories and regions by ancestor), deny beats grant at the same specificity, a tenant
without rules sells everything; a basket is decided in a bounded number of statements from
rules compiled per revision; what a customer may buy, paged; save-time checks; dealer visibility."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import event

from omnicloud.core.db import utcnow
from omnicloud.core.tenancy import tenant_scope
from omnicloud.distribution import service
from tests.fixtures import TenantHandle
from tests.world_distribution import Brand

RULES = "/api/v1/product-authorizations"
TODAY = utcnow().date()


@pytest.fixture
async def brand(client: httpx.AsyncClient, tenant_a: TenantHandle) -> Brand:
    """SKUs LAGER1 (LAGER, ACME), BEER1 (BEER, ZEN), FOOD1 (FOOD, ACME) and PLAIN; customers C1
    (level A, class K, Shanghai), C2 (level B, North), C3 (Shanghai), C4 (class K)."""
    b = await Brand(client, tenant_a).basics()
    await b.sku("LAGER1", category="LAGER", brand="ACME")
    await b.sku("BEER1", category="BEER", brand="ZEN")
    await b.sku("FOOD1", category="FOOD", brand="ACME")
    await b.sku("PLAIN")
    await b.customer("C1", level="A", customer_class="K", region_id=b.ids["SH"])
    await b.customer("C2", level="B", region_id=b.ids["NORTH"])
    await b.customer("C3", region_id=b.ids["SH"])
    await b.customer("C4", customer_class="K")
    return b


SKUS = ("LAGER1", "BEER1", "FOOD1", "PLAIN")


async def denied(
    app: Any, b: Brand, customer: str, day: date = TODAY, skus: Sequence[str] = SKUS
) -> set[str]:
    """The codes of ``skus`` that ``customer`` may not buy on ``day`` (unknown ids as given)."""
    names = {UUID(b.ids[s]) if s in b.ids else UUID(s): s for s in skus}
    with tenant_scope(UUID(b.t.id)):
        async with app.state.db.transaction() as s:
            found = await service.unauthorized_skus(
                s, customer_id=UUID(b.ids[customer]), sku_ids=list(names), day=day
            )
    return {names[i] for i in found}


async def rule(b: Brand, effect: str, **body: Any) -> str:
    for name in ("sku_ids", "category_ids", "brand_ids"):
        if name in body:
            body[name] = [b.ids[x] for x in body[name]]
    for name in ("customer_id", "region_id"):
        if name in body:
            body[name] = b.ids[body[name]]
    return str((await b.post(RULES, {"effect": effect, **body}))["id"])


async def test_without_rules_everything_is_authorised(app: Any, brand: Brand) -> None:
    unknown = str(UUID(int=42))
    assert await denied(app, brand, "C1", skus=(*SKUS, unknown)) == {unknown}


async def test_the_most_specific_rule_wins_and_deny_beats_grant(app: Any, brand: Brand) -> None:
    # A whitelist: deny everything to everyone, grant drinks in East China (by ancestor).
    await rule(brand, "deny")
    await rule(brand, "grant", region_id="EAST", category_ids=["DRINKS"])
    assert await denied(app, brand, "C1") == {"FOOD1", "PLAIN"}
    assert await denied(app, brand, "C2") == set(SKUS)
    # A nearer region is more specific than a farther one.
    await rule(brand, "deny", region_id="SH", category_ids=["BEER"])
    assert await denied(app, brand, "C3") == {"LAGER1", "BEER1", "FOOD1", "PLAIN"}
    # A customer class beats a region; a level beats a class.
    await rule(brand, "grant", customer_class="K", sku_ids=["LAGER1"])
    assert await denied(app, brand, "C4") == {"BEER1", "FOOD1", "PLAIN"}
    await rule(brand, "deny", level="A", sku_ids=["LAGER1"])
    assert "LAGER1" in await denied(app, brand, "C1")
    # The customer's own rules beat all of those; within them, SKU > category > brand.
    await rule(brand, "grant", customer_id="C1", brand_ids=["ACME"])
    assert await denied(app, brand, "C1") == {"BEER1", "PLAIN"}
    await rule(brand, "deny", customer_id="C1", category_ids=["BEER"])
    assert await denied(app, brand, "C1") == {"LAGER1", "BEER1", "PLAIN"}
    # The same specificity: deny beats grant.
    await rule(brand, "grant", customer_id="C1", category_ids=["BEER"])
    assert await denied(app, brand, "C1") == {"LAGER1", "BEER1", "PLAIN"}
    # A nearer category is more specific: LAGER beats its parent BEER.
    await rule(brand, "grant", customer_id="C1", category_ids=["LAGER"])
    assert await denied(app, brand, "C1") == {"BEER1", "PLAIN"}
    await rule(brand, "grant", customer_id="C1", sku_ids=["PLAIN"])
    assert await denied(app, brand, "C1") == {"BEER1"}
    # Other customers were never touched by C1's rules.
    assert await denied(app, brand, "C2") == set(SKUS)


async def test_rules_apply_within_their_validity(app: Any, brand: Brand) -> None:
    soon = TODAY + timedelta(days=10)
    r = await brand.post(
        RULES,
        {
            "effect": "deny",
            "sku_ids": [brand.ids["FOOD1"]],
            "valid_from": soon.isoformat(),
            "valid_to": (soon + timedelta(days=5)).isoformat(),
        },
    )
    assert r["subject"] == "all"
    assert await denied(app, brand, "C1") == set()
    assert await denied(app, brand, "C1", soon) == {"FOOD1"}
    assert await denied(app, brand, "C1", soon + timedelta(days=6)) == set()


async def test_a_basket_costs_the_same_few_statements_whatever_its_size(app: Any, brand: Brand) -> None:
    skus = [UUID(await brand.sku(f"B{i}", category="LAGER", brand="ACME")) for i in range(12)]
    await rule(brand, "deny")
    await rule(brand, "grant", region_id="EAST", category_ids=["BEER"])
    await rule(brand, "deny", customer_id="C1", sku_ids=["LAGER1"])
    seen: list[str] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    async def run(basket: list[UUID]) -> tuple[int, set[UUID]]:
        seen.clear()
        engine = app.state.db.engine.sync_engine
        with tenant_scope(UUID(brand.t.id)):
            async with app.state.db.transaction() as s:
                event.listen(engine, "before_cursor_execute", on_execute)
                try:
                    found = await service.unauthorized_skus(
                        s, customer_id=UUID(brand.ids["C1"]), sku_ids=basket, day=TODAY
                    )
                finally:
                    event.remove(engine, "before_cursor_execute", on_execute)
        return len(seen), found

    first, _ = await run(skus[:2])  # compiles the rules
    small, found_small = await run(skus[:2])
    large, found_large = await run([*skus, UUID(brand.ids["LAGER1"]), UUID(brand.ids["FOOD1"])])
    assert found_small == set()
    assert found_large == {UUID(brand.ids["LAGER1"]), UUID(brand.ids["FOOD1"])}
    assert small == large <= 6, (small, large)
    assert first == small + 1  # the compile is one select, then the cache serves

    # A change bumps the revision: the next basket sees it.
    rule_id = await rule(brand, "deny", customer_id="C1", sku_ids=[f"B{i}" for i in range(3)])
    _, found = await run(skus[:4])
    assert found == set(skus[:3])
    await brand.call("DELETE", f"{RULES}/{rule_id}", headers={"If-Match": '"1"'}, status=204)
    _, found = await run(skus[:4])
    assert found == set()


async def test_unauthorized_skus_needs_a_known_customer(app: Any, brand: Brand) -> None:
    from omnicloud.core.errors import Unprocessable

    with tenant_scope(UUID(brand.t.id)):
        async with app.state.db.transaction() as s:
            with pytest.raises(Unprocessable) as caught:
                await service.unauthorized_skus(s, customer_id=UUID(int=5), sku_ids=[], day=TODAY)
    assert caught.value.errors[0]["field"] == "customer_id"


async def _authorized(
    b: Brand, customer: str, *, key: str | None = None, limit: int = 1, **params: Any
) -> list[str]:
    """Every page of a customer's authorised SKUs, as codes in id order."""
    codes: list[str] = []
    cursor = None
    while True:
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        page = await b.get(f"/api/v1/customers/{b.ids[customer]}/authorized-skus", key=key, params=query)
        codes.extend(item["code"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return codes


async def test_what_a_customer_may_buy_is_listed_page_by_page(brand: Brand) -> None:
    order = sorted(SKUS, key=lambda s: UUID(brand.ids[s]))
    assert await _authorized(brand, "C1") == order
    deny_all = await rule(brand, "deny")
    assert await _authorized(brand, "C1") == []
    # Only SKUs the grants name can be authorised.
    await rule(brand, "grant", customer_id="C1", sku_ids=["PLAIN", "FOOD1"])
    assert await _authorized(brand, "C1") == [s for s in order if s in ("PLAIN", "FOOD1")]
    # A category grant: the whole catalogue is examined.
    grant = await rule(brand, "grant", region_id="EAST", category_ids=["DRINKS"])
    expected = [s for s in order if s != "BEER1"]
    await rule(brand, "deny", customer_id="C1", sku_ids=["BEER1"])
    assert await _authorized(brand, "C1") == expected
    assert await _authorized(brand, "C1", limit=50) == expected
    page = await brand.get(f"/api/v1/customers/{brand.ids['C1']}/authorized-skus")
    by_code = {item["code"]: item for item in page["items"]}
    assert by_code["LAGER1"]["rule_id"] == grant
    assert by_code["LAGER1"]["category_id"] == brand.ids["LAGER"]
    assert by_code["LAGER1"]["brand_id"] == brand.ids["ACME"]
    # On another day the rules valid then decide.
    await brand.call("DELETE", f"{RULES}/{deny_all}", headers={"If-Match": '"1"'}, status=204)
    later = (TODAY + timedelta(days=3)).isoformat()
    await brand.call("PATCH", f"{RULES}/{grant}", {"valid_from": later}, headers={"If-Match": '"1"'})
    assert await _authorized(brand, "C1") == expected
    assert await _authorized(brand, "C2", on=later) == order


async def test_rules_are_checked_when_saved(brand: Brand) -> None:
    ids = brand.ids
    r = await brand.post(RULES, {"effect": "grant", "customer_id": ids["C1"], "level": "A"}, status=422)
    assert r["errors"][0]["field"] == "level"
    unknown = str(UUID(int=77))
    for body, field in (
        ({"sku_ids": [ids["PLAIN"], unknown]}, "sku_ids[1]"),
        ({"category_ids": [unknown]}, "category_ids[0]"),
        ({"brand_ids": [ids["ACME"], unknown]}, "brand_ids[1]"),
        ({"customer_id": unknown}, "customer_id"),
        ({"region_id": unknown}, "region_id"),
        ({"valid_from": "2024-05-02", "valid_to": "2024-05-01"}, "data"),
        ({"effect": "maybe"}, "effect"),
    ):
        r = await brand.post(RULES, {"effect": "grant", **body}, status=422)
        assert r["errors"][0]["field"] == field, (body, r)
    created = await brand.post(RULES, {"effect": "grant", "level": "A", "sku_ids": [ids["PLAIN"]] * 2})
    assert created["sku_ids"] == [ids["PLAIN"]] and created["subject"] == "level"
    url = f"{RULES}/{created['id']}"
    await brand.call("PATCH", url, {"effect": "deny"}, status=428)
    await brand.call("PATCH", url, {"effect": "deny"}, headers={"If-Match": '"2"'}, status=412)
    r = await brand.call("PATCH", url, {"customer_id": ids["C1"]}, headers={"If-Match": '"1"'}, status=422)
    assert r["errors"][0]["field"] == "level"
    moved = await brand.call(
        "PATCH", url, {"customer_id": ids["C1"], "level": None}, headers={"If-Match": '"1"'}
    )
    assert (moved["subject"], moved["version"], moved["level"]) == ("customer", 2, None)
    same = await brand.call("PATCH", url, {"effect": "grant"}, headers={"If-Match": '"2"'})
    assert same["version"] == 2  # nothing changed
    r = await brand.c.get(url, headers=brand.t.auth)
    assert r.headers["etag"] == '"2"'
    await brand.call("DELETE", url, status=428)
    await brand.call("DELETE", url, headers={"If-Match": '"1"'}, status=412)
    await brand.call("DELETE", url, headers={"If-Match": '"2"'}, status=204)
    await brand.get(url, status=404)


async def test_dealers_see_rules_of_their_subtree_and_write_none(brand: Brand) -> None:
    ids = brand.ids
    await brand.customer("C1A", parent="C1")
    c1 = await brand.user_key("C1", "dealer", ids["C1"])
    own = await rule(brand, "grant", customer_id="C1", sku_ids=["PLAIN"])
    below = await rule(brand, "deny", customer_id="C1A", sku_ids=["PLAIN"])
    other = await rule(brand, "grant", customer_id="C2", sku_ids=["PLAIN"])
    general = await rule(brand, "deny", level="A")
    listed = {r["id"] for r in (await brand.get(RULES, key=c1))["items"]}
    assert listed == {own, below}
    for hidden in (other, general):
        await brand.get(f"{RULES}/{hidden}", key=c1, status=404)
    await brand.get(f"{RULES}/{own}", key=c1)
    await brand.post(RULES, {"effect": "grant", "customer_id": ids["C1A"]}, key=c1, status=403)
    await brand.call("PATCH", f"{RULES}/{own}", {}, key=c1, headers={"If-Match": '"1"'}, status=403)
    await brand.call("DELETE", f"{RULES}/{own}", key=c1, headers={"If-Match": '"1"'}, status=403)
    # What a customer may buy: itself and its subtree only.
    order = sorted(SKUS, key=lambda s: UUID(ids[s]))
    assert await _authorized(brand, "C1A", key=c1, limit=10) == [s for s in order if s != "PLAIN"]
    await brand.get(f"/api/v1/customers/{ids['C2']}/authorized-skus", key=c1, status=404)
    filtered = await brand.get(RULES, params={"customer_id": ids["C1"], "effect": "grant"})
    assert [r["id"] for r in filtered["items"]] == [own]
