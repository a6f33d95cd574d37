"""Prices through the real app: the access sequence, price lists, entries, floors, the entries
CSV, save-time checks (dimensions, references, units, ties), and the compiled price book the
quote service prices with (DOMAIN §1)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from omnicloud.core import revisions
from omnicloud.core.tenancy import tenant_scope
from omnicloud.policies import pricing
from omnicloud.policies.prices import service
from omnicloud.policies.prices.schemas import PriceEntryPatch
from tests.fixtures import TenantHandle
from tests.test_catalog import post, user_key

D = Decimal
DAY = date(2024, 5, 1)
CSV = {"content-type": "text/csv"}
HEADER = "sku_code,unit_code,price,min_qty,max_qty,mode,valid_from,valid_to\n"


# --- a small catalogue and the region tree ---------------------------------------------------


async def setup(client: Any, t: TenantHandle) -> dict[str, str]:
    """Units pc, case (12 pc) and kg; SKUs S1, S2, S3 of one product sold by the piece;
    regions China > East China > Shanghai and China > North China; customers C1 (level A, Shanghai),
    C2 (level A, Shanghai) and C3 (no level, North China)."""
    ids: dict[str, str] = {}
    for code in ("pc", "case", "kg"):
        ids[code] = (await post(client, t, "/api/v1/units", {"code": code, "name": code}))["id"]
    product = await post(
        client,
        t,
        "/api/v1/products",
        {
            "code": "P",
            "name": "Product",
            "base_unit_id": ids["pc"],
            "conversions": [{"unit_id": ids["case"], "factor": "12"}],
        },
    )
    for code in ("S1", "S2", "S3"):
        sku = await post(client, t, "/api/v1/skus", {"product_id": product["id"], "code": code, "name": code})
        ids[code] = sku["id"]
    ids["china"] = (await post(client, t, "/api/v1/regions", {"code": "CN", "name": "China"}))["id"]
    for code, parent in (("east", "china"), ("north", "china"), ("shanghai", "east")):
        region = await post(
            client, t, "/api/v1/regions", {"code": code, "name": code, "parent_id": ids[parent]}
        )
        ids[code] = region["id"]
    for code, extra in (
        ("C1", {"level": "A", "region_id": ids["shanghai"]}),
        ("C2", {"level": "A", "region_id": ids["shanghai"]}),
        ("C3", {"region_id": ids["north"]}),
    ):
        customer = await post(
            client, t, "/api/v1/customers", {"code": code, "name": code, "kind": "dealer", **extra}
        )
        ids[code] = customer["id"]
    return ids


async def price_list(client: Any, t: TenantHandle, code: str, step: str, **extra: Any) -> str:
    body = {"code": code, "name": code, "step": step, **extra}
    return str((await post(client, t, "/api/v1/price-lists", body))["id"])


async def entry(
    client: Any, t: TenantHandle, list_id: str, sku: str, unit: str, price: str, **extra: Any
) -> str:
    body = {"sku_id": sku, "unit_id": unit, "price": price, **extra}
    return str((await post(client, t, f"/api/v1/price-lists/{list_id}/entries", body))["id"])


async def add_entry(client: Any, t: TenantHandle, list_id: str, body: dict[str, Any]) -> Any:
    return await client.post(f"/api/v1/price-lists/{list_id}/entries", headers=t.auth, json=body)


async def book_and_prices(
    app: Any,
    t: TenantHandle,
    customer_id: str | None,
    lines: Sequence[pricing.PriceLine],
    day: date = DAY,
) -> tuple[service.PriceBook, list[pricing.PricedLine]]:
    """What the quote service does: the book at the current revision, the buyer's context, one pass."""
    with tenant_scope(UUID(t.id)):
        async with app.state.db.transaction() as s:
            revision = (await revisions.current(s, ("prices",)))["prices"]
            book = await service.price_book(s, revision)
            ctx = await service.pricing_context(
                s, day, customer_id=UUID(customer_id) if customer_id else None
            )
    return book, pricing.price_order(book.index, ctx, lines)


def line(sku: str, unit: str, qty: int | str, base_qty: int | str | None = None) -> pricing.PriceLine:
    return pricing.PriceLine(
        sku_id=sku, uom=unit, quantity=D(qty), base_quantity=None if base_qty is None else D(base_qty)
    )


