"""Request and response bodies of the invoice pool (发票池): invoice requests (开票申请), issuing,
receivables (应收) and their payments, and the invoice settings. Money is a decimal string;
quantities are decimal strings in the order line's unit; a tax rate is a fraction (0.13 = 13%)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from omnicloud.catalog.schemas import Input, check_decimal
from omnicloud.pools.funds.schemas import check_money

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=400, pattern=r"^[^\x00]+$")]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
TaxId = Annotated[
    str,
    msgspec.Meta(min_length=6, max_length=40, pattern=r"^[0-9A-Z]+$", description="税号, e.g. 18 characters"),
]
InvoiceNumber = Annotated[
    str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[0-9A-Za-z][0-9A-Za-z._/-]*$")
]
BankAccount = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
ReceivableStatus = Literal["open", "overdue", "paid"]
MAX_REQUEST_LINES = 500


def check_rate(field: str, value: Decimal | None) -> None:
    """A tax rate: at least 0, below 1, at most 4 decimals (the column's scale)."""
    check_decimal(field, value, places=4)
    if value is not None and value >= 1:
        raise ValueError(f"{field} must be below 1 (0.13 is 13%)")


class RequestLineIn(Input):
    """``quantity`` (in the order line's unit) of order line ``order_line_id``: at most what is
    shipped, not returned and not yet in another live request."""

    order_line_id: UUID
    quantity: Decimal

    def __post_init__(self) -> None:
        check_decimal("quantity", self.quantity, places=4, positive=True)


class InvoiceRequestIn(Input):
    """Ask for an invoice over lines of one customer's orders (merged: several orders; partial:
    part of a line). A dealer asks for itself; staff name the customer. ``title`` (抬头) and
    ``tax_id`` (税号) are the buyer's as the invoice will show them."""

    lines: Annotated[list[RequestLineIn], msgspec.Meta(min_length=1, max_length=MAX_REQUEST_LINES)]
    title: Title
    tax_id: TaxId
    customer_id: UUID | None = None
    address: Text | None = None
    bank_account: BankAccount | None = None
    note: Text | None = None


class ReasonIn(Input):
    reason: Text | None = None


class IssueIn(Input):
    """The invoice as issued. ``amount`` (tax-inclusive) may be sent as a check: it must equal the
    request's amount. ``tax_rate`` defaults to the tenant's invoice setting; ``issue_date`` to
    today (it may be earlier, never later)."""

    invoice_number: InvoiceNumber
    issue_date: date | None = None
    amount: Decimal | None = None
    tax_rate: Decimal | None = None

    def __post_init__(self) -> None:
        if self.amount is not None:
            check_money("amount", self.amount)
        check_rate("tax_rate", self.tax_rate)


class PaymentIn(Input):
    """Pay ``amount`` of a receivable from the customer's cash account."""

    amount: Decimal

    def __post_init__(self) -> None:
        check_money("amount", self.amount)


class InvoiceSettingsIn(Input):
    tax_rate: Decimal

    def __post_init__(self) -> None:
        check_rate("tax_rate", self.tax_rate)


class InvoiceSettingsOut(msgspec.Struct, kw_only=True):
    """``version`` 0: never changed (the defaults); send ``If-Match: "0"`` to change them first."""

    tax_rate: Decimal
    version: int
    updated_at: datetime | None


class InvoiceableLineOut(msgspec.Struct, kw_only=True):
    """An order line with quantities left to request: shipped − returned − requested (in live
    requests). ``invoiceable_amount`` is what those quantities carry of the line's ``due``."""

    order_line_id: UUID
    order_id: UUID
    order_number: str
    customer_id: UUID
    line_id: str
    sku_id: UUID
    unit_id: UUID | None
    quantity: Decimal
    shipped_quantity: Decimal
    returned_quantity: Decimal
    requested_quantity: Decimal
    invoiceable_quantity: Decimal
    due: Decimal
    requested_amount: Decimal
    invoiceable_amount: Decimal


class InvoiceableLinePage(msgspec.Struct, kw_only=True):
    items: list[InvoiceableLineOut]
    next_cursor: str | None


class RequestLineOut(msgspec.Struct, kw_only=True):
    id: UUID
    order_id: UUID
    order_line_id: UUID
    sku_id: UUID
    quantity: Decimal
    amount: Decimal
    credit_amount: Decimal


class RequestEventOut(msgspec.Struct, kw_only=True):
    id: UUID
    action: str
    from_status: str | None
    to_status: str
    detail: dict[str, Any]
    actor: str
    at: datetime


class InvoiceOut(msgspec.Struct, kw_only=True):
    """The issued invoice: ``net_amount`` + ``tax_amount`` = ``amount``; ``credit_amount`` is the
    part on credit, owed as the receivable ``receivable_id`` (null when nothing was on credit)."""

    invoice_number: str
    issue_date: date
    amount: Decimal
    tax_rate: Decimal
    net_amount: Decimal
    tax_amount: Decimal
    credit_amount: Decimal
    receivable_id: UUID | None


class InvoiceRequestSummary(msgspec.Struct, kw_only=True):
    id: UUID
    number: str
    customer_id: UUID
    sales_org_id: UUID | None
    status: str
    version: int
    title: str
    tax_id: str
    address: str | None
    bank_account: str | None
    note: str | None
    amount: Decimal
    invoice: InvoiceOut | None
    allowed_actions: list[str]
    requested_by: str
    created_at: datetime
    updated_at: datetime


class InvoiceRequestOut(InvoiceRequestSummary, kw_only=True):
    lines: list[RequestLineOut]
    history: list[RequestEventOut]


class InvoiceRequestPage(msgspec.Struct, kw_only=True):
    items: list[InvoiceRequestSummary]
    next_cursor: str | None


class ReceivablePaymentOut(msgspec.Struct, kw_only=True):
    id: UUID
    amount: Decimal
    transfer_id: UUID
    paid_by: str
    at: datetime


class ReceivableSummary(msgspec.Struct, kw_only=True):
    """``status`` is ``paid``, else ``overdue`` once today is past ``grace_ends_on`` (due date +
    grace days), else ``open``; ``outstanding`` = ``amount`` − ``paid_amount`` − ``credited_amount``
    (red-letter credits for goods returned after they were invoiced)."""

    id: UUID
    invoice_request_id: UUID
    invoice_number: str
    customer_id: UUID
    sales_org_id: UUID | None
    amount: Decimal
    paid_amount: Decimal
    credited_amount: Decimal
    outstanding: Decimal
    status: ReceivableStatus
    issue_date: date
    due_date: date
    grace_days: int
    grace_ends_on: date
    version: int
    created_at: datetime
    updated_at: datetime


class ReceivableOut(ReceivableSummary, kw_only=True):
    payments: list[ReceivablePaymentOut]


class ReceivablePage(msgspec.Struct, kw_only=True):
    items: list[ReceivableSummary]
    next_cursor: str | None
