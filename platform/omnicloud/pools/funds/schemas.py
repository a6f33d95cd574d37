"""Request and response bodies of the fund pool (资金池): accounts, ledger entries, statements (对账单),
remittances (汇款), fee grants (费用发放) and adjustments. Money is a decimal string."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from omnicloud.catalog.schemas import Input, check_decimal

AccountKind = Literal["cash", "rebate", "fee", "special", "deposit", "system"]
RemittanceStatus = Literal["pending", "confirmed", "rejected"]
HoldState = Literal["placed", "posted", "voided"]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=400, pattern=r"^[^\x00]+$")]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[^\x00]+$")]
BankReference = Annotated[str, msgspec.Meta(min_length=1, max_length=120, pattern=r"^[^\x00]+$")]
ActivityRef = Annotated[str, msgspec.Meta(min_length=1, max_length=120, pattern=r"^[^\x00]+$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
MAX_SCOPE = 500
# One movement stays far below what SQLite's floating-point arithmetic keeps exact to the cent.
MAX_MOVEMENT = Decimal(10) ** 12


def check_money(field: str, value: Decimal, *, signed: bool = False) -> None:
    """A positive amount of whole cents below the movement limit (non-zero either way if signed)."""
    if not value.is_finite():
        raise ValueError(f"{field} must be a finite number")
    check_decimal(field, abs(value) if signed else value, places=2, positive=True)
    if abs(value) >= MAX_MOVEMENT:
        raise ValueError(f"{field} is too large")


class Reference(msgspec.Struct, frozen=True, kw_only=True):
    """The document a transfer or hold belongs to, e.g. ``Reference(type="order", id=...)``."""

    type: str
    id: UUID

    def __post_init__(self) -> None:
        if not 1 <= len(self.type) <= 40:
            raise ValueError("a reference type has 1 to 40 characters")


# --- accounts ------------------------------------------------------------------------------


class ProductScopeBody(Input, kw_only=True):
    """What special funds may pay for: every non-empty list must match (a category matches its
    descendants too); at least one list must name something."""

    sku_ids: Annotated[list[UUID], msgspec.Meta(max_length=MAX_SCOPE)] = []
    category_ids: Annotated[list[UUID], msgspec.Meta(max_length=MAX_SCOPE)] = []
    brand_ids: Annotated[list[UUID], msgspec.Meta(max_length=MAX_SCOPE)] = []

    def __post_init__(self) -> None:
        if not (self.sku_ids or self.category_ids or self.brand_ids):
            raise ValueError("scope: name at least one SKU, category or brand")


class ProductScopeOut(msgspec.Struct, kw_only=True):
    sku_ids: list[UUID] = []
    category_ids: list[UUID] = []
    brand_ids: list[UUID] = []


class SpecialAccountIn(Input, kw_only=True):
    """Open a special-funds account (专项资金) restricted to a product scope; fund it with an
    adjustment."""

    customer_id: UUID
    sales_org_id: UUID | None = None
    kind: Literal["special"] = "special"
    name: Name
    scope: ProductScopeBody
    valid_from: date | None = None
    expires_on: date | None = None

    def __post_init__(self) -> None:
        if self.valid_from and self.expires_on and self.expires_on < self.valid_from:
            raise ValueError("expires_on: must not be before valid_from")


class FundAccountOut(msgspec.Struct, kw_only=True):
    """``available`` = balance − held; ``usable_today``: the account could pay an order today
    (deposits never do; fee, rebate and special accounts only inside their validity).
    ``owner_customer_id`` is the pool the account is in: null the brand's, else the dealer
    supplier's (DOMAIN §7)."""

    id: UUID
    customer_id: UUID | None
    sales_org_id: UUID | None
    owner_customer_id: UUID | None
    kind: str
    code: str | None
    name: str | None
    fee_type: str | None
    source: str | None
    activity_ref: str | None
    valid_from: date | None
    expires_on: date | None
    scope: ProductScopeOut | None
    balance: Decimal
    held: Decimal
    available: Decimal
    usable_today: bool
    created_at: datetime
    updated_at: datetime


class FundAccountPage(msgspec.Struct, kw_only=True):
    items: list[FundAccountOut]
    next_cursor: str | None


class EntryOut(msgspec.Struct, kw_only=True):
    """One ledger entry: ``amount`` > 0 credits the account, < 0 debits it."""

    id: UUID
    fund_account_id: UUID
    transfer_id: UUID
    transfer_kind: str
    reference_type: str
    reference_id: UUID
    amount: Decimal
    balance_after: Decimal
    memo: str | None
    at: datetime


class EntryPage(msgspec.Struct, kw_only=True):
    items: list[EntryOut]
    next_cursor: str | None


class LegOut(msgspec.Struct, kw_only=True):
    fund_account_id: UUID
    amount: Decimal
    balance_after: Decimal


class TransferOut(msgspec.Struct, kw_only=True):
    """A movement of money; its legs sum to zero."""

    id: UUID
    kind: str
    reference_type: str
    reference_id: UUID
    memo: str | None
    actor: str
    at: datetime
    legs: list[LegOut]


