"""Fund pool tables (资金池): accounts, the append-only double-entry ledger, holds (冻结) and
remittances (汇款).

``fund_accounts.balance`` and ``held`` are a cache of the ledger and of the placed holds, changed
only by conditional UPDATEs in the transaction that writes the entries or holds; the CHECK
constraints are the backstop. ``fund_transfers`` and ``fund_entries`` are append-only.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import CheckConstraint, Date, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from omnicloud.core.db import Money, TenantOwned, tenant_fk, utcnow

CUSTOMER_KINDS = ("cash", "rebate", "fee", "special", "deposit")
ACCOUNT_KINDS = (*CUSTOMER_KINDS, "system")
SYSTEM_CODES = ("receipts", "sales", "fee_expense", "rebate_expense", "adjustments")
TRANSFER_KINDS = ("receipt", "fee_grant", "rebate_credit", "payment", "refund", "adjustment")
HOLD_STATES = ("placed", "posted", "voided")
REMITTANCE_STATES = ("pending", "confirmed", "rejected")


def _known(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class FundAccount(TenantOwned):
    """A customer's account of one kind (cash, rebate, fee, special, deposit), or one of the
    tenant's system accounts (the brand's side of every transfer, which may go negative).

    Cash and deposit accounts are one per customer and sales org (``slot``); fee and rebate
    accounts are one per grant, with their own validity, so a refund restores them with their
    original expiry; special accounts carry a product scope.

    ``owner_customer_id`` is whose pool the account is in: NULL is the brand's; a dealer's pool
    holds its sub-dealers' accounts at it and its own system accounts (DOMAIN §7). A transfer
    never crosses pools, so every pool's balances sum to zero on their own.
    """

    __tablename__ = "fund_accounts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "slot"),
        tenant_fk("customer_id", "customers"),
        tenant_fk("sales_org_id", "sales_orgs"),
        tenant_fk("owner_customer_id", "customers"),
        Index(None, "tenant_id", "customer_id", "kind"),
        Index(None, "tenant_id", "owner_customer_id"),
        CheckConstraint(_known("kind", ACCOUNT_KINDS), name="kind_known"),
        CheckConstraint(
            "owner_customer_id IS NULL OR sales_org_id IS NULL", name="dealer_pool_has_no_sales_org"
        ),
        CheckConstraint("(kind = 'system') = (customer_id IS NULL)", name="system_has_no_customer"),
        CheckConstraint(
            "kind = 'system' OR (held >= 0 AND balance >= held)", name="customer_balance_covers_holds"
        ),
        CheckConstraint("kind <> 'deposit' OR held = 0", name="deposit_never_held"),
        CheckConstraint("kind <> 'fee' OR expires_on IS NOT NULL", name="fee_expires"),
        CheckConstraint(
            "valid_from IS NULL OR expires_on IS NULL OR expires_on >= valid_from", name="validity"
        ),
    )

    customer_id: Mapped[UUID | None]
    sales_org_id: Mapped[UUID | None]
    owner_customer_id: Mapped[UUID | None]  # the dealer whose pool this is; NULL: the brand's
    kind: Mapped[str] = mapped_column(String(20))
    slot: Mapped[str | None] = mapped_column(String(120))  # the one account of its kind, if unique
    code: Mapped[str | None] = mapped_column(String(40))  # system accounts
    name: Mapped[str | None] = mapped_column(String(200))
    fee_type: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[str | None] = mapped_column(String(400))
    activity_ref: Mapped[str | None] = mapped_column(String(120))
    valid_from: Mapped[date | None] = mapped_column(Date)
    expires_on: Mapped[date | None] = mapped_column(Date)
    scope: Mapped[dict[str, Any] | None]  # special funds: {"sku_ids": [...], ...}
    balance: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    held: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class FundTransfer(TenantOwned):
    """One movement of money: its entries sum to zero. Append-only; ``idempotency_key`` is unique,
    so the same request never moves money twice."""

    __tablename__ = "fund_transfers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index(None, "tenant_id", "ref_type", "ref_id"),
        CheckConstraint(_known("kind", TRANSFER_KINDS), name="kind_known"),
    )

    kind: Mapped[str] = mapped_column(String(20))
    ref_type: Mapped[str] = mapped_column(String(40))
    ref_id: Mapped[UUID]
    idempotency_key: Mapped[str] = mapped_column(String(255))
    memo: Mapped[str | None] = mapped_column(String(400))
    actor: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class FundEntry(TenantOwned):
    """One leg of a transfer on one account: positive credits the account (for a customer: money
    the brand owes it), negative debits it. Append-only; ``balance_after`` is the account's
    balance right after this entry."""

    __tablename__ = "fund_entries"
    __table_args__ = (
        tenant_fk("transfer_id", "fund_transfers"),
        tenant_fk("account_id", "fund_accounts"),
        Index(None, "tenant_id", "account_id", "id"),
        Index(None, "tenant_id", "account_id", "at"),
        Index(None, "tenant_id", "transfer_id"),
        CheckConstraint("amount <> 0", name="amount_not_zero"),
    )

    transfer_id: Mapped[UUID]
    account_id: Mapped[UUID]
    amount: Mapped[Decimal] = mapped_column(Money)
    balance_after: Mapped[Decimal] = mapped_column(Money)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class FundHold(TenantOwned):
    """A freeze (冻结) on one account for one document: placed, then posted (a payment transfer
    of ``posted_amount``, the rest released) or voided, exactly once. A partial post or release
    closes the hold and places a child hold (``parent_id``) for what stays frozen."""

    __tablename__ = "fund_holds"
    __table_args__ = (
        tenant_fk("account_id", "fund_accounts"),
        tenant_fk("customer_id", "customers"),
        tenant_fk("parent_id", "fund_holds"),
        tenant_fk("transfer_id", "fund_transfers"),
        Index(None, "tenant_id", "ref_type", "ref_id"),
        Index(None, "tenant_id", "account_id", "state"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(_known("state", HOLD_STATES), name="state_known"),
        CheckConstraint("posted_amount >= 0 AND posted_amount <= amount", name="posted_within_amount"),
    )

    account_id: Mapped[UUID]
    customer_id: Mapped[UUID]
    step: Mapped[str] = mapped_column(String(20))  # fee|rebate|special|cash
    seq: Mapped[int]
    ref_type: Mapped[str] = mapped_column(String(40))
    ref_id: Mapped[UUID]
    amount: Mapped[Decimal] = mapped_column(Money)
    state: Mapped[str] = mapped_column(String(20), default="placed")
    posted_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    parent_id: Mapped[UUID | None]
    transfer_id: Mapped[UUID | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]


class Remittance(TenantOwned):
    """A customer's bank remittance (汇款): ``pending`` until finance confirms it (crediting cash or
    deposit exactly once) or rejects it (changing no balance). ``seller_customer_id`` is the
    dealer supplier it was paid to (its pool is credited and its users decide); NULL: the brand."""

    __tablename__ = "remittances"
    __table_args__ = (
        tenant_fk("customer_id", "customers"),
        tenant_fk("sales_org_id", "sales_orgs"),
        tenant_fk("transfer_id", "fund_transfers"),
        tenant_fk("account_id", "fund_accounts"),
        tenant_fk("seller_customer_id", "customers"),
        Index(None, "tenant_id", "customer_id", "id"),
        Index(None, "tenant_id", "seller_customer_id", "id"),
        Index(None, "tenant_id", "status"),
        # One live remittance per bank slip and customer; a rejected one may be filed again.
        Index(
            None,
            "tenant_id",
            "customer_id",
            "bank_reference",
            unique=True,
            postgresql_where=text("status <> 'rejected'"),
            sqlite_where=text("status <> 'rejected'"),
        ),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(_known("status", REMITTANCE_STATES), name="status_known"),
        CheckConstraint("account_kind IN ('cash', 'deposit')", name="account_kind_known"),
        CheckConstraint(
            "seller_customer_id IS NULL OR sales_org_id IS NULL", name="dealer_pool_has_no_sales_org"
        ),
    )

    customer_id: Mapped[UUID]
    sales_org_id: Mapped[UUID | None]
    seller_customer_id: Mapped[UUID | None]
    account_kind: Mapped[str] = mapped_column(String(20), default="cash")
    amount: Mapped[Decimal] = mapped_column(Money)
    bank_reference: Mapped[str] = mapped_column(String(120))
    remitted_on: Mapped[date] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(String(400))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    submitted_by: Mapped[str] = mapped_column(String(80))
    decided_by: Mapped[str | None] = mapped_column(String(80))
    decided_at: Mapped[datetime | None]
    reject_reason: Mapped[str | None] = mapped_column(String(400))
    transfer_id: Mapped[UUID | None]  # set when confirmed, with the account credited
    account_id: Mapped[UUID | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
