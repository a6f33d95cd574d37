"""Promotions, coupon templates and coupon codes through the real app, and the service functions
the quote service calls (promotion_book, promotions_for, coupons_for)."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any, get_args
from uuid import UUID

import pytest
from sqlalchemy import event, func, select

from omnicloud.core import revisions
from omnicloud.core.errors import Conflict, Unprocessable
from omnicloud.core.models import AuditEntry, OutboxEvent
from omnicloud.core.tenancy import tenant_scope
from omnicloud.policies import promotions
from omnicloud.policies.promos import service
from omnicloud.policies.promos.models import CouponCode, Promotion
from omnicloud.policies.promos.schemas import PromotionType
from tests.fixtures import TenantHandle
from tests.test_catalog import count, post, user_key

API = "/api/v1"
PJ = "application/problem+json"
NOW = datetime(2031, 6, 1, tzinfo=UTC)
CODE = re.compile(r"^[2-9A-HJKMNP-Z]{4}(-[2-9A-HJKMNP-Z]{4}){3}$")


async def catalog(client: Any, t: TenantHandle) -> dict[str, str]:
    """A brand, a category, two SKUs, a region tree east > shanghai and two dealers."""
    ids: dict[str, str] = {}
    unit = await post(client, t, f"{API}/units", {"code": "pc", "name": "Piece"})
    ids["brand"] = (await post(client, t, f"{API}/brands", {"code": "acme", "name": "Acme"}))["id"]
    ids["category"] = (await post(client, t, f"{API}/categories", {"code": "tea", "name": "Tea"}))["id"]
    product = await post(
        client,
        t,
        f"{API}/products",
        {
            "code": "P",
            "name": "P",
            "base_unit_id": unit["id"],
            "brand_id": ids["brand"],
            "category_id": ids["category"],
        },
    )
    for code in ("A", "B"):
        sku = await post(
            client,
            t,
            f"{API}/skus",
            {"product_id": product["id"], "code": code, "name": code, "list_price": "100.00"},
        )
        ids[f"sku_{code}"] = sku["id"]
    ids["east"] = (await post(client, t, f"{API}/regions", {"code": "east", "name": "East"}))["id"]
    ids["shanghai"] = (
        await post(client, t, f"{API}/regions", {"code": "sh", "name": "Shanghai", "parent_id": ids["east"]})
    )["id"]
    for code in ("d1", "d2"):
        customer = await post(
            client,
            t,
            f"{API}/customers",
            {"code": code, "name": code, "kind": "dealer", "level": "A", "region_id": ids["shanghai"]},
        )
        ids[code] = customer["id"]
    return ids


def reduction(code: str = "M500", **extra: Any) -> dict[str, Any]:
    return {
        "code": code,
        "name": "满500减60",
        "type": "full_reduction",
        "rule": {"tiers": [{"threshold": "500", "amount": "60"}]},
        **extra,
    }


def template(code: str = "C20", **extra: Any) -> dict[str, Any]:
    return {"code": code, "name": "满400减20", "threshold": "400", "amount": "20", **extra}


def fields(r: Any) -> list[str]:
    assert r.status_code == 422 and r.headers["content-type"].startswith(PJ), (r.status_code, r.text)
    return [e["field"] for e in r.json()["errors"]]


async def issue(client: Any, t: TenantHandle, template_id: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    issued = await post(client, t, f"{API}/coupon-templates/{template_id}/issue", body)
    return issued["codes"]  # type: ignore[no-any-return]


async def stamp(app: Any, t: TenantHandle) -> revisions.Revision:
    """The tenant's current promotions revision."""
    with tenant_scope(UUID(t.id)):
        async with app.state.db.transaction() as s:
            return (await revisions.current(s, ("promotions",)))["promotions"]


def version(obj: dict[str, Any]) -> dict[str, str]:
    return {"If-Match": f'"{obj["version"]}"'}


# --- promotions over REST -------------------------------------------------------------------


def test_request_types_are_the_engine_types() -> None:
    assert set(get_args(PromotionType)) == set(promotions.PROMOTION_TYPES)


