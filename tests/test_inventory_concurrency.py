"""Concurrent requests against one stock level. On PostgreSQL they really race (row locks and
the conditional UPDATE decide); on SQLite writers serialize, which must give the same answers."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from tests.test_inventory import API, level, make_skus, movements, post, warehouse


async def test_forty_issues_of_one_against_twenty_five_exactly_twenty_five_succeed(client, app, tenant_a):
    auth = tenant_a.auth
    sku = (await make_skus(client, tenant_a, "HOT"))["HOT"]
    wid = await warehouse(client, auth, "RACE")
    await post(client, auth, "/stock/receipts", {"warehouse_id": wid, "sku_id": sku, "quantity": 25})
    body = {"warehouse_id": wid, "sku_id": sku, "quantity": 1}
    responses = await asyncio.gather(
        *[client.post(f"{API}/stock/issues", headers=auth, json=body) for _ in range(40)]
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 25 and statuses.count(409) == 15, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"insufficient_stock"}
    stock = await level(client, auth, wid, sku)
    assert stock is not None and Decimal(stock["on_hand"]) == 0 and Decimal(stock["reserved"]) == 0
    assert len(await movements(client, auth, kind="issue")) == 25
    after = sorted(Decimal(r.json()["levels"][0]["on_hand"]) for r in responses if r.status_code == 201)
    assert after == [Decimal(n) for n in range(25)]  # every success saw a distinct balance


async def test_twenty_concurrent_receipts_with_one_key_move_stock_once(client, app, tenant_a):
    auth = tenant_a.auth
    sku = (await make_skus(client, tenant_a, "ONCE"))["ONCE"]
    wid = await warehouse(client, auth, "IDEM")
    headers = {**auth, "Idempotency-Key": "receipt-42"}
    body = {"warehouse_id": wid, "sku_id": sku, "quantity": 7, "lot_no": "L9"}
    responses = await asyncio.gather(
        *[client.post(f"{API}/stock/receipts", headers=headers, json=body) for _ in range(20)]
    )
    assert {r.status_code for r in responses} == {201}, [r.text for r in responses if r.status_code != 201]
    assert len({r.content for r in responses}) == 1
    assert len(await movements(client, auth, warehouse_id=wid)) == 1
    stock = await level(client, auth, wid, sku, "L9")
    assert stock is not None and Decimal(stock["on_hand"]) == 7


async def test_concurrent_releases_release_once(client, app, tenant_a):
    auth = tenant_a.auth
    sku = (await make_skus(client, tenant_a, "HOLD"))["HOLD"]
    wid = await warehouse(client, auth, "HOLDS")
    await post(client, auth, "/stock/receipts", {"warehouse_id": wid, "sku_id": sku, "quantity": 5})
    res = await post(client, auth, "/stock/reservations", {"warehouse_id": wid, "sku_id": sku, "quantity": 5})
    url = f"{API}/stock/reservations/{res['id']}"
    responses = await asyncio.gather(
        *[client.post(f"{url}/{'release' if i % 2 else 'consume'}", headers=auth) for i in range(12)]
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 1 and statuses.count(409) == 11, statuses
    closing = [m for m in await movements(client, auth, reservation_id=res["id"]) if m["kind"] != "reserve"]
    assert len(closing) == 1
    stock = await level(client, auth, wid, sku)
    assert stock is not None and Decimal(stock["reserved"]) == 0
    assert Decimal(stock["on_hand"]) == (0 if closing[0]["kind"] == "issue" else 5)


async def test_opposite_transfers_neither_deadlock_nor_lose_stock(client, app, tenant_a):
    auth = tenant_a.auth
    sku = (await make_skus(client, tenant_a, "SWAP"))["SWAP"]
    east = await warehouse(client, auth, "EAST")
    west = await warehouse(client, auth, "WEST")
    for wid in (east, west):
        await post(client, auth, "/stock/receipts", {"warehouse_id": wid, "sku_id": sku, "quantity": 10})
    legs = [(east, west), (west, east)] * 10
    responses = await asyncio.gather(
        *[
            client.post(
                f"{API}/stock/transfers",
                headers=auth,
                json={"from_warehouse_id": a, "to_warehouse_id": b, "sku_id": sku, "quantity": 3},
            )
            for a, b in legs
        ]
    )
    assert {r.status_code for r in responses} <= {201, 409}, [r.text for r in responses]
    moved = sum(r.status_code == 201 for r in responses)
    assert moved >= 6  # each side can always send at least 3 transfers of 3
    totals = [await level(client, auth, wid, sku) for wid in (east, west)]
    assert sum(Decimal(t["on_hand"]) for t in totals if t) == 20
    assert len(await movements(client, auth, kind="transfer_out")) == moved
    assert len(await movements(client, auth, kind="transfer_in")) == moved
