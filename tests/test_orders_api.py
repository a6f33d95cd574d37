"""The order pool through the real app: a full life (remit → submit → ship in two parts → 签收)
with balances and stock checked after every step, every illegal transition as a 409, a refused
submit that leaves nothing behind, approval, rejection and cancellation releasing everything,
dealer visibility, and the statements a submit costs at 1, 10 and 100 lines."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal as D
from typing import Any
from uuid import UUID, uuid4

import httpx
from sqlalchemy import event, func, select

from omnicloud.core.models import AuditEntry, OutboxEvent
from omnicloud.inventory.models import StockReservation
from omnicloud.pools.funds.models import FundHold
from omnicloud.pools.orders.models import Order, OrderLine
from omnicloud.pools.sales.models import SalesFact
from tests.fixtures import TenantHandle
from tests.test_funds_api import (
    API,
    Dealers,
    account,
    assert_ledger_balanced,
    dealers,
    fund_cash,
    keyed,
    post,
    tx,
)


@dataclass
class Shop:
    """Dealers D1 (with sub-dealer D1a) and D2, SKUs priced by a base price list, and a brand
    warehouse holding ``stock`` of each SKU in lot L1."""

    t: TenantHandle
    d: Dealers
    skus: list[str]
    unit_id: str
    warehouse_id: str


async def shop(client: httpx.AsyncClient, t: TenantHandle, *, skus: int = 2, stock: str = "100") -> Shop:
    d = await dealers(client, t)
    unit = await post(client, t.auth, "/units", {"code": "pc", "name": "Piece"})
    product = await post(
        client, t.auth, "/products", {"code": "P", "name": "Product", "base_unit_id": unit["id"]}
    )
    price_list = await post(client, t.auth, "/price-lists", {"code": "BASE", "name": "Base", "step": "base"})
    warehouse = await post(client, t.auth, "/warehouses", {"code": "BR", "name": "Brand warehouse"})
    ids = []
    for i in range(skus):
        sku = await post(
            client,
            t.auth,
            "/skus",
            {"product_id": product["id"], "code": f"S{i}", "name": f"Sku {i}", "list_price": "10.00"},
        )
        ids.append(sku["id"])
        await post(
            client,
            t.auth,
            f"/price-lists/{price_list['id']}/entries",
            {"sku_id": sku["id"], "unit_id": unit["id"], "price": "10.00"},
        )
        await post(
            client,
            t.auth,
            "/stock/receipts",
            {"warehouse_id": warehouse["id"], "sku_id": sku["id"], "quantity": stock, "lot_no": "L1"},
        )
    return Shop(t=t, d=d, skus=ids, unit_id=unit["id"], warehouse_id=warehouse["id"])


def basket(s: Shop, *quantities: str, **extra: Any) -> dict[str, Any]:
    return {
        "warehouse_id": s.warehouse_id,
        "lines": [
            {"line_id": str(i + 1), "sku_id": s.skus[i], "quantity": q} for i, q in enumerate(quantities)
        ],
        **extra,
    }


async def submit(
    client: httpx.AsyncClient, auth: dict[str, str], body: dict[str, Any], *, key: str | None = None
) -> httpx.Response:
    return await client.post(f"{API}/orders", headers=keyed(auth, key or str(uuid4())), json=body)


async def submitted(client: httpx.AsyncClient, auth: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    r = await submit(client, auth, body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def act(
    client: httpx.AsyncClient, auth: dict[str, str], order_id: str, action: str, body: Any = None
) -> httpx.Response:
    return await client.post(
        f"{API}/orders/{order_id}/{action}", headers=keyed(auth, str(uuid4())), json=body or {}
    )


async def ship(
    client: httpx.AsyncClient, auth: dict[str, str], order_id: str, **quantities: str
) -> httpx.Response:
    lines = [{"line_id": k.removeprefix("l"), "quantity": v} for k, v in quantities.items()]
    return await act(client, auth, order_id, "shipments", {"lines": lines})


async def stock(client: httpx.AsyncClient, s: Shop, sku: str) -> tuple[D, D]:
    r = await client.get(
        f"{API}/stock", headers=s.t.auth, params={"warehouse_id": s.warehouse_id, "sku_id": sku}
    )
    [level] = r.json()["items"]
    return D(level["on_hand"]), D(level["reserved"])


async def cash(client: httpx.AsyncClient, t: TenantHandle, account_id: str) -> tuple[D, D]:
    a = await account(client, t.auth, account_id)
    return D(a["balance"]), D(a["held"])


# --- the happy path ---------------------------------------------------------------------------


async def test_submit_ship_in_two_parts_and_confirm_receipt(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    d1 = s.d.keys["D1"]
    cash_id = await fund_cash(client, t, s.d.ids["D1"], "1000.00", "HAPPY")
    assert await cash(client, t, cash_id) == (1000, 0)

    key = str(uuid4())
    r = await submit(client, d1, basket(s, "10", "5"), key=key)
    assert r.status_code == 201, r.text
    o = r.json()
    assert (o["status"], o["customer_id"], o["version"]) == ("approved", s.d.ids["D1"], 1)
    assert o["number"].startswith("SO") and o["allowed_actions"] == ["ship_partial", "ship_full", "cancel"]
    totals = {k: D(v) for k, v in o["totals"].items()}
    assert (totals["gross"], totals["after_promotions"], totals["cash"], totals["frozen_amount"]) == (
        150,
        150,
        150,
        150,
    )
    assert (totals["credit_amount"], totals["posted_amount"]) == (0, 0)
    line = o["lines"][0]
    assert (D(line["list_price"]), line["price_source"]["kind"], D(line["payable"])) == (
        10,
        "price_list",
        100,
    )
    assert [h["action"] for h in o["history"]] == ["submit"]
    assert await cash(client, t, cash_id) == (1000, 150)
    assert await stock(client, s, s.skus[0]) == (100, 10)
    assert await stock(client, s, s.skus[1]) == (100, 5)

    replay = await submit(client, d1, basket(s, "10", "5"), key=key)
    assert replay.status_code == 201 and replay.json()["id"] == o["id"]
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert await cash(client, t, cash_id) == (1000, 150)  # a retry froze nothing more

    r = await ship(client, t.auth, o["id"], l1="4")
    assert r.status_code == 201, r.text
    part = r.json()
    assert (part["status"], D(part["totals"]["posted_amount"])) == ("partially_shipped", 40)
    assert [D(ln["shipped_quantity"]) for ln in part["lines"]] == [4, 0]
    assert await cash(client, t, cash_id) == (960, 110)
    assert await stock(client, s, s.skus[0]) == (96, 6)
    assert await stock(client, s, s.skus[1]) == (100, 5)

    r = await ship(client, t.auth, o["id"], l1="6", l2="5")
    assert r.status_code == 201, r.text
    done = r.json()
    assert (done["status"], D(done["totals"]["posted_amount"])) == ("shipped", 150)
    assert await cash(client, t, cash_id) == (850, 0)
    assert await stock(client, s, s.skus[0]) == (90, 0)
    assert await stock(client, s, s.skus[1]) == (95, 0)

    r = await act(client, d1, o["id"], "confirm-receipt")
    assert r.status_code == 200, r.text
    closed = r.json()
    assert (closed["status"], closed["allowed_actions"]) == ("completed", [])
    assert [(h["action"], h["to_status"]) for h in closed["history"]] == [
        ("submit", "approved"),
        ("ship_partial", "partially_shipped"),
        ("ship_full", "shipped"),
        ("confirm_receipt", "completed"),
    ]
    assert await cash(client, t, cash_id) == (850, 0)
    got = (await client.get(f"{API}/orders/{o['id']}", headers=d1)).json()
    assert got == closed
    await assert_ledger_balanced(app, t)
    async with tx(app, t) as db:  # each shipment wrote its sales facts; their parts add up to the lines
        facts = (
            await db.execute(
                select(SalesFact.sku_id, SalesFact.kind, SalesFact.quantity, SalesFact.amount).order_by(
                    SalesFact.at, SalesFact.sku_id
                )
            )
        ).all()
    by_sku: dict[str, list[tuple[str, D, D]]] = {}
    for sku_id, kind, quantity, amount in facts:
        by_sku.setdefault(str(sku_id), []).append((kind, quantity, amount))
    assert by_sku[s.skus[0]] == [("shipped", 4, 40), ("shipped", 6, 60)]
    assert by_sku[s.skus[1]] == [("shipped", 5, 50)]


async def test_a_staff_order_for_a_customer_and_the_list_filters(client, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    await fund_cash(client, t, s.d.ids["D2"], "100.00", "STAFF")
    r = await submit(client, t.auth, basket(s, "1"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "customer_id"
    o = await submitted(client, t.auth, basket(s, "2", customer_id=s.d.ids["D2"]))
    assert o["customer_id"] == s.d.ids["D2"] and o["submitted_by"].startswith("user:")
    r = await client.get(f"{API}/orders", headers=t.auth, params={"customer_id": s.d.ids["D2"]})
    assert [i["id"] for i in r.json()["items"]] == [o["id"]]
    r = await client.get(f"{API}/orders", headers=t.auth, params={"status": "shipped"})
    assert r.json()["items"] == []


# --- approval, rejection, cancellation --------------------------------------------------------


async def _floor(client: httpx.AsyncClient, s: Shop, price: str, action: str) -> None:
    for sku in s.skus:
        await post(
            client,
            s.t.auth,
            "/price-floors",
            {"sku_id": sku, "unit_id": s.unit_id, "price": price, "action": action},
        )


async def test_a_floor_needing_approval_waits_then_is_approved_or_rejected(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    await _floor(client, s, "12.00", "needs_approval")
    cash_id = await fund_cash(client, t, s.d.ids["D1"], "500.00", "APPROVE")
    d1 = s.d.keys["D1"]
    first = await submitted(client, d1, basket(s, "3"))
    assert first["status"] == "pending_approval" and first["approval_reasons"]
    assert first["floor_verdict"] == "needs_approval"
    r = await ship(client, t.auth, first["id"], l1="1")
    assert r.status_code == 409 and r.json()["code"] == "illegal_transition"
    r = await act(client, d1, first["id"], "approve")
    assert r.status_code == 403  # dealers cannot approve
    r = await act(client, t.auth, first["id"], "approve")
    assert r.status_code == 200 and r.json()["status"] == "approved"

    second = await submitted(client, d1, basket(s, "4"))
    assert await cash(client, t, cash_id) == (500, 70)
    assert await stock(client, s, s.skus[0]) == (100, 7)
    r = await act(client, t.auth, second["id"], "reject", {"reason": "too cheap"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "rejected" and r.json()["history"][-1]["detail"] == {"reason": "too cheap"}
    assert await cash(client, t, cash_id) == (500, 30)
    assert await stock(client, s, s.skus[0]) == (100, 3)
    await assert_ledger_balanced(app, t)


async def test_a_blocking_floor_is_a_422_naming_the_lines(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    await _floor(client, s, "12.00", "block")
    await fund_cash(client, t, s.d.ids["D1"], "500.00", "BLOCK")
    r = await submit(client, s.d.keys["D1"], basket(s, "1", "2"))
    assert r.status_code == 422 and r.json()["code"] == "below_price_floor"
    assert [e["field"] for e in r.json()["errors"]] == ["lines[0]", "lines[1]"]


async def test_cancel_releases_everything_exactly_once(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    cash_id = await fund_cash(client, t, s.d.ids["D1"], "500.00", "CANCEL")
    d1 = s.d.keys["D1"]
    o = await submitted(client, d1, basket(s, "5", "5"))
    assert await cash(client, t, cash_id) == (500, 100)
    r = await act(client, s.d.keys["D2"], o["id"], "cancel")
    assert r.status_code == 404  # another dealer's order does not exist for D2
    r = await act(client, d1, o["id"], "cancel", {"reason": "changed my mind"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert await cash(client, t, cash_id) == (500, 0)
    assert await stock(client, s, s.skus[0]) == (100, 0)
    r = await act(client, d1, o["id"], "cancel")
    assert r.status_code == 409 and r.json()["code"] == "illegal_transition"
    assert await cash(client, t, cash_id) == (500, 0)
    async with tx(app, t) as session:
        holds = (await session.scalars(select(FundHold.state).where(FundHold.ref_id == UUID(o["id"])))).all()
    assert holds == ["voided"]
    await assert_ledger_balanced(app, t)


# --- illegal transitions ----------------------------------------------------------------------

ACTIONS = {
    "approve": ("approve", None),
    "reject": ("reject", {}),
    "cancel": ("cancel", {}),
    "ship": ("shipments", {"lines": [{"line_id": "1", "quantity": "1"}]}),
    "confirm_receipt": ("confirm-receipt", None),
}
LEGAL = {
    "pending_approval": {"approve", "reject", "cancel"},
    "approved": {"ship", "cancel"},
    "partially_shipped": {"ship", "cancel"},
    "shipped": {"confirm_receipt"},
    "completed": set(),
    "closed": set(),
    "cancelled": set(),
    "rejected": set(),
}


async def _order_in(client: httpx.AsyncClient, s: Shop, status: str) -> str:
    """An order of D1 (2 units of one SKU) brought to ``status`` through the API."""
    auth = s.t.auth
    o = await submitted(client, s.d.keys["D1"], basket(s, "2"))
    steps = {
        "pending_approval": [],
        "approved": ["approve"],
        "partially_shipped": ["approve", "ship"],
        "shipped": ["approve", "ship", "ship"],
        "completed": ["approve", "ship", "ship", "confirm_receipt"],
        "closed": ["approve", "ship", "cancel"],
        "cancelled": ["cancel"],
        "rejected": ["reject"],
    }[status]
    for step in steps:
        path, body = ACTIONS[step]
        r = await act(client, auth, o["id"], path, body)
        assert r.status_code in (200, 201), r.text
    return str(o["id"])


async def test_every_illegal_transition_is_a_409_that_changes_nothing(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, skus=1)
    await _floor(client, s, "11.00", "needs_approval")  # every order starts pending approval
    cash_id = await fund_cash(client, t, s.d.ids["D1"], "1000.00", "ILLEGAL")
    for status, legal in LEGAL.items():
        order_id = await _order_in(client, s, status)
        before = (await client.get(f"{API}/orders/{order_id}", headers=t.auth)).json()
        assert before["status"] == status
        money = await cash(client, t, cash_id)
        for name, (path, body) in ACTIONS.items():
            if name in legal:
                continue
            r = await act(client, t.auth, order_id, path, body)
            assert r.status_code == 409 and r.json()["code"] == "illegal_transition", (status, name, r.text)
            assert status.replace("_", " ") in r.json()["detail"]
        after = (await client.get(f"{API}/orders/{order_id}", headers=t.auth)).json()
        assert after == before and await cash(client, t, cash_id) == money
    await assert_ledger_balanced(app, t)


async def test_bad_shipments_are_422s_and_keys_are_required(client, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    await fund_cash(client, t, s.d.ids["D1"], "500.00", "BADSHIP")
    o = await submitted(client, s.d.keys["D1"], basket(s, "2"))
    r = await client.post(f"{API}/orders", headers=s.d.keys["D1"], json=basket(s, "1"))
    assert r.status_code == 428 and r.json()["code"] == "idempotency_key_required"
    r = await client.post(
        f"{API}/orders/{o['id']}/shipments",
        headers=t.auth,
        json={"lines": [{"line_id": "1", "quantity": "1"}]},
    )
    assert r.status_code == 428
    r = await ship(client, t.auth, o["id"], l1="3")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "lines[0].quantity"
    r = await ship(client, t.auth, o["id"], l9="1")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "lines[0].line_id"
    r = await ship(client, s.d.keys["D1"], o["id"], l1="1")
    assert r.status_code == 403  # dealers do not ship


# --- a refused submit leaves nothing behind ---------------------------------------------------


async def _traces(app: Any, t: TenantHandle) -> dict[str, int]:
    async with tx(app, t) as s:
        return {
            "orders": await s.scalar(select(func.count(Order.id))) or 0,
            "lines": await s.scalar(select(func.count(OrderLine.id))) or 0,
            "holds": await s.scalar(select(func.count(FundHold.id))) or 0,
            "reservations": await s.scalar(select(func.count(StockReservation.id))) or 0,
            "order_audit": await s.scalar(
                select(func.count(AuditEntry.id)).where(AuditEntry.object_type == "order")
            )
            or 0,
            "hold_audit": await s.scalar(
                select(func.count(AuditEntry.id)).where(AuditEntry.object_type == "fund_holds")
            )
            or 0,
            "events": await s.scalar(
                select(func.count(OutboxEvent.id)).where(OutboxEvent.type.like("order.%"))
            )
            or 0,
        }


async def test_a_refused_submit_leaves_nothing_behind(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, stock="5")
    cash_id = await fund_cash(client, t, s.d.ids["D1"], "100.00", "NOTHING")
    d1 = s.d.keys["D1"]
    empty = await _traces(app, t)
    assert empty == dict.fromkeys(empty, 0)

    r = await submit(client, d1, basket(s, "1", "6"))  # cash covers it, stock does not
    assert r.status_code == 409 and r.json()["code"] == "insufficient_stock", r.text
    assert await _traces(app, t) == empty and await cash(client, t, cash_id) == (100, 0)
    r = await submit(client, d1, basket(s, "5", "5"))
    assert r.status_code == 201  # 100.00: exactly the cash
    after_ok = await _traces(app, t)
    r = await submit(client, d1, basket(s, "1"))  # no money left, no credit line
    assert r.status_code == 409 and r.json()["code"] == "insufficient_funds", r.text
    assert await _traces(app, t) == after_ok
    assert await cash(client, t, cash_id) == (100, 100)
    assert after_ok["orders"] == 1 and after_ok["holds"] == 1 and after_ok["reservations"] == 2
    await assert_ledger_balanced(app, t)


# --- dealers ----------------------------------------------------------------------------------


async def test_dealers_see_their_subtree_and_act_on_their_own_orders(client, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    for code in ("D1", "D1a", "D2"):
        await fund_cash(client, t, s.d.ids[code], "100.00", f"VIS-{code}")
    mine = await submitted(client, s.d.keys["D1"], basket(s, "1"))
    child = await submitted(client, s.d.keys["D1a"], basket(s, "1"))
    other = await submitted(client, s.d.keys["D2"], basket(s, "1"))
    d1 = s.d.keys["D1"]
    r = await client.get(f"{API}/orders", headers=d1)
    assert {i["id"] for i in r.json()["items"]} == {mine["id"], child["id"]}
    r = await client.get(f"{API}/orders/{other['id']}", headers=d1)
    assert r.status_code == 404
    r = await client.get(f"{API}/orders", headers=d1, params={"customer_id": s.d.ids["D2"]})
    assert r.json()["items"] == []
    r = await client.get(f"{API}/orders/{child['id']}", headers=d1)
    assert r.status_code == 200
    r = await act(client, d1, child["id"], "cancel")
    assert r.status_code == 403 and r.json()["code"] == "not_your_order"
    r = await submit(client, d1, basket(s, "1", customer_id=s.d.ids["D1a"]))
    assert r.status_code == 403  # a dealer orders only for itself
    r = await submit(client, d1, basket(s, "1", customer_id=s.d.ids["D2"]))
    assert r.status_code == 404


async def test_a_dealer_warehouse_or_another_day_is_refused(client, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    await fund_cash(client, t, s.d.ids["D1"], "100.00", "WH")
    own = await post(
        client,
        t.auth,
        "/warehouses",
        {"code": "D1W", "name": "D1's", "owner_customer_id": s.d.ids["D1"]},
    )
    r = await submit(client, s.d.keys["D1"], {**basket(s, "1"), "warehouse_id": own["id"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "warehouse_id"
    r = await submit(client, s.d.keys["D1"], {**basket(s, "1"), "warehouse_id": str(uuid4())})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "warehouse_id"
    r = await submit(client, s.d.keys["D1"], basket(s, "1", date="2020-01-01"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "date"


# --- statements per submit --------------------------------------------------------------------


async def test_statements_per_submit_do_not_grow_with_lines(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, skus=100, stock="1000")
    await fund_cash(client, t, s.d.ids["D1"], "100000.00", "STMTS")
    d1 = s.d.keys["D1"]
    await submitted(client, d1, basket(s, "1"))  # compiles the books
    seen: list[str] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    counts = {}
    engine = app.state.db.engine.sync_engine
    for n in (1, 10, 100):
        seen.clear()
        event.listen(engine, "before_cursor_execute", on_execute)
        try:
            await submitted(client, d1, basket(s, *["1"] * n))
        finally:
            event.remove(engine, "before_cursor_execute", on_execute)
        counts[n] = len(seen)
    assert counts[1] == counts[10] == counts[100] <= 20, counts
