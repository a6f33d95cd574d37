"""Invoice pool tables (发票池): invoice requests (开票申请) with their lines and history, the
receivables (应收) issued invoices leave on credit, their payments, and the tenant's invoice
settings.

A request's status changes only through ``pools.invoices.states`` by a conditional UPDATE on
``version``. The invoice itself (number, issue date, tax rate, net and tax amounts) is written
onto the request when it is issued; its number is unique per tenant. A receivable's
``paid_amount`` moves only by a conditional UPDATE that never passes ``amount``.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import CheckConstraint, Date, Index, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from omnicloud.core.db import Money, Quantity, TenantOwned, tenant_fk, utcnow
from omnicloud.pools.invoices.states import STATUSES

RECEIVABLE_STATES = ("open", "paid")
TaxRate = Numeric(7, 4)


def _known(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class InvoiceRequest(TenantOwned):
    """A request (开票申请) to invoice shipped quantities of one customer's orders, with the buyer's
    invoice title (抬头) and tax id (税号). ``amount`` is the sum of its lines (tax-inclusive).
    Once issued it carries the invoice: ``invoice_number``, ``issue_date``, ``tax_rate``,
    ``net_amount`` + ``tax_amount`` = ``amount``, and ``credit_amount``, the part of the amount
    that was on credit and became a receivable."""

    __tablename__ = "invoice_requests"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        UniqueConstraint("tenant_id", "idempotency_key"),
        UniqueConstraint("tenant_id", "invoice_number"),
        tenant_fk("customer_id", "customers"),
        tenant_fk("sales_org_id", "sales_orgs"),
        Index(None, "tenant_id", "customer_id", "id"),
        Index(None, "tenant_id", "status", "id"),
        Index(None, "tenant_id", "issue_date"),
        CheckConstraint(_known("status", STATUSES), name="status_known"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "(status = 'issued') = (invoice_number IS NOT NULL AND issue_date IS NOT NULL"
            " AND tax_rate IS NOT NULL AND net_amount IS NOT NULL AND tax_amount IS NOT NULL"
            " AND credit_amount IS NOT NULL)",
            name="issued_has_invoice",
        ),
        CheckConstraint("net_amount IS NULL OR net_amount + tax_amount = amount", name="net_plus_tax"),
        CheckConstraint(
            "credit_amount IS NULL OR (credit_amount >= 0 AND credit_amount <= amount)",
            name="credit_within_amount",
        ),
    )

    number: Mapped[str] = mapped_column(String(40))
    customer_id: Mapped[UUID]
    sales_org_id: Mapped[UUID | None]
    status: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(default=1)
    title: Mapped[str] = mapped_column(String(200))
    tax_id: Mapped[str] = mapped_column(String(40))
    address: Mapped[str | None] = mapped_column(String(400))
    bank_account: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(String(400))
    amount: Mapped[Decimal] = mapped_column(Money)
    invoice_number: Mapped[str | None] = mapped_column(String(40))
    issue_date: Mapped[date | None] = mapped_column(Date)
    tax_rate: Mapped[Decimal | None] = mapped_column(TaxRate)
    net_amount: Mapped[Decimal | None] = mapped_column(Money)
    tax_amount: Mapped[Decimal | None] = mapped_column(Money)
    credit_amount: Mapped[Decimal | None] = mapped_column(Money)
    idempotency_key: Mapped[str] = mapped_column(String(255))
    requested_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class InvoiceRequestLine(TenantOwned):
    """``quantity`` (in the order line's unit) of one order line, and the money it carries:
    ``amount``, its share of the line's ``due``; ``credit_amount``, the part of it that was on
    credit, set when the invoice is issued."""

    __tablename__ = "invoice_request_lines"
    __table_args__ = (
        UniqueConstraint("tenant_id", "request_id", "order_line_id"),
        tenant_fk("request_id", "invoice_requests"),
        tenant_fk("order_id", "orders"),
        tenant_fk("order_line_id", "order_lines"),
        tenant_fk("sku_id", "skus"),
        Index(None, "tenant_id", "order_line_id"),
        Index(None, "tenant_id", "order_id"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint("credit_amount >= 0 AND credit_amount <= amount", name="credit_within_amount"),
    )

    request_id: Mapped[UUID]
    position: Mapped[int]
    order_id: Mapped[UUID]
    order_line_id: Mapped[UUID]
    sku_id: Mapped[UUID]
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    amount: Mapped[Decimal] = mapped_column(Money)
    credit_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))


class InvoiceRequestEvent(TenantOwned):
    """One step of a request's history: the action, the status before and after, who and when."""

    __tablename__ = "invoice_request_events"
    __table_args__ = (
        tenant_fk("request_id", "invoice_requests"),
        Index(None, "tenant_id", "request_id", "id"),
    )

    request_id: Mapped[UUID]
    action: Mapped[str] = mapped_column(String(20))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    detail: Mapped[dict[str, Any]]
    actor: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Receivable(TenantOwned):
    """What the customer owes (应收) for the credit part of one issued invoice, due on
    ``due_date`` (issue date + the credit profile's credit days) and overdue after
    ``grace_ends_on`` (due date + the grace days in force at issue). ``paid_amount`` grows with
    each payment, ``credited_amount`` with each red-letter credit (红字) for goods returned after
    they were invoiced; the receivable is ``paid`` (settled) when the two reach ``amount``."""

    __tablename__ = "receivables"
    __table_args__ = (
        UniqueConstraint("tenant_id", "request_id"),
        tenant_fk("request_id", "invoice_requests"),
        tenant_fk("customer_id", "customers"),
        tenant_fk("sales_org_id", "sales_orgs"),
        Index(None, "tenant_id", "customer_id", "status"),
        Index(None, "tenant_id", "status", "grace_ends_on"),
        CheckConstraint(_known("status", RECEIVABLE_STATES), name="status_known"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "paid_amount >= 0 AND credited_amount >= 0 AND paid_amount + credited_amount <= amount",
            name="paid_within_amount",
        ),
        CheckConstraint(
            "(status = 'paid') = (paid_amount + credited_amount = amount)", name="paid_when_settled"
        ),
        CheckConstraint("grace_days >= 0 AND grace_ends_on >= due_date", name="grace_after_due"),
    )

    request_id: Mapped[UUID]
    customer_id: Mapped[UUID]
    sales_org_id: Mapped[UUID | None]
    invoice_number: Mapped[str] = mapped_column(String(40))
    amount: Mapped[Decimal] = mapped_column(Money)
    paid_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    credited_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    status: Mapped[str] = mapped_column(String(20), default="open")
    issue_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    grace_days: Mapped[int]
    grace_ends_on: Mapped[date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReceivablePayment(TenantOwned):
    """One payment of a receivable from the customer's cash account: the ledger transfer that
    moved the money (``Reference(type="receivable", id=receivable_id)``)."""

    __tablename__ = "receivable_payments"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        tenant_fk("receivable_id", "receivables"),
        tenant_fk("transfer_id", "fund_transfers"),
        Index(None, "tenant_id", "receivable_id", "id"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    receivable_id: Mapped[UUID]
    amount: Mapped[Decimal] = mapped_column(Money)
    transfer_id: Mapped[UUID]
    idempotency_key: Mapped[str] = mapped_column(String(255))
    paid_by: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class ReceivableCredit(TenantOwned):
    """A red-letter credit (红字冲销) on a receivable: goods of ``order_id`` invoiced on credit came
    back (``return_id``), so ``amount`` of the receivable is no longer owed; ``refunded`` of it had
    been paid already and went back to the customer's cash (``transfer_id``)."""

    __tablename__ = "receivable_credits"
    __table_args__ = (
        UniqueConstraint("tenant_id", "return_id", "receivable_id"),
        tenant_fk("receivable_id", "receivables"),
        tenant_fk("order_id", "orders"),
        tenant_fk("transfer_id", "fund_transfers"),
        Index(None, "tenant_id", "order_id"),
        CheckConstraint("amount > 0 AND refunded >= 0 AND refunded <= amount", name="refunded_within_amount"),
    )

    receivable_id: Mapped[UUID]
    order_id: Mapped[UUID]
    return_id: Mapped[UUID]
    amount: Mapped[Decimal] = mapped_column(Money)
    refunded: Mapped[Decimal] = mapped_column(Money)
    transfer_id: Mapped[UUID | None]
    at: Mapped[datetime] = mapped_column(default=utcnow)


class InvoiceSetting(TenantOwned):
    """The tenant's invoice settings (one row, written on the first change): the tax rate an
    invoice is issued at when the issuer names none."""

    __tablename__ = "invoice_settings"
    __table_args__ = (
        UniqueConstraint("tenant_id"),
        CheckConstraint("tax_rate >= 0 AND tax_rate < 1", name="tax_rate_range"),
    )

    tax_rate: Mapped[Decimal] = mapped_column(TaxRate)
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
