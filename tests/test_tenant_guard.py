"""Both isolation layers, proven below the API.

Layer 1 (both databases): the ORM guard refuses tenant-owned queries with no tenant in
context, filters reads to the tenant in context, and refuses writes carrying another
tenant's id. Layer 2 (PostgreSQL): row-level security, exercised with raw SQL as the
application role, which neither owns the tables nor bypasses RLS.
"""

from __future__ import annotations

import secrets
from uuid import UUID

import pytest
from sqlalchemy import func, select, text, update

from omnicloud.core.db import Base, Database, tenant_tables
from omnicloud.core.tenancy import NoTenant, tenant_scope
from omnicloud.identity.models import Role
from tests.fixtures import BACKEND, drop_postgres, prepare_postgres


async def test_orm_guard_refuses_queries_without_a_tenant(app):
    async with app.state.db.sessions() as session:
        with pytest.raises(NoTenant):
            await session.execute(select(Role))
        with pytest.raises(NoTenant):
            await session.execute(select(func.count(Role.id)))
        with pytest.raises(NoTenant):
            await session.execute(update(Role).values(name="x"))


async def test_orm_guard_filters_to_the_tenant_in_context(app, tenant_a, tenant_b):
    for tenant in (tenant_a, tenant_b):
        with tenant_scope(UUID(tenant.id)):
            async with app.state.db.transaction() as session:
                owners = set((await session.scalars(select(Role.tenant_id))).all())
                assert owners == {UUID(tenant.id)}
                # A bulk UPDATE cannot reach the other tenant's rows either.
                await session.execute(
                    update(Role).where(Role.code == "auditor").values(name=f"Auditor {tenant.slug}")
                )
    with tenant_scope(UUID(tenant_a.id)):
        async with app.state.db.transaction() as session:
            assert (
                await session.scalar(select(Role.name).where(Role.code == "auditor"))
                == f"Auditor {tenant_a.slug}"
            )


async def test_orm_guard_refuses_writes_for_another_tenant(app, tenant_a, tenant_b):
    with tenant_scope(UUID(tenant_a.id)):
        async with app.state.db.sessions() as session:
            session.add(Role(tenant_id=UUID(tenant_b.id), code="intruder", name="I", permissions=[]))
            with pytest.raises(NoTenant):
                await session.flush()


@pytest.fixture(scope="module")
async def rls_world(backend):
    """PostgreSQL as the application role, with two tenants, on every backend run: row-level
    security is PostgreSQL's layer, so this suite always runs against a real server."""
    from omnicloud.core.tenancy import operator_scope
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
            for slug in ("rls-a-" + secrets.token_hex(3), "rls-b-" + secrets.token_hex(3)):
                made = await service.create_tenant(
                    session, TenantIn(slug=slug, name=slug, admin_email=f"a@{slug}.example"), backend.plugins
                )
                tenants.append(str(made.tenant.id))
    await owner.dispose()
    db = Database(app_url, pool_size=2)
    yield db, tenants[0], tenants[1]
    await db.dispose()
    if own:
        await drop_postgres(owner_url)


async def _raw(db: Database, sql: str, params: dict | None = None, tenant: str | None = None):
    async with db.engine.connect() as conn:
        async with conn.begin():
            if tenant is not None:
                await conn.execute(text("select set_config('app.tenant_id', :t, true)"), {"t": tenant})
            return (await conn.execute(text(sql), params or {})).all()


async def test_rls_app_role_is_not_privileged(rls_world):
    app_role_db, _, _ = rls_world
    rows = await _raw(app_role_db, "select rolsuper, rolbypassrls from pg_roles where rolname = current_user")
    assert rows == [(False, False)]
    owners = await _raw(
        app_role_db, "select count(*) from pg_tables where schemaname='public' and tableowner=current_user"
    )
    assert owners == [(0,)]


async def test_rls_every_tenant_table_has_forced_policy(rls_world):
    app_role_db, _, _ = rls_world
    tables = tenant_tables()
    rows = await _raw(
        app_role_db,
        "select c.relname, c.relrowsecurity, c.relforcerowsecurity from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public' and c.relkind = 'r'",
    )
    flags = {name: (rls, force) for name, rls, force in rows}
    with_tenant_id = {
        r[0]
        for r in await _raw(
            app_role_db,
            "select table_name from information_schema.columns where column_name = 'tenant_id' "
            "and table_schema = 'public'",
        )
    }
    assert set(tables) <= with_tenant_id
    policies = {
        r[0] for r in await _raw(app_role_db, "select tablename from pg_policies where schemaname='public'")
    }
    for table in sorted(with_tenant_id):
        assert flags[table] == (True, True), table
        assert table in policies, table


