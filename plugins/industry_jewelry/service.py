"""Jewelry use cases: purities, the board (金价牌) and its history, gold pricing of SKUs,
old-gold trade-in quotes and manifest sections. Services flush, never commit."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from industry_jewelry import pricing
from industry_jewelry.models import JewelryBoardPrice, JewelryPurity
from industry_jewelry.schemas import (
    BoardPriceIn,
    BoardPriceOut,
    BoardPriceSet,
    JewelrySettings,
    ManifestSection,
    PurityIn,
    PurityOut,
    TradeInIn,
    TradeInQuote,
)
from omnicloud.core import audit, events
from omnicloud.core.db import utcnow
from omnicloud.core.errors import Conflict, NotFound, Unprocessable, invalid
from omnicloud.core.paging import paged_query, split_page
from omnicloud.core.tenancy import require_tenant

PLUGIN = "industry_jewelry"

#: Purities every tenant starts with (set up when the plugin is enabled).
DEFAULT_PURITIES: tuple[tuple[str, str, str], ...] = (
    ("gold", "Au99.99", "万足金 Au99.99"),
    ("gold", "Au999", "千足金 Au999"),
    ("gold", "Au990", "足金 Au990"),
    ("gold", "Au750", "18K金 Au750"),
    ("platinum", "Pt990", "足铂 Pt990"),
    ("platinum", "Pt950", "铂金 Pt950"),
    ("silver", "Ag999", "足银 Ag999"),
    ("silver", "Ag925", "925银 Ag925"),
)


# --- settings --------------------------------------------------------------------------------


def settings_from(raw: dict[str, Any] | None) -> JewelrySettings:
    return msgspec.convert(raw or {}, JewelrySettings)


async def tenant_settings(session: AsyncSession) -> JewelrySettings:
    from omnicloud.admin.service import enabled_plugins

    return settings_from((await enabled_plugins(session)).get(PLUGIN))


# --- purities --------------------------------------------------------------------------------


def purity_out(p: JewelryPurity) -> PurityOut:
    return PurityOut(purity=p.purity, metal=p.metal, name=p.name, active=p.active)


async def seed_purities(session: AsyncSession) -> int:
    """Add the default purities the tenant lacks; existing ones are left as the tenant set them."""
    existing = set((await session.scalars(select(JewelryPurity.purity))).all())
    added = 0
    for metal, code, name in DEFAULT_PURITIES:
        if code not in existing:
            session.add(JewelryPurity(metal=metal, purity=code, name=name, active=True))
            added += 1
    await session.flush()
    return added


async def list_purities(session: AsyncSession) -> list[PurityOut]:
    rows = await session.scalars(select(JewelryPurity).order_by(JewelryPurity.metal, JewelryPurity.purity))
    return [purity_out(p) for p in rows]


async def _purity(session: AsyncSession, code: str) -> JewelryPurity | None:
    return await session.scalar(select(JewelryPurity).where(JewelryPurity.purity == code))


async def put_purity(session: AsyncSession, code: str, data: PurityIn) -> tuple[PurityOut, bool]:
    """Create or change a purity; returns it and whether anything changed. Its metal is fixed
    once set, because board prices carry it."""
    row = await _purity(session, code)
    if row is None:
        row = JewelryPurity(metal=data.metal, purity=code, name=data.name, active=data.active)
        session.add(row)
        await session.flush()
        audit.record(session, "create", "jewelry_purity", code, after=msgspec.to_builtins(purity_out(row)))
        return purity_out(row), True
    if row.metal != data.metal:
        raise Conflict(
            f"purity {code} is {row.metal}; its metal cannot change", code="jewelry_purity_metal_fixed"
        )
    before = purity_out(row)
    if (row.name, row.active) == (data.name, data.active):
        return before, False
    row.name, row.active = data.name, data.active
    await session.flush()
    audit.record(
        session,
        "update",
        "jewelry_purity",
        code,
        before=msgspec.to_builtins(before),
        after=msgspec.to_builtins(purity_out(row)),
    )
    return purity_out(row), True


# --- the board -------------------------------------------------------------------------------


def board_out(r: JewelryBoardPrice) -> BoardPriceOut:
    return BoardPriceOut(
        id=r.id,
        metal=r.metal,
        purity=r.purity,
        price=r.price,
        exchange_price=r.exchange_price,
        brand_premium=r.brand_premium,
        effective_at=r.effective_at,
        set_by=r.set_by,
    )


def _amount(value: Decimal | None, field: str, *, positive: bool) -> Decimal | None:
    if value is None:
        return None
    if not value.is_finite() or value >= pricing.MAX_AMOUNT:
        raise invalid(field, "must be a finite amount below 1e12")
    if value < 0 or (positive and value == 0):
        raise invalid(field, "must be > 0" if positive else "must be >= 0")
    cents = value.quantize(Decimal("0.01"))
    if value != cents:
        raise invalid(field, "at most 2 decimal places")
    return cents


def board_amounts(data: BoardPriceSet, prefix: str = "") -> tuple[Decimal, Decimal | None, Decimal | None]:
    """``(price, exchange_price, brand_premium)``: board = exchange + premium when both are given."""
    price = _amount(data.price, f"{prefix}price", positive=True)
    exchange = _amount(data.exchange_price, f"{prefix}exchange_price", positive=True)
    premium = _amount(data.brand_premium, f"{prefix}brand_premium", positive=False)
    if (exchange is None) != (premium is None):
        missing = "brand_premium" if premium is None else "exchange_price"
        raise invalid(f"{prefix}{missing}", "exchange_price and brand_premium go together")
    if exchange is not None and premium is not None:
        total = pricing.board_price(exchange, premium)
        if price is not None and price != total:
            raise invalid(f"{prefix}price", f"must equal exchange_price + brand_premium ({total})")
        price = total
    if price is None:
        raise invalid(f"{prefix}price", "send price, or exchange_price and brand_premium")
    return price, exchange, premium


async def current_row(
    session: AsyncSession, metal: str, purity: str, at: datetime | None = None
) -> JewelryBoardPrice | None:
    """The board row in force at ``at`` (default: now)."""
    stmt = (
        select(JewelryBoardPrice)
        .where(
            JewelryBoardPrice.tenant_id == require_tenant(),
            JewelryBoardPrice.purity == purity,
            JewelryBoardPrice.metal == metal,
            JewelryBoardPrice.effective_at <= (at or utcnow()),
        )
        .order_by(JewelryBoardPrice.effective_at.desc(), JewelryBoardPrice.id.desc())
        .limit(1)
    )
    return await session.scalar(stmt)


async def current_board(session: AsyncSession) -> list[BoardPriceOut]:
    """The latest price of every purity that has one."""
    b = JewelryBoardPrice
    ranked = (
        select(
            b.id,
            func.row_number()
            .over(partition_by=(b.metal, b.purity), order_by=(b.effective_at.desc(), b.id.desc()))
            .label("rank"),
        )
        .where(b.tenant_id == require_tenant(), b.effective_at <= utcnow())
        .subquery()
    )
    stmt = (
        select(b)
        .join(ranked, ranked.c.id == b.id)
        .where(b.tenant_id == require_tenant(), ranked.c.rank == 1)
        .order_by(b.metal, b.purity)
    )
    return [board_out(r) for r in await session.scalars(stmt)]


async def get_current(session: AsyncSession, metal: str, purity: str) -> BoardPriceOut:
    row = await current_row(session, metal, purity)
    if row is None:
        raise NotFound(f"no board price for {metal} {purity}", code="jewelry_board_price_missing")
    return board_out(row)


async def _require_purity(session: AsyncSession, metal: str, code: str, prefix: str = "") -> JewelryPurity:
    row = await _purity(session, code)
    if row is None or not row.active:
        raise invalid(f"{prefix}purity", f"no active purity {code!r}")
    if row.metal != metal:
        raise invalid(f"{prefix}metal", f"purity {code} is {row.metal}, not {metal}")
    return row


def _same_price(
    current: JewelryBoardPrice, price: Decimal, exchange: Decimal | None, premium: Decimal | None
) -> bool:
    """Whether the board already says what was asked (a bare price leaves the split alone)."""
    if current.price != price:
        return False
    return exchange is None or (current.exchange_price, current.brand_premium) == (exchange, premium)


async def set_price(
    session: AsyncSession,
    data: BoardPriceIn,
    set_by: str,
    *,
    only_if_changed: bool = False,
    prefix: str = "",
) -> tuple[BoardPriceOut, bool]:
    """Put a new price on the board (a new history row). With ``only_if_changed`` a current
    price that already says the same is returned as is. Returns the row in force and whether
    one was added."""
    price, exchange, premium = board_amounts(data, prefix)
    await _require_purity(session, data.metal, data.purity, prefix)
    current = await current_row(session, data.metal, data.purity)
    if only_if_changed and current is not None and _same_price(current, price, exchange, premium):
        return board_out(current), False
    row = JewelryBoardPrice(
        metal=data.metal,
        purity=data.purity,
        price=price,
        exchange_price=exchange,
        brand_premium=premium,
        effective_at=utcnow(),
        set_by=set_by[:80],
    )
    session.add(row)
    await session.flush()
    out = board_out(row)
    audit.record(
        session,
        "set",
        "jewelry_board_price",
        row.id,
        before=msgspec.to_builtins(board_out(current)) if current else None,
        after=msgspec.to_builtins(out),
    )
    events.emit(session, "jewelry.board_price.set", out)
    return out, True


async def require_board(session: AsyncSession, metal: str, purity: str) -> None:
    """404 unless ``/board-prices/{metal}/{purity}`` names a purity of this tenant."""
    row = await _purity(session, purity)
    if row is None or row.metal != metal:
        raise NotFound(f"no purity {metal} {purity}", code="jewelry_purity_missing")


async def history(
    session: AsyncSession, metal: str, purity: str, cursor: str | None, limit: int
) -> tuple[list[BoardPriceOut], str | None]:
    await require_board(session, metal, purity)
    stmt = select(JewelryBoardPrice).where(
        JewelryBoardPrice.tenant_id == require_tenant(),
        JewelryBoardPrice.purity == purity,
        JewelryBoardPrice.metal == metal,
    )
    rows = (await session.scalars(paged_query(stmt, JewelryBoardPrice.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [board_out(r) for r in items], nxt


# --- trade-in ----------------------------------------------------------------------------------


async def trade_in_quote(session: AsyncSession, data: TradeInIn) -> TradeInQuote:
    settings = await tenant_settings(session)
    if settings.accepted_purities and data.purity not in settings.accepted_purities:
        raise invalid("purity", f"{data.purity} is not accepted for trade-in")
    await _require_purity(session, data.metal, data.purity)
    row = await current_row(session, data.metal, data.purity)
    if row is None:
        raise invalid(
            "purity", f"no board price for {data.metal} {data.purity}", code="jewelry_board_price_missing"
        )
    recycle, basis = (
        (row.exchange_price, "exchange_price")
        if row.exchange_price is not None
        else (row.price, "board_price")
    )
    try:
        value = pricing.trade_in_value(data.weight_g, data.loss_pct, recycle)
    except pricing.PricingError as exc:
        raise invalid(exc.field or "weight_g", exc.message, code=exc.code) from None
    return TradeInQuote(
        metal=data.metal,
        purity=data.purity,
        weight_g=data.weight_g,
        loss_pct=data.loss_pct,
        recycle_price=recycle,
        recycle_basis=basis,
        board_effective_at=row.effective_at,
        value=value,
        currency=settings.currency,
    )


# --- pricing SKUs (the resolve_unit_price hook) -----------------------------------------------


async def resolve_unit_price(
    session: AsyncSession, sku: Any, at: datetime, raw_settings: dict[str, Any] | None
) -> Any:
    """Price a jewelry SKU from the board in force at ``at``; the price stays locked for the
    tenant's ``lock_minutes`` (``detail["locked_until"]``)."""
    from omnicloud.catalog.schemas import UnitPrice

    settings = settings_from(raw_settings)
    try:
        item = pricing.item_from_attributes(
            sku.attributes,
            weight_g=getattr(sku, "weight_g", None),
            list_price=getattr(sku, "list_price", None),
            default_labour_per_gram=settings.default_labour_per_gram,
        )
        row = await current_row(session, item.metal, item.purity, at) if item.needs_board else None
        priced = pricing.quote(item, row.price if row else None)
    except pricing.PricingError as exc:
        raise Unprocessable(f"SKU {sku.code}: {exc.message}", code=exc.code) from None
    detail: dict[str, Any] = {
        "metal": item.metal,
        "purity": item.purity,
        "method": item.method,
        "currency": settings.currency,
        "locked_until": (at + timedelta(minutes=settings.lock_minutes)).isoformat(),
    }
    if row is None:
        detail["tag_price"] = str(priced.unit_price)
        return UnitPrice(unit_price=priced.unit_price, source="industry_jewelry.tag_price", detail=detail)
    detail |= {
        "board_price": str(row.price),
        "board_effective_at": row.effective_at.isoformat(),
        "weight_g": str(item.weight_g),
        "metal_value": str(priced.metal_value),
        "labour": str(priced.labour),
    }
    if item.method == pricing.BY_GRAM_LABOUR_PER_GRAM:
        detail["labour_per_gram"] = str(item.labour_per_gram)
    return UnitPrice(unit_price=priced.unit_price, source="industry_jewelry.board", detail=detail)