async def test_promotion_crud_with_versions_audit_and_revision(client, app, tenant_a):
    t = tenant_a
    ids = await catalog(client, t)
    stamps = [await stamp(app, t)]
    body = reduction(
        products={"sku_ids": [ids["sku_A"]], "brand_ids": [ids["brand"]]},
        audience={"region_ids": [ids["east"]], "levels": ["A"]},
        priority=5,
        mutex_group="order",
        mutex_strategy="best_for_customer",
        valid_from="2031-01-01T00:00:00Z",
        valid_to="2032-01-01T00:00:00+08:00",
        budget_amount="10000",
        budget_count=100,
        per_customer_limit=1,
    )
    created = await post(client, t, f"{API}/promotions", body)
    stamps.append(await stamp(app, t))
    assert created["version"] == 1 and created["status"] == "active"
    assert created["rule"] == {
        "tiers": [{"threshold": "500.00", "amount": "60.00"}],
        "cumulative": False,
        "max_amount": None,
    }
    assert created["products"] == {"sku_ids": [ids["sku_A"]], "category_ids": [], "brand_ids": [ids["brand"]]}
    assert created["audience"]["region_ids"] == [ids["east"]] and created["audience"]["levels"] == ["A"]
    assert created["valid_to"] == "2031-12-31T16:00:00Z"
    assert (created["used_amount"], created["used_count"]) == ("0.00", 0)
    assert (created["remaining_amount"], created["remaining_count"]) == ("10000.00", 100)
    url = f"{API}/promotions/{created['id']}"
    assert (await client.get(url, headers=t.auth)).json() == created

    other = await post(
        client,
        t,
        f"{API}/promotions",
        reduction("HALF", type="nth_item", rule={"n": 2, "off_ratio": "0.5"}, status="draft"),
    )

    async def listed(**params: Any) -> list[str]:
        r = await client.get(f"{API}/promotions", headers=t.auth, params=params)
        assert r.status_code == 200, r.text
        return [p["code"] for p in r.json()["items"]]

    assert await listed() == ["M500", "HALF"]
    assert await listed(type="nth_item") == ["HALF"]
    assert await listed(status="active") == ["M500"]
    assert await listed(active_on="2031-06-01T00:00:00Z") == ["M500"]
    assert await listed(active_on="2032-06-01T00:00:00Z") == []
    assert await listed(q="half") == ["HALF"]
    r = await client.get(f"{API}/promotions", headers=t.auth, params={"active_on": "2031-06-01T00:00:00"})
    assert fields(r) == ["active_on"]

    # If-Match: required, then checked
    patch = {"rule": {"tiers": [{"threshold": "300", "amount": "30"}, {"threshold": "500", "amount": "60"}]}}
    r = await client.patch(url, headers=t.auth, json=patch)
    assert r.status_code == 428 and r.json()["code"] == "if_match_required"
    r = await client.patch(url, headers={**t.auth, "If-Match": '"7"'}, json=patch)
    assert r.status_code == 412 and r.json()["code"] == "stale_version"
    r = await client.patch(url, headers={**t.auth, **version(created)}, json=patch)
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["version"] == 2 and [x["threshold"] for x in updated["rule"]["tiers"]] == [
        "300.00",
        "500.00",
    ]
    stamps.append(await stamp(app, t))
    same = await client.patch(url, headers={**t.auth, **version(updated)}, json=patch)
    assert same.status_code == 200 and same.json()["version"] == 2  # nothing changed, nothing written
    assert await stamp(app, t) == stamps[-1]
    # changing the type re-checks the (kept) rule against it
    r = await client.patch(url, headers={**t.auth, **version(updated)}, json={"type": "nth_item"})
    assert fields(r) == ["rule.tiers"]
    r = await client.patch(
        url, headers={**t.auth, **version(updated)}, json={"audience": {}, "valid_to": None}
    )
    assert r.status_code == 200 and r.json()["audience"]["region_ids"] == [] and r.json()["valid_to"] is None

    # delete: If-Match as well
    other_url = f"{API}/promotions/{other['id']}"
    assert (await client.delete(other_url, headers=t.auth)).status_code == 428
    assert (await client.delete(other_url, headers={**t.auth, "If-Match": '"2"'})).status_code == 412
    r = await client.delete(other_url, headers={**t.auth, **version(other)})
    assert r.status_code == 204
    assert (await client.get(other_url, headers=t.auth)).status_code == 404

    assert await count(app, t, AuditEntry, AuditEntry.object_type == "promotion") == 5
    kinds = {
        e: await count(app, t, OutboxEvent, OutboxEvent.type == f"promotion.{e}")
        for e in ("created", "updated", "deleted")
    }
    assert kinds == {"created": 2, "updated": 2, "deleted": 1}
    stamps.append(await stamp(app, t))
    assert stamps[0] is None and len(set(stamps)) == len(stamps)  # each step's writes moved it


async def test_a_used_promotion_is_ended_not_deleted(client, app, tenant_a):
    t = tenant_a
    created = await post(client, t, f"{API}/promotions", reduction())
    with tenant_scope(UUID(t.id)):
        async with app.state.db.transaction() as s:  # what order submission will do
            row = await s.get(Promotion, (UUID(t.id), UUID(created["id"])))
            assert row is not None
            row.used_count, row.used_amount = 1, D(60)
    url = f"{API}/promotions/{created['id']}"
    r = await client.delete(url, headers={**t.auth, **version(created)})
    assert r.status_code == 409 and r.json()["code"] == "promotion_in_use"
    r = await client.patch(url, headers={**t.auth, **version(created)}, json={"status": "ended"})
    assert r.status_code == 200 and r.json()["status"] == "ended"
    assert (r.json()["used_count"], r.json()["used_amount"]) == (1, "60.00")


