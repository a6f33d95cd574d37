"""The ``[seed]`` sections of a tenant manifest, each applied through its domain's idempotent
upsert. Order matters: references point backwards (units before products, parents before
children, customers before their warehouses and users)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.catalog import service as catalog
from omnicloud.catalog.schemas import BrandIn, CategorySpec, ProductSpec, RegionSpec, UnitIn
from omnicloud.channels import service as channels
from omnicloud.channels.schemas import CustomerSpec, SalesOrgSpec
from omnicloud.core.errors import invalid
from omnicloud.identity import service as identity
from omnicloud.identity.schemas import UserIn
from omnicloud.inventory import service as inventory
from omnicloud.inventory.schemas import WarehouseIn


def _upsert(fn: Any, spec_type: type) -> Any:
    async def step(session: AsyncSession, item: dict[str, Any]) -> bool:
        _, changed = await fn(session, msgspec.convert(item, spec_type))
        return bool(changed)

    return step


class WarehouseSeed(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    code: str
    name: str
    owner_code: str | None = None  # a dealer's customer code; empty: the brand's own
    region_code: str | None = None
    status: str = "active"


async def _warehouse(session: AsyncSession, item: dict[str, Any]) -> bool:
    seed = msgspec.convert(item, WarehouseSeed)
    owner = (
        await channels.customer_id_by_code(session, seed.owner_code, field="owner_code")
        if seed.owner_code
        else None
    )
    region = (await catalog.region_by_code(session, seed.region_code)).id if seed.region_code else None
    return await inventory.upsert_warehouse(
        session,
        msgspec.convert(
            {
                "code": seed.code,
                "name": seed.name,
                "owner_customer_id": owner,
                "region_id": region,
                "status": seed.status,
            },
            WarehouseIn,
        ),
    )


class StockSeed(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    warehouse: str
    sku: str
    quantity: Decimal
    lot_no: str = ""
    production_date: str | None = None
    expiry_date: str | None = None


async def _stock(session: AsyncSession, item: dict[str, Any]) -> bool:
    from datetime import date

    seed = msgspec.convert(item, StockSeed)
    try:
        produced = date.fromisoformat(seed.production_date) if seed.production_date else None
        expires = date.fromisoformat(seed.expiry_date) if seed.expiry_date else None
    except ValueError as exc:
        raise invalid("production_date" if "production" in str(exc) else "expiry_date", str(exc)) from None
    return await inventory.set_stock_level(
        session, seed.warehouse, seed.sku, seed.lot_no, seed.quantity, produced, expires
    )


async def _user(session: AsyncSession, item: dict[str, Any]) -> bool:
    """Create the user if its email is new; an existing user keeps its role and status."""
    email = str(item["email"]).lower()
    if await identity.user_id_by_email(session, email) is not None:
        return False
    customer_id = (
        await channels.customer_id_by_code(session, item["customer"], field="customer")
        if item.get("customer")
        else None
    )
    await identity.create_user(
        session, UserIn(email=email, name=item["name"], role=item["role"], customer_id=customer_id)
    )
    return True


STEPS: list[tuple[str, Any]] = [
    ("units", _upsert(catalog.upsert_unit, UnitIn)),
    ("brands", _upsert(catalog.upsert_brand, BrandIn)),
    ("categories", _upsert(catalog.upsert_category, CategorySpec)),
    ("regions", _upsert(catalog.upsert_region, RegionSpec)),
    ("sales_orgs", _upsert(channels.upsert_sales_org, SalesOrgSpec)),
    ("products", _upsert(catalog.upsert_product, ProductSpec)),
    ("customers", _upsert(channels.upsert_customer, CustomerSpec)),
    ("warehouses", _warehouse),
    ("stock", _stock),
    ("users", _user),
]
