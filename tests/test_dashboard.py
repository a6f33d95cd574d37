"""The trading dashboard through the real app: ordered and shipped figures checked against hand
sums, period buckets on both databases, top and slow sellers, dealer subtree visibility, and a
property: the rows of any dimension add up to the total."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import Decimal as D
from typing import Any
from uuid import UUID, uuid4

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from omnicloud.core.db import utcnow
from omnicloud.core.ids import new_id
from omnicloud.pools.orders.models import OrderLine
from omnicloud.pools.sales import service as sales
from tests.fixtures import TenantHandle, make_tenant
from tests.test_funds_api import API, fund_cash, tx
from tests.test_orders_api import Shop, act, basket, ship, shop, submitted

TODAY = utcnow().date()
DIMENSIONS = ("period", "sku", "product", "category", "region", "dealer")


async def board(client: httpx.AsyncClient, auth: dict[str, str], **params: Any) -> httpx.Response:
    return await client.get(f"{API}/sales/dashboard", headers=auth, params=params)


async def figures(client: httpx.AsyncClient, auth: dict[str, str], **params: Any) -> dict[str, Any]:
    r = await board(client, auth, **params)
    assert r.status_code == 200, r.text
    return dict(r.json())


def by_key(out: dict[str, Any]) -> dict[str | None, tuple[D, D]]:
    return {row["key"]: (D(row["amount"]), D(row["quantity"])) for row in out["rows"]}


async def order(
    client: httpx.AsyncClient, s: Shop, code: str, *quantities: str, sku: int = 0
) -> dict[str, Any]:
    """An order of dealer ``code`` (10.00 a unit) for SKUs from ``sku`` on, one line each."""
    total = sum(D(q) for q in quantities) * 10
    await fund_cash(client, s.t, s.d.ids[code], f"{total:.2f}", f"DB-{code}-{uuid4().hex[:6]}")
    body = basket(s, *quantities)
    for i, line in enumerate(body["lines"]):
        line["sku_id"] = s.skus[sku + i]
    return await submitted(client, s.d.keys[code], body)


async def record(
    app: Any,
    t: TenantHandle,
    order_id: str,
    buyer: str,
    day: date,
    kind: str,
    quantity: int,
    line_no: int = 0,
) -> None:
    """A sales fact of ``quantity`` units at 10.00 for one line of ``order_id`` on ``day``."""
    async with tx(app, t) as session:
        lines = (
            await session.scalars(
                select(OrderLine).where(OrderLine.order_id == UUID(order_id)).order_by(OrderLine.position)
            )
        ).all()
        line = lines[line_no]
        await sales.record(
            session,
            kind=kind,
            day=day,
            document_id=new_id(),
            order_id=line.order_id,
            customer_id=UUID(buyer),
            seller_customer_id=None,
            sales_org_id=None,
            movements=[
                sales.Movement(
                    order_line_id=line.id,
                    sku_id=line.sku_id,
                    base_quantity=D(quantity),
                    amount=D(quantity) * 10,
                    fee=D(0),
                    rebate=D(0),
                )
            ],
        )


async def trading(client: httpx.AsyncClient, app: Any, t: TenantHandle) -> tuple[Shop, str]:
    """D1 ships 10 × S0 and 5 × S1 (2 × S0 come back) and has 7 × S0 open; D1a ships 2 of 3 × S0;
    D2 ships 4 × S1 and cancels 1 × S0. Returns the shop and today (ISO)."""
    s = await shop(client, t, skus=3, stock="100")
    a = await order(client, s, "D1", "10", "5")
    assert (await ship(client, t.auth, a["id"], l1="10", l2="5")).status_code in (200, 201)
    await order(client, s, "D1", "7")
    b = await order(client, s, "D1a", "3")
    assert (await ship(client, t.auth, b["id"], l1="2")).status_code in (200, 201)
    c = await order(client, s, "D2", "4", sku=1)
    assert (await ship(client, t.auth, c["id"], l1="4")).status_code in (200, 201)
    cancelled = await order(client, s, "D2", "1")
    assert (await act(client, s.d.keys["D2"], cancelled["id"], "cancel")).status_code == 200
    await record(app, t, a["id"], s.d.ids["D1"], TODAY, "returned", 2)
    return s, TODAY.isoformat()


async def test_figures_match_hand_sums(client, app, tenant_a):
    t = tenant_a
    s, today = await trading(client, app, t)
    d1, d1a, d2 = s.d.ids["D1"], s.d.ids["D1a"], s.d.ids["D2"]
    s0, s1, s2 = s.skus
    span = {"from": today, "to": today}

    shipped = await figures(client, t.auth, group_by="dealer", **span)
    assert shipped["total"] == {"amount": "190.00", "quantity": "19.0000"}
    assert by_key(shipped) == {d1: (D(130), D(13)), d1a: (D(20), D(2)), d2: (D(40), D(4))}
    assert [r["key"] for r in shipped["rows"]] == [d1, d2, d1a]  # largest first

    ordered = await figures(client, t.auth, measure="ordered", group_by="dealer", **span)
    assert D(ordered["total"]["amount"]) == 290 and D(ordered["total"]["quantity"]) == 29
    assert by_key(ordered) == {d1: (D(220), D(22)), d1a: (D(30), D(3)), d2: (D(40), D(4))}

    assert by_key(await figures(client, t.auth, group_by="sku", **span)) == {
        s0: (D(100), D(10)),
        s1: (D(90), D(9)),
    }
    assert by_key(await figures(client, t.auth, measure="ordered", group_by="sku", **span)) == {
        s0: (D(200), D(20)),
        s1: (D(90), D(9)),
    }
    product = await figures(client, t.auth, group_by="product", **span)
    assert [(D(r["amount"]), D(r["quantity"])) for r in product["rows"]] == [(D(190), D(19))]
    for dimension in ("category", "region"):  # the shop's product and dealers have none
        assert by_key(await figures(client, t.auth, group_by=dimension, **span)) == {None: (D(190), D(19))}
    for granularity in ("day", "week", "month"):
        out = await figures(client, t.auth, measure="ordered", granularity=granularity, **span)
        [row] = out["rows"]
        assert D(row["amount"]) == 290 and date.fromisoformat(row["key"]) <= date.fromisoformat(today)
    assert (await figures(client, t.auth, **{"from": "2020-01-01", "to": "2020-01-31"}))["rows"] == []

    r = await client.get(f"{API}/sales/rankings", headers=t.auth, params={**span, "limit": 2})
    assert r.status_code == 200, r.text
    assert [(x["sku_id"], x["amount"]) for x in r.json()["top"]] == [(s0, "100.00"), (s1, "90.00")]
    assert [(x["sku_id"], D(x["amount"])) for x in r.json()["slow"]] == [(s2, 0), (s1, 90)]


async def test_period_buckets_agree_on_both_databases(client, app, tenant_a):
    t = tenant_a
    s = await shop(client, t, skus=1)
    o = await order(client, s, "D1", "5")
    for day, quantity in (("2024-01-01", 1), ("2024-01-07", 2), ("2024-01-08", 3), ("2024-02-29", 4)):
        await record(app, t, o["id"], s.d.ids["D1"], date.fromisoformat(day), "shipped", quantity)
    span = {"from": "2024-01-01", "to": "2024-03-31"}
    expected = {
        "day": {"2024-01-01": 10, "2024-01-07": 20, "2024-01-08": 30, "2024-02-29": 40},
        "week": {"2024-01-01": 30, "2024-01-08": 30, "2024-02-26": 40},  # weeks start on Monday
        "month": {"2024-01-01": 60, "2024-02-01": 40},
    }
    for granularity, rows in expected.items():
        out = await figures(client, t.auth, granularity=granularity, **span)
        assert {k: a for k, (a, _) in by_key(out).items()} == {k: D(v) for k, v in rows.items()}, granularity
        assert [r["key"] for r in out["rows"]] == sorted(rows)
    r = await board(client, t.auth, **{"from": "2024-02-01", "to": "2024-01-01"})
    assert r.status_code == 422
    r = await board(client, t.auth, group_by="colour")
    assert r.status_code == 422


async def test_dealers_see_their_subtree_only(client, app, tenant_a):
    t = tenant_a
    s, today = await trading(client, app, t)
    d1, d1a, d2 = s.d.ids["D1"], s.d.ids["D1a"], s.d.ids["D2"]
    span = {"from": today, "to": today, "group_by": "dealer"}

    mine = await figures(client, s.d.keys["D1"], **span)
    assert by_key(mine) == {d1: (D(130), D(13)), d1a: (D(20), D(2))}
    assert D(mine["total"]["amount"]) == 150
    assert by_key(await figures(client, s.d.keys["D1a"], **span)) == {d1a: (D(20), D(2))}
    child = await figures(client, s.d.keys["D1"], customer_id=d1a, **span)
    assert by_key(child) == {d1a: (D(20), D(2))}
    for path in ("dashboard", "rankings"):
        r = await client.get(
            f"{API}/sales/{path}",
            headers=s.d.keys["D1"],
            params={"customer_id": d2, "from": today, "to": today},
        )
        assert r.status_code == 404, path
        r = await client.get(f"{API}/sales/{path}", headers=s.d.keys["D1a"], params={"customer_id": d1})
        assert r.status_code == 404, path

    only = await figures(client, t.auth, customer_id=d1, **span)
    assert by_key(only) == {d1: (D(130), D(13))}
    tree = await figures(client, t.auth, customer_id=d1, subtree="true", **span)
    assert by_key(tree) == {d1: (D(130), D(13)), d1a: (D(20), D(2))}
    r = await client.get(f"{API}/sales/rankings", headers=s.d.keys["D1"], params={"from": today, "to": today})
    assert [(x["sku_id"], x["amount"]) for x in r.json()["top"]] == [
        (s.skus[0], "100.00"),
        (s.skus[1], "50.00"),
    ]


FACTS = st.lists(
    st.tuples(
        st.sampled_from(["D1", "D1a", "D2"]),
        st.integers(min_value=0, max_value=1),  # the order line (SKU)
        st.integers(min_value=0, max_value=59),  # days after the start
        st.integers(min_value=1, max_value=9),
        st.booleans(),  # a return
    ),
    min_size=1,
    max_size=12,
)
WORLDS: dict[str, tuple[Shop, dict[str, str]]] = {}  # one shop for every example
YEARS = itertools.count(2000)


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(facts=FACTS)
async def test_every_dimension_adds_up_to_the_total(client, app, facts):
    if "shop" not in WORLDS:
        t = await make_tenant(client, prefix="dash")
        s = await shop(client, t, skus=2)
        WORLDS["shop"] = (s, {c: (await order(client, s, c, "1", "1"))["id"] for c in ("D1", "D1a", "D2")})
    s, orders = WORLDS["shop"]
    start = date(next(YEARS), 1, 1)  # every example gets a year of its own
    amount = quantity = D(0)
    for buyer, line_no, offset, units, returned in facts:
        kind = "returned" if returned else "shipped"
        await record(
            app, s.t, orders[buyer], s.d.ids[buyer], start + timedelta(days=offset), kind, units, line_no
        )
        sign = -1 if returned else 1
        amount, quantity = amount + sign * units * 10, quantity + sign * units
    span = {"from": start.isoformat(), "to": (start + timedelta(days=59)).isoformat()}
    for dimension in DIMENSIONS:
        for granularity in ("day", "week", "month") if dimension == "period" else ("day",):
            out = await figures(client, s.t.auth, group_by=dimension, granularity=granularity, **span)
            assert D(out["total"]["amount"]) == amount and D(out["total"]["quantity"]) == quantity
            assert sum(D(r["amount"]) for r in out["rows"]) == amount, (dimension, granularity)
            assert sum(D(r["quantity"]) for r in out["rows"]) == quantity, (dimension, granularity)
    d1 = await figures(client, s.d.keys["D1"], **span)
    own = sum((-1 if r else 1) * u * 10 for b, _, _, u, r in facts if b in ("D1", "D1a"))
    assert D(d1["total"]["amount"]) == own


async def test_a_period_ending_on_the_last_representable_day_is_answered(client, tenant_a):
    for path in ("/sales/dashboard", "/sales/rankings"):
        r = await client.get(
            f"/api/v1{path}",
            headers=tenant_a.auth,
            params={"measure": "ordered", "from": "9999-12-01", "to": "9999-12-31"},
        )
        assert r.status_code == 200, (path, r.text)
