"""Channels over REST: sales orgs, the customer tree (dealers and terminals), dealer scope,
isolation, and the idempotent upserts."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from omnicloud.catalog import service as catalog
from omnicloud.catalog.schemas import RegionSpec
from omnicloud.channels import service as channels
from omnicloud.channels.schemas import CustomerSpec, SalesOrgSpec
from omnicloud.core.models import AuditEntry, OutboxEvent
from omnicloud.core.tenancy import tenant_scope
from tests.fixtures import TenantHandle, make_tenant
from tests.test_catalog import count, post, user_key

PJ = "application/problem+json"


async def tree(client: Any, t: TenantHandle) -> dict[str, dict[str, Any]]:
    """d1 > d11 > t111 (terminal), and a separate d2 > t21."""
    c: dict[str, dict[str, Any]] = {}

    async def add(code: str, kind: str, parent: str | None = None) -> None:
        body = {"code": code, "name": code.upper(), "kind": kind}
        if parent:
            body["parent_id"] = c[parent]["id"]
        c[code] = await post(client, t, "/api/v1/customers", body)

    await add("d1", "dealer")
    await add("d11", "dealer", "d1")
    await add("t111", "terminal", "d11")
    await add("d2", "dealer")
    await add("t21", "terminal", "d2")
    return c


def codes(page: dict[str, Any]) -> list[str]:
    return [x["code"] for x in page["items"]]


async def test_sales_org_tree_rejects_cycles(client, tenant_a):
    t = tenant_a
    north = await post(client, t, "/api/v1/sales-orgs", {"code": "north", "name": "North"})
    east = await post(
        client, t, "/api/v1/sales-orgs", {"code": "ne", "name": "North-East", "parent_id": north["id"]}
    )
    r = await client.patch(
        f"/api/v1/sales-orgs/{north['id']}", headers=t.auth, json={"parent_id": east["id"]}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "parent_id"
    r = await client.patch(
        f"/api/v1/sales-orgs/{east['id']}", headers=t.auth, json={"parent_id": None, "name": "East"}
    )
    assert r.status_code == 200 and r.json() == {**east, "parent_id": None, "name": "East"}
    kids = await client.get(f"/api/v1/sales-orgs?parent_id={north['id']}", headers=t.auth)
    assert kids.json()["items"] == []
    r = await client.post(
        "/api/v1/sales-orgs", headers=t.auth, json={"code": "x", "name": "X", "parent_id": str(UUID(int=1))}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "parent_id"
    assert (
        await client.post("/api/v1/sales-orgs", headers=t.auth, json={"code": "north", "name": "N"})
    ).status_code == 409


async def test_customer_tree_paths_moves_and_rules(app, client, tenant_a):
    t = tenant_a
    region = await post(client, t, "/api/v1/regions", {"code": "zj", "name": "Zhejiang"})
    org = await post(client, t, "/api/v1/sales-orgs", {"code": "east", "name": "East"})
    c = await tree(client, t)
    d1, d11, t111, d2 = c["d1"], c["d11"], c["t111"], c["d2"]
    assert t111["path"] == f"/{d1['id']}/{d11['id']}/{t111['id']}/"
    assert t111["kind"] == "terminal" and t111["parent_id"] == d11["id"] and t111["version"] == 1

    # a terminal is nobody's parent
    r = await client.post(
        "/api/v1/customers",
        headers=t.auth,
        json={"code": "x", "name": "X", "kind": "terminal", "parent_id": t111["id"]},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "parent_id"
    r = await client.patch(f"/api/v1/customers/{d2['id']}", headers=t.auth, json={"parent_id": t111["id"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "parent_id"
    # no cycles, and nothing changed
    for target in (d11["id"], t111["id"], d1["id"]):
        r = await client.patch(f"/api/v1/customers/{d1['id']}", headers=t.auth, json={"parent_id": target})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "parent_id"
    assert (await client.get(f"/api/v1/customers/{d1['id']}", headers=t.auth)).json() == d1
    # a dealer with children cannot become a terminal
    r = await client.patch(f"/api/v1/customers/{d11['id']}", headers=t.auth, json={"kind": "terminal"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "kind"

    # moving d11 under d2 moves its subtree
    body = {
        "parent_id": d2["id"],
        "region_id": region["id"],
        "sales_org_id": org["id"],
        "level": "A",
        "channel": "ka",
    }
    r = await client.patch(f"/api/v1/customers/{d11['id']}", headers=t.auth, json=body)
    assert r.status_code == 200, r.text
    moved = r.json()
    assert (
        moved["path"] == f"/{d2['id']}/{d11['id']}/"
        and moved["version"] == 2
        and moved["region_id"] == region["id"]
    )
    t111 = (await client.get(f"/api/v1/customers/{t111['id']}", headers=t.auth)).json()
    assert t111["path"] == f"/{d2['id']}/{d11['id']}/{t111['id']}/"
    assert codes((await client.get(f"/api/v1/customers/{d2['id']}/children", headers=t.auth)).json()) == [
        "d11",
        "t21",
    ]
    sub = codes((await client.get(f"/api/v1/customers/{d2['id']}/subtree", headers=t.auth)).json())
    assert sorted(sub) == ["d11", "d2", "t111", "t21"]
    assert codes((await client.get(f"/api/v1/customers/{d1['id']}/subtree", headers=t.auth)).json()) == ["d1"]
    # filters
    assert codes((await client.get("/api/v1/customers?kind=terminal", headers=t.auth)).json()) == [
        "t111",
        "t21",
    ]
    assert codes(
        (await client.get(f"/api/v1/customers?region_id={region['id']}", headers=t.auth)).json()
    ) == ["d11"]
    assert codes((await client.get("/api/v1/customers?level=A&q=d1", headers=t.auth)).json()) == ["d11"]
    # If-Match is optional for customers, but a stale one is refused
    r = await client.patch(
        f"/api/v1/customers/{d11['id']}", headers={**t.auth, "If-Match": '"1"'}, json={"name": "Late"}
    )
    assert r.status_code == 412
    # bad input changes nothing
    for bad in (
        {"kind": "shop"},
        {"region_id": str(UUID(int=3))},
        {"sales_org_id": "nope"},
        {"colour": "red"},
        {"name": ""},
    ):
        r = await client.patch(f"/api/v1/customers/{d11['id']}", headers=t.auth, json=bad)
        assert r.status_code == 422 and r.headers["content-type"].startswith(PJ), (bad, r.text)
    assert (await client.get(f"/api/v1/customers/{d11['id']}", headers=t.auth)).json() == moved
    r = await client.post(
        "/api/v1/customers", headers=t.auth, json={"code": "d1", "name": "Dup", "kind": "dealer"}
    )
    assert r.status_code == 409
    events = await count(app, t, OutboxEvent, OutboxEvent.type == "customer.updated")
    audits = await count(app, t, AuditEntry, AuditEntry.object_id == d11["id"])
    assert (events, audits) == (1, 2)


async def test_dealer_sees_only_its_subtree(client, tenant_a):
    t = tenant_a
    c = await tree(client, t)
    dealer = await user_key(client, t, "dealer", c["d1"]["id"])
    assert codes((await client.get("/api/v1/customers", headers=dealer)).json()) == ["d1", "d11", "t111"]
    assert codes((await client.get("/api/v1/customers?kind=terminal", headers=dealer)).json()) == ["t111"]
    for code in ("d1", "d11", "t111"):
        assert (await client.get(f"/api/v1/customers/{c[code]['id']}", headers=dealer)).status_code == 200
    for code in ("d2", "t21"):
        cid = c[code]["id"]
        for path in (
            f"/api/v1/customers/{cid}",
            f"/api/v1/customers/{cid}/children",
            f"/api/v1/customers/{cid}/subtree",
        ):
            r = await client.get(path, headers=dealer)
            assert r.status_code == 404 and r.headers["content-type"].startswith(PJ), path
    assert (await client.get(f"/api/v1/customers/{UUID(int=4)}", headers=dealer)).status_code == 404
    # the plain dealer role may not write customers at all
    r = await client.post(
        "/api/v1/customers",
        headers=dealer,
        json={"code": "n", "name": "N", "kind": "dealer", "parent_id": c["d1"]["id"]},
    )
    assert r.status_code == 403
    r = await client.get("/api/v1/customers/export", headers=dealer)
    assert [line.split(",")[0] for line in r.text.strip().splitlines()[1:]] == ["d1", "d11", "t111"]
    assert r.text.splitlines()[1].split(",")[7] == ""  # the parent above the dealer stays hidden


async def test_dealer_with_customers_write_stays_inside_its_subtree(client, tenant_a):
    t = tenant_a
    c = await tree(client, t)
    await post(
        client,
        t,
        "/api/v1/roles",
        {
            "code": "dealer_admin",
            "name": "Dealer admin",
            "permissions": ["customers:read", "customers:write"],
        },
    )
    dealer = await user_key(client, t, "dealer_admin", c["d1"]["id"])
    body = {"code": "d12", "name": "Sub dealer", "kind": "dealer", "parent_id": c["d1"]["id"]}
    r = await client.post("/api/v1/customers", headers=dealer, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["path"] == f"{c['d1']['path']}{r.json()['id']}/"
    for parent in (c["d2"]["id"], None):
        r = await client.post(
            "/api/v1/customers", headers=dealer, json={**body, "code": "bad", "parent_id": parent}
        )
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "parent_id"
    r = await client.post(
        "/api/v1/customers", headers=dealer, json={"code": "root", "name": "R", "kind": "dealer"}
    )
    assert r.status_code == 422
    r = await client.patch(f"/api/v1/customers/{c['d11']['id']}", headers=dealer, json={"level": "B"})
    assert r.status_code == 200 and r.json()["level"] == "B"
    r = await client.patch(
        f"/api/v1/customers/{c['d11']['id']}", headers=dealer, json={"parent_id": c["d2"]["id"]}
    )
    assert r.status_code == 422
    assert (
        await client.patch(f"/api/v1/customers/{c['d2']['id']}", headers=dealer, json={"level": "B"})
    ).status_code == 404
    r = await client.patch(f"/api/v1/customers/{c['d1']['id']}", headers=dealer, json={"level": "VIP"})
    assert r.status_code == 403
    assert (await client.get(f"/api/v1/customers/{c['d1']['id']}", headers=t.auth)).json()["level"] is None


async def test_other_tenants_customers_are_404(client, tenant_a, tenant_b):
    c = await tree(client, tenant_a)
    org = await post(client, tenant_a, "/api/v1/sales-orgs", {"code": "east", "name": "East"})
    b = tenant_b.auth
    cid = c["d1"]["id"]
    for path in (
        f"/api/v1/customers/{cid}",
        f"/api/v1/customers/{cid}/children",
        f"/api/v1/customers/{cid}/subtree",
        f"/api/v1/sales-orgs/{org['id']}",
    ):
        assert (await client.get(path, headers=b)).status_code == 404, path
    assert (await client.patch(f"/api/v1/customers/{cid}", headers=b, json={"name": "x"})).status_code == 404
    assert (
        await client.patch(f"/api/v1/sales-orgs/{org['id']}", headers=b, json={"name": "x"})
    ).status_code == 404
    assert (await client.get("/api/v1/customers", headers=b)).json()["items"] == []
    assert (await client.get("/api/v1/sales-orgs", headers=b)).json()["items"] == []
    r = await client.post(
        "/api/v1/customers", headers=b, json={"code": "x", "name": "X", "kind": "dealer", "parent_id": cid}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "parent_id"


async def test_customer_upserts_are_idempotent(app, client):
    t = await make_tenant(client)
    db = app.state.db
    specs = [
        CustomerSpec(code="d1", name="D1", kind="dealer", region_code="zj", sales_org_code="east", level="A"),
        CustomerSpec(code="t1", name="T1", kind="terminal", parent_code="d1", channel="ka"),
    ]
    for attempt in range(2):
        with tenant_scope(UUID(t.id)):
            async with db.transaction() as s:
                results = [
                    await catalog.upsert_region(s, RegionSpec(code="zj", name="Zhejiang")),
                    await channels.upsert_sales_org(s, SalesOrgSpec(code="east", name="East")),
                    await channels.upsert_sales_org(
                        s, SalesOrgSpec(code="ne", name="NE", parent_code="east")
                    ),
                    *[await channels.upsert_customer(s, spec) for spec in specs],
                ]
        assert [changed for _, changed in results] == [attempt == 0] * len(results)
    events = await count(app, t, OutboxEvent)
    with tenant_scope(UUID(t.id)):
        async with db.transaction() as s:
            out, changed = await channels.upsert_customer(
                s, CustomerSpec(code="t1", name="T1", kind="terminal", parent_code=None)
            )
            assert changed and out.parent_id is None and out.path == f"/{out.id}/" and out.channel == "ka"
    assert await count(app, t, OutboxEvent) == events + 1
