"""The sales fact table (销售流水): one row per order line per shipment or return.

Shipments write positive rows and returns negative ones, so every report and every rebate basis
that is "net of returns" is a plain sum. A row keeps what the goods carried when they moved: the
base quantity, the payable value (after promotions), and the parts of it paid with expense
(fees) and with rebate, so a basis that excludes rebate redemptions subtracts ``rebate``. Rows
are written in the transaction that moves the stock and never change afterwards.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import CheckConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from omnicloud.core.db import Money, Quantity, TenantOwned, tenant_fk, utcnow

KINDS = ("shipped", "returned")


class SalesFact(TenantOwned):
    __tablename__ = "sales_facts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "document_id", "order_line_id"),
        tenant_fk("customer_id", "customers"),
        tenant_fk("order_id", "orders"),
        tenant_fk("order_line_id", "order_lines"),
        tenant_fk("sku_id", "skus"),
        Index(None, "tenant_id", "day"),
        Index(None, "tenant_id", "customer_id", "day"),
        CheckConstraint("kind IN ('shipped', 'returned')", name="kind_known"),
        CheckConstraint(
            "(kind = 'shipped' AND quantity >= 0 AND amount >= 0)"
            " OR (kind = 'returned' AND quantity <= 0 AND amount <= 0)",
            name="sign_follows_kind",
        ),
    )

    kind: Mapped[str] = mapped_column(String(20))
    day: Mapped[date]  # the business day the goods moved
    at: Mapped[datetime] = mapped_column(default=utcnow)
    customer_id: Mapped[UUID]  # the buyer
    seller_customer_id: Mapped[UUID | None]  # the selling dealer; None when the brand sells
    sales_org_id: Mapped[UUID | None]
    order_id: Mapped[UUID]
    order_line_id: Mapped[UUID]
    sku_id: Mapped[UUID]
    document_id: Mapped[UUID]  # the shipment or return that moved the goods
    is_gift: Mapped[bool] = mapped_column(default=False)
    quantity: Mapped[Decimal] = mapped_column(Quantity)  # base units, signed
    amount: Mapped[Decimal] = mapped_column(Money)  # payable value, signed
    fee: Mapped[Decimal] = mapped_column(Money)  # of which paid with expense (fees), signed
    rebate: Mapped[Decimal] = mapped_column(Money)  # of which paid with rebate, signed
