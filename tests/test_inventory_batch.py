"""Batched stock holds (reserve_many, consume_many, release_many), on both databases: all or
nothing, lots in allocation order, a statement count that does not grow with the lines,
exactly-once closing under races, and a journal that always adds up to the levels."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from omnicloud.core.errors import Conflict, NotFound, Unprocessable
from omnicloud.core.security import Principal
from omnicloud.core.tenancy import tenant_scope
from omnicloud.inventory import service
from omnicloud.inventory.schemas import ReservationOut, StockRequest
from tests.fixtures import TenantHandle, make_tenant
from tests.test_inventory import (
    API,
    level,
    make_customer,
    make_skus,
    warehouse,
)

T = TypeVar("T")
D = Decimal


async def in_tx(app: Any, tenant: TenantHandle, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(session)`` in its own transaction for the tenant, as the order service will."""
    with tenant_scope(UUID(tenant.id)):
        async with app.state.db.transaction() as session:
            return await work(session)


def reserve(app: Any, tenant: TenantHandle, requests: list[StockRequest], reference: str) -> Any:
    return in_tx(app, tenant, lambda s: service.reserve_many(s, None, requests, reference=reference))


def consume(app: Any, tenant: TenantHandle, reference: str, quantities: Any = None) -> Any:
    return in_tx(app, tenant, lambda s: service.consume_many(s, None, reference, quantities))


def release(app: Any, tenant: TenantHandle, reference: str) -> Any:
    return in_tx(app, tenant, lambda s: service.release_many(s, None, reference))


async def import_stock(client: Any, tenant: TenantHandle, rows: list[tuple[str, str, str, str, int]]) -> None:
    """Set stock by CSV: (warehouse code, SKU code, lot, expiry date, quantity)."""
    lines = ["warehouse_code,sku_code,lot_no,expiry_date,quantity"]
    lines += [",".join(map(str, row)) for row in rows]
    r = await client.post(
        f"{API}/stock/import",
        headers={**tenant.auth, "content-type": "text/csv"},
        content="\n".join(lines) + "\n",
    )
    assert r.status_code in (200, 201), r.text


