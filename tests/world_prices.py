"""The prices part of the isolation world (see tests/world.py)."""

from __future__ import annotations

import httpx

from tests.fixtures import TenantHandle, bearer
from tests.world import World


async def _post(client: httpx.AsyncClient, t: TenantHandle, path: str, body: dict[str, object]) -> str:
    r = await client.post(path, headers=t.auth, json=body)
    assert r.status_code == 201, (path, r.status_code, r.text)
    return str(r.json()["id"])


async def build(client: httpx.AsyncClient, t: TenantHandle, w: World) -> None:
    """Create one of every prices object in ``w.tenant`` and record its id in ``w.ids``."""
    ids = w.ids
    ids["price_list_id"] = await _post(
        client, t, "/api/v1/price-lists", {"code": "BASE", "name": "Base prices", "step": "base"}
    )
    ids["price_entry_id"] = await _post(
        client,
        t,
        f"/api/v1/price-lists/{ids['price_list_id']}/entries",
        {"sku_id": ids["sku_id"], "unit_id": ids["unit_id"], "price": "100.00"},
    )
    ids["price_floor_id"] = await _post(
        client,
        t,
        "/api/v1/price-floors",
        {"sku_id": ids["sku_id"], "unit_id": ids["unit_id"], "price": "80.00", "action": "block"},
    )
    # Another tenant replays this creation on this tenant's list: the body must be valid for it.
    w.bodies["createPriceEntry"] = {"sku_id": ids["sku_id"], "unit_id": ids["unit_id"], "price": "1.00"}
    await build_dealer_lists(client, t, w)


async def build_dealer_lists(client: httpx.AsyncClient, t: TenantHandle, w: World) -> None:
    """Dealers d1 and d2 each keep an own price list with one entry; d2's go to
    ``w.other_dealer_ids`` so that d1 is shown to reach neither (404) nor see them in lists."""
    for dealer in ("d1", "d2"):
        headers = bearer(w.dealer_keys[dealer])
        r = await client.post(
            "/api/v1/price-lists",
            headers=headers,
            json={"code": f"OWN-{dealer}", "name": dealer, "step": "base"},
        )
        assert r.status_code == 201, r.text
        list_id = r.json()["id"]
        r = await client.post(
            f"/api/v1/price-lists/{list_id}/entries",
            headers=headers,
            json={"sku_id": w.ids["sku_id"], "unit_id": w.ids["unit_id"], "price": "100.00"},
        )
        assert r.status_code == 201, r.text
        if dealer == "d2":
            w.other_dealer_ids["price_list_id"] = list_id
            w.other_dealer_ids["price_entry_id"] = r.json()["id"]