EVERY_TYPE = [
    ("straight_discount", {"off_ratio": "0.1"}),
    ("straight_discount", {"amount_off": "5.50"}),
    ("fixed_price", {"price": "88"}),
    ("nth_item", {"n": 2, "off_ratio": "0.5"}),
    (
        "bundle",
        {"components": [{"sku_id": "{sku_A}"}, {"sku_id": "{sku_B}", "quantity": 2}], "set_price": "120"},
    ),
    (
        "full_reduction",
        {"tiers": [{"threshold": "100", "amount": "10"}], "cumulative": True, "max_amount": "50"},
    ),
    (
        "full_discount",
        {"tiers": [{"threshold": "200", "off_ratio": "0.05"}, {"threshold": "500", "off_ratio": "0.1"}]},
    ),
    ("buy_x_get_y", {"buy_quantity": 3, "get_quantity": 1, "gift_sku_id": "{sku_B}"}),
    ("buy_x_get_y", {"buy_quantity": 2, "get_quantity": 1}),
    ("add_on", {"threshold": "300", "addon_price": "9.90", "max_quantity": 2}),
]


def _numbers(value: Any) -> Any:
    """Decimal strings as numbers, so "500" and "500.00" compare equal."""
    if isinstance(value, str) and re.fullmatch(r"[0-9.]+", value):
        return D(value)
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items() if k != "quantity" or v != 1}
    return value


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids) if value.startswith("{") else value
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


async def test_every_promotion_type_is_accepted_and_compiles(client, app, tenant_a):
    t = tenant_a
    ids = await catalog(client, t)
    for i, (kind, rule) in enumerate(EVERY_TYPE):
        body = {"code": f"P{i}", "name": kind, "type": kind, "rule": _fill(rule, ids)}
        created = await post(client, t, f"{API}/promotions", body)
        for key, value in _fill(rule, ids).items():
            assert _numbers(created["rule"][key]) == _numbers(value), (kind, key)
    book = await _book(app, t)
    assert [type(e.promotion).__struct_config__.tag for e in book.entries] == [k for k, _ in EVERY_TYPE]
    bundle = book.entries[4].promotion
    assert isinstance(bundle, promotions.Bundle)
    assert [(c.sku_id, c.quantity) for c in bundle.components] == [(ids["sku_A"], 1), (ids["sku_B"], 2)]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rule": {}}, "rule.tiers"),
        ({"rule": {"tiers": "many"}}, "rule.tiers"),
        ({"rule": {"tiers": [{"threshold": "500"}]}}, "rule.tiers[0].amount"),
        ({"rule": {"tiers": [{"threshold": "500", "amount": "x"}]}}, "rule.tiers[0].amount"),
        ({"rule": {"tiers": [{"threshold": "500", "amount": "1", "extra": 1}]}}, "rule.tiers[0].extra"),
        (
            {"rule": {"tiers": [{"threshold": "500", "amount": "60"}, {"threshold": "400", "amount": "70"}]}},
            "rule.tiers[1].threshold",
        ),
        ({"rule": {"tiers": [{"threshold": "500", "amount": "60.001"}]}}, "rule.tiers[0].amount"),
        ({"rule": {"tiers": [{"threshold": "500", "amount": "-1"}]}}, "rule.tiers[0].amount"),
        ({"rule": {"tiers": [{"threshold": "Infinity", "amount": "1"}]}}, "rule.tiers[0].threshold"),
        ({"rule": {"tiers": [{"threshold": "500", "amount": "60"}], "bogus": 1}}, "rule.bogus"),
        ({"rule": {"tiers": [{"threshold": "500", "amount": "60"}], "priority": 1}}, "rule.priority"),
        ({"type": "nth_item", "rule": {"n": "two", "off_ratio": "0.5"}}, "rule.n"),
        ({"type": "nth_item", "rule": {"n": 2, "off_ratio": "1.5"}}, "rule.off_ratio"),
        ({"type": "nth_item", "rule": {"n": 2, "off_ratio": "NaN"}}, "rule.off_ratio"),
        ({"type": "straight_discount", "rule": {}}, "rule.off_ratio"),
        (
            {"type": "bundle", "rule": {"components": [{"sku_id": "nope"}], "set_price": "1"}},
            "rule.components[0].sku_id",
        ),
        (
            {"type": "bundle", "rule": {"components": [{"sku_id": str(UUID(int=1))}], "set_price": "1"}},
            "rule.components[0].sku_id",
        ),
        (
            {
                "type": "buy_x_get_y",
                "rule": {"buy_quantity": 1, "get_quantity": 1, "gift_sku_id": str(UUID(int=2))},
            },
            "rule.gift_sku_id",
        ),
        ({"products": {"sku_ids": [str(UUID(int=3))]}}, "products.sku_ids[0]"),
        ({"products": {"category_ids": [str(UUID(int=3))]}}, "products.category_ids[0]"),
        ({"products": {"brand_ids": [str(UUID(int=3))]}}, "products.brand_ids[0]"),
        ({"audience": {"customer_ids": ["{d1}", str(UUID(int=4))]}}, "audience.customer_ids[1]"),
        ({"audience": {"region_ids": [str(UUID(int=5))]}}, "audience.region_ids[0]"),
        ({"valid_from": "2031-02-01T00:00:00Z", "valid_to": "2031-01-01T00:00:00Z"}, "valid_to"),
        ({"valid_from": "0001-01-01T00:00:00+05:00"}, "valid_from"),
        ({"budget_amount": "-1"}, "budget_amount"),
        ({"budget_amount": "1.005"}, "budget_amount"),
        ({"budget_amount": "1e20"}, "budget_amount"),
    ],
)
async def test_a_bad_promotion_is_a_422_naming_the_field(client, app, tenant_a, change, field):
    t = tenant_a
    ids = await catalog(client, t)
    r = await client.post(f"{API}/promotions", headers=t.auth, json=_fill(reduction(**change), ids))
    assert fields(r) == [field]
    assert await count(app, t, Promotion) == 0


