"""Warehouses, lots, stock, movements and reservations over REST, on both databases."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select

from omnicloud.core.ids import new_id
from omnicloud.core.models import OutboxEvent
from omnicloud.core.tenancy import tenant_scope
from tests.fixtures import TenantHandle, bearer

API = "/api/v1"


# --- master data (through the catalog and channels APIs) ------------------------------------


async def make_skus(client: Any, tenant: TenantHandle, *codes: str) -> dict[str, str]:
    unit = await post(client, tenant.auth, "/units", {"code": f"pc{secrets.token_hex(3)}", "name": "piece"})
    product = await post(
        client,
        tenant.auth,
        "/products",
        {"code": f"p{secrets.token_hex(4)}", "name": "Product", "base_unit_id": unit["id"]},
    )
    skus = {}
    for code in codes:
        sku = await post(
            client, tenant.auth, "/skus", {"product_id": product["id"], "code": code, "name": code}
        )
        skus[code] = str(sku["id"])
    return skus


async def make_customer(
    client: Any, tenant: TenantHandle, code: str, *, parent: str | None = None, kind: str = "dealer"
) -> str:
    body = {"code": code, "name": code, "kind": kind, **({"parent_id": parent} if parent else {})}
    return str((await post(client, tenant.auth, "/customers", body))["id"])


async def user_key(
    client: Any, tenant: TenantHandle, role: str, customer_id: str | None = None
) -> dict[str, str]:
    email = f"{role}-{secrets.token_hex(3)}@x.example"
    body: dict[str, Any] = {"email": email, "name": role, "role": role}
    if customer_id:
        body["customer_id"] = customer_id
    r = await client.post(f"{API}/users", headers=tenant.auth, json=body)
    assert r.status_code == 201, r.text
    r = await client.post(
        f"{API}/api-keys", headers=tenant.auth, json={"name": "k", "user_id": r.json()["id"]}
    )
    assert r.status_code == 201, r.text
    return bearer(r.json()["secret"])


async def role(client: Any, tenant: TenantHandle, code: str, permissions: list[str]) -> str:
    r = await client.post(
        f"{API}/roles", headers=tenant.auth, json={"code": code, "name": code, "permissions": permissions}
    )
    assert r.status_code == 201, r.text
    return code


async def warehouse(client: Any, auth: dict[str, str], code: str, **extra: Any) -> str:
    r = await client.post(
        f"{API}/warehouses", headers=auth, json={"code": code, "name": f"Warehouse {code}", **extra}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def post(
    client: Any, auth: dict[str, str], path: str, body: Any, status: int = 201, **headers: str
) -> Any:
    r = await client.post(f"{API}{path}", headers={**auth, **headers}, json=body)
    assert r.status_code == status, r.text
    return r.json()


async def level(
    client: Any, auth: dict[str, str], wid: str, sku: str, lot_no: str = ""
) -> dict[str, Any] | None:
    r = await client.get(
        f"{API}/stock", headers=auth, params={"warehouse_id": wid, "sku_id": sku, "lot_no": lot_no}
    )
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    return items[0] if items else None


def qty(value: Any) -> Decimal:
    return Decimal(value)


async def on_hand(client: Any, auth: dict[str, str], wid: str, sku: str, lot_no: str = "") -> Decimal:
    found = await level(client, auth, wid, sku, lot_no)
    return qty(found["on_hand"]) if found else Decimal(0)


async def movements(client: Any, auth: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    r = await client.get(f"{API}/stock/movements", headers=auth, params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


@pytest.fixture
async def stocked(client: Any, tenant_a: TenantHandle) -> dict[str, str]:
    """Tenant A with warehouses W1 and W2 and SKUs A and B; W1 holds 10 of A."""
    skus = await make_skus(client, tenant_a, "SKU-A", "SKU-B")
    w1 = await warehouse(client, tenant_a.auth, "W1")
    w2 = await warehouse(client, tenant_a.auth, "W2")
    await post(
        client,
        tenant_a.auth,
        "/stock/receipts",
        {"warehouse_id": w1, "sku_id": skus["SKU-A"], "quantity": 10},
    )
    return {"w1": w1, "w2": w2, "a": skus["SKU-A"], "b": skus["SKU-B"]}


# --- warehouses -----------------------------------------------------------------------------


async def test_warehouse_create_get_list_patch(client, app, tenant_a):
    auth = tenant_a.auth
    dealer = await make_customer(client, tenant_a, "D1")
    terminal = await make_customer(client, tenant_a, "T1", kind="terminal")
    region = (await post(client, auth, "/regions", {"code": "EAST", "name": "East"}))["id"]
    brand = await warehouse(client, auth, "MAIN", region_id=region)
    owned = await warehouse(client, auth, "D1-WH", owner_customer_id=dealer)
    r = await client.get(f"{API}/warehouses/{owned}", headers=auth)
    assert r.status_code == 200
    assert r.json()["owner_customer_id"] == dealer and r.json()["status"] == "active"
    listed = (await client.get(f"{API}/warehouses", headers=auth)).json()["items"]
    assert {w["id"] for w in listed} == {brand, owned}
    in_region = (await client.get(f"{API}/warehouses", headers=auth, params={"region_id": region})).json()
    assert [w["id"] for w in in_region["items"]] == [brand]
    only_dealer = (
        await client.get(f"{API}/warehouses", headers=auth, params={"owner_customer_id": dealer})
    ).json()
    assert [w["id"] for w in only_dealer["items"]] == [owned]

    r = await client.patch(
        f"{API}/warehouses/{owned}", headers=auth, json={"name": "Renamed", "owner_customer_id": None}
    )
    assert r.status_code == 200 and r.json()["name"] == "Renamed" and r.json()["owner_customer_id"] is None
    r = await client.patch(f"{API}/warehouses/{owned}", headers=auth, json={"status": "inactive"})
    assert r.json()["status"] == "inactive"
    inactive = (await client.get(f"{API}/warehouses", headers=auth, params={"status": "inactive"})).json()[
        "items"
    ]
    assert [w["id"] for w in inactive] == [owned]

    bad = [
        ({"code": "MAIN", "name": "again"}, 409, "warehouse_exists"),
        ({"code": "X1", "name": "x", "owner_customer_id": terminal}, 422, "validation_failed"),
        ({"code": "X2", "name": "x", "owner_customer_id": str(new_id())}, 422, "validation_failed"),
        ({"code": "X3", "name": "x", "region_id": str(new_id())}, 422, "validation_failed"),
        ({"code": "bad code!", "name": "x"}, 422, "validation_failed"),
        ({"code": "X4", "name": "x", "status": "closed"}, 422, "validation_failed"),
        ({"code": "X5", "name": "x", "colour": "red"}, 422, "validation_failed"),
    ]
    for body, status, code in bad:
        r = await client.post(f"{API}/warehouses", headers=auth, json=body)
        assert (r.status_code, r.json()["code"]) == (status, code), (body, r.text)
    assert len((await client.get(f"{API}/warehouses", headers=auth)).json()["items"]) == 2
    assert (await client.get(f"{API}/warehouses/{new_id()}", headers=auth)).status_code == 404
    audit = (await client.get(f"{API}/audit", headers=auth, params={"object_id": owned})).json()["items"]
    assert [e["action"] for e in audit] == ["create", "update", "update"]


async def test_warehouse_permissions(client, app, tenant_a):
    rep = await user_key(client, tenant_a, "sales_rep")
    r = await client.post(f"{API}/warehouses", headers=rep, json={"code": "W", "name": "W"})
    assert r.status_code == 403
    keeper = await user_key(client, tenant_a, "warehouse")
    wid = await warehouse(client, keeper, "W")
    assert (await client.get(f"{API}/warehouses/{wid}", headers=rep)).status_code == 200


# --- receipts, issues and the journal -------------------------------------------------------


async def test_receive_then_issue_worked_example(client, app, tenant_a):
    """Receive 100 of lot L1 (produced 2024-01-10, expires 2024-07-10), issue 30: 70 remain,
    and the journal holds +100 and −30 with the balances after each."""
    auth = tenant_a.auth
    sku = (await make_skus(client, tenant_a, "MILK"))["MILK"]
    wid = await warehouse(client, auth, "CENTRAL")
    receipt = {
        "warehouse_id": wid,
        "sku_id": sku,
        "quantity": "100",
        "lot_no": "L1",
        "production_date": "2024-01-10",
        "expiry_date": "2024-07-10",
        "reference": "PO-1",
    }
    body = await post(client, auth, "/stock/receipts", receipt)
    received = body["movements"][0]
    assert received["kind"] == "receipt"
    assert qty(body["levels"][0]["on_hand"]) == 100 and body["levels"][0]["expiry_date"] == "2024-07-10"
    body = await post(
        client, auth, "/stock/issues", {"warehouse_id": wid, "sku_id": sku, "lot_no": "L1", "quantity": 30}
    )
    assert qty(body["levels"][0]["available"]) == 70
    stock = await level(client, auth, wid, sku, "L1")
    assert stock is not None
    assert (qty(stock["on_hand"]), qty(stock["reserved"]), qty(stock["available"])) == (70, 0, 70)
    assert (stock["production_date"], stock["expiry_date"]) == ("2024-01-10", "2024-07-10")
    journal = await movements(client, auth, warehouse_id=wid)
    assert [(m["kind"], qty(m["on_hand_delta"]), qty(m["on_hand_after"])) for m in journal] == [
        ("receipt", 100, 100),
        ("issue", -30, 70),
    ]
    assert journal[0] == received  # the journal shows exactly what the receipt answered
    assert journal[0]["reference"] == "PO-1" and journal[0]["actor"].startswith("user:")
    lots = (await client.get(f"{API}/lots", headers=auth, params={"sku_id": sku})).json()["items"]
    assert [(lot["lot_no"], lot["production_date"]) for lot in lots] == [("L1", "2024-01-10")]
    with tenant_scope(UUID(tenant_a.id)):
        async with app.state.db.transaction() as s:
            kinds = (await s.scalars(select(OutboxEvent.type).order_by(OutboxEvent.id))).all()
    assert kinds.count("stock.received") == 1 and kinds.count("stock.issued") == 1
    assert kinds.count("lot.created") == 1 and "warehouse.created" in kinds
    audit = (await client.get(f"{API}/audit", headers=auth, params={"object_id": stock["id"]})).json()[
        "items"
    ]
    assert [e["action"] for e in audit] == ["receipt", "issue"]


async def test_quantities_must_be_positive(client, stocked, tenant_a):
    auth, s = tenant_a.auth, stocked
    bad_quantities: list[Any] = [0, -1, "-0.5", "abc", "NaN", "Infinity", "0.00001", "1e20", None]
    for q in bad_quantities:
        for path, body in [
            ("/stock/receipts", {"warehouse_id": s["w1"], "sku_id": s["a"]}),
            ("/stock/issues", {"warehouse_id": s["w1"], "sku_id": s["a"]}),
            ("/stock/reservations", {"warehouse_id": s["w1"], "sku_id": s["a"]}),
            (
                "/stock/transfers",
                {"from_warehouse_id": s["w1"], "to_warehouse_id": s["w2"], "sku_id": s["a"]},
            ),
        ]:
            r = await client.post(f"{API}{path}", headers=auth, json={**body, "quantity": q})
            assert r.status_code == 422, (path, q, r.text)
    adjust = {"warehouse_id": s["w1"], "sku_id": s["a"]}
    for extra in [{"delta": 0}, {"counted_quantity": -1}, {"counted_quantity": 1, "delta": 1}, {}]:
        r = await client.post(f"{API}/stock/adjustments", headers=auth, json={**adjust, **extra})
        assert r.status_code == 422, (extra, r.text)
    r = await client.post(
        f"{API}/stock/receipts",
        headers=auth,
        json={"warehouse_id": s["w1"], "sku_id": s["a"], "quantity": -3},
    )
    assert "quantity" in r.json()["detail"]
    assert await on_hand(client, auth, s["w1"], s["a"]) == 10
    assert len(await movements(client, auth)) == 1


async def test_unknown_references_are_422(client, stocked, tenant_a):
    auth, s = tenant_a.auth, stocked
    cases = [
        ({"warehouse_id": str(new_id()), "sku_id": s["a"], "quantity": 1}, "warehouse_id"),
        ({"warehouse_id": s["w1"], "sku_id": str(new_id()), "quantity": 1}, "sku_id"),
    ]
    for body, field in cases:
        r = await client.post(f"{API}/stock/receipts", headers=auth, json=body)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text


async def test_over_issue_is_409_and_changes_nothing(client, stocked, tenant_a):
    auth, s = tenant_a.auth, stocked
    await post(
        client, auth, "/stock/reservations", {"warehouse_id": s["w1"], "sku_id": s["a"], "quantity": 4}
    )
    before = await movements(client, auth)
    for body in [
        {"warehouse_id": s["w1"], "sku_id": s["a"], "quantity": 7},  # 10 on hand, 4 reserved
        {"warehouse_id": s["w1"], "sku_id": s["a"], "quantity": 1, "lot_no": "NOPE"},
        {"warehouse_id": s["w1"], "sku_id": s["b"], "quantity": 1},
    ]:
        r = await client.post(f"{API}/stock/issues", headers={**auth, "Idempotency-Key": "over"}, json=body)
        assert r.status_code == 409 and r.json()["code"] == "insufficient_stock", r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["detail"] == (
            "only 6 available" if body["sku_id"] == s["a"] and "lot_no" not in body else "only 0 available"
        )
    r = await client.post(
        f"{API}/stock/reservations",
        headers=auth,
        json={"warehouse_id": s["w1"], "sku_id": s["a"], "quantity": 7},
    )
    assert r.status_code == 409 and r.json()["code"] == "insufficient_stock"
    stock = await level(client, auth, s["w1"], s["a"])
    assert stock is not None and (qty(stock["on_hand"]), qty(stock["reserved"])) == (10, 4)
    assert await movements(client, auth) == before
    # the failed request did not burn its Idempotency-Key
    ok = await post(
        client,
        auth,
        "/stock/issues",
        {"warehouse_id": s["w1"], "sku_id": s["a"], "quantity": 6},
        **{"Idempotency-Key": "over"},
    )
    assert qty(ok["levels"][0]["on_hand"]) == 4 and qty(ok["levels"][0]["available"]) == 0


async def test_reservation_is_released_or_consumed_exactly_once(client, stocked, tenant_a):
    auth, s = tenant_a.auth, stocked
    res = await post(
        client,
        auth,
        "/stock/reservations",
        {"warehouse_id": s["w1"], "sku_id": s["a"], "quantity": 4, "reference": "SO-1"},
    )
    assert res["status"] == "placed"
    assert qty((await level(client, auth, s["w1"], s["a"]))["available"]) == 6
    r = await client.post(f"{API}/stock/reservations/{res['id']}/release", headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "released" and r.json()["closed_at"]
    for action in ("release", "consume"):
        r = await client.post(f"{API}/stock/reservations/{res['id']}/{action}", headers=auth)
        assert r.status_code == 409 and r.json()["code"] == "reservation_closed", r.text
    stock = await level(client, auth, s["w1"], s["a"])
    assert (qty(stock["on_hand"]), qty(stock["reserved"])) == (10, 0)

    second = await post(
        client, auth, "/stock/reservations", {"warehouse_id": s["w1"], "sku_id": s["a"], "quantity": 3}
    )
    r = await client.post(f"{API}/stock/reservations/{second['id']}/consume", headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "consumed"
    assert (
        await client.post(f"{API}/stock/reservations/{second['id']}/release", headers=auth)
    ).status_code == 409
    stock = await level(client, auth, s["w1"], s["a"])
    assert (qty(stock["on_hand"]), qty(stock["reserved"])) == (7, 0)
    journal = await movements(client, auth, sku_id=s["a"])
    assert [(m["kind"], qty(m["on_hand_delta"]), qty(m["reserved_delta"])) for m in journal] == [
        ("receipt", 10, 0),
        ("reserve", 0, 4),
        ("release", 0, -4),
        ("reserve", 0, 3),
        ("issue", -3, -3),
    ]
    assert journal[4]["reservation_id"] == second["id"]
    got = (await client.get(f"{API}/stock/reservations/{res['id']}", headers=auth)).json()
    assert got["status"] == "released" and got["reference"] == "SO-1"
    placed = (
        await client.get(f"{API}/stock/reservations", headers=auth, params={"status": "consumed"})
    ).json()
    assert [x["id"] for x in placed["items"]] == [second["id"]]


async def test_replayed_release_returns_the_stored_answer(client, stocked, tenant_a):
    auth, s = tenant_a.auth, stocked
    res = await post(
        client, auth, "/stock/reservations", {"warehouse_id": s["w1"], "sku_id": s["a"], "quantity": 2}
    )
    headers = {**auth, "Idempotency-Key": "rel-1"}
    first = await client.post(f"{API}/stock/reservations/{res['id']}/release", headers=headers)
    again = await client.post(f"{API}/stock/reservations/{res['id']}/release", headers=headers)
    assert first.status_code == again.status_code == 200 and first.content == again.content
    assert len(await movements(client, auth, kind="release")) == 1


async def test_adjustments_count_or_correct_never_below_reserved(client, stocked, tenant_a):
    auth, s = tenant_a.auth, stocked
    adjust = {"warehouse_id": s["w1"], "sku_id": s["a"]}
    body = await post(
        client, auth, "/stock/adjustments", {**adjust, "counted_quantity": "12.5", "reason": "cycle count"}
    )
    assert [(m["kind"], qty(m["on_hand_delta"]), m["reason"]) for m in body["movements"]] == [
        ("adjust", Decimal("2.5"), "cycle count")
    ]
    body = await post(client, auth, "/stock/adjustments", {**adjust, "counted_quantity": "12.5"})
    assert body["movements"] == []
    body = await post(client, auth, "/stock/adjustments", {**adjust, "delta": "-0.3"})
    assert qty(body["levels"][0]["on_hand"]) == Decimal("12.2")
    await post(client, auth, "/stock/reservations", {**adjust, "quantity": "12"})
    for extra in ({"counted_quantity": "11.9"}, {"delta": "-0.3"}):
        r = await client.post(f"{API}/stock/adjustments", headers=auth, json={**adjust, **extra})
        assert r.status_code == 409 and r.json()["code"] == "insufficient_stock", r.text
    r = await client.post(
        f"{API}/stock/adjustments", headers=auth, json={**adjust, "lot_no": "X", "delta": -1}
    )
    assert r.status_code == 409
    # a count can find a lot nobody recorded: it is created with its dates
    body = await post(
        client,
        auth,
        "/stock/adjustments",
        {
            **adjust,
            "lot_no": "FOUND",
            "counted_quantity": 5,
            "production_date": "2024-02-01",
            "expiry_date": "2025-02-01",
        },
    )
    assert body["levels"][0]["expiry_date"] == "2025-02-01"
    assert qty((await level(client, auth, s["w1"], s["a"]))["on_hand"]) == Decimal("12.2")


async def test_fractional_quantities_stay_exact(client, stocked, tenant_a):
    auth, s = tenant_a.auth, stocked
    base = {"warehouse_id": s["w2"], "sku_id": s["b"]}
    await post(client, auth, "/stock/receipts", {**base, "quantity": "0.3"})
    await post(client, auth, "/stock/reservations", {**base, "quantity": "0.1"})
    await post(client, auth, "/stock/issues", {**base, "quantity": "0.2"})
    stock = await level(client, auth, s["w2"], s["b"])
    assert (qty(stock["on_hand"]), qty(stock["available"])) == (Decimal("0.1"), 0)


async def test_transfer_is_atomic(client, stocked, tenant_a):
    auth, s = tenant_a.auth, stocked
    move = {"from_warehouse_id": s["w1"], "to_warehouse_id": s["w2"], "sku_id": s["a"]}
    body = await post(client, auth, "/stock/transfers", {**move, "quantity": 4, "reference": "TR-1"})
    out, into = body["movements"]
    assert (out["kind"], into["kind"]) == ("transfer_out", "transfer_in")
    assert out["transfer_id"] == into["transfer_id"] and qty(out["on_hand_delta"]) == -4
    assert await on_hand(client, auth, s["w1"], s["a"]) == 6
    assert await on_hand(client, auth, s["w2"], s["a"]) == 4
    before = await movements(client, auth)
    r = await client.post(f"{API}/stock/transfers", headers=auth, json={**move, "quantity": 7})
    assert r.status_code == 409 and r.json()["code"] == "insufficient_stock"
    r = await client.post(
        f"{API}/stock/transfers", headers=auth, json={**move, "to_warehouse_id": s["w1"], "quantity": 1}
    )
    assert r.status_code == 422
    closed = await warehouse(client, auth, "CLOSED", status="inactive")
    r = await client.post(
        f"{API}/stock/transfers", headers=auth, json={**move, "to_warehouse_id": closed, "quantity": 1}
    )
    assert r.status_code == 409 and r.json()["code"] == "warehouse_inactive"
    assert await movements(client, auth) == before
    assert await on_hand(client, auth, s["w1"], s["a"]) == 6
    assert await level(client, auth, closed, s["a"]) is None
    pair = await movements(client, auth, transfer_id=out["transfer_id"])
    assert len(pair) == 2


async def test_idempotent_receipt_moves_stock_once(client, stocked, tenant_a):
    auth, s = tenant_a.auth, stocked
    headers = {**auth, "Idempotency-Key": "rcpt-7"}
    body = {"warehouse_id": s["w1"], "sku_id": s["a"], "quantity": 5}
    first = await client.post(f"{API}/stock/receipts", headers=headers, json=body)
    again = await client.post(f"{API}/stock/receipts", headers=headers, json=body)
    assert first.status_code == again.status_code == 201 and first.content == again.content
    assert again.headers.get("idempotent-replayed") == "true"
    assert await on_hand(client, auth, s["w1"], s["a"]) == 15
    r = await client.post(f"{API}/stock/receipts", headers=headers, json={**body, "quantity": 6})
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused"
    assert await on_hand(client, auth, s["w1"], s["a"]) == 15


# --- lots -----------------------------------------------------------------------------------


async def test_lots_dates_and_expiry_filters(client, app, tenant_a):
    auth = tenant_a.auth
    sku = (await make_skus(client, tenant_a, "CHEESE"))["CHEESE"]
    wid = await warehouse(client, auth, "COLD")
    r = await client.post(
        f"{API}/lots",
        headers=auth,
        json={"sku_id": sku, "lot_no": "B1", "production_date": "2024-05-01", "expiry_date": "2024-04-01"},
    )
    assert r.status_code == 422 and "expiry_date" in r.json()["detail"]
    lot = await post(client, auth, "/lots", {"sku_id": sku, "lot_no": "B1", "production_date": "2024-01-01"})
    r = await client.post(f"{API}/lots", headers=auth, json={"sku_id": sku, "lot_no": "B1"})
    assert r.status_code == 409 and r.json()["code"] == "lot_exists"
    r = await client.post(f"{API}/lots", headers=auth, json={"sku_id": str(new_id()), "lot_no": "B9"})
    assert r.status_code == 422
    receipt = {"warehouse_id": wid, "sku_id": sku, "quantity": 5, "lot_no": "B1"}
    r = await client.post(
        f"{API}/stock/receipts", headers=auth, json={**receipt, "production_date": "2024-01-02"}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "production_date"
    r = await client.post(
        f"{API}/stock/receipts", headers=auth, json={**receipt, "expiry_date": "2023-12-31"}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "expiry_date"
    r = await client.post(
        f"{API}/stock/receipts", headers=auth, json={**receipt, "lot_no": "", "expiry_date": "2024-12-31"}
    )
    assert r.status_code == 422
    assert await movements(client, auth) == []
    await post(
        client, auth, "/stock/receipts", {**receipt, "expiry_date": "2024-06-30"}
    )  # fills the missing date
    assert (await client.get(f"{API}/lots/{lot['id']}", headers=auth)).json()["expiry_date"] == "2024-06-30"
    await post(client, auth, "/stock/receipts", {**receipt, "lot_no": "B2", "expiry_date": "2025-06-30"})
    await post(client, auth, "/stock/receipts", {**receipt, "lot_no": ""})
    soon = (await client.get(f"{API}/stock", headers=auth, params={"expiring_before": "2025-01-01"})).json()[
        "items"
    ]
    assert [x["lot_no"] for x in soon] == ["B1"]
    all_levels = (await client.get(f"{API}/stock", headers=auth, params={"sku_id": sku})).json()["items"]
    assert sorted(x["lot_no"] for x in all_levels) == ["", "B1", "B2"]
    lots = (await client.get(f"{API}/lots", headers=auth, params={"expiring_before": "2025-01-01"})).json()[
        "items"
    ]
    assert [x["lot_no"] for x in lots] == ["B1"]
    r = await client.get(f"{API}/stock", headers=auth, params={"expiring_before": "soon"})
    assert r.status_code == 422


async def test_lists_page_with_cursor(client, stocked, tenant_a):
    auth, s = tenant_a.auth, stocked
    for _ in range(4):
        await post(client, auth, "/stock/issues", {"warehouse_id": s["w1"], "sku_id": s["a"], "quantity": 1})
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"{API}/stock/movements", headers=auth, params=params)).json()
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 5


# --- dealers and tenants --------------------------------------------------------------------


async def test_dealer_sees_and_writes_only_its_subtree(client, app, tenant_a):
    auth = tenant_a.auth
    sku = (await make_skus(client, tenant_a, "S1"))["S1"]
    d1 = await make_customer(client, tenant_a, "D1")
    d1a = await make_customer(client, tenant_a, "D1A", parent=d1)
    d2 = await make_customer(client, tenant_a, "D2")
    w_brand = await warehouse(client, auth, "BRAND")
    w_d1 = await warehouse(client, auth, "WD1", owner_customer_id=d1)
    w_d1a = await warehouse(client, auth, "WD1A", owner_customer_id=d1a)
    w_d2 = await warehouse(client, auth, "WD2", owner_customer_id=d2)
    for wid in (w_brand, w_d1, w_d1a, w_d2):
        await post(client, auth, "/stock/receipts", {"warehouse_id": wid, "sku_id": sku, "quantity": 10})
    foreign_res = await post(
        client, auth, "/stock/reservations", {"warehouse_id": w_d2, "sku_id": sku, "quantity": 1}
    )

    reader = await user_key(client, tenant_a, "dealer", d1)
    listed = (await client.get(f"{API}/warehouses", headers=reader)).json()["items"]
    assert {w["id"] for w in listed} == {w_d1, w_d1a}
    for wid in (w_brand, w_d2):
        assert (await client.get(f"{API}/warehouses/{wid}", headers=reader)).status_code == 404
        r = await client.get(f"{API}/stock", headers=reader, params={"warehouse_id": wid})
        assert r.status_code == 404
        r = await client.get(f"{API}/stock/movements", headers=reader, params={"warehouse_id": wid})
        assert r.status_code == 404
    assert (
        await client.get(f"{API}/stock/reservations/{foreign_res['id']}", headers=reader)
    ).status_code == 404
    stock = (await client.get(f"{API}/stock", headers=reader)).json()["items"]
    assert {x["warehouse_id"] for x in stock} == {w_d1, w_d1a}
    journal = await movements(client, reader)
    assert {m["warehouse_id"] for m in journal} == {w_d1, w_d1a}
    assert (await client.get(f"{API}/stock/reservations", headers=reader)).json()["items"] == []
    export = (await client.get(f"{API}/stock/export", headers=reader)).text
    assert "WD1" in export and "WD2" not in export and "BRAND" not in export
    r = await client.post(
        f"{API}/stock/receipts", headers=reader, json={"warehouse_id": w_d1, "sku_id": sku, "quantity": 1}
    )
    assert r.status_code == 403

    await role(client, tenant_a, "dealer_stock", ["stock:read", "stock:write", "warehouses:write"])
    writer = await user_key(client, tenant_a, "dealer_stock", d1)
    await post(client, writer, "/stock/issues", {"warehouse_id": w_d1a, "sku_id": sku, "quantity": 2})
    await post(
        client,
        writer,
        "/stock/transfers",
        {"from_warehouse_id": w_d1, "to_warehouse_id": w_d1a, "sku_id": sku, "quantity": 3},
    )
    before = await movements(client, auth)
    attempts = [
        ("/stock/receipts", {"warehouse_id": w_d2, "sku_id": sku, "quantity": 1}),
        ("/stock/issues", {"warehouse_id": w_brand, "sku_id": sku, "quantity": 1}),
        (
            "/stock/transfers",
            {"from_warehouse_id": w_d1, "to_warehouse_id": w_brand, "sku_id": sku, "quantity": 1},
        ),
        (
            "/stock/transfers",
            {"from_warehouse_id": w_d2, "to_warehouse_id": w_d1, "sku_id": sku, "quantity": 1},
        ),
        ("/stock/adjustments", {"warehouse_id": w_d2, "sku_id": sku, "counted_quantity": 0}),
        ("/warehouses", {"code": "MINE", "name": "mine"}),
        ("/warehouses", {"code": "THEIRS", "name": "theirs", "owner_customer_id": d2}),
    ]
    for path, body in attempts:
        r = await client.post(f"{API}{path}", headers=writer, json=body)
        assert r.status_code == 422, (path, r.text)
    r = await client.post(f"{API}/stock/reservations/{foreign_res['id']}/release", headers=writer)
    assert r.status_code == 404
    r = await client.patch(f"{API}/warehouses/{w_d2}", headers=writer, json={"name": "mine now"})
    assert r.status_code == 404
    r = await client.patch(f"{API}/warehouses/{w_d1a}", headers=writer, json={"owner_customer_id": d2})
    assert r.status_code == 422
    assert await movements(client, auth) == before
    own = await warehouse(client, writer, "D1-NEW", owner_customer_id=d1a)
    assert (await client.get(f"{API}/warehouses/{own}", headers=reader)).status_code == 200
    csv = "warehouse_code,sku_code,quantity\nWD1,S1,1\nWD2,S1,1\n"
    r = await client.post(f"{API}/stock/import", headers={**writer, "content-type": "text/csv"}, content=csv)
    assert r.status_code == 422 and [e["line"] for e in r.json()["errors"]] == [3]


async def test_other_tenants_ids_are_404_and_lists_show_no_foreign_rows(
    client, app, stocked, tenant_a, tenant_b
):
    a, s = tenant_a.auth, stocked
    res = await post(
        client, a, "/stock/reservations", {"warehouse_id": s["w1"], "sku_id": s["a"], "quantity": 1}
    )
    lot = await post(client, a, "/lots", {"sku_id": s["a"], "lot_no": "L-A"})
    b = tenant_b.auth
    for url in [f"/warehouses/{s['w1']}", f"/lots/{lot['id']}", f"/stock/reservations/{res['id']}"]:
        assert (await client.get(f"{API}{url}", headers=b)).status_code == 404, url
    assert (
        await client.patch(f"{API}/warehouses/{s['w1']}", headers=b, json={"name": "x"})
    ).status_code == 404
    for action in ("release", "consume"):
        r = await client.post(f"{API}/stock/reservations/{res['id']}/{action}", headers=b)
        assert r.status_code == 404
    r = await client.get(f"{API}/stock", headers=b, params={"warehouse_id": s["w1"]})
    assert r.status_code == 404
    r = await client.post(
        f"{API}/stock/issues", headers=b, json={"warehouse_id": s["w1"], "sku_id": s["a"], "quantity": 1}
    )
    assert r.status_code == 422
    await warehouse(client, b, "W1")  # the same code is free in another tenant
    for path in [
        "/warehouses",
        "/lots",
        "/stock",
        "/stock/movements",
        "/stock/reservations",
        "/stock/export",
    ]:
        r = await client.get(f"{API}{path}", headers=b)
        assert r.status_code == 200
        assert not any(v in r.text for v in (*s.values(), res["id"], lot["id"])), path
    assert await on_hand(client, a, s["w1"], s["a"]) == 10


# --- CSV ------------------------------------------------------------------------------------


async def test_csv_import_is_all_or_nothing_idempotent_and_round_trips(client, app, tenant_a):
    auth = {**tenant_a.auth, "content-type": "text/csv"}
    skus = await make_skus(client, tenant_a, "APPLE", "PEAR")
    w1 = await warehouse(client, tenant_a.auth, "NORTH")
    await warehouse(client, tenant_a.auth, "SOUTH")
    good = (
        "warehouse_code,sku_code,lot_no,production_date,expiry_date,quantity\n"
        "NORTH,APPLE,A-1,2024-01-01,2024-03-01,40\n"
        "NORTH,APPLE,,,,5\n"
        "SOUTH,PEAR,P-1,,2024-09-30,12.5\n"
        "SOUTH,APPLE,A-1,2024-01-01,2024-03-01,0\n"
    )
    r = await client.post(f"{API}/stock/import", headers=auth, content=good)
    assert r.status_code == 200, r.text
    result = r.json()
    assert (result["rows"], result["changed"]) == (4, 3)
    imported = await movements(client, tenant_a.auth, reference=result["reference"])
    assert [(m["kind"], m["reason"]) for m in imported] == [("adjust", "import")] * 3
    assert await on_hand(client, tenant_a.auth, w1, skus["APPLE"], "A-1") == 40
    count = len(await movements(client, tenant_a.auth))
    r = await client.post(f"{API}/stock/import", headers=auth, content=good)
    assert (r.json()["rows"], r.json()["changed"]) == (4, 0)
    assert len(await movements(client, tenant_a.auth)) == count

    exported = await client.get(f"{API}/stock/export", headers=tenant_a.auth)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    lines = exported.text.splitlines()
    assert lines[0] == "warehouse_code,sku_code,lot_no,production_date,expiry_date,quantity"
    assert "NORTH,APPLE,A-1,2024-01-01,2024-03-01,40" in lines and "SOUTH,PEAR,P-1,,2024-09-30,12.5" in lines
    r = await client.post(f"{API}/stock/import", headers=auth, content=exported.text)
    assert r.json()["changed"] == 0

    bad = (
        "warehouse_code,sku_code,lot_no,production_date,expiry_date,quantity\n"
        "NORTH,APPLE,A-1,2024-01-01,2024-03-01,1\n"
        "NOWHERE,APPLE,,,,1\n"
        "NORTH,KIWI,,,,1\n"
        "NORTH,PEAR,,,,-2\n"
        "NORTH,PEAR,X,2024-05-01,2024-04-01,1\n"
        "NORTH,APPLE,A-1,2024-01-01,2024-03-01,2\n"
        "NORTH,APPLE,A-1,2024-01-09,,2\n"
        "SOUTH,PEAR,,,,abc\n"
        "SOUTH,PEAR,,,,7\n"
    )
    r = await client.post(f"{API}/stock/import", headers=auth, content=bad)
    assert r.status_code == 422 and r.json()["code"] == "csv_invalid", r.text
    errors = r.json()["errors"]
    assert [e["line"] for e in errors] == [3, 4, 5, 6, 7, 8, 9]
    assert {e["line"]: e["field"] for e in errors}[3] == "warehouse_code"
    assert {e["line"]: e["field"] for e in errors}[4] == "sku_code"
    assert len(await movements(client, tenant_a.auth)) == count
    r = await client.post(f"{API}/stock/import", headers=auth, content="warehouse_code,quantity\nNORTH,1\n")
    assert r.status_code == 422 and r.json()["code"] == "csv_columns"

    await post(
        client,
        tenant_a.auth,
        "/stock/reservations",
        {
            "warehouse_id": w1,
            "sku_id": skus["APPLE"],
            "lot_no": "A-1",
            "quantity": 30,
        },
    )
    r = await client.post(
        f"{API}/stock/import",
        headers=auth,
        content="warehouse_code,sku_code,lot_no,quantity\nNORTH,APPLE,A-1,29\n",
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "quantity"


# --- the tenant manifest's functions --------------------------------------------------------


async def test_manifest_upserts_are_idempotent(client, app, tenant_a):
    from omnicloud.inventory import service
    from omnicloud.inventory.schemas import WarehouseIn

    await make_skus(client, tenant_a, "TEA")
    dealer = await make_customer(client, tenant_a, "DM")
    tid = UUID(tenant_a.id)

    async def run(fn: Any) -> Any:
        with tenant_scope(tid):
            async with app.state.db.transaction() as s:
                return await fn(s)

    data = WarehouseIn(code="MF", name="Manifest", owner_customer_id=UUID(dealer))
    assert await run(lambda s: service.upsert_warehouse(s, data)) is True
    assert await run(lambda s: service.upsert_warehouse(s, data)) is False
    renamed = WarehouseIn(code="MF", name="Renamed", owner_customer_id=UUID(dealer))
    assert await run(lambda s: service.upsert_warehouse(s, renamed)) is True

    def set_level(q: str, lot: str = "T1") -> Any:
        return lambda s: service.set_stock_level(s, "MF", "TEA", lot, Decimal(q), None, None)

    assert await run(set_level("8")) is True
    assert await run(set_level("8")) is False
    assert await run(set_level("5")) is True
    journal = await movements(client, tenant_a.auth)
    assert [(m["kind"], qty(m["on_hand_delta"]), m["actor"], m["reason"]) for m in journal] == [
        ("adjust", 8, "system", "manifest"),
        ("adjust", -3, "system", "manifest"),
    ]
    from omnicloud.core.errors import Unprocessable

    for bad in [
        lambda s: service.set_stock_level(s, "NOPE", "TEA", "", Decimal(1)),
        lambda s: service.set_stock_level(s, "MF", "NOPE", "", Decimal(1)),
        lambda s: service.set_stock_level(s, "MF", "TEA", "", Decimal(-1)),
    ]:
        with pytest.raises(Unprocessable):
            await run(bad)
