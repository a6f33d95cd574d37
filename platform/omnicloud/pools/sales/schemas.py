"""Response bodies of the trading dashboard (经营看板). Money is a decimal string; quantities are
in base units."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal
from uuid import UUID

import msgspec

Measure = Literal["shipped", "ordered"]
Dimension = Literal["period", "sku", "product", "category", "region", "dealer"]
Granularity = Literal["day", "week", "month"]


class Figures(msgspec.Struct, kw_only=True):
    amount: Decimal
    quantity: Decimal


class DashboardRow(msgspec.Struct, kw_only=True):
    """One group: ``key`` is the period's first day (YYYY-MM-DD) or the id of the SKU, product,
    category, region or dealer; null gathers what has none (a product without a category)."""

    key: str | None
    amount: Decimal
    quantity: Decimal


class DashboardOut(msgspec.Struct, kw_only=True):
    measure: Measure
    date_from: date
    date_to: date
    group_by: Dimension
    granularity: Granularity
    customer_id: UUID | None
    subtree: bool
    total: Figures
    rows: list[DashboardRow]


class SkuRank(msgspec.Struct, kw_only=True):
    sku_id: UUID
    code: str
    amount: Decimal
    quantity: Decimal


class RankingsOut(msgspec.Struct, kw_only=True):
    """``top``: the best-selling SKUs by amount; ``slow``: the active SKUs (for a customer, those it
    is authorised to buy) with the least or no sales, least first."""

    measure: Measure
    date_from: date
    date_to: date
    customer_id: UUID | None
    subtree: bool
    top: list[SkuRank]
    slow: list[SkuRank]