async def test_promotion_bodies_refuse_what_the_schema_refuses(client, app, tenant_a):
    t = tenant_a
    for change in (
        {"type": "coupon"},
        {"valid_from": "2031-01-01T00:00:00"},  # no timezone
        {"budget_count": -1},
        {"per_customer_limit": 0},
        {"mutex_strategy": "random"},
        {"surprise": True},
    ):
        r = await client.post(f"{API}/promotions", headers=t.auth, json=reduction(**change))
        assert r.status_code == 422 and r.headers["content-type"].startswith(PJ), (change, r.text)
    await post(client, t, f"{API}/promotions", reduction())
    r = await client.post(f"{API}/promotions", headers=t.auth, json=reduction())
    assert r.status_code == 409 and r.json()["code"] == "duplicate"
    assert await count(app, t, Promotion) == 1


async def test_create_is_idempotent(client, app, tenant_a):
    t = tenant_a
    headers = {**t.auth, "Idempotency-Key": "promo-1"}
    first = await client.post(f"{API}/promotions", headers=headers, json=reduction())
    again = await client.post(f"{API}/promotions", headers=headers, json=reduction())
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await count(app, t, Promotion) == 1


async def test_permissions(client, tenant_a):
    t = tenant_a
    ids = await catalog(client, t)
    created = await post(client, t, f"{API}/promotions", reduction())
    tpl = await post(client, t, f"{API}/coupon-templates", template())
    codes = await issue(client, t, tpl["id"], {"customer_ids": [ids["d1"]]})
    dealer = await user_key(client, t, "dealer", ids["d1"])
    for path in (
        "/promotions",
        f"/promotions/{created['id']}",
        "/coupon-templates",
        f"/coupon-templates/{tpl['id']}",
        "/coupon-codes",
        f"/coupon-codes/{codes[0]['id']}",
    ):
        r = await client.get(f"{API}{path}", headers=dealer)
        assert r.status_code == 403 and r.json()["code"] == "missing_permission", path
    r = await client.post(f"{API}/promotions", headers=dealer, json=reduction("X"))
    assert r.status_code == 403
    r = await client.post(f"{API}/coupon-templates/{tpl['id']}/issue", headers=dealer, json={})
    assert r.status_code == 403
    rep = await user_key(client, t, "sales_rep")
    assert (await client.get(f"{API}/promotions", headers=rep)).status_code == 200
    assert (await client.post(f"{API}/promotions", headers=rep, json=reduction("Y"))).status_code == 403
    manager = await user_key(client, t, "sales_manager")
    assert (await client.post(f"{API}/promotions", headers=manager, json=reduction("Z"))).status_code == 201


# --- coupon templates and codes -------------------------------------------------------------


async def test_coupon_template_crud(client, app, tenant_a):
    t = tenant_a
    ids = await catalog(client, t)
    tpl = await post(
        client,
        t,
        f"{API}/coupon-templates",
        template(products={"category_ids": [ids["category"]]}, total_quantity=3, per_customer_limit=2),
    )
    assert (tpl["issued_count"], tpl["remaining_quantity"], tpl["version"]) == (0, 3, 1)
    assert (tpl["threshold"], tpl["amount"]) == ("400.00", "20.00")
    url = f"{API}/coupon-templates/{tpl['id']}"
    assert (await client.get(url, headers=t.auth)).json() == tpl
    r = await client.get(f"{API}/coupon-templates", headers=t.auth, params={"q": "c2", "status": "active"})
    assert [x["id"] for x in r.json()["items"]] == [tpl["id"]]
    for bad, field in (
        ({"amount": "0"}, "amount"),
        ({"threshold": "-1"}, "threshold"),
        ({"amount": "1.001"}, "amount"),
        ({"valid_to": "9999-12-31T23:00:00-05:00"}, "valid_to"),
        ({"products": {"sku_ids": [str(UUID(int=9))]}}, "products.sku_ids[0]"),
        ({"valid_from": "2031-03-01T00:00:00Z", "valid_to": "2031-03-01T00:00:00Z"}, "valid_to"),
    ):
        r = await client.post(f"{API}/coupon-templates", headers=t.auth, json=template("X", **bad))
        assert fields(r) == [field]
    assert (await client.patch(url, headers=t.auth, json={"name": "x"})).status_code == 428
    assert (
        await client.patch(url, headers={**t.auth, "If-Match": '"3"'}, json={"name": "x"})
    ).status_code == 412
    await issue(client, t, tpl["id"], {"quantity": 2})
    r = await client.patch(url, headers={**t.auth, **version(tpl)}, json={"total_quantity": 1})
    assert fields(r) == ["total_quantity"]
    r = await client.patch(
        url, headers={**t.auth, **version(tpl)}, json={"total_quantity": 2, "amount": "25"}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["remaining_quantity"], r.json()["amount"]) == (2, 0, "25.00")
    assert await count(app, t, AuditEntry, AuditEntry.object_type == "coupon_template") == 2


