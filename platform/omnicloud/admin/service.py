"""Enabling plugins per tenant, and reading the audit log."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.admin.schemas import AuditOut, PluginOut
from omnicloud.core import audit, cache
from omnicloud.core.errors import NotFound, PreconditionFailed, invalid
from omnicloud.core.models import AuditEntry, TenantPlugin
from omnicloud.core.paging import paged_query, split_page
from omnicloud.core.tenancy import require_tenant
from omnicloud.plugins import PluginManager, await_me_maybe


class EnabledCache:
    """Each tenant's enabled plugins and settings, invalidated when they change."""

    def __init__(self, ttl: float = 60.0) -> None:
        self.ttl = ttl
        self._entries: dict[UUID, tuple[float, dict[str, dict[str, Any]]]] = {}

    def get(self, tenant_id: UUID) -> dict[str, dict[str, Any]] | None:
        hit = self._entries.get(tenant_id)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, tenant_id: UUID, value: dict[str, dict[str, Any]]) -> None:
        self._entries[tenant_id] = (time.monotonic() + self.ttl, value)

    def forget(self, tenant_id: UUID) -> None:
        self._entries.pop(tenant_id, None)

    def clear(self) -> None:
        self._entries.clear()


ENABLED_CACHE = EnabledCache()
cache.on_tenant_change(ENABLED_CACHE.forget)


async def enabled_plugins(session: AsyncSession) -> dict[str, dict[str, Any]]:
    """The current tenant's enabled plugins with their settings (cached)."""
    tid = require_tenant()
    cached = ENABLED_CACHE.get(tid)
    if cached is None:
        rows = (
            await session.execute(
                select(TenantPlugin.plugin, TenantPlugin.settings).where(TenantPlugin.enabled.is_(True))
            )
        ).all()
        cached = {name: settings for name, settings in rows}
        ENABLED_CACHE.put(tid, cached)
    return cached


async def enabled_plugin_names(session: AsyncSession) -> list[str]:
    return sorted(await enabled_plugins(session))


def _require_installed(plugins: PluginManager, name: str, field: str | None = None) -> None:
    """A plugin named in the URL is a 404; one named in a body (``field``) is a 422."""
    if name not in plugins.plugins:
        if field is None:
            raise NotFound(f"no installed plugin {name!r}", code="plugin_not_installed")
        raise invalid(field, f"no installed plugin {name!r}")


async def enable_plugin(
    session: AsyncSession,
    plugins: PluginManager,
    name: str,
    raw: dict[str, Any],
    *,
    if_match: int | None = None,
    field: str | None = None,
) -> TenantPlugin:
    """Enable (or re-configure) a plugin for the current tenant; runs its enable hook."""
    _require_installed(plugins, name, field)
    settings = plugins.validate_settings(name, raw)
    row = await session.scalar(select(TenantPlugin).where(TenantPlugin.plugin == name))
    if if_match is not None and (row.version if row else 0) != if_match:
        raise PreconditionFailed(
            f"plugin settings are at version {row.version if row else 0}", code="stale_version"
        )
    before = {"enabled": row.enabled, "settings": row.settings} if row else None
    if row is None:
        row = TenantPlugin(plugin=name, settings=settings, enabled=True)
        session.add(row)
    else:
        row.settings = settings
        row.enabled = True
        row.version += 1
    await session.flush()
    tid = require_tenant()
    hooks = plugins.for_tenant(frozenset({name}))
    schema = plugins.plugins[name].settings_schema
    typed = msgspec.convert(settings, schema) if schema else None
    for result in hooks.tenant_plugin_enabled(session=session, tenant_id=tid, settings=typed):
        await await_me_maybe(result)
    audit.record(
        session, "enable", "plugin", name, before=before, after={"enabled": True, "settings": settings}
    )
    ENABLED_CACHE.forget(tid)
    cache.tenant_changed(session, tid)
    return row


async def disable_plugin(
    session: AsyncSession, plugins: PluginManager, name: str, if_match: int | None = None
) -> TenantPlugin:
    _require_installed(plugins, name)
    row = await session.scalar(select(TenantPlugin).where(TenantPlugin.plugin == name))
    if row is None or not row.enabled:
        raise NotFound(f"plugin {name} is not enabled", code="plugin_not_enabled")
    if if_match is not None and row.version != if_match:
        raise PreconditionFailed(f"plugin settings are at version {row.version}", code="stale_version")
    row.enabled = False
    row.version += 1
    await session.flush()
    tid = require_tenant()
    for result in plugins.for_tenant(frozenset({name})).tenant_plugin_disabled(
        session=session, tenant_id=tid
    ):
        await await_me_maybe(result)
    audit.record(session, "disable", "plugin", name, before={"enabled": True}, after={"enabled": False})
    ENABLED_CACHE.forget(tid)
    cache.tenant_changed(session, tid)
    return row


async def list_plugins(session: AsyncSession, plugins: PluginManager) -> list[PluginOut]:
    rows = {r.plugin: r for r in (await session.scalars(select(TenantPlugin))).all()}
    out = []
    for name, info in sorted(plugins.plugins.items()):
        row = rows.get(name)
        out.append(
            PluginOut(
                name=name,
                version=info.version,
                hooks=info.hooks,
                permissions=sorted(info.permissions),
                enabled=bool(row and row.enabled),
                settings=row.settings if row else {},
                settings_version=row.version if row else None,
                settings_schema=msgspec.json.schema(info.settings_schema) if info.settings_schema else None,
            )
        )
    return out


async def get_plugin(session: AsyncSession, plugins: PluginManager, name: str) -> PluginOut:
    _require_installed(plugins, name)
    for p in await list_plugins(session, plugins):
        if p.name == name:
            return p
    raise NotFound(f"no installed plugin {name!r}")


async def list_audit(
    session: AsyncSession,
    cursor: str | None,
    limit: int,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    actor: str | None = None,
) -> tuple[list[AuditOut], str | None]:
    stmt = select(AuditEntry)
    if object_type:
        stmt = stmt.where(AuditEntry.object_type == object_type)
    if object_id:
        stmt = stmt.where(AuditEntry.object_id == object_id)
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor)
    rows = (await session.scalars(paged_query(stmt, AuditEntry.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [
        AuditOut(
            id=a.id,
            at=a.at,
            actor=a.actor,
            action=a.action,
            object_type=a.object_type,
            object_id=a.object_id,
            before=a.before,
            after=a.after,
        )
        for a in items
    ], nxt