# --- manifests -------------------------------------------------------------------------------

MANIFEST_PREFIX = f"x.{PLUGIN}"


def _manifest_field(exc: msgspec.ValidationError) -> tuple[str, str]:
    text = str(exc)
    if " - at `$" in text:
        message, _, path = text.rpartition(" - at `$")
        return MANIFEST_PREFIX + path.rstrip("`"), message
    return MANIFEST_PREFIX, text


async def apply_manifest(session: AsyncSession, section: dict[str, Any]) -> bool:
    """Apply ``[x.industry_jewelry]`` idempotently; returns whether anything changed."""
    try:
        data = msgspec.convert(section, ManifestSection)
    except msgspec.ValidationError as exc:
        field, message = _manifest_field(exc)
        raise invalid(field, message) from None
    changed = False
    for i, p in enumerate(data.purities):
        try:
            _, did = await put_purity(
                session, p.purity, PurityIn(metal=p.metal, name=p.name, active=p.active)
            )
        except Conflict as exc:
            raise invalid(f"{MANIFEST_PREFIX}.purities[{i}].metal", exc.detail) from None
        changed |= did
    for i, entry in enumerate(data.board):
        _, did = await set_price(
            session, entry, "manifest", only_if_changed=True, prefix=f"{MANIFEST_PREFIX}.board[{i}]."
        )
        changed |= did
    return changed
