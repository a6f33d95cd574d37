"""CSV import and export of products (with SKUs) and customers: all or nothing, every bad
row reported with its line number, codes defined in the same file, and round trips."""

from __future__ import annotations

from typing import Any

from tests.fixtures import TenantHandle
from tests.test_catalog import post, user_key

CSV = {"content-type": "text/csv"}

PRODUCTS = (
    "product_code,product_name,category_code,brand_code,unit_code,"
    "sku_code,sku_name,barcode,list_price,cost_price,weight_g\n"
    "cola,Cola,drinks,acme,pc,cola-330,Cola 330ml,6901,3.50,2.10,350\n"
    "cola,Cola,,,,cola-500,Cola 500ml,6902,4.80,,520\n"
    "water,Water,drinks,,pc,water-1,Water 1L,6903,2,1,1000\n"
    "soap,Soap,,acme,pc,,,,,,\n"
)


async def master(client: Any, t: TenantHandle) -> None:
    await post(client, t, "/api/v1/units", {"code": "pc", "name": "Piece"})
    await post(client, t, "/api/v1/brands", {"code": "acme", "name": "Acme"})
    await post(client, t, "/api/v1/categories", {"code": "drinks", "name": "Drinks"})
    await post(client, t, "/api/v1/regions", {"code": "zj", "name": "Zhejiang"})
    await post(client, t, "/api/v1/sales-orgs", {"code": "east", "name": "East"})


async def upload(client: Any, t: TenantHandle | dict[str, str], path: str, text: str | bytes) -> Any:
    headers = t.auth if isinstance(t, TenantHandle) else t
    return await client.post(path, headers={**headers, **CSV}, content=text)


async def test_product_import_export_round_trip(client, tenant_a, tenant_b):
    for t in (tenant_a, tenant_b):
        await master(client, t)
    r = await upload(client, tenant_a, "/api/v1/products/import", PRODUCTS)
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 4, "updated": 0, "unchanged": 0}
    skus = (await client.get("/api/v1/skus?q=cola", headers=tenant_a.auth)).json()["items"]
    assert [(s["code"], s["list_price"], s["cost_price"]) for s in skus] == [
        ("cola-330", "3.50", "2.10"),
        ("cola-500", "4.80", None),
    ]
    assert skus[0]["product_id"] == skus[1]["product_id"]
    soap = (await client.get("/api/v1/products?q=soap", headers=tenant_a.auth)).json()["items"][0]
    assert soap["category_id"] is None and soap["brand_id"] is not None

    exported = (await client.get("/api/v1/products/export", headers=tenant_a.auth)).text
    lines = exported.strip().splitlines()
    assert lines[0] == PRODUCTS.splitlines()[0] and len(lines) == 5
    assert lines[1].startswith("cola,Cola,drinks,acme,pc,cola-330,Cola 330ml,6901,3.50,2.10,350")
    # re-importing the export changes nothing
    r = await upload(client, tenant_a, "/api/v1/products/import", exported)
    assert r.json() == {"created": 0, "updated": 0, "unchanged": 4}
    # another tenant with the same master codes ends up with the same CSV
    assert (await upload(client, tenant_b, "/api/v1/products/import", exported)).status_code == 200
    assert (await client.get("/api/v1/products/export", headers=tenant_b.auth)).text == exported
    # an update through CSV bumps versions and keeps what the file leaves empty
    changed = PRODUCTS.replace("3.50,2.10", "3.90,")
    r = await upload(client, tenant_a, "/api/v1/products/import", changed)
    assert r.json() == {"created": 0, "updated": 1, "unchanged": 3}
    sku = (await client.get("/api/v1/skus?barcode=6901", headers=tenant_a.auth)).json()["items"][0]
    assert (sku["list_price"], sku["cost_price"], sku["version"]) == ("3.90", "2.10", 2)
    rep = await user_key(client, tenant_a, "sales_rep")
    assert (await upload(client, rep, "/api/v1/products/import", PRODUCTS)).status_code == 403


