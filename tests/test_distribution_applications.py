"""Join applications (申请加盟) through the real app: who may file them, the pending → approved |
rejected lifecycle with its 409s, an approval that creates the dealer in the tree with a working
dealer key in one transaction, rejections and failed approvals that change nothing else, and
dealer visibility."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import func, select

from omnicloud.channels.models import Customer
from omnicloud.core.tenancy import tenant_scope
from omnicloud.identity.models import ApiKey, User
from tests.fixtures import TenantHandle
from tests.world_distribution import Brand

APPLICATION = {
    "company_name": "Shanghai Newco Trading",
    "contact_name": "Li Lei",
    "phone": "+86 21 5555 0101",
    "requested_level": "L2",
    "requested_class": "A",
    "channel": "retail",
}


@pytest.fixture
async def brand(client: httpx.AsyncClient, tenant_a: TenantHandle) -> Brand:
    b = await Brand(client, tenant_a).basics()
    await b.customer("D1", region_id=b.ids["EAST"])
    await b.customer("D1A", parent="D1")
    await b.customer("D2")
    b.ids["d1_key"] = await b.user_key("D1", "dealer", b.ids["D1"])
    b.ids["d2_key"] = await b.user_key("D2", "dealer", b.ids["D2"])
    return b


async def _counts(app: Any, tenant: TenantHandle) -> tuple[int, int, int]:
    with tenant_scope(UUID(tenant.id)):
        async with app.state.db.transaction() as s:
            customers = await s.scalar(select(func.count(Customer.id)))
            users = await s.scalar(select(func.count(User.id)))
            keys = await s.scalar(select(func.count(ApiKey.id)))
    return customers or 0, users or 0, keys or 0


async def test_a_dealer_applies_under_itself_and_the_brand_records_applications(brand: Brand) -> None:
    d1 = brand.ids["d1_key"]
    mine = await brand.post("/api/v1/join-applications", APPLICATION, key=d1)
    assert mine["state"] == "pending"
    assert mine["requested_parent_id"] == brand.ids["D1"] and mine["filed_by_customer_id"] == brand.ids["D1"]
    below = await brand.post(
        "/api/v1/join-applications", {**APPLICATION, "requested_parent_id": brand.ids["D1A"]}, key=d1
    )
    assert below["requested_parent_id"] == brand.ids["D1A"]
    staff = await brand.post("/api/v1/join-applications", {**APPLICATION, "region_id": brand.ids["SH"]})
    assert staff["requested_parent_id"] is None and staff["filed_by_customer_id"] is None


async def test_who_may_file_where(brand: Brand) -> None:
    d1 = brand.ids["d1_key"]
    for parent in (brand.ids["D2"], None, str(UUID(int=7))):
        r = await brand.post(
            "/api/v1/join-applications", {**APPLICATION, "requested_parent_id": parent}, key=d1, status=422
        )
        assert r["errors"][0]["field"] == "requested_parent_id"
    terminal = (
        await brand.post(
            "/api/v1/customers",
            {"code": "T1", "name": "T1", "kind": "terminal", "parent_id": brand.ids["D1"]},
        )
    )["id"]
    r = await brand.post(
        "/api/v1/join-applications", {**APPLICATION, "requested_parent_id": terminal}, status=422
    )
    assert r["errors"][0]["field"] == "requested_parent_id"
    r = await brand.post(
        "/api/v1/join-applications", {**APPLICATION, "region_id": str(UUID(int=9))}, status=422
    )
    assert r["errors"][0]["field"] == "region_id"
    # Staff without distribution:write read applications but do not record them; a sales rep
    # (no distribution:read) reaches neither.
    auditor = await brand.user_key("AUD", "auditor")
    r = await brand.post("/api/v1/join-applications", APPLICATION, key=auditor, status=403)
    assert r["code"] == "missing_permission"
    rep = await brand.user_key("REP", "sales_rep")
    await brand.post("/api/v1/join-applications", APPLICATION, key=rep, status=403)
    await brand.get("/api/v1/join-applications", key=rep, status=403)


async def test_approval_creates_the_dealer_in_the_tree_with_a_working_key(app: Any, brand: Brand) -> None:
    application = await brand.post("/api/v1/join-applications", APPLICATION, key=brand.ids["d1_key"])
    before = await _counts(app, brand.t)
    body = {"code": "NEWCO", "dealer_user": {"email": "boss@newco.example", "name": "Boss"}}
    headers = {"Idempotency-Key": "approve-newco"}
    out = await brand.post(
        f"/api/v1/join-applications/{application['id']}/approve", body, status=200, headers=headers
    )
    customer = out["customer"]
    assert customer["code"] == "NEWCO" and customer["kind"] == "dealer"
    assert customer["name"] == APPLICATION["company_name"]
    assert customer["parent_id"] == brand.ids["D1"]
    assert customer["path"].startswith(f"/{brand.ids['D1']}/")
    assert (customer["level"], customer["customer_class"], customer["channel"]) == ("L2", "A", "retail")
    assert out["application"]["state"] == "approved"
    assert out["application"]["customer_id"] == customer["id"]
    assert out["application"]["user_id"] == out["user"]["id"]
    assert out["user"]["role"] == "dealer" and out["user"]["customer_id"] == customer["id"]
    assert await _counts(app, brand.t) == (before[0] + 1, before[1] + 1, before[2] + 1)

    # The new dealer's key works, and sees its own subtree only.
    key = out["api_key"]["secret"]
    me = await brand.get(f"/api/v1/customers/{customer['id']}", key=key)
    assert me["id"] == customer["id"]
    await brand.get(f"/api/v1/customers/{brand.ids['D1']}", key=key, status=404)
    # The parent dealer sees the new sub-dealer.
    await brand.get(f"/api/v1/customers/{customer['id']}", key=brand.ids["d1_key"])

    # A replay with the same Idempotency-Key answers the first response and creates nothing.
    again = await brand.post(
        f"/api/v1/join-applications/{application['id']}/approve", body, status=200, headers=headers
    )
    assert again == out
    assert await _counts(app, brand.t) == (before[0] + 1, before[1] + 1, before[2] + 1)
    shown = await brand.get(f"/api/v1/join-applications/{application['id']}")
    assert shown["state"] == "approved" and shown["decided_by"]


async def test_illegal_transitions_are_409(brand: Brand) -> None:
    approved = await brand.post("/api/v1/join-applications", APPLICATION)
    rejected = await brand.post("/api/v1/join-applications", APPLICATION)
    base = "/api/v1/join-applications"
    await brand.post(f"{base}/{approved['id']}/approve", {"code": "A1"}, status=200)
    await brand.post(f"{base}/{rejected['id']}/reject", {"reason": "no warehouse"}, status=200)
    for app_id in (approved["id"], rejected["id"]):
        r = await brand.post(f"{base}/{app_id}/approve", {"code": "A2"}, status=409)
        assert r["code"] == "illegal_transition"
        r = await brand.post(f"{base}/{app_id}/reject", {"reason": "again"}, status=409)
        assert r["code"] == "illegal_transition"
    await brand.post(f"{base}/{UUID(int=1)}/approve", {"code": "A3"}, status=404)


async def test_a_rejection_records_the_reason_and_changes_nothing_else(app: Any, brand: Brand) -> None:
    application = await brand.post("/api/v1/join-applications", APPLICATION, key=brand.ids["d1_key"])
    before = await _counts(app, brand.t)
    out = await brand.post(
        f"/api/v1/join-applications/{application['id']}/reject", {"reason": "territory taken"}, status=200
    )
    assert out["state"] == "rejected" and out["reject_reason"] == "territory taken"
    assert out["customer_id"] is None and out["user_id"] is None
    assert await _counts(app, brand.t) == before
    url = f"/api/v1/join-applications/{application['id']}/reject"
    await brand.post(url, {"reason": ""}, status=422)  # a reason is required
    r = await brand.post(url, {"reason": "again"}, status=409)
    assert r["code"] == "illegal_transition"
    shown = await brand.get(f"/api/v1/join-applications/{application['id']}")
    assert shown["reject_reason"] == "territory taken"


async def test_a_failed_approval_leaves_nothing_behind(app: Any, brand: Brand) -> None:
    application = await brand.post("/api/v1/join-applications", APPLICATION)
    url = f"/api/v1/join-applications/{application['id']}/approve"
    before = await _counts(app, brand.t)
    # The code is taken: nothing is created and the application stays pending.
    await brand.post(url, {"code": "D2"}, status=409)
    # The dealer user's email is taken: the customer created before it is rolled back too.
    email = f"d1@{brand.t.slug}.example"
    await brand.post(url, {"code": "FRESH", "dealer_user": {"email": email, "name": "X"}}, status=409)
    await brand.post(url, {"code": "FRESH2", "sales_org_id": str(UUID(int=3))}, status=422)
    assert await _counts(app, brand.t) == before
    assert (await brand.get(f"/api/v1/join-applications/{application['id']}"))["state"] == "pending"
    r = await brand.get("/api/v1/customers", params={"q": "FRESH"})
    assert r["items"] == []
    out = await brand.post(url, {"code": "FRESH"}, status=200)
    assert out["customer"]["parent_id"] is None and out["user"] is None and out["api_key"] is None


async def test_concurrent_approvals_decide_once(app: Any, brand: Brand) -> None:
    application = await brand.post("/api/v1/join-applications", APPLICATION)
    url = f"/api/v1/join-applications/{application['id']}/approve"
    before = await _counts(app, brand.t)
    results = await asyncio.gather(
        *(brand.c.post(url, json={"code": f"RACE{i}"}, headers=brand.t.auth) for i in range(6))
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 409, 409, 409, 409, 409], [r.text for r in results]
    assert await _counts(app, brand.t) == (before[0] + 1, before[1], before[2])


async def test_dealers_see_their_own_applications_and_subtree_only(brand: Brand) -> None:
    d1, d2 = brand.ids["d1_key"], brand.ids["d2_key"]
    mine = await brand.post("/api/v1/join-applications", APPLICATION, key=d1)
    theirs = await brand.post("/api/v1/join-applications", APPLICATION, key=d2)
    for_d1 = await brand.post(
        "/api/v1/join-applications", {**APPLICATION, "requested_parent_id": brand.ids["D1A"]}
    )
    top = await brand.post("/api/v1/join-applications", APPLICATION)
    listed = {a["id"] for a in (await brand.get("/api/v1/join-applications", key=d1))["items"]}
    assert listed == {mine["id"], for_d1["id"]}
    await brand.get(f"/api/v1/join-applications/{theirs['id']}", key=d1, status=404)
    await brand.get(f"/api/v1/join-applications/{top['id']}", key=d1, status=404)
    await brand.get(f"/api/v1/join-applications/{for_d1['id']}", key=d1)
    # Dealers have no distribution:write: they cannot decide, not even their own applications.
    await brand.post(f"/api/v1/join-applications/{mine['id']}/approve", {"code": "X"}, key=d1, status=403)
    await brand.post(f"/api/v1/join-applications/{mine['id']}/reject", {"reason": "x"}, key=d1, status=403)
    # The brand sees everything, and filters by state and requested parent.
    await brand.post(f"/api/v1/join-applications/{top['id']}/reject", {"reason": "no"}, status=200)
    pending = await brand.get("/api/v1/join-applications", params={"state": "pending"})
    assert {a["id"] for a in pending["items"]} == {mine["id"], theirs["id"], for_d1["id"]}
    under = await brand.get("/api/v1/join-applications", params={"requested_parent_id": brand.ids["D1A"]})
    assert [a["id"] for a in under["items"]] == [for_d1["id"]]
    page = await brand.get("/api/v1/join-applications", params={"limit": 2})
    rest = await brand.get("/api/v1/join-applications", params={"limit": 2, "cursor": page["next_cursor"]})
    assert len(page["items"]) == 2 and len(rest["items"]) == 2 and rest["next_cursor"] is None


async def test_decisions_are_audited_and_emitted(client: httpx.AsyncClient, brand: Brand) -> None:
    approved = await brand.post("/api/v1/join-applications", APPLICATION)
    rejected = await brand.post("/api/v1/join-applications", APPLICATION)
    await brand.post(f"/api/v1/join-applications/{approved['id']}/approve", {"code": "EVT"}, status=200)
    await brand.post(f"/api/v1/join-applications/{rejected['id']}/reject", {"reason": "no"}, status=200)
    for event_type, application in (
        ("join_application.created", approved),
        ("join_application.approved", approved),
        ("join_application.rejected", rejected),
    ):
        r = await client.get("/api/v1/events", params={"type": event_type}, headers=brand.t.auth)
        assert [e["payload"]["id"] for e in r.json()["items"]] == (
            [approved["id"], rejected["id"]] if event_type.endswith("created") else [application["id"]]
        )
    r = await client.get("/api/v1/audit", headers=brand.t.auth, params={"object_id": approved["id"]})
    entries = {e["action"]: e for e in r.json()["items"]}
    assert set(entries) == {"create", "approve"}
    assert entries["approve"]["before"]["state"] == "pending"
    assert entries["approve"]["after"]["state"] == "approved"
    r = await client.get("/api/v1/audit", headers=brand.t.auth, params={"object_id": rejected["id"]})
    assert {e["action"] for e in r.json()["items"]} == {"create", "reject"}
