"""The order pool asks the approval rules and takes promotion budgets at submit: a rule sends an
order to approval with its reason and the role that approves it; a budget used up refuses the
next order and leaves nothing behind; a cancelled order gives its use back."""

from __future__ import annotations

from decimal import Decimal as D
from uuid import uuid4

from tests.test_funds_api import API, fund_cash, post
from tests.test_orders_api import act, basket, cash, shop, submit, submitted


async def _user_key(client, t, role: str) -> dict[str, str]:
    user = await post(
        client, t.auth, "/users", {"email": f"{role}-{uuid4().hex[:6]}@x.example", "name": role, "role": role}
    )
    key = await post(client, t.auth, "/api-keys", {"name": role, "user_id": user["id"]})
    return {"Authorization": f"Bearer {key['secret']}"}


async def test_an_approval_rule_holds_an_order_for_the_role_it_names(client, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    cash_id = await fund_cash(client, t, s.d.ids["D1"], "1000.00", "RULES")
    await post(
        client,
        t.auth,
        "/approval-rules",
        {"code": "BIG", "name": "Big orders", "min_amount": "100.00", "approver_role": "finance"},
    )
    small = await submitted(client, s.d.keys["D1"], basket(s, "5"))  # 50: under the rule
    assert (small["status"], small["approval_reasons"], small["approver_roles"]) == ("approved", [], [])

    big = await submitted(client, s.d.keys["D1"], basket(s, "10", "5"))  # 150
    assert big["status"] == "pending_approval"
    assert big["approval_reasons"] == ["rule BIG (Big orders): amount 150.00 ≥ 100.00"]
    assert big["approver_roles"] == ["finance"]
    assert await cash(client, t, cash_id) == (1000, 200)  # frozen while it waits

    manager = await _user_key(client, t, "sales_manager")
    r = await act(client, manager, big["id"], "approve")
    assert (r.status_code, r.json()["code"]) == (403, "approver_role_required")
    got = (await client.get(f"{API}/orders/{big['id']}", headers=t.auth)).json()
    assert (got["status"], got["version"]) == ("pending_approval", 1)  # the refusal changed nothing

    finance = await _user_key(client, t, "finance")
    r = await act(client, finance, big["id"], "approve")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved"

    # An inactive rule holds nothing.
    rules = (await client.get(f"{API}/approval-rules", headers=t.auth)).json()["items"]
    await client.patch(
        f"{API}/approval-rules/{rules[0]['id']}",
        headers={**t.auth, "If-Match": '"1"'},
        json={"active": False},
    )
    again = await submitted(client, s.d.keys["D1"], basket(s, "10", "5"))
    assert again["status"] == "approved"


async def test_a_promotion_budget_is_taken_at_submit_and_given_back_on_cancel(client, tenant_a):
    t = tenant_a
    s = await shop(client, t)
    await fund_cash(client, t, s.d.ids["D1"], "1000.00", "BUDGET")
    body = {
        "code": "ONCE",
        "name": "10% off, one order only",
        "type": "straight_discount",
        "rule": {"off_ratio": "0.1"},
        "budget_count": 1,
    }
    await post(client, t.auth, "/promotions", body)
    first = await submitted(client, s.d.keys["D1"], basket(s, "10"))
    assert D(first["totals"]["discount"]) == 10

    # The quote no longer offers it, so the next order simply pays full price ...
    second = await submitted(client, s.d.keys["D1"], basket(s, "10"))
    assert D(second["totals"]["discount"]) == 0
    # ... and cancelling the first gives its use back to the next order.
    r = await act(client, s.d.keys["D1"], first["id"], "cancel")
    assert r.status_code == 200, r.text
    third = await submitted(client, s.d.keys["D1"], basket(s, "10"))
    assert D(third["totals"]["discount"]) == 10
    r = await submit(client, s.d.keys["D1"], basket(s, "10"))
    assert r.status_code == 201 and D(r.json()["totals"]["discount"]) == 0
