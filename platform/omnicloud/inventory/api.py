"""Warehouses, lots, stock, movements and reservations over REST."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from omnicloud.core.deps import Caller, Cursor, Limit, Session, page_limit
from omnicloud.core.http import CsvUpload, idempotent, read_csv, requires
from omnicloud.inventory import service
from omnicloud.inventory.schemas import (
    CSV_COLUMNS,
    AdjustmentIn,
    ImportResult,
    IssueIn,
    LotIn,
    LotOut,
    LotPage,
    MovementPage,
    ReceiptIn,
    ReservationIn,
    ReservationOut,
    ReservationPage,
    StockChangeOut,
    StockPage,
    TransferIn,
    WarehouseIn,
    WarehouseOut,
    WarehousePage,
    WarehousePatch,
)

READ = [requires("stock:read")]
WRITE = [requires("stock:write")]

WarehouseStatus = Annotated[
    str | None, QueryParameter(name="status", pattern="^(active|inactive)$", description="active or inactive")
]
ReservationStatus = Annotated[
    str | None,
    QueryParameter(name="status", pattern="^(placed|released|consumed)$", description="Hold status"),
]
MovementKind = Annotated[
    str | None,
    QueryParameter(
        name="kind", pattern=f"^({'|'.join(service.MOVEMENT_KINDS)})$", description="Movement kind"
    ),
]
ExpiringBefore = Annotated[
    date | None, QueryParameter(name="expiring_before", description="Only lots expiring before this date")
]


class WarehouseController(Controller):
    path = "/api/v1/warehouses"
    tags = ["inventory"]

    @get("/", operation_id="listWarehouses", summary="List warehouses", guards=READ)
    async def list_warehouses(
        self,
        session: Session,
        principal: Caller,
        state: State,
        owner_customer_id: FromQuery[UUID | None] = None,
        region_id: FromQuery[UUID | None] = None,
        status: WarehouseStatus = None,
        code: FromQuery[str | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> WarehousePage:
        items, nxt = await service.list_warehouses(
            session,
            principal,
            cursor,
            page_limit(state, limit),
            owner_customer_id=owner_customer_id,
            region_id=region_id,
            status=status,
            code=code,
        )
        return WarehousePage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="createWarehouse",
        summary="Create a warehouse of the brand or of a dealer",
        guards=[requires("warehouses:write")],
    )
    async def create_warehouse(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[WarehouseIn],
        session: Session,
        principal: Caller,
    ) -> Response[WarehouseOut]:
        return await idempotent(request, session, lambda: service.create_warehouse(session, principal, data))

    @get("/{warehouse_id:uuid}", operation_id="getWarehouse", summary="Show a warehouse", guards=READ)
    async def get_warehouse(
        self, warehouse_id: FromPath[UUID], session: Session, principal: Caller
    ) -> WarehouseOut:
        return await service.get_warehouse(session, principal, warehouse_id)

    @patch(
        "/{warehouse_id:uuid}",
        operation_id="updateWarehouse",
        summary="Rename a warehouse or change its owner, region or status",
        guards=[requires("warehouses:write")],
    )
    async def update_warehouse(
        self,
        warehouse_id: FromPath[UUID],
        data: JSONBody[WarehousePatch],
        session: Session,
        principal: Caller,
    ) -> WarehouseOut:
        return await service.update_warehouse(session, principal, warehouse_id, data)


class LotController(Controller):
    path = "/api/v1/lots"
    tags = ["inventory"]

    @get("/", operation_id="listLots", summary="List lots", guards=READ)
    async def list_lots(
        self,
        session: Session,
        state: State,
        sku_id: FromQuery[UUID | None] = None,
        lot_no: FromQuery[str | None] = None,
        expiring_before: ExpiringBefore = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> LotPage:
        items, nxt = await service.list_lots(
            session,
            cursor,
            page_limit(state, limit),
            sku_id=sku_id,
            lot_no=lot_no,
            expiring_before=expiring_before,
        )
        return LotPage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="createLot",
        summary="Record a lot with its production and expiry dates",
        guards=WRITE,
    )
    async def create_lot(
        self, request: Request[Any, Any, Any], data: JSONBody[LotIn], session: Session
    ) -> Response[LotOut]:
        return await idempotent(request, session, lambda: service.create_lot(session, data))

    @get("/{lot_id:uuid}", operation_id="getLot", summary="Show a lot", guards=READ)
    async def get_lot(self, lot_id: FromPath[UUID], session: Session) -> LotOut:
        return await service.get_lot(session, lot_id)


class StockController(Controller):
    path = "/api/v1/stock"
    tags = ["inventory"]

    @get("/", operation_id="listStock", summary="Stock per warehouse, SKU and lot", guards=READ)
    async def list_stock(
        self,
        session: Session,
        principal: Caller,
        state: State,
        warehouse_id: FromQuery[UUID | None] = None,
        sku_id: FromQuery[UUID | None] = None,
        lot_no: FromQuery[str | None] = None,
        expiring_before: ExpiringBefore = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> StockPage:
        items, nxt = await service.list_stock(
            session,
            principal,
            cursor,
            page_limit(state, limit),
            warehouse_id=warehouse_id,
            sku_id=sku_id,
            lot_no=lot_no,
            expiring_before=expiring_before,
        )
        return StockPage(items=items, next_cursor=nxt)

    @get("/movements", operation_id="listStockMovements", summary="The stock movement journal", guards=READ)
    async def list_movements(
        self,
        session: Session,
        principal: Caller,
        state: State,
        warehouse_id: FromQuery[UUID | None] = None,
        sku_id: FromQuery[UUID | None] = None,
        lot_no: FromQuery[str | None] = None,
        kind: MovementKind = None,
        reference: FromQuery[str | None] = None,
        reservation_id: FromQuery[UUID | None] = None,
        transfer_id: FromQuery[UUID | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> MovementPage:
        items, nxt = await service.list_movements(
            session,
            principal,
            cursor,
            page_limit(state, limit),
            warehouse_id=warehouse_id,
            sku_id=sku_id,
            lot_no=lot_no,
            kind=kind,
            reference=reference,
            reservation_id=reservation_id,
            transfer_id=transfer_id,
        )
        return MovementPage(items=items, next_cursor=nxt)

    @post("/receipts", operation_id="receiveStock", summary="Receive goods into a warehouse", guards=WRITE)
    async def receive(
        self, request: Request[Any, Any, Any], data: JSONBody[ReceiptIn], session: Session, principal: Caller
    ) -> Response[StockChangeOut]:
        return await idempotent(request, session, lambda: service.receive(session, principal, data))

    @post("/issues", operation_id="issueStock", summary="Issue available stock", guards=WRITE)
    async def issue(
        self, request: Request[Any, Any, Any], data: JSONBody[IssueIn], session: Session, principal: Caller
    ) -> Response[StockChangeOut]:
        return await idempotent(request, session, lambda: service.issue(session, principal, data))

    @post(
        "/adjustments",
        operation_id="adjustStock",
        summary="Set a counted quantity or apply a signed correction",
        guards=WRITE,
    )
    async def adjust(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[AdjustmentIn],
        session: Session,
        principal: Caller,
    ) -> Response[StockChangeOut]:
        return await idempotent(request, session, lambda: service.adjust(session, principal, data))

    @post("/transfers", operation_id="transferStock", summary="Move stock between warehouses", guards=WRITE)
    async def transfer(
        self, request: Request[Any, Any, Any], data: JSONBody[TransferIn], session: Session, principal: Caller
    ) -> Response[StockChangeOut]:
        return await idempotent(request, session, lambda: service.transfer(session, principal, data))

    @get("/reservations", operation_id="listReservations", summary="List stock reservations", guards=READ)
    async def list_reservations(
        self,
        session: Session,
        principal: Caller,
        state: State,
        warehouse_id: FromQuery[UUID | None] = None,
        sku_id: FromQuery[UUID | None] = None,
        status: ReservationStatus = None,
        reference: FromQuery[str | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> ReservationPage:
        items, nxt = await service.list_reservations(
            session,
            principal,
            cursor,
            page_limit(state, limit),
            warehouse_id=warehouse_id,
            sku_id=sku_id,
            status=status,
            reference=reference,
        )
        return ReservationPage(items=items, next_cursor=nxt)

    @post("/reservations", operation_id="reserveStock", summary="Reserve available stock", guards=WRITE)
    async def reserve(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ReservationIn],
        session: Session,
        principal: Caller,
    ) -> Response[ReservationOut]:
        return await idempotent(request, session, lambda: service.reserve(session, principal, data))

    @get(
        "/reservations/{reservation_id:uuid}",
        operation_id="getReservation",
        summary="Show a reservation",
        guards=READ,
    )
    async def get_reservation(
        self, reservation_id: FromPath[UUID], session: Session, principal: Caller
    ) -> ReservationOut:
        return await service.get_reservation(session, principal, reservation_id)

    @post(
        "/reservations/{reservation_id:uuid}/release",
        operation_id="releaseReservation",
        summary="Release a placed reservation (exactly once)",
        guards=WRITE,
        status_code=200,
    )
    async def release(
        self,
        request: Request[Any, Any, Any],
        reservation_id: FromPath[UUID],
        session: Session,
        principal: Caller,
    ) -> Response[ReservationOut]:
        return await idempotent(
            request, session, lambda: service.release(session, principal, reservation_id), status_code=200
        )

    @post(
        "/reservations/{reservation_id:uuid}/consume",
        operation_id="consumeReservation",
        summary="Issue the reserved stock (exactly once)",
        guards=WRITE,
        status_code=200,
    )
    async def consume(
        self,
        request: Request[Any, Any, Any],
        reservation_id: FromPath[UUID],
        session: Session,
        principal: Caller,
    ) -> Response[ReservationOut]:
        return await idempotent(
            request, session, lambda: service.consume(session, principal, reservation_id), status_code=200
        )

    @get(
        "/export",
        operation_id="exportStock",
        summary="Stock levels as CSV (the import's columns)",
        guards=READ,
        media_type="text/csv",
    )
    async def export(
        self,
        session: Session,
        principal: Caller,
        warehouse_id: FromQuery[UUID | None] = None,
        sku_id: FromQuery[UUID | None] = None,
    ) -> Response[str]:
        text = await service.export_stock(session, principal, warehouse_id=warehouse_id, sku_id=sku_id)
        return Response(
            text, media_type="text/csv", headers={"Content-Disposition": 'attachment; filename="stock.csv"'}
        )

    @post(
        "/import",
        operation_id="importStock",
        summary="Set on-hand quantities from CSV (all-or-nothing, every bad row reported)",
        description="Columns: " + ", ".join(CSV_COLUMNS),
        guards=WRITE,
        status_code=200,
        operation_class=CsvUpload,
    )
    async def import_csv(
        self, request: Request[Any, Any, Any], session: Session, principal: Caller
    ) -> Response[ImportResult]:
        text = await read_csv(request)
        return await idempotent(
            request, session, lambda: service.import_stock(session, principal, text), status_code=200
        )


ROUTES: list[Any] = [WarehouseController, LotController, StockController]
