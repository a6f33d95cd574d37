"""REST routes of the jewelry pack, mounted under ``/api/v1/x/industry_jewelry`` behind the
platform's guard (404 for tenants that have not enabled the plugin)."""

from __future__ import annotations

import re
from typing import Any

from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from industry_jewelry import service
from industry_jewelry.schemas import (
    BoardHistoryPage,
    BoardList,
    BoardPriceIn,
    BoardPriceOut,
    BoardPriceSet,
    PurityIn,
    PurityList,
    PurityOut,
    TradeInIn,
    TradeInQuote,
)
from omnicloud.core.deps import Caller, Cursor, Limit, Session, page_limit
from omnicloud.core.errors import invalid
from omnicloud.core.http import idempotent, requires

READ = "jewelry:board:read"
WRITE = "jewelry:board:write"
PURITY_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,19}$")


class BoardController(Controller):
    """The board (金价牌): the price per gram of each purity, with its history."""

    path = "/board-prices"

    @get("/", operation_id="listJewelryBoard", summary="The current board", guards=[requires(READ)])
    async def board(self, session: Session) -> BoardList:
        settings = await service.tenant_settings(session)
        return BoardList(currency=settings.currency, items=await service.current_board(session))

    @post(
        "/",
        operation_id="setJewelryBoardPrice",
        summary="Put a new price on the board (a new history entry)",
        description="Send price, or exchange_price and brand_premium (board = exchange + premium). "
        "Idempotency-Key makes a retry safe.",
        guards=[requires(WRITE)],
    )
    async def set_price(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[BoardPriceIn],
        session: Session,
        principal: Caller,
    ) -> Response[BoardPriceOut]:
        async def create() -> BoardPriceOut:
            out, _ = await service.set_price(session, data, principal.actor)
            return out

        return await idempotent(request, session, create)

    @get(
        "/{metal:str}/{purity:str}",
        operation_id="getJewelryBoardPrice",
        summary="The current board price of one purity",
        guards=[requires(READ)],
    )
    async def get_price(self, metal: FromPath[str], purity: FromPath[str], session: Session) -> BoardPriceOut:
        return await service.get_current(session, metal, purity)

    @put(
        "/{metal:str}/{purity:str}",
        operation_id="putJewelryBoardPrice",
        summary="Set the board price of one purity",
        description="Adds a history entry only when the price differs from the current one. "
        "404 when the tenant has no such purity of that metal.",
        guards=[requires(WRITE)],
    )
    async def put_price(
        self,
        metal: FromPath[str],
        purity: FromPath[str],
        data: JSONBody[BoardPriceSet],
        session: Session,
        principal: Caller,
    ) -> BoardPriceOut:
        await service.require_board(session, metal, purity)
        entry = BoardPriceIn(
            metal=metal,
            purity=purity,
            price=data.price,
            exchange_price=data.exchange_price,
            brand_premium=data.brand_premium,
        )
        out, _ = await service.set_price(session, entry, principal.actor, only_if_changed=True)
        return out

    @get(
        "/{metal:str}/{purity:str}/history",
        operation_id="listJewelryBoardHistory",
        summary="Every price a purity has had, oldest first",
        guards=[requires(READ)],
    )
    async def history(
        self,
        metal: FromPath[str],
        purity: FromPath[str],
        session: Session,
        state: State,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> BoardHistoryPage:
        items, nxt = await service.history(session, metal, purity, cursor, page_limit(state, limit))
        return BoardHistoryPage(items=items, next_cursor=nxt)


class PurityController(Controller):
    """The purities (成色) the tenant prices; defaults are set up when the plugin is enabled."""

    path = "/purities"

    @get("/", operation_id="listJewelryPurities", summary="List purities", guards=[requires(READ)])
    async def list_purities(self, session: Session) -> PurityList:
        return PurityList(items=await service.list_purities(session))

    @put(
        "/{purity:str}",
        operation_id="putJewelryPurity",
        summary="Create or change a purity (its metal is fixed once set)",
        guards=[requires(WRITE)],
    )
    async def put_purity(
        self, purity: FromPath[str], data: JSONBody[PurityIn], session: Session
    ) -> PurityOut:
        if not PURITY_CODE.fullmatch(purity):
            raise invalid("purity", "1-20 letters, digits, '.' or '-', starting with a letter or digit")
        out, _ = await service.put_purity(session, purity, data)
        return out


class TradeInController(Controller):
    """Old-gold trade-in (旧金回收) quotes."""

    path = "/trade-in-quotes"

    @post(
        "/",
        operation_id="quoteJewelryTradeIn",
        summary="What old gold is worth towards a purchase (a quote; nothing is stored)",
        description="value = weight_g × (1 − loss_pct / 100) × recycle price; the recycle price is "
        "the board's exchange price, or the board price when it has none.",
        guards=[requires(READ)],
        status_code=200,
    )
    async def quote(self, data: JSONBody[TradeInIn], session: Session) -> TradeInQuote:
        return await service.trade_in_quote(session, data)


ROUTES = [BoardController, PurityController, TradeInController]
