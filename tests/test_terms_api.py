"""Commercial terms through the real app: credit profiles, temporary lines and rules (DOMAIN §3),
rebate policies and their preview (§4), expense offset ratios (§5), and the compiled terms book
the quote service reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal as D
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.core import revisions
from omnicloud.core.db import utcnow
from omnicloud.core.models import AuditEntry, OutboxEvent
from omnicloud.core.tenancy import tenant_scope
from omnicloud.policies import credit
from omnicloud.policies.offset import FeeAccount, OffsetLine, plan_offset
from omnicloud.policies.terms import service as terms
from tests.fixtures import TenantHandle, bearer

TODAY = utcnow().date()
SOON = (TODAY + timedelta(days=30)).isoformat()
TIERS = [
    {"achievement": "0.8", "rate": "0.01"},
    {"achievement": "1.0", "rate": "0.02"},
    {"achievement": "1.2", "rate": "0.03"},
]


async def _post(client: httpx.AsyncClient, t: TenantHandle, path: str, body: Any) -> dict[str, Any]:
    r = await client.post(path, headers=t.auth, json=body)
    assert r.status_code == 201, (path, r.status_code, r.text)
    return r.json()


def _if(t: TenantHandle, version: int) -> dict[str, str]:
    return {**t.auth, "If-Match": f'"{version}"'}


@dataclass
class Shop:
    """A small catalog and customers: SKU A in TEA (under DRINK, brand BR), B in DRINK, C in FOOD;
    customer K (class KA, level L1, in Shanghai under East) and customer S (class SMB)."""

    ids: dict[str, str]


async def _shop(client: httpx.AsyncClient, t: TenantHandle) -> Shop:
    ids: dict[str, str] = {}
    unit = await _post(client, t, "/api/v1/units", {"code": "pc", "name": "Piece"})
    ids["brand"] = (await _post(client, t, "/api/v1/brands", {"code": "BR", "name": "Brand"}))["id"]
    ids["drink"] = (await _post(client, t, "/api/v1/categories", {"code": "DRINK", "name": "Drinks"}))["id"]
    ids["tea"] = (
        await _post(
            client, t, "/api/v1/categories", {"code": "TEA", "name": "Tea", "parent_id": ids["drink"]}
        )
    )["id"]
    ids["food"] = (await _post(client, t, "/api/v1/categories", {"code": "FOOD", "name": "Food"}))["id"]
    for code, category, brand in (("A", "tea", "brand"), ("B", "drink", None), ("C", "food", None)):
        product = await _post(
            client,
            t,
            "/api/v1/products",
            {
                "code": f"P-{code}",
                "name": code,
                "base_unit_id": unit["id"],
                "category_id": ids[category],
                **({"brand_id": ids[brand]} if brand else {}),
            },
        )
        sku = await _post(
            client,
            t,
            "/api/v1/skus",
            {"product_id": product["id"], "code": code, "name": code, "list_price": "1"},
        )
        ids[code] = sku["id"]
    ids["east"] = (await _post(client, t, "/api/v1/regions", {"code": "EAST", "name": "East"}))["id"]
    ids["shanghai"] = (
        await _post(
            client, t, "/api/v1/regions", {"code": "SH", "name": "Shanghai", "parent_id": ids["east"]}
        )
    )["id"]
    ids["org"] = (await _post(client, t, "/api/v1/sales-orgs", {"code": "ORG", "name": "Org"}))["id"]
    ids["K"] = (
        await _post(
            client,
            t,
            "/api/v1/customers",
            {
                "code": "K",
                "name": "Key account",
                "kind": "dealer",
                "customer_class": "KA",
                "level": "L1",
                "region_id": ids["shanghai"],
                "sales_org_id": ids["org"],
            },
        )
    )["id"]
    ids["S"] = (
        await _post(
            client,
            t,
            "/api/v1/customers",
            {"code": "S", "name": "Small", "kind": "dealer", "customer_class": "SMB"},
        )
    )["id"]
    return Shop(ids)


@asynccontextmanager
async def _session(app: Any, t: TenantHandle) -> AsyncIterator[AsyncSession]:
    with tenant_scope(UUID(t.id)):
        async with app.state.db.transaction() as session:
            yield session


async def _book(app: Any, t: TenantHandle) -> terms.TermsBook:
    async with _session(app, t) as s:
        revision = (await revisions.current(s, ("terms",)))["terms"]
        return await terms.terms_book(s, revision)


# --- credit profiles and temporary lines -----------------------------------------------------


async def test_credit_profile_lifecycle_with_temporary_lines(client, tenant_a):
    t = tenant_a
    shop = await _shop(client, t)
    body = {"customer_id": shop.ids["K"], "credit_limit": "100000.00", "credit_days": 30, "grace_days": 3}
    profile = await _post(client, t, "/api/v1/credit-profiles", body)
    assert (profile["version"], profile["temporary_lines"], D(profile["credit_line"])) == (1, [], D(100_000))
    r = await client.post("/api/v1/credit-profiles", headers=t.auth, json=body)
    assert (r.status_code, r.json()["code"]) == (409, "duplicate")
    for_org = await _post(client, t, "/api/v1/credit-profiles", {**body, "sales_org_id": shop.ids["org"]})
    r = await client.post(
        "/api/v1/credit-profiles", headers=t.auth, json={**body, "sales_org_id": shop.ids["org"]}
    )
    assert r.status_code == 409
    r = await client.post(
        "/api/v1/credit-profiles", headers=t.auth, json={**body, "customer_id": str(UUID(int=7))}
    )
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "customer_id")

    lines = f"/api/v1/credit-profiles/{profile['id']}/temporary-lines"
    yesterday = (TODAY - timedelta(days=1)).isoformat()
    r = await client.post(lines, headers=t.auth, json={"amount": "10000", "expires_on": yesterday})
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "expires_on")
    line = await _post(client, t, lines, {"amount": "10000.00", "expires_on": SOON, "reason": "season"})
    assert line["valid"] and line["credit_profile_id"] == profile["id"]
    await _post(
        client, t, lines, {"amount": "500.00", "expires_on": TODAY.isoformat()}
    )  # valid through today

    r = await client.get(f"/api/v1/credit-profiles/{profile['id']}", headers=t.auth)
    got = r.json()
    assert r.headers["etag"] == '"3"' and got["version"] == 3
    assert D(got["temporary_total"]) == D(10_500) and D(got["credit_line"]) == D(110_500)
    assert [ln["reason"] for ln in got["temporary_lines"]] == [None, "season"]  # by expiry

    url = f"/api/v1/credit-profiles/{profile['id']}"
    r = await client.patch(url, headers=t.auth, json={"credit_limit": "120000"})
    assert r.status_code == 428
    r = await client.patch(url, headers=_if(t, 1), json={"credit_limit": "120000"})
    assert r.status_code == 412
    r = await client.patch(url, headers=_if(t, 3), json={"credit_limit": "120000", "grace_days": 5})
    assert r.status_code == 200 and r.json()["version"] == 4 and D(r.json()["credit_line"]) == D(130_500)
    r = await client.patch(url, headers=t.auth | {"If-Match": '"4"'}, json={"grace_days": -1})
    assert r.status_code == 422

    r = await client.delete(f"{lines}/{line['id']}", headers=t.auth)
    assert r.status_code == 200 and D(r.json()["temporary_total"]) == D(500) and r.json()["version"] == 5
    r = await client.delete(f"{lines}/{line['id']}", headers=t.auth)
    assert r.status_code == 404
    r = await client.delete(
        f"/api/v1/credit-profiles/{for_org['id']}/temporary-lines/{line['id']}", headers=t.auth
    )
    assert r.status_code == 404

    r = await client.get("/api/v1/credit-profiles", headers=t.auth, params={"customer_id": shop.ids["K"]})
    assert {p["id"] for p in r.json()["items"]} == {profile["id"], for_org["id"]}
    r = await client.get("/api/v1/credit-profiles", headers=t.auth, params={"customer_id": shop.ids["S"]})
    assert r.json()["items"] == []


async def test_creating_a_temporary_line_replays_with_the_same_idempotency_key(client, tenant_a):
    t = tenant_a
    shop = await _shop(client, t)
    profile = await _post(
        client, t, "/api/v1/credit-profiles", {"customer_id": shop.ids["K"], "credit_limit": "1"}
    )
    url = f"/api/v1/credit-profiles/{profile['id']}/temporary-lines"
    headers = {**t.auth, "Idempotency-Key": "line-1"}
    first = await client.post(url, headers=headers, json={"amount": "5", "expires_on": SOON})
    again = await client.post(url, headers=headers, json={"amount": "5", "expires_on": SOON})
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    got = (await client.get(f"/api/v1/credit-profiles/{profile['id']}", headers=t.auth)).json()
    assert len(got["temporary_lines"]) == 1


# --- credit rules and the credit preview (DOMAIN §3) ----------------------------------------


async def _rule(
    client: httpx.AsyncClient, t: TenantHandle, point: str, over: str, **extra: Any
) -> dict[str, Any]:
    return await _post(client, t, "/api/v1/credit-rules", {"check_point": point, "over_limit": over, **extra})


async def test_credit_rules_duplicates_versions_and_delete(client, tenant_a):
    t = tenant_a
    rule = await _rule(client, t, "submit", "warn")
    r = await client.post("/api/v1/credit-rules", headers=t.auth, json={"check_point": "submit"})
    assert (r.status_code, r.json()["code"]) == (409, "duplicate")
    ka = await _rule(client, t, "submit", "block", customer_class="KA")
    r = await client.post(
        "/api/v1/credit-rules", headers=t.auth, json={"check_point": "submit", "customer_class": "KA"}
    )
    assert r.status_code == 409
    r = await client.post("/api/v1/credit-rules", headers=t.auth, json={"check_point": "audit"})
    assert r.status_code == 422

    url = f"/api/v1/credit-rules/{ka['id']}"
    r = await client.patch(url, headers=_if(t, 1), json={"customer_class": None})  # onto the class-less rule
    assert r.status_code == 409
    assert (await client.get(url, headers=t.auth)).json()["customer_class"] == "KA"
    r = await client.patch(url, headers=t.auth, json={"overdue": "block"})
    assert r.status_code == 428
    r = await client.patch(url, headers=_if(t, 1), json={"overdue": "block"})
    assert (r.status_code, r.json()["version"], r.headers["etag"]) == (200, 2, '"2"')
    r = await client.patch(url, headers=_if(t, 1), json={"overdue": "warn"})
    assert r.status_code == 412

    rule_url = f"/api/v1/credit-rules/{rule['id']}"
    assert (await client.delete(rule_url, headers=t.auth)).status_code == 428
    assert (await client.delete(rule_url, headers=_if(t, 2))).status_code == 412
    assert (await client.delete(rule_url, headers=_if(t, 1))).status_code == 204
    assert (await client.get(rule_url, headers=t.auth)).status_code == 404
    items = (await client.get("/api/v1/credit-rules", headers=t.auth)).json()["items"]
    assert [i["id"] for i in items] == [ka["id"]]


async def _preview(
    app: Any, t: TenantHandle, customer_id: str, amount: D, point: str, cls: str | None, **extra: Any
) -> credit.CreditVerdict | None:
    async with _session(app, t) as s:
        revision = (await revisions.current(s, ("terms",)))["terms"]
        book = await terms.terms_book(s, revision)
        return await terms.credit_preview(
            s,
            book,
            customer_id=UUID(customer_id),
            customer_class=cls,
            amount=amount,
            check_point=point,
            today=TODAY,
            **extra,
        )


async def test_credit_preview_selects_rules_and_counts_valid_temporary_lines(client, app, tenant_a):
    """DOMAIN §3 with no documents yet (exposure 0): a 105,000 order against a 100,000 limit is over
    by 5,000: warn at submit, block at shipment; +10,000 temporary line makes it pass."""
    t = tenant_a
    shop = await _shop(client, t)
    k = shop.ids["K"]
    assert await _preview(app, t, k, D(1), "submit", "KA") is None  # no profile: no credit control
    profile = await _post(client, t, "/api/v1/credit-profiles", {"customer_id": k, "credit_limit": "100000"})
    await _rule(client, t, "submit", "warn", overdue="warn")
    await _rule(client, t, "shipment", "block", overdue="block")
    await _rule(client, t, "shipment", "needs_approval", customer_class="KA")

    submit = await _preview(app, t, k, D(105_000), "submit", "KA")
    assert submit is not None
    assert (submit.action, submit.over_by, submit.exposure, submit.credit_line) == (
        "warn",
        D(5_000),
        0,
        D(100_000),
    )
    assert submit.reasons == ("over the credit line by 5000.00",)
    assert (await _preview(app, t, k, D(105_000), "shipment", None)).action == "block"  # type: ignore[union-attr]
    assert (await _preview(app, t, k, D(105_000), "shipment", "SMB")).action == "block"  # type: ignore[union-attr]
    # the class's own rule wins over the class-less rule
    assert (await _preview(app, t, k, D(105_000), "shipment", "KA")).action == "needs_approval"  # type: ignore[union-attr]
    approval = await _preview(app, t, k, D(105_000), "approval", "KA")  # no rule: pass, but explained
    assert approval is not None and (approval.action, approval.over_by) == ("pass", D(5_000))

    lines = f"/api/v1/credit-profiles/{profile['id']}/temporary-lines"
    await _post(client, t, lines, {"amount": "10000", "expires_on": SOON})
    passed = await _preview(app, t, k, D(105_000), "shipment", None)
    assert passed is not None and (passed.action, passed.credit_line, passed.over_by) == (
        "pass",
        D(110_000),
        0,
    )

    # a sales org's own profile is used when the quote names that org
    await _post(
        client,
        t,
        "/api/v1/credit-profiles",
        {"customer_id": k, "sales_org_id": shop.ids["org"], "credit_limit": "50"},
    )
    by_org = await _preview(app, t, k, D(100), "shipment", None, sales_org_id=UUID(shop.ids["org"]))
    assert by_org is not None and (by_org.action, by_org.credit_line) == ("block", D(50))
    other_org = await _preview(app, t, k, D(100), "shipment", None, sales_org_id=UUID(int=5))
    assert other_org is not None and other_org.credit_line == D(110_000)


async def test_credit_preview_reads_profile_and_lines_in_one_statement(client, app, tenant_a):
    """One statement for the profile with its temporary lines, plus one per document pool that
    adds to the exposure (the order pool registers itself)."""
    t = tenant_a
    shop = await _shop(client, t)
    profile = await _post(
        client, t, "/api/v1/credit-profiles", {"customer_id": shop.ids["K"], "credit_limit": "10"}
    )
    for days in (1, 2, 3):
        await _post(
            client,
            t,
            f"/api/v1/credit-profiles/{profile['id']}/temporary-lines",
            {"amount": "1", "expires_on": (TODAY + timedelta(days=days)).isoformat()},
        )
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    async with _session(app, t) as s:
        revision = (await revisions.current(s, ("terms",)))["terms"]
        book = await terms.terms_book(s, revision)
        engine = app.state.db.engine.sync_engine
        event.listen(engine, "before_cursor_execute", count)
        try:
            verdict = await terms.credit_preview(
                s,
                book,
                customer_id=UUID(shop.ids["K"]),
                customer_class=None,
                amount=D(1),
                check_point="submit",
                today=TODAY,
            )
        finally:
            event.remove(engine, "before_cursor_execute", count)
    assert verdict is not None and verdict.credit_line == D(13)
    # the profile with its lines, one read per exposure source, and the open receivables
    assert len(statements) == 2 + len(terms._EXPOSURE_SOURCES), statements
    assert terms._EXPOSURE_SOURCES, "the order pool adds open orders to the exposure"


async def test_domain_credit_example_with_the_profile_and_rules_from_the_api(client, tenant_a):
    """Receivables do not exist as documents yet, so the engine gets them (and open orders) directly;
    the limit, the temporary line, the grace days and the rules come from the API."""
    t = tenant_a
    shop = await _shop(client, t)
    profile = await _post(
        client,
        t,
        "/api/v1/credit-profiles",
        {"customer_id": shop.ids["K"], "credit_limit": "100000", "grace_days": 3},
    )
    for point, action in (("submit", "warn"), ("shipment", "block")):
        await _rule(client, t, point, action, overdue=action)
    rules = [
        credit.CreditRule(check_point=r["check_point"], over_limit=r["over_limit"], overdue=r["overdue"])
        for r in (await client.get("/api/v1/credit-rules", headers=t.auth)).json()["items"]
    ]

    async def verdict(
        point: str, amount: D, inputs: credit.ExposureInputs, *receivables: credit.Receivable
    ) -> Any:
        got = (await client.get(f"/api/v1/credit-profiles/{profile['id']}", headers=t.auth)).json()
        engine_profile = credit.CreditProfile(
            limit=D(got["credit_limit"]),
            temporary_lines=tuple(
                credit.TemporaryLine(amount=D(ln["amount"]), expires_on=date.fromisoformat(ln["expires_on"]))
                for ln in got["temporary_lines"]
            ),
        )
        return credit.check_credit(engine_profile, rules, inputs, amount, point, TODAY, receivables)  # type: ignore[arg-type]

    example = credit.ExposureInputs(receivables=D(60_000), open_orders=D(25_000))
    submit = await verdict("submit", D(20_000), example)
    assert (submit.action, submit.over_by) == ("warn", D(5_000))
    assert (await verdict("shipment", D(20_000), example)).action == "block"
    await _post(
        client,
        t,
        f"/api/v1/credit-profiles/{profile['id']}/temporary-lines",
        {"amount": "10000", "expires_on": SOON},
    )
    assert (await verdict("shipment", D(20_000), example)).action == "pass"

    grace = (await client.get(f"/api/v1/credit-profiles/{profile['id']}", headers=t.auth)).json()[
        "grace_days"
    ]
    invoice = credit.Receivable(id="inv-1", amount=D(8_000), due_date=date(2024, 3, 31), grace_days=grace)
    assert invoice.overdue_on(date(2024, 4, 5)) and not invoice.overdue_on(date(2024, 4, 3))
    overdue = await verdict("shipment", D(1_000), credit.ExposureInputs(receivables=D(8_000)), invoice)
    assert (overdue.action, overdue.over_by, overdue.overdue) == ("block", 0, (invoice,))


# --- rebate policies and the preview (DOMAIN §4) --------------------------------------------


def _policy(shop: Shop, code: str, mode: str, **extra: Any) -> dict[str, Any]:
    return {
        "code": code,
        "name": f"Policy {code}",
        "period": "quarter",
        "customers": {"customer_classes": ["KA"], "region_ids": [shop.ids["east"]]},
        "products": {"category_ids": [shop.ids["drink"]]},
        "basis": "invoiced",
        "mode": mode,
        "target": "1000000.00",
        "tiers": TIERS,
        **extra,
    }


def _sales(shop: Shop) -> list[dict[str, Any]]:
    """A 800,000 less 50,000 returned, B 350,000 (both under DRINK): 1,100,000 in scope;
    C 500,000 is FOOD and does not count."""
    return [
        {"sku_id": shop.ids["A"], "amount": "800000.00", "returned_amount": "50000.00"},
        {"sku_id": shop.ids["B"], "amount": "350000.00"},
        {"sku_id": shop.ids["C"], "amount": "500000.00"},
    ]


async def _run_preview(
    client: httpx.AsyncClient, t: TenantHandle, policy_id: str, customer: str, sales: list[dict[str, Any]]
) -> dict[str, Any]:
    r = await client.post(
        f"/api/v1/rebate-policies/{policy_id}/preview",
        headers=t.auth,
        json={
            "customer_id": customer,
            "period_start": "2024-01-01",
            "period_end": "2024-03-31",
            "sales": sales,
        },
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_rebate_preview_in_all_three_modes(client, app, tenant_a):
    t = tenant_a
    shop = await _shop(client, t)
    k = shop.ids["K"]
    retro = await _post(client, t, "/api/v1/rebate-policies", _policy(shop, "R", "retroactive"))
    incr = await _post(client, t, "/api/v1/rebate-policies", _policy(shop, "I", "incremental"))
    flat = await _post(
        client,
        t,
        "/api/v1/rebate-policies",
        _policy(shop, "F", "flat", target="0", tiers=[{"achievement": "0", "rate": "0.015"}]),
    )
    async with _session(app, t) as s:
        revision = (await revisions.current(s, ("terms",)))["terms"]

    got = await _run_preview(client, t, retro["id"], k, _sales(shop))
    assert got["covered"] is True
    assert (D(got["achieved_amount"]), D(got["excluded_amount"])) == (D(1_100_000), D(500_000))
    assert D(got["achievement_ratio"]) == D("1.1") and D(got["target"]) == D(1_000_000)
    assert (D(got["reached_tier"]["achievement"]), D(got["rate"])) == (D(1), D("0.02"))
    assert [(D(s["base"]), D(s["rate"]), D(s["rebate"])) for s in got["slices"]] == [
        (D(1_100_000), D("0.02"), D(22_000))
    ]
    assert (D(got["accrual"]), got["capped"]) == (D(22_000), False)
    assert any("outside the product scope" in e for e in got["explanation"])

    got = await _run_preview(client, t, incr["id"], k, _sales(shop))
    # 800k–1M at 1 % + 1M–1.1M at 2 %
    assert [(D(s["base"]), D(s["rebate"])) for s in got["slices"]] == [
        (D(200_000), D(2_000)),
        (D(100_000), D(2_000)),
    ]
    assert D(got["accrual"]) == D(4_000) and D(got["rate"]) == D("0.02")

    got = await _run_preview(client, t, flat["id"], k, _sales(shop))
    assert got["target"] is None and got["achievement_ratio"] is None
    assert D(got["accrual"]) == D(16_500) and D(got["rate"]) == D("0.015")

    # below the first tier nothing accrues
    got = await _run_preview(client, t, retro["id"], k, [{"sku_id": shop.ids["A"], "amount": "700000"}])
    assert (got["reached_tier"], D(got["accrual"]), D(got["achievement_ratio"])) == (None, 0, D("0.7"))

    # a cap limits the accrual and says so
    r = await client.patch(f"/api/v1/rebate-policies/{retro['id']}", headers=_if(t, 1), json={"cap": "5000"})
    assert r.status_code == 200 and r.json()["version"] == 2
    async with _session(app, t) as s:
        assert (await revisions.current(s, ("terms",)))["terms"] != revision  # the PATCH moved it
        revision = (await revisions.current(s, ("terms",)))["terms"]
    got = await _run_preview(client, t, retro["id"], k, _sales(shop))
    assert (D(got["accrual"]), D(got["uncapped_accrual"]), got["capped"]) == (D(5_000), D(22_000), True)
    assert any("capped at 5000.00" in e for e in got["explanation"])

    # a customer outside the customer scope: the answer says so, with 0
    got = await _run_preview(client, t, retro["id"], shop.ids["S"], _sales(shop))
    assert (got["covered"], D(got["accrual"]), D(got["achieved_amount"])) == (False, 0, 0)
    assert any("outside the policy's customer scope" in e for e in got["explanation"])

    # previews change nothing
    async with _session(app, t) as s:
        assert (await revisions.current(s, ("terms",)))["terms"] == revision
    assert (await client.get(f"/api/v1/rebate-policies/{retro['id']}", headers=t.auth)).json()["version"] == 2


async def test_rebate_scopes_match_by_brand_and_sku_and_returns_net_out(client, tenant_a):
    t = tenant_a
    shop = await _shop(client, t)
    by_brand = await _post(
        client,
        t,
        "/api/v1/rebate-policies",
        _policy(
            shop,
            "BR",
            "flat",
            tiers=[{"achievement": "0", "rate": "0.1"}],
            products={"brand_ids": [shop.ids["brand"]]},
        ),
    )
    got = await _run_preview(client, t, by_brand["id"], shop.ids["K"], _sales(shop))
    assert (D(got["achieved_amount"]), D(got["excluded_amount"]), D(got["accrual"])) == (
        D(750_000),
        D(850_000),
        D(75_000),
    )
    by_sku = await _post(
        client,
        t,
        "/api/v1/rebate-policies",
        _policy(
            shop,
            "SKU",
            "flat",
            tiers=[{"achievement": "0", "rate": "0.1"}],
            customers={"customer_ids": [shop.ids["S"]]},
            products={"sku_ids": [shop.ids["C"]]},
        ),
    )
    returns = [{"sku_id": shop.ids["C"], "amount": "100", "returned_amount": "300"}]
    got = await _run_preview(client, t, by_sku["id"], shop.ids["S"], returns)
    assert (got["covered"], D(got["achieved_amount"]), D(got["accrual"])) == (True, 0, 0)
    r = await client.post(
        f"/api/v1/rebate-policies/{by_sku['id']}/preview",
        headers=t.auth,
        json={
            "customer_id": shop.ids["S"],
            "period_start": "2024-01-01",
            "period_end": "2024-03-31",
            "sales": [{"sku_id": str(UUID(int=9)), "amount": "1"}],
        },
    )
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "sales[0].sku_id")
    r = await client.post(
        f"/api/v1/rebate-policies/{by_sku['id']}/preview",
        headers=t.auth,
        json={"customer_id": shop.ids["S"], "period_start": "2024-03-31", "period_end": "2024-01-01"},
    )
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "period_end")


async def test_rebate_policy_configuration_errors_are_422_naming_the_field(client, tenant_a):
    t = tenant_a
    shop = await _shop(client, t)

    async def refused(body: dict[str, Any]) -> str:
        r = await client.post("/api/v1/rebate-policies", headers=t.auth, json=body)
        assert r.status_code == 422, r.text
        return r.json()["errors"][0]["field"]

    assert await refused(_policy(shop, "X", "retroactive", target="0")) == "target"
    assert await refused(_policy(shop, "X", "incremental", target="0")) == "target"
    assert await refused(_policy(shop, "X", "retroactive", tiers=list(reversed(TIERS)))) == "tiers"
    assert await refused(_policy(shop, "X", "flat", target="0")) == "tiers"  # flat has one rate
    assert (
        await refused(_policy(shop, "X", "retroactive", period="custom", period_end="2024-12-31"))
        == "period_start"
    )
    assert (
        await refused(
            _policy(
                shop, "X", "retroactive", period="custom", period_start="2024-12-31", period_end="2024-01-01"
            )
        )
        == "period_end"
    )
    assert await refused(_policy(shop, "X", "retroactive", usage_cap_ratio="1.5")) != ""
    assert await refused(_policy(shop, "X", "retroactive", products={"sku_ids": [str(UUID(int=3))]})) == (
        "products.sku_ids[0]"
    )
    policy = await _post(client, t, "/api/v1/rebate-policies", _policy(shop, "OK", "retroactive"))
    r = await client.post("/api/v1/rebate-policies", headers=t.auth, json=_policy(shop, "OK", "incremental"))
    assert (r.status_code, r.json()["code"]) == (409, "duplicate")
    url = f"/api/v1/rebate-policies/{policy['id']}"
    r = await client.patch(url, headers=_if(t, 1), json={"target": "0"})
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "target")
    r = await client.patch(url, headers=_if(t, 1), json={"mode": "flat", "target": "0", "tiers": [TIERS[0]]})
    assert r.status_code == 200 and r.json()["mode"] == "flat"
    assert (await client.patch(url, headers=_if(t, 1), json={"name": "x"})).status_code == 412
    assert (await client.patch(url, headers=t.auth, json={"name": "x"})).status_code == 428
    listed = await client.get(
        "/api/v1/rebate-policies", headers=t.auth, params={"status": "active", "period": "quarter"}
    )
    assert [p["id"] for p in listed.json()["items"]] == [policy["id"]]
    listed = await client.get("/api/v1/rebate-policies", headers=t.auth, params={"period": "year"})
    assert listed.json()["items"] == []


async def test_rebate_usage_cap_ratio_takes_the_strictest_covering_policy(client, app, tenant_a):
    t = tenant_a
    shop = await _shop(client, t)
    common = {"customers": {"customer_classes": ["KA"]}, "products": {}}
    await _post(
        client,
        t,
        "/api/v1/rebate-policies",
        _policy(shop, "P10", "retroactive", **common, usage_cap_ratio="0.1"),
    )
    await _post(
        client,
        t,
        "/api/v1/rebate-policies",
        _policy(shop, "P05", "retroactive", **common, usage_cap_ratio="0.05"),
    )
    await _post(
        client,
        t,
        "/api/v1/rebate-policies",
        _policy(shop, "DRAFT", "retroactive", **common, usage_cap_ratio="0.01", status="draft"),
    )
    await _post(
        client,
        t,
        "/api/v1/rebate-policies",
        _policy(
            shop,
            "OLD",
            "retroactive",
            **common,
            usage_cap_ratio="0.02",
            period="custom",
            period_start="2020-01-01",
            period_end="2020-12-31",
        ),
    )
    await _post(
        client,
        t,
        "/api/v1/rebate-policies",
        _policy(
            shop, "EAST", "retroactive", customers={"region_ids": [shop.ids["east"]]}, usage_cap_ratio="0.03"
        ),
    )
    book = await _book(app, t)

    def cap(cls: str | None, region_path: tuple[str, ...], day: date = date(2024, 5, 1)) -> D:
        return terms.rebate_usage_cap_ratio(
            book, customer_id=shop.ids["K"], customer_class=cls, level="L1", region_path=region_path, day=day
        )

    assert cap("KA", ()) == D("0.05")
    assert cap("KA", (shop.ids["shanghai"], shop.ids["east"])) == D("0.03")  # by region ancestor
    assert cap("KA", (), date(2020, 6, 1)) == D("0.02")
    assert cap("SMB", ()) == D(0)  # no policy covers it: rebates pay nothing


# --- expense offset ratios (DOMAIN §5) ------------------------------------------------------


async def _ratio(client: httpx.AsyncClient, t: TenantHandle, ratio: str, **dims: str) -> dict[str, Any]:
    return await _post(client, t, "/api/v1/offset-ratios", {"ratio": ratio, **dims})


async def test_offset_ratio_most_specific_wins(client, app, tenant_a):
    t = tenant_a
    shop = await _shop(client, t)
    k, org, a, tea, drink = (shop.ids[n] for n in ("K", "org", "A", "tea", "drink"))
    ladder = [
        ({"customer_id": k, "sku_id": a}, "0.91"),
        ({"customer_id": k, "category_id": tea}, "0.82"),
        ({"customer_id": k, "category_id": drink}, "0.73"),
        ({"customer_id": k}, "0.64"),
        ({"sales_org_id": org, "sku_id": a}, "0.55"),
        ({"sales_org_id": org, "category_id": tea}, "0.46"),
        ({"sales_org_id": org, "category_id": drink}, "0.42"),
        ({"sales_org_id": org}, "0.37"),
        ({"sku_id": a}, "0.28"),
        ({"category_id": tea}, "0.19"),
        ({"category_id": drink}, "0.15"),
        ({}, "0.10"),
    ]
    created = [await _ratio(client, t, ratio, **dims) for dims, ratio in ladder]
    for row, (_, expected) in zip(created, ladder, strict=True):
        book = await _book(app, t)
        got = terms.offset_ratio_for(
            book, customer_id=k, sales_org_id=org, sku_id=a, category_ids=(tea, drink)
        )
        assert got == D(expected)
        r = await client.delete(f"/api/v1/offset-ratios/{row['id']}", headers=_if(t, 1))
        assert r.status_code == 204
    book = await _book(app, t)
    assert (
        terms.offset_ratio_for(book, customer_id=k, sales_org_id=org, sku_id=a, category_ids=(tea, drink))
        == 0
    )


async def test_offset_ratio_writes_duplicates_and_validation(client, tenant_a):
    t = tenant_a
    shop = await _shop(client, t)
    ratio = await _ratio(client, t, "0.2", customer_id=shop.ids["K"], sku_id=shop.ids["A"])
    r = await client.post(
        "/api/v1/offset-ratios",
        headers=t.auth,
        json={"ratio": "0.3", "customer_id": shop.ids["K"], "sku_id": shop.ids["A"]},
    )
    assert (r.status_code, r.json()["code"]) == (409, "duplicate")
    await _ratio(client, t, "0.05")
    assert (
        await client.post("/api/v1/offset-ratios", headers=t.auth, json={"ratio": "0.06"})
    ).status_code == 409
    both = {"ratio": "0.1", "customer_id": shop.ids["K"], "sales_org_id": shop.ids["org"]}
    r = await client.post("/api/v1/offset-ratios", headers=t.auth, json=both)
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "sales_org_id")
    r = await client.post(
        "/api/v1/offset-ratios",
        headers=t.auth,
        json={"ratio": "0.1", "sku_id": shop.ids["A"], "category_id": shop.ids["tea"]},
    )
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "category_id")
    for bad in ("1.01", "-0.1", "0.1234567"):
        assert (
            await client.post("/api/v1/offset-ratios", headers=t.auth, json={"ratio": bad})
        ).status_code == 422

    url = f"/api/v1/offset-ratios/{ratio['id']}"
    assert (await client.patch(url, headers=t.auth, json={"ratio": "0.25"})).status_code == 428
    r = await client.patch(url, headers=_if(t, 1), json={"ratio": "0.25"})
    assert (r.status_code, D(r.json()["ratio"]), r.json()["version"]) == (200, D("0.25"), 2)
    assert (await client.patch(url, headers=_if(t, 1), json={"ratio": "0.3"})).status_code == 412
    assert (await client.delete(url, headers=_if(t, 1))).status_code == 412
    listed = await client.get("/api/v1/offset-ratios", headers=t.auth, params={"customer_id": shop.ids["K"]})
    assert [i["id"] for i in listed.json()["items"]] == [ratio["id"]]
    listed = await client.get(
        "/api/v1/offset-ratios", headers=t.auth, params={"sales_org_id": shop.ids["org"]}
    )
    assert listed.json()["items"] == []


async def test_domain_offset_example_with_ratios_from_the_api(client, app, tenant_a):
    """Lines A 10,000 at 20 %, B 5,000 at 0 %, C 5,000 at 10 % → cap 2,500; P1 1,500 (06-30) and
    P2 3,000 (12-31) → 1,500 from P1, 1,000 from P2; payable 17,500."""
    t = tenant_a
    shop = await _shop(client, t)
    k = shop.ids["K"]
    await _ratio(client, t, "0.05")  # the tenant's default
    await _ratio(client, t, "0.20", customer_id=k, sku_id=shop.ids["A"])
    await _ratio(client, t, "0", customer_id=k, sku_id=shop.ids["B"])  # 0: fees pay none of B
    await _ratio(client, t, "0.10", customer_id=k, category_id=shop.ids["food"])
    book = await _book(app, t)
    categories = {
        "A": (shop.ids["tea"], shop.ids["drink"]),
        "B": (shop.ids["drink"],),
        "C": (shop.ids["food"],),
    }

    def ratio(sku: str, customer: str = k) -> D:
        return terms.offset_ratio_for(
            book,
            customer_id=customer,
            sales_org_id=shop.ids["org"],
            sku_id=shop.ids[sku],
            category_ids=categories[sku],
        )

    amounts = {"A": D(10_000), "B": D(5_000), "C": D(5_000)}
    lines = [OffsetLine(line_id=sku, amount=amount, ratio=ratio(sku)) for sku, amount in amounts.items()]
    assert [ln.ratio for ln in lines] == [D("0.20"), D(0), D("0.10")]
    accounts = [
        FeeAccount(account_id="P2", balance=D(3_000), expires_on=date(2026, 12, 31)),
        FeeAccount(account_id="P1", balance=D(1_500), expires_on=date(2026, 6, 30)),
    ]
    plan = plan_offset(lines, accounts, today=date(2026, 5, 1))
    assert plan.line_cap_total == plan.total == D(2_500)
    assert [(d.account_id, d.amount) for d in plan.draws] == [("P1", D(1_500)), ("P2", D(1_000))]
    assert plan.payable == D(17_500)
    assert ratio("A", customer=shop.ids["S"]) == D("0.05")  # another customer: the tenant default


# --- access, writes and the compiled book ---------------------------------------------------


async def test_dealer_credentials_get_403(client, tenant_a):
    t = tenant_a
    customer = await _post(client, t, "/api/v1/customers", {"code": "D", "name": "D", "kind": "dealer"})
    user = await _post(
        client,
        t,
        "/api/v1/users",
        {"email": "d@x.example", "name": "D", "role": "dealer", "customer_id": customer["id"]},
    )
    dealer = bearer(
        (await _post(client, t, "/api/v1/api-keys", {"name": "d", "user_id": user["id"]}))["secret"]
    )
    for path in (
        "/api/v1/credit-profiles",
        "/api/v1/credit-rules",
        "/api/v1/rebate-policies",
        "/api/v1/offset-ratios",
    ):
        assert (await client.get(path, headers=dealer)).status_code == 403
    r = await client.post(
        "/api/v1/credit-profiles",
        headers=dealer,
        json={"customer_id": customer["id"], "credit_limit": "1000000"},
    )
    assert r.status_code == 403
    r = await client.post("/api/v1/offset-ratios", headers=dealer, json={"ratio": "1"})
    assert r.status_code == 403


async def _counts(app: Any, t: TenantHandle) -> tuple[int, int, revisions.Revision]:
    async with _session(app, t) as s:
        audit = await s.scalar(select(func.count(AuditEntry.id)))
        events = await s.scalar(select(func.count(OutboxEvent.id)))
        revision = (await revisions.current(s, ("terms",)))["terms"]
    return audit or 0, events or 0, revision


async def test_every_write_audits_emits_and_bumps_the_revision(client, app, tenant_a):
    t = tenant_a
    shop = await _shop(client, t)
    profile_id: dict[str, str] = {}

    async def create_profile() -> None:
        p = await _post(
            client, t, "/api/v1/credit-profiles", {"customer_id": shop.ids["K"], "credit_limit": "1"}
        )
        profile_id["id"] = p["id"]

    async def add_line() -> None:
        line = await _post(
            client,
            t,
            f"/api/v1/credit-profiles/{profile_id['id']}/temporary-lines",
            {"amount": "1", "expires_on": SOON},
        )
        profile_id["line"] = line["id"]

    async def ok(r: Any) -> None:
        assert (await r).status_code in (200, 201, 204)

    writes = [
        create_profile,
        lambda: ok(
            client.patch(
                f"/api/v1/credit-profiles/{profile_id['id']}", headers=_if(t, 1), json={"grace_days": 2}
            )
        ),
        add_line,
        lambda: ok(
            client.delete(
                f"/api/v1/credit-profiles/{profile_id['id']}/temporary-lines/{profile_id['line']}",
                headers=t.auth,
            )
        ),
        lambda: _rule(client, t, "submit", "warn"),
        lambda: _post(client, t, "/api/v1/rebate-policies", _policy(shop, "W", "retroactive")),
        lambda: _ratio(client, t, "0.1"),
    ]
    for write in writes:
        before = await _counts(app, t)
        await write()
        after = await _counts(app, t)
        assert after[0] == before[0] + 1 and after[1] == before[1] + 1 and after[2] != before[2], write


async def test_the_book_is_reused_for_a_revision_and_rebuilt_after_a_change(client, app, tenant_a):
    t = tenant_a
    shop = await _shop(client, t)
    await _ratio(client, t, "0.1")
    first = await _book(app, t)
    assert await _book(app, t) is first
    await _ratio(client, t, "0.3", customer_id=shop.ids["K"])
    second = await _book(app, t)
    assert second is not first and second.revision != first.revision
    args = {"customer_id": shop.ids["K"], "sales_org_id": None, "sku_id": shop.ids["A"], "category_ids": ()}
    assert terms.offset_ratio_for(first, **args) == D("0.1")  # type: ignore[arg-type]
    assert terms.offset_ratio_for(second, **args) == D("0.3")  # type: ignore[arg-type]
    rule = await _rule(client, t, "submit", "block")
    third = await _book(app, t)
    assert third.credit_rules[("submit", None)].over_limit == "block"
    r = await client.delete(f"/api/v1/credit-rules/{rule['id']}", headers=_if(t, 1))
    assert r.status_code == 204
    assert ("submit", None) not in (await _book(app, t)).credit_rules
    # a refused write changes nothing, so the book stays
    fourth = await _book(app, t)
    assert (
        await client.post("/api/v1/offset-ratios", headers=t.auth, json={"ratio": "0.2"})
    ).status_code == 409
    assert await _book(app, t) is fourth


@pytest.mark.parametrize("path", ["/api/v1/credit-rules", "/api/v1/offset-ratios"])
async def test_unknown_ids_are_404(client, tenant_a, path):
    r = await client.get(f"{path}/{UUID(int=1)}", headers=tenant_a.auth)
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")


async def test_concurrent_duplicates_where_sql_cannot_see_them_create_one(client, tenant_a):
    """A NULL sales org or dimension is never equal in SQL, so the service checks; concurrent
    creates are serialised by the terms revision row and exactly one of each wins."""
    t = tenant_a
    shop = await _shop(client, t)
    creates = [
        ("/api/v1/credit-profiles", {"customer_id": shop.ids["K"], "credit_limit": "1"}),
        ("/api/v1/credit-rules", {"check_point": "submit"}),
        ("/api/v1/offset-ratios", {"ratio": "0.1"}),
    ]
    responses = await asyncio.gather(
        *[client.post(p, headers=t.auth, json=b) for p, b in creates for _ in range(8)]
    )
    for i, (path, _) in enumerate(creates):
        statuses = sorted(r.status_code for r in responses[i * 8 : (i + 1) * 8])
        assert statuses == [201] + [409] * 7, (path, statuses)
        assert len((await client.get(path, headers=t.auth)).json()["items"]) == 1