def etag(version: int) -> dict[str, str]:
    return {"If-Match": f'"{version}"'}


# --- DOMAIN §1 ---------------------------------------------------------------------------------


async def test_worked_example_end_to_end(client, app, tenant_a):
    t = tenant_a
    ids = await setup(client, t)
    s1, pc = ids["S1"], ids["pc"]
    base = await price_list(client, t, "BASE", "base")
    await entry(client, t, base, s1, pc, "100")
    level_a = await price_list(client, t, "LEVEL-A", "level_region", level="A", region_id=ids["china"])
    await entry(client, t, level_a, s1, pc, "92")
    c1 = await price_list(client, t, "C1-OWN", "customer", customer_id=ids["C1"])
    low = await entry(client, t, c1, s1, pc, "95", min_qty="1", max_qty="99")
    high = await entry(client, t, c1, s1, pc, "90", min_qty="100")
    floor = await post(
        client, t, "/api/v1/price-floors", {"sku_id": s1, "unit_id": pc, "price": "85", "action": "block"}
    )

    book, (big, small) = await book_and_prices(app, t, ids["C1"], [line(s1, pc, 120), line(s1, pc, 50)])
    assert (big.unit_price, big.amount) == (D("90.00"), D("10800.00"))
    assert big.explanation is not None and big.explanation.entry_ids == (high,)
    assert book.list_codes[big.explanation.price_list_id] == "C1-OWN"
    assert big.explanation.step == "customer"
    assert small.unit_price == D("95.00")  # the exclusive customer step stops the search: not 92
    assert small.explanation is not None and small.explanation.entry_ids == (low,)

    _, (other_level_a,) = await book_and_prices(app, t, ids["C2"], [line(s1, pc, 50)])
    assert other_level_a.unit_price == D("92.00")  # level A, region China matched from Shanghai
    _, (nobody,) = await book_and_prices(app, t, ids["C3"], [line(s1, pc, 50)])
    assert nobody.unit_price == D("100.00")
    assert nobody.explanation is not None and book.list_codes[nobody.explanation.price_list_id] == "BASE"

    found = service.floor_for(book, s1, pc, DAY)
    assert found is not None and (found.id, found.price, found.action) == (floor["id"], D("85.00"), "block")
    assert pricing.check_floor(D("84.50"), found.price, found.action).outcome == "block"
    assert service.floor_for(book, s1, ids["case"], DAY) is None


async def test_region_list_prices_a_customer_in_a_descendant_region(client, app, tenant_a):
    t = tenant_a
    ids = await setup(client, t)
    s1, pc = ids["S1"], ids["pc"]
    await entry(client, t, await price_list(client, t, "BASE", "base"), s1, pc, "100")
    await entry(client, t, await price_list(client, t, "EAST", "region", region_id=ids["east"]), s1, pc, "97")
    _, (shanghai,) = await book_and_prices(app, t, ids["C1"], [line(s1, pc, 3)])
    _, (north,) = await book_and_prices(app, t, ids["C3"], [line(s1, pc, 3)])
    assert (shanghai.unit_price, north.unit_price) == (D("97.00"), D("100.00"))


async def test_an_entry_applies_where_its_and_its_lists_validity_meet(client, app, tenant_a):
    t = tenant_a
    ids = await setup(client, t)
    s1, pc = ids["S1"], ids["pc"]
    await entry(client, t, await price_list(client, t, "BASE", "base"), s1, pc, "100")
    summer = await price_list(
        client, t, "2024", "base", priority=1, valid_from="2024-01-01", valid_to="2024-12-31"
    )
    await entry(client, t, summer, s1, pc, "80", valid_from="2024-06-01", valid_to="2025-03-31")
    for day, price in (
        (date(2024, 5, 31), "100.00"),
        (date(2024, 6, 1), "80.00"),
        (date(2025, 1, 1), "100.00"),
    ):
        _, (priced,) = await book_and_prices(app, t, None, [line(s1, pc, 1)], day)
        assert priced.unit_price == D(price), day


