"""The two-tenant isolation suite, driven by the OpenAPI document so that a new route cannot
escape it: every route that takes an id is replayed with the other tenant's credential (404),
every list is read by the other tenant (no foreign rows), and the same with a dealer
credential against another dealer's objects.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.fixtures import bearer, make_tenant
from tests.world import World, build_world

# Path parameters that do not name a tenant-owned object.
NOT_TENANT_OBJECTS = {"ref", "name"}
# Natural keys: another tenant may own the same name, so only reads are replayed.
NATURAL_KEYS = {"barcode", "metal", "purity"}
SKIP_PREFIXES = ("/api/v1/operator",)


async def _openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    return (await client.get("/schema/openapi.json")).json()


def _routes(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for path, item in schema["paths"].items():
        if not path.startswith("/api/") or path.startswith(SKIP_PREFIXES):
            continue
        for method, op in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                out.append((method.upper(), path, op))
    return out


def _params(path: str) -> list[str]:
    return re.findall(r"{(\w+)}", path)


@pytest.fixture
async def worlds(client: httpx.AsyncClient, app: Any) -> tuple[World, World]:
    a = await make_tenant(client, prefix="iso-a", plugins={"industry_jewelry": {}})
    b = await make_tenant(client, prefix="iso-b", plugins={"industry_jewelry": {}})
    return await build_world(client, a, app), await build_world(client, b, app)


def _body_for(op: dict[str, Any], world: World) -> Any:
    if "requestBody" not in op:
        return None
    return world.bodies.get(op.get("operationId", ""), {})


async def test_every_id_route_answers_404_to_another_tenant(client, worlds):
    a, b = worlds
    schema = await _openapi(client)
    uncovered, wrong = [], []
    for method, path, op in _routes(schema):
        names = [p for p in _params(path) if p not in NOT_TENANT_OBJECTS]
        if not names or (method != "GET" and set(names) & NATURAL_KEYS):
            continue
        missing = [n for n in names if n not in a.ids and n not in a.names]
        if missing:
            uncovered.append(f"{method} {path} ({', '.join(missing)})")
            continue
        url = path
        for p in _params(path):
            url = url.replace("{" + p + "}", a.ids.get(p) or a.names.get(p, "x"))
        headers = {**b.tenant.auth, "If-Match": '"1"'}
        r = await client.request(method, url, headers=headers, json=_body_for(op, b))
        if set(names) & NATURAL_KEYS:
            # B may own the same natural key; it must never see A's object behind it.
            leaked = [k for k, v in a.ids.items() if v in r.text]
            if leaked or r.status_code >= 500:
                wrong.append(f"{method} {url}: {r.status_code} shows {leaked}")
            continue
        if r.status_code != 404:
            wrong.append(f"{method} {url}: {r.status_code} {r.text[:200]}")
    assert not uncovered, "routes the isolation world does not cover:\n" + "\n".join(uncovered)
    assert not wrong, "routes that did not answer 404 to another tenant:\n" + "\n".join(wrong)


async def test_every_list_shows_no_foreign_rows(client, worlds):
    a, b = worlds
    schema = await _openapi(client)
    checked = 0
    for method, path, _ in _routes(schema):
        if method != "GET" or _params(path):
            continue
        r = await client.get(path, headers=b.tenant.auth, params={"limit": 200})
        if r.status_code == 404:
            continue
        assert r.status_code == 200, (path, r.text)
        leaked = [f"{k}={v}" for k, v in a.ids.items() if v in r.text]
        assert not leaked, f"{path} shows tenant A's rows: {leaked}"
        checked += 1
    assert checked >= 5


async def test_dealer_sees_only_its_subtree(client, worlds):
    a, _ = worlds
    if not a.dealer_keys:
        pytest.fail("the isolation world has no dealers")
    schema = await _openapi(client)
    d1 = bearer(a.dealer_keys["d1"])
    wrong = []
    for method, path, _op in _routes(schema):
        if method != "GET":
            continue
        names = _params(path)
        foreign = {n: a.other_dealer_ids[n] for n in names if n in a.other_dealer_ids}
        if not names or not foreign:
            continue
        url = path
        for p in names:
            url = url.replace("{" + p + "}", foreign.get(p) or a.ids[p])
        r = await client.get(url, headers=d1)
        if r.status_code != 404:
            wrong.append(f"GET {url}: {r.status_code}")
    assert not wrong, "dealer d1 reached dealer d2's objects:\n" + "\n".join(wrong)
    for method, path, _ in _routes(schema):
        if method != "GET" or _params(path):
            continue
        r = await client.get(path, headers=d1, params={"limit": 200})
        if r.status_code in (403, 404):
            continue
        leaked = [f"{k}={v}" for k, v in a.other_dealer_ids.items() if v in r.text]
        assert not leaked, f"{path} shows dealer d2's rows to d1: {leaked}"


async def test_a_level_2_dealer_does_not_see_its_level_1_dealer(client, worlds):
    """Visibility runs down the tree only: d1a (under d1) reaches none of d1's own objects."""
    a, _ = worlds
    schema = await _openapi(client)
    d1a = bearer(a.dealer_keys["d1a"])
    dealer_params = set(a.other_dealer_ids)
    wrong, checked = [], 0
    for method, path, _op in _routes(schema):
        if method != "GET":
            continue
        names = _params(path)
        if not names or not set(names) & dealer_params or any(n not in a.ids for n in names):
            continue
        url = path
        for p in names:
            url = url.replace("{" + p + "}", a.ids[p])
        r = await client.get(url, headers=d1a)
        checked += 1
        if r.status_code != 404:
            wrong.append(f"GET {url}: {r.status_code}")
    assert checked >= 3 and not wrong, "dealer d1a reached its parent d1's objects:\n" + "\n".join(wrong)
    parents = {k: a.ids[k] for k in dealer_params if k in a.ids}
    for method, path, _ in _routes(schema):
        if method != "GET" or _params(path):
            continue
        r = await client.get(path, headers=d1a, params={"limit": 200})
        if r.status_code in (403, 404):
            continue
        # d1a's own rows may name its parent (``parent_id``); d1's own rows must not be listed.
        leaked = [f"{k}={v}" for k, v in parents.items() if f'"id":"{v}"' in r.text]
        assert not leaked, f"{path} shows dealer d1's rows to its level-2 dealer d1a: {leaked}"
