"""Quotes over REST: ``POST /api/v1/quotes`` prices a basket and changes nothing."""

from __future__ import annotations

from typing import Any

from litestar import Controller, post
from litestar.datastructures import State
from litestar.params import JSONBody

from omnicloud.core.deps import Caller, Session
from omnicloud.core.http import requires
from omnicloud.policies.quotes import service
from omnicloud.policies.quotes.schemas import QuoteIn, QuoteOut


class QuoteController(Controller):
    path = "/api/v1/quotes"
    tags = ["quotes"]

    @post(
        "/",
        operation_id="createQuote",
        summary="Price a basket: list prices, promotions, floors, fee offset, rebate and credit",
        description="Changes nothing, so no Idempotency-Key is needed. Each line explains its price "
        "(price list, step and bands, or the pricing hook) and its discounts. A dealer quotes only "
        "for itself and never sees cost prices. A line that no rule prices, an unknown SKU or unit, "
        "or a coupon code that cannot be used is a 422 naming the field.",
        status_code=200,
        guards=[requires("quotes:create")],
        opt={"read_only": True},
    )
    async def create_quote(
        self, data: JSONBody[QuoteIn], session: Session, state: State, principal: Caller
    ) -> QuoteOut:
        return await service.quote(
            session, state.plugins, principal, data, max_lines=state.settings.max_lines
        )


ROUTES: list[Any] = [QuoteController]