async def test_issuing_codes(client, app, tenant_a):
    t = tenant_a
    ids = await catalog(client, t)
    tpl = await post(client, t, f"{API}/coupon-templates", template(total_quantity=10, per_customer_limit=2))
    url = f"{API}/coupon-templates/{tpl['id']}/issue"
    headers = {**t.auth, "Idempotency-Key": "issue-1"}
    body = {"customer_ids": [ids["d1"], ids["d2"]], "quantity": 2}
    before = await stamp(app, t)
    first = await client.post(url, headers=headers, json=body)
    assert first.status_code == 201, first.text
    assert await stamp(app, t) != before
    replay = await client.post(url, headers=headers, json=body)
    assert replay.json() == first.json() and replay.headers.get("Idempotent-Replayed") == "true"
    issued = first.json()
    assert issued["issued_count"] == 4
    owners = Counter(c["customer_id"] for c in issued["codes"])
    assert owners == {ids["d1"]: 2, ids["d2"]: 2}
    assert all(CODE.match(c["code"]) and c["state"] == "issued" for c in issued["codes"])
    # per-customer limit: d1 holds 2 already
    r = await client.post(url, headers=t.auth, json={"customer_ids": [ids["d2"], ids["d1"]]})
    assert r.status_code == 409 and r.json()["code"] == "per_customer_limit"
    assert r.json()["errors"][0]["field"] == "customer_ids[0]"
    r = await client.post(url, headers=t.auth, json={"customer_ids": [ids["d1"], str(UUID(int=7))]})
    assert fields(r) == ["customer_ids[1]"]
    unassigned = await issue(client, t, tpl["id"], {"quantity": 6})
    assert {c["customer_id"] for c in unassigned} == {None}
    r = await client.post(url, headers=t.auth, json={})
    assert r.status_code == 409 and r.json()["code"] == "coupons_exhausted"
    for bad in ({"quantity": 0}, {"quantity": 1001}, {"customer_ids": [ids["d1"]] * 501, "quantity": 2}):
        assert fields(await client.post(url, headers=t.auth, json=bad)) == ["quantity"]
    assert await count(app, t, CouponCode) == 10
    page = await client.get(f"{API}/coupon-codes", headers=t.auth, params={"customer_id": ids["d1"]})
    assert len(page.json()["items"]) == 2
    page = await client.get(
        f"{API}/coupon-codes",
        headers=t.auth,
        params={"template_id": tpl["id"], "state": "issued", "limit": 3},
    )
    assert len(page.json()["items"]) == 3 and page.json()["next_cursor"]
    one = unassigned[0]
    assert (await client.get(f"{API}/coupon-codes/{one['id']}", headers=t.auth)).json() == one

    paused = await post(client, t, f"{API}/coupon-templates", template("P", status="paused"))
    r = await client.post(f"{API}/coupon-templates/{paused['id']}/issue", headers=t.auth, json={})
    assert r.status_code == 409 and r.json()["code"] == "template_not_active"
    expired = await post(client, t, f"{API}/coupon-templates", template("E", valid_to="2020-01-01T00:00:00Z"))
    r = await client.post(f"{API}/coupon-templates/{expired['id']}/issue", headers=t.auth, json={})
    assert r.status_code == 409 and r.json()["code"] == "template_expired"


async def test_issuing_respects_total_quantity_under_concurrency(client, app, tenant_a):
    t = tenant_a
    tpl = await post(client, t, f"{API}/coupon-templates", template(total_quantity=10))
    url = f"{API}/coupon-templates/{tpl['id']}/issue"
    responses = await asyncio.gather(
        *[client.post(url, headers=t.auth, json={"quantity": 2}) for _ in range(8)]
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 5, 409: 3}, [r.text for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"coupons_exhausted"}
    assert sorted(r.json()["issued_count"] for r in responses if r.status_code == 201) == [2, 4, 6, 8, 10]
    assert (await client.get(f"{API}/coupon-templates/{tpl['id']}", headers=t.auth)).json()[
        "issued_count"
    ] == 10
    assert await count(app, t, CouponCode) == 10