async def test_product_import_is_all_or_nothing_with_line_numbers(client, tenant_a):
    t = tenant_a
    await master(client, t)
    await post(
        client,
        t,
        "/api/v1/products",
        {"code": "old", "name": "Old", "base_unit_id": await unit_id(client, t)},
    )
    bad = PRODUCTS + "\n".join(
        [
            "tea,Tea,drinks,acme,pc,tea-1,Tea,7001,-1,,",  # line 6: negative price
            "tea2,Tea 2,nope,acme,pc,tea-2,Tea 2,7002,1,,",  # line 7: unknown category
            "tea3,Tea 3,drinks,acme,pc,tea-3,Tea 3,6901,1,,",  # line 8: barcode of line 2
            "tea4,Tea 4,drinks,acme,pc,tea-4,Tea 4,7004,abc,,",  # line 9: not a number
            "tea5,Tea 5,drinks,acme,box,tea-5,Tea 5,7005,1,,",  # line 10: unknown unit
            "tea6,Tea 6,drinks,acme,,tea-6,Tea 6,7006,1,,",  # line 11: a new product needs a unit
            "cola,Cola,drinks,acme,pc,cola-330,Again,,1,,",  # line 12: SKU already on line 2
        ]
    )
    r = await upload(client, t, "/api/v1/products/import", bad)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == "csv_invalid", body
    # values that do not parse are reported first, every one of them
    assert [(e["line"], e["field"]) for e in body["errors"]] == [(9, "list_price")], body
    r = await upload(client, t, "/api/v1/products/import", bad.replace("abc", "1"))
    body = r.json()
    assert r.status_code == 422, body
    got = {(e["line"], e["field"]) for e in body["errors"]}
    assert got == {
        (6, "list_price"),
        (7, "category_code"),
        (8, "barcode"),
        (10, "unit_code"),
        (11, "unit_code"),
        (12, "sku_code"),
    }, body
    products = (await client.get("/api/v1/products", headers=t.auth)).json()["items"]
    assert [p["code"] for p in products] == ["old"]
    assert (await client.get("/api/v1/skus", headers=t.auth)).json()["items"] == []


async def unit_id(client: Any, t: TenantHandle) -> str:
    return (await client.get("/api/v1/units", headers=t.auth)).json()["items"][0]["id"]


async def test_bad_csv_files(app, client, tenant_a):
    t = tenant_a
    r = await upload(client, t, "/api/v1/products/import", "product_code,colour\nx,red\n")
    assert r.status_code == 422 and r.json()["code"] == "csv_columns"
    assert [(e["line"], e["field"]) for e in r.json()["errors"]] == [(1, "product_name")]
    r = await upload(client, t, "/api/v1/products/import", "product_code,product_name,colour\nx,X,red\n")
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["colour"]
    r = await upload(client, t, "/api/v1/customers/import", "code,name\nx,X\n")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "kind"
    r = await upload(
        client, t, "/api/v1/customers/import", b"code,name,kind\n" + "é,X,dealer\n".encode("latin-1")
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body"
    r = await upload(
        client, t, "/api/v1/customers/import", b"code,name,kind\n" + b"x" * app.state.settings.max_body_bytes
    )
    assert r.status_code == 413
    r = await upload(client, t, "/api/v1/customers/import", "code,name,kind\nx,X,dealer,extra\n")
    assert r.status_code == 422 and r.json()["errors"][0]["line"] == 2
    assert (await client.get("/api/v1/customers", headers=t.auth)).json()["items"] == []


CUSTOMERS = """code,name,kind,class,level,region_code,channel,parent_code,sales_org_code
t111,Store 111,terminal,retail,,zj,ka,d11,
d11,Dealer 11,dealer,wholesale,B,zj,,d1,east
d1,Dealer 1,dealer,wholesale,A,zj,,,east
d2,Dealer 2,dealer,,,,,,
"""


async def test_customer_import_resolves_parents_in_the_same_file(client, tenant_a, tenant_b):
    for t in (tenant_a, tenant_b):
        await master(client, t)
    r = await upload(client, tenant_a, "/api/v1/customers/import", CUSTOMERS)
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 4, "updated": 0, "unchanged": 0}
    items = {
        c["code"]: c for c in (await client.get("/api/v1/customers", headers=tenant_a.auth)).json()["items"]
    }
    d1, d11, t111 = items["d1"], items["d11"], items["t111"]
    assert t111["path"] == f"/{d1['id']}/{d11['id']}/{t111['id']}/"
    assert (t111["customer_class"], t111["channel"], d11["level"]) == ("retail", "ka", "B")
    assert d1["sales_org_id"] is not None and d1["region_id"] == t111["region_id"] is not None

    exported = (await client.get("/api/v1/customers/export", headers=tenant_a.auth)).text
    assert exported.splitlines()[0] == CUSTOMERS.splitlines()[0]
    assert sorted(exported.strip().splitlines()[1:]) == sorted(CUSTOMERS.strip().splitlines()[1:])
    r = await upload(client, tenant_a, "/api/v1/customers/import", exported)
    assert r.json() == {"created": 0, "updated": 0, "unchanged": 4}
    assert (await upload(client, tenant_b, "/api/v1/customers/import", exported)).status_code == 200
    assert (await client.get("/api/v1/customers/export", headers=tenant_b.auth)).text.count("\n") == 5
    # moving d11 under d2 through CSV moves its terminal too
    r = await upload(client, tenant_a, "/api/v1/customers/import", CUSTOMERS.replace(",d1,east", ",d2,east"))
    assert r.json() == {"created": 0, "updated": 1, "unchanged": 3}
    t111 = (await client.get(f"/api/v1/customers/{t111['id']}", headers=tenant_a.auth)).json()
    assert t111["path"] == f"/{items['d2']['id']}/{d11['id']}/{t111['id']}/"


