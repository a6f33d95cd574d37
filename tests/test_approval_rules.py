"""Order approval rules: the pure matcher (every condition, alone and together), and the rules over
REST (create, conflicts, bad input, versions, a trial, revisions, dealers kept out)."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import httpx
from hypothesis import given
from hypothesis import strategies as st

from omnicloud.policies import approval
from omnicloud.policies.rebates import CustomerScope, ProductScope
from tests.test_funds_api import API, dealers, post

ORDER = approval.OrderFacts(
    customer_id="c1",
    customer_class="KA",
    level="1",
    region_path=("east", "cn"),
    channel="b2b",
    gross=D("12000.00"),
    amount=D("10800.00"),
    credit_amount=D("800.00"),
    lines=(approval.OrderLineFacts(sku_id="s1", category_path=("liquor", "drinks"), brand_id="b1"),),
)


def rule(**kw: Any) -> approval.ApprovalRule:
    return approval.ApprovalRule(id="r1", code=kw.pop("code", "R1"), name="Rule", **kw)


def test_a_rule_without_conditions_catches_every_order():
    [m] = approval.matching([rule()], ORDER)
    assert (m.code, m.reason) == ("R1", "rule R1 (Rule): every order")


def test_each_condition_alone_matches_or_not():
    cases = [
        (dict(min_amount=D("10800.00")), True),
        (dict(min_amount=D("10800.01")), False),
        (dict(min_discount_ratio=D("0.10")), True),  # 1,200 of 12,000
        (dict(min_discount_ratio=D("0.11")), False),
        (dict(uses_credit=True), True),
        (dict(customers=CustomerScope(customer_classes=frozenset({"KA"}))), True),
        (dict(customers=CustomerScope(region_ids=frozenset({"cn"}))), True),  # by ancestor
        (dict(customers=CustomerScope(levels=frozenset({"2"}))), False),
        (dict(products=ProductScope(category_ids=frozenset({"drinks"}))), True),
        (dict(products=ProductScope(sku_ids=frozenset({"s9"}))), False),
        (dict(channels=frozenset({"b2b"})), True),
        (dict(channels=frozenset({"pos"})), False),
    ]
    for conditions, expected in cases:
        assert bool(approval.matching([rule(**conditions)], ORDER)) is expected, conditions


def test_every_condition_must_hold_and_the_reason_says_why():
    r = rule(min_amount=D("10000"), uses_credit=True, channels=frozenset({"b2b"}))
    [m] = approval.matching([r], ORDER)
    assert m.reason == "rule R1 (Rule): amount 10800.00 ≥ 10000; 800.00 on credit; channel b2b"
    cash_only = approval.OrderFacts(**{**_fields(ORDER), "credit_amount": D(0)})
    assert approval.matching([r], cash_only) == []


def _fields(o: approval.OrderFacts) -> dict[str, Any]:
    return {f: getattr(o, f) for f in o.__struct_fields__}


@given(
    amount=st.decimals(min_value=0, max_value=10**7, places=2),
    bar=st.decimals(min_value=0, max_value=10**7, places=2),
)
def test_the_amount_condition_is_a_threshold(amount, bar):
    order = approval.OrderFacts(**{**_fields(ORDER), "amount": amount, "gross": max(amount, ORDER.gross)})
    assert bool(approval.matching([rule(min_amount=bar)], order)) is (amount >= bar)


def test_who_may_approve():
    assert approval.may_approve([], ["sales_rep"])
    assert approval.may_approve(["finance", "sales_manager"], ["finance"])
    assert not approval.may_approve(["finance"], ["sales_manager"])
    assert approval.may_approve(["finance"], ["tenant_admin"])


# --- over REST --------------------------------------------------------------------------------


async def _rule(client: httpx.AsyncClient, auth: dict[str, str], body: dict[str, Any]) -> httpx.Response:
    return await client.post(f"{API}/approval-rules", headers=auth, json=body)


async def test_rules_over_rest_with_a_trial(client, tenant_a):
    t = tenant_a
    d = await dealers(client, t)
    big = await _rule(client, t.auth, {"code": "BIG", "name": "Big orders", "min_amount": "10000.00"})
    assert big.status_code == 201, big.text
    credit = await _rule(
        client,
        t.auth,
        {"code": "CREDIT", "name": "On credit", "uses_credit": True, "approver_role": "finance"},
    )
    assert credit.status_code == 201, credit.text

    trial = {"customer_id": d.ids["D1"], "gross": "12000.00", "amount": "11000.00", "credit_amount": "100.00"}
    r = await client.post(f"{API}/approval-rules/trial", headers=t.auth, json=trial)
    assert r.status_code == 200, r.text
    verdict = r.json()
    assert verdict["needs_approval"] is True
    assert [(m["code"], m["approver_role"]) for m in verdict["matches"]] == [
        ("BIG", None),
        ("CREDIT", "finance"),
    ]

    small = {**trial, "gross": "100.00", "amount": "100.00", "credit_amount": "0.00"}
    r = await client.post(f"{API}/approval-rules/trial", headers=t.auth, json=small)
    assert r.json() == {"needs_approval": False, "matches": []}

    # Deactivating a rule takes effect at once (a new revision), and If-Match guards the change.
    rid = big.json()["id"]
    r = await client.patch(f"{API}/approval-rules/{rid}", headers=t.auth, json={"active": False})
    assert r.status_code == 428
    r = await client.patch(
        f"{API}/approval-rules/{rid}", headers={**t.auth, "If-Match": '"9"'}, json={"active": False}
    )
    assert r.status_code == 412
    r = await client.patch(
        f"{API}/approval-rules/{rid}", headers={**t.auth, "If-Match": '"1"'}, json={"active": False}
    )
    assert r.status_code == 200 and r.json()["version"] == 2
    r = await client.post(f"{API}/approval-rules/trial", headers=t.auth, json=trial)
    assert [m["code"] for m in r.json()["matches"]] == ["CREDIT"]
    listed = (await client.get(f"{API}/approval-rules", headers=t.auth, params={"active": "true"})).json()
    assert [x["code"] for x in listed["items"]] == ["CREDIT"]

    r = await client.delete(f"{API}/approval-rules/{rid}", headers={**t.auth, "If-Match": '"2"'})
    assert r.status_code == 204
    assert (await client.get(f"{API}/approval-rules/{rid}", headers=t.auth)).status_code == 404

    # Dealers neither read nor write the rules.
    dealer = d.keys["D1"]
    assert (await client.get(f"{API}/approval-rules", headers=dealer)).status_code == 403
    assert (await _rule(client, dealer, {"code": "X", "name": "X"})).status_code == 403


async def test_bad_rules_are_refused_and_change_nothing(client, tenant_a):
    t = tenant_a
    ok = await post(client, t.auth, "/approval-rules", {"code": "ALL", "name": "Every order"})
    bad = [
        ({"code": "ALL", "name": "Again"}, 409, None),
        ({"code": "N", "name": "N", "min_amount": "-1"}, 422, "min_amount"),
        ({"code": "N", "name": "N", "min_discount_ratio": "1.5"}, 422, "min_discount_ratio"),
        ({"code": "N", "name": "N", "approver_role": "nobody"}, 422, "approver_role"),
        (
            {
                "code": "N",
                "name": "N",
                "customers": {"customer_ids": ["00000000-0000-7000-8000-000000000000"]},
            },
            422,
            "customers.customer_ids[0]",
        ),
        ({"code": "N", "name": "N", "unknown": 1}, 422, "unknown"),
    ]
    for body, status, field in bad:
        r = await _rule(client, t.auth, body)
        assert r.status_code == status, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        if field:
            assert field in r.text
    listed = (await client.get(f"{API}/approval-rules", headers=t.auth)).json()
    assert [x["id"] for x in listed["items"]] == [ok["id"]]
