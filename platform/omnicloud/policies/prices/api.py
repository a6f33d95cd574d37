"""Prices over REST: the access sequence, price lists with their entries (and entries CSV),
price floors. Reads need prices:read, writes prices:write; updates and deletes need If-Match.

A dealer user with prices:own maintains its own price lists and entries through the same routes
(the lists it creates are its own) and reads the access sequence; it never reaches the brand's
lists or another dealer's (404), nor floors."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody

from omnicloud.catalog.api import Text, with_etag
from omnicloud.core.deps import Caller, Cursor, Limit, Session, page_limit
from omnicloud.core.errors import Forbidden, Unauthorized
from omnicloud.core.http import CSV, CsvUpload, idempotent, if_match, read_csv, requires
from omnicloud.core.security import Principal, current_principal
from omnicloud.policies.prices import service
from omnicloud.policies.prices.schemas import (
    ENTRY_CSV_COLUMNS,
    PriceEntryIn,
    PriceEntryOut,
    PriceEntryPage,
    PriceEntryPatch,
    PriceFloorIn,
    PriceFloorOut,
    PriceFloorPage,
    PriceFloorPatch,
    PriceImportResult,
    PriceListIn,
    PriceListOut,
    PriceListPage,
    PriceListPatch,
    SequenceIn,
    SequenceOut,
    StepName,
)
from omnicloud.policies.prices.schemas import (
    Status as ListStatus,
)

READ = [requires("prices:read")]
WRITE = [requires("prices:write")]


def _either(staff: str) -> Any:
    """A guard: the brand's ``staff`` permission, or prices:own for a dealer user."""

    async def guard(connection: Any, _: Any) -> None:
        p = current_principal()
        if p is None:
            raise Unauthorized("authentication required", code="missing_credential")
        if not (p.can(staff) or (p.is_dealer and p.can("prices:own"))):
            raise Forbidden(f"missing permission: {staff}", code="missing_permission")

    guard.__name__ = f"requires_{staff}_or_prices_own"
    return guard


LIST_READ = [_either("prices:read")]
LIST_WRITE = [_either("prices:write")]


def _owner(principal: Principal) -> UUID | None:
    """Whose lists the caller works on: a dealer its own, the brand's staff the brand's."""
    return principal.customer_id if principal.is_dealer else None


def _version(request: Request[Any, Any, Any]) -> int:
    version = if_match(request)
    assert version is not None  # required: if_match answers 428 without it
    return version


class PriceSequenceController(Controller):
    path = "/api/v1/price-sequence"
    tags = ["prices"]

    @get(
        "/",
        operation_id="getPriceSequence",
        summary="The access sequence; version 0 is the built-in default",
        guards=LIST_READ,
    )
    async def get_sequence(self, session: Session) -> Response[SequenceOut]:
        return with_etag(await service.get_sequence(session))

    @put(
        "/",
        operation_id="putPriceSequence",
        summary="Replace the access sequence (If-Match: its version, 0 for the default)",
        description="Refused with a 422 naming the price lists that would no longer fit (their step "
        "gone or its dimensions changed). Without If-Match: 428; stale: 412.",
        guards=WRITE,
    )
    async def put_sequence(
        self, data: JSONBody[SequenceIn], request: Request[Any, Any, Any], session: Session
    ) -> Response[SequenceOut]:
        return with_etag(await service.put_sequence(session, data, _version(request)))


