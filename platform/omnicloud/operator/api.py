"""The operator REST API: tenant provisioning under /api/v1/operator."""

from __future__ import annotations

from typing import Any

from litestar import Controller, delete, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody

from omnicloud.core.deps import Cursor, Limit, Session, page_limit
from omnicloud.core.errors import Forbidden
from omnicloud.core.tenancy import operator_scope
from omnicloud.operator import service
from omnicloud.operator.schemas import SuspendIn, TenantCreated, TenantIn, TenantOut, TenantPage


def operator_only(connection: Any, _: Any) -> None:
    from omnicloud.core.security import current_principal

    p = current_principal()
    if p is None or p.kind != "operator":
        raise Forbidden("operator credential required", code="operator_only")


class OperatorController(Controller):
    path = "/api/v1/operator/tenants"
    tags = ["operator"]
    guards = [operator_only]

    @get("/", operation_id="operatorListTenants", summary="List tenants")
    async def list_tenants(
        self,
        session: Session,
        state: State,
        status: FromQuery[str | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> TenantPage:
        with operator_scope():
            items, nxt = await service.list_tenants(session, cursor, page_limit(state, limit), status)
        return TenantPage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="operatorCreateTenant",
        summary="Create a tenant with its first admin and API key",
        description="The slug is the natural idempotency key: creating an existing slug answers 409.",
    )
    async def create_tenant(self, data: JSONBody[TenantIn], session: Session, state: State) -> TenantCreated:
        with operator_scope():
            return await service.create_tenant(session, data, state.plugins)

    @get("/{ref:str}", operation_id="operatorShowTenant", summary="Show a tenant by id or slug")
    async def show_tenant(self, ref: FromPath[str], session: Session) -> TenantOut:
        with operator_scope():
            return await service.show_tenant(session, ref)

    @post(
        "/{ref:str}/suspend",
        operation_id="operatorSuspendTenant",
        summary="Suspend a tenant",
        status_code=200,
    )
    async def suspend(self, ref: FromPath[str], data: JSONBody[SuspendIn], session: Session) -> TenantOut:
        with operator_scope():
            return await service.suspend_tenant(session, ref, data.reason)

    @post(
        "/{ref:str}/resume",
        operation_id="operatorResumeTenant",
        summary="Resume a suspended tenant",
        status_code=200,
    )
    async def resume(self, ref: FromPath[str], session: Session) -> TenantOut:
        with operator_scope():
            return await service.resume_tenant(session, ref)

    @delete(
        "/{ref:str}",
        operation_id="operatorDeleteTenant",
        summary="Soft-delete a tenant (reversible)",
        status_code=200,
    )
    async def delete_tenant(self, ref: FromPath[str], session: Session) -> TenantOut:
        with operator_scope():
            return await service.delete_tenant(session, ref)

    @post(
        "/{ref:str}/restore",
        operation_id="operatorRestoreTenant",
        summary="Restore a soft-deleted tenant",
        status_code=200,
    )
    async def restore(self, ref: FromPath[str], session: Session) -> TenantOut:
        with operator_scope():
            return await service.restore_tenant(session, ref)