class HoldOut(msgspec.Struct, kw_only=True):
    """A freeze (冻结): ``placed``, then ``posted`` (``posted_amount`` paid, the rest released) or
    ``voided``. A child hold (``parent_id``) carries what stayed frozen after a partial close."""

    id: UUID
    fund_account_id: UUID
    customer_id: UUID
    step: str
    seq: int
    reference_type: str
    reference_id: UUID
    amount: Decimal
    state: str
    posted_amount: Decimal
    parent_id: UUID | None
    transfer_id: UUID | None
    created_at: datetime
    closed_at: datetime | None


class HoldPage(msgspec.Struct, kw_only=True):
    items: list[HoldOut]
    next_cursor: str | None


# --- statements ------------------------------------------------------------------------------


class StatementLine(msgspec.Struct, kw_only=True):
    entry_id: UUID
    at: datetime
    transfer_id: UUID
    transfer_kind: str
    reference_type: str
    reference_id: UUID
    memo: str | None
    amount: Decimal
    balance: Decimal


class AccountStatement(msgspec.Struct, kw_only=True):
    """One account over the period: opening + credits − debits = closing."""

    fund_account_id: UUID
    kind: str
    name: str | None
    fee_type: str | None
    expires_on: date | None
    opening_balance: Decimal
    credits: Decimal
    debits: Decimal
    closing_balance: Decimal
    entry_count: int
    lines: list[StatementLine]


class StatementOut(msgspec.Struct, kw_only=True):
    """A statement (对账单) from the start of ``date_from`` to the end of ``date_to`` (UTC), from
    the ledger. ``lines_truncated``: the period has more entries than a statement lists (the
    totals still cover them all; page the entries of an account for the rest)."""

    customer_id: UUID
    date_from: date
    date_to: date
    accounts: list[AccountStatement]
    opening_balance: Decimal
    closing_balance: Decimal
    lines_truncated: bool


# --- remittances ---------------------------------------------------------------------------


class RemittanceIn(Input, kw_only=True):
    """A bank remittance to be confirmed by finance. A dealer files it for itself (``customer_id``
    may be left out); finance may file it for any customer. ``account_kind`` deposit pays a
    security deposit (保证金) instead of prepayment. ``seller_customer_id`` names the dealer
    supplier the money was paid to (an ancestor of the customer in the dealer tree): the
    remittance credits the customer's account in that dealer's pool and that dealer's users
    decide it; null: paid to the brand."""

    amount: Decimal
    bank_reference: BankReference
    remitted_on: date
    customer_id: UUID | None = None
    sales_org_id: UUID | None = None
    seller_customer_id: UUID | None = None
    account_kind: Literal["cash", "deposit"] = "cash"
    note: Text | None = None

    def __post_init__(self) -> None:
        check_money("amount", self.amount)


class RemittanceRejectIn(Input, kw_only=True):
    reason: Text


class RemittanceOut(msgspec.Struct, kw_only=True):
    id: UUID
    customer_id: UUID
    sales_org_id: UUID | None
    seller_customer_id: UUID | None
    account_kind: str
    amount: Decimal
    bank_reference: str
    remitted_on: date
    note: str | None
    status: str
    submitted_by: str
    decided_by: str | None
    decided_at: datetime | None
    reject_reason: str | None
    transfer_id: UUID | None
    fund_account_id: UUID | None
    created_at: datetime


class RemittancePage(msgspec.Struct, kw_only=True):
    items: list[RemittanceOut]
    next_cursor: str | None


# --- fee grants and adjustments -------------------------------------------------------------


class FeeGrantIn(Input, kw_only=True):
    """Grant an expense balance (费用) with its type, source and validity: it opens a fee account
    of its own, so its expiry stays with it (and with whatever is refunded to it)."""

    customer_id: UUID
    amount: Decimal
    fee_type: Label
    source: Text
    expires_on: date
    valid_from: date | None = None
    activity_ref: ActivityRef | None = None
    sales_org_id: UUID | None = None

    def __post_init__(self) -> None:
        check_money("amount", self.amount)
        if self.valid_from and self.expires_on < self.valid_from:
            raise ValueError("expires_on: must not be before valid_from")


class FeeGrantOut(msgspec.Struct, kw_only=True):
    fund_account: FundAccountOut
    transfer: TransferOut


class AdjustmentIn(Input, kw_only=True):
    """A correcting transfer (调账): ``amount`` > 0 credits the account, < 0 debits it (never below
    what is held). The other leg is the tenant's adjustments account, or another account of the
    same customer (e.g. a deposit returned to cash). Entries are never edited."""

    fund_account_id: UUID
    amount: Decimal
    reason: Text
    counter_fund_account_id: UUID | None = None

    def __post_init__(self) -> None:
        check_money("amount", self.amount, signed=True)
        if self.counter_fund_account_id == self.fund_account_id:
            raise ValueError("counter_fund_account_id: must differ from fund_account_id")
