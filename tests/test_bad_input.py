"""Bad input on every writing route gets a 4xx problem and changes nothing: malformed JSON,
wrong types, unknown fields, oversized bodies. Driven by the OpenAPI document."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import func, select

from omnicloud.core.models import AuditEntry, OutboxEvent
from omnicloud.core.tenancy import tenant_scope
from tests.fixtures import OPERATOR, make_tenant
from tests.world import build_world


async def _counts(app: Any, tenant_id: str) -> tuple[int, int]:
    with tenant_scope(UUID(tenant_id)):
        async with app.state.db.transaction() as s:
            audit = await s.scalar(select(func.count(AuditEntry.id)))
            events = await s.scalar(select(func.count(OutboxEvent.id)))
    return audit or 0, events or 0


def _writing_routes(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for path, item in schema["paths"].items():
        for method, op in item.items():
            if method in {"post", "put", "patch"} and "requestBody" in op:
                out.append((method.upper(), path, op))
    return out


def _is_json(op: dict[str, Any]) -> bool:
    return any("json" in ct for ct in op["requestBody"].get("content", {"application/json": {}}))


@pytest.fixture
async def world(client):
    tenant = await make_tenant(client, prefix="bad", plugins={"industry_jewelry": {}})
    return await build_world(client, tenant)


BAD_BODIES = {
    "malformed": (b'{"name": ', "application/json"),
    "wrong_type": (b'["not", "an", "object"]', "application/json"),
    "unknown_field": (b'{"zz_unknown_field": 1}', "application/json"),
    "null": (b"null", "application/json"),
}


async def test_bad_bodies_get_4xx_problem_and_change_nothing(client, app, world):
    schema = (await client.get("/schema/openapi.json")).json()
    routes = _writing_routes(schema)
    assert len(routes) >= 8
    before = await _counts(app, world.tenant.id)
    wrong = []
    for method, path, op in routes:
        headers = OPERATOR if path.startswith("/api/v1/operator") else world.tenant.auth
        url = path
        for p in re.findall(r"{(\w+)}", path):
            url = url.replace("{" + p + "}", world.ids.get(p) or world.names.get(p, "industry_jewelry"))
        for label, (body, ctype) in BAD_BODIES.items():
            if not _is_json(op) and label != "malformed":
                continue
            r = await client.request(method, url, headers={**headers, "Content-Type": ctype}, content=body)
            ok = 400 <= r.status_code < 500 and r.headers.get("content-type", "").startswith(
                "application/problem+json"
            )
            if not ok:
                wrong.append(f"{label} {method} {url}: {r.status_code} {r.text[:160]}")
    assert not wrong, "\n".join(wrong)
    assert await _counts(app, world.tenant.id) == before


async def test_oversized_bodies_get_413(client, app, world):
    schema = (await client.get("/schema/openapi.json")).json()
    big = b'{"name": "' + b"x" * (app.state.settings.max_body_bytes + 10) + b'"}'
    before = await _counts(app, world.tenant.id)
    for method, path, _ in _writing_routes(schema):
        headers = OPERATOR if path.startswith("/api/v1/operator") else world.tenant.auth
        url = path
        for p in re.findall(r"{(\w+)}", path):
            url = url.replace("{" + p + "}", world.ids.get(p) or world.names.get(p, "industry_jewelry"))
        r = await client.request(
            method, url, headers={**headers, "Content-Type": "application/json"}, content=big
        )
        assert r.status_code == 413, (method, url, r.status_code, r.text[:200])
        assert r.headers["content-type"].startswith("application/problem+json")
    assert await _counts(app, world.tenant.id) == before


async def test_unknown_route_and_method_are_problems(client, world):
    r = await client.get("/api/v1/no-such-thing", headers=world.tenant.auth)
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    r = await client.delete("/api/v1/me", headers=world.tenant.auth)
    assert r.status_code == 405 and r.headers["content-type"].startswith("application/problem+json")
