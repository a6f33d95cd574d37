"""The fund pool through the real app (DOMAIN §6): remittances confirmed or rejected exactly once,
fee grants, adjustments, special accounts, ledger entries, statements, dealer visibility and the
Idempotency-Key on money documents. Every scenario ends with the ledger reconciled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal as D
from typing import Any
from uuid import UUID, uuid4

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.core.db import utcnow
from omnicloud.core.models import AuditEntry, OutboxEvent
from omnicloud.core.tenancy import tenant_scope
from omnicloud.pools.funds import service as funds
from omnicloud.pools.funds.models import FundEntry, FundTransfer
from tests.fixtures import TenantHandle, bearer

API = "/api/v1"
TODAY = utcnow().date()
FAR = "2999-12-31"


@asynccontextmanager
async def tx(app: Any, t: TenantHandle) -> AsyncIterator[AsyncSession]:
    """A transaction of tenant ``t``, as the order service will have one."""
    with tenant_scope(UUID(t.id)):
        async with app.state.db.transaction() as session:
            yield session


async def assert_ledger_balanced(app: Any, t: TenantHandle) -> None:
    """Every transfer sums to zero, every balance is the sum of its entries, every ``held`` the sum
    of its placed holds, and no customer account is below zero or below what it holds."""
    async with tx(app, t) as s:
        assert await funds.reconcile(s) == []
        total = await s.scalar(select(func.sum(FundEntry.amount)))
        assert D(total or 0).quantize(D("0.01")) == 0


async def post(
    client: httpx.AsyncClient, auth: dict[str, str], path: str, body: Any = None, **kw: Any
) -> Any:
    r = await client.post(f"{API}{path}", headers=auth, json=body, **kw)
    assert r.status_code in (200, 201), (path, r.status_code, r.text)
    return r.json()


def keyed(auth: dict[str, str], key: str) -> dict[str, str]:
    return {**auth, "Idempotency-Key": key}


@dataclass
class Dealers:
    """Dealer D1 with sub-dealer D1a, and sibling dealer D2, each with its own dealer key."""

    ids: dict[str, str]
    keys: dict[str, dict[str, str]]


async def dealers(client: httpx.AsyncClient, t: TenantHandle) -> Dealers:
    ids: dict[str, str] = {}
    keys: dict[str, dict[str, str]] = {}
    for code, parent in (("D1", None), ("D1a", "D1"), ("D2", None)):
        body = {
            "code": code,
            "name": code,
            "kind": "dealer",
            **({"parent_id": ids[parent]} if parent else {}),
        }
        ids[code] = (await post(client, t.auth, "/customers", body))["id"]
        user = await post(
            client,
            t.auth,
            "/users",
            {"email": f"{code.lower()}@f.example", "name": code, "role": "dealer", "customer_id": ids[code]},
        )
        key = await post(client, t.auth, "/api-keys", {"name": code, "user_id": user["id"]})
        keys[code] = bearer(key["secret"])
    ids["org"] = (await post(client, t.auth, "/sales-orgs", {"code": "ORG", "name": "Org"}))["id"]
    return Dealers(ids, keys)


async def remit(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    amount: str,
    ref: str,
    customer_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body = {"amount": amount, "bank_reference": ref, "remitted_on": TODAY.isoformat(), **extra}
    if customer_id is not None:
        body["customer_id"] = customer_id
    return await post(client, keyed(auth, f"remit-{ref}-{uuid4()}"), "/remittances", body)


async def fund_cash(
    client: httpx.AsyncClient, t: TenantHandle, customer_id: str, amount: str, ref: str
) -> str:
    """Remit and confirm; the id of the cash account credited."""
    r = await remit(client, t.auth, amount, ref, customer_id)
    return str((await post(client, t.auth, f"/remittances/{r['id']}/confirm"))["fund_account_id"])


async def account(client: httpx.AsyncClient, auth: dict[str, str], account_id: str) -> dict[str, Any]:
    r = await client.get(f"{API}/fund-accounts/{account_id}", headers=auth)
    assert r.status_code == 200, r.text
    return r.json()


async def entries(client: httpx.AsyncClient, auth: dict[str, str], account_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"{API}/fund-accounts/{account_id}/entries", headers=auth, params={"limit": 200})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


# --- remittances -----------------------------------------------------------------------------


async def test_remit_confirm_and_the_statement(client, app, tenant_a):
    t = tenant_a
    d = await dealers(client, t)
    d1 = d.keys["D1"]
    pending = await remit(client, d1, "12000.00", "BANK-001", note="March prepayment")
    assert pending["status"] == "pending" and pending["customer_id"] == d.ids["D1"]
    assert pending["fund_account_id"] is None and pending["submitted_by"].startswith("user:")
    r = await client.get(f"{API}/fund-accounts", headers=d1)
    assert r.json()["items"] == []  # nothing is credited before finance confirms

    confirmed = await post(client, t.auth, f"/remittances/{pending['id']}/confirm")
    assert confirmed["status"] == "confirmed" and confirmed["decided_by"] and confirmed["transfer_id"]
    cash = await account(client, d1, confirmed["fund_account_id"])
    assert (cash["kind"], D(cash["balance"]), D(cash["held"]), D(cash["available"])) == (
        "cash",
        12000,
        0,
        12000,
    )
    [entry] = await entries(client, d1, cash["id"])
    assert (D(entry["amount"]), D(entry["balance_after"]), entry["transfer_kind"]) == (
        12000,
        12000,
        "receipt",
    )
    assert (entry["reference_type"], entry["reference_id"]) == ("remittance", pending["id"])

    second = await remit(client, t.auth, "3000.00", "BANK-002", d.ids["D1"])
    await post(client, t.auth, f"/remittances/{second['id']}/confirm")
    r = await client.get(f"{API}/customers/{d.ids['D1']}/statement", headers=d1)
    assert r.status_code == 200, r.text
    st = r.json()
    assert (st["date_from"], st["date_to"]) == (TODAY.replace(day=1).isoformat(), TODAY.isoformat())
    [acc] = st["accounts"]
    assert (D(acc["opening_balance"]), D(acc["credits"]), D(acc["debits"])) == (0, 15000, 0)
    assert D(acc["closing_balance"]) == D(st["closing_balance"]) == 15000 and acc["entry_count"] == 2
    assert [D(line["balance"]) for line in acc["lines"]] == [12000, 15000]

    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    later = (TODAY + timedelta(days=9)).isoformat()
    r = await client.get(
        f"{API}/customers/{d.ids['D1']}/statement", headers=t.auth, params={"from": tomorrow, "to": later}
    )
    [acc] = r.json()["accounts"]
    assert (D(acc["opening_balance"]), D(acc["closing_balance"]), acc["lines"]) == (15000, 15000, [])
    r = await client.get(
        f"{API}/customers/{d.ids['D1']}/statement", headers=t.auth, params={"from": later, "to": tomorrow}
    )
    assert r.status_code == 422
    await assert_ledger_balanced(app, t)


async def test_statement_matches_the_balance_cache_after_every_kind_of_movement(client, app, tenant_a):
    t = tenant_a
    d = await dealers(client, t)
    cash = await fund_cash(client, t, d.ids["D1"], "1000.00", "S-1")
    grant = await post(
        client,
        keyed(t.auth, "g-1"),
        "/fee-grants",
        {
            "customer_id": d.ids["D1"],
            "amount": "250.00",
            "fee_type": "display",
            "source": "S",
            "expires_on": FAR,
        },
    )
    await post(
        client,
        keyed(t.auth, "a-1"),
        "/fund-adjustments",
        {"fund_account_id": cash, "amount": "-99.99", "reason": "x"},
    )
    r = await client.get(
        f"{API}/customers/{d.ids['D1']}/statement",
        headers=t.auth,
        params={"from": (TODAY - timedelta(days=40)).isoformat(), "to": TODAY.isoformat()},
    )
    by_id = {a["fund_account_id"]: a for a in r.json()["accounts"]}
    for account_id in (cash, grant["fund_account"]["id"]):
        cached = await account(client, t.auth, account_id)
        assert D(by_id[account_id]["closing_balance"]) == D(cached["balance"])
    assert D(by_id[cash]["closing_balance"]) == D("900.01") and D(by_id[cash]["debits"]) == D("99.99")
    await assert_ledger_balanced(app, t)


async def test_a_retried_confirm_never_moves_money_twice(client, app, tenant_a):
    t = tenant_a
    d = await dealers(client, t)
    pending = await remit(client, t.auth, "800.00", "R-1", d.ids["D1"])
    url = f"{API}/remittances/{pending['id']}/confirm"
    first = await client.post(url, headers=keyed(t.auth, "confirm-1"))
    replay = await client.post(url, headers=keyed(t.auth, "confirm-1"))
    assert first.status_code == replay.status_code == 200
    assert replay.content == first.content and replay.headers["idempotent-replayed"] == "true"
    again = await client.post(url, headers=t.auth)
    assert (again.status_code, again.json()["code"]) == (409, "remittance_decided")
    rejected = await client.post(
        f"{API}/remittances/{pending['id']}/reject", headers=t.auth, json={"reason": "no"}
    )
    assert rejected.status_code == 409
    cash = first.json()["fund_account_id"]
    assert D((await account(client, t.auth, cash))["balance"]) == 800
    assert len(await entries(client, t.auth, cash)) == 1
    await assert_ledger_balanced(app, t)


async def test_concurrent_confirms_credit_once(client, app, tenant_a):
    t = tenant_a
    d = await dealers(client, t)
    pending = await remit(client, t.auth, "50.00", "C-1", d.ids["D1"])
    responses = await asyncio.gather(
        *[client.post(f"{API}/remittances/{pending['id']}/confirm", headers=t.auth) for _ in range(12)]
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 11, [r.text for r in responses]
    cash = next(r.json()["fund_account_id"] for r in responses if r.status_code == 200)
    assert D((await account(client, t.auth, cash))["balance"]) == 50
    await assert_ledger_balanced(app, t)


async def test_rejected_remittance_changes_no_balance_and_may_be_filed_again(client, app, tenant_a):
    t = tenant_a
    d = await dealers(client, t)
    first = await remit(client, d.keys["D1"], "70.00", "REF-9")
    r = await client.post(
        f"{API}/remittances",
        headers=keyed(d.keys["D1"], "again"),
        json={"amount": "70.00", "bank_reference": "REF-9", "remitted_on": TODAY.isoformat()},
    )
    assert (r.status_code, r.json()["code"]) == (409, "duplicate_remittance")
    r = await client.post(
        f"{API}/remittances/{first['id']}/reject", headers=d.keys["D1"], json={"reason": "x"}
    )
    assert r.status_code == 403  # dealers cannot decide
    rejected = await post(client, t.auth, f"/remittances/{first['id']}/reject", {"reason": "no such receipt"})
    assert (rejected["status"], rejected["reject_reason"], rejected["transfer_id"]) == (
        "rejected",
        "no such receipt",
        None,
    )
    r = await client.post(f"{API}/remittances/{first['id']}/confirm", headers=t.auth)
    assert (r.status_code, r.json()["code"]) == (409, "remittance_decided")
    r = await client.get(f"{API}/fund-accounts", headers=t.auth, params={"customer_id": d.ids["D1"]})
    assert r.json()["items"] == []
    refiled = await remit(client, d.keys["D1"], "70.00", "REF-9", note="corrected")
    assert refiled["status"] == "pending"
    await assert_ledger_balanced(app, t)


async def test_remittance_rules(client, tenant_a):
    t = tenant_a
    d = await dealers(client, t)
    body = {"amount": "10.00", "bank_reference": "X", "remitted_on": TODAY.isoformat()}
    r = await client.post(f"{API}/remittances", headers=d.keys["D1"], json=body)
    assert (r.status_code, r.json()["code"]) == (428, "idempotency_key_required")
    r = await client.post(
        f"{API}/remittances", headers=keyed(d.keys["D1"], "k1"), json={**body, "customer_id": d.ids["D2"]}
    )
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "customer_id")
    r = await client.post(f"{API}/remittances", headers=keyed(t.auth, "k2"), json=body)
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "customer_id")
    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    r = await client.post(
        f"{API}/remittances", headers=keyed(d.keys["D1"], "k3"), json={**body, "remitted_on": tomorrow}
    )
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "remitted_on")
    for bad in ("0", "-5", "1.001", "1000000000000"):
        r = await client.post(
            f"{API}/remittances", headers=keyed(d.keys["D1"], "k4"), json={**body, "amount": bad}
        )
        assert r.status_code == 422, (bad, r.text)
    auditor = await post(client, t.auth, "/users", {"email": "aud@f.example", "name": "A", "role": "auditor"})
    auditor_key = bearer(
        (await post(client, t.auth, "/api-keys", {"name": "a", "user_id": auditor["id"]}))["secret"]
    )
    r = await client.post(
        f"{API}/remittances", headers=keyed(auditor_key, "k5"), json={**body, "customer_id": d.ids["D1"]}
    )
    assert r.status_code == 403  # reading funds does not let staff file remittances
    deposit = await remit(client, t.auth, "5000.00", "DEP-1", d.ids["D1"], account_kind="deposit")
    confirmed = await post(client, t.auth, f"/remittances/{deposit['id']}/confirm")
    got = await account(client, t.auth, confirmed["fund_account_id"])
    assert (got["kind"], D(got["balance"]), got["usable_today"]) == ("deposit", 5000, False)


# --- fee grants, adjustments, special accounts ----------------------------------------------


async def test_fee_grant_opens_its_own_account_and_a_retry_moves_nothing(client, app, tenant_a):
    t = tenant_a
    d = await dealers(client, t)
    body = {
        "customer_id": d.ids["D1"],
        "sales_org_id": d.ids["org"],
        "amount": "1500.00",
        "fee_type": "display",
        "source": "Spring display campaign",
        "activity_ref": "ACT-7",
        "expires_on": (TODAY + timedelta(days=60)).isoformat(),
    }
    r = await client.post(f"{API}/fee-grants", headers=t.auth, json=body)
    assert (r.status_code, r.json()["code"]) == (428, "idempotency_key_required")
    first = await client.post(f"{API}/fee-grants", headers=keyed(t.auth, "grant-1"), json=body)
    assert first.status_code == 201, first.text
    replay = await client.post(f"{API}/fee-grants", headers=keyed(t.auth, "grant-1"), json=body)
    assert replay.content == first.content
    r = await client.post(f"{API}/fee-grants", headers=keyed(t.auth, "grant-1"), json={**body, "amount": "9"})
    assert (r.status_code, r.json()["code"]) == (422, "idempotency_key_reused")
    grant = first.json()
    fee = grant["fund_account"]
    assert (fee["kind"], fee["fee_type"], fee["source"], fee["activity_ref"]) == (
        "fee",
        "display",
        "Spring display campaign",
        "ACT-7",
    )
    assert (D(fee["balance"]), fee["valid_from"], fee["expires_on"], fee["usable_today"]) == (
        1500,
        TODAY.isoformat(),
        body["expires_on"],
        True,
    )
    assert sorted(D(leg["amount"]) for leg in grant["transfer"]["legs"]) == [-1500, 1500]
    second = await post(client, keyed(t.auth, "grant-2"), "/fee-grants", {**body, "amount": "10.00"})
    assert second["fund_account"]["id"] != fee["id"]  # one account per grant
    r = await client.get(f"{API}/fund-accounts", headers=d.keys["D1"], params={"kind": "fee"})
    assert {a["id"] for a in r.json()["items"]} == {fee["id"], second["fund_account"]["id"]}
    for bad in ({"expires_on": (TODAY - timedelta(days=1)).isoformat()}, {"customer_id": str(UUID(int=3))}):
        r = await client.post(f"{API}/fee-grants", headers=keyed(t.auth, f"bad-{bad}"), json={**body, **bad})
        assert (r.status_code, r.json()["errors"][0]["field"]) == (422, next(iter(bad))), r.text
    r = await client.post(
        f"{API}/fee-grants",
        headers=keyed(t.auth, "bad-window"),
        json={**body, "valid_from": body["expires_on"], "expires_on": TODAY.isoformat()},
    )
    assert r.status_code == 422
    await assert_ledger_balanced(app, t)


async def test_adjustments_correct_with_new_entries_and_never_go_below_held(client, app, tenant_a):
    t = tenant_a
    d = await dealers(client, t)
    cash = await fund_cash(client, t, d.ids["D1"], "100.00", "ADJ-1")
    out = await post(
        client,
        keyed(t.auth, "adj-1"),
        "/fund-adjustments",
        {"fund_account_id": cash, "amount": "-30.00", "reason": "fee"},
    )
    assert out["kind"] == "adjustment" and out["memo"] == "fee" and len(out["legs"]) == 2
    r = await client.post(
        f"{API}/fund-adjustments",
        headers=keyed(t.auth, "adj-2"),
        json={"fund_account_id": cash, "amount": "-70.01", "reason": "too much"},
    )
    assert (r.status_code, r.json()["code"]) == (409, "insufficient_funds")
    deposit = await remit(client, t.auth, "200.00", "DEP-2", d.ids["D1"], account_kind="deposit")
    deposit_id = (await post(client, t.auth, f"/remittances/{deposit['id']}/confirm"))["fund_account_id"]
    moved = await post(
        client,
        keyed(t.auth, "adj-3"),
        "/fund-adjustments",
        {
            "fund_account_id": cash,
            "amount": "200.00",
            "reason": "deposit returned",
            "counter_fund_account_id": deposit_id,
        },
    )
    assert {leg["fund_account_id"]: D(leg["amount"]) for leg in moved["legs"]} == {
        cash: 200,
        deposit_id: -200,
    }
    assert D((await account(client, t.auth, cash))["balance"]) == 270
    assert D((await account(client, t.auth, deposit_id))["balance"]) == 0
    other = await fund_cash(client, t, d.ids["D2"], "5.00", "ADJ-2")
    r = await client.post(
        f"{API}/fund-adjustments",
        headers=keyed(t.auth, "adj-4"),
        json={"fund_account_id": cash, "amount": "1.00", "reason": "x", "counter_fund_account_id": other},
    )
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "counter_fund_account_id")
    r = await client.post(
        f"{API}/fund-adjustments",
        headers=keyed(d.keys["D1"], "adj-5"),
        json={"fund_account_id": cash, "amount": "1.00", "reason": "x"},
    )
    assert r.status_code == 403
    assert [D(e["amount"]) for e in await entries(client, t.auth, cash)] == [100, -30, 200]
    await assert_ledger_balanced(app, t)


async def test_special_accounts_need_a_scope_of_real_products(client, tenant_a):
    t = tenant_a
    d = await dealers(client, t)
    brand = (await post(client, t.auth, "/brands", {"code": "BR", "name": "Brand"}))["id"]
    body = {"customer_id": d.ids["D1"], "name": "New launch subsidy", "scope": {"brand_ids": [brand]}}
    special = await post(client, t.auth, "/fund-accounts", body)
    assert special["kind"] == "special" and special["scope"]["brand_ids"] == [brand]
    r = await client.post(f"{API}/fund-accounts", headers=t.auth, json={**body, "scope": {}})
    assert r.status_code == 422
    r = await client.post(
        f"{API}/fund-accounts", headers=t.auth, json={**body, "scope": {"sku_ids": [str(UUID(int=1))]}}
    )
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "scope.sku_ids[0]")


# --- visibility --------------------------------------------------------------------------------


async def test_dealers_see_their_subtree_only(client, app, tenant_a):
    t = tenant_a
    d = await dealers(client, t)
    mine = await fund_cash(client, t, d.ids["D1"], "10.00", "V-1")
    child = await fund_cash(client, t, d.ids["D1a"], "20.00", "V-2")
    theirs = await fund_cash(client, t, d.ids["D2"], "30.00", "V-3")
    r = await client.get(f"{API}/fund-accounts", headers=d.keys["D1"], params={"limit": 200})
    assert {a["id"] for a in r.json()["items"]} == {mine, child}
    r = await client.get(f"{API}/fund-accounts", headers=d.keys["D1a"], params={"limit": 200})
    assert {a["id"] for a in r.json()["items"]} == {child}
    for path in (
        f"/fund-accounts/{theirs}",
        f"/fund-accounts/{theirs}/entries",
        f"/fund-accounts/{theirs}/holds",
    ):
        assert (await client.get(f"{API}{path}", headers=d.keys["D1"])).status_code == 404
    r = await client.get(f"{API}/customers/{d.ids['D2']}/statement", headers=d.keys["D1"])
    assert r.status_code == 404
    r = await client.get(f"{API}/customers/{d.ids['D1']}/statement", headers=d.keys["D1a"])
    assert r.status_code == 404
    staff = await client.get(f"{API}/fund-accounts", headers=t.auth, params={"kind": "system"})
    assert {a["code"] for a in staff.json()["items"]} == {"receipts"}
    r = await client.get(f"{API}/fund-accounts", headers=d.keys["D1"], params={"kind": "system"})
    assert r.json()["items"] == []
    remittances = await client.get(f"{API}/remittances", headers=d.keys["D1"], params={"limit": 200})
    assert {x["customer_id"] for x in remittances.json()["items"]} == {d.ids["D1"], d.ids["D1a"]}
    other = (
        await client.get(f"{API}/remittances", headers=t.auth, params={"customer_id": d.ids["D2"]})
    ).json()
    assert (
        await client.get(f"{API}/remittances/{other['items'][0]['id']}", headers=d.keys["D1"])
    ).status_code == 404
    for path in (f"/fund-accounts/{UUID(int=5)}", f"/remittances/{UUID(int=5)}"):
        assert (await client.get(f"{API}{path}", headers=t.auth)).status_code == 404
    await assert_ledger_balanced(app, t)


async def test_every_money_write_audits_and_emits_in_its_transaction(client, app, tenant_a):
    t = tenant_a
    d = await dealers(client, t)

    async def counts() -> tuple[int, int]:
        async with tx(app, t) as s:
            audits = await s.scalar(
                select(func.count(AuditEntry.id)).where(AuditEntry.object_type == "fund_transfer")
            )
            evs = await s.scalar(
                select(func.count(OutboxEvent.id)).where(OutboxEvent.type == "fund_transfer.created")
            )
            return audits or 0, evs or 0

    await fund_cash(client, t, d.ids["D1"], "10.00", "E-1")
    await post(
        client,
        keyed(t.auth, "e-g"),
        "/fee-grants",
        {"customer_id": d.ids["D1"], "amount": "5.00", "fee_type": "f", "source": "s", "expires_on": FAR},
    )
    assert await counts() == (2, 2)
    async with tx(app, t) as s:
        transfers = (await s.scalars(select(FundTransfer))).all()
    assert {x.kind for x in transfers} == {"receipt", "fee_grant"}
    assert len({x.idempotency_key for x in transfers}) == 2
