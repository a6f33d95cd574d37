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


class PriceEntrySeed(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    sku: str
    unit: str
    price: Decimal
    min_qty: Decimal | None = None
    max_qty: Decimal | None = None
    mode: str = "all_units"


class PriceListSeed(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A price list with its entries; dimensions by code (``customer``, ``region``,
    ``sales_org``). A list whose code exists is left as it is: prices change over REST."""

    code: str
    name: str
    step: str
    priority: int = 0
    customer: str | None = None
    customer_class: str | None = None
    level: str | None = None
    region: str | None = None
    channel: str | None = None
    sales_org: str | None = None
    entries: list[PriceEntrySeed] = []


async def _price_list(session: AsyncSession, item: dict[str, Any]) -> bool:
    from omnicloud.core.csvio import to_csv
    from omnicloud.policies.prices import service as prices
    from omnicloud.policies.prices.schemas import ENTRY_CSV_COLUMNS, PriceListIn

    seed = msgspec.convert(item, PriceListSeed)
    if await prices.price_list_id_by_code(session, seed.code) is not None:
        return False
    dimensions: dict[str, Any] = {
        "customer_class": seed.customer_class,
        "level": seed.level,
        "channel": seed.channel,
        "customer_id": await channels.customer_id_by_code(session, seed.customer, field="customer")
        if seed.customer
        else None,
        "region_id": (await catalog.region_by_code(session, seed.region, field="region")).id
        if seed.region
        else None,
        "sales_org_id": await channels.sales_org_id_by_code(session, seed.sales_org, field="sales_org")
        if seed.sales_org
        else None,
    }
    created = await prices.create_price_list(
        session,
        msgspec.convert(
            {
                "code": seed.code,
                "name": seed.name,
                "step": seed.step,
                "priority": seed.priority,
                **dimensions,
            },
            PriceListIn,
        ),
    )
    rows = [(e.sku, e.unit, e.price, e.min_qty, e.max_qty, e.mode, None, None) for e in seed.entries]
    await prices.import_entries_csv(session, created.id, to_csv(ENTRY_CSV_COLUMNS, rows))
    return True


class PromotionSeed(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A promotion as ``POST /api/v1/promotions`` takes it, with its product scope by SKU code
    (``skus``). A promotion whose code exists is left as it is."""

    code: str
    name: str
    type: str
    rule: dict[str, Any]
    skus: list[str] = []
    audience: dict[str, Any] = {}
    priority: int = 0
    mutex_group: str | None = None
    mutex_strategy: str = "priority_first"


async def _promotion(session: AsyncSession, item: dict[str, Any]) -> bool:
    from omnicloud.policies.promos import service as promos
    from omnicloud.policies.promos.schemas import PromotionIn

    seed = msgspec.convert(item, PromotionSeed)
    if await promos.promotion_id_by_code(session, seed.code) is not None:
        return False
    sku_ids = await catalog.sku_ids_by_code(session, seed.skus)
    missing = [code for code in seed.skus if code not in sku_ids]
    if missing:
        raise invalid("skus", f"no such SKU {missing[0]!r}")
    body = msgspec.to_builtins(seed)
    body.pop("skus")
    body["products"] = {"sku_ids": [str(sku_ids[code]) for code in seed.skus]}
    await promos.create_promotion(session, msgspec.convert(body, PromotionIn))
    return True


class CreditProfileSeed(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The brand's credit line for a customer (by code). A customer that has one keeps it."""

    customer: str
    credit_limit: Decimal
    credit_days: int = 0
    grace_days: int = 0


async def _credit_profile(session: AsyncSession, item: dict[str, Any]) -> bool:
    from omnicloud.policies.terms import service as terms
    from omnicloud.policies.terms.schemas import CreditProfileIn

    seed = msgspec.convert(item, CreditProfileSeed)
    customer_id = await channels.customer_id_by_code(session, seed.customer, field="customer")
    existing, _ = await terms.list_credit_profiles(session, None, 1, customer_id=customer_id)
    if existing:
        return False
    body = {f: getattr(seed, f) for f in ("credit_limit", "credit_days", "grace_days")}
    await terms.create_credit_profile(session, CreditProfileIn(customer_id=customer_id, **body))
    return True


class OpeningCashSeed(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An opening cash balance (期初余额) for a customer (by code) in the brand's pool: a ledger
    adjustment with its reason, made once (a cash account that has money already is left alone)."""

    customer: str
    amount: Decimal
    reason: str = "opening balance"


async def _opening_cash(session: AsyncSession, item: dict[str, Any]) -> bool:
    from omnicloud.pools.funds import service as funds
    from omnicloud.pools.funds.schemas import AdjustmentIn

    seed = msgspec.convert(item, OpeningCashSeed)
    customer = await channels.require_customer(
        session, await channels.customer_id_by_code(session, seed.customer, field="customer")
    )
    account = await funds.customer_account(session, customer.id, customer.sales_org_id, "cash")
    if account.balance != 0 or account.held != 0:
        return False
    await funds.adjust(
        session, AdjustmentIn(fund_account_id=account.id, amount=seed.amount, reason=seed.reason)
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
    ("price_lists", _price_list),
    ("promotions", _promotion),
    ("credit_profiles", _credit_profile),
    ("opening_cash", _opening_cash),
]