async def test_per_customer_limit_holds_under_concurrency(client, app, tenant_a):
    t = tenant_a
    ids = await catalog(client, t)
    tpl = await post(client, t, f"{API}/coupon-templates", template(per_customer_limit=1))
    url = f"{API}/coupon-templates/{tpl['id']}/issue"
    body = {"customer_ids": [ids["d1"]]}
    responses = await asyncio.gather(*[client.post(url, headers=t.auth, json=body) for _ in range(6)])
    assert Counter(r.status_code for r in responses) == {201: 1, 409: 5}, [r.text for r in responses]
    assert await count(app, t, CouponCode, CouponCode.customer_id == UUID(ids["d1"])) == 1
    stored = (await client.get(f"{API}/coupon-templates/{tpl['id']}", headers=t.auth)).json()
    assert stored["issued_count"] == 1  # the refused issues rolled back their count


async def test_codes_are_unique_and_unguessable(client, tenant_a):
    t = tenant_a
    tpl = await post(client, t, f"{API}/coupon-templates", template())
    codes = [c["code"] for c in await issue(client, t, tpl["id"], {"quantity": 1000})]
    codes += [c["code"] for c in await issue(client, t, tpl["id"], {"quantity": 1000})]
    assert len(set(codes)) == 2000 and all(CODE.match(c) for c in codes)
    assert len(service.CODE_ALPHABET) ** service.CODE_LENGTH > 2**78
    # Every symbol is about equally likely in every position: nothing sequential or derived.
    symbols = Counter(ch for c in codes for ch in c.replace("-", ""))
    assert set(symbols) == set(service.CODE_ALPHABET)
    expected = 2000 * service.CODE_LENGTH / len(service.CODE_ALPHABET)
    assert all(0.75 * expected < n < 1.25 * expected for n in symbols.values()), symbols
    firsts = Counter(c[0] for c in codes)
    assert max(firsts.values()) < 3 * 2000 / len(service.CODE_ALPHABET)


async def test_code_state_machine(client, app, tenant_a):
    t = tenant_a
    ids = await catalog(client, t)
    tpl = await post(client, t, f"{API}/coupon-templates", template())
    a, b, c = await issue(client, t, tpl["id"], {"quantity": 3})
    void = f"{API}/coupon-codes/{a['id']}/void"
    assert (await client.post(void, headers=t.auth)).status_code == 428
    assert (await client.post(void, headers={**t.auth, "If-Match": '"2"'})).status_code == 412
    r = await client.post(void, headers={**t.auth, **version(a)})
    assert r.status_code == 200 and (r.json()["state"], r.json()["version"]) == ("void", 2)
    r = await client.post(void, headers={**t.auth, "If-Match": '"2"'})
    assert r.status_code == 409 and r.json()["code"] == "illegal_transition"

    async def move(code: dict[str, Any], to: Any, **kw: Any) -> Any:
        with tenant_scope(UUID(t.id)):
            async with app.state.db.transaction() as s:
                return await service.transition_coupon_code(s, UUID(code["id"]), to, **kw)

    reserved = await move(b, "reserved", customer_id=UUID(ids["d1"]))
    assert (reserved.state, str(reserved.customer_id)) == ("reserved", ids["d1"])
    with pytest.raises(Conflict):
        await move(b, "void")  # reserved by an order: release it first
    assert (await move(b, "redeemed")).redeemed_at is not None
    for to in ("issued", "reserved", "void"):
        with pytest.raises(Conflict):
            await move(b, to)
    await move(c, "reserved", customer_id=UUID(ids["d2"]))
    released = await move(c, "issued")
    assert (released.state, released.version, str(released.customer_id)) == ("issued", 3, ids["d2"])
    with pytest.raises(Conflict):  # issued to d2 now
        await move(c, "reserved", customer_id=UUID(ids["d1"]))
    r = await client.post(f"{API}/coupon-codes/{b['id']}/void", headers={**t.auth, "If-Match": '"3"'})
    assert r.status_code == 409
    states = {
        x["id"]: x["state"] for x in (await client.get(f"{API}/coupon-codes", headers=t.auth)).json()["items"]
    }
    assert states == {a["id"]: "void", b["id"]: "redeemed", c["id"]: "issued"}


async def test_concurrent_voids_void_once(client, tenant_a):
    t = tenant_a
    tpl = await post(client, t, f"{API}/coupon-templates", template())
    (code,) = await issue(client, t, tpl["id"], {})
    url = f"{API}/coupon-codes/{code['id']}/void"
    responses = await asyncio.gather(
        *[client.post(url, headers={**t.auth, **version(code)}) for _ in range(6)]
    )
    statuses = Counter(r.status_code for r in responses)
    # one wins; the others saw version 2 (412) or lost the conditional update (409)
    assert statuses[200] == 1 and set(statuses) <= {200, 409, 412}, [r.text for r in responses]


# --- what the quote service reads -----------------------------------------------------------


async def _book(app: Any, t: TenantHandle) -> service.PromotionBook:
    revision = await stamp(app, t)
    with tenant_scope(UUID(t.id)):
        async with app.state.db.transaction() as s:
            return await service.promotion_book(s, revision)


def _buyer(ids: dict[str, str], **overrides: Any) -> dict[str, Any]:
    buyer = {
        "customer_id": ids["d1"],
        "customer_class": "ka",
        "level": "A",
        "region_path": (ids["shanghai"], ids["east"]),
        "channel": "b2b",
        "store_id": None,
        **overrides,
    }
    return buyer