async def test_graduated_and_all_units_bands_in_base_units(client, app, tenant_a):
    t = tenant_a
    ids = await setup(client, t)
    pc, case = ids["pc"], ids["case"]
    lst = await price_list(client, t, "BASE", "base")
    for sku, mode in ((ids["S1"], "all_units"), (ids["S2"], "graduated")):
        await entry(client, t, lst, sku, pc, "95", min_qty="1", max_qty="99", mode=mode)
        await entry(client, t, lst, sku, pc, "90", min_qty="100", mode=mode)
    # per case, bands in pieces: 120 pieces at 60 a case, then 54 a case
    await entry(client, t, lst, ids["S3"], case, "60", min_qty="1", max_qty="120", mode="graduated")
    await entry(client, t, lst, ids["S3"], case, "54", min_qty="121", mode="graduated")
    _, (all_units, graduated, cases) = await book_and_prices(
        app, t, None, [line(ids["S1"], pc, 120), line(ids["S2"], pc, 120), line(ids["S3"], case, 15, 180)]
    )
    assert all_units.amount == D("10800.00")
    assert graduated.amount == D("11295.00")  # 99 × 95 + 21 × 90
    assert (cases.amount, cases.unit_price) == (D("870.00"), D("58.00"))  # 10 × 60 + 5 × 54


async def test_dimensions_references_and_units_are_checked_when_saved(client, tenant_a):
    t = tenant_a
    ids = await setup(client, t)

    async def refused(body: dict[str, Any]) -> list[str]:
        r = await client.post("/api/v1/price-lists", headers=t.auth, json={"code": "X", "name": "X", **body})
        assert r.status_code == 422, r.text
        return [e["field"] for e in r.json()["errors"]]

    assert await refused({"step": "customer"}) == ["customer_id"]
    assert await refused({"step": "base", "level": "A", "channel": "web"}) == ["level", "channel"]
    assert await refused({"step": "nowhere"}) == ["step"]
    assert await refused({"step": "customer", "customer_id": ids["S1"]}) == ["customer_id"]
    assert await refused({"step": "region", "region_id": ids["S1"]}) == ["region_id"]
    assert await refused({"step": "base", "valid_from": "2024-02-01", "valid_to": "2024-01-01"})

    lst = await price_list(client, t, "BASE", "base", valid_from="2024-01-01", valid_to="2024-12-31")
    good = {"sku_id": ids["S1"], "unit_id": ids["pc"], "price": "1"}
    for change, field in (
        ({"sku_id": ids["pc"]}, "sku_id"),
        ({"unit_id": ids["S1"]}, "unit_id"),
        ({"unit_id": ids["kg"]}, "unit_id"),  # a unit, but not one this SKU is sold in
        ({"valid_from": "2025-01-01"}, "valid_from"),  # never meets the list's validity
    ):
        r = await add_entry(client, t, lst, {**good, **change})
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == field
    r = await add_entry(client, t, lst, {**good, "min_qty": "10", "max_qty": "5"})
    assert r.status_code == 422
    assert (await add_entry(client, t, lst, {**good, "unit_id": ids["case"]})).status_code == 201
    r = await client.get(f"/api/v1/price-lists/{lst}/entries", headers=t.auth)
    assert len(r.json()["items"]) == 1


async def test_a_tie_is_refused_naming_both_rules(client, tenant_a):
    t = tenant_a
    ids = await setup(client, t)
    s1, pc = ids["S1"], ids["pc"]
    first = await price_list(client, t, "FIRST", "base", valid_to="2029-12-31")
    second = await price_list(client, t, "SECOND", "base", priority=1)
    held = await entry(client, t, first, s1, pc, "100", min_qty="1", max_qty="99")
    await entry(client, t, first, s1, pc, "95", min_qty="100")  # the next band: no tie
    await entry(client, t, second, s1, pc, "98", min_qty="50")  # another priority: no tie

    rival = await price_list(client, t, "RIVAL", "base")
    r = await add_entry(client, t, rival, {"sku_id": s1, "unit_id": pc, "price": "99", "max_qty": "10"})
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "price_tie"
    assert held in problem["detail"] and "FIRST" in problem["detail"] and "RIVAL" in problem["detail"]
    (error,) = problem["errors"]
    assert error["entry_ids"][1] == held and error["price_list_codes"] == ["RIVAL", "FIRST"]
    assert error["entry_ids"][0] in problem["detail"]
    # the same rule at other dates does not tie
    later = {"sku_id": s1, "unit_id": pc, "price": "99", "valid_from": "2030-01-01"}
    r = await add_entry(client, t, rival, later)
    assert r.status_code == 201
    r = await client.patch(
        f"/api/v1/price-entries/{r.json()['id']}", headers={**t.auth, **etag(1)}, json={"valid_from": None}
    )
    assert r.status_code == 422 and held in r.json()["detail"]

    # moving a list onto another's priority re-checks its entries
    r = await client.patch(
        f"/api/v1/price-lists/{second}", headers={**t.auth, **etag(1)}, json={"priority": 0}
    )
    assert r.status_code == 422, r.text
    codes = {c for e in r.json()["errors"] for c in e["price_list_codes"]}
    assert codes == {"SECOND", "FIRST", "RIVAL"}
    # an inactive list is not searched, so it ties with nothing until it is activated again
    draft = await price_list(client, t, "DRAFT", "base", status="inactive")
    draft_entry = await entry(client, t, draft, s1, pc, "80")
    r = await client.patch(
        f"/api/v1/price-lists/{draft}", headers={**t.auth, **etag(1)}, json={"status": "active"}
    )
    assert r.status_code == 422 and draft_entry in r.json()["detail"]


