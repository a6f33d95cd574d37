"""The board (金价牌) end to end through the app: enabling, setting, listing, history,
404 for tenants without the plugin, isolation, permissions and bad input."""

from __future__ import annotations

from tests.fixtures import make_tenant

from industry_jewelry.service import DEFAULT_PURITIES
from industry_jewelry.tests.helpers import PLUGIN_URL, X, enable, jewelry_tenant, set_price, user_key


async def test_enable_seeds_purities_once(client):
    tenant = await make_tenant(client, prefix="j")
    body = await enable(client, tenant)
    assert body["enabled"] is True and body["settings"]["lock_minutes"] == 15
    assert {"jewelry:board:read", "jewelry:board:write"} <= set(body["permissions"])
    r = await client.get(f"{X}/purities", headers=tenant.auth)
    assert r.status_code == 200, r.text
    seeded = {(p["metal"], p["purity"]) for p in r.json()["items"]}
    assert seeded == {(metal, code) for metal, code, _ in DEFAULT_PURITIES}

    # A tenant's own change survives re-enabling; nothing is seeded twice.
    r = await client.put(
        f"{X}/purities/Au750", headers=tenant.auth, json={"metal": "gold", "name": "18K", "active": False}
    )
    assert r.status_code == 200 and r.json()["active"] is False
    r = await client.put(
        PLUGIN_URL, headers={**tenant.auth, "If-Match": '"1"'}, json={"settings": {"lock_minutes": 30}}
    )
    assert r.status_code == 200, r.text
    items = (await client.get(f"{X}/purities", headers=tenant.auth)).json()["items"]
    assert len(items) == len(DEFAULT_PURITIES)
    assert next(p for p in items if p["purity"] == "Au750") == {
        "purity": "Au750",
        "metal": "gold",
        "name": "18K",
        "active": False,
    }


async def test_set_list_and_history(client):
    tenant = await jewelry_tenant(client)
    r = await client.get(f"{X}/board-prices", headers=tenant.auth)
    assert r.status_code == 200 and r.json() == {"currency": "CNY", "items": []}

    first = await set_price(client, tenant, exchange_price="560.00", brand_premium="40")
    assert (
        first["price"] == "600.00"
        and first["exchange_price"] == "560.00"
        and first["brand_premium"] == "40.00"
    )
    assert first["set_by"].startswith("user:")
    await set_price(client, tenant, "Pt950", "platinum", price="320.5")

    board = (await client.get(f"{X}/board-prices", headers=tenant.auth)).json()["items"]
    assert [(b["metal"], b["purity"], b["price"]) for b in board] == [
        ("gold", "Au999", "600.00"),
        ("platinum", "Pt950", "320.50"),
    ]

    # PUT with the current price adds no history entry; a different price does.
    r = await client.put(f"{X}/board-prices/gold/Au999", headers=tenant.auth, json={"price": "600"})
    assert r.status_code == 200 and r.json()["id"] == first["id"]
    r = await client.put(f"{X}/board-prices/gold/Au999", headers=tenant.auth, json={"price": "612.30"})
    assert r.status_code == 200 and r.json()["id"] != first["id"] and r.json()["exchange_price"] is None
    r = await client.get(f"{X}/board-prices/gold/Au999", headers=tenant.auth)
    assert r.status_code == 200 and r.json()["price"] == "612.30"

    history = (await client.get(f"{X}/board-prices/gold/Au999/history", headers=tenant.auth)).json()
    assert [h["price"] for h in history["items"]] == ["600.00", "612.30"] and history["next_cursor"] is None

    r = await client.get("/api/v1/audit", headers=tenant.auth, params={"object_type": "jewelry_board_price"})
    assert len(r.json()["items"]) == 3


async def test_history_pages(client):
    tenant = await jewelry_tenant(client)
    for price in ("600", "601", "602"):
        await set_price(client, tenant, price=price)
    url = f"{X}/board-prices/gold/Au999/history"
    page = (await client.get(url, headers=tenant.auth, params={"limit": 2})).json()
    assert [h["price"] for h in page["items"]] == ["600.00", "601.00"] and page["next_cursor"]
    rest = (
        await client.get(url, headers=tenant.auth, params={"limit": 2, "cursor": page["next_cursor"]})
    ).json()
    assert [h["price"] for h in rest["items"]] == ["602.00"] and rest["next_cursor"] is None
    for path in ("gold/Xx1", "silver/Au999"):
        assert (await client.get(f"{X}/board-prices/{path}/history", headers=tenant.auth)).status_code == 404
        r = await client.put(f"{X}/board-prices/{path}", headers=tenant.auth, json={"price": "1"})
        assert r.status_code == 404 and r.json()["code"] == "jewelry_purity_missing"