async def test_promotions_for_filters_by_audience_validity_status_and_budget(client, app, tenant_a):
    t = tenant_a
    ids = await catalog(client, t)
    made = {}
    for code, extra in {
        "ALL": {},
        "D2": {"audience": {"customer_ids": [ids["d2"]]}},
        "EAST": {"audience": {"region_ids": [ids["east"]], "levels": ["A"]}},
        "POS": {"audience": {"channels": ["pos"]}},
        "LATER": {"valid_from": "2031-07-01T00:00:00Z"},
        "OVER": {"valid_to": "2031-06-01T00:00:00Z"},
        "PAUSED": {"status": "paused"},
        "SPENT": {"budget_count": 0},
        "BROKE": {"budget_amount": "0"},
    }.items():
        made[code] = await post(client, t, f"{API}/promotions", reduction(code, **extra))
    names = {m["id"]: code for code, m in made.items()}
    book = await _book(app, t)
    assert len(book.entries) == 8  # paused ones are not compiled

    def codes(**overrides: Any) -> list[str]:
        found = service.promotions_for(book, now=NOW, **_buyer(ids, **overrides))
        assert all(isinstance(p, promotions.FullReduction) for p in found)
        return [names[p.promotion_id] for p in found]

    assert codes() == ["ALL", "EAST"]
    assert codes(customer_id=ids["d2"]) == ["ALL", "D2", "EAST"]
    assert codes(level="B") == ["ALL"]
    assert codes(region_path=()) == ["ALL"]
    assert codes(channel="pos") == ["ALL", "EAST", "POS"]
    anonymous = {k: None for k in ("customer_id", "customer_class", "level", "channel")}
    assert codes(**anonymous, region_path=()) == ["ALL"]
    later = service.promotions_for(book, now=datetime(2031, 7, 2, tzinfo=UTC), **_buyer(ids))
    assert [names[p.promotion_id] for p in later] == ["ALL", "EAST", "LATER"]
    earlier = service.promotions_for(book, now=NOW - timedelta(days=1), **_buyer(ids))
    assert [names[p.promotion_id] for p in earlier] == ["ALL", "EAST", "OVER"]


async def test_book_is_reused_per_revision_and_rebuilt_after_a_change(client, app, tenant_a):
    t = tenant_a
    created = await post(client, t, f"{API}/promotions", reduction())
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    async def book_and_statements() -> tuple[service.PromotionBook, list[str]]:
        """The book, and the statements that read promotions to get it."""
        engine = app.state.db.engine.sync_engine
        statements.clear()
        event.listen(engine, "before_cursor_execute", seen)
        try:
            book = await _book(app, t)
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        return book, [x for x in statements if "FROM promotions" in x]

    first, reads = await book_and_statements()
    assert len(reads) == 1
    again, reads = await book_and_statements()
    assert again is first and reads == []
    r = await client.patch(
        f"{API}/promotions/{created['id']}",
        headers={**t.auth, **version(created)},
        json={"rule": {"tiers": [{"threshold": "500", "amount": "80"}]}},
    )
    assert r.status_code == 200
    rebuilt, reads = await book_and_statements()
    assert rebuilt.revision != first.revision and len(reads) == 1
    (entry,) = rebuilt.entries
    assert isinstance(entry.promotion, promotions.FullReduction)
    assert entry.promotion.tiers[0].amount == D(80)


async def _coupons(app: Any, t: TenantHandle, codes: list[str], customer: str | None, **kw: Any) -> Any:
    with tenant_scope(UUID(t.id)):
        async with app.state.db.transaction() as s:
            return await service.coupons_for(
                s, codes, customer_id=UUID(customer) if customer else None, now=kw.pop("now", NOW), **kw
            )