async def test_customer_import_reports_every_bad_row(client, tenant_a):
    t = tenant_a
    await master(client, t)
    bad = CUSTOMERS + "\n".join(
        [
            "x1,X1,dealer,,,nowhere,,,",  # line 6: unknown region
            "x2,X2,dealer,,,,,t111,",  # line 7: a terminal cannot be a parent
            "x3,X3,dealer,,,,,x4,",  # line 8: cycle x3 -> x4 -> x3
            "x4,X4,dealer,,,,,x3,",  # line 9
            "x5,X5,dealer,,,,,x1,",  # line 10: its parent's row is bad
            "d2,Again,dealer,,,,,,",  # line 11: duplicate code
            "x6,X6,dealer,,,,,ghost,",  # line 12: unknown parent
        ]
    )
    r = await upload(client, t, "/api/v1/customers/import", bad)
    assert r.status_code == 422, r.text
    got = {(e["line"], e["field"]) for e in r.json()["errors"]}
    assert got == {
        (6, "region_code"),
        (7, "parent_code"),
        (8, "parent_code"),
        (9, "parent_code"),
        (10, "parent_code"),
        (11, "code"),
        (12, "parent_code"),
    }, r.json()
    r = await upload(client, t, "/api/v1/customers/import", CUSTOMERS + "x7,X7,shop,,,,,,\n")
    assert r.status_code == 422 and r.json()["errors"] == [
        {"line": 6, "field": "kind", "message": r.json()["errors"][0]["message"]}
    ]
    assert (await client.get("/api/v1/customers", headers=t.auth)).json()["items"] == []


async def test_dealer_imports_only_inside_its_subtree(client, tenant_a):
    t = tenant_a
    await master(client, t)
    assert (await upload(client, t, "/api/v1/customers/import", CUSTOMERS)).status_code == 200
    d1 = (await client.get("/api/v1/customers?q=d1", headers=t.auth)).json()["items"][0]
    await post(
        client,
        t,
        "/api/v1/roles",
        {"code": "dealer_admin", "name": "DA", "permissions": ["customers:read", "customers:write"]},
    )
    dealer = await user_key(client, t, "dealer_admin", d1["id"])
    head = CUSTOMERS.splitlines()[0]
    r = await upload(client, dealer, "/api/v1/customers/import", f"{head}\nd12,Dealer 12,dealer,,,,,d1,\n")
    assert r.status_code == 200 and r.json()["created"] == 1
    r = await upload(
        client,
        dealer,
        "/api/v1/customers/import",
        f"{head}\nd13,D13,dealer,,,,,d2,\nd2,Mine,dealer,,,,,d1,\n",
    )
    assert r.status_code == 422
    assert {(e["line"], e["field"]) for e in r.json()["errors"]} == {(2, "parent_code"), (3, "code")}
    r = await upload(client, dealer, "/api/v1/customers/import", f"{head}\nd14,D14,dealer,,,,,,\n")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "parent_code"
    exported = (await client.get("/api/v1/customers/export", headers=dealer)).text
    assert sorted(line.split(",")[0] for line in exported.strip().splitlines()[1:]) == [
        "d1",
        "d11",
        "d12",
        "t111",
    ]
    r = await upload(client, dealer, "/api/v1/customers/import", exported)
    assert r.json() == {"created": 0, "updated": 0, "unchanged": 4}
    r = await upload(
        client, dealer, "/api/v1/customers/import", exported.replace("wholesale,A", "wholesale,VIP")
    )
    assert r.status_code == 422 and r.json()["errors"][0]["line"] == 2, r.text