async def test_post_is_idempotent(client):
    tenant = await jewelry_tenant(client)
    key = {**tenant.auth, "Idempotency-Key": "board-1"}
    body = {"metal": "gold", "purity": "Au999", "price": "600"}
    first = await client.post(f"{X}/board-prices", headers=key, json=body)
    again = await client.post(f"{X}/board-prices", headers=key, json=body)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers.get("idempotent-replayed") == "true"
    other = await client.post(f"{X}/board-prices", headers=key, json={**body, "price": "601"})
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    history = (await client.get(f"{X}/board-prices/gold/Au999/history", headers=tenant.auth)).json()
    assert len(history["items"]) == 1


async def test_routes_answer_404_unless_enabled(client):
    tenant = await make_tenant(client, prefix="j")
    routes = [
        ("GET", f"{X}/board-prices", None),
        ("POST", f"{X}/board-prices", {"metal": "gold", "purity": "Au999", "price": "600"}),
        ("GET", f"{X}/board-prices/gold/Au999", None),
        ("PUT", f"{X}/board-prices/gold/Au999", {"price": "600"}),
        ("GET", f"{X}/board-prices/gold/Au999/history", None),
        ("GET", f"{X}/purities", None),
        ("PUT", f"{X}/purities/Au999", {"metal": "gold", "name": "x"}),
        ("POST", f"{X}/trade-in-quotes", {"metal": "gold", "purity": "Au999", "weight_g": "1"}),
    ]

    async def statuses() -> list[int]:
        out = []
        for method, url, body in routes:
            r = await client.request(method, url, headers=tenant.auth, json=body)
            out.append(r.status_code)
            if r.status_code == 404:
                assert r.json()["code"] == "plugin_not_enabled"
        return out

    assert await statuses() == [404] * len(routes)
    await enable(client, tenant)
    await set_price(client, tenant, price="600")
    assert (await client.get(f"{X}/board-prices", headers=tenant.auth)).status_code == 200

    r = await client.delete(PLUGIN_URL, headers=tenant.auth)
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert await statuses() == [404] * len(routes)

    # Disabling stops the plugin's effects; its data stays for a re-enable.
    await enable(client, tenant)
    r = await client.get(f"{X}/board-prices/gold/Au999", headers=tenant.auth)
    assert r.status_code == 200 and r.json()["price"] == "600.00"


async def test_tenants_never_see_each_others_board(client):
    a = await jewelry_tenant(client, prefix="a")
    b = await jewelry_tenant(client, prefix="b")
    price = await set_price(client, a, price="600")
    assert (await client.get(f"{X}/board-prices", headers=b.auth)).json()["items"] == []
    assert (await client.get(f"{X}/board-prices/gold/Au999", headers=b.auth)).status_code == 404
    history = (await client.get(f"{X}/board-prices/gold/Au999/history", headers=b.auth)).json()
    assert history["items"] == []
    # B's own price never touches A's board.
    await set_price(client, b, price="700")
    r = await client.get(f"{X}/board-prices/gold/Au999", headers=a.auth)
    assert r.json()["id"] == price["id"] and r.json()["price"] == "600.00"


async def test_permissions(client):
    tenant = await jewelry_tenant(client)
    reader = await user_key(client, tenant, ["jewelry:board:read"])
    nobody = await user_key(client, tenant, ["catalog:read"])
    assert (await client.get(f"{X}/board-prices", headers=reader)).status_code == 200
    r = await client.post(
        f"{X}/board-prices", headers=reader, json={"metal": "gold", "purity": "Au999", "price": "1"}
    )
    assert r.status_code == 403 and r.json()["code"] == "missing_permission"
    assert (
        await client.put(f"{X}/board-prices/gold/Au999", headers=reader, json={"price": "1"})
    ).status_code == 403
    r = await client.put(f"{X}/purities/Au999", headers=reader, json={"metal": "gold", "name": "x"})
    assert r.status_code == 403
    assert (await client.get(f"{X}/board-prices", headers=nobody)).status_code == 403
    writer = await user_key(client, tenant, ["jewelry:board:read", "jewelry:board:write"])
    await set_price(client, tenant, price="600")
    r = await client.put(f"{X}/board-prices/gold/Au999", headers=writer, json={"price": "605"})
    assert r.status_code == 200 and r.json()["price"] == "605.00"