async def test_coupons_for_returns_engine_coupons_and_names_every_bad_code(client, app, tenant_a):
    t = tenant_a
    ids = await catalog(client, t)
    good_tpl = await post(
        client, t, f"{API}/coupon-templates", template(products={"sku_ids": [ids["sku_A"]]})
    )
    mine, theirs, gone = await issue(
        client, t, good_tpl["id"], {"customer_ids": [ids["d1"], ids["d2"], ids["d1"]]}
    )
    (open_code,) = await issue(client, t, good_tpl["id"], {})
    await client.post(f"{API}/coupon-codes/{gone['id']}/void", headers={**t.auth, **version(gone)})
    paused = await post(client, t, f"{API}/coupon-templates", template("P"))
    (paused_code,) = await issue(client, t, paused["id"], {})
    await client.patch(
        f"{API}/coupon-templates/{paused['id']}",
        headers={**t.auth, **version(paused)},
        json={"status": "paused"},
    )
    summer = await post(
        client,
        t,
        f"{API}/coupon-templates",
        template("S", valid_from="2031-07-01T00:00:00Z", valid_to="2031-09-01T00:00:00Z"),
    )
    (summer_code,) = await issue(client, t, summer["id"], {})

    # typed the way a buyer might: lower case, without dashes
    typed = mine["code"].lower().replace("-", "")
    coupons = await _coupons(app, t, [typed, open_code["code"]], ids["d1"])
    assert coupons == [
        promotions.Coupon(
            coupon_id=mine["id"],
            threshold=D("400.00"),
            amount=D("20.00"),
            scope=promotions.Scope(sku_ids=frozenset({ids["sku_A"]})),
        ),
        promotions.Coupon(
            coupon_id=open_code["id"],
            threshold=D("400.00"),
            amount=D("20.00"),
            scope=promotions.Scope(sku_ids=frozenset({ids["sku_A"]})),
        ),
    ]
    assert await _coupons(app, t, [], ids["d1"]) == []
    later = await _coupons(app, t, [summer_code["code"]], None, now=datetime(2031, 7, 1, tzinfo=UTC))
    assert [c.coupon_id for c in later] == [summer_code["id"]]

    bad = [
        "NOPE-NOPE-NOPE-NOPE",
        theirs["code"],
        gone["code"],
        paused_code["code"],
        summer_code["code"],
        mine["code"],
        typed,
    ]
    with pytest.raises(Unprocessable) as caught:
        await _coupons(app, t, bad, ids["d1"], field="lines_coupons")
    errors = {e["field"]: e["message"] for e in caught.value.errors}
    assert set(errors) == {f"lines_coupons[{i}]" for i in (0, 1, 2, 3, 4, 6)}
    assert "another customer" in errors["lines_coupons[1]"] and "void" in errors["lines_coupons[2]"]
    assert "paused" in errors["lines_coupons[3]"] and "not valid" in errors["lines_coupons[4]"]
    assert "lines_coupons[5]" in errors["lines_coupons[6]"]  # the duplicate names the first
    with pytest.raises(Unprocessable) as caught:  # a walk-in buyer cannot use an assigned code
        await _coupons(app, t, [mine["code"]], None)
    assert caught.value.errors[0]["field"] == "coupon_codes[0]"


async def test_coupons_for_respects_the_per_customer_limit(client, app, tenant_a):
    t = tenant_a
    ids = await catalog(client, t)
    tpl = await post(client, t, f"{API}/coupon-templates", template(per_customer_limit=1))
    first, second, third = await issue(client, t, tpl["id"], {"quantity": 3})
    with pytest.raises(Unprocessable) as caught:
        await _coupons(app, t, [first["code"], second["code"]], ids["d1"])
    assert [e["field"] for e in caught.value.errors] == ["coupon_codes[1]"]
    with pytest.raises(Unprocessable):
        await _coupons(app, t, [first["code"], second["code"]], None)
    with tenant_scope(UUID(t.id)):  # an order of d1 holds one code of this template
        async with app.state.db.transaction() as s:
            await service.transition_coupon_code(
                s, UUID(first["id"]), "reserved", customer_id=UUID(ids["d1"])
            )
    with pytest.raises(Unprocessable):
        await _coupons(app, t, [second["code"]], ids["d1"])
    assert [c.coupon_id for c in await _coupons(app, t, [third["code"]], ids["d2"])] == [third["id"]]


async def test_the_domain_example_prices_through_compiled_promotions_and_coupons(client, app, tenant_a):
    """DOMAIN §2: A 2×150 and B 200; 满500减60 then the coupon 满400减20 → A 12, B 8; payable 420."""
    t = tenant_a
    ids = await catalog(client, t)
    await post(client, t, f"{API}/promotions", reduction())
    tpl = await post(client, t, f"{API}/coupon-templates", template())
    (code,) = await issue(client, t, tpl["id"], {"customer_ids": [ids["d1"]]})
    book = await _book(app, t)
    offers = service.promotions_for(book, now=NOW, **_buyer(ids))
    coupons = await _coupons(app, t, [code["code"]], ids["d1"])
    lines = [
        promotions.Line(line_id="A", sku_id=ids["sku_A"], quantity=D(2), unit_price=D(150)),
        promotions.Line(line_id="B", sku_id=ids["sku_B"], quantity=D(1), unit_price=D(200)),
    ]
    result = promotions.apply_promotions(lines, offers, coupons, NOW)
    by_line = {r.line_id: {a.promotion_id: a.amount for a in r.allocations} for r in result.lines}
    assert by_line["A"][code["id"]] == D(12) and by_line["B"][code["id"]] == D(8)
    assert result.payable == D(420)


async def test_rows_stay_in_their_tenant(client, app, tenant_a, tenant_b):
    await post(client, tenant_a, f"{API}/promotions", reduction())
    tpl = await post(client, tenant_a, f"{API}/coupon-templates", template())
    (code,) = await issue(client, tenant_a, tpl["id"], {})
    assert (await _book(app, tenant_b)).entries == ()
    with pytest.raises(Unprocessable):
        await _coupons(app, tenant_b, [code["code"]], None)
    with tenant_scope(UUID(tenant_b.id)):
        async with app.state.db.transaction() as s:
            assert await s.scalar(select(func.count(CouponCode.id))) == 0