class PriceListController(Controller):
    path = "/api/v1/price-lists"
    tags = ["prices"]

    @get("/", operation_id="listPriceLists", summary="List price lists", guards=LIST_READ)
    async def list_price_lists(
        self,
        session: Session,
        state: State,
        principal: Caller,
        step: FromQuery[StepName | None] = None,
        status: FromQuery[ListStatus | None] = None,
        customer_id: FromQuery[UUID | None] = None,
        owner_customer_id: FromQuery[UUID | None] = None,
        q: Text = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> PriceListPage:
        items, nxt = await service.list_price_lists(
            session,
            cursor,
            page_limit(state, limit),
            step=step,
            status=status,
            customer_id=customer_id,
            owner_customer_id=owner_customer_id,
            q=q,
            owner=_owner(principal),
        )
        return PriceListPage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="createPriceList",
        summary="Create a price list in an access-sequence step",
        description="Its dimensions must be exactly its step's (422 naming the field). A dealer's "
        "list is its own: it prices the lines a supply relation routes to that dealer, and a "
        "`customer_id` dimension must name one of the dealers under it.",
        guards=LIST_WRITE,
    )
    async def create_price_list(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[PriceListIn],
        session: Session,
        principal: Caller,
    ) -> Response[PriceListOut]:
        owner = _owner(principal)
        return await idempotent(request, session, lambda: service.create_price_list(session, data, owner))

    @get("/{price_list_id:uuid}", operation_id="getPriceList", summary="Show a price list", guards=LIST_READ)
    async def get_price_list(
        self, price_list_id: FromPath[UUID], session: Session, principal: Caller
    ) -> Response[PriceListOut]:
        return with_etag(await service.get_price_list(session, price_list_id, _owner(principal)))

    @patch(
        "/{price_list_id:uuid}",
        operation_id="updatePriceList",
        summary="Change a price list (If-Match: the version you read)",
        description="A change of step, dimensions, priority, validity or status re-checks the "
        "list's entries: a tie with another list is a 422 naming both entries and lists.",
        guards=LIST_WRITE,
    )
    async def update_price_list(
        self,
        price_list_id: FromPath[UUID],
        data: JSONBody[PriceListPatch],
        request: Request[Any, Any, Any],
        session: Session,
        principal: Caller,
    ) -> Response[PriceListOut]:
        version = _version(request)
        return with_etag(
            await service.update_price_list(session, price_list_id, data, version, _owner(principal))
        )

    @delete(
        "/{price_list_id:uuid}",
        operation_id="deletePriceList",
        summary="Delete a price list and its entries (If-Match: the version you read)",
        guards=LIST_WRITE,
    )
    async def delete_price_list(
        self,
        price_list_id: FromPath[UUID],
        request: Request[Any, Any, Any],
        session: Session,
        principal: Caller,
    ) -> None:
        await service.delete_price_list(session, price_list_id, _version(request), _owner(principal))

    @get(
        "/{price_list_id:uuid}/entries",
        operation_id="listPriceEntries",
        summary="A price list's entries",
        guards=LIST_READ,
    )
    async def list_entries(
        self,
        price_list_id: FromPath[UUID],
        session: Session,
        state: State,
        principal: Caller,
        sku_id: FromQuery[UUID | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> PriceEntryPage:
        items, nxt = await service.list_price_entries(
            session, price_list_id, cursor, page_limit(state, limit), sku_id=sku_id, owner=_owner(principal)
        )
        return PriceEntryPage(items=items, next_cursor=nxt)

    @post(
        "/{price_list_id:uuid}/entries",
        operation_id="createPriceEntry",
        summary="Add an entry to a price list",
        description="The unit must be the SKU's base unit or one of its product's converted units; "
        "bands are in the base unit. A tie is a 422 naming both entries and their lists. In a "
        "dealer's list the price must lie inside the brand's guide price range (422 "
        "`outside_guide_price` naming the entry and the range).",
        guards=LIST_WRITE,
    )
    async def create_entry(
        self,
        price_list_id: FromPath[UUID],
        request: Request[Any, Any, Any],
        data: JSONBody[PriceEntryIn],
        session: Session,
        principal: Caller,
    ) -> Response[PriceEntryOut]:
        owner = _owner(principal)
        return await idempotent(
            request, session, lambda: service.create_price_entry(session, price_list_id, data, owner)
        )

    @get(
        "/{price_list_id:uuid}/entries.csv",
        operation_id="exportPriceEntries",
        summary="A price list's entries as CSV, in the import's columns",
        guards=LIST_READ,
        media_type=CSV,
    )
    async def export_entries(self, price_list_id: FromPath[UUID], session: Session, principal: Caller) -> str:
        return await service.export_entries_csv(session, price_list_id, _owner(principal))

    @post(
        "/{price_list_id:uuid}/entries.csv",
        operation_id="importPriceEntries",
        summary="Upsert a price list's entries from CSV (all or nothing)",
        description="Columns: " + ", ".join(ENTRY_CSV_COLUMNS) + ". A row updates the entry with "
        "the same SKU, unit, min_qty and valid_from, or adds one; `replace=true` also deletes the "
        "entries no row names. Every bad row is reported with its line number (in a dealer's list, "
        "also a price outside the brand's guide price range).",
        guards=LIST_WRITE,
        operation_class=CsvUpload,
        status_code=200,
    )
    async def import_entries(
        self,
        price_list_id: FromPath[UUID],
        request: Request[Any, Any, Any],
        session: Session,
        principal: Caller,
        replace: FromQuery[bool] = False,
    ) -> PriceImportResult:
        return await service.import_entries_csv(
            session, price_list_id, await read_csv(request), replace=replace, owner=_owner(principal)
        )


class PriceEntryController(Controller):
    path = "/api/v1/price-entries"
    tags = ["prices"]

    @get(
        "/{price_entry_id:uuid}", operation_id="getPriceEntry", summary="Show a price entry", guards=LIST_READ
    )
    async def get_entry(
        self, price_entry_id: FromPath[UUID], session: Session, principal: Caller
    ) -> Response[PriceEntryOut]:
        return with_etag(await service.get_price_entry(session, price_entry_id, _owner(principal)))

    @patch(
        "/{price_entry_id:uuid}",
        operation_id="updatePriceEntry",
        summary="Change a price entry (If-Match: the version you read)",
        guards=LIST_WRITE,
    )
    async def update_entry(
        self,
        price_entry_id: FromPath[UUID],
        data: JSONBody[PriceEntryPatch],
        request: Request[Any, Any, Any],
        session: Session,
        principal: Caller,
    ) -> Response[PriceEntryOut]:
        version = _version(request)
        return with_etag(
            await service.update_price_entry(session, price_entry_id, data, version, _owner(principal))
        )

    @delete(
        "/{price_entry_id:uuid}",
        operation_id="deletePriceEntry",
        summary="Delete a price entry (If-Match: the version you read)",
        guards=LIST_WRITE,
    )
    async def delete_entry(
        self,
        price_entry_id: FromPath[UUID],
        request: Request[Any, Any, Any],
        session: Session,
        principal: Caller,
    ) -> None:
        await service.delete_price_entry(session, price_entry_id, _version(request), _owner(principal))


class PriceFloorController(Controller):
    path = "/api/v1/price-floors"
    tags = ["prices"]

    @get("/", operation_id="listPriceFloors", summary="List price floors", guards=READ)
    async def list_floors(
        self,
        session: Session,
        state: State,
        sku_id: FromQuery[UUID | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> PriceFloorPage:
        items, nxt = await service.list_price_floors(session, cursor, page_limit(state, limit), sku_id=sku_id)
        return PriceFloorPage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="createPriceFloor",
        summary="Create a price floor (价盘) for a SKU in a unit",
        description="Floors of the same SKU and unit must not overlap in validity (422).",
        guards=WRITE,
    )
    async def create_floor(
        self, request: Request[Any, Any, Any], data: JSONBody[PriceFloorIn], session: Session
    ) -> Response[PriceFloorOut]:
        return await idempotent(request, session, lambda: service.create_price_floor(session, data))

    @get("/{price_floor_id:uuid}", operation_id="getPriceFloor", summary="Show a price floor", guards=READ)
    async def get_floor(self, price_floor_id: FromPath[UUID], session: Session) -> Response[PriceFloorOut]:
        return with_etag(await service.get_price_floor(session, price_floor_id))

    @patch(
        "/{price_floor_id:uuid}",
        operation_id="updatePriceFloor",
        summary="Change a price floor (If-Match: the version you read)",
        guards=WRITE,
    )
    async def update_floor(
        self,
        price_floor_id: FromPath[UUID],
        data: JSONBody[PriceFloorPatch],
        request: Request[Any, Any, Any],
        session: Session,
    ) -> Response[PriceFloorOut]:
        version = _version(request)
        return with_etag(await service.update_price_floor(session, price_floor_id, data, version))

    @delete(
        "/{price_floor_id:uuid}",
        operation_id="deletePriceFloor",
        summary="Delete a price floor (If-Match: the version you read)",
        guards=WRITE,
    )
    async def delete_floor(
        self, price_floor_id: FromPath[UUID], request: Request[Any, Any, Any], session: Session
    ) -> None:
        await service.delete_price_floor(session, price_floor_id, _version(request))


ROUTES: list[Any] = [PriceSequenceController, PriceListController, PriceEntryController, PriceFloorController]
