"""Supply relations (供货关系, DOMAIN §7) and guide price ranges (指导价) through the real app: the
seller must be the brand or an ancestor of the buyer, overlapping relations at one priority are a
422 naming both, routing a basket (priority, product specificity, region by ancestor, validity,
the brand by default, a moved tree) in bounded statements, guide ranges and the bounds they put
on dealers' prices, and dealer visibility."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import event

from omnicloud.core.db import utcnow
from omnicloud.core.errors import Unprocessable
from omnicloud.core.tenancy import tenant_scope
from omnicloud.distribution import service
from omnicloud.distribution.service import PricePoint, SupplyRoute
from tests.fixtures import TenantHandle
from tests.world_distribution import Brand

RELATIONS = "/api/v1/supply-relations"
GUIDES = "/api/v1/guide-prices"
TODAY = utcnow().date()
D = Decimal


@pytest.fixture
async def brand(client: httpx.AsyncClient, tenant_a: TenantHandle) -> Brand:
    """The dealer tree L1 (East) > L2 (Shanghai) > L3 and L1B > L2B; SKUs LAGER1 (LAGER, ACME),
    BEER1 (BEER, ZEN), FOOD1 (FOOD, ACME) and PLAIN."""
    b = await Brand(client, tenant_a).basics()
    await b.customer("L1", region_id=b.ids["EAST"])
    await b.customer("L2", parent="L1", region_id=b.ids["SH"])
    await b.customer("L3", parent="L2")
    await b.customer("L1B")
    await b.customer("L2B", parent="L1B")
    await b.sku("LAGER1", category="LAGER", brand="ACME")
    await b.sku("BEER1", category="BEER", brand="ZEN")
    await b.sku("FOOD1", category="FOOD", brand="ACME")
    await b.sku("PLAIN")
    return b


def relation(b: Brand, buyer: str, seller: str | None, **body: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"buyer_id": b.ids[buyer], "seller_id": b.ids[seller] if seller else None}
    for name in ("sku_ids", "category_ids", "brand_ids", "region_ids"):
        if name in body:
            out[name] = [b.ids[x] for x in body.pop(name)]
    return {**out, **body}


async def test_the_seller_is_the_brand_or_an_ancestor_of_the_buyer(brand: Brand) -> None:
    ok = await brand.post(RELATIONS, relation(brand, "L3", "L1", category_ids=["DRINKS"]))
    assert ok["seller_id"] == brand.ids["L1"] and ok["version"] == 1
    await brand.post(RELATIONS, relation(brand, "L3", "L2", category_ids=["FOOD"]))
    await brand.post(RELATIONS, relation(brand, "L3", None, sku_ids=["PLAIN"]))
    for seller in ("L3", "L1B", "L2B"):
        r = await brand.post(RELATIONS, relation(brand, "L2", seller), status=422)
        assert r["errors"][0]["field"] == "seller_id", seller
    # A descendant is not an ancestor either.
    r = await brand.post(RELATIONS, relation(brand, "L1", "L2"), status=422)
    assert r["errors"][0]["field"] == "seller_id"
    unknown = str(UUID(int=3))
    r = await brand.post(RELATIONS, {"buyer_id": unknown}, status=422)
    assert r["errors"][0]["field"] == "buyer_id"
    r = await brand.post(RELATIONS, {"buyer_id": brand.ids["L2"], "seller_id": unknown}, status=422)
    assert r["errors"][0]["field"] == "seller_id"
    r = await brand.post(RELATIONS, {**relation(brand, "L2", None), "region_ids": [unknown]}, status=422)
    assert r["errors"][0]["field"] == "region_ids[0]"


async def test_overlaps_at_one_priority_are_refused_naming_both(brand: Brand) -> None:
    drinks = await brand.post(RELATIONS, relation(brand, "L2", "L1", category_ids=["DRINKS"]))

    async def refused(body: dict[str, Any], other: str) -> None:
        r = await brand.post(RELATIONS, body, status=422)
        assert r["code"] == "supply_overlap"
        assert other in r["detail"] and other in r["errors"][0]["supply_relation_ids"]
        assert len(set(r["errors"][0]["supply_relation_ids"])) == 2

    # A SKU in a sub-category of DRINKS would have two sellers.
    await refused(relation(brand, "L2", None, sku_ids=["LAGER1"]), drinks["id"])
    await refused(relation(brand, "L2", None, category_ids=["LAGER"]), drinks["id"])
    # A category against a brand: some product of the brand may sit in the category.
    await refused(relation(brand, "L2", None, brand_ids=["ZEN"]), drinks["id"])
    await refused(relation(brand, "L2", None), drinks["id"])
    # Another priority, other products, another buyer: no overlap.
    lager = await brand.post(RELATIONS, relation(brand, "L2", None, sku_ids=["LAGER1"], priority=1))
    food = await brand.post(RELATIONS, relation(brand, "L2", None, category_ids=["FOOD"]))
    await brand.post(RELATIONS, relation(brand, "L3", "L1", category_ids=["DRINKS"]))
    await refused(relation(brand, "L2", "L1", sku_ids=["FOOD1"]), food["id"])
    # Regions by ancestor, and validity.
    sh = await brand.post(RELATIONS, relation(brand, "L2", "L1", region_ids=["SH"], priority=5))
    await brand.post(RELATIONS, relation(brand, "L2", "L1", region_ids=["NORTH"], priority=5))
    await refused(relation(brand, "L2", None, region_ids=["EAST"], priority=5), sh["id"])
    first_half = relation(brand, "L2", None, priority=7, valid_from="2024-01-01", valid_to="2024-06-30")
    half = await brand.post(RELATIONS, first_half)
    await brand.post(RELATIONS, relation(brand, "L2", None, priority=7, valid_from="2024-07-01"))
    await refused(
        relation(brand, "L2", None, priority=7, valid_from="2024-06-30", valid_to="2024-06-30"), half["id"]
    )
    # A change is checked the same way, naming both.
    r = await brand.call(
        "PATCH", f"{RELATIONS}/{lager['id']}", {"priority": 0}, headers={"If-Match": '"1"'}, status=422
    )
    assert set(r["errors"][0]["supply_relation_ids"]) == {lager["id"], drinks["id"]}
    moved = await brand.call(
        "PATCH", f"{RELATIONS}/{lager['id']}", {"priority": 2}, headers={"If-Match": '"1"'}
    )
    assert moved["priority"] == 2 and moved["version"] == 2
    await brand.call(
        "PATCH", f"{RELATIONS}/{lager['id']}", {"priority": 3}, headers={"If-Match": '"1"'}, status=412
    )
    await brand.call("PATCH", f"{RELATIONS}/{lager['id']}", {"priority": 3}, status=428)
    await brand.call("DELETE", f"{RELATIONS}/{drinks['id']}", headers={"If-Match": '"1"'}, status=204)
    await brand.post(RELATIONS, relation(brand, "L2", None, sku_ids=["BEER1"]))


async def routes(
    app: Any, b: Brand, buyer: str, skus: list[str], *, region: str | None = None, day: date = TODAY
) -> dict[str, SupplyRoute]:
    names = {UUID(b.ids[s]) if s in b.ids else UUID(s): s for s in skus}
    with tenant_scope(UUID(b.t.id)):
        async with app.state.db.transaction() as s:
            found = await service.route_supplier(
                s,
                buyer_id=UUID(b.ids[buyer]),
                sku_ids=list(names),
                region_id=UUID(b.ids[region]) if region else None,
                day=day,
            )
    return {names[k]: v for k, v in found.items()}


def via(relation: dict[str, Any]) -> SupplyRoute:
    return SupplyRoute(
        seller_id=UUID(relation["seller_id"]) if relation["seller_id"] else None,
        relation_id=UUID(relation["id"]),
        drop_ship_allowed=relation["drop_ship_allowed"],
    )


async def test_route_supplier(app: Any, brand: Brand) -> None:
    later = TODAY + timedelta(days=30)
    drinks = await brand.post(
        RELATIONS, relation(brand, "L2", "L1", category_ids=["DRINKS"], drop_ship_allowed=True)
    )
    lager = await brand.post(RELATIONS, relation(brand, "L2", None, sku_ids=["LAGER1"], priority=1))
    north = await brand.post(
        RELATIONS, relation(brand, "L2", "L1", category_ids=["FOOD"], region_ids=["NORTH"])
    )
    plain = await brand.post(
        RELATIONS, relation(brand, "L2", "L1", sku_ids=["PLAIN"], valid_from=later.isoformat())
    )
    unknown = str(UUID(int=11))
    default = service.BRAND_ROUTE
    assert await routes(app, brand, "L2", ["LAGER1", "BEER1", "FOOD1", "PLAIN", unknown]) == {
        "LAGER1": via(lager),
        "BEER1": via(drinks),
        "FOOD1": default,
        "PLAIN": default,
    }
    assert via(drinks).drop_ship_allowed and via(drinks).seller_id == UUID(brand.ids["L1"])
    # Ship-to regions match by ancestor; the buyer's own region (Shanghai) is the default.
    assert (await routes(app, brand, "L2", ["FOOD1"], region="NORTH"))["FOOD1"] == via(north)
    assert (await routes(app, brand, "L2", ["FOOD1"], region="CN"))["FOOD1"] == default
    assert (await routes(app, brand, "L2", ["PLAIN"], day=later))["PLAIN"] == via(plain)
    # Other buyers have their own relations; L3 has none.
    assert await routes(app, brand, "L3", ["BEER1"]) == {"BEER1": default}
    # Moving L2 under L1B leaves L1 no longer its ancestor: L1's relations stop routing.
    await brand.call("PATCH", f"/api/v1/customers/{brand.ids['L2']}", {"parent_id": brand.ids["L1B"]})
    assert await routes(app, brand, "L2", ["LAGER1", "BEER1"]) == {"LAGER1": via(lager), "BEER1": default}
    with tenant_scope(UUID(brand.t.id)):
        async with app.state.db.transaction() as s:
            for kwargs, field in (
                ({"buyer_id": UUID(int=1), "region_id": None}, "buyer_id"),
                ({"buyer_id": UUID(brand.ids["L2"]), "region_id": UUID(int=2)}, "region_id"),
            ):
                with pytest.raises(Unprocessable) as caught:
                    await service.route_supplier(s, sku_ids=[], day=TODAY, **kwargs)
                assert caught.value.errors[0]["field"] == field


async def test_routing_a_basket_costs_the_same_statements_whatever_its_size(app: Any, brand: Brand) -> None:
    skus = [await brand.sku(f"R{i}", category="LAGER", brand="ACME") for i in range(12)]
    await brand.post(RELATIONS, relation(brand, "L2", "L1", category_ids=["DRINKS"]))
    await brand.post(RELATIONS, relation(brand, "L2", None, sku_ids=["R1"], priority=3))
    seen: list[str] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    counts = []
    engine = app.state.db.engine.sync_engine
    for basket in (skus[:2], skus):
        seen.clear()
        with tenant_scope(UUID(brand.t.id)):
            async with app.state.db.transaction() as s:
                event.listen(engine, "before_cursor_execute", on_execute)
                try:
                    found = await service.route_supplier(
                        s,
                        buyer_id=UUID(brand.ids["L2"]),
                        sku_ids=[UUID(x) for x in basket],
                        region_id=None,
                        day=TODAY,
                    )
                finally:
                    event.remove(engine, "before_cursor_execute", on_execute)
        assert len(found) == len(basket)
        assert found[UUID(skus[1])].seller_id is None and found[UUID(skus[0])].seller_id == UUID(
            brand.ids["L1"]
        )
        counts.append(len(seen))
    assert counts[0] == counts[1] <= 6, counts


async def test_dealers_see_relations_of_their_subtree_and_write_none(brand: Brand) -> None:
    l1 = await brand.user_key("L1", "dealer", brand.ids["L1"])
    l2 = await brand.user_key("L2", "dealer", brand.ids["L2"])
    own = await brand.post(RELATIONS, relation(brand, "L1", None))
    below = await brand.post(RELATIONS, relation(brand, "L2", "L1"))
    other = await brand.post(RELATIONS, relation(brand, "L2B", "L1B"))
    assert {r["id"] for r in (await brand.get(RELATIONS, key=l1))["items"]} == {own["id"], below["id"]}
    assert {r["id"] for r in (await brand.get(RELATIONS, key=l2))["items"]} == {below["id"]}
    await brand.get(f"{RELATIONS}/{other['id']}", key=l1, status=404)
    await brand.get(f"{RELATIONS}/{own['id']}", key=l2, status=404)
    await brand.get(f"{RELATIONS}/{below['id']}", key=l2)
    await brand.post(RELATIONS, relation(brand, "L2", "L1", priority=1), key=l1, status=403)
    await brand.call(
        "PATCH", f"{RELATIONS}/{below['id']}", {}, key=l1, headers={"If-Match": '"1"'}, status=403
    )
    await brand.call("DELETE", f"{RELATIONS}/{below['id']}", key=l1, headers={"If-Match": '"1"'}, status=403)
    by_seller = await brand.get(RELATIONS, params={"seller_id": brand.ids["L1"]})
    assert [r["id"] for r in by_seller["items"]] == [below["id"]]
    by_buyer = await brand.get(RELATIONS, params={"buyer_id": brand.ids["L2B"]})
    assert [r["id"] for r in by_buyer["items"]] == [other["id"]]


# --- guide prices ---------------------------------------------------------------------------


async def test_guide_price_ranges_are_checked_when_saved(brand: Brand) -> None:
    ids = brand.ids
    body = {"sku_id": ids["LAGER1"], "unit_id": ids["pcs"], "min_price": "10.00", "max_price": "12.50"}
    guide = await brand.post(GUIDES, {**body, "valid_to": "2030-12-31"})
    assert (guide["min_price"], guide["max_price"], guide["version"]) == ("10.00", "12.50", 1)
    r = await brand.post(GUIDES, {**body, "valid_from": "2030-12-31"}, status=422)
    assert r["code"] == "guide_price_overlap" and guide["id"] in r["detail"]
    await brand.post(GUIDES, {**body, "valid_from": "2031-01-01"})
    await brand.post(GUIDES, {**body, "unit_id": ids["case"], "min_price": "55", "max_price": "70"})
    kg = (await brand.post("/api/v1/units", {"code": "kg", "name": "kg"}))["id"]
    r = await brand.post(GUIDES, {**body, "unit_id": kg}, status=422)
    assert r["errors"][0]["field"] == "unit_id"
    r = await brand.post(GUIDES, {**body, "sku_id": str(UUID(int=4))}, status=422)
    assert r["errors"][0]["field"] == "sku_id"
    for bad in ({"min_price": "13.00"}, {"min_price": "-1"}, {"max_price": "1.001"}):
        await brand.post(GUIDES, {**body, **bad}, status=422)

    url = f"{GUIDES}/{guide['id']}"
    put = {"min_price": "9.00", "max_price": "11.00", "valid_to": "2030-12-31"}
    replaced = await brand.call("PUT", url, put, headers={"If-Match": '"1"'})
    assert (replaced["min_price"], replaced["max_price"], replaced["version"]) == ("9.00", "11.00", 2)
    r = await brand.call("PATCH", url, {"max_price": "8.00"}, headers={"If-Match": '"2"'}, status=422)
    assert r["errors"][0]["field"] == "max_price"
    await brand.call("PATCH", url, {"max_price": "13.00"}, headers={"If-Match": '"1"'}, status=412)
    await brand.call("PUT", url, {"min_price": "1.00", "max_price": "2.00"}, status=428)
    r = await brand.c.get(url, headers=brand.t.auth)
    assert r.headers["etag"] == '"2"'
    listed = await brand.get(GUIDES, params={"sku_id": ids["LAGER1"]})
    assert len(listed["items"]) == 3
    await brand.call("DELETE", url, headers={"If-Match": '"2"'}, status=204)
    await brand.get(url, status=404)


async def test_the_put_overlap_rule(brand: Brand) -> None:
    ids = brand.ids
    body = {"sku_id": ids["BEER1"], "unit_id": ids["pcs"], "min_price": "1.00", "max_price": "2.00"}
    first = await brand.post(GUIDES, {**body, "valid_to": "2030-12-31"})
    await brand.post(GUIDES, {**body, "valid_from": "2031-01-01"})
    r = await brand.call(
        "PUT",
        f"{GUIDES}/{first['id']}",
        {"min_price": "1.00", "max_price": "3.00"},
        headers={"If-Match": '"1"'},
        status=422,
    )
    assert r["code"] == "guide_price_overlap"
    assert (await brand.get(f"{GUIDES}/{first['id']}"))["max_price"] == "2.00"


async def test_dealers_read_guide_prices_and_write_none(brand: Brand) -> None:
    l1 = await brand.user_key("L1", "dealer", brand.ids["L1"])
    body = {
        "sku_id": brand.ids["PLAIN"],
        "unit_id": brand.ids["pcs"],
        "min_price": "1.00",
        "max_price": "2.00",
    }
    guide = await brand.post(GUIDES, body)
    assert [g["id"] for g in (await brand.get(GUIDES, key=l1))["items"]] == [guide["id"]]
    await brand.get(f"{GUIDES}/{guide['id']}", key=l1)
    await brand.post(GUIDES, body, key=l1, status=403)
    await brand.call("PATCH", f"{GUIDES}/{guide['id']}", {}, key=l1, headers={"If-Match": '"1"'}, status=403)
    await brand.call("DELETE", f"{GUIDES}/{guide['id']}", key=l1, headers={"If-Match": '"1"'}, status=403)


async def test_guide_price_violations_bound_dealer_prices(app: Any, brand: Brand) -> None:
    ids = brand.ids
    await brand.post(
        GUIDES,
        {
            "sku_id": ids["LAGER1"],
            "unit_id": ids["pcs"],
            "min_price": "10.00",
            "max_price": "12.00",
            "valid_to": "2030-06-30",
        },
    )
    lager, pcs, case = UUID(ids["LAGER1"]), UUID(ids["pcs"]), UUID(ids["case"])
    points = [
        PricePoint(sku_id=lager, unit_id=pcs, price=D("11.00")),
        PricePoint(sku_id=lager, unit_id=pcs, price=D("12.01")),
        PricePoint(sku_id=lager, unit_id=case, price=D("60.00")),  # a case of 6: 60 to 72
        PricePoint(sku_id=lager, unit_id=case, price=D("59.99")),
        PricePoint(sku_id=lager, unit_id=pcs, price=D("1.00"), valid_from=date(2030, 7, 1)),
        PricePoint(sku_id=UUID(ids["BEER1"]), unit_id=pcs, price=D("999.00")),
    ]
    with tenant_scope(UUID(brand.t.id)):
        async with app.state.db.transaction() as s:
            found = await service.guide_price_violations(s, points)
            assert await service.guide_price_violations(s, []) == []
    assert [(v.index, v.min_price, v.max_price) for v in found] == [
        (1, D("10.00"), D("12.00")),
        (3, D("60.00"), D("72.00")),
    ]
    assert "12.01" in found[0].message
