"""The hot read path without the ORM: the tenant guard of :class:`TenantQuery`, the
:class:`TenantReader` that runs it (row-level security still bound on PostgreSQL), and the
product list served through them, with every combination of its filters."""

from __future__ import annotations

import itertools
import secrets
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import and_, func, literal_column, or_, select, text, update
from sqlalchemy.orm import aliased

from omnicloud.catalog.models import Category, Product, Unit
from omnicloud.core.db import (
    TENANT,
    TENANT_PARAM,
    Database,
    ReadOnlyViolation,
    TenantMismatch,
    TenantQuery,
    UnfilterableQuery,
    set_read_only,
)
from omnicloud.core.tenancy import NoTenant, operator_scope, tenant_scope
from omnicloud.identity.models import Role
from omnicloud.operator.models import Tenant
from tests.fixtures import BACKEND, TenantHandle, drop_postgres, prepare_postgres

# --- the guard, when a query is built ---------------------------------------------------------

parent = aliased(Category)
other_parent = aliased(Category)
own_units = and_(Unit.tenant_id == TENANT, Unit.id == Product.base_unit_id)


def _accepted() -> list[Any]:
    page = select(Product.id).where(Product.tenant_id == TENANT).limit(5).subquery()
    return [
        select(Product.id).where(Product.tenant_id == TENANT),
        select(func.count(Product.id)).where(Product.status == "active", TENANT == Product.tenant_id),
        # an inner join's ON holds both sides; a left join's ON holds its outer (right) side
        select(Product.id).join(Unit, and_(own_units, Product.tenant_id == TENANT)),
        select(Product.id).outerjoin(Unit, own_units).where(Product.tenant_id == TENANT),
        select(Category.id, parent.id)
        .outerjoin(parent, and_(parent.tenant_id == TENANT, parent.id == Category.parent_id))
        .where(Category.tenant_id == TENANT),
        select(Product.code).join(page, page.c.id == Product.id).where(Product.tenant_id == TENANT),
        select(Tenant.slug),  # shared data: no tenant_id, nothing to filter
    ]


def _refused() -> dict[str, Any]:
    units_used = select(Product.base_unit_id).subquery()
    return {
        "no filter": select(Product.id),
        "a literal tenant id": select(Product.id).where(Product.tenant_id == UUID(int=1)),
        "a filter under OR": select(Product.id).where(
            or_(Product.tenant_id == TENANT, Product.status == "active")
        ),
        "a filter under NOT": select(Product.id).where(~(Product.tenant_id == TENANT)),
        "only the joined table filtered": select(Product.id).join(Unit, own_units),
        "the left side filtered in a left join's ON": select(Product.id).outerjoin(
            Unit, and_(own_units, Product.tenant_id == TENANT)
        ),
        "a full join filtered in ON only": select(Product.id).join(
            Unit, and_(own_units, Product.tenant_id == TENANT), full=True
        ),
        "one of two aliases filtered": select(parent.id, other_parent.id)
        .join(other_parent, other_parent.id == parent.parent_id)
        .where(parent.tenant_id == TENANT),
        "an unfiltered subquery": select(Unit.id)
        .join(units_used, units_used.c.base_unit_id == Unit.id)
        .where(Unit.tenant_id == TENANT),
        "an unfiltered scalar subquery": select(
            Unit.id, select(func.count(Product.id)).scalar_subquery()
        ).where(Unit.tenant_id == TENANT),
        "an unfiltered half of a union": select(
            select(Product.id)
            .where(Product.tenant_id == TENANT)
            .union(select(Product.id).where(Product.status == "active"))
            .subquery()
        ),
        "raw SQL in the FROM list": select(literal_column("id")).select_from(text("products")),
        "raw SQL in the WHERE clause": select(Product.id).where(Product.tenant_id == TENANT, text("1 = 1")),
        "not a SELECT": update(Product).values(name="x").where(Product.tenant_id == TENANT),
    }


@pytest.mark.parametrize("statement", _accepted())
def test_tenant_query_accepts_statements_filtered_by_the_tenant(statement):
    assert TenantQuery(statement).statement is statement


