"""Orders over REST (订单): submit, list, show, approve, reject, cancel, ship and confirm receipt;
returns (退货): file, list, show, approve, reject, cancel and receive; the order settings.

Submitting an order and recording a shipment need an ``Idempotency-Key`` (428 without one): a
retry replays the first answer and never freezes, reserves, deducts or ships twice. The other
actions accept one too. An action the order's status does not allow is a 409
``illegal_transition``; losing a race with a concurrent action on the same order is a 409
``order_changed``. Filing a return and receiving one need an ``Idempotency-Key`` too.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from omnicloud.core.deps import Caller, Cursor, Limit, Session, page_limit
from omnicloud.core.http import IDEMPOTENCY_HEADER, idempotent, if_match, requires
from omnicloud.pools.funds.api import require_key, staff_or_dealer
from omnicloud.pools.order_states import RETURN_STATUSES, STATUSES
from omnicloud.pools.orders import returns, service
from omnicloud.pools.orders.schemas import (
    OrderIn,
    OrderOut,
    OrderPage,
    OrderSettingsIn,
    OrderSettingsOut,
    ReasonIn,
    ReturnIn,
    ReturnOut,
    ReturnPage,
    ReturnReceiptIn,
    ShipmentIn,
)

READ = [requires("orders:read")]
APPROVE = [staff_or_dealer("orders:approve", "orders:sell")]
SHIP = [staff_or_dealer("orders:ship", "orders:sell")]
SELLER = " A dealer (orders:sell) takes this step only on the orders it sells (403 for others it sees)."
Role = Annotated[
    str | None,
    QueryParameter(
        name="role",
        pattern="^(sold|bought)$",
        description="`sold`: the orders the caller's dealer sells (staff: the brand-sold ones); "
        "`bought`: the dealer's own purchases",
    ),
]
OrderStatus = Annotated[
    str | None,
    QueryParameter(name="status", pattern=f"^({'|'.join(STATUSES)})$", description="Order status"),
]
ReturnStatus = Annotated[
    str | None,
    QueryParameter(name="status", pattern=f"^({'|'.join(RETURN_STATUSES)})$", description="Return status"),
]
RETURN_RACE = (
    "A status that does not allow it is a 409 `illegal_transition`; a concurrent change is a 409 "
    "`return_changed`."
)
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
        description="Dealers see the orders of their own customer subtree only (a level-1 dealer "
        "sees its sub-dealers' orders, the ones it sells them among them). `role=sold` keeps the "
        "orders the caller's dealer sells, `role=bought` its own purchases; `seller_customer_id` one "
        "dealer's sales orders.",
        guards=READ,
    )
    async def list_orders(
        self,
        session: Session,
        principal: Caller,
        state: State,
        status: OrderStatus = None,
        customer_id: FromQuery[UUID | None] = None,
        role: Role = None,
        seller_customer_id: FromQuery[UUID | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> OrderPage:
        items, nxt = await service.list_orders(
            session,
            principal,
            cursor,
            page_limit(state, limit),
            status=status,
            customer_id=customer_id,
            role=role,
            seller_customer_id=seller_customer_id,
        )
        return OrderPage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="submitOrder",
        summary="Submit an order: price, credit-check, freeze funds and reserve stock in one step",
        description="A dealer orders for itself; staff name the customer. Priced like a quote on the "
        "day of submission. Lines a supply relation routes to a level-1 dealer make the order that "
        "dealer's sales order: it ships from a warehouse of that dealer and is paid from the buyer's "
        "accounts at it; lines of several sellers are a 422 `mixed_sellers` naming each line's seller. "
        "When that dealer's warehouse is short and every line's supply relation allows drop-ship, an order "
        "naming a brand warehouse in `drop_ship_warehouse_id` is accepted and spawns the dealer's "
        "purchase from the brand (`drop_ship_order_id`); a purchase the dealer cannot pay refuses it. "
        "A line below a blocking price floor is a 422 `below_price_floor`; money "
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
        description="Runs the credit check of the approval check point (a block is a 409 "
        "`credit_blocked`); posting at approval, every freeze is deducted. " + RACE + SELLER,
        guards=APPROVE,
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
        description=RACE + SELLER,
        guards=APPROVE,
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
        summary="Cancel an order, or close the rest of a partially shipped one",
        description="A dealer cancels its own orders and the orders it sells. "
        "Cancelling a partially shipped order closes the "
        "rest (status `closed`): its unshipped credit is released first, then what is still frozen "
        "(or, posted at approval, the unshipped goods' money is refunded), then the unshipped stock "
        "holds. " + RACE,
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
        description="Quantities are in each line's unit. Posting at shipment, each shipped line deducts "
        "its share of its fee, rebate, special and cash parts; the shipment that completes the order "
        "deducts all that is still frozen. A blocking credit rule at the shipment check point is a "
        "409 `credit_blocked` that changes nothing. Shipping a drop-ship purchase ships its level-2 order "
        "by the same quantities; a drop-shipped level-2 order is not shipped by its seller (409 "
        "`drop_shipped`). A line may name the seller's `warehouse_id` and the `lot_no` it leaves from "
        "(another seller's warehouse is a 422 on `lines[i].warehouse_id`): it releases that much of "
        "the order's holds and takes the goods there, earliest expiry first and never an expired lot "
        "unless named; a warehouse that cannot cover it is a 409 `insufficient_stock` on "
        "`lines[i].quantity`. Needs an Idempotency-Key (428 without one). " + RACE + SELLER,
        guards=SHIP,
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

    @post(
        "/{order_id:uuid}/returns",
        operation_id="fileOrderReturn",
        summary="File a return (退货) of shipped goods of an order",
        description="A dealer returns goods of its own orders; staff of any. Each line's quantity is at "
        "most what shipped and is not returned or claimed by another open return (422 "
        "`bad_return`; losing a race to a concurrent return is a 409 `exceeds_returnable`). An "
        "order that shipped nothing is a 409 `not_returnable`. Needs an Idempotency-Key.",
        guards=[requires("orders:write")],
    )
    async def file_return(
        self,
        request: Request[Any, Any, Any],
        order_id: FromPath[UUID],
        data: JSONBody[ReturnIn],
        session: Session,
        principal: Caller,
    ) -> Response[ReturnOut]:
        key = request.headers.get(IDEMPOTENCY_HEADER)
        return await idempotent(
            request, session, lambda: returns.file_return(session, principal, order_id, data, key=key)
        )


class ReturnController(Controller):
    path = "/api/v1/returns"
    tags = ["orders"]

    @get(
        "/",
        operation_id="listReturns",
        summary="List returns, newest last",
        description="Dealers see the returns of their own customer subtree only.",
        guards=READ,
    )
    async def list_returns(
        self,
        session: Session,
        principal: Caller,
        state: State,
        status: ReturnStatus = None,
        order_id: FromQuery[UUID | None] = None,
        customer_id: FromQuery[UUID | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> ReturnPage:
        items, nxt = await returns.list_returns(
            session,
            principal,
            cursor,
            page_limit(state, limit),
            status=status,
            order_id=order_id,
            customer_id=customer_id,
        )
        return ReturnPage(items=items, next_cursor=nxt)

    @get("/{return_id:uuid}", operation_id="getReturn", summary="Show a return with its lines", guards=READ)
    async def get_return(self, return_id: FromPath[UUID], session: Session, principal: Caller) -> ReturnOut:
        return await returns.get_return(session, principal, return_id)

    @post(
        "/{return_id:uuid}/approve",
        operation_id="approveReturn",
        summary="Approve a requested return",
        description=RETURN_RACE + SELLER,
        guards=APPROVE,
        status_code=200,
    )
    async def approve(
        self, request: Request[Any, Any, Any], return_id: FromPath[UUID], session: Session, principal: Caller
    ) -> Response[ReturnOut]:
        return await idempotent(
            request, session, lambda: returns.approve_return(session, principal, return_id), status_code=200
        )

    @post(
        "/{return_id:uuid}/reject",
        operation_id="rejectReturn",
        summary="Reject a requested return: its quantities may be returned again",
        description=RETURN_RACE + SELLER,
        guards=APPROVE,
        status_code=200,
    )
    async def reject(
        self,
        request: Request[Any, Any, Any],
        return_id: FromPath[UUID],
        data: JSONBody[ReasonIn],
        session: Session,
        principal: Caller,
    ) -> Response[ReturnOut]:
        return await idempotent(
            request,
            session,
            lambda: returns.reject_return(session, principal, return_id, data.reason),
            status_code=200,
        )

    @post(
        "/{return_id:uuid}/cancel",
        operation_id="cancelReturn",
        summary="Cancel a return before its goods are received",
        description="A dealer cancels its own returns. " + RETURN_RACE,
        guards=[requires("orders:write")],
        status_code=200,
    )
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        return_id: FromPath[UUID],
        data: JSONBody[ReasonIn],
        session: Session,
        principal: Caller,
    ) -> Response[ReturnOut]:
        return await idempotent(
            request,
            session,
            lambda: returns.cancel_return(session, principal, return_id, data.reason),
            status_code=200,
        )

    @post(
        "/{return_id:uuid}/receive",
        operation_id="receiveReturn",
        summary="Receive an approved return into the seller's warehouse and refund it the way it was paid",
        description="The goods come back as a stock receipt (reference `return:<id>`); the fee and "
        "rebate shares restore their accounts with their original expiry, the rest goes back to "
        "special and cash, and the credit share leaves the exposure. Needs an Idempotency-Key: a "
        "retry replays the first answer and never refunds twice. A dealer-sold order's goods go back "
        "into a warehouse of the selling dealer and its money back out of that dealer's pool. "
        + RETURN_RACE
        + SELLER,
        guards=SHIP,
        status_code=200,
    )
    async def receive(
        self,
        request: Request[Any, Any, Any],
        return_id: FromPath[UUID],
        data: JSONBody[ReturnReceiptIn],
        session: Session,
        principal: Caller,
    ) -> Response[ReturnOut]:
        keyed = request.headers.get(IDEMPOTENCY_HEADER) is not None
        return await idempotent(
            request,
            session,
            lambda: returns.receive_return(session, principal, return_id, data, keyed=keyed),
            status_code=200,
        )


class OrderSettingsController(Controller):
    path = "/api/v1/order-settings"
    tags = ["orders"]

    @get("/", operation_id="getOrderSettings", summary="Show the order settings", guards=READ)
    async def get_settings(self, session: Session) -> OrderSettingsOut:
        return await service.get_settings(session)

    @put(
        "/",
        operation_id="updateOrderSettings",
        summary="Change the order settings (the posting point)",
        description='Needs If-Match with the version read (`"0"` for the defaults): 428 without '
        "it, 412 when stale. Orders keep the posting point they were submitted with.",
        guards=[requires("orders:configure")],
    )
    async def update_settings(
        self, request: Request[Any, Any, Any], data: JSONBody[OrderSettingsIn], session: Session
    ) -> OrderSettingsOut:
        return await service.update_settings(session, data, if_match(request))


ROUTES: list[Any] = [OrderController, ReturnController, OrderSettingsController]
