"""Users, roles and API keys over REST."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody

from omnicloud.core.deps import Caller, Cursor, Limit, Session, page_limit
from omnicloud.core.http import idempotent, requires
from omnicloud.identity import service
from omnicloud.identity.schemas import (
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    ApiKeyPage,
    MeOut,
    PermissionOut,
    RoleIn,
    RoleOut,
    RolePage,
    UserIn,
    UserOut,
    UserPage,
    UserPatch,
)


class IdentityController(Controller):
    path = "/api/v1"
    tags = ["identity"]

    @get("/me", operation_id="getMe", summary="Who am I")
    async def me(self, principal: Caller) -> MeOut:
        assert principal.tenant_id and principal.user_id
        return MeOut(
            tenant_id=principal.tenant_id,
            user_id=principal.user_id,
            roles=list(principal.roles),
            permissions=sorted(principal.permissions),
            customer_id=principal.customer_id,
        )

    @get(
        "/permissions",
        operation_id="listPermissions",
        summary="The permission catalogue",
        guards=[requires("users:read")],
    )
    async def permissions(self, state: State) -> list[PermissionOut]:
        perms = service.known_permissions(state.plugins.all_permissions)
        return [PermissionOut(name=k, description=v) for k, v in sorted(perms.items())]

    @get("/roles", operation_id="listRoles", summary="List roles", guards=[requires("users:read")])
    async def list_roles(
        self, session: Session, state: State, limit: Limit = None, cursor: Cursor = None
    ) -> RolePage:
        items, nxt = await service.list_roles(session, cursor, page_limit(state, limit))
        return RolePage(items=items, next_cursor=nxt)

    @post(
        "/roles", operation_id="createRole", summary="Create a custom role", guards=[requires("users:write")]
    )
    async def create_role(
        self, request: Request[Any, Any, Any], data: JSONBody[RoleIn], session: Session, state: State
    ) -> Response[RoleOut]:
        perms = service.known_permissions(state.plugins.all_permissions)
        return await idempotent(request, session, lambda: service.create_role(session, data, perms))

    @get("/users", operation_id="listUsers", summary="List users", guards=[requires("users:read")])
    async def list_users(
        self, session: Session, state: State, limit: Limit = None, cursor: Cursor = None
    ) -> UserPage:
        items, nxt = await service.list_users(session, cursor, page_limit(state, limit))
        return UserPage(items=items, next_cursor=nxt)

    @post("/users", operation_id="createUser", summary="Create a user", guards=[requires("users:write")])
    async def create_user(
        self, request: Request[Any, Any, Any], data: JSONBody[UserIn], session: Session
    ) -> Response[UserOut]:
        return await idempotent(request, session, lambda: service.create_user(session, data))

    @get(
        "/users/{user_id:uuid}",
        operation_id="getUser",
        summary="Show a user",
        guards=[requires("users:read")],
    )
    async def get_user(self, user_id: FromPath[UUID], session: Session) -> UserOut:
        return await service.get_user(session, user_id)

    @patch(
        "/users/{user_id:uuid}",
        operation_id="updateUser",
        summary="Change a user's name, role or status",
        guards=[requires("users:write")],
    )
    async def update_user(
        self, user_id: FromPath[UUID], data: JSONBody[UserPatch], session: Session, principal: Caller
    ) -> UserOut:
        return await service.update_user(session, user_id, data, principal)

    @get("/api-keys", operation_id="listApiKeys", summary="List API keys (your own, or all with users:read)")
    async def list_keys(
        self,
        session: Session,
        principal: Caller,
        state: State,
        user_id: FromQuery[UUID | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> ApiKeyPage:
        items, nxt = await service.list_keys(session, principal, cursor, page_limit(state, limit), user_id)
        return ApiKeyPage(items=items, next_cursor=nxt)

    @post("/api-keys", operation_id="createApiKey", summary="Create an API key; the secret is shown once")
    async def create_key(
        self, request: Request[Any, Any, Any], data: JSONBody[ApiKeyIn], session: Session, principal: Caller
    ) -> Response[ApiKeyCreated]:
        return await idempotent(request, session, lambda: service.create_key(session, data, principal))

    @post(
        "/api-keys/{key_id:uuid}/revoke",
        operation_id="revokeApiKey",
        summary="Revoke an API key",
        status_code=200,
    )
    async def revoke_key(self, key_id: FromPath[UUID], session: Session, principal: Caller) -> ApiKeyOut:
        return await service.revoke_key(session, key_id, principal)
