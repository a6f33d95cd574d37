"""Operator use cases: create, list, show, suspend, resume, soft-delete, restore and purge
tenants. Tenant-owned rows are touched only inside that tenant's scope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.core import cache
from omnicloud.core.db import Base, TenantOwned, switch_rls_tenant, utcnow
from omnicloud.core.errors import Conflict, NotFound
from omnicloud.core.paging import paged_query, split_page
from omnicloud.core.tenancy import current_tenant, tenant_scope
from omnicloud.operator.models import Tenant
from omnicloud.operator.schemas import TenantCreated, TenantIn, TenantOut


@asynccontextmanager
async def within_tenant(session: AsyncSession, tenant_id: UUID) -> AsyncIterator[None]:
    """Switch an operator transaction into one tenant's scope, for both isolation layers.

    Inside, the tenant guard is back on: only this tenant's rows are visible or writable.
    """
    previous = current_tenant()
    with tenant_scope(tenant_id):
        await switch_rls_tenant(session, tenant_id)
        try:
            yield
            await session.flush()
        finally:
            await switch_rls_tenant(session, previous)


def tenant_out(t: Tenant, plugins: list[str] | None = None) -> TenantOut:
    return TenantOut(
        id=t.id,
        slug=t.slug,
        name=t.name,
        status=t.status,
        status_reason=t.status_reason,
        industry=t.industry,
        created_at=t.created_at,
        deleted_at=t.deleted_at,
        plugins=plugins or [],
    )


async def _get(session: AsyncSession, ref: str | UUID) -> Tenant:
    try:
        tid = ref if isinstance(ref, UUID) else UUID(ref)
        tenant = await session.get(Tenant, tid)
    except ValueError:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == ref))
    if tenant is None:
        raise NotFound(f"no tenant {ref}")
    return tenant


async def enabled_plugins_of(session: AsyncSession, tenant_id: UUID) -> list[str]:
    from omnicloud.admin import service as admin

    async with within_tenant(session, tenant_id):
        return await admin.enabled_plugin_names(session)


async def create_tenant(session: AsyncSession, data: TenantIn, plugins: Any) -> TenantCreated:
    """Create a tenant with its built-in roles, first tenant_admin and API key (shown once)."""
    from omnicloud.admin import service as admin
    from omnicloud.identity import service as identity
    from omnicloud.identity.schemas import UserIn

    tenant = Tenant(slug=data.slug, name=data.name, industry=data.industry)
    session.add(tenant)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict(f"tenant {data.slug} exists", code="tenant_exists") from None
    async with within_tenant(session, tenant.id):
        await identity.seed_builtin_roles(session)
        admin_user = await identity.create_user(
            session, UserIn(email=data.admin_email, name=data.admin_name, role="tenant_admin")
        )
        key = await identity.issue_key(session, tenant.id, admin_user.id, "initial admin key")
        for name, settings in sorted(data.plugins.items()):
            await admin.enable_plugin(session, plugins, name, settings, field=f"plugins.{name}")
        names = await admin.enabled_plugin_names(session)
    return TenantCreated(
        tenant=tenant_out(tenant, names), admin_user_id=admin_user.id, admin_api_key=key.secret
    )


async def list_tenants(
    session: AsyncSession, cursor: str | None, limit: int, status: str | None = None
) -> tuple[list[TenantOut], str | None]:
    stmt = select(Tenant)
    if status:
        stmt = stmt.where(Tenant.status == status)
    rows = (await session.scalars(paged_query(stmt, Tenant.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [tenant_out(t) for t in items], nxt


async def show_tenant(session: AsyncSession, ref: str | UUID) -> TenantOut:
    tenant = await _get(session, ref)
    return tenant_out(tenant, await enabled_plugins_of(session, tenant.id))


async def _set_status(
    session: AsyncSession, ref: str | UUID, status: str, reason: str | None, allowed_from: tuple[str, ...]
) -> TenantOut:
    from omnicloud.identity.service import AUTH_CACHE

    tenant = await _get(session, ref)
    if tenant.status not in allowed_from:
        raise Conflict(f"tenant {tenant.slug} is {tenant.status}", code="tenant_state")
    tenant.status = status
    tenant.status_reason = reason
    tenant.deleted_at = utcnow() if status == "deleted" else None
    await session.flush()
    AUTH_CACHE.forget_tenant(tenant.id)
    cache.tenant_changed(session, tenant.id)
    return tenant_out(tenant)


async def suspend_tenant(session: AsyncSession, ref: str | UUID, reason: str) -> TenantOut:
    return await _set_status(session, ref, "suspended", reason, ("active", "suspended"))


async def resume_tenant(session: AsyncSession, ref: str | UUID) -> TenantOut:
    return await _set_status(session, ref, "active", None, ("suspended", "active"))


async def delete_tenant(session: AsyncSession, ref: str | UUID) -> TenantOut:
    return await _set_status(session, ref, "deleted", "deleted by the operator", ("active", "suspended"))


async def restore_tenant(session: AsyncSession, ref: str | UUID) -> TenantOut:
    return await _set_status(session, ref, "active", None, ("deleted",))


async def purge_tenant(session: AsyncSession, ref: str | UUID) -> str:
    """Remove a soft-deleted tenant and every row it owns. Irreversible."""
    tenant = await _get(session, ref)
    if tenant.status != "deleted":
        raise Conflict("only a deleted tenant can be purged", code="tenant_state")
    async with within_tenant(session, tenant.id):
        for table in reversed(Base.metadata.sorted_tables):
            model = _tenant_models().get(table.name)
            if model is not None:
                await session.execute(delete(model))
    await session.delete(tenant)
    await session.flush()
    return tenant.slug


def _tenant_models() -> dict[str, type[TenantOwned]]:
    return {
        m.class_.__table__.name: m.class_ for m in Base.registry.mappers if issubclass(m.class_, TenantOwned)
    }


async def count_plugin_tenants(db: Any) -> dict[str, int]:
    """How many live tenants enable each plugin (a query per tenant: row-level security
    shows one tenant at a time, which is the point)."""
    from omnicloud.core.tenancy import operator_scope

    counts: dict[str, int] = {}
    with operator_scope():
        async with db.transaction() as session:
            ids = (await session.scalars(select(Tenant.id).where(Tenant.status != "deleted"))).all()
            for tid in ids:
                for name in await enabled_plugins_of(session, tid):
                    counts[name] = counts.get(name, 0) + 1
    return counts
