"""Channels over REST: sales orgs, customers and the dealer tree, customer CSV."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody

from omnicloud.catalog.api import Text
from omnicloud.catalog.schemas import ImportResult
from omnicloud.channels import service
from omnicloud.channels.schemas import (
    CUSTOMER_CSV_COLUMNS,
    CustomerIn,
    CustomerOut,
    CustomerPage,
    CustomerPatch,
    Kind,
    SalesOrgIn,
    SalesOrgOut,
    SalesOrgPage,
    SalesOrgPatch,
    Status,
)
from omnicloud.core.deps import Caller, Cursor, Limit, Session, page_limit
from omnicloud.core.http import CSV, CsvUpload, idempotent, if_match, read_csv, requires


class SalesOrgController(Controller):
    path = "/api/v1/sales-orgs"
    tags = ["regions"]

    @get("/", operation_id="listSalesOrgs", summary="List sales orgs", guards=[requires("regions:read")])
    async def list_sales_orgs(
        self,
        session: Session,
        state: State,
        parent_id: FromQuery[UUID | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> SalesOrgPage:
        items, nxt = await service.list_sales_orgs(
            session, cursor, page_limit(state, limit), parent_id=parent_id
        )
        return SalesOrgPage(items=items, next_cursor=nxt)

    @post(
        "/", operation_id="createSalesOrg", summary="Create a sales org", guards=[requires("regions:write")]
    )
    async def create_sales_org(
        self, request: Request[Any, Any, Any], data: JSONBody[SalesOrgIn], session: Session
    ) -> Response[SalesOrgOut]:
        return await idempotent(request, session, lambda: service.create_sales_org(session, data))

    @get(
        "/{sales_org_id:uuid}",
        operation_id="getSalesOrg",
        summary="Show a sales org",
        guards=[requires("regions:read")],
    )
    async def get_sales_org(self, sales_org_id: FromPath[UUID], session: Session) -> SalesOrgOut:
        return await service.get_sales_org(session, sales_org_id)

    @patch(
        "/{sales_org_id:uuid}",
        operation_id="updateSalesOrg",
        summary="Rename a sales org or move it in the tree",
        description="Moving a sales org under itself or one of its descendants is a 422 naming parent_id.",
        guards=[requires("regions:write")],
    )
    async def update_sales_org(
        self, sales_org_id: FromPath[UUID], data: JSONBody[SalesOrgPatch], session: Session
    ) -> SalesOrgOut:
        return await service.update_sales_org(session, sales_org_id, data)


class CustomerController(Controller):
    path = "/api/v1/customers"
    tags = ["customers"]

    @get(
        "/",
        operation_id="listCustomers",
        summary="List customers (a dealer sees its own subtree only)",
        guards=[requires("customers:read")],
    )
    async def list_customers(
        self,
        session: Session,
        state: State,
        principal: Caller,
        kind: FromQuery[Kind | None] = None,
        parent_id: FromQuery[UUID | None] = None,
        region_id: FromQuery[UUID | None] = None,
        sales_org_id: FromQuery[UUID | None] = None,
        channel: Text = None,
        customer_class: Text = None,
        level: Text = None,
        status: FromQuery[Status | None] = None,
        q: Text = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> CustomerPage:
        filters = {
            "kind": kind,
            "parent_id": parent_id,
            "region_id": region_id,
            "sales_org_id": sales_org_id,
            "channel": channel,
            "customer_class": customer_class,
            "level": level,
            "status": status,
        }
        items, nxt = await service.list_customers(
            session, principal, cursor, page_limit(state, limit), filters=filters, q=q
        )
        return CustomerPage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="createCustomer",
        summary="Create a dealer or terminal",
        description="A dealer user with customers:write creates customers inside its own subtree only.",
        guards=[requires("customers:write")],
    )
    async def create_customer(
        self, request: Request[Any, Any, Any], data: JSONBody[CustomerIn], session: Session, principal: Caller
    ) -> Response[CustomerOut]:
        return await idempotent(request, session, lambda: service.create_customer(session, data, principal))

    @get(
        "/{customer_id:uuid}",
        operation_id="getCustomer",
        summary="Show a customer",
        guards=[requires("customers:read")],
    )
    async def get_customer(
        self, customer_id: FromPath[UUID], session: Session, principal: Caller
    ) -> CustomerOut:
        return await service.get_customer(session, customer_id, principal)

    @patch(
        "/{customer_id:uuid}",
        operation_id="updateCustomer",
        summary="Change a customer or move it in the dealer tree",
        description="Its subtree moves with it. A cycle or a terminal parent is a 422 naming parent_id. "
        "If-Match (optional) guards against lost updates.",
        guards=[requires("customers:write")],
    )
    async def update_customer(
        self,
        customer_id: FromPath[UUID],
        data: JSONBody[CustomerPatch],
        request: Request[Any, Any, Any],
        session: Session,
        principal: Caller,
    ) -> CustomerOut:
        version = if_match(request, required=False)
        return await service.update_customer(session, customer_id, data, principal, version)

    @get(
        "/{customer_id:uuid}/children",
        operation_id="listCustomerChildren",
        summary="The customers directly below a customer",
        guards=[requires("customers:read")],
    )
    async def children(
        self,
        customer_id: FromPath[UUID],
        session: Session,
        state: State,
        principal: Caller,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> CustomerPage:
        items, nxt = await service.list_children(
            session, customer_id, principal, cursor, page_limit(state, limit)
        )
        return CustomerPage(items=items, next_cursor=nxt)

    @get(
        "/{customer_id:uuid}/subtree",
        operation_id="listCustomerSubtree",
        summary="A customer and every customer below it",
        guards=[requires("customers:read")],
    )
    async def subtree(
        self,
        customer_id: FromPath[UUID],
        session: Session,
        state: State,
        principal: Caller,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> CustomerPage:
        items, nxt = await service.list_subtree(
            session, customer_id, principal, cursor, page_limit(state, limit)
        )
        return CustomerPage(items=items, next_cursor=nxt)

    @post(
        "/import",
        operation_id="importCustomers",
        summary="Upsert customers from CSV (all or nothing)",
        description="Columns: " + ", ".join(CUSTOMER_CSV_COLUMNS) + ". Rows may name parents defined "
        "anywhere in the file; an empty cell keeps the current value. Every bad row is reported with "
        "its line number.",
        guards=[requires("customers:write")],
        operation_class=CsvUpload,
        status_code=200,
    )
    async def import_customers(
        self, request: Request[Any, Any, Any], session: Session, principal: Caller
    ) -> ImportResult:
        return await service.import_customers_csv(session, await read_csv(request), principal)

    @get(
        "/export",
        operation_id="exportCustomers",
        summary="Customers as CSV, in the import's columns",
        guards=[requires("customers:read")],
        media_type=CSV,
    )
    async def export_customers(self, session: Session, principal: Caller) -> str:
        return await service.export_customers_csv(session, principal)


ROUTES: list[Any] = [SalesOrgController, CustomerController]