@pytest.mark.parametrize("case", sorted(_refused()))
def test_tenant_query_refuses_what_it_cannot_prove_filtered(case):
    with pytest.raises(UnfilterableQuery):
        TenantQuery(_refused()[case])


# --- the reader -------------------------------------------------------------------------------

OWNERS = TenantQuery(select(Role.tenant_id).where(Role.tenant_id == TENANT))


async def test_reader_reads_only_the_tenant_in_context(app, tenant_a, tenant_b):
    reader = app.state.db.reader
    for tenant in (tenant_a, tenant_b, tenant_a):
        with tenant_scope(UUID(tenant.id)):
            owners = {row[0] for row in await reader.rows(OWNERS)}
        assert owners == {UUID(tenant.id)}


async def test_reader_refuses_unchecked_statements_no_tenant_and_a_tenant_parameter(app, tenant_a, tenant_b):
    reader = app.state.db.reader
    with tenant_scope(UUID(tenant_a.id)), pytest.raises(UnfilterableQuery):
        await reader.rows(OWNERS.statement)
    with operator_scope(), pytest.raises(NoTenant):
        await reader.rows(OWNERS)
    with tenant_scope(UUID(tenant_a.id)), pytest.raises(TenantMismatch):
        await reader.rows(OWNERS, {TENANT_PARAM: UUID(tenant_b.id)})


@pytest.fixture(scope="module")
async def app_role(backend):
    """PostgreSQL as the application role with two tenants, on every backend run (row-level
    security is PostgreSQL's layer): ``(database, tenant a, tenant b)``."""
    from omnicloud.operator import service
    from omnicloud.operator.schemas import TenantIn

    if BACKEND == "postgres":
        owner_url, app_url, own = backend.owner_url, backend.settings.database_url, False
    else:
        owner_url, app_url = await prepare_postgres(backend.plugins)
        own = True
    owner = Database(owner_url, pool_size=1)
    tenants = []
    with operator_scope():
        async with owner.transaction() as session:
            for prefix in ("read-a-", "read-b-"):
                slug = prefix + secrets.token_hex(3)
                data = TenantIn(slug=slug, name=slug, admin_email=f"a@{slug}.example")
                tenants.append((await service.create_tenant(session, data, backend.plugins)).tenant.id)
    await owner.dispose()
    db = Database(app_url, pool_size=1)
    yield db, tenants[0], tenants[1]
    await db.dispose()
    if own:
        await drop_postgres(owner_url)


async def test_reader_binds_row_level_security_to_the_tenant_in_context(app_role):
    """One pooled connection serves both tenants in turn: each read runs with row-level
    security set to its own tenant, as the application role."""
    db, a, b = app_role
    bound = TenantQuery(
        select(
            Role.tenant_id, func.current_setting("app.tenant_id", True), literal_column("current_user")
        ).where(Role.tenant_id == TENANT)
    )
    for tenant in (a, b, a, b):
        with tenant_scope(tenant):
            rows = await db.reader.rows(bound)
        assert rows and {tuple(r) for r in rows} == {(tenant, str(tenant), "omnicloud_app")}


async def test_row_level_security_hides_other_tenants_on_reader_connections(app_role):
    """Layer 2 on its own: a statement on a reader connection that names another tenant's rows
    (what a bug past the TenantQuery check would send) finds nothing, and without a tenant in
    context nothing at all."""
    db, a, b = app_role

    async def roles_of(tenant: UUID) -> int:
        async with db.reader.engine.connect() as connection:
            result = await connection.execute(select(func.count(Role.id)).where(Role.tenant_id == tenant))
            return int(result.scalar_one())

    with tenant_scope(a):
        assert await roles_of(a) > 0
        assert await roles_of(b) == 0
    with operator_scope():
        assert await roles_of(a) == 0


# --- the product list ---------------------------------------------------------------------------


