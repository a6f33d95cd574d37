"""Catalog over REST: units, brands, the category tree, products with unit conversions, SKUs,
cost visibility, If-Match, price previews, regions, and the idempotent upserts."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import func, select

from omnicloud.catalog import service as catalog
from omnicloud.catalog.schemas import (
    BrandIn,
    CategorySpec,
    ConversionSpec,
    ProductSpec,
    RegionSpec,
    SkuSpec,
    UnitIn,
)
from omnicloud.core.models import AuditEntry, OutboxEvent
from omnicloud.core.tenancy import tenant_scope
from tests.fixtures import TenantHandle, bearer, make_tenant

PJ = "application/problem+json"


async def post(client: Any, t: TenantHandle, path: str, body: Any, status: int = 201) -> dict[str, Any]:
    r = await client.post(path, headers=t.auth, json=body)
    assert r.status_code == status, (path, r.status_code, r.text)
    return r.json()


async def user_key(client: Any, t: TenantHandle, role: str, customer_id: str | None = None) -> dict[str, str]:
    """An API key for a new user with ``role`` (bound to ``customer_id`` for dealers)."""
    body: dict[str, Any] = {"email": f"u{secrets.token_hex(4)}@x.example", "name": "User", "role": role}
    if customer_id:
        body["customer_id"] = customer_id
    user = await post(client, t, "/api/v1/users", body)
    key = await post(client, t, "/api/v1/api-keys", {"name": "k", "user_id": user["id"]})
    return bearer(key["secret"])


async def basics(client: Any, t: TenantHandle) -> dict[str, Any]:
    """Units pc/case/kg, a brand, a category tree food > drinks, one product with a SKU."""
    pc = await post(client, t, "/api/v1/units", {"code": "pc", "name": "Piece"})
    case = await post(client, t, "/api/v1/units", {"code": "case", "name": "Case"})
    kg = await post(client, t, "/api/v1/units", {"code": "kg", "name": "Kilogram"})
    brand = await post(client, t, "/api/v1/brands", {"code": "acme", "name": "Acme"})
    food = await post(client, t, "/api/v1/categories", {"code": "food", "name": "Food"})
    drinks = await post(
        client, t, "/api/v1/categories", {"code": "drinks", "name": "Drinks", "parent_id": food["id"]}
    )
    product = await post(
        client,
        t,
        "/api/v1/products",
        {
            "code": "cola",
            "name": "Cola",
            "base_unit_id": pc["id"],
            "brand_id": brand["id"],
            "category_id": drinks["id"],
            "attributes": {"sugar": True},
            "conversions": [{"unit_id": case["id"], "factor": "12"}],
        },
    )
    sku = await post(
        client,
        t,
        "/api/v1/skus",
        {
            "product_id": product["id"],
            "code": "cola-330",
            "name": "Cola 330ml",
            "barcode": "6901234567892",
            "list_price": "10.50",
            "cost_price": "6.20",
            "weight_g": "350",
        },
    )
    return {
        "pc": pc,
        "case": case,
        "kg": kg,
        "brand": brand,
        "food": food,
        "drinks": drinks,
        "product": product,
        "sku": sku,
    }


async def count(app: Any, t: TenantHandle, model: Any, *where: Any) -> int:
    with tenant_scope(UUID(t.id)):
        async with app.state.db.transaction() as s:
            return int(await s.scalar(select(func.count(model.id)).where(*where)) or 0)


# --- units, brands, categories -------------------------------------------------------------


async def test_units_and_brands(client, tenant_a):
    t = tenant_a
    unit = await post(client, t, "/api/v1/units", {"code": "pc", "name": "Piece"})
    assert (await client.get(f"/api/v1/units/{unit['id']}", headers=t.auth)).json() == unit
    r = await client.patch(f"/api/v1/units/{unit['id']}", headers=t.auth, json={"name": "Pieces"})
    assert r.status_code == 200 and r.json()["name"] == "Pieces"
    r = await client.post("/api/v1/units", headers=t.auth, json={"code": "pc", "name": "Again"})
    assert r.status_code == 409 and r.headers["content-type"].startswith(PJ)
    r = await client.post("/api/v1/units", headers=t.auth, json={"code": "kg", "name": "Kg", "extra": 1})
    assert r.status_code == 422 and r.headers["content-type"].startswith(PJ)
    r = await client.post("/api/v1/units", headers=t.auth, json={"code": "bad code", "name": "x"})
    assert r.status_code == 422
    r = await client.post("/api/v1/units", headers=t.auth, json={"code": "kg", "name": "K\u0000g"})
    assert r.status_code == 422  # PostgreSQL text cannot hold NUL: refused before it gets there
    for url in ("/api/v1/units?q=a%00b", "/api/v1/skus/by-barcode/a%00b", "/api/v1/customers?level=%00"):
        r = await client.get(url, headers=t.auth)
        assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith(PJ), url
    page = (await client.get("/api/v1/units", headers=t.auth)).json()
    assert [u["code"] for u in page["items"]] == ["pc"]

    brand = await post(client, t, "/api/v1/brands", {"code": "acme", "name": "Acme"})
    await post(client, t, "/api/v1/brands", {"code": "zeta", "name": "Zeta Foods"})
    page = (await client.get("/api/v1/brands?q=FOOD", headers=t.auth)).json()
    assert [b["code"] for b in page["items"]] == ["zeta"]
    r = await client.patch(f"/api/v1/brands/{brand['id']}", headers=t.auth, json={"name": 5})
    assert r.status_code == 422
    audit = (await client.get("/api/v1/audit?object_type=unit", headers=t.auth)).json()["items"]
    assert [a["action"] for a in audit] == ["create", "update"]
    assert audit[1]["before"]["name"] == "Piece" and audit[1]["after"]["name"] == "Pieces"


async def test_category_tree_rejects_cycles(client, tenant_a):
    t = tenant_a
    root = await post(client, t, "/api/v1/categories", {"code": "root", "name": "Root"})
    mid = await post(client, t, "/api/v1/categories", {"code": "mid", "name": "Mid", "parent_id": root["id"]})
    leaf = await post(
        client, t, "/api/v1/categories", {"code": "leaf", "name": "Leaf", "parent_id": mid["id"]}
    )
    for target in (leaf["id"], root["id"]):
        r = await client.patch(f"/api/v1/categories/{root['id']}", headers=t.auth, json={"parent_id": target})
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == "parent_id"
    assert (await client.get(f"/api/v1/categories/{root['id']}", headers=t.auth)).json()["parent_id"] is None
    r = await client.post(
        "/api/v1/categories", headers=t.auth, json={"code": "x", "name": "X", "parent_id": str(UUID(int=1))}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "parent_id"
    r = await client.patch(f"/api/v1/categories/{leaf['id']}", headers=t.auth, json={"parent_id": None})
    assert r.status_code == 200 and r.json()["parent_id"] is None
    roots = (await client.get("/api/v1/categories?roots=true", headers=t.auth)).json()["items"]
    assert {c["code"] for c in roots} == {"root", "leaf"}
    kids = (await client.get(f"/api/v1/categories?parent_id={root['id']}", headers=t.auth)).json()["items"]
    assert [c["code"] for c in kids] == ["mid"]


# --- products and SKUs ---------------------------------------------------------------------


async def test_products_conversions_filters_and_paging(app, client, tenant_a):
    t = tenant_a
    w = await basics(client, t)
    product = w["product"]
    assert product["conversions"] == [{"unit_id": w["case"]["id"], "factor": "12.0000"}]
    assert product["version"] == 1 and product["status"] == "active"
    base = {"name": "P", "base_unit_id": w["pc"]["id"]}
    bad = [
        ({"conversions": [{"unit_id": w["pc"]["id"], "factor": "2"}]}, "conversions"),
        ({"conversions": [{"unit_id": w["case"]["id"], "factor": "0"}]}, "conversions[0]"),
        ({"conversions": [{"unit_id": w["case"]["id"], "factor": "-1"}]}, "conversions[0]"),
        ({"conversions": [{"unit_id": w["case"]["id"], "factor": "2"}] * 2}, "conversions[1].unit_id"),
        ({"brand_id": str(UUID(int=7))}, "brand_id"),
        ({"category_id": str(UUID(int=7))}, "category_id"),
        ({"base_unit_id": str(UUID(int=7))}, "base_unit_id"),
        ({"status": "gone"}, "status"),
    ]
    for extra, field in bad:
        r = await client.post("/api/v1/products", headers=t.auth, json={**base, "code": "p-bad", **extra})
        assert r.status_code == 422, (extra, r.text)
        assert r.json()["errors"][0]["field"].startswith(field), r.json()
    other = await post(
        client,
        t,
        "/api/v1/products",
        {**base, "code": "p2", "name": "Plain water", "category_id": w["food"]["id"]},
    )
    await post(client, t, "/api/v1/products", {**base, "code": "p3", "status": "inactive"})
    # the category filter includes subcategories
    got = (await client.get(f"/api/v1/products?category_id={w['food']['id']}", headers=t.auth)).json()[
        "items"
    ]
    assert {p["code"] for p in got} == {"cola", "p2"}
    got = (await client.get(f"/api/v1/products?brand_id={w['brand']['id']}", headers=t.auth)).json()["items"]
    assert [p["code"] for p in got] == ["cola"]
    got = (await client.get("/api/v1/products?q=water", headers=t.auth)).json()["items"]
    assert [p["id"] for p in got] == [other["id"]]
    got = (await client.get("/api/v1/products?status=inactive", headers=t.auth)).json()["items"]
    assert [p["code"] for p in got] == ["p3"]
    seen, cursor = [], None
    while True:
        r = await client.get(
            "/api/v1/products", headers=t.auth, params={"limit": 1, **({"cursor": cursor} if cursor else {})}
        )
        page = r.json()
        seen += [p["code"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["cola", "p2", "p3"]
    assert await count(app, t, OutboxEvent, OutboxEvent.type == "product.created") == 3


async def test_product_and_sku_updates_need_if_match(client, tenant_a):
    t = tenant_a
    w = await basics(client, t)
    url = f"/api/v1/products/{w['product']['id']}"
    r = await client.get(url, headers=t.auth)
    assert r.headers["etag"] == '"1"'
    body = {"name": "Cola Classic", "conversions": [{"unit_id": w["kg"]["id"], "factor": "2.5"}]}
    r = await client.patch(url, headers=t.auth, json=body)
    assert r.status_code == 428 and r.json()["code"] == "if_match_required"
    r = await client.patch(url, headers={**t.auth, "If-Match": '"7"'}, json=body)
    assert r.status_code == 412
    r = await client.patch(url, headers={**t.auth, "If-Match": '"1"'}, json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["version"] == 2 and r.headers["etag"] == '"2"' and out["name"] == "Cola Classic"
    assert out["conversions"] == [{"unit_id": w["kg"]["id"], "factor": "2.5000"}]
    assert out["category_id"] == w["drinks"]["id"]  # untouched fields stay
    r = await client.patch(url, headers={**t.auth, "If-Match": '"1"'}, json={"name": "Lost update"})
    assert r.status_code == 412
    r = await client.patch(url, headers={**t.auth, "If-Match": '"2"'}, json={"base_unit_id": w["kg"]["id"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "base_unit_id"
    audit = (await client.get(f"/api/v1/audit?object_id={w['product']['id']}", headers=t.auth)).json()[
        "items"
    ]
    assert [a["action"] for a in audit] == ["create", "update"]

    url = f"/api/v1/skus/{w['sku']['id']}"
    assert (await client.patch(url, headers=t.auth, json={"list_price": "11"})).status_code == 428
    r = await client.patch(url, headers={**t.auth, "If-Match": '"1"'}, json={"list_price": "11"})
    assert r.status_code == 200 and r.json()["list_price"] == "11.00" and r.json()["version"] == 2
    assert r.json()["barcode"] == "6901234567892"
    r = await client.patch(url, headers={**t.auth, "If-Match": '"1"'}, json={"list_price": "12"})
    assert r.status_code == 412


async def test_sku_validation_barcode_and_cost_visibility(client, tenant_a):
    t = tenant_a
    w = await basics(client, t)
    sku = w["sku"]
    assert sku["cost_price"] == "6.20" and sku["list_price"] == "10.50"
    base = {"product_id": w["product"]["id"], "code": "s2", "name": "S2"}
    for extra in (
        {"list_price": "-1"},
        {"cost_price": "-0.01"},
        {"list_price": "1.005"},
        {"weight_g": "-3"},
        {"list_price": "NaN"},
        {"list_price": [1]},
        {"barcode": "has space"},
        {"product_id": str(UUID(int=3))},
    ):
        r = await client.post("/api/v1/skus", headers=t.auth, json={**base, **extra})
        assert r.status_code == 422, (extra, r.text)
        assert r.headers["content-type"].startswith(PJ)
    r = await client.post("/api/v1/skus", headers=t.auth, json={**base, "barcode": sku["barcode"]})
    assert r.status_code == 409
    r = await client.post("/api/v1/skus", headers=t.auth, json={**base, "code": sku["code"]})
    assert r.status_code == 409
    assert len((await client.get("/api/v1/skus", headers=t.auth)).json()["items"]) == 1

    r = await client.get(f"/api/v1/skus/by-barcode/{sku['barcode']}", headers=t.auth)
    assert r.status_code == 200 and r.json()["id"] == sku["id"]
    assert (await client.get("/api/v1/skus/by-barcode/000", headers=t.auth)).status_code == 404
    got = (await client.get(f"/api/v1/skus?barcode={sku['barcode']}", headers=t.auth)).json()["items"]
    assert [s["id"] for s in got] == [sku["id"]]

    rep = await user_key(client, t, "sales_rep")
    finance = await user_key(client, t, "finance")
    dealer_cust = await post(client, t, "/api/v1/customers", {"code": "d1", "name": "D1", "kind": "dealer"})
    await post(
        client,
        t,
        "/api/v1/roles",
        {"code": "nosy_dealer", "name": "Nosy", "permissions": ["catalog:read", "catalog:cost"]},
    )
    dealer = await user_key(client, t, "nosy_dealer", dealer_cust["id"])
    for headers, cost in ((rep, None), (finance, "6.20"), (dealer, None)):
        assert (await client.get(f"/api/v1/skus/{sku['id']}", headers=headers)).json()["cost_price"] == cost
        assert (await client.get("/api/v1/skus", headers=headers)).json()["items"][0]["cost_price"] == cost
        r = await client.get("/api/v1/products/export", headers=headers)
        assert ("6.20" in r.text) is (cost is not None)
    r = await client.post("/api/v1/skus", headers=rep, json={**base, "code": "s9"})
    assert r.status_code == 403


async def test_price_preview_uses_list_price(client, tenant_a):
    t = tenant_a
    w = await basics(client, t)
    url = f"/api/v1/skus/{w['sku']['id']}/price"
    r = await client.get(url, headers=t.auth, params={"quantity": "3"})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "sku_id": w["sku"]["id"],
        "customer_id": None,
        "quantity": "3",
        "unit_price": "10.50",
        "amount": "31.50",
        "source": "list_price",
        "detail": {},
    }
    r = await client.get(url, headers=t.auth, params={"quantity": "0.333"})
    assert r.json()["amount"] == "3.50"  # 3.4965 rounds half up
    for qty in ("0", "-2", "NaN", "1E+30", "0.00001"):
        r = await client.get(url, headers=t.auth, params={"quantity": qty})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "quantity"
    assert (await client.get(url, headers=t.auth, params={"quantity": "x"})).status_code in (400, 422)
    free = await post(
        client, t, "/api/v1/skus", {"product_id": w["product"]["id"], "code": "free", "name": "F"}
    )
    r = await client.get(f"/api/v1/skus/{free['id']}/price", headers=t.auth)
    assert r.status_code == 422 and r.json()["code"] == "no_price"
    assert (await client.get(f"/api/v1/skus/{UUID(int=5)}/price", headers=t.auth)).status_code == 404

    d1 = await post(client, t, "/api/v1/customers", {"code": "d1", "name": "D1", "kind": "dealer"})
    d11 = await post(
        client,
        t,
        "/api/v1/customers",
        {"code": "d11", "name": "D11", "kind": "dealer", "parent_id": d1["id"]},
    )
    d2 = await post(client, t, "/api/v1/customers", {"code": "d2", "name": "D2", "kind": "dealer"})
    dealer = await user_key(client, t, "dealer", d1["id"])
    r = await client.get(url, headers=dealer)
    assert r.status_code == 200 and r.json()["customer_id"] == d1["id"]
    r = await client.get(url, headers=dealer, params={"customer_id": d11["id"]})
    assert r.status_code == 200 and r.json()["customer_id"] == d11["id"]
    assert (await client.get(url, headers=dealer, params={"customer_id": d2["id"]})).status_code == 404
    r = await client.get(url, headers=t.auth, params={"customer_id": d2["id"]})
    assert r.status_code == 200 and r.json()["customer_id"] == d2["id"]


# --- regions --------------------------------------------------------------------------------


async def test_region_tree_paths_moves_and_ancestors(app, client, tenant_a):
    t = tenant_a
    cn = await post(client, t, "/api/v1/regions", {"code": "cn", "name": "China"})
    jp = await post(client, t, "/api/v1/regions", {"code": "jp", "name": "Japan"})
    zj = await post(client, t, "/api/v1/regions", {"code": "zj", "name": "Zhejiang", "parent_id": cn["id"]})
    hz = await post(client, t, "/api/v1/regions", {"code": "hz", "name": "Hangzhou", "parent_id": zj["id"]})
    assert hz["path"] == f"/{cn['id']}/{zj['id']}/{hz['id']}/"
    r = await client.patch(f"/api/v1/regions/{cn['id']}", headers=t.auth, json={"parent_id": hz["id"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "parent_id"
    r = await client.patch(f"/api/v1/regions/{zj['id']}", headers=t.auth, json={"parent_id": jp["id"]})
    assert r.status_code == 200 and r.json()["path"] == f"/{jp['id']}/{zj['id']}/"
    moved = (await client.get(f"/api/v1/regions/{hz['id']}", headers=t.auth)).json()
    assert moved["path"] == f"/{jp['id']}/{zj['id']}/{hz['id']}/"
    within = (await client.get(f"/api/v1/regions?within_id={jp['id']}", headers=t.auth)).json()["items"]
    assert [x["code"] for x in within] == ["jp", "zj", "hz"]
    with tenant_scope(UUID(t.id)):
        async with app.state.db.transaction() as s:
            got = await catalog.region_ancestors(s, UUID(hz["id"]))
            assert got == [UUID(hz["id"]), UUID(zj["id"]), UUID(jp["id"])]
            assert await catalog.region_ancestors(s, UUID(int=9)) == []
    rep = await user_key(client, t, "sales_rep")
    assert (await client.get("/api/v1/regions", headers=rep)).status_code == 200
    assert (
        await client.post("/api/v1/regions", headers=rep, json={"code": "x", "name": "X"})
    ).status_code == 403


# --- isolation ------------------------------------------------------------------------------


async def test_other_tenants_ids_are_404_and_lists_hold_no_foreign_rows(client, tenant_a, tenant_b):
    w = await basics(client, tenant_a)
    region = await post(client, tenant_a, "/api/v1/regions", {"code": "cn", "name": "China"})
    b = tenant_b.auth
    for path in (
        f"/api/v1/units/{w['pc']['id']}",
        f"/api/v1/brands/{w['brand']['id']}",
        f"/api/v1/categories/{w['food']['id']}",
        f"/api/v1/products/{w['product']['id']}",
        f"/api/v1/skus/{w['sku']['id']}",
        f"/api/v1/skus/{w['sku']['id']}/price",
        f"/api/v1/skus/by-barcode/{w['sku']['barcode']}",
        f"/api/v1/regions/{region['id']}",
    ):
        assert (await client.get(path, headers=b)).status_code == 404, path
    for path in (
        f"/api/v1/units/{w['pc']['id']}",
        f"/api/v1/categories/{w['food']['id']}",
        f"/api/v1/regions/{region['id']}",
    ):
        assert (await client.patch(path, headers=b, json={"name": "stolen"})).status_code == 404
    r = await client.patch(
        f"/api/v1/products/{w['product']['id']}", headers={**b, "If-Match": '"1"'}, json={"name": "x"}
    )
    assert r.status_code == 404
    for path in (
        "/api/v1/units",
        "/api/v1/brands",
        "/api/v1/categories",
        "/api/v1/products",
        "/api/v1/skus",
        "/api/v1/regions",
    ):
        assert (await client.get(path, headers=b)).json()["items"] == [], path
    assert (await client.get("/api/v1/products/export", headers=b)).text.strip().count("\n") == 0
    # references to another tenant's rows are unknown references
    r = await client.post(
        "/api/v1/products", headers=b, json={"code": "x", "name": "X", "base_unit_id": w["pc"]["id"]}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "base_unit_id"
    r = await client.post(
        "/api/v1/skus", headers=b, json={"product_id": w["product"]["id"], "code": "x", "name": "X"}
    )
    assert r.status_code == 422
    # codes are unique per tenant, not globally
    await post(client, tenant_b, "/api/v1/units", {"code": "pc", "name": "Piece"})


# --- idempotent upserts ---------------------------------------------------------------------


async def test_upserts_are_idempotent(app, client):
    t = await make_tenant(client)
    tid = UUID(t.id)
    spec = ProductSpec(
        code="tea",
        name="Tea",
        base_unit_code="pc",
        brand_code="acme",
        category_code="leaf",
        conversions=[ConversionSpec(unit_code="box", factor=Decimal("20"))],
        skus=[SkuSpec(code="tea-1", name="Tea 1", list_price=Decimal("5"), barcode="111")],
    )
    db = app.state.db
    for attempt in range(2):
        with tenant_scope(tid):
            async with db.transaction() as s:
                results = [
                    await catalog.upsert_unit(s, UnitIn(code="pc", name="Piece")),
                    await catalog.upsert_unit(s, UnitIn(code="box", name="Box")),
                    await catalog.upsert_brand(s, BrandIn(code="acme", name="Acme")),
                    await catalog.upsert_category(s, CategorySpec(code="plants", name="Plants")),
                    await catalog.upsert_category(
                        s, CategorySpec(code="leaf", name="Leaf", parent_code="plants")
                    ),
                    await catalog.upsert_region(s, RegionSpec(code="cn", name="China")),
                    await catalog.upsert_region(s, RegionSpec(code="zj", name="Zhejiang", parent_code="cn")),
                    await catalog.upsert_product(s, spec),
                ]
        assert [changed for _, changed in results] == [attempt == 0] * len(results)
    audit_rows = await count(app, t, AuditEntry)
    events = await count(app, t, OutboxEvent)
    with tenant_scope(tid):
        async with db.transaction() as s:
            _, changed = await catalog.upsert_product(
                s,
                ProductSpec(
                    code="tea",
                    name="Tea",
                    skus=[SkuSpec(code="tea-1", name="Tea 1", list_price=Decimal("5.5"))],
                ),
            )
            assert changed
            _, changed = await catalog.upsert_region(
                s, RegionSpec(code="zj", name="Zhejiang", parent_code=None)
            )
            assert changed
    assert await count(app, t, AuditEntry) == audit_rows + 2
    assert await count(app, t, OutboxEvent) == events + 2
    sku = (await client.get("/api/v1/skus?barcode=111", headers=t.auth)).json()["items"][0]
    assert sku["list_price"] == "5.50"
    product = (await client.get(f"/api/v1/products/{sku['product_id']}", headers=t.auth)).json()
    assert product["version"] == 1 and len(product["conversions"]) == 1  # the SKU changed, not the product
    zj = (await client.get("/api/v1/regions?q=zhe", headers=t.auth)).json()["items"][0]
    assert zj["parent_id"] is None and zj["path"] == f"/{zj['id']}/"


async def test_product_pages_carry_every_conversion(client, tenant_a):
    t = tenant_a
    units = [
        await post(client, t, "/api/v1/units", {"code": c, "name": c}) for c in ("btl", "case", "pallet")
    ]
    made = []
    for i, conversions in enumerate(([], [("case", "6")], [("case", "12"), ("pallet", "480")])):
        body = {
            "code": f"conv{i}",
            "name": f"Conv {i}",
            "base_unit_id": units[0]["id"],
            "conversions": [
                {"unit_id": next(u["id"] for u in units if u["code"] == code), "factor": factor}
                for code, factor in conversions
            ],
        }
        made.append(await post(client, t, "/api/v1/products", body))
    for limit in (1, 2, 50):
        seen, cursor = [], None
        while True:
            params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/api/v1/products", headers=t.auth, params=params)).json()
            assert len(page["items"]) <= limit
            seen += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert [p["id"] for p in seen] == [p["id"] for p in made]
        assert [p["conversions"] for p in seen] == [p["conversions"] for p in made]
        assert [len(p["conversions"]) for p in seen] == [0, 1, 2]
