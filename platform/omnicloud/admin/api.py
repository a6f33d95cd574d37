"""Tenant administration over REST: plugins and the audit log."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, put
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody

from omnicloud.admin import service
from omnicloud.admin.schemas import AuditPage, PluginList, PluginOut, PluginSettingsIn
from omnicloud.core.deps import Cursor, Limit, Session, page_limit
from omnicloud.core.http import if_match, requires


class PluginsController(Controller):
    path = "/api/v1/plugins"
    tags = ["plugins"]

    @get(
        "/",
        operation_id="listPlugins",
        summary="Installed plugins and whether this tenant enables them",
        guards=[requires("plugins:read")],
    )
    async def list_plugins(self, session: Session, state: State) -> PluginList:
        return PluginList(items=await service.list_plugins(session, state.plugins))

    @get(
        "/{name:str}",
        operation_id="getPlugin",
        summary="One plugin with its settings and schema",
        guards=[requires("plugins:read")],
    )
    async def get_plugin(self, name: FromPath[str], session: Session, state: State) -> PluginOut:
        return await service.get_plugin(session, state.plugins, name)

    @put(
        "/{name:str}",
        operation_id="enablePlugin",
        guards=[requires("plugins:write")],
        summary="Enable a plugin or change its settings",
        description="Send If-Match with settings_version to change settings of an enabled plugin.",
    )
    async def enable(
        self,
        name: FromPath[str],
        data: JSONBody[PluginSettingsIn],
        request: Request[Any, Any, Any],
        session: Session,
        state: State,
    ) -> PluginOut:
        await service.enable_plugin(
            session, state.plugins, name, data.settings, if_match=if_match(request, required=False)
        )
        return await service.get_plugin(session, state.plugins, name)

    @delete(
        "/{name:str}",
        operation_id="disablePlugin",
        summary="Disable a plugin for this tenant",
        guards=[requires("plugins:write")],
        status_code=200,
    )
    async def disable(
        self, name: FromPath[str], request: Request[Any, Any, Any], session: Session, state: State
    ) -> PluginOut:
        await service.disable_plugin(session, state.plugins, name, if_match(request, required=False))
        return await service.get_plugin(session, state.plugins, name)


class AuditController(Controller):
    path = "/api/v1/audit"
    tags = ["audit"]

    @get(
        "/",
        operation_id="listAudit",
        summary="The audit log, filterable by object and actor",
        guards=[requires("audit:read")],
    )
    async def list_audit(
        self,
        session: Session,
        state: State,
        object_type: FromQuery[str | None] = None,
        object_id: FromQuery[str | None] = None,
        actor: FromQuery[str | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> AuditPage:
        items, nxt = await service.list_audit(
            session,
            cursor,
            page_limit(state, limit),
            object_type=object_type,
            object_id=object_id,
            actor=actor,
        )
        return AuditPage(items=items, next_cursor=nxt)
