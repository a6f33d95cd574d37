"""The trading dashboard over REST (经营看板): figures by a dimension, and top and slow sellers.

Staff need ``dashboard:read``; dealer users see their own subtree's trading only.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

from litestar import Controller, get
from litestar.params import FromQuery, QueryParameter

from omnicloud.core.db import utcnow
from omnicloud.core.deps import Caller, Limit, Session
from omnicloud.core.http import requires
from omnicloud.pools.sales import dashboard
from omnicloud.pools.sales.schemas import DashboardOut, RankingsOut

READ = [requires("dashboard:read")]
MeasureParam = Annotated[
    str,
    QueryParameter(
        name="measure",
        pattern="^(shipped|ordered)$",
        description="shipped: sales facts net of returns, by the day goods moved; ordered: order "
        "lines of orders not cancelled or rejected, by the day the order was created",
    ),
]
GroupBy = Annotated[
    str,
    QueryParameter(
        name="group_by",
        pattern="^(period|sku|product|category|region|dealer)$",
        description="The dimension of the rows",
    ),
]
GranularityParam = Annotated[
    str, QueryParameter(name="granularity", pattern="^(day|week|month)$", description="Period buckets")
]
DateFrom = Annotated[
    date | None, QueryParameter(name="from", description="First day (UTC); default: the 1st of to's month")
]
DateTo = Annotated[
    date | None, QueryParameter(name="to", description="Last day (UTC), included; default: today")
]
Subtree = Annotated[
    bool, QueryParameter(name="subtree", description="With customer_id: the customer and everything under it")
]
TOP_DEFAULT, TOP_MAX = 10, 100


def _period(date_from: date | None, date_to: date | None) -> tuple[date, date]:
    end = date_to or utcnow().date()
    return date_from or end.replace(day=1), end


class SalesDashboardController(Controller):
    path = "/api/v1/sales"
    tags = ["sales"]

    @get(
        "/dashboard",
        operation_id="getSalesDashboard",
        summary="Trading figures by period, SKU, product, category, region or dealer, with the total",
        description="Rows are sorted by amount, largest first (periods by date). Dealers see their own "
        "subtree only; a customer_id the caller may not see is a 404.",
        guards=READ,
    )
    async def get_dashboard(
        self,
        session: Session,
        principal: Caller,
        measure: MeasureParam = "shipped",
        group_by: GroupBy = "period",
        granularity: GranularityParam = "day",
        date_from: DateFrom = None,
        date_to: DateTo = None,
        customer_id: FromQuery[UUID | None] = None,
        subtree: Subtree = False,
    ) -> DashboardOut:
        start, end = _period(date_from, date_to)
        return await dashboard.dashboard(
            session,
            principal,
            measure=measure,
            start=start,
            end=end,
            group_by=group_by,
            granularity=granularity,
            customer_id=customer_id,
            subtree=subtree,
        )

    @get(
        "/rankings",
        operation_id="getSalesRankings",
        summary="Top sellers and slow sellers (active or authorised SKUs with the least or no sales)",
        description=f"`limit` SKUs in each list (default {TOP_DEFAULT}, at most {TOP_MAX}). Dealers see "
        "their own subtree only; a customer_id the caller may not see is a 404.",
        guards=READ,
    )
    async def get_rankings(
        self,
        session: Session,
        principal: Caller,
        measure: MeasureParam = "shipped",
        date_from: DateFrom = None,
        date_to: DateTo = None,
        customer_id: FromQuery[UUID | None] = None,
        subtree: Subtree = False,
        limit: Limit = None,
    ) -> RankingsOut:
        start, end = _period(date_from, date_to)
        return await dashboard.rankings(
            session,
            principal,
            measure=measure,
            start=start,
            end=end,
            customer_id=customer_id,
            subtree=subtree,
            limit=min(limit or TOP_DEFAULT, TOP_MAX),
        )


ROUTES = [SalesDashboardController]