async def test_rls_no_tenant_reads_zero_rows_everywhere(rls_world):
    app_role_db, a, _ = rls_world
    assert (await _raw(app_role_db, "select count(*) from roles", tenant=a))[0][0] > 0
    for table in tenant_tables():
        assert await _raw(app_role_db, f"select count(*) from {table}") == [(0,)], table
        assert await _raw(app_role_db, f"select count(*) from {table}", tenant="") == [(0,)], table


async def test_rls_tenant_a_sees_only_its_rows(rls_world):
    app_role_db, a, _ = rls_world
    for table in ("roles", "users", "api_keys", "audit_log"):
        owners = await _raw(app_role_db, f"select distinct tenant_id from {table}", tenant=a)
        assert [str(o[0]) for o in owners] == [a], table


async def test_rls_refuses_insert_and_update_carrying_another_tenant(rls_world):
    app_role_db, a, b = rls_world
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError, match="row-level security"):
        await _raw(
            app_role_db,
            "insert into units (tenant_id, id, code, name) values (:t, gen_random_uuid(), 'x', 'x')"
            " returning id",
            {"t": b},
            tenant=a,
        )
    with pytest.raises(DBAPIError, match="row-level security"):
        await _raw(
            app_role_db,
            "update roles set tenant_id = :t where code = 'auditor' returning id",
            {"t": b},
            tenant=a,
        )
    # Updating B's rows from A's context touches nothing: they are invisible.
    assert (
        await _raw(
            app_role_db,
            "update roles set name = 'hijacked' where tenant_id = :t returning id",
            {"t": b},
            tenant=a,
        )
        == []
    )


def test_every_tenant_table_is_declared_tenant_owned():
    for table in Base.metadata.sorted_tables:
        if "tenant_id" in table.c:
            pk = [c.name for c in table.primary_key.columns]
            assert pk[0] == "tenant_id", table.name
            for fk in table.foreign_key_constraints:
                assert fk.column_keys[0] == "tenant_id", (table.name, fk.column_keys)
            for index in table.indexes:
                assert index.columns.keys()[0] == "tenant_id", (table.name, index.name)


async def test_orm_guard_refuses_queries_it_cannot_filter(app, tenant_a):
    from omnicloud.core.db import UnfilterableQuery

    with tenant_scope(UUID(tenant_a.id)):
        async with app.state.db.transaction() as session:
            with pytest.raises(UnfilterableQuery):
                await session.execute(select(func.count()).select_from(Role))
            assert await session.scalar(select(func.count(Role.id))) == 9


async def test_rls_reads_without_a_transaction_follow_the_tenant(rls_world):
    """GET requests read without BEGIN and keep the tenant on the connection's session: the
    same pooled connection must still switch tenants, and forget them, correctly."""
    from sqlalchemy import text as sql

    from omnicloud.core.tenancy import operator_scope

    app_role_db, a, b = rls_world
    single = Database(app_role_db.url, pool_size=1)
    try:
        for tenant in (a, b, a, b):
            with tenant_scope(UUID(tenant)):
                async with single.read_sessions() as session:
                    owners = (
                        (await session.execute(sql("select distinct tenant_id from roles"))).scalars().all()
                    )
            assert [str(o) for o in owners] == [tenant]
        with operator_scope():
            async with single.read_sessions() as session:
                assert (await session.execute(sql("select count(*) from roles"))).scalar() == 0
    finally:
        await single.dispose()


async def test_rls_app_role_cannot_rewrite_append_only_records(rls_world):
    """The audit log, the stock journal and the fund ledger only grow: the application role may
    add rows but never update or delete them."""
    app_role_db, _, _ = rls_world
    for table in ("audit_log", "stock_movements", "fund_transfers", "fund_entries"):
        privileges = await _raw(
            app_role_db,
            "select has_table_privilege(current_user, :t, 'INSERT'), "
            "has_table_privilege(current_user, :t, 'UPDATE'), "
            "has_table_privilege(current_user, :t, 'DELETE')",
            {"t": table},
        )
        assert privileges == [(True, False, False)], table
