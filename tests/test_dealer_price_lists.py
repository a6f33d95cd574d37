"""Level-1 dealers' own price lists (DOMAIN §7) through the real app: a dealer maintains only its
own lists (404 for the brand's and another dealer's, 403 for the brand's staff writing a
dealer's), every price inside the brand's guide range (entries, patches and CSV, all or nothing
with line numbers), entries a narrowed range leaves outside flagged on read and refused at
quote, quotes pricing routed lines with the seller's own lists beside brand-sold lines, and
per-owner compiled books."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import pytest

from omnicloud.core import revisions
from omnicloud.core.tenancy import tenant_scope
from omnicloud.policies.prices import service as prices
from tests.fixtures import TenantHandle, bearer
from tests.world_distribution import Brand

D = Decimal
LISTS = "/api/v1/price-lists"


@pytest.fixture
async def brand(client: httpx.AsyncClient, tenant_a: TenantHandle) -> Brand:
    """Dealers L1 > L2 and L1B > L2B with dealer keys; SKUs X, Y, Z; the brand's base list (X 100,
    Y 50, Z 40); L2 is supplied X and Z by L1, L2B is supplied X by L1B; guide range for X
    80–120 per piece."""
    b = await Brand(client, tenant_a).basics()
    for code, parent in (("L1", None), ("L2", "L1"), ("L1B", None), ("L2B", "L1B")):
        await b.customer(code, parent=parent, level="A")
        b.ids[f"key:{code}"] = await b.user_key(code, "dealer", b.ids[code])
    for code in ("X", "Y", "Z"):
        await b.sku(code)
    base = await b.post(LISTS, {"code": "BRAND", "name": "Brand", "step": "base"})
    b.ids["BRAND"] = base["id"]
    for code, price in (("X", "100.00"), ("Y", "50.00"), ("Z", "40.00")):
        await entry(b, base["id"], code, price)
    await b.post(
        "/api/v1/supply-relations",
        {"buyer_id": b.ids["L2"], "seller_id": b.ids["L1"], "sku_ids": [b.ids["X"], b.ids["Z"]]},
    )
    await b.post(
        "/api/v1/supply-relations",
        {"buyer_id": b.ids["L2B"], "seller_id": b.ids["L1B"], "sku_ids": [b.ids["X"]]},
    )
    guide = await b.post(
        "/api/v1/guide-prices",
        {"sku_id": b.ids["X"], "unit_id": b.ids["pcs"], "min_price": "80.00", "max_price": "120.00"},
    )
    b.ids["guide"] = guide["id"]
    return b


def key(b: Brand, code: str) -> str:
    return b.ids[f"key:{code}"]


async def entry(
    b: Brand,
    list_id: str,
    sku: str,
    price: str,
    *,
    dealer: str | None = None,
    unit: str = "pcs",
    status: int = 201,
    **extra: Any,
) -> Any:
    body = {"sku_id": b.ids[sku], "unit_id": b.ids[unit], "price": price, **extra}
    return await b.post(
        f"{LISTS}/{list_id}/entries", body, key=key(b, dealer) if dealer else None, status=status
    )


async def dealer_list(b: Brand, dealer: str, code: str, step: str = "base", **dims: Any) -> str:
    body = {"code": code, "name": code, "step": step, **dims}
    return str((await b.post(LISTS, body, key=key(b, dealer)))["id"])


async def quote(b: Brand, dealer: str, lines: list[dict[str, Any]], status: int = 200) -> Any:
    return await b.post("/api/v1/quotes", {"lines": lines}, key=key(b, dealer), status=status)


# --- lists and entries: who sees what ------------------------------------------------------------


async def test_a_dealer_maintains_its_own_lists_and_sees_no_one_elses(brand: Brand) -> None:
    b = brand
    own = await b.post(LISTS, {"code": "L1-BASE", "name": "L1", "step": "base"}, key=key(b, "L1"))
    assert own["owner_customer_id"] == b.ids["L1"]
    e = await entry(b, own["id"], "X", "95.00", dealer="L1")
    assert e["guide_violation"] is None
    # The dealer sees its own list only; the brand's staff see every list.
    mine = await b.get(LISTS, key=key(b, "L1"))
    assert [i["code"] for i in mine["items"]] == ["L1-BASE"]
    everything = await b.get(LISTS)
    assert {i["code"] for i in everything["items"]} == {"BRAND", "L1-BASE"}
    only_l1 = await b.get(LISTS, params={"owner_customer_id": b.ids["L1"]})
    assert [i["code"] for i in only_l1["items"]] == ["L1-BASE"]
    # Another dealer: 404 on every route of L1's list and entry, and nothing in its list.
    other = key(b, "L1B")
    for method, path in (
        ("GET", f"{LISTS}/{own['id']}"),
        ("PATCH", f"{LISTS}/{own['id']}"),
        ("DELETE", f"{LISTS}/{own['id']}"),
        ("GET", f"{LISTS}/{own['id']}/entries"),
        ("POST", f"{LISTS}/{own['id']}/entries"),
        ("GET", f"{LISTS}/{own['id']}/entries.csv"),
        ("GET", f"/api/v1/price-entries/{e['id']}"),
        ("PATCH", f"/api/v1/price-entries/{e['id']}"),
        ("DELETE", f"/api/v1/price-entries/{e['id']}"),
    ):
        body = (
            {"sku_id": b.ids["X"], "unit_id": b.ids["pcs"], "price": "90.00"}
            if path.endswith("/entries") and method == "POST"
            else ({"price": "90.00"} if "price-entries" in path else {"name": "mine"})
            if method == "PATCH"
            else None
        )
        await b.call(method, path, body, key=other, headers={"If-Match": '"1"'}, status=404)
    assert (await b.get(LISTS, key=other))["items"] == []
    # The dealer never reaches the brand's list.
    await b.get(f"{LISTS}/{b.ids['BRAND']}", key=key(b, "L1"), status=404)
    # The brand's staff read the dealer's list but do not maintain it.
    await b.get(f"{LISTS}/{own['id']}")
    r = await b.call("PATCH", f"{LISTS}/{own['id']}", {"name": "x"}, headers={"If-Match": '"1"'}, status=403)
    assert r["code"] == "dealer_owned"
    # The dealer updates and deletes its own.
    changed = await b.call(
        "PATCH",
        f"/api/v1/price-entries/{e['id']}",
        {"price": "99.00"},
        key=key(b, "L1"),
        headers={"If-Match": '"1"'},
    )
    assert changed["price"] == "99.00"
    await b.call(
        "DELETE",
        f"/api/v1/price-entries/{e['id']}",
        key=key(b, "L1"),
        headers={"If-Match": '"2"'},
        status=204,
    )
    await b.call("DELETE", f"{LISTS}/{own['id']}", key=key(b, "L1"), headers={"If-Match": '"1"'}, status=204)
    assert (await b.get(LISTS, key=key(b, "L1")))["items"] == []


async def test_a_dealer_list_prices_only_dealers_under_it(brand: Brand) -> None:
    b = brand
    ok = await b.post(
        LISTS,
        {"code": "L1-L2", "name": "x", "step": "customer", "customer_id": b.ids["L2"]},
        key=key(b, "L1"),
    )
    assert ok["customer_id"] == b.ids["L2"]
    for customer in ("L1", "L2B"):
        r = await b.post(
            LISTS,
            {"code": f"BAD-{customer}", "name": "x", "step": "customer", "customer_id": b.ids[customer]},
            key=key(b, "L1"),
            status=422,
        )
        assert r["errors"][0]["field"] == "customer_id", r


# --- guide price ranges --------------------------------------------------------------------------


async def test_dealer_prices_must_lie_inside_the_guide_range(brand: Brand) -> None:
    b = brand
    lst = await dealer_list(b, "L1", "L1-BASE")
    r = await entry(b, lst, "X", "130.00", dealer="L1", status=422)
    assert r["code"] == "outside_guide_price"
    problem = r["errors"][0]
    assert (problem["field"], problem["min_price"], problem["max_price"]) == ("price", "80.00", "120.00")
    assert problem["guide_price_id"] == b.ids["guide"] and "entry" in problem["message"]
    # Bounds are inclusive; a case of 6 is bounded by 6 × the piece range (480–720).
    assert (await entry(b, lst, "X", "120.00", dealer="L1", max_qty="99"))["price"] == "120.00"
    await entry(b, lst, "X", "720.00", dealer="L1", unit="case", max_qty="9")
    r = await entry(b, lst, "X", "721.00", dealer="L1", unit="case", min_qty="10", status=422)
    assert (r["errors"][0]["min_price"], r["errors"][0]["max_price"]) == ("480.00", "720.00")
    # A SKU without a guide range is not bounded; the brand's own lists never are.
    await entry(b, lst, "Y", "999.00", dealer="L1")
    await entry(b, b.ids["BRAND"], "X", "5000.00", unit="case")
    # A patch outside the range is refused and changes nothing.
    low = await entry(b, lst, "X", "80.00", dealer="L1", min_qty="100")
    r = await b.call(
        "PATCH",
        f"/api/v1/price-entries/{low['id']}",
        {"price": "79.99"},
        key=key(b, "L1"),
        headers={"If-Match": '"1"'},
        status=422,
    )
    assert r["code"] == "outside_guide_price" and r["errors"][0]["entry_id"] == low["id"]
    assert (await b.get(f"/api/v1/price-entries/{low['id']}", key=key(b, "L1")))["price"] == "80.00"


async def test_csv_import_of_a_dealer_list_is_all_or_nothing_with_line_numbers(
    client: httpx.AsyncClient, brand: Brand
) -> None:
    b = brand
    lst = await dealer_list(b, "L1", "L1-BASE")
    await entry(b, lst, "X", "100.00", dealer="L1")
    text = (
        "sku_code,unit_code,price,min_qty,max_qty\n"
        "X,pcs,90.00,0,9\nX,pcs,150.00,10,19\nY,pcs,5.00,0,\nX,pcs,10.00,20,\n"
    )
    headers = {**bearer(key(b, "L1")), "Content-Type": "text/csv"}
    r = await client.post(f"{LISTS}/{lst}/entries.csv", content=text, headers=headers)
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert [(e["line"], e["field"]) for e in errors] == [(3, "price"), (5, "price")], errors
    assert "80.00 to 120.00" in errors[0]["message"]
    entries = (await b.get(f"{LISTS}/{lst}/entries", key=key(b, "L1")))["items"]
    assert [e["price"] for e in entries] == ["100.00"]  # nothing written
    good = "sku_code,unit_code,price,min_qty,max_qty\nX,pcs,90.00,0,9\nX,pcs,110.00,10,\n"
    r = await client.post(f"{LISTS}/{lst}/entries.csv", content=good, headers=headers)
    assert r.status_code == 200 and r.json() == {"created": 1, "updated": 1, "unchanged": 0, "deleted": 0}, (
        r.text
    )


async def test_a_narrowed_guide_range_flags_entries_and_refuses_them_at_quote(brand: Brand) -> None:
    """Decision: existing entries are never rewritten by the brand; they are flagged on read and
    a quote that would price with one is a 422 naming the line."""
    b = brand
    lst = await dealer_list(b, "L1", "L1-BASE")
    e = await entry(b, lst, "X", "110.00", dealer="L1")
    await entry(b, lst, "Z", "39.00", dealer="L1")
    q = await quote(b, "L2", [{"sku_id": b.ids["X"], "quantity": "1"}])
    assert q["lines"][0]["list_price"] == "110.00"
    await b.call(
        "PATCH",
        f"/api/v1/guide-prices/{b.ids['guide']}",
        {"max_price": "100.00"},
        headers={"If-Match": '"1"'},
    )
    flagged = await b.get(f"/api/v1/price-entries/{e['id']}", key=key(b, "L1"))
    assert "80.00 to 100.00" in flagged["guide_violation"]
    listed = (await b.get(f"{LISTS}/{lst}/entries", key=key(b, "L1")))["items"]
    assert [x["guide_violation"] is not None for x in sorted(listed, key=lambda x: D(x["price"]))] == [
        False,
        True,
    ]
    r = await quote(
        b, "L2", [{"sku_id": b.ids["Z"], "quantity": "1"}, {"sku_id": b.ids["X"], "quantity": "1"}], 422
    )
    assert r["code"] == "outside_guide_price" and [x["field"] for x in r["errors"]] == ["lines[1].sku_id"]
    # The dealer brings its price back inside and the quote prices again.
    await b.call(
        "PATCH",
        f"/api/v1/price-entries/{e['id']}",
        {"price": "100.00"},
        key=key(b, "L1"),
        headers={"If-Match": '"1"'},
    )
    assert (await quote(b, "L2", [{"sku_id": b.ids["X"], "quantity": "1"}]))["lines"][0][
        "list_price"
    ] == "100.00"


# --- quotes priced by the routed seller ----------------------------------------------------------


async def test_a_level_2_quote_shows_both_sellers(brand: Brand) -> None:
    """L2 buys X (routed to L1: L1's own 95) and Y (brand-supplied: the brand's 50). The brand's
    10% promotion applies to the brand-sold line only."""
    b = brand
    lst = await dealer_list(b, "L1", "L1-BASE")
    await entry(b, lst, "X", "95.00", dealer="L1")
    await b.post(
        "/api/v1/promotions",
        {"code": "TEN", "name": "10% off", "type": "straight_discount", "rule": {"off_ratio": "0.1"}},
    )
    q = await quote(
        b,
        "L2",
        [
            {"line_id": "x", "sku_id": b.ids["X"], "quantity": "2"},
            {"line_id": "y", "sku_id": b.ids["Y"], "quantity": "1"},
        ],
    )
    x, y = q["lines"]
    assert (x["seller_customer_id"], x["list_price"], x["price_source"]["price_list_code"]) == (
        b.ids["L1"],
        "95.00",
        "L1-BASE",
    )
    assert (x["gross"], x["payable"], x["discounts"]) == ("190.00", "190.00", [])
    assert (y["seller_customer_id"], y["list_price"], y["price_source"]["price_list_code"]) == (
        None,
        "50.00",
        "BRAND",
    )
    assert (y["payable"], [d["amount"] for d in y["discounts"]]) == ("45.00", ["5.00"])
    assert q["sellers"] == [
        {"seller_customer_id": None, "line_ids": ["y"], "gross": "50.00", "payable": "45.00"},
        {"seller_customer_id": b.ids["L1"], "line_ids": ["x"], "gross": "190.00", "payable": "190.00"},
    ]
    assert (q["totals"]["gross"], q["totals"]["discount"], q["totals"]["due"]) == ("240.00", "5.00", "235.00")
    item = next(s for s in q["stages"] if s["stage"] == "item")
    assert (item["base"], item["discount"], item["after"]) == ("240.00", "5.00", "235.00")
    # The brand's staff quoting for L2 see the same routing; L1 quoting for itself buys from the brand.
    staff = await b.post(
        "/api/v1/quotes",
        {"customer_id": b.ids["L2"], "lines": [{"sku_id": b.ids["X"], "quantity": "1"}]},
        status=200,
    )
    assert staff["lines"][0]["seller_customer_id"] == b.ids["L1"]
    own = await quote(b, "L1", [{"sku_id": b.ids["X"], "quantity": "1"}])
    assert (own["lines"][0]["seller_customer_id"], own["lines"][0]["list_price"]) == (None, "100.00")


async def test_a_dealer_never_prices_with_another_dealers_list(brand: Brand) -> None:
    b = brand
    l1 = await dealer_list(b, "L1", "L1-BASE")
    await entry(b, l1, "X", "95.00", dealer="L1")
    l1b = await dealer_list(b, "L1B", "L1B-BASE")
    await entry(b, l1b, "X", "85.00", dealer="L1B")
    await entry(b, l1b, "Z", "30.00", dealer="L1B")
    assert (await quote(b, "L2", [{"sku_id": b.ids["X"], "quantity": "1"}]))["lines"][0][
        "list_price"
    ] == "95.00"
    assert (await quote(b, "L2B", [{"sku_id": b.ids["X"], "quantity": "1"}]))["lines"][0][
        "list_price"
    ] == "85.00"
    # Z is routed to L1, which has no price for it: L1B's price and the brand's never stand in.
    r = await quote(
        b, "L2", [{"sku_id": b.ids["X"], "quantity": "1"}, {"sku_id": b.ids["Z"], "quantity": "1"}], 422
    )
    assert r["code"] == "no_seller_price"
    assert [(e["field"], e["seller_customer_id"]) for e in r["errors"]] == [("lines[1].sku_id", b.ids["L1"])]


async def test_dealer_books_compile_per_owner(app: Any, brand: Brand) -> None:
    """A change to L1's list restamps L1's book only: the brand's stamp and L1B's book stay."""
    b = brand
    l1 = await dealer_list(b, "L1", "L1-BASE")
    e = await entry(b, l1, "X", "95.00", dealer="L1")
    l1b = await dealer_list(b, "L1B", "L1B-BASE")
    await entry(b, l1b, "X", "85.00", dealer="L1B")
    sellers = [UUID(b.ids["L1"]), UUID(b.ids["L1B"])]

    async def books() -> tuple[revisions.Revision, dict[UUID, prices.PriceBook]]:
        with tenant_scope(UUID(b.t.id)):
            async with app.state.db.transaction() as s:
                stamp = (await revisions.current(s, (prices.TOPIC,)))[prices.TOPIC]
                return stamp, await prices.seller_books(s, sellers)

    stamp, before = await books()
    await b.call(
        "PATCH",
        f"/api/v1/price-entries/{e['id']}",
        {"price": "96.00"},
        key=key(b, "L1"),
        headers={"If-Match": '"1"'},
    )
    stamp_after, after = await books()
    assert stamp_after == stamp
    assert after[sellers[1]] is before[sellers[1]]
    assert after[sellers[0]] is not before[sellers[0]]
    assert len(after[sellers[0]].list_codes) == 1 and len(after[sellers[1]].list_codes) == 1
    # The brand's book holds only the brand's list.
    with tenant_scope(UUID(b.t.id)):
        async with app.state.db.transaction() as s:
            book = await prices.price_book(s, stamp_after)
    assert list(book.list_codes.values()) == ["BRAND"]


async def test_list_codes_are_unique_per_owner_so_they_cannot_be_probed(client, brand):
    """Reading another dealer's list is a 404, and trying its code reveals nothing either: codes
    are unique per owner (the brand's lists, each dealer's own)."""
    b = brand
    secret = await dealer_list(b, "L1B", "L1B-SECRET-VIP")
    l1 = bearer(key(b, "L1"))
    assert (await client.get(f"/api/v1/price-lists/{secret}", headers=l1)).status_code == 404
    body = {"code": "L1B-SECRET-VIP", "name": "Mine", "step": "base"}
    r = await client.post("/api/v1/price-lists", headers=l1, json=body)
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/price-lists", headers=l1, json=body)
    assert r.status_code == 409 and r.json()["code"] == "duplicate"