async def test_if_match_is_required_and_checked(client, tenant_a):
    t = tenant_a
    ids = await setup(client, t)
    lst = await price_list(client, t, "BASE", "base")
    one = await entry(client, t, lst, ids["S1"], ids["pc"], "100")
    floor = (
        await post(
            client,
            t,
            "/api/v1/price-floors",
            {"sku_id": ids["S1"], "unit_id": ids["pc"], "price": "1", "action": "warn"},
        )
    )["id"]
    for url, body in (
        (f"/api/v1/price-lists/{lst}", {"name": "Renamed"}),
        (f"/api/v1/price-entries/{one}", {"price": "101"}),
        (f"/api/v1/price-floors/{floor}", {"price": "2"}),
    ):
        assert (await client.patch(url, headers=t.auth, json=body)).status_code == 428
        assert (await client.patch(url, headers={**t.auth, **etag(7)}, json=body)).status_code == 412
        r = await client.patch(url, headers={**t.auth, **etag(1)}, json=body)
        assert r.status_code == 200 and r.json()["version"] == 2 and r.headers["etag"] == '"2"'
        assert (await client.delete(url, headers=t.auth)).status_code == 428
        assert (await client.delete(url, headers={**t.auth, **etag(1)})).status_code == 412
    assert (
        await client.delete(f"/api/v1/price-entries/{one}", headers={**t.auth, **etag(2)})
    ).status_code == 204
    two = await entry(client, t, lst, ids["S1"], ids["pc"], "100")
    assert (
        await client.delete(f"/api/v1/price-lists/{lst}", headers={**t.auth, **etag(2)})
    ).status_code == 204
    for url in (f"/api/v1/price-lists/{lst}", f"/api/v1/price-entries/{two}"):
        assert (await client.get(url, headers=t.auth)).status_code == 404
    r = await client.get(
        "/api/v1/audit", headers=t.auth, params={"object_type": "price_list", "object_id": lst}
    )
    assert [a["action"] for a in r.json()["items"]] == ["create", "update", "delete"]
    assert r.json()["items"][-1]["before"]["entries"] == 1