async def every(client: Any, tenant: TenantHandle, path: str, **params: Any) -> list[dict[str, Any]]:
    """All pages of a list."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = {**params, "limit": 200, **({"cursor": cursor} if cursor else {})}
        r = await client.get(f"{API}{path}", headers=tenant.auth, params=page)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return items


async def holds_of(client: Any, tenant: TenantHandle, reference: str) -> list[dict[str, Any]]:
    return await every(client, tenant, "/stock/reservations", reference=reference)


async def movements(client: Any, tenant: TenantHandle, **params: Any) -> list[dict[str, Any]]:
    return await every(client, tenant, "/stock/movements", **params)


async def assert_journal_adds_up(client: Any, tenant: TenantHandle) -> None:
    """Every level equals the sums of its movements, each movement's ``*_after`` is the
    previous one's plus its own deltas, and every level's reserved is its placed holds."""
    stock = await every(client, tenant, "/stock")
    levels = {(x["warehouse_id"], x["sku_id"], x["lot_no"]): x for x in stock}
    journal: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for m in await movements(client, tenant):
        journal.setdefault((m["warehouse_id"], m["sku_id"], m["lot_no"]), []).append(m)
    assert set(journal) == set(levels)
    for key, moves in journal.items():
        on_hand = reserved = D(0)
        for m in sorted(moves, key=lambda m: m["id"]):
            on_hand += D(m["on_hand_delta"])
            reserved += D(m["reserved_delta"])
            assert (D(m["on_hand_after"]), D(m["reserved_after"])) == (on_hand, reserved), m
            assert D(0) <= reserved <= on_hand
        assert (D(levels[key]["on_hand"]), D(levels[key]["reserved"])) == (on_hand, reserved), key
    held: dict[tuple[str, str, str], Decimal] = {}
    for h in await every(client, tenant, "/stock/reservations", status="placed"):
        key = (h["warehouse_id"], h["sku_id"], h["lot_no"])
        held[key] = held.get(key, D(0)) + D(h["quantity"])
    assert {k: D(v["reserved"]) for k, v in levels.items() if D(v["reserved"])} == held


class Stock:
    """A tenant with warehouse W, SKUs and stock set by CSV."""

    def __init__(self, client: Any, tenant: TenantHandle) -> None:
        self.client, self.t = client, tenant
        self.skus: dict[str, UUID] = {}
        self.wid = UUID(int=0)

    async def setup(self, skus: list[str], rows: list[tuple[str, str, str, int]]) -> Stock:
        self.skus = {code: UUID(x) for code, x in (await make_skus(self.client, self.t, *skus)).items()}
        self.wid = UUID(await warehouse(self.client, self.t.auth, "W"))
        await import_stock(self.client, self.t, [("W", *row) for row in rows])
        return self

    def req(self, sku: str, quantity: Any, lot_no: str | None = None) -> StockRequest:
        return StockRequest(warehouse_id=self.wid, sku_id=self.skus[sku], quantity=D(quantity), lot_no=lot_no)

    async def level(self, sku: str, lot_no: str = "") -> tuple[Decimal, Decimal]:
        found = await level(self.client, self.t.auth, str(self.wid), str(self.skus[sku]), lot_no)
        assert found is not None
        return D(found["on_hand"]), D(found["reserved"])


def ref() -> str:
    return f"order:{secrets.token_hex(8)}"


def held(holds: list[ReservationOut]) -> list[tuple[str, Decimal, str]]:
    return [(h.lot_no, h.quantity, h.status) for h in holds]


# --- reserve_many -------------------------------------------------------------------------


async def test_lots_are_taken_earliest_expiry_first_then_by_lot_number(client, app, tenant_a):
    s = await Stock(client, tenant_a).setup(
        ["A", "B"],
        [
            ("A", "L-C", "2027-03-01", 5),
            ("A", "L-A", "2027-06-01", 5),
            ("A", "L-B", "2027-03-01", 5),
            ("A", "L-N", "", 5),
            ("A", "", "", 5),
            ("B", "", "", 9),
        ],
    )
    first, second = ref(), ref()
    holds = await reserve(app, tenant_a, [s.req("B", 2), s.req("A", 17)], first)
    assert held(holds) == [
        ("", D(2), "placed"),
        ("L-B", D(5), "placed"),
        ("L-C", D(5), "placed"),
        ("L-A", D(5), "placed"),
        ("", D(2), "placed"),  # stock without a lot has no expiry: after every dated lot
    ]
    assert [h.sku_id for h in holds] == [s.skus["B"]] + [s.skus["A"]] * 4
    assert {h.reference for h in holds} == {first}
    holds = await reserve(app, tenant_a, [s.req("A", "1.5", "L-N"), s.req("A", 1, ""), s.req("A", 5)], second)
    taken = [("L-N", D("1.5")), ("", D(1)), ("", D(2)), ("L-N", D(3))]
    assert held(holds) == [(lot, quantity, "placed") for lot, quantity in taken]
    with pytest.raises(Conflict) as caught:  # the last of the stock without a lot went to line 2
        await reserve(app, tenant_a, [s.req("A", 1, "")], ref())
    assert caught.value.errors == [{"field": "requests[0].quantity", "message": caught.value.detail}]
    assert await s.level("A", "L-N") == (D(5), D("4.5"))
    assert await s.level("A", "") == (D(5), D(5))
    assert [len(await holds_of(client, tenant_a, r)) for r in (first, second)] == [5, 4]
    reserved = await movements(client, tenant_a, kind="reserve", reference=second)
    assert [(m["lot_no"], D(m["reserved_delta"])) for m in reserved] == taken
    await assert_journal_adds_up(client, tenant_a)


async def test_a_batch_is_all_or_nothing_and_names_the_request_it_cannot_cover(client, app, tenant_a):
    s = await Stock(client, tenant_a).setup(
        ["A", "B"], [("A", "L1", "2027-01-01", 4), ("A", "L2", "2027-02-01", 6), ("B", "", "", 3)]
    )
    before = (await s.level("A", "L1"), await s.level("A", "L2"), await s.level("B"))
    journal = await movements(client, tenant_a)
    reference = ref()
    cases = [
        ([s.req("B", 1), s.req("A", 9), s.req("A", 2), s.req("B", 1)], 2, "only 1 of SKU A"),
        ([s.req("A", 3), s.req("B", 4)], 1, "only 3 of SKU B"),
        ([s.req("A", 5, "L1")], 0, "only 4 of lot 'L1' of SKU A"),
        ([s.req("A", 1), s.req("A", 1, "L9")], 1, "only 0 of lot 'L9' of SKU A"),
    ]
    for requests, index, detail in cases:
        with pytest.raises(Conflict) as caught:
            await reserve(app, tenant_a, requests, reference)
        problem = caught.value
        assert problem.status == 409 and problem.code == "insufficient_stock"
        assert problem.errors[0]["field"] == f"requests[{index}].quantity"
        assert problem.detail.startswith(f"requests[{index}]: {detail} available"), problem.detail
    assert (await s.level("A", "L1"), await s.level("A", "L2"), await s.level("B")) == before
    assert await holds_of(client, tenant_a, reference) == []
    assert await movements(client, tenant_a) == journal
    holds = await reserve(app, tenant_a, [s.req("A", 10), s.req("B", 3)], reference)
    assert held(holds) == [("L1", D(4), "placed"), ("L2", D(6), "placed"), ("", D(3), "placed")]
    await assert_journal_adds_up(client, tenant_a)


async def test_bad_requests_are_refused_before_anything_moves(client, app, tenant_a):
    s = await Stock(client, tenant_a).setup(["A"], [("A", "", "", 5)])
    closed = UUID(await warehouse(client, tenant_a.auth, "SHUT"))
    await import_stock(client, tenant_a, [("SHUT", "A", "", "", 5)])
    r = await client.patch(f"{API}/warehouses/{closed}", headers=tenant_a.auth, json={"status": "inactive"})
    assert r.status_code == 200, r.text
    shut = StockRequest(warehouse_id=closed, sku_id=s.skus["A"], quantity=D(1))
    nowhere = StockRequest(warehouse_id=UUID(int=7), sku_id=s.skus["A"], quantity=D(1))
    unknown_sku = StockRequest(warehouse_id=s.wid, sku_id=UUID(int=8), quantity=D(1))
    for requests, reference, field in (
        ([s.req("A", 1), s.req("A", 0)], ref(), "requests[1].quantity"),
        ([s.req("A", "0.00001")], ref(), "requests[0].quantity"),
        ([s.req("A", "-1")], ref(), "requests[0].quantity"),
        ([s.req("A", 1), nowhere], ref(), "requests[1].warehouse_id"),
        ([unknown_sku], ref(), "requests[0].sku_id"),
        ([s.req("A", 1)], "x" * 81, "reference"),
        ([s.req("A", 1)], "", "reference"),
    ):
        with pytest.raises(Unprocessable) as caught:
            await reserve(app, tenant_a, requests, reference)
        assert caught.value.errors[0]["field"] == field
    with pytest.raises(Conflict) as inactive:
        await reserve(app, tenant_a, [s.req("A", 1), shut], ref())
    assert inactive.value.code == "warehouse_inactive"
    assert await reserve(app, tenant_a, [], ref()) == []
    assert await s.level("A") == (D(5), D(0))
    assert await movements(client, tenant_a, kind="reserve") == []


async def test_dealers_hold_only_in_their_own_warehouses_and_tenants_stay_apart(
    client, app, tenant_a, tenant_b
):
    s = await Stock(client, tenant_a).setup(["A"], [("A", "", "", 5)])
    dealer = await make_customer(client, tenant_a, "D1")
    own = UUID(await warehouse(client, tenant_a.auth, "D1-WH", owner_customer_id=dealer))
    await import_stock(client, tenant_a, [("D1-WH", "A", "", "", 5)])
    as_dealer = Principal(
        kind="user", tenant_id=UUID(tenant_a.id), customer_id=UUID(dealer), user_id=UUID(int=9)
    )
    mine = StockRequest(warehouse_id=own, sku_id=s.skus["A"], quantity=D(2))

    async def dealer_reserves(requests: list[StockRequest]) -> list[ReservationOut]:
        return await in_tx(
            app, tenant_a, lambda x: service.reserve_many(x, as_dealer, requests, reference="d")
        )

    with pytest.raises(Unprocessable) as caught:
        await dealer_reserves([mine, s.req("A", 1)])
    assert caught.value.errors[0]["field"] == "requests[1].warehouse_id"
    mine_held = await dealer_reserves([mine])
    assert [h.warehouse_id for h in mine_held] == [own]
    reserved = await movements(client, tenant_a, kind="reserve")
    assert [m["actor"] for m in reserved] == [f"user:{UUID(int=9)}"]
    brand_hold = await reserve(app, tenant_a, [s.req("A", 1)], "d")
    with pytest.raises(NotFound):  # the reference also holds brand stock the dealer cannot see
        await in_tx(app, tenant_a, lambda x: service.release_many(x, as_dealer, "d"))
    with pytest.raises(Unprocessable):  # tenant B cannot name tenant A's warehouse
        await reserve(app, tenant_b, [s.req("A", 1)], "d")
    assert await release(app, tenant_b, "d") == []  # nor see its holds
    assert {h.id for h in await release(app, tenant_a, "d")} == {brand_hold[0].id, mine_held[0].id}
    await assert_journal_adds_up(client, tenant_a)


async def test_statements_do_not_grow_with_the_lines(client, app, tenant_a):
    codes = [f"S{i}" for i in range(10)]
    rows = [(c, f"L{j}", f"2027-0{1 + j % 9}-01", 100) for c in codes for j in range(10)]
    s = await Stock(client, tenant_a).setup(codes, rows)
    seen: list[str] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement.split()[0].upper())

    async def counted(work: Callable[[Any], Awaitable[list[ReservationOut]]]) -> tuple[list[str], list[str]]:
        """Statements of the call, then of the flush that writes its audit entry and event."""
        engine = app.state.db.engine.sync_engine
        with tenant_scope(UUID(tenant_a.id)):
            async with app.state.db.transaction() as session:
                await session.connection()  # BEGIN (and binding the tenant) is not the call's
                seen.clear()
                event.listen(engine, "before_cursor_execute", on_execute)
                try:
                    assert await work(session)
                    call = list(seen)
                    seen.clear()
                    await session.flush()
                    return call, list(seen)
                finally:
                    event.remove(engine, "before_cursor_execute", on_execute)

    def reserving(lines: list[StockRequest], reference: str) -> Callable[[Any], Awaitable[Any]]:
        return lambda x: service.reserve_many(x, None, lines, reference=reference)

    counts: dict[str, list[tuple[list[str], list[str]]]] = {"reserve": [], "consume": [], "release": []}
    for n in (1, 10, 100):
        lines = [s.req(codes[i % 10], 1 + i % 2, f"L{i % 10}" if i % 3 == 0 else None) for i in range(n)]
        shipped, cancelled = ref(), ref()
        counts["reserve"].append(await counted(reserving(lines, shipped)))
        counts["reserve"].append(await counted(reserving(lines, cancelled)))
        counts["consume"].append(await counted(partial(service.consume_many, actor=None, reference=shipped)))
        counts["release"].append(
            await counted(partial(service.release_many, actor=None, reference=cancelled))
        )
    assert counts["reserve"][0] == (["SELECT", "INSERT", "UPDATE", "INSERT"], ["INSERT", "INSERT"])
    for kind in ("consume", "release"):
        assert counts[kind][0] == (["SELECT", "UPDATE", "UPDATE", "INSERT"], ["INSERT", "INSERT"])
    for kind, measured in counts.items():
        assert all(m == measured[0] for m in measured), (kind, measured)
    await assert_journal_adds_up(client, tenant_a)


async def test_sixty_four_concurrent_batches_never_hold_more_than_there_is(client, app, tenant_a):
    s = await Stock(client, tenant_a).setup(
        ["HOT", "PLENTY"],
        [
            ("HOT", "L1", "2027-01-01", 15),
            ("HOT", "L2", "2027-02-01", 15),
            ("HOT", "", "", 10),
            ("PLENTY", "", "", 1000),
        ],
    )

    async def one(i: int) -> list[ReservationOut] | Conflict:
        lines = [s.req("PLENTY", 1), s.req("HOT", 1), s.req("PLENTY", 2)]
        try:
            return await reserve(app, tenant_a, lines, f"race:{i}")
        except Conflict as exc:
            return exc

    outcomes = await asyncio.gather(*[one(i) for i in range(64)])
    won = [o for o in outcomes if not isinstance(o, Conflict)]
    lost = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(won) == 40 and len(lost) == 24
    assert {(c.code, c.errors[0]["field"]) for c in lost} == {("insufficient_stock", "requests[1].quantity")}
    assert [await s.level("HOT", lot) for lot in ("L1", "L2", "")] == [
        (D(15), D(15)),
        (D(15), D(15)),
        (D(10), D(10)),
    ]
    assert await s.level("PLENTY") == (D(1000), D(120))
    assert sorted(len(w) for w in won) == [3] * 40
    reserved = await movements(client, tenant_a, kind="reserve")
    assert len(reserved) == 120 and len({m["reference"] for m in reserved}) == 40
    await assert_journal_adds_up(client, tenant_a)


# --- consume_many and release_many --------------------------------------------------------


async def test_shipping_in_parts_then_cancelling_the_rest(client, app, tenant_a):
    s = await Stock(client, tenant_a).setup(
        ["A", "B"], [("A", "L1", "2027-01-01", 4), ("A", "L2", "2027-02-01", 6), ("B", "", "", 8)]
    )
    reference = ref()
    a1, a2, b = await reserve(app, tenant_a, [s.req("A", 10), s.req("B", 5)], reference)
    part = await consume(app, tenant_a, reference, {a2.id: D("2.5"), b.id: D(5)})
    assert [(h.id, h.quantity, h.status) for h in part] == [
        (a2.id, D("3.5"), "placed"),
        (b.id, D(5), "consumed"),
    ]
    assert part[0].closed_at is None and part[1].closed_at is not None
    assert await s.level("A", "L2") == (D("3.5"), D("3.5"))
    assert await s.level("B") == (D(3), D(0))
    for quantities, problem in (
        ({b.id: D(1)}, "reservation_closed"),
        ({a1.id: D(5)}, "exceeds_reservation"),
    ):
        with pytest.raises(Conflict) as caught:
            await consume(app, tenant_a, reference, quantities)
        assert caught.value.code == problem
    for quantities, field in (
        ({UUID(int=3): D(1)}, f"quantities[{UUID(int=3)}]"),
        ({a1.id: D(0)}, f"quantities[{a1.id}]"),
    ):
        with pytest.raises(Unprocessable) as bad:
            await consume(app, tenant_a, reference, quantities)
        assert bad.value.errors[0]["field"] == field
    assert await consume(app, tenant_a, reference, {}) == []
    released = await release(app, tenant_a, reference)
    assert [(h.id, h.quantity, h.status) for h in released] == [
        (a1.id, D(4), "released"),
        (a2.id, D("3.5"), "released"),
    ]
    assert await release(app, tenant_a, reference) == []  # exactly once: nothing is left placed
    assert await consume(app, tenant_a, reference) == []
    assert await s.level("A", "L1") == (D(4), D(0)) and await s.level("A", "L2") == (D("3.5"), D(0))
    closing = [m for m in await movements(client, tenant_a, reference=reference) if m["kind"] != "reserve"]
    assert sorted((m["kind"], D(m["on_hand_delta"]), D(m["reserved_delta"])) for m in closing) == [
        ("issue", D("-5"), D("-5")),
        ("issue", D("-2.5"), D("-2.5")),
        ("release", D(0), D("-4")),
        ("release", D(0), D("-3.5")),
    ]
    await assert_journal_adds_up(client, tenant_a)


async def test_a_shipment_racing_a_cancellation_closes_each_hold_once(client, app, tenant_a):
    s = await Stock(client, tenant_a).setup(
        ["A", "B"], [("A", "L1", "2027-01-01", 50), ("A", "L2", "2027-02-01", 50), ("B", "", "", 100)]
    )
    references = [ref() for _ in range(8)]
    for reference in references:
        await reserve(app, tenant_a, [s.req("A", 6), s.req("B", 2), s.req("A", 5, "L2")], reference)

    async def attempt(op: Callable[..., Any], reference: str) -> list[ReservationOut] | Conflict:
        try:
            return await op(app, tenant_a, reference)
        except Conflict as exc:
            assert exc.code == "reservation_closed"
            return exc

    ops = [(consume, release), (release, consume)]
    outcomes = await asyncio.gather(*[attempt(op, r) for i, r in enumerate(references) for op in ops[i % 2]])
    for i, reference in enumerate(references):
        pair = outcomes[2 * i : 2 * i + 2]
        winners = [o for o in pair if isinstance(o, list) and o]
        assert len(winners) == 1, pair
        assert len(winners[0]) == 3 and len({h.status for h in winners[0]}) == 1
        closing = [
            m for m in await movements(client, tenant_a, reference=reference) if m["kind"] != "reserve"
        ]
        assert len(closing) == 3 and len({m["kind"] for m in closing}) == 1
        assert {h["status"] for h in await holds_of(client, tenant_a, reference)} == {winners[0][0].status}
    await assert_journal_adds_up(client, tenant_a)


async def test_a_batch_and_the_single_hold_endpoints_neither_deadlock_nor_close_twice(client, app, tenant_a):
    s = await Stock(client, tenant_a).setup(["A"], [("A", "", "", 100)])
    references = [ref() for _ in range(6)]
    singles = []
    for reference in references:
        holds = await reserve(app, tenant_a, [s.req("A", 1), s.req("A", 2), s.req("A", 3)], reference)
        singles.append(holds[1].id)  # two holds of the same level: the second is also closed alone

    async def batch(reference: str) -> int:
        try:
            return len(await release(app, tenant_a, reference))
        except Conflict as exc:
            assert exc.code == "reservation_closed"
            return 0

    async def single(hold: UUID) -> int:
        r = await client.post(f"{API}/stock/reservations/{hold}/consume", headers=tenant_a.auth)
        assert r.status_code in (200, 409), r.text
        return 1 if r.status_code == 200 else 0

    results = await asyncio.gather(*[batch(r) for r in references], *[single(h) for h in singles])
    for i, reference in enumerate(references):
        released, consumed = results[i], results[len(references) + i]
        assert (released, consumed) in ((3, 0), (2, 1)), (released, consumed)
        assert len(await movements(client, tenant_a, reference=reference, kind="release")) == released
        assert len(await movements(client, tenant_a, reservation_id=singles[i], kind="issue")) == consumed
    await assert_journal_adds_up(client, tenant_a)

    # A partial shipment racing the single release of the same hold: the release frees what
    # the hold still holds when it gets the lock, never what it held when it was read.
    holds = [(await reserve(app, tenant_a, [s.req("A", 4)], ref()))[0].id for _ in range(8)]

    async def ship_one(hold: UUID) -> None:
        reference = (await holds_of_id(hold))["reference"]
        try:
            await consume(app, tenant_a, reference, {hold: D(1)})
        except Conflict as exc:
            assert exc.code == "reservation_closed"

    async def holds_of_id(hold: UUID) -> dict[str, Any]:
        r = await client.get(f"{API}/stock/reservations/{hold}", headers=tenant_a.auth)
        return dict(r.json())

    async def release_one(hold: UUID) -> None:
        r = await client.post(f"{API}/stock/reservations/{hold}/release", headers=tenant_a.auth)
        assert r.status_code == 200, r.text

    await asyncio.gather(*[f(h) for h in holds for f in (ship_one, release_one)])
    for hold in holds:
        assert (await holds_of_id(hold))["status"] == "released"
    await assert_journal_adds_up(client, tenant_a)


# --- a property: batches against a model ---------------------------------------------------

LOT = st.tuples(
    st.one_of(st.none(), st.integers(min_value=1, max_value=3)), st.integers(min_value=0, max_value=6)
)
LOTS = st.tuples(LOT, LOT, LOT, st.integers(min_value=0, max_value=6)).map(
    lambda drawn: [
        (lot, day, qty)
        for lot, (day, qty) in zip(("L1", "L2", "L3", ""), (*drawn[:3], (None, drawn[3])), strict=True)
        if qty
    ]
)  # (lot, expiry day of January, quantity) of SKU A; "" has no lot and so no expiry
REQUESTS = st.lists(
    st.tuples(
        st.sampled_from(["A", "A", "B"]),
        st.integers(min_value=1, max_value=6),
        st.sampled_from([None, None, None, "", "L1", "L2"]),
    ),
    min_size=1,
    max_size=4,
)
BATCH_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.integers(min_value=0, max_value=2), REQUESTS),
        st.tuples(
            st.just("consume"), st.integers(min_value=0, max_value=2), st.integers(min_value=0, max_value=4)
        ),
        st.tuples(st.just("release"), st.integers(min_value=0, max_value=2), st.just(0)),
    ),
    min_size=1,
    max_size=10,
)


async def consume_target(app: Any, tenant: TenantHandle, reference: str) -> UUID:
    """The oldest placed hold of the reference."""

    async def oldest(session: Any) -> UUID:
        holds, _ = await service.list_reservations(
            session, None, None, 1, status="placed", reference=reference
        )
        return holds[0].id

    return await in_tx(app, tenant, oldest)


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(lots=LOTS, ops=BATCH_OPS)
async def test_batches_follow_a_model_of_lots_and_holds(client, app, lots, ops):
    """SKU A has the drawn lots, SKU B 10 without a lot. Every batch takes lots in expiry, then
    lot-number order, or fails at the first request the rest cannot cover and changes nothing;
    consuming (0: everything, n: n of the oldest hold) and releasing close each hold once."""
    t = await make_tenant(client, prefix="batch")
    expiry = {lot: None if day is None else date(2027, 1, day) for lot, day, _ in lots}
    rows = [("A", lot, str(expiry[lot] or ""), qty) for lot, _, qty in lots] + [("B", "", "", 10)]
    s = await Stock(client, t).setup(["A", "B"], rows)
    available = {("A", lot): D(qty) for lot, _, qty in lots} | {("B", ""): D(10)}
    on_hand = dict(available)
    placed: dict[str, list[list[Any]]] = {}  # reference -> [sku, lot, quantity] per placed hold

    def order(sku: str) -> list[str]:
        lots_of = [lot for s_, lot in available if s_ == sku]
        return sorted(lots_of, key=lambda lot: (expiry.get(lot) is None, expiry.get(lot) or date.min, lot))

    for op, n, arg in ops:
        reference = f"ref-{n}"
        if op == "reserve":
            want: list[tuple[str, str, Decimal]] = []
            left, failed = dict(available), None
            for i, (sku, qty, lot) in enumerate(arg):
                need = D(qty)
                for candidate in order(sku) if lot is None else [lot]:
                    part = min(left.get((sku, candidate), D(0)), need)
                    if part > 0:
                        want.append((sku, candidate, part))
                        left[(sku, candidate)] -= part
                        need -= part
                if need > 0:
                    failed = i
                    break
            requests = [s.req(sku, qty, lot) for sku, qty, lot in arg]
            if failed is None:
                holds = await reserve(app, t, requests, reference)
                assert [(h.sku_id, h.lot_no, h.quantity) for h in holds] == [
                    (s.skus[k], lot, q) for k, lot, q in want
                ]
                available = left
                placed.setdefault(reference, []).extend([[k, lot, q] for k, lot, q in want])
            else:
                with pytest.raises(Conflict) as caught:
                    await reserve(app, t, requests, reference)
                assert caught.value.errors[0]["field"] == f"requests[{failed}].quantity"
        elif op == "consume" and arg and placed.get(reference):
            oldest = await consume_target(app, t, reference)
            hold = placed[reference][0]
            part = min(D(arg), hold[2])
            changed = await consume(app, t, reference, {oldest: part})
            assert [(h.quantity, h.status) for h in changed] == [
                (hold[2] - part, "placed") if part < hold[2] else (part, "consumed")
            ]
            on_hand[(hold[0], hold[1])] -= part
            hold[2] -= part
            if not hold[2]:
                placed[reference].pop(0)
        else:
            closed = await (consume(app, t, reference) if op == "consume" else release(app, t, reference))
            assert sorted(h.quantity for h in closed) == sorted(h[2] for h in placed.pop(reference, []))
            for h in closed:
                key = ("A" if h.sku_id == s.skus["A"] else "B", h.lot_no)
                if op == "consume":
                    on_hand[key] -= h.quantity
                else:
                    available[key] += h.quantity
    for (sku, lot), quantity in on_hand.items():
        held = sum((h[2] for hs in placed.values() for h in hs if (h[0], h[1]) == (sku, lot)), D(0))
        assert await s.level(sku, lot) == (quantity, held)
        assert available[(sku, lot)] == quantity - held
    await assert_journal_adds_up(client, t)
