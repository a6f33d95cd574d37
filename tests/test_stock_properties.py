"""A property test of the stock ledger, through the API: any sequence of receipts, issues,
reservations, releases, consumptions, transfers and counts leaves stock equal to a simple
model, never negative, with reserved ≤ on hand, and on hand equal to the sum of movements."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures import make_tenant

OPS = st.lists(
    st.tuples(
        st.sampled_from(["receive", "issue", "reserve", "release", "consume", "transfer", "count"]),
        st.integers(min_value=1, max_value=12),
        st.integers(min_value=0, max_value=1),
    ),
    min_size=1,
    max_size=18,
)


async def _post(client: Any, auth: dict[str, str], path: str, body: dict[str, Any]) -> Any:
    return await client.post(path, headers=auth, json=body)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(ops=OPS)
async def test_stock_follows_the_model(client, ops):
    t = await make_tenant(client, prefix="prop")
    auth = t.auth
    unit = (await _post(client, auth, "/api/v1/units", {"code": "pc", "name": "Piece"})).json()
    product = (
        await _post(client, auth, "/api/v1/products", {"code": "P", "name": "P", "base_unit_id": unit["id"]})
    ).json()
    sku = (
        await _post(client, auth, "/api/v1/skus", {"product_id": product["id"], "code": "S", "name": "S"})
    ).json()
    whs = [
        (await _post(client, auth, "/api/v1/warehouses", {"code": f"W{i}", "name": f"W{i}"})).json()["id"]
        for i in range(2)
    ]
    on_hand = [0, 0]
    reserved = [0, 0]
    open_reservations: list[tuple[str, int, int]] = []  # (id, warehouse index, quantity)

    for op, qty, w in ops:
        wh = whs[w]
        base = {"warehouse_id": wh, "sku_id": sku["id"], "quantity": str(qty)}
        if op == "receive":
            r = await _post(client, auth, "/api/v1/stock/receipts", base)
            assert r.status_code == 201, r.text
            on_hand[w] += qty
        elif op == "issue":
            r = await _post(client, auth, "/api/v1/stock/issues", base)
            if on_hand[w] - reserved[w] >= qty:
                assert r.status_code == 201, r.text
                on_hand[w] -= qty
            else:
                assert r.status_code == 409 and r.json()["code"] == "insufficient_stock", r.text
        elif op == "reserve":
            r = await _post(client, auth, "/api/v1/stock/reservations", base)
            if on_hand[w] - reserved[w] >= qty:
                assert r.status_code == 201, r.text
                reserved[w] += qty
                open_reservations.append((r.json()["id"], w, qty))
            else:
                assert r.status_code == 409, r.text
        elif op in ("release", "consume"):
            if not open_reservations:
                continue
            rid, rw, rq = open_reservations.pop(qty % len(open_reservations))
            r = await client.post(f"/api/v1/stock/reservations/{rid}/{op}", headers=auth)
            assert r.status_code in (200, 201), r.text
            reserved[rw] -= rq
            if op == "consume":
                on_hand[rw] -= rq
            again = await client.post(f"/api/v1/stock/reservations/{rid}/{op}", headers=auth)
            assert again.status_code == 409  # closed exactly once
        elif op == "transfer":
            body = {
                "from_warehouse_id": wh,
                "to_warehouse_id": whs[1 - w],
                "sku_id": sku["id"],
                "quantity": str(qty),
            }
            r = await _post(client, auth, "/api/v1/stock/transfers", body)
            if on_hand[w] - reserved[w] >= qty:
                assert r.status_code == 201, r.text
                on_hand[w] -= qty
                on_hand[1 - w] += qty
            else:
                assert r.status_code == 409, r.text
        elif op == "count":
            body = {"warehouse_id": wh, "sku_id": sku["id"], "counted_quantity": str(qty)}
            r = await _post(client, auth, "/api/v1/stock/adjustments", body)
            if qty >= reserved[w]:
                assert r.status_code == 201, r.text
                on_hand[w] = qty
            else:
                assert 400 <= r.status_code < 500, r.text

    levels = (await client.get("/api/v1/stock", headers=auth, params={"sku_id": sku["id"]})).json()["items"]
    by_wh = {lv["warehouse_id"]: lv for lv in levels}
    movements = (await client.get("/api/v1/stock/movements", headers=auth, params={"limit": 200})).json()[
        "items"
    ]
    for i, wh in enumerate(whs):
        level = by_wh.get(wh, {"on_hand": "0", "reserved": "0"})
        assert Decimal(level["on_hand"]) == on_hand[i] >= 0
        assert Decimal(level["reserved"]) == reserved[i] <= on_hand[i]
        assert sum(Decimal(m["on_hand_delta"]) for m in movements if m["warehouse_id"] == wh) == on_hand[i]