async def _post(client: Any, t: TenantHandle, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(path, headers=t.auth, json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def _catalog(client: Any, t: TenantHandle) -> dict[str, Any]:
    """Products across two brands, a category tree food > drinks plus tools, both statuses,
    and names holding LIKE's wildcards."""
    pc = await _post(client, t, "/api/v1/units", {"code": "pc", "name": "Piece"})
    case = await _post(client, t, "/api/v1/units", {"code": "case", "name": "Case"})
    acme = await _post(client, t, "/api/v1/brands", {"code": "acme", "name": "Acme"})
    zeta = await _post(client, t, "/api/v1/brands", {"code": "zeta", "name": "Zeta"})
    food = await _post(client, t, "/api/v1/categories", {"code": "food", "name": "Food"})
    drinks = await _post(
        client, t, "/api/v1/categories", {"code": "drinks", "name": "Drinks", "parent_id": food["id"]}
    )
    tools = await _post(client, t, "/api/v1/categories", {"code": "tools", "name": "Tools"})
    products = []
    names = ["Water 50% off", "Sparkling water", "Water_pump", "Hammer", "Cola", "Tonic WATER", "Saw"]
    for n, (name, brand, category, status) in enumerate(
        zip(
            names,
            itertools.cycle([acme, zeta, None]),
            itertools.cycle([drinks, food, tools, None]),
            itertools.cycle(["active", "active", "inactive"]),
            strict=False,
        )
    ):
        body: dict[str, Any] = {
            "code": f"p{n}",
            "name": name,
            "base_unit_id": pc["id"],
            "status": status,
            "attributes": {"n": n},
            "conversions": [{"unit_id": case["id"], "factor": str(n + 2)}] if n % 2 else [],
        }
        if brand:
            body["brand_id"] = brand["id"]
        if category:
            body["category_id"] = category["id"]
        products.append(await _post(client, t, "/api/v1/products", body))
    return {"products": products, "acme": acme, "food": food, "drinks": drinks}


async def _pages(client: Any, t: TenantHandle, params: dict[str, str], limit: int) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        query = {**params, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        r = await client.get("/api/v1/products", headers=t.auth, params=query)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def test_every_combination_of_product_filters_pages_through_its_own_products(
    client, tenant_a, tenant_b
):
    w = await _catalog(client, tenant_a)
    await _catalog(client, tenant_b)  # the same codes and names in another tenant
    in_food = {w["food"]["id"], w["drinks"]["id"]}
    filters = {
        "category_id": (w["food"]["id"], lambda p: p["category_id"] in in_food),
        "brand_id": (w["acme"]["id"], lambda p: p["brand_id"] == w["acme"]["id"]),
        "status": ("active", lambda p: p["status"] == "active"),
        "q": ("water", lambda p: "water" in p["name"].lower()),
    }
    for size in range(len(filters) + 1):
        for chosen in itertools.combinations(filters, size):
            expected = [p for p in w["products"] if all(filters[f][1](p) for f in chosen)]
            got = await _pages(client, tenant_a, {f: filters[f][0] for f in chosen}, limit=2)
            assert got == sorted(expected, key=lambda p: UUID(p["id"])), chosen
    for q, names in (("50%", ["Water 50% off"]), ("r_p", ["Water_pump"]), ("%", ["Water 50% off"])):
        got = await _pages(client, tenant_a, {"q": q}, limit=50)
        assert [p["name"] for p in got] == names, q


async def test_a_read_only_request_cannot_write(app, tenant_a):
    """GET handlers and quotes run without a transaction on PostgreSQL, where a write would commit
    on its own: the session refuses to flush while the request is read-only."""
    with tenant_scope(UUID(tenant_a.id)):
        async with app.state.db.read_sessions() as session:
            set_read_only(True)
            try:
                session.add(Unit(code="rw", name="Should never land"))
                with pytest.raises(ReadOnlyViolation):
                    await session.flush()
                await session.rollback()
            finally:
                set_read_only(False)
        async with app.state.db.transaction() as session:
            assert await session.scalar(select(func.count(Unit.id)).where(Unit.code == "rw")) == 0