async def test_bad_input_changes_nothing(client):
    tenant = await jewelry_tenant(client)
    url = f"{X}/board-prices"
    cases = [
        ({"metal": "gold", "purity": "Au999", "price": "-1"}, "price"),
        ({"metal": "gold", "purity": "Au999", "price": "0"}, "price"),
        ({"metal": "gold", "purity": "Au999", "price": "600.001"}, "price"),
        ({"metal": "gold", "purity": "Au999", "price": "1e13"}, "price"),
        ({"metal": "gold", "purity": "Au999"}, "price"),
        ({"metal": "gold", "purity": "Au999", "exchange_price": "560"}, "brand_premium"),
        ({"metal": "gold", "purity": "Au999", "brand_premium": "40"}, "exchange_price"),
        (
            {"metal": "gold", "purity": "Au999", "exchange_price": "560", "brand_premium": "-1"},
            "brand_premium",
        ),
        (
            {
                "metal": "gold",
                "purity": "Au999",
                "price": "601",
                "exchange_price": "560",
                "brand_premium": "40",
            },
            "price",
        ),
        ({"metal": "gold", "purity": "Zz1", "price": "600"}, "purity"),
        ({"metal": "silver", "purity": "Au999", "price": "600"}, "metal"),
    ]
    for body, field in cases:
        r = await client.post(url, headers=tenant.auth, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["errors"][0]["field"] == field, (body, r.json())
    for body in (
        {"metal": "gold", "purity": "Au999", "price": "600", "colour": "red"},
        {"metal": "Gold!"},
        [],
    ):
        r = await client.post(url, headers=tenant.auth, json=body)
        assert 400 <= r.status_code < 500, (body, r.text)
    r = await client.post(
        url, headers={**tenant.auth, "content-type": "application/json"}, content=b'{"metal":'
    )
    assert r.status_code == 400
    r = await client.put(f"{X}/board-prices/gold/Au999", headers=tenant.auth, json={"price": "abc"})
    assert 400 <= r.status_code < 500
    assert (await client.get(url, headers=tenant.auth)).json()["items"] == []
    r = await client.get("/api/v1/audit", headers=tenant.auth, params={"object_type": "jewelry_board_price"})
    assert r.json()["items"] == []


async def test_purities(client):
    tenant = await jewelry_tenant(client)
    r = await client.put(
        f"{X}/purities/Pd950", headers=tenant.auth, json={"metal": "palladium", "name": "钯金 Pd950"}
    )
    assert r.status_code == 200 and r.json() == {
        "purity": "Pd950",
        "metal": "palladium",
        "name": "钯金 Pd950",
        "active": True,
    }
    await set_price(client, tenant, "Pd950", "palladium", price="250")
    r = await client.put(f"{X}/purities/Pd950", headers=tenant.auth, json={"metal": "gold", "name": "x"})
    assert r.status_code == 409 and r.json()["code"] == "jewelry_purity_metal_fixed"
    r = await client.put(
        f"{X}/purities/Pd950", headers=tenant.auth, json={"metal": "palladium", "name": "钯", "active": False}
    )
    assert r.status_code == 200 and r.json()["active"] is False
    r = await client.post(
        f"{X}/board-prices", headers=tenant.auth, json={"metal": "palladium", "purity": "Pd950", "price": "1"}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "purity"
    r = await client.put(f"{X}/purities/bad code!", headers=tenant.auth, json={"metal": "gold", "name": "x"})
    assert r.status_code in (404, 422)
    r = await client.put(f"{X}/purities/{'A' * 21}", headers=tenant.auth, json={"metal": "gold", "name": "x"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "purity"
    r = await client.put(f"{X}/purities/Au1", headers=tenant.auth, json={"metal": "Gold", "name": "x"})
    assert r.status_code in (400, 422)


async def test_settings_are_validated_naming_the_field(client):
    tenant = await make_tenant(client, prefix="j")
    cases = [
        ({"lock_minutes": 0}, "settings.lock_minutes"),
        ({"lock_minutes": 1441}, "settings.lock_minutes"),
        ({"lock_minutes": "ten"}, "settings.lock_minutes"),
        ({"currency": "cny"}, "settings.currency"),
        ({"accepted_purities": ["Au999", "no spaces"]}, "settings.accepted_purities[1]"),
        ({"default_labour_per_gram": "abc"}, "settings.default_labour_per_gram"),
    ]
    for settings, field in cases:
        r = await client.put(PLUGIN_URL, headers=tenant.auth, json={"settings": settings})
        assert r.status_code == 422, (settings, r.text)
        assert r.json()["errors"][0]["field"] == field, (settings, r.json())
    # Rules checked across the whole object name the field in the message.
    for settings, word in (
        ({"default_labour_per_gram": "-1"}, "default_labour_per_gram"),
        ({"colour": 1}, "colour"),
    ):
        r = await client.put(PLUGIN_URL, headers=tenant.auth, json={"settings": settings})
        assert r.status_code == 422 and word in r.json()["detail"], r.text
    assert (await client.get(f"{X}/board-prices", headers=tenant.auth)).status_code == 404

    body = await enable(
        client, tenant, lock_minutes=5, default_labour_per_gram="12.5", accepted_purities=["Au999"]
    )
    assert body["settings"] == {
        "lock_minutes": 5,
        "currency": "CNY",
        "default_labour_per_gram": "12.5",
        "accepted_purities": ["Au999"],
    }
    assert (
        body["settings_schema"]["$defs"]["JewelrySettings"]["properties"]["lock_minutes"]["maximum"] == 1440
    )


async def test_trade_in_quote(client):
    tenant = await jewelry_tenant(client, accepted_purities=["Au999", "Au99.99"])
    await set_price(client, tenant, exchange_price="560.00", brand_premium="40.00")
    await set_price(client, tenant, "Au99.99", price="610")
    url = f"{X}/trade-in-quotes"
    r = await client.post(
        url, headers=tenant.auth, json={"metal": "gold", "purity": "Au999", "weight_g": "10", "loss_pct": "3"}
    )
    assert r.status_code == 200, r.text
    quote = r.json()
    # 10 g × (1 − 3%) × 560 (the exchange price, not the board's 600)
    assert quote["value"] == "5432.00" and quote["recycle_basis"] == "exchange_price"
    assert quote["recycle_price"] == "560.00" and quote["currency"] == "CNY"
    r = await client.post(
        url, headers=tenant.auth, json={"metal": "gold", "purity": "Au99.99", "weight_g": "2.5"}
    )
    assert r.json()["value"] == "1525.00" and r.json()["recycle_basis"] == "board_price"

    gold = {"metal": "gold", "purity": "Au999"}
    bad = [
        ({"metal": "gold", "purity": "Au750", "weight_g": "1"}, "purity"),  # not accepted
        ({**gold, "weight_g": "0"}, "weight_g"),
        ({**gold, "weight_g": "-1"}, "weight_g"),
        ({**gold, "weight_g": "x"}, "weight_g"),
        ({**gold, "weight_g": "NaN"}, "weight_g"),
        ({**gold, "weight_g": "1e400"}, "weight_g"),
        ({**gold, "weight_g": "1", "loss_pct": "100"}, "loss_pct"),
        ({**gold, "weight_g": "1", "loss_pct": "-Infinity"}, "loss_pct"),
        ({"metal": "silver", "purity": "Au999", "weight_g": "1"}, "metal"),
    ]
    for body, field in bad:
        r = await client.post(url, headers=tenant.auth, json=body)
        assert r.status_code == 422, (body, r.text)
        assert field in r.json()["errors"][0]["field"], (body, r.json())
    r = await client.post(url, headers=tenant.auth, json={"metal": "gold", "weight_g": "1"})
    assert r.status_code in (400, 422)

    # Without accepted_purities every active purity with a board price is accepted.
    other = await jewelry_tenant(client)
    await set_price(client, other, "Au750", price="450")
    r = await client.post(url, headers=other.auth, json={"metal": "gold", "purity": "Au750", "weight_g": "1"})
    assert r.status_code == 200 and r.json()["value"] == "450.00"
    r = await client.post(url, headers=other.auth, json={"metal": "gold", "purity": "Au999", "weight_g": "1"})
    assert r.status_code == 422 and r.json()["code"] == "jewelry_board_price_missing"
