"""Orders over REST (订单): submit, list, show, approve, reject, cancel, ship and confirm receipt.

Submitting an order and recording a shipment need an ``Idempotency-Key`` (428 without one): a
retry replays the first answer and never freezes, reserves, deducts or ships twice. The other
actions accept one too. An action the order's status does not allow is a 409
``illegal_transition``; losing a race with a concurrent action on the same order is a 409
``order_changed``.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from omnicloud.core.deps import Caller, Cursor, Limit, Session, page_limit
from omnicloud.core.http import IDEMPOTENCY_HEADER, idempotent, requires
from omnicloud.pools.funds.api import require_key
from omnicloud.pools.order_states import STATUSES
from omnicloud.pools.orders import service
from omnicloud.pools.orders.schemas import OrderIn, OrderOut, OrderPage, ReasonIn, ShipmentIn

READ = [requires("orders:read")]
OrderStatus = Annotated[
    str | None,
    QueryParameter(name="status", pattern=f"^({'|'.join(STATUSES)})$", description="Order status"),
]
RACE = (
    "A status that does not allow it is a 409 `illegal_transition`; a concurrent change is a 409 "
    "`order_changed`."
)


class OrderController(Controller):
    path = "/api/v1/orders"
    tags = ["orders"]

    @get(
        "/",
        operation_id="listOrders",
        summary="List orders, newest last",
        description="Dealers see the orders of their own customer subtree only.",
        guards=READ,
    )
    async def list_orders(
        self,
        session: Session,
        principal: Caller,
        state: State,
        status: OrderStatus = None,
        customer_id: FromQuery[UUID | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> OrderPage:
        items, nxt = await service.list_orders(
            session, principal, cursor, page_limit(state, limit), status=status, customer_id=customer_id
        )
        return OrderPage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="submitOrder",
        summary="Submit an order: price, credit-check, freeze funds and reserve stock in one step",
        description="A dealer orders for itself; staff name the customer. Priced like a quote on the "
        "day of submission. A line below a blocking price floor is a 422 `below_price_floor`; money "
        "the accounts and credit cannot cover is a 409 `insufficient_funds`; a blocking credit rule a "
        "409 `credit_blocked`; missing stock a 409. A refused order leaves nothing behind. Needs an "
        "Idempotency-Key (428 without one).",
        guards=[requires("orders:write")],
    )
    async def submit(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[OrderIn],
        session: Session,
        principal: Caller,
        state: State,
    ) -> Response[OrderOut]:
        require_key(request)
        key = request.headers[IDEMPOTENCY_HEADER]
        return await idempotent(
            request,
            session,
            lambda: service.submit(
                session, state.plugins, principal, data, key=key, max_lines=state.settings.max_lines
            ),
        )

    @get(
        "/{order_id:uuid}",
        operation_id="getOrder",
        summary="Show an order with its lines, promotion allocations and history",
        guards=READ,
    )
    async def get_order(self, order_id: FromPath[UUID], session: Session, principal: Caller) -> OrderOut:
        return await service.get_order(session, principal, order_id)

    @post(
        "/{order_id:uuid}/approve",
        operation_id="approveOrder",
        summary="Approve an order waiting for approval",
        description=RACE,
        guards=[requires("orders:approve")],
        status_code=200,
    )
    async def approve(
        self, request: Request[Any, Any, Any], order_id: FromPath[UUID], session: Session, principal: Caller
    ) -> Response[OrderOut]:
        return await idempotent(
            request, session, lambda: service.approve(session, principal, order_id), status_code=200
        )

    @post(
        "/{order_id:uuid}/reject",
        operation_id="rejectOrder",
        summary="Reject an order waiting for approval: its freezes, stock and coupons are released",
        description=RACE,
        guards=[requires("orders:approve")],
        status_code=200,
    )
    async def reject(
        self,
        request: Request[Any, Any, Any],
        order_id: FromPath[UUID],
        data: JSONBody[ReasonIn],
        session: Session,
        principal: Caller,
    ) -> Response[OrderOut]:
        return await idempotent(
            request,
            session,
            lambda: service.reject(session, principal, order_id, data.reason),
            status_code=200,
        )

    @post(
        "/{order_id:uuid}/cancel",
        operation_id="cancelOrder",
        summary="Cancel an order before shipment: its freezes, stock and coupons are released",
        description="A dealer cancels its own orders. " + RACE,
        guards=[requires("orders:write")],
        status_code=200,
    )
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        order_id: FromPath[UUID],
        data: JSONBody[ReasonIn],
        session: Session,
        principal: Caller,
    ) -> Response[OrderOut]:
        return await idempotent(
            request,
            session,
            lambda: service.cancel(session, principal, order_id, data.reason),
            status_code=200,
        )

    @post(
        "/{order_id:uuid}/shipments",
        operation_id="shipOrder",
        summary="Ship some or all of an approved order: consume stock and deduct frozen money",
        description="Quantities are in each line's unit. Money is deducted in proportion to the value "
        "shipped; the shipment that completes the order deducts all that is still frozen. Needs an "
        "Idempotency-Key (428 without one). " + RACE,
        guards=[requires("orders:ship")],
        status_code=201,
    )
    async def ship(
        self,
        request: Request[Any, Any, Any],
        order_id: FromPath[UUID],
        data: JSONBody[ShipmentIn],
        session: Session,
        principal: Caller,
    ) -> Response[OrderOut]:
        keyed = request.headers.get(IDEMPOTENCY_HEADER) is not None
        return await idempotent(
            request, session, lambda: service.ship(session, principal, order_id, data, keyed=keyed)
        )

    @post(
        "/{order_id:uuid}/confirm-receipt",
        operation_id="confirmOrderReceipt",
        summary="Confirm receipt (签收) of a shipped order, which completes it",
        description="A dealer confirms its own orders. " + RACE,
        guards=[requires("orders:write")],
        status_code=200,
    )
    async def confirm_receipt(
        self, request: Request[Any, Any, Any], order_id: FromPath[UUID], session: Session, principal: Caller
    ) -> Response[OrderOut]:
        return await idempotent(
            request, session, lambda: service.confirm_receipt(session, principal, order_id), status_code=200
        )


ROUTES: list[Any] = [OrderController]
