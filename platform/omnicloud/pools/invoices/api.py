"""The invoice pool over REST (发票池): what is left to invoice, invoice requests (开票申请) with
approve, reject, cancel and issue, receivables (应收) and their payments, and the invoice
settings.

Filing a request and paying a receivable need an ``Idempotency-Key`` (428 without one): a retry
replays the first answer and never requests or pays twice. The other actions accept one too. An
action the request's status does not allow is a 409 ``illegal_transition``; losing a race with a
concurrent action on the same request is a 409 ``invoice_request_changed``.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from omnicloud.core.deps import Caller, Cursor, Limit, Session, page_limit
from omnicloud.core.http import IDEMPOTENCY_HEADER, idempotent, if_match, requires
from omnicloud.pools.funds.api import require_key
from omnicloud.pools.invoices import service
from omnicloud.pools.invoices.schemas import (
    InvoiceableLinePage,
    InvoiceRequestIn,
    InvoiceRequestOut,
    InvoiceRequestPage,
    InvoiceSettingsIn,
    InvoiceSettingsOut,
    IssueIn,
    PaymentIn,
    ReasonIn,
    ReceivableOut,
    ReceivablePage,
)
from omnicloud.pools.invoices.states import STATUSES

READ = [requires("invoices:read")]
RequestStatus = Annotated[
    str | None,
    QueryParameter(name="status", pattern=f"^({'|'.join(STATUSES)})$", description="Invoice request status"),
]
ReceivableStatus = Annotated[
    str | None,
    QueryParameter(
        name="status",
        pattern="^(open|overdue|paid)$",
        description="open: unpaid and within due date + grace days; overdue: unpaid after them; paid",
    ),
]
RACE = (
    "A status that does not allow it is a 409 `illegal_transition`; a concurrent change is a 409 "
    "`invoice_request_changed`."
)


def _etag(out: InvoiceSettingsOut) -> Response[InvoiceSettingsOut]:
    return Response(out, headers={"ETag": f'"{out.version}"'})


class InvoiceableLineController(Controller):
    path = "/api/v1/invoiceable-lines"
    tags = ["invoices"]

    @get(
        "/",
        operation_id="listInvoiceableLines",
        summary="List shipped order lines with quantities still to invoice",
        description="Left = shipped − returned − held by live requests (requested, approved, issued); "
        "`invoiceable_amount` is what those quantities carry. Dealers see their own subtree's.",
        guards=READ,
    )
    async def list_lines(
        self,
        session: Session,
        principal: Caller,
        state: State,
        customer_id: FromQuery[UUID | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> InvoiceableLinePage:
        items, nxt = await service.invoiceable_lines(
            session, principal, cursor, page_limit(state, limit), customer_id=customer_id
        )
        return InvoiceableLinePage(items=items, next_cursor=nxt)


class InvoiceRequestController(Controller):
    path = "/api/v1/invoice-requests"
    tags = ["invoices"]

    @get(
        "/",
        operation_id="listInvoiceRequests",
        summary="List invoice requests, newest last",
        description="Dealers see the requests of their own customer subtree only.",
        guards=READ,
    )
    async def list_requests(
        self,
        session: Session,
        principal: Caller,
        state: State,
        status: RequestStatus = None,
        customer_id: FromQuery[UUID | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> InvoiceRequestPage:
        items, nxt = await service.list_requests(
            session, principal, cursor, page_limit(state, limit), status=status, customer_id=customer_id
        )
        return InvoiceRequestPage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="createInvoiceRequest",
        summary="Request an invoice (开票申请) for shipped quantities of one customer's orders",
        description="Merged (lines of several orders) and partial (part of a line) requests are both "
        "fine. A quantity above what is left to invoice is a 422 `bad_invoice_request` naming the "
        "line. A dealer requests for itself; staff name the customer. Needs an Idempotency-Key "
        "(428 without one).",
        guards=[requires("invoices:write")],
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[InvoiceRequestIn],
        session: Session,
        principal: Caller,
    ) -> Response[InvoiceRequestOut]:
        require_key(request)
        key = request.headers[IDEMPOTENCY_HEADER]
        return await idempotent(
            request, session, lambda: service.create_request(session, principal, data, key=key)
        )

    @get(
        "/{invoice_request_id:uuid}",
        operation_id="getInvoiceRequest",
        summary="Show an invoice request with its lines, history and, once issued, the invoice",
        guards=READ,
    )
    async def get_request(
        self, invoice_request_id: FromPath[UUID], session: Session, principal: Caller
    ) -> InvoiceRequestOut:
        return await service.get_request(session, principal, invoice_request_id)

    @post(
        "/{invoice_request_id:uuid}/approve",
        operation_id="approveInvoiceRequest",
        summary="Approve a requested invoice",
        description=RACE,
        guards=[requires("invoices:approve")],
        status_code=200,
    )
    async def approve(
        self,
        request: Request[Any, Any, Any],
        invoice_request_id: FromPath[UUID],
        session: Session,
        principal: Caller,
    ) -> Response[InvoiceRequestOut]:
        return await idempotent(
            request, session, lambda: service.approve(session, principal, invoice_request_id), status_code=200
        )

    @post(
        "/{invoice_request_id:uuid}/reject",
        operation_id="rejectInvoiceRequest",
        summary="Reject a requested or approved invoice: its quantities may be requested again",
        description=RACE,
        guards=[requires("invoices:approve")],
        status_code=200,
    )
    async def reject(
        self,
        request: Request[Any, Any, Any],
        invoice_request_id: FromPath[UUID],
        data: JSONBody[ReasonIn],
        session: Session,
        principal: Caller,
    ) -> Response[InvoiceRequestOut]:
        return await idempotent(
            request,
            session,
            lambda: service.reject(session, principal, invoice_request_id, data.reason),
            status_code=200,
        )

    @post(
        "/{invoice_request_id:uuid}/cancel",
        operation_id="cancelInvoiceRequest",
        summary="Withdraw a request before approval (the requester only)",
        description="A dealer cancels its own customer's requests, staff the ones they filed "
        "(403 otherwise). " + RACE,
        guards=[requires("invoices:write")],
        status_code=200,
    )
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        invoice_request_id: FromPath[UUID],
        data: JSONBody[ReasonIn],
        session: Session,
        principal: Caller,
    ) -> Response[InvoiceRequestOut]:
        return await idempotent(
            request,
            session,
            lambda: service.cancel(session, principal, invoice_request_id, data.reason),
            status_code=200,
        )

    @post(
        "/{invoice_request_id:uuid}/issue",
        operation_id="issueInvoice",
        summary="Issue the invoice of an approved request and open the receivable for its credit part",
        description="The invoice number is unique per tenant (409 `duplicate_invoice_number`). The "
        "amount is tax-inclusive: tax = round(amount × rate ÷ (1 + rate)), net = amount − tax; the "
        "rate defaults to the invoice settings. The part of the amount that was on credit becomes a "
        "receivable due after the customer's credit days. " + RACE,
        guards=[requires("invoices:issue")],
        status_code=200,
    )
    async def issue(
        self,
        request: Request[Any, Any, Any],
        invoice_request_id: FromPath[UUID],
        data: JSONBody[IssueIn],
        session: Session,
        principal: Caller,
    ) -> Response[InvoiceRequestOut]:
        return await idempotent(
            request,
            session,
            lambda: service.issue(session, principal, invoice_request_id, data),
            status_code=200,
        )


class ReceivableController(Controller):
    path = "/api/v1/receivables"
    tags = ["invoices"]

    @get(
        "/",
        operation_id="listReceivables",
        summary="List receivables (应收), oldest first",
        description="Dealers see the receivables of their own customer subtree only.",
        guards=READ,
    )
    async def list_receivables(
        self,
        session: Session,
        principal: Caller,
        state: State,
        status: ReceivableStatus = None,
        customer_id: FromQuery[UUID | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> ReceivablePage:
        items, nxt = await service.list_receivables(
            session, principal, cursor, page_limit(state, limit), status=status, customer_id=customer_id
        )
        return ReceivablePage(items=items, next_cursor=nxt)

    @get(
        "/{receivable_id:uuid}",
        operation_id="getReceivable",
        summary="Show a receivable with its payments",
        guards=READ,
    )
    async def get_receivable(
        self, receivable_id: FromPath[UUID], session: Session, principal: Caller
    ) -> ReceivableOut:
        return await service.get_receivable(session, principal, receivable_id)

    @post(
        "/{receivable_id:uuid}/payments",
        operation_id="payReceivable",
        summary="Pay part or all of a receivable from the customer's cash account",
        description="More than is outstanding is a 409 `exceeds_outstanding`; cash that does not "
        "cover it a 409 `insufficient_funds`. A dealer pays its own receivables. Needs an "
        "Idempotency-Key (428 without one); a retry pays nothing more.",
        guards=[requires("invoices:write")],
    )
    async def pay(
        self,
        request: Request[Any, Any, Any],
        receivable_id: FromPath[UUID],
        data: JSONBody[PaymentIn],
        session: Session,
        principal: Caller,
    ) -> Response[ReceivableOut]:
        key = request.headers.get(IDEMPOTENCY_HEADER)
        return await idempotent(
            request, session, lambda: service.pay_receivable(session, principal, receivable_id, data, key=key)
        )


class InvoiceSettingsController(Controller):
    path = "/api/v1/invoice-settings"
    tags = ["invoices"]

    @get(
        "/",
        operation_id="getInvoiceSettings",
        summary="Show the invoice settings (the default tax rate, 13% until changed)",
        guards=READ,
    )
    async def get_settings(self, session: Session) -> Response[InvoiceSettingsOut]:
        return _etag(await service.get_settings(session))

    @put(
        "/",
        operation_id="updateInvoiceSettings",
        summary="Change the invoice settings (If-Match: the version you read; 0 before the first change)",
        guards=[requires("invoices:issue")],
    )
    async def update_settings(
        self, request: Request[Any, Any, Any], data: JSONBody[InvoiceSettingsIn], session: Session
    ) -> Response[InvoiceSettingsOut]:
        version = if_match(request)
        assert version is not None
        return _etag(await service.update_settings(session, data, version))


ROUTES: list[Any] = [
    InvoiceableLineController,
    InvoiceRequestController,
    ReceivableController,
    InvoiceSettingsController,
]
