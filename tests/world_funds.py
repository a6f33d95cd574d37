"""The funds part of the isolation world (see tests/world.py)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fixtures import TenantHandle, bearer
from tests.world import World


async def _post(
    client: httpx.AsyncClient,
    t: TenantHandle | dict[str, str],
    path: str,
    body: Any = None,
    *,
    key: str | None = None,
) -> dict[str, Any]:
    auth = t if isinstance(t, dict) else t.auth
    headers = {**auth, **({"Idempotency-Key": key} if key else {})}
    r = await client.post(path, headers=headers, json=body)
    assert r.status_code in (200, 201), (path, r.status_code, r.text)
    return r.json()


async def _funded_remittance(client: httpx.AsyncClient, t: TenantHandle, customer_id: str, ref: str) -> str:
    """A confirmed remittance of ``customer_id``; returns the id of the cash account it credited."""
    remittance = await _post(
        client,
        t,
        "/api/v1/remittances",
        {"customer_id": customer_id, "amount": "500.00", "bank_reference": ref, "remitted_on": "2024-01-05"},
        key=f"world-{ref}",
    )
    confirmed = await _post(client, t, f"/api/v1/remittances/{remittance['id']}/confirm")
    return str(confirmed["fund_account_id"])


async def build(client: httpx.AsyncClient, t: TenantHandle, w: World) -> None:
    """Create one of every funds object in ``w.tenant`` and record its id in ``w.ids``."""
    ids = w.ids
    d1, d2 = ids["customer_id"], w.other_dealer_ids["customer_id"]
    ids["fund_account_id"] = await _funded_remittance(client, t, d1, "W-1")
    pending = await _post(
        client,
        t,
        "/api/v1/remittances",
        {"customer_id": d1, "amount": "20.00", "bank_reference": "W-2", "remitted_on": "2024-01-06"},
        key="world-W-2",
    )
    ids["remittance_id"] = pending["id"]
    await _post(
        client,
        t,
        "/api/v1/fee-grants",
        {
            "customer_id": d1,
            "amount": "100.00",
            "fee_type": "display",
            "source": "world",
            "expires_on": "2999-12-31",
        },
        key="world-fee",
    )
    await _post(
        client,
        t,
        "/api/v1/fund-adjustments",
        {"fund_account_id": ids["fund_account_id"], "amount": "-10.00", "reason": "world"},
        key="world-adjust",
    )
    await _post(
        client,
        t,
        "/api/v1/fund-accounts",
        {"customer_id": d1, "name": "World special", "scope": {"sku_ids": [ids["sku_id"]]}},
    )
    w.other_dealer_ids["fund_account_id"] = await _funded_remittance(client, t, d2, "W-3")
    other = await _post(
        client,
        t,
        "/api/v1/remittances",
        {"customer_id": d2, "amount": "30.00", "bank_reference": "W-4", "remitted_on": "2024-01-07"},
        key="world-W-4",
    )
    w.other_dealer_ids["remittance_id"] = other["id"]
    w.bodies["rejectRemittance"] = {"reason": "world"}
    # Dealer pools (DOMAIN §7): d1 and d2 each grant credit to a dealer below them, and d1's
    # sub-dealer pays into d1's pool, confirmed by d1.
    for dealer, into, code in (("d1", ids, "w-d1b"), ("d2", w.other_dealer_ids, "w-d2a")):
        parent = ids["customer_id"] if dealer == "d1" else d2
        below = await _post(
            client,
            t,
            "/api/v1/customers",
            {"code": code, "name": code, "kind": "dealer", "parent_id": parent},
        )
        auth = bearer(w.dealer_keys[dealer])
        grant = await _post(
            client,
            auth,
            "/api/v1/credit-grants",
            {"customer_id": below["id"], "credit_limit": "300.00"},
            key=f"world-grant-{dealer}",
        )
        into["credit_grant_id"] = grant["id"]
        if dealer == "d1":
            paid = await _post(
                client,
                t,
                "/api/v1/remittances",
                {
                    "customer_id": below["id"],
                    "seller_customer_id": parent,
                    "amount": "40.00",
                    "bank_reference": "W-5",
                    "remitted_on": "2024-01-08",
                },
                key="world-W-5",
            )
            await _post(client, auth, f"/api/v1/remittances/{paid['id']}/confirm")
    w.bodies["updateCreditGrant"] = {"credit_limit": "400.00"}
    w.bodies["createCreditGrantTemporaryLine"] = {"amount": "50.00", "expires_on": "2999-12-31"}
