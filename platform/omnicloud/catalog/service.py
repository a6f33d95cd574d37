"""Catalog use cases: units, brands, the category tree, products with their unit conversions
and SKUs, the region tree, price previews and the product CSV.

Every write records an audit entry and emits an outbox event in the caller's transaction.
Upserts are keyed by code and idempotent: a second identical call changes nothing, and so
records nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeVar
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType
from sqlalchemy import Select, and_, bindparam, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.catalog.models import Brand, Category, Product, Region, Sku, Unit, UnitConversion
from omnicloud.catalog.schemas import (
    PRODUCT_CSV_COLUMNS,
    BrandIn,
    BrandOut,
    CategoryIn,
    CategoryOut,
    CategorySpec,
    ConversionOut,
    ImportResult,
    NamePatch,
    PriceOut,
    ProductCsvRow,
    ProductIn,
    ProductOut,
    ProductPatch,
    ProductSpec,
    RegionIn,
    RegionOut,
    RegionSpec,
    SkuIn,
    SkuOut,
    SkuPatch,
    SkuSpec,
    TreePatch,
    UnitIn,
    UnitOut,
    UnitPrice,
    check_decimal,
)
from omnicloud.core import audit
from omnicloud.core.csvio import RowError, parse_rows, raise_if_errors, to_csv
from omnicloud.core.db import TENANT, TenantOwned, TenantQuery, TenantReader, is_unique_violation, utcnow
from omnicloud.core.errors import Conflict, NotFound, Problem, Unprocessable, invalid
from omnicloud.core.ids import new_id
from omnicloud.core.money import round_money
from omnicloud.core.paging import decode_cursor, paged_query, split_page
from omnicloud.core.security import Principal
from omnicloud.core.tenancy import require_tenant

M = TypeVar("M", bound=TenantOwned)
Outcome = Literal["created", "updated", "unchanged"]

CENT = Decimal("0.01")
FOURTH = Decimal("0.0001")
MAX_TREE_DEPTH = 64
MAX_PREVIEW_QUANTITY = Decimal(10) ** 9

UNIT_FIELDS = ("code", "name")
CATEGORY_FIELDS = ("code", "name", "parent_id")
REGION_FIELDS = ("code", "name", "parent_id", "path")
PRODUCT_FIELDS = (
    "code",
    "name",
    "base_unit_id",
    "brand_id",
    "category_id",
    "description",
    "attributes",
    "status",
    "version",
)
SKU_FIELDS = (
    "product_id",
    "code",
    "name",
    "barcode",
    "attributes",
    "list_price",
    "cost_price",
    "weight_g",
    "status",
    "version",
)


# --- shared helpers -------------------------------------------------------------------------


async def _get(session: AsyncSession, model: type[M], obj_id: UUID) -> M | None:
    return await session.get(model, (require_tenant(), obj_id))


async def _found(session: AsyncSession, model: type[M], obj_id: UUID, what: str) -> M:
    """The object, or a 404 (path ids)."""
    obj = await _get(session, model, obj_id)
    if obj is None:
        raise NotFound(f"no such {what}")
    return obj


async def _ref(session: AsyncSession, model: type[M], obj_id: UUID, field: str, what: str) -> M:
    """The object, or a 422 naming the field that referred to it (body ids)."""
    obj = await _get(session, model, obj_id)
    if obj is None:
        raise invalid(field, f"no such {what}")
    return obj


async def _by_code(session: AsyncSession, model: Any, code: str) -> Any:
    return await session.scalar(select(model).where(model.code == code))


async def _ref_code(session: AsyncSession, model: Any, code: str, field: str, what: str) -> Any:
    obj = await _by_code(session, model, code)
    if obj is None:
        raise invalid(field, f"no {what} with code {code!r}")
    return obj


def differs(obj: Any, values: dict[str, Any]) -> bool:
    """True when any given (not UNSET) value differs from the object's current one."""
    return any(value is not UNSET and getattr(obj, name) != value for name, value in values.items())


def assign(obj: Any, values: dict[str, Any]) -> bool:
    """Set the given attributes; True when any value differs from the current one."""
    changed = False
    for name, value in values.items():
        if value is UNSET:
            continue
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed


