"""Shipping from the warehouses the seller chooses (issue 4) through the real app: a shipment
names, per line, the warehouse and optionally the lot it leaves from. A line leaving from
elsewhere than its holds releases that much of them in the order's warehouse and takes the goods
from the chosen one in allocation order (earliest expiry first, never an expired lot unless it is
named); a warehouse that cannot cover a line is a 409 naming it that changes nothing; a warehouse
that is not the seller's is a 422 naming the field; two concurrent shipments of one order from
two warehouses have one winner. Stock is checked per warehouse and lot after every step."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal as D
from typing import Any
from uuid import uuid4

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures import TenantHandle, make_tenant
from tests.test_funds_api import API, assert_ledger_balanced, fund_cash, keyed, post
from tests.test_multilevel import Levels, call, lv, ok, order_body, remit_to  # noqa: F401 (lv: a fixture)
from tests.test_multilevel import stock as level_stock
from tests.test_multilevel_dropship import allow_drop_ship, brand_cash, dropship_body
from tests.test_orders_api import Shop, act, basket, cash, shop, stock, submitted

TODAY = date.today()


async def levels(client: httpx.AsyncClient, t: TenantHandle, warehouse_id: str, sku: str) -> dict[str, Any]:
    """(on hand, reserved) per lot of ``sku`` in the warehouse."""
    r = await client.get(f"{API}/stock", headers=t.auth, params={"warehouse_id": warehouse_id, "sku_id": sku})
    assert r.status_code == 200, r.text
    return {x["lot_no"]: (D(x["on_hand"]), D(x["reserved"])) for x in r.json()["items"]}


async def second_warehouse(client: httpx.AsyncClient, s: Shop, *lots: tuple[str, str, int | None]) -> str:
    """A second brand warehouse holding SKU S0 in ``lots`` (lot number, quantity, days to expiry)."""
    w = await post(client, s.t.auth, "/warehouses", {"code": f"B{uuid4().hex[:6]}", "name": "Second"})
    for lot_no, quantity, days in lots:
        body: dict[str, Any] = {
            "warehouse_id": w["id"],
            "sku_id": s.skus[0],
            "quantity": quantity,
            "lot_no": lot_no,
        }
        if days is not None:
            body["expiry_date"] = (TODAY + timedelta(days=days)).isoformat()
        await post(client, s.t.auth, "/stock/receipts", body)
    return str(w["id"])


async def shipment(
    client: httpx.AsyncClient, auth: dict[str, str], order_id: str, *lines: dict[str, Any]
) -> httpx.Response:
    return await act(client, auth, order_id, "shipments", {"lines": list(lines)})


async def test_a_shipment_from_two_warehouses_releases_in_one_and_takes_from_the_other(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    cash_id = await fund_cash(client, t, s.d.ids["D1"], "1000.00", "TWO")
    other = await second_warehouse(client, s, ("OLD", "10", -1), ("LATE", "10", 90), ("SOON", "3", 30))
    o = await submitted(client, s.d.keys["D1"], basket(s, "10", "5"))
    assert await stock(client, s, s.skus[0]) == (100, 10)

    r = await shipment(
        client,
        t.auth,
        o["id"],
        {"line_id": "1", "quantity": "5", "warehouse_id": other},
        {"line_id": "2", "quantity": "5"},
    )
    assert r.status_code == 201, r.text
    part = r.json()
    assert (part["status"], D(part["totals"]["posted_amount"])) == ("partially_shipped", 100)
    assert [D(ln["shipped_quantity"]) for ln in part["lines"]] == [5, 5]
    # Line 1: 5 of its 10 held in BR are released there; the other warehouse gives the earliest
    # expiry first (3 SOON, then 2 LATE) and never the expired OLD lot.
    assert await stock(client, s, s.skus[0]) == (100, 5)
    assert await levels(client, t, other, s.skus[0]) == {"OLD": (10, 0), "LATE": (8, 0), "SOON": (0, 0)}
    # Line 2 shipped from its holds in BR, as any shipment does.
    assert await stock(client, s, s.skus[1]) == (95, 0)
    assert await cash(client, t, cash_id) == (900, 50)
    entry = part["history"][-1]
    assert entry["action"] == "ship_partial"
    assert entry["detail"]["stock"] == {
        "1": {"warehouse_id": other, "lots": {"SOON": "3", "LATE": "2"}, "released_from": s.warehouse_id},
        "2": {"warehouse_id": s.warehouse_id, "lots": {"L1": "5"}},
    }
    # The chosen warehouse's movements carry the shipment in their reference.
    reference = f"order:{o['id']}/{entry['detail']['shipment_id']}"
    r = await client.get(f"{API}/stock/movements", headers=t.auth, params={"reference": reference})
    moved = sorted((m["kind"], m["lot_no"], D(m["on_hand_delta"])) for m in r.json()["items"])
    assert moved == [
        ("issue", "LATE", -2),
        ("issue", "SOON", -3),
        ("reserve", "LATE", 0),
        ("reserve", "SOON", 0),
    ]

    # The rest of line 1 ships from what is still held in BR.
    r = await shipment(client, t.auth, o["id"], {"line_id": "1", "quantity": "5"})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "shipped"
    assert await stock(client, s, s.skus[0]) == (95, 0)
    assert await levels(client, t, other, s.skus[0]) == {"OLD": (10, 0), "LATE": (8, 0), "SOON": (0, 0)}
    assert await cash(client, t, cash_id) == (850, 0)
    await assert_ledger_balanced(app, t)


async def test_a_warehouse_that_is_short_is_a_409_naming_the_line_that_changes_nothing(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    cash_id = await fund_cash(client, t, s.d.ids["D1"], "1000.00", "SHORT")
    other = await second_warehouse(client, s, ("OLD", "10", -1), ("SOON", "3", 30))
    o = await submitted(client, s.d.keys["D1"], basket(s, "10", "5"))
    before = await levels(client, t, other, s.skus[0])

    r = await shipment(
        client,
        t.auth,
        o["id"],
        {"line_id": "2", "quantity": "5"},
        {"line_id": "1", "quantity": "5", "warehouse_id": other},  # 3 fresh; the expired lot is not stock
    )
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["code"] == "insufficient_stock"
    assert [(e["field"], e["line_id"]) for e in problem["errors"]] == [("lines[1].quantity", "1")]
    assert await levels(client, t, other, s.skus[0]) == before
    assert await stock(client, s, s.skus[0]) == (100, 10)
    assert await stock(client, s, s.skus[1]) == (100, 5)
    assert await cash(client, t, cash_id) == (1000, 150)
    got = (await client.get(f"{API}/orders/{o['id']}", headers=t.auth)).json()
    assert (got["status"], len(got["history"])) == ("approved", 1)
    assert [D(ln["shipped_quantity"]) for ln in got["lines"]] == [0, 0]
    r = await client.get(f"{API}/stock/movements", headers=t.auth, params={"warehouse_id": other})
    assert {m["kind"] for m in r.json()["items"]} == {"receipt"}
    await assert_ledger_balanced(app, t)


async def test_a_named_lot_ships_even_when_expired_and_in_the_orders_own_warehouse(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    await fund_cash(client, t, s.d.ids["D1"], "1000.00", "LOT")
    other = await second_warehouse(client, s, ("OLD", "10", -1), ("SOON", "10", 30))
    await post(
        client,
        t.auth,
        "/stock/receipts",
        {"warehouse_id": s.warehouse_id, "sku_id": s.skus[0], "quantity": "10", "lot_no": "L2"},
    )
    o = await submitted(client, s.d.keys["D1"], basket(s, "10"))
    assert await levels(client, t, s.warehouse_id, s.skus[0]) == {"L1": (100, 10), "L2": (10, 0)}

    r = await shipment(
        client, t.auth, o["id"], {"line_id": "1", "quantity": "4", "warehouse_id": other, "lot_no": "OLD"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["history"][-1]["detail"]["stock"]["1"]["lots"] == {"OLD": "4"}
    assert await levels(client, t, other, s.skus[0]) == {"OLD": (6, 0), "SOON": (10, 0)}
    assert await levels(client, t, s.warehouse_id, s.skus[0]) == {"L1": (100, 6), "L2": (10, 0)}

    # A lot without a warehouse: the order's own warehouse, that lot, in place of the held one.
    r = await shipment(client, t.auth, o["id"], {"line_id": "1", "quantity": "3", "lot_no": "L2"})
    assert r.status_code == 201, r.text
    assert r.json()["history"][-1]["detail"]["stock"]["1"] == {
        "warehouse_id": s.warehouse_id,
        "lots": {"L2": "3"},
        "released_from": s.warehouse_id,
    }
    assert await levels(client, t, s.warehouse_id, s.skus[0]) == {"L1": (100, 3), "L2": (7, 0)}

    # A lot the warehouse does not have is a shortage of that line.
    r = await shipment(client, t.auth, o["id"], {"line_id": "1", "quantity": "3", "lot_no": "NOPE"})
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "lines[0].quantity", r.text

    r = await shipment(client, t.auth, o["id"], {"line_id": "1", "quantity": "3"})
    assert r.status_code == 201 and r.json()["status"] == "shipped", r.text
    assert await levels(client, t, s.warehouse_id, s.skus[0]) == {"L1": (97, 0), "L2": (7, 0)}
    await assert_ledger_balanced(app, t)


async def test_a_warehouse_that_is_not_the_sellers_is_a_422_naming_the_field(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    cash_id = await fund_cash(client, t, s.d.ids["D1"], "1000.00", "NOTMINE")
    dealers_own = await post(
        client, t.auth, "/warehouses", {"code": "D1W", "name": "D1's", "owner_customer_id": s.d.ids["D1"]}
    )
    await post(
        client,
        t.auth,
        "/stock/receipts",
        {"warehouse_id": dealers_own["id"], "sku_id": s.skus[0], "quantity": "50", "lot_no": "L1"},
    )
    o = await submitted(client, s.d.keys["D1"], basket(s, "10", "5"))
    for warehouse_id in (dealers_own["id"], str(uuid4())):
        r = await shipment(
            client,
            t.auth,
            o["id"],
            {"line_id": "2", "quantity": "1"},
            {"line_id": "1", "quantity": "1", "warehouse_id": warehouse_id},
        )
        assert r.status_code == 422, r.text
        assert [e["field"] for e in r.json()["errors"]] == ["lines[1].warehouse_id"]
    assert await levels(client, t, dealers_own["id"], s.skus[0]) == {"L1": (50, 0)}
    assert await stock(client, s, s.skus[0]) == (100, 10)
    assert await cash(client, t, cash_id) == (1000, 150)


async def test_a_dealer_ships_its_sale_from_another_warehouse_it_owns_and_only_its_own(
    client,
    app,
    lv: Levels,  # noqa: F811
):
    c = client
    await remit_to(c, lv, "L2", "L1", "1000.00")
    second = await lv.b.post(
        "/api/v1/warehouses", {"code": "W1C", "name": "W1C", "owner_customer_id": lv.id("L1")}
    )
    lv.b.ids["W1C"] = second["id"]
    await lv.b.post(
        "/api/v1/stock/receipts",
        {"warehouse_id": second["id"], "sku_id": lv.id("X"), "quantity": "5", "lot_no": "C1"},
    )
    order = await ok(c, "POST", "/orders", lv.key("L2"), order_body(lv, "W1", X="3"))
    assert await level_stock(c, lv, "W1", "X") == (20, 3)
    path = f"/orders/{order['id']}/shipments"
    for warehouse in ("WB", "W1B"):  # the brand's, another dealer's
        one = {"lines": [{"line_id": "1", "quantity": "1", "warehouse_id": lv.id(warehouse)}]}
        r = await call(c, "POST", path, lv.key("L1"), one)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "lines[0].warehouse_id", r.text
    one = {"lines": [{"line_id": "1", "quantity": "2", "warehouse_id": second["id"]}]}
    shipped = await ok(c, "POST", path, lv.key("L1"), one)
    assert shipped["status"] == "partially_shipped"
    assert await level_stock(c, lv, "W1", "X") == (20, 1)
    assert await level_stock(c, lv, "W1C", "X") == (3, 0)
    assert await level_stock(c, lv, "WB", "X") == (100, 0)
    await assert_ledger_balanced(app, lv.t)


async def test_concurrent_shipments_of_one_order_from_two_warehouses_have_one_winner(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, skus=1)
    cash_id = await fund_cash(client, t, s.d.ids["D1"], "1000.00", "RACE2")
    other = await second_warehouse(client, s, ("L9", "100", None))
    orders = [await submitted(client, s.d.keys["D1"], basket(s, "2")) for _ in range(6)]
    races = []
    for o in orders:
        races += [
            shipment(client, t.auth, o["id"], {"line_id": "1", "quantity": "2"}),
            shipment(client, t.auth, o["id"], {"line_id": "1", "quantity": "2", "warehouse_id": other}),
        ]
    responses = await asyncio.gather(*races)
    from_holds = 0
    for o, here, there in zip(orders, responses[::2], responses[1::2], strict=True):
        assert sorted([here.status_code, there.status_code]) == [201, 409], (here.text, there.text)
        loser = here if here.status_code == 409 else there
        assert loser.json()["code"] in ("illegal_transition", "order_changed"), loser.text
        got = (await client.get(f"{API}/orders/{o['id']}", headers=t.auth)).json()
        assert (got["status"], len(got["history"])) == ("shipped", 2)
        from_holds += here.status_code == 201
    from_other = len(orders) - from_holds
    assert await stock(client, s, s.skus[0]) == (100 - 2 * from_holds, 0)
    assert await levels(client, t, other, s.skus[0]) == {"L9": (100 - 2 * from_other, 0)}
    assert await cash(client, t, cash_id) == (1000 - 20 * len(orders), 0)
    await assert_ledger_balanced(app, t)


async def test_a_shipment_naming_a_warehouse_needs_its_idempotency_key_and_replays(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, skus=1)
    await fund_cash(client, t, s.d.ids["D1"], "1000.00", "REPLAY")
    other = await second_warehouse(client, s, ("L9", "10", None))
    o = await submitted(client, s.d.keys["D1"], basket(s, "4"))
    key = str(uuid4())
    body = {"lines": [{"line_id": "1", "quantity": "4", "warehouse_id": other}]}
    for _ in range(2):
        r = await client.post(f"{API}/orders/{o['id']}/shipments", headers=keyed(t.auth, key), json=body)
        assert r.status_code == 201, r.text
    assert await levels(client, t, other, s.skus[0]) == {"L9": (6, 0)}
    assert await stock(client, s, s.skus[0]) == (100, 0)


async def test_shipments_crossing_between_two_warehouses_all_ship(client, app, tenant_a):
    """Orders reserved in BR shipping from the other warehouse and orders reserved there shipping
    from BR, all at once: every one ships, each warehouse releases what it held and gives what
    was asked of it, and every unit moves exactly once."""
    t = tenant_a
    s = await shop(client, t, skus=1, stock="100")
    await fund_cash(client, t, s.d.ids["D1"], "1000.00", "CROSS")
    other = await second_warehouse(client, s, ("L1", "100", None))
    here = [await submitted(client, s.d.keys["D1"], basket(s, "2")) for _ in range(5)]
    there = [
        await submitted(client, s.d.keys["D1"], {**basket(s, "3"), "warehouse_id": other}) for _ in range(5)
    ]
    assert await stock(client, s, s.skus[0]) == (100, 10)
    assert await levels(client, t, other, s.skus[0]) == {"L1": (100, 15)}
    responses = await asyncio.gather(
        *[
            shipment(client, t.auth, o["id"], {"line_id": "1", "quantity": "2", "warehouse_id": other})
            for o in here
        ],
        *[
            shipment(
                client, t.auth, o["id"], {"line_id": "1", "quantity": "3", "warehouse_id": s.warehouse_id}
            )
            for o in there
        ],
    )
    assert [r.status_code for r in responses] == [201] * 10, [
        r.text for r in responses if r.status_code != 201
    ]
    assert await stock(client, s, s.skus[0]) == (85, 0)
    assert await levels(client, t, other, s.skus[0]) == {"L1": (90, 0)}
    await assert_ledger_balanced(app, t)


async def test_a_drop_ship_purchase_ships_from_another_brand_warehouse_and_its_level_2_order_too(
    client,
    app,
    lv: Levels,  # noqa: F811
):
    c = client
    await allow_drop_ship(c, lv)
    await remit_to(c, lv, "L2", "L1", "3000.00")
    await brand_cash(c, lv, "L1", "5000.00")
    east = await lv.b.post("/api/v1/warehouses", {"code": "WE", "name": "WE"})
    lv.b.ids["WE"] = east["id"]
    await lv.b.post(
        "/api/v1/stock/receipts",
        {"warehouse_id": east["id"], "sku_id": lv.id("X"), "quantity": "50", "lot_no": "E1"},
    )
    o2 = await ok(c, "POST", "/orders", lv.key("L2"), dropship_body(lv, "30"))
    purchase_id = o2["drop_ship_order_id"]
    assert await level_stock(c, lv, "WB", "X") == (100, 30)
    path = f"/orders/{purchase_id}/shipments"
    mine = {"lines": [{"line_id": "1", "quantity": "10", "warehouse_id": lv.id("W1")}]}  # L1's own
    r = await call(c, "POST", path, lv.t.auth, mine)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "lines[0].warehouse_id", r.text
    shipped = await ok(
        c,
        "POST",
        path,
        lv.t.auth,
        {"lines": [{"line_id": "1", "quantity": "10", "warehouse_id": east["id"]}]},
    )
    assert shipped["status"] == "partially_shipped"
    assert await level_stock(c, lv, "WB", "X") == (100, 20)
    assert await level_stock(c, lv, "WE", "X") == (40, 0)
    assert await level_stock(c, lv, "W1", "X") == (20, 0)  # none of the level-1 dealer's stock moves
    source = (await c.get(f"{API}/orders/{o2['id']}", headers=lv.t.auth)).json()
    assert source["status"] == "partially_shipped" and D(source["lines"][0]["shipped_quantity"]) == 10
    await assert_ledger_balanced(app, lv.t)


SOURCES = ("holds", "other", "lot L1", "lot WX")
"""Where a step ships from: the order's holds, the other warehouse (allocation order), lot L1 of
the order's own warehouse, the expired lot WX of the other warehouse (named)."""
STEPS = st.lists(
    st.tuples(st.sampled_from(SOURCES), st.integers(min_value=1, max_value=4)), min_size=1, max_size=5
)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    quantity=st.integers(min_value=3, max_value=9),
    early=st.integers(min_value=1, max_value=5),
    other_lots=st.tuples(*[st.integers(min_value=0, max_value=4)] * 3),
    steps=STEPS,
)
async def test_shipments_from_any_source_follow_a_model_of_holds_and_lots(
    client, app, quantity, early, other_lots, steps
):
    """BR holds SKU S0 in L0 (``early``, expiring soon) and L1 (100, no expiry); the order of
    ``quantity`` holds L0 first. The other warehouse holds W1 (expiring), W2 (no expiry) and the
    expired WX. Each step ships from a drawn source: the holds are walked front first (shipped,
    or released for a line leaving from elsewhere, the rest keeping its lots), the other
    warehouse gives W1 then W2 and never WX unless named, and a source that cannot cover the step
    is a 409 that changes nothing. After every step both warehouses match the model lot by lot."""
    t = await make_tenant(client, prefix="shipw")
    s = await shop(client, t, skus=1)
    await fund_cash(client, t, s.d.ids["D1"], "1000.00", "MODEL")
    soon = (TODAY + timedelta(days=20)).isoformat()
    await post(
        client,
        t.auth,
        "/stock/receipts",
        {
            "warehouse_id": s.warehouse_id,
            "sku_id": s.skus[0],
            "quantity": str(early),
            "lot_no": "L0",
            "expiry_date": soon,
        },
    )
    w1, w2, wx = other_lots
    stocked = [
        (lot, str(q), days) for lot, q, days in (("W1", w1, 10), ("W2", w2, None), ("WX", wx, -3)) if q
    ]
    other = await second_warehouse(client, s, *stocked)
    o = await submitted(client, s.d.keys["D1"], basket(s, str(quantity)))

    br = {"L0": D(early), "L1": D(100)}  # on hand
    there = {"W1": D(w1), "W2": D(w2), "WX": D(wx)}
    holds = [
        [lot, q]
        for lot, q in (("L0", D(min(early, quantity))), ("L1", D(quantity - min(early, quantity))))
        if q
    ]
    left = D(quantity)

    def from_holds(q: D) -> list[list[Any]]:
        """``q`` off the front of the holds; the holds that stay."""
        rest = [list(h) for h in holds]
        for h in rest:
            part = min(q, h[1])
            h[1] -= part
            q -= part
        return [h for h in rest if h[1]]

    for source, drawn in steps:
        if not left:
            break
        q = min(D(drawn), left)
        line: dict[str, Any] = {"line_id": "1", "quantity": str(q)}
        if source == "other":
            line["warehouse_id"] = other
        elif source == "lot L1":
            line["lot_no"] = "L1"
        elif source == "lot WX":
            line |= {"warehouse_id": other, "lot_no": "WX"}
        staying = from_holds(q)
        ok_ = True
        if source == "holds":
            taken = {h[0]: h[1] - next((x[1] for x in staying if x[0] == h[0]), D(0)) for h in holds}
            for lot, part in taken.items():
                br[lot] -= part
        elif source == "lot L1":
            held_l1 = sum((h[1] for h in staying if h[0] == "L1"), D(0))
            ok_ = br["L1"] - held_l1 >= q
            if ok_:
                br["L1"] -= q
        elif source == "lot WX":
            ok_ = there["WX"] >= q
            if ok_:
                there["WX"] -= q
        else:
            ok_ = there["W1"] + there["W2"] >= q
            if ok_:
                part = min(there["W1"], q)
                there["W1"] -= part
                there["W2"] -= q - part
        r = await shipment(client, t.auth, o["id"], line)
        if ok_:
            assert r.status_code == 201, (source, q, r.text)
            holds, left = staying, left - q
            recorded = r.json()["history"][-1]["detail"]["stock"]["1"]
            assert sum((D(v) for v in recorded["lots"].values()), D(0)) == q
        else:
            assert (r.status_code, r.json()["code"]) == (409, "insufficient_stock"), (source, q, r.text)
        reserved = {lot: sum((h[1] for h in holds if h[0] == lot), D(0)) for lot in br}
        assert await levels(client, t, s.warehouse_id, s.skus[0]) == {
            lot: (br[lot], reserved[lot]) for lot in br
        }
        got = await levels(client, t, other, s.skus[0])
        assert got == {lot: (there[lot], D(0)) for lot, _, _ in stocked}
    await assert_ledger_balanced(app, t)
