"""The resolve_unit_price hook: jewelry SKUs are priced from the board, others fall through
to the core default, and tenants without the plugin never reach it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from tests.fixtures import make_tenant

from industry_jewelry.tests.helpers import jewelry_tenant, set_price
from omnicloud.catalog.schemas import SkuOut, UnitPrice
from omnicloud.core.db import utcnow
from omnicloud.core.errors import Unprocessable
from omnicloud.core.ids import new_id
from omnicloud.core.tenancy import tenant_scope
from omnicloud.plugins import await_me_maybe

PLUGIN = "industry_jewelry"


def sku(
    attributes: dict[str, Any], *, weight_g: str | None = None, list_price: str | None = "99.00"
) -> SkuOut:
    return SkuOut(
        id=new_id(),
        product_id=new_id(),
        code="RING-1",
        name="Ring",
        barcode=None,
        attributes=attributes,
        list_price=Decimal(list_price) if list_price else None,
        cost_price=None,
        weight_g=Decimal(weight_g) if weight_g else None,
        status="active",
        version=1,
        created_at=utcnow(),
    )


def gold(method: str, **extra: Any) -> dict[str, Any]:
    return {"metal": "gold", "purity": "Au999", "pricing_method": method, **extra}


async def price(
    app: Any,
    backend: Any,
    tenant_id: str,
    item: SkuOut,
    *,
    enabled: bool = True,
    at: Any = None,
    **settings: Any,
) -> UnitPrice:
    tid = UUID(tenant_id)
    names = frozenset({PLUGIN}) if enabled else frozenset()
    hooks = backend.plugins.for_tenant(names)
    with tenant_scope(tid):
        async with app.state.db.transaction() as session:
            result = hooks.resolve_unit_price(
                session=session,
                tenant_id=tid,
                sku=item,
                quantity=Decimal(1),
                customer_id=None,
                at=at or utcnow(),
                settings={PLUGIN: settings} if enabled else {},
            )
            return await await_me_maybe(result)


async def test_domain_examples_through_the_hook(client, app, backend):
    tenant = await jewelry_tenant(client)
    board = await set_price(client, tenant, price="600")

    by_gram = await price(
        app, backend, tenant.id, sku(gold("by_gram_labour_per_gram", labour_per_gram=20), weight_g="10")
    )
    assert by_gram.unit_price == Decimal("6200.00") and by_gram.source == "industry_jewelry.board"
    assert by_gram.detail["board_price"] == "600.00" and by_gram.detail["method"] == "by_gram_labour_per_gram"
    assert by_gram.detail["metal_value"] == "6000.00" and by_gram.detail["labour"] == "200.00"
    assert by_gram.detail["board_effective_at"] == board["effective_at"].replace("Z", "+00:00")

    per_piece = await price(
        app, backend, tenant.id, sku(gold("by_gram_labour_per_piece", labour_per_piece="150", weight_g="10"))
    )
    assert per_piece.unit_price == Decimal("6150.00") and per_piece.detail["labour"] == "150.00"

    tag = await price(app, backend, tenant.id, sku(gold("by_piece", tag_price="1999")))
    assert tag.unit_price == Decimal("1999.00") and tag.source == "industry_jewelry.tag_price"


async def test_settings_default_labour_and_lock(client, app, backend):
    tenant = await jewelry_tenant(client)
    await set_price(client, tenant, price="600")
    at = utcnow()
    result = await price(
        app,
        backend,
        tenant.id,
        sku(gold("by_gram_labour_per_gram"), weight_g="10"),
        at=at,
        default_labour_per_gram="12",
        lock_minutes=20,
    )
    assert result.unit_price == Decimal("6120.00")
    assert result.detail["locked_until"] == (at + timedelta(minutes=20)).isoformat()


async def test_price_follows_the_board_in_force_at_the_time(client, app, backend):
    tenant = await jewelry_tenant(client)
    item = sku(gold("by_gram_labour_per_gram", labour_per_gram=0), weight_g="1")
    before = utcnow()
    with pytest.raises(Unprocessable) as err:
        await price(app, backend, tenant.id, item)
    assert err.value.code == "jewelry_board_price_missing"
    await set_price(client, tenant, price="600")
    between = utcnow()
    await set_price(client, tenant, price="650")
    assert (await price(app, backend, tenant.id, item)).unit_price == Decimal("650.00")
    assert (await price(app, backend, tenant.id, item, at=between)).unit_price == Decimal("600.00")
    with pytest.raises(Unprocessable):
        await price(app, backend, tenant.id, item, at=before)


async def test_other_skus_and_other_tenants_get_the_core_default(client, app, backend):
    tenant = await jewelry_tenant(client)
    await set_price(client, tenant, price="600")
    plain = await price(app, backend, tenant.id, sku({"colour": "red"}, list_price="99.00"))
    assert plain.source == "list_price" and plain.unit_price == Decimal("99.00")
    # Only some of the marker attributes: not a jewelry item.
    partial = await price(app, backend, tenant.id, sku({"metal": "gold"}, list_price="5"))
    assert partial.source == "list_price"

    other = await make_tenant(client, prefix="n")
    item = sku(gold("by_gram_labour_per_gram"), weight_g="10", list_price="99.00")
    result = await price(app, backend, other.id, item, enabled=False)
    assert result.source == "list_price" and result.unit_price == Decimal("99.00")


async def test_misconfigured_jewelry_skus_are_422(client, app, backend):
    tenant = await jewelry_tenant(client)
    await set_price(client, tenant, price="600")
    cases = [
        (sku(gold("by_gram_labour_per_gram")), "jewelry_weight_missing"),
        (sku(gold("by_gram_labour_per_piece"), weight_g="1"), "jewelry_labour_missing"),
        (sku(gold("by_piece"), list_price=None), "jewelry_tag_price_missing"),
        (sku(gold("by_weight"), weight_g="1"), "jewelry_bad_pricing_method"),
        (
            sku({**gold("by_gram_labour_per_gram"), "purity": "Au990"}, weight_g="1"),
            "jewelry_board_price_missing",
        ),
        (sku(gold("by_gram_labour_per_gram", weight_g="-2")), "jewelry_bad_attribute"),
    ]
    for item, code in cases:
        with pytest.raises(Unprocessable) as err:
            await price(app, backend, tenant.id, item)
        assert err.value.code == code, (item.attributes, err.value.detail)
        assert "RING-1" in err.value.detail


async def test_sku_price_preview_uses_the_board(client):
    tenant = await jewelry_tenant(client)
    await set_price(client, tenant, price="600")
    unit = await client.post("/api/v1/units", headers=tenant.auth, json={"code": "pc", "name": "Piece"})
    assert unit.status_code == 201, unit.text
    product = await client.post(
        "/api/v1/products",
        headers=tenant.auth,
        json={"code": "RING", "name": "Ring", "base_unit_id": unit.json()["id"]},
    )
    assert product.status_code == 201, product.text

    async def preview(code: str, attributes: dict[str, Any], **fields: Any) -> Any:
        r = await client.post(
            "/api/v1/skus",
            headers=tenant.auth,
            json={
                "product_id": product.json()["id"],
                "code": code,
                "name": code,
                "attributes": attributes,
                **fields,
            },
        )
        assert r.status_code == 201, r.text
        return await client.get(
            f"/api/v1/skus/{r.json()['id']}/price", headers=tenant.auth, params={"quantity": 2}
        )

    r = await preview(
        "R-10G", gold("by_gram_labour_per_gram", labour_per_gram=20), weight_g="10", list_price="1"
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["unit_price"], body["amount"], body["source"]) == (
        "6200.00",
        "12400.00",
        "industry_jewelry.board",
    )
    assert body["detail"]["board_price"] == "600.00"

    r = await preview("R-PIECE", gold("by_gram_labour_per_piece", labour_per_piece=150), weight_g="10")
    assert r.json()["unit_price"] == "6150.00"

    r = await preview("PLAIN", {"colour": "red"}, list_price="99")
    assert r.status_code == 200 and r.json()["source"] == "list_price"

    r = await preview(
        "R-PT", {**gold("by_gram_labour_per_gram"), "metal": "platinum", "purity": "Pt950"}, weight_g="3"
    )
    assert r.status_code == 422 and r.json()["code"] == "jewelry_board_price_missing"

    # Disabled: the same SKU falls back to its list price.
    r = await client.delete("/api/v1/plugins/industry_jewelry", headers=tenant.auth)
    assert r.status_code == 200
    r = await preview(
        "R-OFF", gold("by_gram_labour_per_gram", labour_per_gram=20), weight_g="10", list_price="5"
    )
    assert r.status_code == 200 and r.json()["source"] == "list_price" and r.json()["unit_price"] == "5.00"
