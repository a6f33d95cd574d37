"""Writing sales facts (see ``models``). Pure shares plus one INSERT per document.

A document (a shipment or a return) moves part of an order line. Its share of the line's money
is the difference of two cumulative shares, ``share(total, done + now) − share(total, done)``
with ``share(total, q) = round(total × q ÷ whole)``, so the parts of one line always add up to
the line exactly, however it is split, and the document that completes a line takes the cents
that rounding left behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from uuid import UUID

import msgspec
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.core.db import utcnow
from omnicloud.core.ids import new_id
from omnicloud.core.money import round_money
from omnicloud.core.tenancy import require_tenant
from omnicloud.pools.sales.models import SalesFact


def share(total: Decimal, done: Decimal, now: Decimal, whole: Decimal) -> Decimal:
    """The part of ``total`` that ``now`` more units carry after ``done`` of ``whole`` units."""
    if whole <= 0:
        return Decimal("0.00")

    def upto(q: Decimal) -> Decimal:
        return total if q >= whole else round_money(total * q / whole)

    return upto(done + now) - upto(done)


class Movement(msgspec.Struct, frozen=True, kw_only=True):
    """One order line's part of a document, unsigned (the kind gives the sign)."""

    order_line_id: UUID
    sku_id: UUID
    base_quantity: Decimal
    amount: Decimal
    fee: Decimal
    rebate: Decimal
    is_gift: bool = False


async def record(
    session: AsyncSession,
    *,
    kind: str,
    day: date,
    document_id: UUID,
    order_id: UUID,
    customer_id: UUID,
    seller_customer_id: UUID | None,
    sales_org_id: UUID | None,
    movements: Sequence[Movement],
) -> None:
    """Write one fact per movement, in one statement (``kind`` ``shipped`` or ``returned``)."""
    if not movements:
        return
    sign = Decimal(1) if kind == "shipped" else Decimal(-1)
    tid, now = require_tenant(), utcnow()
    await session.execute(
        insert(SalesFact),
        [
            {
                "tenant_id": tid,
                "id": new_id(),
                "kind": kind,
                "day": day,
                "at": now,
                "customer_id": customer_id,
                "seller_customer_id": seller_customer_id,
                "sales_org_id": sales_org_id,
                "order_id": order_id,
                "order_line_id": m.order_line_id,
                "sku_id": m.sku_id,
                "document_id": document_id,
                "is_gift": m.is_gift,
                "quantity": sign * m.base_quantity,
                "amount": sign * m.amount,
                "fee": sign * m.fee,
                "rebate": sign * m.rebate,
            }
            for m in movements
        ],
    )
