"""``[x.industry_jewelry]`` in tenant manifests: applied idempotently, bad input named."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from tests.fixtures import bearer

from industry_jewelry.tests.helpers import X, jewelry_tenant
from omnicloud.core.errors import Unprocessable
from omnicloud.core.tenancy import tenant_scope
from omnicloud.plugins import await_me_maybe

PLUGIN = "industry_jewelry"


async def apply(app: Any, backend: Any, tenant_id: str, section: dict[str, Any]) -> list[Any]:
    tid = UUID(tenant_id)
    hooks = backend.plugins.for_tenant(frozenset({PLUGIN}))
    with tenant_scope(tid):
        async with app.state.db.transaction() as session:
            return [
                await await_me_maybe(r)
                for r in hooks.apply_manifest(session=session, tenant_id=tid, section=section)
            ]


async def test_board_section_is_idempotent(client, app, backend):
    tenant = await jewelry_tenant(client)
    section = {
        "purities": [{"purity": "Pd950", "metal": "palladium", "name": "钯金 Pd950"}],
        "board": [
            {"metal": "gold", "purity": "Au999", "price": 600.5},
            {"metal": "gold", "purity": "Au99.99", "exchange_price": "560", "brand_premium": "45"},
            {"metal": "palladium", "purity": "Pd950", "price": "250"},
        ],
    }
    assert await apply(app, backend, tenant.id, section) == [True]
    assert await apply(app, backend, tenant.id, section) == [False]
    board = (await client.get(f"{X}/board-prices", headers=tenant.auth)).json()["items"]
    assert {(b["purity"], b["price"], b["set_by"]) for b in board} == {
        ("Au999", "600.50", "manifest"),
        ("Au99.99", "605.00", "manifest"),
        ("Pd950", "250.00", "manifest"),
    }
    history = (await client.get(f"{X}/board-prices/gold/Au999/history", headers=tenant.auth)).json()["items"]
    assert len(history) == 1

    # A changed price is one new history row; the rest stays.
    section["board"][0]["price"] = "610"
    assert await apply(app, backend, tenant.id, section) == [True]
    history = (await client.get(f"{X}/board-prices/gold/Au999/history", headers=tenant.auth)).json()["items"]
    assert [h["price"] for h in history] == ["600.50", "610.00"]
    assert await apply(app, backend, tenant.id, {}) == [False]


@pytest.mark.parametrize(
    ("section", "field"),
    [
        (
            {
                "board": [
                    {"metal": "gold", "purity": "Au999", "price": "600"},
                    {"metal": "gold", "purity": "Au999", "price": "-1"},
                ]
            },
            "x.industry_jewelry.board[1].price",
        ),
        (
            {"board": [{"metal": "gold", "purity": "Au999", "price": "six"}]},
            "x.industry_jewelry.board[0].price",
        ),
        (
            {"board": [{"metal": "gold", "purity": "Nope1", "price": "1"}]},
            "x.industry_jewelry.board[0].purity",
        ),
        (
            {"board": [{"metal": "silver", "purity": "Au999", "price": "1"}]},
            "x.industry_jewelry.board[0].metal",
        ),
        (
            {"board": [{"metal": "gold", "purity": "Au999", "exchange_price": "1"}]},
            "x.industry_jewelry.board[0].brand_premium",
        ),
        ({"board": [{"metal": "gold", "price": "1"}]}, "x.industry_jewelry.board[0]"),
        ({"board": {"metal": "gold"}}, "x.industry_jewelry.board"),
        ({"boards": []}, "x.industry_jewelry"),
        (
            {"purities": [{"purity": "Au999", "metal": "silver", "name": "x"}]},
            "x.industry_jewelry.purities[0].metal",
        ),
    ],
)
async def test_bad_sections_name_the_field_and_change_nothing(client, app, backend, section, field):
    tenant = await jewelry_tenant(client)
    with pytest.raises(Unprocessable) as err:
        await apply(app, backend, tenant.id, section)
    assert err.value.errors[0]["field"] == field, err.value.errors
    assert (await client.get(f"{X}/board-prices", headers=tenant.auth)).json()["items"] == []


async def test_through_a_tenant_manifest(client, app, backend, tmp_path: Path):
    from omnicloud.operator.manifest import ManifestError, apply_directory

    slug = f"m-{secrets.token_hex(4)}"
    (tmp_path / f"{slug}.toml").write_text(
        f"""
slug = "{slug}"
name = "Golden Phoenix"
industry = "jewelry"

[admin]
email = "admin@{slug}.example"

[plugins.industry_jewelry]
lock_minutes = 10

[[x.industry_jewelry.board]]
metal = "gold"
purity = "Au999"
exchange_price = "560.00"
brand_premium = "42.00"
""",
        encoding="utf-8",
    )
    first = await apply_directory(app.state.db, backend.plugins, tmp_path)
    assert first[0].created and first[0].admin_api_key
    again = await apply_directory(app.state.db, backend.plugins, tmp_path)
    assert again[0].changes == []
    auth = bearer(first[0].admin_api_key)
    board = (await client.get(f"{X}/board-prices", headers=auth)).json()["items"]
    assert [(b["purity"], b["price"]) for b in board] == [("Au999", "602.00")]
    purities = (await client.get(f"{X}/purities", headers=auth)).json()["items"]
    assert len(purities) > 1  # the enable hook ran before the section was applied

    (tmp_path / f"{slug}.toml").write_text(
        (tmp_path / f"{slug}.toml").read_text().replace('brand_premium = "42.00"', 'brand_premium = "-3"')
    )
    with pytest.raises(ManifestError) as err:
        await apply_directory(app.state.db, backend.plugins, tmp_path)
    assert err.value.field == "x.industry_jewelry.board[0].brand_premium"