async def test_sequence_default_put_and_misfits(client, tenant_a):
    t = tenant_a
    r = await client.get("/api/v1/price-sequence", headers=t.auth)
    assert r.json()["version"] == 0
    assert [(s["name"], s["dimensions"], s["exclusive"]) for s in r.json()["steps"]] == [
        ("customer", ["customer_id"], True),
        ("level_region", ["level", "region_id"], False),
        ("class_channel", ["customer_class", "channel"], False),
        ("region", ["region_id"], False),
        ("base", [], False),
    ]
    steps = [*r.json()["steps"][:2], {"name": "level", "dimensions": ["level"]}, *r.json()["steps"][2:]]
    url = "/api/v1/price-sequence"
    assert (await client.put(url, headers=t.auth, json={"steps": steps})).status_code == 428
    assert (await client.put(url, headers={**t.auth, **etag(1)}, json={"steps": steps})).status_code == 412
    bad = [{"name": "a", "dimensions": ["level", "level"]}]
    assert (await client.put(url, headers={**t.auth, **etag(0)}, json={"steps": bad})).status_code == 422
    r = await client.put(url, headers={**t.auth, **etag(0)}, json={"steps": steps})
    assert r.status_code == 200 and r.json()["version"] == 1
    assert (await client.put(url, headers={**t.auth, **etag(0)}, json={"steps": steps})).status_code == 412

    await price_list(client, t, "GOLD", "level", level="gold")
    await price_list(client, t, "BASE", "base")
    without_level = [s for s in steps if s["name"] != "level"]
    r = await client.put(url, headers={**t.auth, **etag(1)}, json={"steps": without_level})
    assert r.status_code == 422 and "GOLD" in r.json()["detail"] and "BASE" not in r.json()["detail"]
    assert [e["price_list_code"] for e in r.json()["errors"]] == ["GOLD"]
    reshaped = [{**s, "dimensions": ["customer_class"]} if s["name"] == "level" else s for s in steps]
    r = await client.put(url, headers={**t.auth, **etag(1)}, json={"steps": reshaped})
    assert r.status_code == 422 and "GOLD" in r.json()["detail"]
    assert (await client.get(url, headers=t.auth)).json()["version"] == 1


