"""A customer's assets over REST (the dealer portal's first screen)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, get
from litestar.params import FromPath

from omnicloud.core.deps import Caller, Session
from omnicloud.core.http import requires
from omnicloud.pools.assets import service
from omnicloud.pools.assets.schemas import AssetsOut


class AssetsController(Controller):
    path = "/api/v1/customers"
    tags = ["funds"]

    @get(
        "/{customer_id:uuid}/assets",
        operation_id="getCustomerAssets",
        summary="A customer's accounts (cash, rebate, fee, special, deposit) with totals, and its credit",
        description="Credit is a limit, not an account: each credit profile shows its line (limit plus "
        "temporary lines valid today), the exposure the order and invoice pools report, what is left "
        "and the receivables overdue today. A dealer reads its own and its sub-dealers' assets.",
        guards=[requires("funds:read")],
    )
    async def get_assets(self, customer_id: FromPath[UUID], session: Session, principal: Caller) -> AssetsOut:
        return await service.assets(session, principal, customer_id)


ROUTES: list[Any] = [AssetsController]
