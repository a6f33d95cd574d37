"""Response bodies for a customer's assets: accounts by kind and the credit standing."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from uuid import UUID

import msgspec

from omnicloud.pools.funds.schemas import FundAccountOut


class KindTotal(msgspec.Struct, kw_only=True):
    """One account kind summed: ``usable`` is what accounts of the kind could pay an order today."""

    kind: str
    balance: Decimal
    held: Decimal
    available: Decimal
    usable: Decimal
    accounts: int


class TemporaryLineView(msgspec.Struct, kw_only=True):
    amount: Decimal
    expires_on: date


class ExposureView(msgspec.Struct, kw_only=True):
    """DOMAIN §3: open orders + shipped-not-invoiced + receivables − unapplied prepayments."""

    open_orders: Decimal
    shipped_not_invoiced: Decimal
    receivables: Decimal
    unapplied_prepayments: Decimal
    total: Decimal


class OverdueView(msgspec.Struct, kw_only=True):
    id: str
    amount: Decimal
    due_date: date
    overdue_since: date


class CreditStanding(msgspec.Struct, kw_only=True):
    """One credit profile (信用额度) as it stands today: ``available`` = credit line − exposure
    (negative when the customer is over its line)."""

    sales_org_id: UUID | None
    limit: Decimal
    temporary_lines: list[TemporaryLineView]
    credit_line: Decimal
    credit_days: int
    grace_days: int
    exposure: ExposureView
    available: Decimal
    overdue: list[OverdueView]


class PoolAssets(msgspec.Struct, kw_only=True):
    """The customer's accounts and credit in one pool: the brand's (``owner_customer_id`` null)
    or a dealer supplier's (DOMAIN §7)."""

    owner_customer_id: UUID | None
    totals: list[KindTotal]
    credit: list[CreditStanding]


class AssetsOut(msgspec.Struct, kw_only=True):
    """Every account of the customer (cash, rebate, fee, special, deposit), totals per kind, and
    its credit, which is a limit rather than an account (``credit`` is empty without a profile).
    ``totals`` and ``credit`` are the brand's pool; ``pools`` shows each pool (the brand's first)
    with its own totals and credit; ``accounts`` lists every pool's, each with its owner."""

    customer_id: UUID
    on: date
    totals: list[KindTotal]
    accounts: list[FundAccountOut]
    credit: list[CreditStanding]
    pools: list[PoolAssets] = []