async def flush_unique(session: AsyncSession, what: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise Conflict(f"{what} already exists", code="duplicate") from None
        raise


def _money(value: Decimal | UnsetType | None, quantum: Decimal = CENT) -> Any:
    return value.quantize(quantum) if isinstance(value, Decimal) else value


def contains_ci(column: Any, q: str) -> Any:
    return func.lower(column).contains(q.lower(), autoescape=True)


async def _page(session: AsyncSession, stmt: Select[Any], id_col: Any, cursor: str | None, limit: int) -> Any:
    rows = (await session.scalars(paged_query(stmt, id_col, cursor, limit))).all()
    return split_page(rows, limit)


async def ancestors_by_parent(
    session: AsyncSession, model: Any, start_id: UUID | None, field: str = "parent_id"
) -> list[UUID]:
    """Ids from ``start_id`` up to its root, for trees without a materialised path."""
    out: list[UUID] = []
    current = start_id
    while current is not None:
        if len(out) >= MAX_TREE_DEPTH or current in out:
            raise invalid(field, "the tree is too deep")
        out.append(current)
        node = await _get(session, model, current)
        current = node.parent_id if node is not None else None
    return out


# --- units and brands -----------------------------------------------------------------------


def unit_out(u: Unit) -> UnitOut:
    return UnitOut(id=u.id, code=u.code, name=u.name)


def brand_out(b: Brand) -> BrandOut:
    return BrandOut(id=b.id, code=b.code, name=b.name)


async def _upsert_named(
    session: AsyncSession, model: Any, kind: str, code: str, name: str, *, create_only: bool = False
) -> tuple[Any, Outcome]:
    obj = await _by_code(session, model, code)
    if obj is not None and create_only:
        raise Conflict(f"{kind} {code} already exists", code="duplicate")
    if obj is None:
        obj = model(code=code, name=name)
        session.add(obj)
        await flush_unique(session, f"{kind} {code}")
        audit.record_change(session, kind, obj.id, None, audit.snapshot(obj, UNIT_FIELDS))
        return obj, "created"
    before = audit.snapshot(obj, UNIT_FIELDS)
    if not assign(obj, {"name": name}):
        return obj, "unchanged"
    await flush_unique(session, f"{kind} {code}")
    audit.record_change(session, kind, obj.id, before, audit.snapshot(obj, UNIT_FIELDS))
    return obj, "updated"


async def _rename(session: AsyncSession, model: Any, kind: str, obj_id: UUID, data: NamePatch) -> Any:
    obj = await _found(session, model, obj_id, kind)
    before = audit.snapshot(obj, UNIT_FIELDS)
    if assign(obj, {"name": data.name}):
        await flush_unique(session, kind)
        audit.record_change(session, kind, obj.id, before, audit.snapshot(obj, UNIT_FIELDS))
    return obj


async def create_unit(session: AsyncSession, data: UnitIn) -> UnitOut:
    unit, _ = await _upsert_named(session, Unit, "unit", data.code, data.name, create_only=True)
    return unit_out(unit)


async def upsert_unit(session: AsyncSession, spec: UnitIn) -> tuple[UnitOut, bool]:
    unit, outcome = await _upsert_named(session, Unit, "unit", spec.code, spec.name)
    return unit_out(unit), outcome != "unchanged"


async def get_unit(session: AsyncSession, unit_id: UUID) -> UnitOut:
    return unit_out(await _found(session, Unit, unit_id, "unit"))


async def update_unit(session: AsyncSession, unit_id: UUID, data: NamePatch) -> UnitOut:
    return unit_out(await _rename(session, Unit, "unit", unit_id, data))


async def list_units(
    session: AsyncSession, cursor: str | None, limit: int, q: str | None = None
) -> tuple[list[UnitOut], str | None]:
    stmt = select(Unit)
    if q:
        stmt = stmt.where(or_(contains_ci(Unit.code, q), contains_ci(Unit.name, q)))
    items, nxt = await _page(session, stmt, Unit.id, cursor, limit)
    return [unit_out(u) for u in items], nxt


async def create_brand(session: AsyncSession, data: BrandIn) -> BrandOut:
    brand, _ = await _upsert_named(session, Brand, "brand", data.code, data.name, create_only=True)
    return brand_out(brand)


async def upsert_brand(session: AsyncSession, spec: BrandIn) -> tuple[BrandOut, bool]:
    brand, outcome = await _upsert_named(session, Brand, "brand", spec.code, spec.name)
    return brand_out(brand), outcome != "unchanged"


async def get_brand(session: AsyncSession, brand_id: UUID) -> BrandOut:
    return brand_out(await _found(session, Brand, brand_id, "brand"))


async def update_brand(session: AsyncSession, brand_id: UUID, data: NamePatch) -> BrandOut:
    return brand_out(await _rename(session, Brand, "brand", brand_id, data))


async def list_brands(
    session: AsyncSession, cursor: str | None, limit: int, q: str | None = None
) -> tuple[list[BrandOut], str | None]:
    stmt = select(Brand)
    if q:
        stmt = stmt.where(or_(contains_ci(Brand.code, q), contains_ci(Brand.name, q)))
    items, nxt = await _page(session, stmt, Brand.id, cursor, limit)
    return [brand_out(b) for b in items], nxt


# --- categories -----------------------------------------------------------------------------


def category_out(c: Category) -> CategoryOut:
    return CategoryOut(id=c.id, code=c.code, name=c.name, parent_id=c.parent_id)


async def _save_category(
    session: AsyncSession,
    cat: Category | None,
    values: dict[str, Any],
    parent_field: str,
) -> tuple[Category, Outcome]:
    parent_id = values.get("parent_id", UNSET)
    if cat is not None and parent_id is not UNSET and parent_id != cat.parent_id:
        if cat.id in await ancestors_by_parent(session, Category, parent_id, parent_field):
            raise invalid(parent_field, "a category cannot move under itself or its descendants")
    if cat is None:
        cat = Category(**{k: v for k, v in values.items() if v is not UNSET})
        session.add(cat)
        await flush_unique(session, f"category {cat.code}")
        audit.record_change(session, "category", cat.id, None, audit.snapshot(cat, CATEGORY_FIELDS))
        return cat, "created"
    before = audit.snapshot(cat, CATEGORY_FIELDS)
    if not assign(cat, values):
        return cat, "unchanged"
    await flush_unique(session, f"category {cat.code}")
    audit.record_change(session, "category", cat.id, before, audit.snapshot(cat, CATEGORY_FIELDS))
    return cat, "updated"


async def create_category(session: AsyncSession, data: CategoryIn) -> CategoryOut:
    if await _by_code(session, Category, data.code) is not None:
        raise Conflict(f"category {data.code} already exists", code="duplicate")
    if data.parent_id is not None:
        await _ref(session, Category, data.parent_id, "parent_id", "category")
    cat, _ = await _save_category(
        session, None, {"code": data.code, "name": data.name, "parent_id": data.parent_id}, "parent_id"
    )
    return category_out(cat)


async def update_category(session: AsyncSession, category_id: UUID, data: TreePatch) -> CategoryOut:
    cat = await _found(session, Category, category_id, "category")
    if isinstance(data.parent_id, UUID):
        await _ref(session, Category, data.parent_id, "parent_id", "category")
    cat, _ = await _save_category(session, cat, {"name": data.name, "parent_id": data.parent_id}, "parent_id")
    return category_out(cat)


async def upsert_category(session: AsyncSession, spec: CategorySpec) -> tuple[CategoryOut, bool]:
    cat = await _by_code(session, Category, spec.code)
    parent_id: UUID | UnsetType | None = UNSET
    if spec.parent_code is None:
        parent_id = None
    elif isinstance(spec.parent_code, str):
        parent_id = (await _ref_code(session, Category, spec.parent_code, "parent_code", "category")).id
    values = {"code": spec.code, "name": spec.name, "parent_id": parent_id}
    cat, outcome = await _save_category(session, cat, values, "parent_code")
    return category_out(cat), outcome != "unchanged"


async def get_category(session: AsyncSession, category_id: UUID) -> CategoryOut:
    return category_out(await _found(session, Category, category_id, "category"))


async def list_categories(
    session: AsyncSession,
    cursor: str | None,
    limit: int,
    *,
    parent_id: UUID | None = None,
    roots: bool = False,
    q: str | None = None,
) -> tuple[list[CategoryOut], str | None]:
    stmt = select(Category)
    if parent_id is not None:
        stmt = stmt.where(Category.parent_id == parent_id)
    elif roots:
        stmt = stmt.where(Category.parent_id.is_(None))
    if q:
        stmt = stmt.where(or_(contains_ci(Category.code, q), contains_ci(Category.name, q)))
    items, nxt = await _page(session, stmt, Category.id, cursor, limit)
    return [category_out(c) for c in items], nxt


# --- regions (materialised path) ------------------------------------------------------------


def region_out(r: Region) -> RegionOut:
    return RegionOut(id=r.id, code=r.code, name=r.name, parent_id=r.parent_id, path=r.path)


async def require_region(session: AsyncSession, region_id: UUID, *, field: str = "region_id") -> Region:
    """The region, or a 422 naming the field that referred to it."""
    return await _ref(session, Region, region_id, field, "region")


async def region_by_code(session: AsyncSession, code: str, *, field: str = "region_code") -> Region:
    """The region with this code, or a 422 naming the field."""
    return await _ref_code(session, Region, code, field, "region")


async def region_codes(session: AsyncSession) -> dict[UUID, str]:
    return {rid: code for rid, code in (await session.execute(select(Region.id, Region.code))).all()}


async def region_ancestors(session: AsyncSession, region_id: UUID | None) -> list[UUID]:
    """The region and its ancestors, nearest first (city, province, country): the order a
    price search walks from specific to general. Empty for no region or an unknown one."""
    if region_id is None:
        return []
    path = await session.scalar(select(Region.path).where(Region.id == region_id))
    if path is None:
        return []
    return [UUID(part) for part in reversed(path.strip("/").split("/"))]


async def _save_region(
    session: AsyncSession, region: Region | None, values: dict[str, Any], parent_field: str
) -> tuple[Region, Outcome]:
    parent_id = values.pop("parent_id", UNSET)
    parent = await _ref(session, Region, parent_id, parent_field, "region") if parent_id else None
    if region is None:
        rid = new_id()
        path = f"{parent.path if parent else '/'}{rid}/"
        region = Region(id=rid, parent_id=parent_id or None, path=path, **values)
        session.add(region)
        await flush_unique(session, f"region {region.code}")
        audit.record_change(session, "region", region.id, None, audit.snapshot(region, REGION_FIELDS))
        return region, "created"
    before = audit.snapshot(region, REGION_FIELDS)
    changed = assign(region, values)
    if parent_id is not UNSET and parent_id != region.parent_id:
        if parent is not None and parent.path.startswith(region.path):
            raise invalid(parent_field, "a region cannot move under itself or its descendants")
        await _move_subtree(session, Region, region, parent.path if parent else "/")
        region.parent_id = parent.id if parent else None
        changed = True
    if not changed:
        return region, "unchanged"
    await flush_unique(session, f"region {region.code}")
    audit.record_change(session, "region", region.id, before, audit.snapshot(region, REGION_FIELDS))
    return region, "updated"


async def _move_subtree(session: AsyncSession, model: Any, node: Any, new_parent_path: str) -> None:
    """Re-root ``node`` and its descendants under ``new_parent_path``."""
    old = node.path
    new = f"{new_parent_path}{node.id}/"
    for row in (await session.scalars(select(model).where(model.path.startswith(old)))).all():
        row.path = new + row.path[len(old) :]
    node.path = new


async def create_region(session: AsyncSession, data: RegionIn) -> RegionOut:
    if await _by_code(session, Region, data.code) is not None:
        raise Conflict(f"region {data.code} already exists", code="duplicate")
    values = {"code": data.code, "name": data.name, "parent_id": data.parent_id}
    region, _ = await _save_region(session, None, values, "parent_id")
    return region_out(region)


async def update_region(session: AsyncSession, region_id: UUID, data: TreePatch) -> RegionOut:
    region = await _found(session, Region, region_id, "region")
    region, _ = await _save_region(
        session, region, {"name": data.name, "parent_id": data.parent_id}, "parent_id"
    )
    return region_out(region)


async def upsert_region(session: AsyncSession, spec: RegionSpec) -> tuple[RegionOut, bool]:
    region = await _by_code(session, Region, spec.code)
    parent_id: UUID | UnsetType | None = UNSET
    if spec.parent_code is None:
        parent_id = None
    elif isinstance(spec.parent_code, str):
        parent_id = (await region_by_code(session, spec.parent_code, field="parent_code")).id
    values = {"code": spec.code, "name": spec.name, "parent_id": parent_id}
    region, outcome = await _save_region(session, region, values, "parent_code")
    return region_out(region), outcome != "unchanged"


async def get_region(session: AsyncSession, region_id: UUID) -> RegionOut:
    return region_out(await _found(session, Region, region_id, "region"))


async def list_regions(
    session: AsyncSession,
    cursor: str | None,
    limit: int,
    *,
    parent_id: UUID | None = None,
    within_id: UUID | None = None,
    q: str | None = None,
) -> tuple[list[RegionOut], str | None]:
    stmt = select(Region)
    if parent_id is not None:
        stmt = stmt.where(Region.parent_id == parent_id)
    if within_id is not None:
        root = await _ref(session, Region, within_id, "within_id", "region")
        stmt = stmt.where(Region.path.startswith(root.path))
    if q:
        stmt = stmt.where(or_(contains_ci(Region.code, q), contains_ci(Region.name, q)))
    items, nxt = await _page(session, stmt, Region.id, cursor, limit)
    return [region_out(r) for r in items], nxt


# --- products -------------------------------------------------------------------------------


async def _conversions(
    session: AsyncSession, product_ids: Sequence[UUID]
) -> dict[UUID, list[UnitConversion]]:
    out: dict[UUID, list[UnitConversion]] = {pid: [] for pid in product_ids}
    if product_ids:
        stmt = select(UnitConversion).where(UnitConversion.product_id.in_(product_ids))
        for conv in (await session.scalars(stmt.order_by(UnitConversion.id))).all():
            out[conv.product_id].append(conv)
    return out


def product_out(p: Product, conversions: Sequence[UnitConversion]) -> ProductOut:
    return ProductOut(
        id=p.id,
        code=p.code,
        name=p.name,
        base_unit_id=p.base_unit_id,
        brand_id=p.brand_id,
        category_id=p.category_id,
        description=p.description,
        attributes=p.attributes,
        status=p.status,
        conversions=[ConversionOut(unit_id=c.unit_id, factor=c.factor) for c in conversions],
        version=p.version,
        created_at=p.created_at,
    )


async def _product_out(session: AsyncSession, p: Product) -> ProductOut:
    return product_out(p, (await _conversions(session, [p.id]))[p.id])


def _product_snapshot(p: Product, conversions: dict[UUID, Decimal]) -> dict[str, Any]:
    snap = audit.snapshot(p, PRODUCT_FIELDS)
    snap["conversions"] = {str(unit): str(factor) for unit, factor in conversions.items()}
    return snap


async def _save_product(
    session: AsyncSession,
    product: Product | None,
    values: dict[str, Any],
    conversions: dict[UUID, Decimal] | UnsetType,
    conv_field: str,
    unit_field: str,
) -> tuple[Product, Outcome]:
    """Write a product whose references are already resolved; ``conversions`` maps unit id to
    factor and replaces the product's set when given."""
    base_unit = values.get("base_unit_id", UNSET)
    if base_unit is UNSET:
        assert product is not None
        base_unit = product.base_unit_id
    existing = (await _conversions(session, [product.id]))[product.id] if product else []
    current = {c.unit_id: c.factor for c in existing}
    wanted = conversions if isinstance(conversions, dict) else current
    if base_unit in wanted:
        raise invalid(
            conv_field if wanted is conversions else unit_field, "the base unit needs no conversion"
        )
    if product is None:
        product = Product(**{k: v for k, v in values.items() if v is not UNSET})
        session.add(product)
        await flush_unique(session, f"product {product.code}")
        await _replace_conversions(session, product, existing, wanted)
        await flush_unique(session, f"product {product.code}")
        audit.record_change(session, "product", product.id, None, _product_snapshot(product, wanted))
        return product, "created"
    before = _product_snapshot(product, current)
    changed = assign(product, values)
    changed = await _replace_conversions(session, product, existing, wanted) or changed
    if not changed:
        return product, "unchanged"
    product.version += 1
    await flush_unique(session, f"product {product.code}")
    audit.record_change(session, "product", product.id, before, _product_snapshot(product, wanted))
    return product, "updated"


async def _replace_conversions(
    session: AsyncSession, product: Product, existing: Sequence[UnitConversion], wanted: dict[UUID, Decimal]
) -> bool:
    changed = False
    by_unit = {c.unit_id: c for c in existing}
    for unit_id, conv in by_unit.items():
        if unit_id not in wanted:
            await session.delete(conv)
            changed = True
    for unit_id, factor in wanted.items():
        conv = by_unit.get(unit_id)
        if conv is None:
            session.add(UnitConversion(product_id=product.id, unit_id=unit_id, factor=factor))
            changed = True
        elif conv.factor != factor:
            conv.factor = factor
            changed = True
    return changed


async def _conversions_in(session: AsyncSession, items: Sequence[Any], by_code: bool) -> dict[UUID, Decimal]:
    out: dict[UUID, Decimal] = {}
    for i, item in enumerate(items):
        if by_code:
            field = f"conversions[{i}].unit_code"
            unit = await _ref_code(session, Unit, item.unit_code, field, "unit")
        else:
            field = f"conversions[{i}].unit_id"
            unit = await _ref(session, Unit, item.unit_id, field, "unit")
        if unit.id in out:
            raise invalid(field, "the unit is listed twice")
        out[unit.id] = _money(item.factor, FOURTH)
    return out


async def _product_refs(session: AsyncSession, base_unit_id: Any, brand_id: Any, category_id: Any) -> None:
    if isinstance(base_unit_id, UUID):
        await _ref(session, Unit, base_unit_id, "base_unit_id", "unit")
    if isinstance(brand_id, UUID):
        await _ref(session, Brand, brand_id, "brand_id", "brand")
    if isinstance(category_id, UUID):
        await _ref(session, Category, category_id, "category_id", "category")


async def create_product(session: AsyncSession, data: ProductIn) -> ProductOut:
    if await _by_code(session, Product, data.code) is not None:
        raise Conflict(f"product {data.code} already exists", code="duplicate")
    await _product_refs(session, data.base_unit_id, data.brand_id, data.category_id)
    conversions = await _conversions_in(session, data.conversions, by_code=False)
    values = {
        "code": data.code,
        "name": data.name,
        "base_unit_id": data.base_unit_id,
        "brand_id": data.brand_id,
        "category_id": data.category_id,
        "description": data.description,
        "attributes": data.attributes,
        "status": data.status,
    }
    product, _ = await _save_product(session, None, values, conversions, "conversions", "base_unit_id")
    return await _product_out(session, product)


async def update_product(
    session: AsyncSession, product_id: UUID, data: ProductPatch, expected_version: int
) -> ProductOut:
    product = await _found(session, Product, product_id, "product")
    audit.check_version(product, expected_version, "product")
    await _product_refs(session, data.base_unit_id, data.brand_id, data.category_id)
    conversions: dict[UUID, Decimal] | UnsetType = UNSET
    if not isinstance(data.conversions, UnsetType):
        conversions = await _conversions_in(session, data.conversions, by_code=False)
    values = {
        "name": data.name,
        "base_unit_id": data.base_unit_id,
        "brand_id": data.brand_id,
        "category_id": data.category_id,
        "description": data.description,
        "attributes": data.attributes,
        "status": data.status,
    }
    product, _ = await _save_product(session, product, values, conversions, "conversions", "base_unit_id")
    return await _product_out(session, product)


async def _upsert_product(session: AsyncSession, spec: ProductSpec) -> tuple[Product, Outcome]:
    """The product part of :func:`upsert_product` (its SKUs are left alone)."""
    product = await _by_code(session, Product, spec.code)
    values: dict[str, Any] = {"code": spec.code, "name": spec.name}
    if isinstance(spec.base_unit_code, str):
        values["base_unit_id"] = (
            await _ref_code(session, Unit, spec.base_unit_code, "base_unit_code", "unit")
        ).id
    elif product is None:
        raise invalid("base_unit_code", "a new product needs a base unit")
    for name, model, field, what in (
        ("brand_id", Brand, "brand_code", "brand"),
        ("category_id", Category, "category_code", "category"),
    ):
        code = getattr(spec, field)
        if isinstance(code, str):
            values[name] = (await _ref_code(session, model, code, field, what)).id
        elif code is None:
            values[name] = None
    for name in ("description", "attributes", "status"):
        values[name] = getattr(spec, name)
    if product is None:
        values = {"attributes": {}, "status": "active", **{k: v for k, v in values.items() if v is not UNSET}}
    conversions: dict[UUID, Decimal] | UnsetType = UNSET
    if not isinstance(spec.conversions, UnsetType):
        conversions = await _conversions_in(session, spec.conversions, by_code=True)
    return await _save_product(session, product, values, conversions, "conversions", "base_unit_code")


async def upsert_product(session: AsyncSession, spec: ProductSpec) -> tuple[ProductOut, bool]:
    """Create or update a product and its listed SKUs by code (other SKUs are left alone)."""
    product, outcome = await _upsert_product(session, spec)
    changed = outcome != "unchanged"
    for i, sku_spec in enumerate(spec.skus):
        _, sku_outcome = await _upsert_sku(session, product, sku_spec, f"skus[{i}].")
        changed = changed or sku_outcome != "unchanged"
    return await _product_out(session, product), changed


async def get_product(session: AsyncSession, product_id: UUID) -> ProductOut:
    return await _product_out(session, await _found(session, Product, product_id, "product"))


PRODUCT_COLUMNS = (
    Product.id,
    Product.code,
    Product.name,
    Product.base_unit_id,
    Product.brand_id,
    Product.category_id,
    Product.description,
    Product.attributes,
    Product.status,
    Product.version,
    Product.created_at,
)


# Each filter of the product list, on a parameter of the same name: with the filters as
# parameters, a page needs only as many statements as there are combinations of filters.
_PRODUCT_FILTERS = {
    "categories": Product.category_id.in_(bindparam("categories", expanding=True)),
    "brand_id": Product.brand_id == bindparam("brand_id"),
    "status": Product.status == bindparam("status"),
    "q": or_(
        func.lower(Product.code).contains(bindparam("q"), escape="/"),
        func.lower(Product.name).contains(bindparam("q"), escape="/"),
    ),
}


@functools.cache
def _product_page(after: bool, filters: frozenset[str]) -> TenantQuery:
    """A page of products with their conversions, in one statement (a row per conversion),
    built and checked once per combination of filters: building costs more than running it.

    The page's ids come first (``page_size`` of them, after ``after`` when given), so that
    ``LIMIT`` counts products, not conversions.
    """
    ids = select(Product.id).where(
        Product.tenant_id == TENANT, *(_PRODUCT_FILTERS[f] for f in sorted(filters))
    )
    if after:
        ids = ids.where(Product.id > bindparam("after"))
    page = ids.order_by(Product.id).limit(bindparam("page_size")).subquery("page")
    return TenantQuery(
        select(*PRODUCT_COLUMNS, UnitConversion.unit_id, UnitConversion.factor)
        .join(page, page.c.id == Product.id)
        .outerjoin(
            UnitConversion,
            and_(UnitConversion.tenant_id == TENANT, UnitConversion.product_id == Product.id),
        )
        .where(Product.tenant_id == TENANT)
        .order_by(Product.id, UnitConversion.id)
    )


_CATEGORY_TREE = TenantQuery(select(Category.id, Category.parent_id).where(Category.tenant_id == TENANT))


async def category_with_descendants(reader: TenantReader, category_id: UUID) -> list[UUID]:
    """The category and every category below it, from one read of the tenant's tree."""
    children: dict[UUID | None, list[UUID]] = {}
    for cid, pid in await reader.rows(_CATEGORY_TREE):
        children.setdefault(pid, []).append(cid)
    out, todo = [], [category_id]
    while todo:
        node = todo.pop()
        if node in out:
            continue
        out.append(node)
        todo.extend(children.get(node, []))
    return out


def _like_escaped(q: str) -> str:
    """``q`` lower-cased, with LIKE's wildcards escaped by ``/`` (what ``autoescape`` does)."""
    return q.lower().replace("/", "//").replace("%", "/%").replace("_", "/_")


async def list_products(
    reader: TenantReader,
    cursor: str | None,
    limit: int,
    *,
    category_id: UUID | None = None,
    brand_id: UUID | None = None,
    status: str | None = None,
    q: str | None = None,
) -> tuple[list[ProductOut], str | None]:
    # The hot read path: one Core statement outside a transaction, columns straight into
    # Structs, no ORM (core.db.TenantQuery keeps the tenant guard).
    params: dict[str, Any] = {"page_size": limit + 1}
    after = decode_cursor(cursor)
    if after is not None:
        params["after"] = after
    if category_id is not None:
        params["categories"] = await category_with_descendants(reader, category_id)
    if brand_id is not None:
        params["brand_id"] = brand_id
    if status is not None:
        params["status"] = status
    if q:
        params["q"] = _like_escaped(q)
    query = _product_page(after is not None, frozenset(params.keys() & _PRODUCT_FILTERS.keys()))
    products: dict[UUID, ProductOut] = {}
    rows = await reader.rows(query, params)
    for (
        pid,
        code,
        name,
        unit,
        brand,
        category,
        description,
        attributes,
        state,
        version,
        created,
        conv_unit,
        factor,
    ) in rows:
        product = products.get(pid)
        if product is None:
            product = products[pid] = ProductOut(
                id=pid,
                code=code,
                name=name,
                base_unit_id=unit,
                brand_id=brand,
                category_id=category,
                description=description,
                attributes=attributes,
                status=state,
                version=version,
                created_at=created,
                conversions=[],
            )
        if conv_unit is not None:
            product.conversions.append(ConversionOut(unit_id=conv_unit, factor=factor))
    return split_page(list(products.values()), limit)


# --- SKUs -----------------------------------------------------------------------------------


def sku_out(s: Sku, *, show_cost: bool) -> SkuOut:
    return SkuOut(
        id=s.id,
        product_id=s.product_id,
        code=s.code,
        name=s.name,
        barcode=s.barcode,
        attributes=s.attributes,
        list_price=s.list_price,
        cost_price=s.cost_price if show_cost else None,
        weight_g=s.weight_g,
        status=s.status,
        version=s.version,
        created_at=s.created_at,
    )


def may_see_cost(principal: Principal) -> bool:
    """Cost prices need ``catalog:cost`` and are never shown to dealers."""
    return principal.can("catalog:cost") and not principal.is_dealer


async def require_sku(session: AsyncSession, sku_id: UUID, *, field: str = "sku_id") -> Sku:
    """The SKU, or a 422 naming the field that referred to it."""
    sku = await session.get(Sku, (require_tenant(), sku_id))
    if sku is None:
        raise invalid(field, "no such SKU")
    return sku


async def _check_barcode(session: AsyncSession, barcode: Any, sku_id: UUID | None, field: str) -> None:
    if not isinstance(barcode, str):
        return
    other = await session.scalar(select(Sku.id).where(Sku.barcode == barcode))
    if other is not None and other != sku_id:
        raise Conflict(f"{field}: barcode {barcode} belongs to another SKU", code="duplicate_barcode")


def _sku_values(data: SkuIn | SkuPatch | SkuSpec) -> dict[str, Any]:
    return {
        "name": data.name,
        "barcode": data.barcode,
        "attributes": data.attributes,
        "list_price": _money(data.list_price),
        "cost_price": _money(data.cost_price),
        "weight_g": _money(data.weight_g, FOURTH),
        "status": data.status,
    }


async def _save_sku(session: AsyncSession, sku: Sku | None, values: dict[str, Any]) -> tuple[Sku, Outcome]:
    if sku is None:
        sku = Sku(**{k: v for k, v in values.items() if v is not UNSET})
        session.add(sku)
        await flush_unique(session, f"SKU {sku.code}")
        audit.record_change(session, "sku", sku.id, None, audit.snapshot(sku, SKU_FIELDS))
        return sku, "created"
    before = audit.snapshot(sku, SKU_FIELDS)
    if not assign(sku, values):
        return sku, "unchanged"
    sku.version += 1
    await flush_unique(session, f"SKU {sku.code}")
    audit.record_change(session, "sku", sku.id, before, audit.snapshot(sku, SKU_FIELDS))
    return sku, "updated"


async def _upsert_sku(
    session: AsyncSession, product: Product, spec: SkuSpec, prefix: str = ""
) -> tuple[Sku, Outcome]:
    sku = await _by_code(session, Sku, spec.code)
    if sku is not None and sku.product_id != product.id:
        raise invalid(f"{prefix}code", f"SKU {spec.code} belongs to another product")
    await _check_barcode(session, spec.barcode, sku.id if sku else None, f"{prefix}barcode")
    values = _sku_values(spec)
    if sku is None:
        values = {
            "attributes": {},
            "status": "active",
            **{k: v for k, v in values.items() if v is not UNSET},
            "code": spec.code,
            "product_id": product.id,
        }
    return await _save_sku(session, sku, values)


async def create_sku(session: AsyncSession, data: SkuIn, *, show_cost: bool) -> SkuOut:
    await _ref(session, Product, data.product_id, "product_id", "product")
    if await _by_code(session, Sku, data.code) is not None:
        raise Conflict(f"SKU {data.code} already exists", code="duplicate")
    await _check_barcode(session, data.barcode, None, "barcode")
    values = {**_sku_values(data), "code": data.code, "product_id": data.product_id}
    sku, _ = await _save_sku(session, None, values)
    return sku_out(sku, show_cost=show_cost)


async def update_sku(
    session: AsyncSession, sku_id: UUID, data: SkuPatch, expected_version: int, *, show_cost: bool
) -> SkuOut:
    sku = await _found(session, Sku, sku_id, "SKU")
    audit.check_version(sku, expected_version, "SKU")
    await _check_barcode(session, data.barcode, sku.id, "barcode")
    sku, _ = await _save_sku(session, sku, _sku_values(data))
    return sku_out(sku, show_cost=show_cost)


async def get_sku(session: AsyncSession, sku_id: UUID, *, show_cost: bool) -> SkuOut:
    return sku_out(await _found(session, Sku, sku_id, "SKU"), show_cost=show_cost)


async def sku_by_barcode(session: AsyncSession, barcode: str, *, show_cost: bool) -> SkuOut:
    sku = await session.scalar(select(Sku).where(Sku.barcode == barcode))
    if sku is None:
        raise NotFound("no SKU with this barcode")
    return sku_out(sku, show_cost=show_cost)


async def list_skus(
    session: AsyncSession,
    cursor: str | None,
    limit: int,
    *,
    show_cost: bool,
    product_id: UUID | None = None,
    barcode: str | None = None,
    status: str | None = None,
    q: str | None = None,
) -> tuple[list[SkuOut], str | None]:
    stmt = select(Sku)
    if product_id is not None:
        stmt = stmt.where(Sku.product_id == product_id)
    if barcode is not None:
        stmt = stmt.where(Sku.barcode == barcode)
    if status is not None:
        stmt = stmt.where(Sku.status == status)
    if q:
        stmt = stmt.where(or_(contains_ci(Sku.code, q), contains_ci(Sku.name, q)))
    items, nxt = await _page(session, stmt, Sku.id, cursor, limit)
    return [sku_out(s, show_cost=show_cost) for s in items], nxt


# --- price preview --------------------------------------------------------------------------


async def price_preview(
    session: AsyncSession,
    plugins: Any,
    sku_id: UUID,
    quantity: Decimal,
    customer_id: UUID | None,
) -> PriceOut:
    """Ask the tenant's pricing hooks (plugins first, the list price last) for a unit price; the
    caller has checked that it may see ``customer_id``."""
    from omnicloud.admin import service as admin
    from omnicloud.plugins import first_result

    try:
        check_decimal("quantity", quantity, places=4, positive=True)
    except ValueError as exc:
        raise invalid("quantity", str(exc).removeprefix("quantity ")) from None
    if quantity >= MAX_PREVIEW_QUANTITY:
        raise invalid("quantity", "is too large")
    sku = await _found(session, Sku, sku_id, "SKU")
    enabled = await admin.enabled_plugins(session)
    hooks = plugins.for_tenant(frozenset(enabled))
    result = await first_result(
        hooks.resolve_unit_price,
        session=session,
        tenant_id=require_tenant(),
        sku=sku_out(sku, show_cost=True),
        quantity=quantity,
        customer_id=customer_id,
        at=utcnow(),
        settings=dict(enabled),
    )
    if not isinstance(result, UnitPrice):
        raise Unprocessable("no price can be determined for this SKU", code="no_price")
    try:
        amount = round_money(result.unit_price * quantity)
    except InvalidOperation:
        raise Unprocessable("the amount is out of range", code="amount_out_of_range") from None
    return PriceOut(
        sku_id=sku.id,
        customer_id=customer_id,
        quantity=quantity,
        unit_price=result.unit_price,
        amount=amount,
        source=result.source,
        detail=result.detail,
    )


# --- product CSV ----------------------------------------------------------------------------

_PRODUCT_COLUMN = {"base_unit_code": "unit_code", "code": "product_code", "name": "product_name"}
_SKU_COLUMN = {"code": "sku_code", "name": "sku_name"}
_RANK: tuple[Outcome, ...] = ("unchanged", "updated", "created")


def row_error(line: int, problem: Problem, columns: dict[str, str]) -> RowError:
    """A service's problem as a CSV row error; ``columns`` maps spec fields to CSV columns."""
    field = problem.errors[0]["field"] if problem.errors else ""
    message = problem.errors[0]["message"] if problem.errors else problem.detail
    if not problem.errors and ": " in problem.detail:
        field, message = problem.detail.split(": ", 1)
    return RowError(line, columns.get(field, field), message)


def _product_spec(code: str, rows: list[tuple[int, ProductCsvRow]], errors: list[RowError]) -> ProductSpec:
    first = rows[0][1]
    for line, row in rows[1:]:
        for column in ("product_name", "category_code", "brand_code", "unit_code"):
            value = getattr(row, column)
            if value is not None and value != getattr(first, column):
                errors.append(RowError(line, column, f"differs from line {rows[0][0]} for product {code}"))

    def code_or_unset(value: str | None) -> str | UnsetType:
        return UNSET if value is None else value

    return ProductSpec(
        code=code,
        name=first.product_name,
        base_unit_code=code_or_unset(first.unit_code),
        brand_code=code_or_unset(first.brand_code),
        category_code=code_or_unset(first.category_code),
    )


def _sku_spec(line: int, row: ProductCsvRow, errors: list[RowError]) -> SkuSpec | None:
    for column, places in (("list_price", 2), ("cost_price", 2), ("weight_g", 4)):
        try:
            check_decimal(column, getattr(row, column), places=places)
        except ValueError as exc:
            errors.append(RowError(line, column, str(exc)))
            return None
    if row.sku_code is None:
        for column in ("sku_name", "barcode", "list_price", "cost_price", "weight_g"):
            if getattr(row, column) is not None:
                errors.append(RowError(line, "sku_code", f"needed when {column} is filled"))
                break
        return None
    if row.sku_name is None:
        errors.append(RowError(line, "sku_name", "required with sku_code"))
        return None

    def keep(value: Any) -> Any:
        return UNSET if value is None else value

    return SkuSpec(
        code=row.sku_code,
        name=row.sku_name,
        barcode=keep(row.barcode),
        list_price=keep(row.list_price),
        cost_price=keep(row.cost_price),
        weight_g=keep(row.weight_g),
    )


async def import_products_csv(session: AsyncSession, text: str) -> ImportResult:
    """Upsert products and SKUs from CSV, one row per SKU, all or nothing."""
    rows = parse_rows(text, ProductCsvRow, required_columns=("product_code", "product_name"))
    groups: dict[str, list[tuple[int, ProductCsvRow]]] = {}
    for line, row in rows:
        groups.setdefault(row.product_code, []).append((line, row))
    errors: list[RowError] = []
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    seen_skus: dict[str, int] = {}
    for code, group in groups.items():
        spec = _product_spec(code, group, errors)
        try:
            product, outcome = await _upsert_product(session, spec)
        except Conflict:
            raise  # a flush failed (a concurrent writer): the session cannot go on
        except Problem as problem:
            errors.append(row_error(group[0][0], problem, _PRODUCT_COLUMN))
            continue
        pending = outcome  # the product's own change is counted on its first good row
        for line, row in group:
            sku_spec = _sku_spec(line, row, errors)
            row_outcome: Outcome = "unchanged"
            if sku_spec is not None:
                if sku_spec.code in seen_skus:
                    errors.append(RowError(line, "sku_code", f"already on line {seen_skus[sku_spec.code]}"))
                    continue
                seen_skus[sku_spec.code] = line
                try:
                    _, row_outcome = await _upsert_sku(session, product, sku_spec)
                except Problem as problem:
                    if problem.status == 409 and problem.code != "duplicate_barcode":
                        raise  # a flush failed: the session cannot go on
                    errors.append(row_error(line, problem, _SKU_COLUMN))
                    continue
            elif row.sku_code is not None:
                continue
            counts[max(row_outcome, pending, key=_RANK.index)] += 1
            pending = "unchanged"
    raise_if_errors(errors)
    return ImportResult(**counts)


async def export_products_csv(session: AsyncSession, *, show_cost: bool) -> str:
    """All products with their SKUs, one row per SKU, in the import's columns."""
    stmt = (
        select(
            Product.code,
            Product.name,
            Category.code,
            Brand.code,
            Unit.code,
            Sku.code,
            Sku.name,
            Sku.barcode,
            Sku.list_price,
            Sku.cost_price,
            Sku.weight_g,
        )
        .join(Unit, Unit.id == Product.base_unit_id)
        .outerjoin(Category, Category.id == Product.category_id)
        .outerjoin(Brand, Brand.id == Product.brand_id)
        .outerjoin(Sku, Sku.product_id == Product.id)
        .order_by(Product.id, Sku.id)
    )
    rows = (await session.execute(stmt)).all()
    cost = PRODUCT_CSV_COLUMNS.index("cost_price")
    out = []
    for row in rows:
        values = list(row)
        if not show_cost:
            values[cost] = None
        out.append(values)
    return to_csv(PRODUCT_CSV_COLUMNS, out)


async def sku_ids_by_code(session: AsyncSession, codes: list[str]) -> dict[str, UUID]:
    """SKU ids keyed by code, for those of ``codes`` that exist (imports resolve codes in bulk)."""
    wanted = sorted(set(codes))
    found: dict[str, UUID] = {}
    for i in range(0, len(wanted), 1000):
        rows = await session.execute(select(Sku.code, Sku.id).where(Sku.code.in_(wanted[i : i + 1000])))
        found.update({code: sku_id for code, sku_id in rows})
    return found


async def sku_codes_by_id(session: AsyncSession, ids: list[UUID]) -> dict[UUID, str]:
    """SKU codes keyed by id, for those of ``ids`` that exist (exports print codes)."""
    wanted = sorted(set(ids))
    found: dict[UUID, str] = {}
    for i in range(0, len(wanted), 1000):
        rows = await session.execute(select(Sku.id, Sku.code).where(Sku.id.in_(wanted[i : i + 1000])))
        found.update({sku_id: code for sku_id, code in rows})
    return found


# --- facts for pricing ----------------------------------------------------------------------


class SkuFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What pricing needs to know about a SKU; ``factors`` maps a unit id to base units per unit
    (the base unit itself is 1). ``categories`` is the product's category, then its ancestors."""

    sku_id: UUID
    code: str
    status: str
    product_id: UUID
    brand_id: UUID | None
    categories: tuple[UUID, ...]
    base_unit_id: UUID
    factors: dict[UUID, Decimal]


async def sku_facts(session: AsyncSession, sku_ids: Sequence[UUID]) -> dict[UUID, SkuFacts]:
    """Facts for the given SKUs in two statements whatever their number: SKUs with their products
    and unit conversions, then the category tree."""
    if not sku_ids:
        return {}
    stmt = (
        select(
            Sku.id,
            Sku.code,
            Sku.status,
            Product.id,
            Product.brand_id,
            Product.category_id,
            Product.base_unit_id,
            UnitConversion.unit_id,
            UnitConversion.factor,
        )
        .join(Product, Product.id == Sku.product_id)
        .outerjoin(UnitConversion, UnitConversion.product_id == Product.id)
        .where(Sku.id.in_(set(sku_ids)))
    )
    rows = (await session.execute(stmt)).all()
    parents: dict[UUID, UUID | None] = {}
    if any(row[5] is not None for row in rows):
        parents = dict((await session.execute(select(Category.id, Category.parent_id))).all())
    facts: dict[UUID, SkuFacts] = {}
    for sku_id, code, status, product_id, brand_id, category_id, base_unit_id, unit_id, factor in rows:
        known = facts.get(sku_id)
        if known is None:
            known = facts[sku_id] = SkuFacts(
                sku_id=sku_id,
                code=code,
                status=status,
                product_id=product_id,
                brand_id=brand_id,
                categories=_lineage(parents, category_id),
                base_unit_id=base_unit_id,
                factors={base_unit_id: Decimal(1)},
            )
        if unit_id is not None:
            known.factors[unit_id] = factor
    return facts


def _lineage(parents: dict[UUID, UUID | None], node: UUID | None) -> tuple[UUID, ...]:
    out: list[UUID] = []
    while node is not None and node not in out:
        out.append(node)
        node = parents.get(node)
    return tuple(out)


async def skus_for_pricing(session: AsyncSession, sku_ids: Sequence[UUID]) -> dict[UUID, SkuOut]:
    """The SKUs as pricing hooks receive them (with cost: hooks run inside the service), in one
    statement."""
    rows = await session.scalars(select(Sku).where(Sku.id.in_(set(sku_ids))))
    return {s.id: sku_out(s, show_cost=True) for s in rows}
