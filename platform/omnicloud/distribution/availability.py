"""What a buyer can get (可订库存): for the SKUs it asks about, whether it may buy them (商品授权)
and how much of each the warehouses that ship to it have available, so a dealer knows what to
order and from which warehouse.

Orders ship from the brand's active warehouses, so those are the warehouses shown. Available is
on hand − reserved over the lots that have not expired. A SKU the buyer may not buy shows
``authorized: false`` and no stock: a dealer learns nothing about products it cannot order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from uuid import UUID

import msgspec
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.channels import service as channels
from omnicloud.core.errors import invalid
from omnicloud.core.security import Principal
from omnicloud.distribution import service as distribution
from omnicloud.inventory.models import Lot, StockLevel, Warehouse

MAX_SKUS = 100


class WarehouseStock(msgspec.Struct, kw_only=True):
    warehouse_id: UUID
    code: str
    name: str
    available: Decimal


class SkuAvailability(msgspec.Struct, kw_only=True):
    sku_id: UUID
    authorized: bool
    available: Decimal  # over the warehouses listed
    warehouses: list[WarehouseStock]


class AvailabilityOut(msgspec.Struct, kw_only=True):
    customer_id: UUID
    on: date
    items: list[SkuAvailability]


async def available_stock(
    session: AsyncSession, principal: Principal, customer_id: UUID, sku_ids: Sequence[UUID], day: date
) -> AvailabilityOut:
    """Authorisation and available stock per SKU for the customer (a dealer: its subtree only), in
    the order asked; at most :data:`MAX_SKUS` SKUs, each once."""
    await channels.visible_customer(session, customer_id, principal)  # 404 first, for a stranger
    if not sku_ids:
        raise invalid("sku_id", "name at least one SKU")
    if len(sku_ids) > MAX_SKUS:
        raise invalid("sku_id", f"at most {MAX_SKUS} SKUs at a time")
    wanted = list(dict.fromkeys(sku_ids))
    denied = await distribution.unauthorized_skus(session, customer_id=customer_id, sku_ids=wanted, day=day)
    allowed = [s for s in wanted if s not in denied]
    by_sku: dict[UUID, list[WarehouseStock]] = defaultdict(list)
    if allowed:
        available = func.sum(StockLevel.on_hand - StockLevel.reserved)
        rows = await session.execute(
            select(StockLevel.sku_id, Warehouse.id, Warehouse.code, Warehouse.name, available)
            .join(
                Warehouse,
                and_(Warehouse.tenant_id == StockLevel.tenant_id, Warehouse.id == StockLevel.warehouse_id),
            )
            .outerjoin(
                Lot,
                and_(
                    Lot.tenant_id == StockLevel.tenant_id,
                    Lot.sku_id == StockLevel.sku_id,
                    Lot.lot_no == StockLevel.lot_no,
                ),
            )
            .where(
                StockLevel.sku_id.in_(allowed),
                Warehouse.owner_customer_id.is_(None),
                Warehouse.status == "active",
                or_(Lot.expiry_date.is_(None), Lot.expiry_date >= day),
            )
            .group_by(StockLevel.sku_id, Warehouse.id, Warehouse.code, Warehouse.name)
            .order_by(StockLevel.sku_id, Warehouse.code)
        )
        for sku_id, warehouse_id, code, name, total in rows:
            by_sku[sku_id].append(
                WarehouseStock(warehouse_id=warehouse_id, code=code, name=name, available=Decimal(total or 0))
            )
    return AvailabilityOut(
        customer_id=customer_id,
        on=day,
        items=[
            SkuAvailability(
                sku_id=s,
                authorized=s not in denied,
                available=sum((w.available for w in by_sku[s]), Decimal(0)),
                warehouses=by_sku[s],
            )
            for s in wanted
        ],
    )
