"""Schemathesis against /schema/openapi.json, in-process, as a tenant admin and as a dealer:
no 5xx, and every response matches its schema."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from omnicloud.app import create_app
from omnicloud.core.db import Database
from tests.fixtures import make_tenant
from tests.world import build_world


@pytest.fixture(scope="module")
def contract(backend: Any) -> dict[str, Any]:
    # Schemathesis drives the app from its own event loop, so this app opens a connection
    # per transaction instead of pooling loop-bound ones, and keeps its stores in process.
    cfg = backend.settings.__class__(
        **{**{f: getattr(backend.settings, f) for f in backend.settings.__struct_fields__}, "redis_url": None}
    )
    app = create_app(cfg, plugins=backend.plugins, db=Database(cfg.database_url, pooled=False))

    async def setup() -> dict[str, str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            tenant = await make_tenant(client, prefix="st", plugins={"industry_jewelry": {}})
            world = await build_world(client, tenant)
            return {"admin": tenant.key, **{f"dealer:{k}": v for k, v in world.dealer_keys.items()}}

    keys = asyncio.run(setup())
    return {"app": app, "keys": keys}


def _run_all(app: Any, key: str) -> None:
    """Every operation, hypothesis-generated cases, checked for 5xx and schema conformance."""
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app).exclude(
        path_regex="^/api/v1/operator"
    )
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Any) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {key}"},
                checks=[not_a_server_error, response_schema_conformance],
            )

        try:
            run()
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:2000])
    assert operations >= 10
    assert not failures, "\n\n".join(failures)


def test_api_as_tenant_admin(contract: dict[str, Any]) -> None:
    _run_all(contract["app"], contract["keys"]["admin"])


def test_api_as_dealer(contract: dict[str, Any]) -> None:
    dealer = contract["keys"].get("dealer:d1")
    assert dealer, "the contract world needs a dealer"
    _run_all(contract["app"], dealer)