async def test_floors_of_one_sku_and_unit_do_not_overlap(client, app, tenant_a):
    t = tenant_a
    ids = await setup(client, t)
    body = {"sku_id": ids["S1"], "unit_id": ids["pc"], "price": "85", "action": "block"}
    first = await post(client, t, "/api/v1/price-floors", {**body, "valid_to": "2024-06-30"})
    r = await client.post("/api/v1/price-floors", headers=t.auth, json={**body, "valid_from": "2024-06-30"})
    assert r.status_code == 422 and r.json()["code"] == "floor_overlap" and first["id"] in r.json()["detail"]
    later = await post(client, t, "/api/v1/price-floors", {**body, "valid_from": "2024-07-01", "price": "88"})
    await post(client, t, "/api/v1/price-floors", {**body, "unit_id": ids["case"], "price": "900"})
    r = await client.patch(
        f"/api/v1/price-floors/{later['id']}", headers={**t.auth, **etag(1)}, json={"valid_from": None}
    )
    assert r.status_code == 422
    r = await client.post("/api/v1/price-floors", headers=t.auth, json={**body, "unit_id": ids["kg"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "unit_id"
    listed = (await client.get("/api/v1/price-floors", headers=t.auth, params={"sku_id": ids["S1"]})).json()
    assert len(listed["items"]) == 3
    book, _ = await book_and_prices(app, t, None, [])
    july = service.floor_for(book, ids["S1"], ids["pc"], date(2024, 7, 1))
    june = service.floor_for(book, ids["S1"], ids["pc"], date(2024, 6, 30))
    assert (june and june.price, july and july.price) == (D("85.00"), D("88.00"))


# --- CSV ---------------------------------------------------------------------------------------

GOOD = (
    HEADER + "S1,pc,95.00,1,99,all_units,,\n"
    "S1,pc,90.00,100,,all_units,,\n"
    "S1,case,1000.00,,,,,\n"
    "S2,pc,50.00,0,,graduated,2024-01-01,2024-12-31\n"
)


async def upload(client: Any, t: TenantHandle, list_id: str, text: str, **params: Any) -> Any:
    return await client.post(
        f"/api/v1/price-lists/{list_id}/entries.csv", headers={**t.auth, **CSV}, content=text, params=params
    )


async def test_csv_import_round_trip(client, tenant_a):
    t = tenant_a
    await setup(client, t)
    lst = await price_list(client, t, "BASE", "base")
    r = await upload(client, t, lst, GOOD)
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 4, "updated": 0, "unchanged": 0, "deleted": 0}
    exported = (await client.get(f"/api/v1/price-lists/{lst}/entries.csv", headers=t.auth)).text
    assert exported.replace("\r\n", "\n") == (
        HEADER + "S1,case,1000.00,0,,all_units,,\n"
        "S1,pc,95.00,1,99,all_units,,\n"
        "S1,pc,90.00,100,,all_units,,\n"
        "S2,pc,50.00,0,,graduated,2024-01-01,2024-12-31\n"
    )
    r = await upload(client, t, lst, exported)
    assert r.json() == {"created": 0, "updated": 0, "unchanged": 4, "deleted": 0}
    r = await upload(client, t, lst, HEADER + "S1,pc,88.00,1,,,,\n", replace="true")
    assert r.json() == {"created": 0, "updated": 1, "unchanged": 0, "deleted": 3}
    (only,) = (await client.get(f"/api/v1/price-lists/{lst}/entries", headers=t.auth)).json()["items"]
    assert (only["price"], only["max_qty"], only["version"]) == ("88.00", None, 2)


async def test_csv_import_is_all_or_nothing_with_line_numbers(client, tenant_a):
    t = tenant_a
    await setup(client, t)
    lst = await price_list(client, t, "BASE", "base")
    assert (await upload(client, t, lst, GOOD)).status_code == 200
    before = (await client.get(f"/api/v1/price-lists/{lst}/entries.csv", headers=t.auth)).text
    bad = (
        HEADER + "S3,pc,10.00,,,,,\n"  # line 2: good
        "NOPE,pc,1.00,,,,,\n"  # 3: no such SKU
        "S1,kg,1.00,,,,,\n"  # 4: not a unit of S1
        "S1,pc,1.00,10,5,,,\n"  # 5: band upside down
        "S1,pc,70.00,50,150,,,\n"  # 6: ties with both S1 pc bands of the list
        "S3,pc,11.00,0,,,,\n"  # 7: the same rule as line 2
        "S2,pc,1.00,5,,,2025-01-01,\n"  # 8: good (after the 2024 rule of S2 ends)
        "S1,pc,1.005,200,,,,\n"  # 9: three decimals in a price
    )
    r = await upload(client, t, lst, bad)
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert sorted({e["line"] for e in errors}) == [3, 4, 5, 6, 7, 9]
    assert {e["field"] for e in errors if e["line"] in (3, 4)} == {"sku_code", "unit_code"}
    assert len([e for e in errors if e["line"] == 6]) == 2
    assert "line 2" in next(e["message"] for e in errors if e["line"] == 7)
    after = (await client.get(f"/api/v1/price-lists/{lst}/entries.csv", headers=t.auth)).text
    assert after == before
    r = await upload(client, t, lst, HEADER + "S1,pc,abc,,,,,\nS1,pc,1,,,sometimes,,\n")
    assert r.status_code == 422 and [e["line"] for e in r.json()["errors"]] == [2, 3]
    r = await upload(client, t, lst, "sku,price\nS1,1\n")
    assert r.status_code == 422 and r.json()["code"] == "csv_columns"
    # a rule in another list of the same place ties with a file row, named by entry and list
    rival = await price_list(client, t, "RIVAL", "base")
    r = await upload(client, t, rival, HEADER + "S2,pc,49.00,,,,2024-06-01,\n")
    assert r.status_code == 422 and "BASE" in r.json()["errors"][0]["message"]


# --- the compiled book ---------------------------------------------------------------------------


async def test_book_is_reused_per_revision_and_a_rolled_back_change_never_shows(client, app, tenant_a):
    t = tenant_a
    ids = await setup(client, t)
    lst = await price_list(client, t, "BASE", "base")
    one = await entry(client, t, lst, ids["S1"], ids["pc"], "100")
    first, (priced,) = await book_and_prices(app, t, None, [line(ids["S1"], ids["pc"], 1)])
    again, _ = await book_and_prices(app, t, None, [line(ids["S1"], ids["pc"], 1)])
    assert again is first and priced.unit_price == D("100.00")

    class Abort(Exception):
        pass

    async def rolled_back_change() -> service.PriceBook:
        with tenant_scope(UUID(t.id)), pytest.raises(Abort):
            async with app.state.db.transaction() as s:
                await service.update_price_entry(s, UUID(one), PriceEntryPatch(price=D("1")), 1)
                inside = await service.price_book(s, (await revisions.current(s, ("prices",)))["prices"])
                assert inside is not first
                raise Abort
        return inside

    rolled_back = await rolled_back_change()
    after, (priced,) = await book_and_prices(app, t, None, [line(ids["S1"], ids["pc"], 1)])
    assert after is not rolled_back and priced.unit_price == D("100.00")
    # the next committed change gets a fresh stamp, never the rolled-back one's
    inside = await rolled_back_change()
    r = await client.patch(
        f"/api/v1/price-entries/{one}", headers={**t.auth, **etag(1)}, json={"price": "90"}
    )
    assert r.status_code == 200
    changed, (priced,) = await book_and_prices(app, t, None, [line(ids["S1"], ids["pc"], 1)])
    assert changed is not first and changed is not inside and priced.unit_price == D("90.00")
    # every write moves the revision
    revision = await current_revision(app, t)
    await post(
        client,
        t,
        "/api/v1/price-floors",
        {"sku_id": ids["S1"], "unit_id": ids["pc"], "price": "1", "action": "warn"},
    )
    assert await current_revision(app, t) != revision
    r = await client.patch(
        f"/api/v1/price-lists/{lst}", headers={**t.auth, **etag(1)}, json={"status": "inactive"}
    )
    assert r.status_code == 200 and await current_revision(app, t) not in (revision, None)
    _, (unpriced,) = await book_and_prices(app, t, None, [line(ids["S1"], ids["pc"], 1)])
    assert unpriced.amount is None  # inactive lists are left out


async def current_revision(app: Any, t: TenantHandle) -> revisions.Revision:
    with tenant_scope(UUID(t.id)):
        async with app.state.db.transaction() as s:
            return (await revisions.current(s, ("prices",)))["prices"]


# --- access --------------------------------------------------------------------------------------


async def test_dealers_and_readers_are_kept_out(client, tenant_a):
    """A dealer (prices:own) reaches only its own lists: the brand's answer 404, floors and the
    brand's writes 403, and its list shows none of the brand's lists."""
    t = tenant_a
    ids = await setup(client, t)
    lst = await price_list(client, t, "BASE", "base")
    dealer = await user_key(client, t, "dealer", customer_id=ids["C1"])
    for method, url, status in (
        ("GET", f"/api/v1/price-lists/{lst}", 404),
        ("GET", f"/api/v1/price-lists/{lst}/entries", 404),
        ("GET", f"/api/v1/price-lists/{lst}/entries.csv", 404),
        ("PATCH", f"/api/v1/price-lists/{lst}", 404),
        ("DELETE", f"/api/v1/price-lists/{lst}", 404),
        ("GET", "/api/v1/price-floors", 403),
        ("POST", "/api/v1/price-floors", 403),
        ("PUT", "/api/v1/price-sequence", 403),
    ):
        body = {} if method in ("POST", "PATCH", "PUT") else None
        r = await client.request(method, url, headers={**dealer, "If-Match": '"1"'}, json=body)
        assert r.status_code == status, (method, url, r.status_code, r.text)
    r = await client.get("/api/v1/price-lists", headers=dealer)
    assert r.status_code == 200 and r.json()["items"] == []
    assert (await client.get("/api/v1/price-sequence", headers=dealer)).status_code == 200
    rep = await user_key(client, t, "sales_rep")
    assert (await client.get(f"/api/v1/price-lists/{lst}", headers=rep)).status_code == 200
    r = await client.post("/api/v1/price-lists", headers=rep, json={"code": "X", "name": "X", "step": "base"})
    assert r.status_code == 403


async def test_lists_filter_and_page(client, tenant_a):
    t = tenant_a
    ids = await setup(client, t)
    await price_list(client, t, "BASE", "base")
    await price_list(client, t, "C1-OWN", "customer", customer_id=ids["C1"])
    await price_list(client, t, "OLD", "base", priority=1, status="inactive")

    async def codes(**params: Any) -> list[str]:
        r = await client.get("/api/v1/price-lists", headers=t.auth, params=params)
        return [i["code"] for i in r.json()["items"]]

    assert await codes(step="base") == ["BASE", "OLD"]
    assert await codes(status="inactive") == ["OLD"]
    assert await codes(customer_id=ids["C1"]) == ["C1-OWN"]
    assert await codes(q="own") == ["C1-OWN"]
    page = (await client.get("/api/v1/price-lists", headers=t.auth, params={"limit": 2})).json()
    rest = await codes(cursor=page["next_cursor"])
    assert [i["code"] for i in page["items"]] + rest == ["BASE", "C1-OWN", "OLD"]
    r = await client.post(
        "/api/v1/price-lists", headers=t.auth, json={"code": "BASE", "name": "x", "step": "base"}
    )
    assert r.status_code == 409
