"""POST /api/v1/quotes through the real app: the worked examples of DOMAIN §1, §2, §4 and §5
priced end to end, explanations, dealers quoting for themselves only, bad input, and a quote
that changes nothing and costs the same statements whatever its size."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from tests.fixtures import TenantHandle, bearer, make_tenant

D = Decimal


class Shop:
    """A tenant with master data built through the API."""

    def __init__(self, client: httpx.AsyncClient, tenant: TenantHandle) -> None:
        self.c = client
        self.t = tenant
        self.ids: dict[str, str] = {}

    async def post(
        self, path: str, body: Any, *, status: int = 201, headers: dict[str, str] | None = None
    ) -> Any:
        r = await self.c.post(path, json=body, headers=headers or self.t.auth)
        assert r.status_code == status, (path, r.status_code, r.text)
        return r.json()

    async def quote(self, body: dict[str, Any], *, key: str | None = None, status: int = 200) -> Any:
        r = await self.c.post("/api/v1/quotes", json=body, headers=bearer(key) if key else self.t.auth)
        assert r.status_code == status, r.text
        return r.json()

    async def basics(self) -> None:
        ids = self.ids
        ids["pcs"] = (await self.post("/api/v1/units", {"code": "pcs", "name": "Piece"}))["id"]
        ids["case"] = (await self.post("/api/v1/units", {"code": "case", "name": "Case"}))["id"]
        ids["cat"] = (await self.post("/api/v1/categories", {"code": "DRINKS", "name": "Drinks"}))["id"]
        ids["east"] = (await self.post("/api/v1/regions", {"code": "EAST", "name": "East China"}))["id"]
        ids["sh"] = (
            await self.post("/api/v1/regions", {"code": "SH", "name": "Shanghai", "parent_id": ids["east"]})
        )["id"]

    async def sku(self, code: str, *, list_price: str | None = None, case_of: int | None = None) -> str:
        product: dict[str, Any] = {
            "code": code,
            "name": code,
            "base_unit_id": self.ids["pcs"],
            "category_id": self.ids["cat"],
        }
        if case_of:
            product["conversions"] = [{"unit_id": self.ids["case"], "factor": str(case_of)}]
        p = await self.post("/api/v1/products", product)
        body: dict[str, Any] = {
            "product_id": p["id"],
            "code": f"{code}-1",
            "name": code,
            "cost_price": "10.00",
        }
        if list_price:
            body["list_price"] = list_price
        return (await self.post("/api/v1/skus", body))["id"]

    async def customer(self, code: str, **extra: Any) -> str:
        body = {"code": code, "name": code, "kind": "dealer", **extra}
        return (await self.post("/api/v1/customers", body))["id"]

    async def dealer_key(self, customer_id: str, code: str) -> str:
        user = await self.post(
            "/api/v1/users",
            {
                "email": f"{code}@{self.t.slug}.example",
                "name": code,
                "role": "dealer",
                "customer_id": customer_id,
            },
        )
        return (await self.post("/api/v1/api-keys", {"name": code, "user_id": user["id"]}))["secret"]

    async def price_list(self, code: str, step: str, entries: list[dict[str, Any]], **dims: Any) -> str:
        pl = await self.post("/api/v1/price-lists", {"code": code, "name": code, "step": step, **dims})
        for entry in entries:
            await self.post(f"/api/v1/price-lists/{pl['id']}/entries", {"unit_id": self.ids["pcs"], **entry})
        return pl["id"]

    async def promotion(self, code: str, type_: str, rule: dict[str, Any], **extra: Any) -> str:
        body = {"code": code, "name": code, "type": type_, "rule": rule, **extra}
        return (await self.post("/api/v1/promotions", body))["id"]


@pytest.fixture
async def shop(client: httpx.AsyncClient, tenant_a: TenantHandle) -> Shop:
    s = Shop(client, tenant_a)
    await s.basics()
    return s


def line(q: dict[str, Any], line_id: str) -> dict[str, Any]:
    return next(ln for ln in q["lines"] if ln["line_id"] == line_id)


async def test_domain_1_access_sequence_bands_and_floor(shop: Shop) -> None:
    """Base list 100; level-A price 92; C1 has its own 95 for 1–99 and 90 from 100 (exclusive
    customer step). C1 buys 120 → 90, 50 → 95 (not 92). Floor 85 and a net 84.50 → blocked."""
    x = await shop.sku("X")
    c1 = await shop.customer("C1", level="A", region_id=shop.ids["sh"])
    c2 = await shop.customer("C2", level="A", region_id=shop.ids["sh"])
    c3 = await shop.customer("C3")
    await shop.price_list("BASE", "base", [{"sku_id": x, "price": "100.00"}])
    # A level-A price for East China reaches customers in Shanghai (region by ancestor).
    await shop.price_list(
        "LEVEL-A", "level_region", [{"sku_id": x, "price": "92.00"}], level="A", region_id=shop.ids["east"]
    )
    await shop.price_list(
        "C1",
        "customer",
        [
            {"sku_id": x, "price": "95.00", "min_qty": "1", "max_qty": "99"},
            {"sku_id": x, "price": "90.00", "min_qty": "100"},
        ],
        customer_id=c1,
    )

    q = await shop.quote({"customer_id": c1, "lines": [{"sku_id": x, "quantity": "120"}]})
    first = q["lines"][0]
    assert D(first["list_price"]) == D("90.00")
    assert first["price_source"]["kind"] == "price_list"
    assert first["price_source"]["price_list_code"] == "C1"
    assert first["price_source"]["step"] == "customer"
    assert D(first["price_source"]["bands"][0]["min_qty"]) == 100
    q = await shop.quote({"customer_id": c1, "lines": [{"sku_id": x, "quantity": "50"}]})
    assert D(q["lines"][0]["list_price"]) == D("95.00")
    q = await shop.quote({"customer_id": c2, "lines": [{"sku_id": x, "quantity": "50"}]})
    assert (D(q["lines"][0]["list_price"]), q["lines"][0]["price_source"]["step"]) == (
        D("92.00"),
        "level_region",
    )
    q = await shop.quote({"customer_id": c3, "lines": [{"sku_id": x, "quantity": "50"}]})
    assert (D(q["lines"][0]["list_price"]), q["lines"][0]["price_source"]["step"]) == (D("100.00"), "base")
    q = await shop.quote({"lines": [{"sku_id": x, "quantity": "1"}]})  # a walk-in buyer
    assert D(q["lines"][0]["list_price"]) == D("100.00") and q["customer_id"] is None and q["credit"] is None

    await shop.post(
        "/api/v1/price-floors", {"sku_id": x, "unit_id": shop.ids["pcs"], "price": "85.00", "action": "block"}
    )
    await shop.promotion("R550", "full_reduction", {"tiers": [{"threshold": "9000", "amount": "550"}]})
    q = await shop.quote({"customer_id": c1, "lines": [{"sku_id": x, "quantity": "100"}]})
    only = q["lines"][0]
    assert D(only["payable"]) == D("8450.00") and D(only["net_unit_price"]) == D("84.50")
    assert only["floor"] == {
        "floor_price": "85.00",
        "action": "block",
        "outcome": "block",
        "shortfall": "0.50",
    }
    assert q["floor_verdict"] == "block"


async def test_domain_2_reduction_then_coupon(shop: Shop) -> None:
    """A 2×150 = 300 and B 200; 满500减60 → A 36, B 24; then coupon 满400减20 on 440 → A 12, B 8;
    payable 420."""
    a, b = await shop.sku("A"), await shop.sku("B")
    c1 = await shop.customer("C1")
    await shop.price_list(
        "BASE", "base", [{"sku_id": a, "price": "150.00"}, {"sku_id": b, "price": "200.00"}]
    )
    r60 = await shop.promotion("M500", "full_reduction", {"tiers": [{"threshold": "500", "amount": "60"}]})
    template = await shop.post(
        "/api/v1/coupon-templates", {"code": "T20", "name": "20 off 400", "threshold": "400", "amount": "20"}
    )
    issued = await shop.post(
        f"/api/v1/coupon-templates/{template['id']}/issue",
        {"customer_ids": [c1]},
        status=201,
        headers={**shop.t.auth, "Idempotency-Key": secrets.token_hex(8)},
    )
    code = issued["codes"][0]
    body = {
        "customer_id": c1,
        "lines": [
            {"line_id": "A", "sku_id": a, "quantity": "2"},
            {"line_id": "B", "sku_id": b, "quantity": "1"},
        ],
        "coupon_codes": [code["code"]],
    }
    q = await shop.quote(body)
    assert D(q["totals"]["after_promotions"]) == D("420.00") and D(q["totals"]["gross"]) == D("500.00")
    la, lb = line(q, "A"), line(q, "B")
    assert {(d["promotion_id"], D(d["amount"])) for d in la["discounts"]} == {
        (r60, D("36.00")),
        (code["id"], D("12.00")),
    }
    assert {(d["promotion_id"], D(d["amount"])) for d in lb["discounts"]} == {
        (r60, D("24.00")),
        (code["id"], D("8.00")),
    }
    stages = {s["stage"]: s for s in q["stages"]}
    assert D(stages["order"]["base"]) == D("500.00") and D(stages["coupon"]["base"]) == D("440.00")
    assert D(stages["coupon"]["after"]) == D("420.00")
    assert all(p["explanation"] for p in q["promotions"])

    # A quote changes nothing: the code is still issued and can be quoted again.
    state = (await shop.c.get(f"/api/v1/coupon-codes/{code['id']}", headers=shop.t.auth)).json()["state"]
    assert state == "issued"
    assert (await shop.quote(body))["totals"] == q["totals"]


async def test_fees_rebate_and_credit_preview(shop: Shop) -> None:
    """DOMAIN §5: lines A 10,000 at 20%, B 5,000 at 0%, C 5,000 at 10% → fee cap 2,500. DOMAIN §4:
    a usage cap ratio of 10% on an order of 100,000 makes at most 10,000 usable."""
    a, b, c = await shop.sku("A"), await shop.sku("B"), await shop.sku("C")
    other = await shop.post("/api/v1/categories", {"code": "OTHER", "name": "Other"})
    c1 = await shop.customer("C1", customer_class="KA")
    await shop.price_list("BASE", "base", [{"sku_id": s, "price": "100.00"} for s in (a, b, c)])
    await shop.post("/api/v1/offset-ratios", {"customer_id": c1, "ratio": "0.2"})
    await shop.post("/api/v1/offset-ratios", {"customer_id": c1, "sku_id": b, "ratio": "0"})
    await shop.post("/api/v1/offset-ratios", {"customer_id": c1, "sku_id": c, "ratio": "0.1"})
    await shop.post("/api/v1/offset-ratios", {"customer_id": c1, "category_id": other["id"], "ratio": "0.9"})
    body = {
        "customer_id": c1,
        "lines": [
            {"line_id": "A", "sku_id": a, "quantity": "100"},
            {"line_id": "B", "sku_id": b, "quantity": "50"},
            {"line_id": "C", "sku_id": c, "quantity": "50"},
        ],
        "use_fees": "3000.00",
        "use_rebate": "5000.00",
    }
    q = await shop.quote(body)
    assert [D(line(q, x)["fee_cap"]) for x in "ABC"] == [D("2000.00"), D("0.00"), D("500.00")]
    assert q["fees"] == {"requested": "3000.00", "line_cap_total": "2500.00", "usable": "2500.00"}
    assert D(q["rebate"]["usable"]) == 0  # no rebate policy covers C1: nothing may be paid from rebates
    assert q["credit"] is None  # no credit profile

    await shop.post(
        "/api/v1/rebate-policies",
        {
            "code": "Q",
            "name": "Quarterly",
            "period": "quarter",
            "customers": {"customer_classes": ["KA"]},
            "mode": "retroactive",
            "target": "100000",
            "tiers": [{"achievement": "1", "rate": "0.02"}],
            "usage_cap_ratio": "0.1",
        },
    )
    profile = await shop.post("/api/v1/credit-profiles", {"customer_id": c1, "credit_limit": "10000.00"})
    await shop.post("/api/v1/credit-rules", {"check_point": "submit", "over_limit": "warn"})
    q = await shop.quote(body)
    rebate = {k: D(v) for k, v in q["rebate"].items()}
    assert rebate == {"requested": 5000, "usage_cap_ratio": D("0.1"), "cap": 2000, "usable": 2000}
    assert D(q["totals"]["due"]) == D("20000.00") - D("2500.00") - D("2000.00")
    assert sum(D(ln["fee_offset"]) for ln in q["lines"]) == D("2500.00")
    assert sum(D(ln["rebate"]) for ln in q["lines"]) == D("2000.00")
    assert q["credit"]["action"] == "warn" and D(q["credit"]["over_by"]) == D("5500.00")
    await shop.post(
        f"/api/v1/credit-profiles/{profile['id']}/temporary-lines",
        {"amount": "6000.00", "expires_on": "2099-12-31"},
    )
    q = await shop.quote(body)
    assert q["credit"]["action"] == "pass" and D(q["credit"]["credit_line"]) == D("16000.00")


async def test_units_hooks_and_bad_lines(shop: Shop) -> None:
    cased = await shop.sku("CASED", case_of=12)
    listed = await shop.sku("LISTED", list_price="8.80")
    bare = await shop.sku("BARE")
    # 10 per piece, 9 per piece from 120 pieces: 10 cases are 120 pieces, priced by the piece band.
    pl = await shop.post("/api/v1/price-lists", {"code": "BASE", "name": "Base", "step": "base"})
    for entry in (
        {"unit_id": shop.ids["case"], "price": "110.00", "min_qty": "0", "max_qty": "119"},
        {"unit_id": shop.ids["case"], "price": "100.00", "min_qty": "120"},
    ):
        await shop.post(f"/api/v1/price-lists/{pl['id']}/entries", {"sku_id": cased, **entry})
    q = await shop.quote({"lines": [{"sku_id": cased, "quantity": "10", "unit_id": shop.ids["case"]}]})
    assert (D(q["lines"][0]["list_price"]), D(q["lines"][0]["base_quantity"])) == (D("100.00"), D(120))
    q = await shop.quote({"lines": [{"sku_id": cased, "quantity": "9", "unit_id": shop.ids["case"]}]})
    assert D(q["lines"][0]["list_price"]) == D("110.00")

    # No price list prices LISTED: the pricing hook answers with its list price.
    q = await shop.quote({"lines": [{"sku_id": listed, "quantity": "3"}]})
    assert q["lines"][0]["price_source"] == {
        "kind": "hook",
        "price_list_id": None,
        "price_list_code": None,
        "step": None,
        "mode": None,
        "bands": [],
        "source": "list_price",
        "detail": {},
    }
    assert D(q["lines"][0]["payable"]) == D("26.40")

    r = await shop.c.post(
        "/api/v1/quotes",
        json={"lines": [{"sku_id": bare, "quantity": "1"}, {"sku_id": shop.ids["cat"], "quantity": "1"}]},
        headers=shop.t.auth,
    )
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in r.json()["errors"]] == ["lines[1].sku_id"]
    r = await shop.c.post(
        "/api/v1/quotes", json={"lines": [{"sku_id": bare, "quantity": "1"}]}, headers=shop.t.auth
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "lines[0].sku_id"
    r = await shop.c.post(
        "/api/v1/quotes",
        json={"lines": [{"sku_id": listed, "quantity": "1", "unit_id": shop.ids["case"]}]},
        headers=shop.t.auth,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "lines[0].unit_id"
    for bad, field in (
        ({"lines": []}, None),
        ({"lines": [{"sku_id": listed}]}, None),
        ({"lines": [{"sku_id": listed, "quantity": "0"}]}, "lines[0].quantity"),
        ({"lines": [{"sku_id": listed, "quantity": "1.00001"}]}, "lines[0].quantity"),
        ({"lines": [{"sku_id": listed, "quantity": "1"}], "use_fees": "-1"}, "use_fees"),
        ({"lines": [{"sku_id": listed, "quantity": "1", "addon_of": listed}]}, "lines[0].addon_of"),
    ):
        r = await shop.c.post("/api/v1/quotes", json=bad, headers=shop.t.auth)
        assert r.status_code == 422, bad
        assert field is None or [e["field"] for e in r.json()["errors"]] == [field], r.text
    r = await shop.c.post(
        "/api/v1/quotes",
        json={"lines": [{"sku_id": listed, "quantity": "1"}], "coupon_codes": ["NOPE-NOPE"]},
        headers=shop.t.auth,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "coupon_codes[0]"


async def test_add_on_purchase(shop: Shop) -> None:
    """加价购: once the basket reaches 100, one unit of the add-on SKU costs 1.00; the add-on line
    never counts towards the threshold."""
    main, extra = await shop.sku("MAIN"), await shop.sku("EXTRA")
    await shop.price_list(
        "BASE", "base", [{"sku_id": main, "price": "50.00"}, {"sku_id": extra, "price": "30.00"}]
    )
    addon = await shop.promotion(
        "ADD", "add_on", {"threshold": "100", "addon_price": "1.00", "max_quantity": 1}
    )

    def basket(main_qty: str) -> dict[str, Any]:
        return {
            "lines": [
                {"line_id": "M", "sku_id": main, "quantity": main_qty},
                {"line_id": "X", "sku_id": extra, "quantity": "2", "addon_of": addon},
            ]
        }

    q = await shop.quote(basket("2"))
    assert D(line(q, "X")["payable"]) == D("31.00")  # one unit at 1.00, the second at 30.00
    q = await shop.quote(basket("1"))  # 50 < 100: the add-on price does not apply
    assert D(line(q, "X")["payable"]) == D("60.00")


async def test_dealers_quote_for_themselves_only(client: httpx.AsyncClient, shop: Shop) -> None:
    x = await shop.sku("X", list_price="10.00")
    parent = await shop.customer("D1")
    child = await shop.customer("D1-1", parent_id=parent)
    sibling = await shop.customer("D2")
    key = await shop.dealer_key(parent, "d1")
    q = await shop.quote({"lines": [{"sku_id": x, "quantity": "1"}]}, key=key)
    assert q["customer_id"] == parent
    assert "cost_price" not in str(q)
    # 商品授权: a product the brand has not authorised for this dealer cannot be quoted.
    y = await shop.sku("Y", list_price="10.00")
    await shop.post(
        "/api/v1/product-authorizations", {"effect": "deny", "customer_id": parent, "sku_ids": [y]}
    )
    r = await client.post(
        "/api/v1/quotes",
        json={"lines": [{"sku_id": x, "quantity": "1"}, {"sku_id": y, "quantity": "1"}]},
        headers=bearer(key),
    )
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["lines[1].sku_id"]
    r = await client.post(
        "/api/v1/quotes",
        json={"customer_id": child, "lines": [{"sku_id": x, "quantity": "1"}]},
        headers=bearer(key),
    )
    assert r.status_code == 403
    r = await client.post(
        "/api/v1/quotes",
        json={"customer_id": sibling, "lines": [{"sku_id": x, "quantity": "1"}]},
        headers=bearer(key),
    )
    assert r.status_code == 404
    # Another tenant's customer and SKU do not exist here.
    other = await make_tenant(client, prefix="q-other")
    r = await client.post(
        "/api/v1/quotes",
        json={"customer_id": parent, "lines": [{"sku_id": x, "quantity": "1"}]},
        headers=other.auth,
    )
    assert r.status_code == 404
    r = await client.post(
        "/api/v1/quotes", json={"lines": [{"sku_id": x, "quantity": "1"}]}, headers=other.auth
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "lines[0].sku_id"


async def test_quote_statements_do_not_grow_with_lines(app: Any, shop: Shop) -> None:
    """Compiled books make the statement count independent of the basket size."""
    skus = [await shop.sku(f"S{i}") for i in range(5)]
    c1 = await shop.customer("C1", region_id=shop.ids["sh"])
    await shop.price_list("BASE", "base", [{"sku_id": s, "price": "10.00"} for s in skus])
    await shop.promotion("M100", "full_reduction", {"tiers": [{"threshold": "100", "amount": "5"}]})

    def basket(n: int) -> dict[str, Any]:
        return {
            "customer_id": c1,
            "lines": [{"sku_id": skus[i % 5], "quantity": str(i + 1)} for i in range(n)],
        }

    await shop.quote(basket(1))  # compiles the books
    seen: list[str] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    counts = []
    engine = app.state.db.engine.sync_engine
    for n in (2, 60):
        seen.clear()
        event.listen(engine, "before_cursor_execute", on_execute)
        try:
            await shop.quote(basket(n))
        finally:
            event.remove(engine, "before_cursor_execute", on_execute)
        counts.append(len(seen))
    assert counts[0] == counts[1] <= 10, counts


async def test_lines_in_any_order_price_the_same(shop: Shop) -> None:
    skus = [await shop.sku(f"S{i}") for i in range(4)]
    await shop.price_list(
        "BASE", "base", [{"sku_id": s, "price": f"{10 + i}.00"} for i, s in enumerate(skus)]
    )
    await shop.promotion("M", "full_reduction", {"tiers": [{"threshold": "50", "amount": "7.77"}]})
    lines = [{"line_id": f"L{i}", "sku_id": s, "quantity": str(i + 2)} for i, s in enumerate(skus)]
    forward = await shop.quote({"lines": lines})
    backward = await shop.quote({"lines": list(reversed(lines))})
    assert forward["totals"] == backward["totals"]
    assert {ln["line_id"]: ln for ln in forward["lines"]} == {ln["line_id"]: ln for ln in backward["lines"]}
