"""Promotion use cases (促销): promotions, coupon templates, coupon codes, and what the quote
service reads from them.

A promotion is saved only when the engine accepts it: its ``rule`` is decoded into the engine
Struct of its type and checked by ``validate_promotion``, so a bad configuration is a 422 naming
the field at save time and never a 500 at quote time. Every configuration write records an audit
entry with its outbox event and bumps the ``promotions`` revision in the same transaction; the
quote service prices against :func:`promotion_book`, compiled once per revision.

Budgets (``used_amount``/``used_count``) and per-customer limits are consumed when an order is
submitted (:func:`consume`) and given back when it is cancelled or rejected before shipment
(:func:`release`): one conditional UPDATE per promotion moves its counters and locks its row, so
concurrent orders can never exceed a budget or a customer's limit. Quotes leave out promotions
whose budget or limit is used up and say so. Coupon codes are random, unguessable strings; issuing is
bounded by the template's ``total_quantity`` with one conditional UPDATE, so concurrent issues
can never issue more codes than the template allows.
"""

from __future__ import annotations

import re
import secrets
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

import msgspec
from msgspec import UNSET
from sqlalchemy import and_, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from omnicloud.catalog import service as catalog
from omnicloud.catalog.schemas import check_decimal
from omnicloud.channels import service as channels
from omnicloud.core import audit, revisions
from omnicloud.core.db import utcnow
from omnicloud.core.errors import Conflict, NotFound, Unprocessable, field_error, invalid
from omnicloud.core.ids import new_id
from omnicloud.core.money import CENT
from omnicloud.core.paging import paged_query, split_page
from omnicloud.core.tenancy import require_tenant
from omnicloud.policies import promotions
from omnicloud.policies.promos.models import CouponCode, CouponTemplate, Promotion, PromotionUse
from omnicloud.policies.promos.schemas import (
    MAX_ISSUE,
    AudienceIn,
    AudienceOut,
    CodeState,
    CouponCodeOut,
    CouponIssue,
    CouponIssueResult,
    CouponTemplateIn,
    CouponTemplateOut,
    CouponTemplatePatch,
    Products,
    ProductsOut,
    PromotionIn,
    PromotionOut,
    PromotionPatch,
)

TOPIC = "promotions"
PROMOTION_FIELDS = (
    "code",
    "name",
    "type",
    "rule",
    "products",
    "audience",
    "priority",
    "mutex_group",
    "mutex_strategy",
    "valid_from",
    "valid_to",
    "budget_amount",
    "budget_count",
    "per_customer_limit",
    "status",
    "version",
)
TEMPLATE_FIELDS = (
    "code",
    "name",
    "threshold",
    "amount",
    "products",
    "valid_from",
    "valid_to",
    "total_quantity",
    "per_customer_limit",
    "status",
    "version",
)
CODE_FIELDS = ("template_id", "code", "customer_id", "state", "redeemed_at", "version")

# 31 symbols without 0/O, 1/I/L: read aloud or typed from a receipt without ambiguity.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 16  # ≈ 79 bits: guessing a code is hopeless
CODE_GROUP = 4
MAX_COUPONS_PER_QUOTE = 50
RATIO_PLACES = 4
TRANSITIONS: dict[str, frozenset[str]] = {
    "issued": frozenset({"reserved", "void"}),
    "reserved": frozenset({"redeemed", "issued"}),
    "redeemed": frozenset(),
    "void": frozenset(),
}
"""A coupon code's lifecycle: reserved by a submitted order, then redeemed or released back to
issued; void withdraws an unused code. Redeemed and void are final."""
HELD_STATES = ("reserved", "redeemed")
ZERO = Decimal("0.00")


# --- shared --------------------------------------------------------------------------------


def _ids(values: Iterable[UUID]) -> list[str]:
    return sorted({str(v) for v in values})


def _products_json(products: Products) -> dict[str, list[str]]:
    return {
        "sku_ids": _ids(products.sku_ids),
        "category_ids": _ids(products.category_ids),
        "brand_ids": _ids(products.brand_ids),
    }


def _audience_json(audience: AudienceIn) -> dict[str, list[str]]:
    return {
        "customer_ids": _ids(audience.customer_ids),
        "customer_classes": sorted(set(audience.customer_classes)),
        "levels": sorted(set(audience.levels)),
        "region_ids": _ids(audience.region_ids),
        "channels": sorted(set(audience.channels)),
        "store_ids": _ids(audience.store_ids),
    }


def _products_out(products: dict[str, Any]) -> ProductsOut:
    return ProductsOut(
        sku_ids=[UUID(x) for x in products.get("sku_ids", [])],
        category_ids=[UUID(x) for x in products.get("category_ids", [])],
        brand_ids=[UUID(x) for x in products.get("brand_ids", [])],
    )


def _scope(products: dict[str, Any]) -> promotions.Scope:
    return msgspec.convert(products, promotions.Scope)


async def _check_products(session: AsyncSession, products: Products) -> None:
    """Every SKU, category and brand a scope names exists in the tenant (422 naming it)."""
    found = await catalog.sku_codes_by_id(session, list(products.sku_ids))
    for i, sku_id in enumerate(products.sku_ids):
        if sku_id not in found:
            raise invalid(f"products.sku_ids[{i}]", "no such SKU")
    for i, category_id in enumerate(products.category_ids):
        try:
            await catalog.get_category(session, category_id)
        except NotFound:
            raise invalid(f"products.category_ids[{i}]", "no such category") from None
    for i, brand_id in enumerate(products.brand_ids):
        try:
            await catalog.get_brand(session, brand_id)
        except NotFound:
            raise invalid(f"products.brand_ids[{i}]", "no such brand") from None


async def _check_audience(session: AsyncSession, audience: AudienceIn) -> None:
    """Customers and regions an audience names exist in the tenant. Store ids are not checked:
    stores (POS) are not a table yet."""
    for i, customer_id in enumerate(audience.customer_ids):
        await channels.require_customer(session, customer_id, field=f"audience.customer_ids[{i}]")
    for i, region_id in enumerate(audience.region_ids):
        await catalog.require_region(session, region_id, field=f"audience.region_ids[{i}]")


def _money(field: str, value: Any, *, positive: bool = False) -> Any:
    """An amount of money to the cent (not negative, or > 0); other values pass through."""
    if not isinstance(value, Decimal):
        return value
    try:
        check_decimal(field, value, places=2, positive=positive)
    except ValueError as error:
        raise invalid(field, str(error).removeprefix(f"{field} ")) from None
    return value.quantize(CENT)


def _instant(field: str, value: Any) -> Any:
    """A timestamp in UTC (one at the edge of the calendar may not survive the shift)."""
    if not isinstance(value, datetime):
        return value
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise invalid(field, "out of range") from None


def _check_validity(valid_from: datetime | None, valid_to: datetime | None) -> None:
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        raise invalid("valid_to", "must be after valid_from")


def _aware(field: str, value: datetime) -> datetime:
    """A query timestamp in UTC; a naive one is ambiguous, so it is refused."""
    if value.tzinfo is None:
        raise invalid(field, "give a timezone, e.g. 2031-06-01T00:00:00Z")
    return _instant(field, value)  # type: ignore[no-any-return]


async def _locked(session: AsyncSession, model: Any, obj_id: UUID, what: str) -> Any:
    """The row, locked for this transaction (PostgreSQL), so an If-Match check cannot race."""
    obj = await session.scalar(
        select(model).where(model.id == obj_id).with_for_update().execution_options(populate_existing=True)
    )
    if obj is None:
        raise NotFound(f"no such {what}")
    return obj


# --- rules ---------------------------------------------------------------------------------

_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_NAMED = re.compile(r"(?:missing required|contains unknown) field `(?P<name>[^`]+)`")


def _decode_error(prefix: str, error: msgspec.ValidationError) -> Unprocessable:
    """msgspec's ``Expected `int`, got `str` - at `$.tiers[0].amount``` as a 422 naming
    ``rule.tiers[0].amount``."""
    match = _AT.match(str(error))
    assert match is not None
    message, path = match["message"], match["path"] or ""
    named = _NAMED.search(message)
    if named:
        path += f".{named['name']}"
    return invalid(prefix + path, message)


def _sku_ref(value: str, field: str) -> str:
    try:
        return str(UUID(value))
    except ValueError:
        raise invalid(field, "not a SKU id") from None


def _canonical_skus(promotion: promotions.Promotion) -> promotions.Promotion:
    """SKU ids inside a rule in canonical UUID form, as quote lines carry them."""
    if isinstance(promotion, promotions.Bundle):
        components = [
            msgspec.structs.replace(c, sku_id=_sku_ref(c.sku_id, f"rule.components[{i}].sku_id"))
            for i, c in enumerate(promotion.components)
        ]
        return msgspec.structs.replace(promotion, components=components)
    if isinstance(promotion, promotions.BuyXGetY) and promotion.gift_sku_id is not None:
        gift = _sku_ref(promotion.gift_sku_id, "rule.gift_sku_id")
        return msgspec.structs.replace(promotion, gift_sku_id=gift)
    return promotion


def _rule_skus(promotion: promotions.Promotion) -> list[tuple[str, str]]:
    if isinstance(promotion, promotions.Bundle):
        return [(f"rule.components[{i}].sku_id", c.sku_id) for i, c in enumerate(promotion.components)]
    if isinstance(promotion, promotions.BuyXGetY) and promotion.gift_sku_id is not None:
        return [("rule.gift_sku_id", promotion.gift_sku_id)]
    return []


def engine_promotion(
    promotion_id: str,
    kind: str,
    rule: dict[str, Any],
    *,
    name: str = "",
    products: dict[str, Any] | None = None,
    priority: int = 0,
    mutex_group: str | None = None,
    mutex_strategy: str = "priority_first",
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
) -> promotions.Promotion:
    """The engine Struct of a promotion, validated; any problem is a 422 naming the field
    (``rule.tiers[1].threshold``, ``valid_to``)."""
    cls = promotions.PROMOTION_TYPES[kind]
    own = promotions.rule_fields(cls)
    for key in rule:
        if key not in own:
            hint = " (it is set at the top level)" if key in promotions.COMMON_FIELDS else ""
            raise invalid(f"rule.{key}", f"not a field of a {kind} rule{hint}; expected {', '.join(own)}")
    try:
        decoded = msgspec.convert({**rule, "promotion_id": promotion_id}, cls)
    except msgspec.ValidationError as error:
        raise _decode_error("rule", error) from None
    promotion = msgspec.structs.replace(
        _canonical_skus(decoded),
        name=name,
        scope=_scope(products or {}),
        priority=priority,
        mutex_group=mutex_group,
        mutex_strategy=mutex_strategy,  # type: ignore[arg-type]
        valid_from=valid_from,
        valid_to=valid_to,
    )
    try:
        promotions.validate_promotion(promotion)
    except promotions.PromotionError as error:
        field = error.field if error.field in promotions.COMMON_FIELDS else f"rule.{error.field}"
        raise invalid(field, error.message) from None
    for path, number in promotions.rule_numbers(promotion):
        places = RATIO_PLACES if path.endswith("off_ratio") else 2
        exponent = number.normalize().as_tuple().exponent if isinstance(number, Decimal) else 0
        if isinstance(exponent, int) and -exponent > places:
            raise invalid(f"rule.{path}", f"has more than {places} decimal places")
    return msgspec.structs.replace(
        promotion, **{f: _tidy(f, getattr(promotion, f)) for f in promotions.rule_fields(type(promotion))}
    )


def _tidy(name: str, value: Any) -> Any:
    """Rule numbers as people write them: money to the cent (``500.00``), ratios plain (``0.5``)."""
    if isinstance(value, Decimal):
        return value.normalize() if name.endswith("off_ratio") else value.quantize(CENT)
    if isinstance(value, list):
        return [_tidy(name, v) for v in value]
    if isinstance(value, msgspec.Struct):
        return msgspec.structs.replace(
            value, **{f: _tidy(f, getattr(value, f)) for f in value.__struct_fields__}
        )
    return value


def _stored_rule(promotion: promotions.Promotion) -> dict[str, Any]:
    fields = promotions.rule_fields(type(promotion))
    return {f: msgspec.to_builtins(getattr(promotion, f)) for f in fields}


async def _check_rule_refs(session: AsyncSession, promotion: promotions.Promotion) -> None:
    refs = _rule_skus(promotion)
    found = await catalog.sku_codes_by_id(session, [UUID(sku_id) for _, sku_id in refs])
    for field, sku_id in refs:
        if UUID(sku_id) not in found:
            raise invalid(field, "no such SKU")


# --- promotions ----------------------------------------------------------------------------


def promotion_out(p: Promotion) -> PromotionOut:
    audience = p.audience or {}
    return PromotionOut(
        id=p.id,
        code=p.code,
        name=p.name,
        type=p.type,
        rule=p.rule,
        products=_products_out(p.products or {}),
        audience=AudienceOut(
            customer_ids=[UUID(x) for x in audience.get("customer_ids", [])],
            customer_classes=list(audience.get("customer_classes", [])),
            levels=list(audience.get("levels", [])),
            region_ids=[UUID(x) for x in audience.get("region_ids", [])],
            channels=list(audience.get("channels", [])),
            store_ids=[UUID(x) for x in audience.get("store_ids", [])],
        ),
        priority=p.priority,
        mutex_group=p.mutex_group,
        mutex_strategy=p.mutex_strategy,
        valid_from=p.valid_from,
        valid_to=p.valid_to,
        budget_amount=p.budget_amount,
        budget_count=p.budget_count,
        used_amount=p.used_amount,
        used_count=p.used_count,
        remaining_amount=None if p.budget_amount is None else max(p.budget_amount - p.used_amount, ZERO),
        remaining_count=None if p.budget_count is None else max(p.budget_count - p.used_count, 0),
        per_customer_limit=p.per_customer_limit,
        status=p.status,
        version=p.version,
        created_at=p.created_at,
    )


async def _promotion_values(
    session: AsyncSession,
    promotion_id: UUID,
    values: dict[str, Any],
    products: Products | None,
    audience: AudienceIn | None,
) -> dict[str, Any]:
    """Check a promotion's complete values and return them ready to store. ``products`` and
    ``audience`` are the bodies to check (None when unchanged)."""
    values.update(
        valid_from=_instant("valid_from", values["valid_from"]),
        valid_to=_instant("valid_to", values["valid_to"]),
        budget_amount=_money("budget_amount", values["budget_amount"]),
    )
    _check_validity(values["valid_from"], values["valid_to"])
    if products is not None:
        await _check_products(session, products)
        values["products"] = _products_json(products)
    if audience is not None:
        await _check_audience(session, audience)
        values["audience"] = _audience_json(audience)
    engine = engine_promotion(
        str(promotion_id),
        values["type"],
        values["rule"],
        name=values["name"],
        products=values["products"],
        priority=values["priority"],
        mutex_group=values["mutex_group"],
        mutex_strategy=values["mutex_strategy"],
        valid_from=values["valid_from"],
        valid_to=values["valid_to"],
    )
    await _check_rule_refs(session, engine)
    return {**values, "rule": _stored_rule(engine)}


async def promotion_id_by_code(session: AsyncSession, code: str) -> UUID | None:
    return await session.scalar(select(Promotion.id).where(Promotion.code == code))


async def create_promotion(session: AsyncSession, data: PromotionIn) -> PromotionOut:
    if await session.scalar(select(Promotion.id).where(Promotion.code == data.code)) is not None:
        raise Conflict(f"promotion {data.code} already exists", code="duplicate")
    promotion_id = new_id()
    values = {
        name: getattr(data, name)
        for name in PROMOTION_FIELDS
        if name not in ("products", "audience", "version")
    }
    values = await _promotion_values(session, promotion_id, values, data.products, data.audience)
    promotion = Promotion(id=promotion_id, used_amount=ZERO, used_count=0, **values)
    session.add(promotion)
    await catalog.flush_unique(session, f"promotion {data.code}")
    audit.record_change(session, "promotion", promotion.id, None, audit.snapshot(promotion, PROMOTION_FIELDS))
    await revisions.bump(session, TOPIC)
    return promotion_out(promotion)


async def update_promotion(
    session: AsyncSession, promotion_id: UUID, data: PromotionPatch, expected_version: int
) -> PromotionOut:
    promotion: Promotion = await _locked(session, Promotion, promotion_id, "promotion")
    audit.check_version(promotion, expected_version, "promotion")
    changes = {f: getattr(data, f) for f in data.__struct_fields__ if f not in ("products", "audience")}
    products = data.products if isinstance(data.products, Products) else None
    audience = data.audience if isinstance(data.audience, AudienceIn) else None
    current = {f: getattr(promotion, f) for f in PROMOTION_FIELDS if f not in ("code", "version")}
    merged = {**current, **{k: v for k, v in changes.items() if v is not UNSET}}
    values = await _promotion_values(session, promotion.id, merged, products, audience)
    if not catalog.differs(promotion, values):
        return promotion_out(promotion)
    before = audit.snapshot(promotion, PROMOTION_FIELDS)
    catalog.assign(promotion, values)
    promotion.version += 1
    await session.flush()
    after = audit.snapshot(promotion, PROMOTION_FIELDS)
    audit.record_change(session, "promotion", promotion.id, before, after)
    await revisions.bump(session, TOPIC)
    return promotion_out(promotion)


async def delete_promotion(session: AsyncSession, promotion_id: UUID, expected_version: int) -> None:
    """Delete a promotion no order has used; one that has used budget is ended instead (set
    ``status`` to ``ended``), because submitted orders refer to it."""
    promotion: Promotion = await _locked(session, Promotion, promotion_id, "promotion")
    audit.check_version(promotion, expected_version, "promotion")
    ever_used = await session.scalar(
        select(PromotionUse.id).where(PromotionUse.promotion_id == promotion.id).limit(1)
    )
    if promotion.used_count or promotion.used_amount or ever_used is not None:
        raise Conflict(
            "orders have used this promotion: set its status to ended instead", code="promotion_in_use"
        )
    before = audit.snapshot(promotion, PROMOTION_FIELDS)
    await session.delete(promotion)
    await session.flush()
    audit.record_change(session, "promotion", promotion_id, before, None)
    await revisions.bump(session, TOPIC)


async def get_promotion(session: AsyncSession, promotion_id: UUID) -> PromotionOut:
    promotion = await session.get(Promotion, (require_tenant(), promotion_id))
    if promotion is None:
        raise NotFound("no such promotion")
    return promotion_out(promotion)


def _valid_at(model: Any, instant: datetime) -> Any:
    return and_(
        or_(model.valid_from.is_(None), model.valid_from <= instant),
        or_(model.valid_to.is_(None), model.valid_to > instant),
    )


async def list_promotions(
    session: AsyncSession,
    cursor: str | None,
    limit: int,
    *,
    type: str | None = None,
    status: str | None = None,
    active_on: datetime | None = None,
    q: str | None = None,
) -> tuple[list[PromotionOut], str | None]:
    """Promotions by id; ``active_on`` keeps the active ones whose validity holds that instant."""
    stmt = select(Promotion)
    if type is not None:
        stmt = stmt.where(Promotion.type == type)
    if status is not None:
        stmt = stmt.where(Promotion.status == status)
    if active_on is not None:
        instant = _aware("active_on", active_on)
        stmt = stmt.where(Promotion.status == "active", _valid_at(Promotion, instant))
    if q:
        stmt = stmt.where(or_(catalog.contains_ci(Promotion.code, q), catalog.contains_ci(Promotion.name, q)))
    rows = (await session.scalars(paged_query(stmt, Promotion.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [promotion_out(p) for p in items], nxt


# --- the compiled book the quote service prices against ------------------------------------


class BookEntry(msgspec.Struct, frozen=True, kw_only=True):
    """``limited``: the promotion has a budget or a per-customer limit, so a quote reads its live
    usage before offering it."""

    promotion: promotions.Promotion
    audience: promotions.Audience
    exhausted: bool
    limited: bool = False


class PromotionBook(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's active promotions at one revision, compiled to engine Structs with their
    audiences and budget state, in id order. Validity is checked per quote (:func:`promotions_for`),
    since a quote may price another day than the one the book was built on."""

    revision: revisions.Revision
    entries: tuple[BookEntry, ...]


_BOOK_COLUMNS = (
    Promotion.id,
    Promotion.name,
    Promotion.type,
    Promotion.rule,
    Promotion.products,
    Promotion.audience,
    Promotion.priority,
    Promotion.mutex_group,
    Promotion.mutex_strategy,
    Promotion.valid_from,
    Promotion.valid_to,
    Promotion.budget_amount,
    Promotion.budget_count,
    Promotion.used_amount,
    Promotion.used_count,
    Promotion.per_customer_limit,
)


async def _build_book(session: AsyncSession, revision: revisions.Revision) -> PromotionBook:
    rows = await session.execute(
        select(*_BOOK_COLUMNS).where(Promotion.status == "active").order_by(Promotion.id)
    )
    entries = []
    for row in rows:
        promotion = msgspec.convert(
            {
                **row.rule,
                "type": row.type,
                "promotion_id": str(row.id),
                "name": row.name,
                "scope": row.products or {},
                "priority": row.priority,
                "mutex_group": row.mutex_group,
                "mutex_strategy": row.mutex_strategy,
                "valid_from": row.valid_from,
                "valid_to": row.valid_to,
            },
            promotions.Promotion,  # type: ignore[arg-type]
        )
        exhausted = (row.budget_count is not None and row.used_count >= row.budget_count) or (
            row.budget_amount is not None and row.used_amount >= row.budget_amount
        )
        entries.append(
            BookEntry(
                promotion=promotion,
                audience=msgspec.convert(row.audience or {}, promotions.Audience),
                exhausted=exhausted,
                limited=row.budget_amount is not None
                or row.budget_count is not None
                or row.per_customer_limit is not None,
            )
        )
    return PromotionBook(revision=revision, entries=tuple(entries))


async def promotion_book(session: AsyncSession, revision: revisions.Revision) -> PromotionBook:
    """The tenant's compiled promotions at ``revision`` (from ``revisions.current``), built with
    one column select and reused until a change bumps the revision."""
    return await revisions.COMPILED.get(TOPIC, revision, lambda: _build_book(session, revision))


def _matching(
    book: PromotionBook,
    now: datetime,
    customer_id: str | None,
    customer_class: str | None,
    level: str | None,
    region_path: tuple[str, ...],
    channel: str | None,
    store_id: str | None,
) -> list[BookEntry]:
    return [
        e
        for e in book.entries
        if e.promotion.active(now)
        and promotions.audience_matches(
            e.audience,
            customer_id=customer_id,
            customer_class=customer_class,
            level=level,
            region_path=region_path,
            channel=channel,
            store_id=store_id,
        )
    ]


def promotions_for(
    book: PromotionBook,
    *,
    now: datetime,
    customer_id: str | None,
    customer_class: str | None,
    level: str | None,
    region_path: tuple[str, ...],
    channel: str | None,
    store_id: str | None,
) -> list[promotions.Promotion]:
    """The promotions a buyer may get at ``now``: active, valid, audience matching, budget not
    exhausted when the book was compiled (see :func:`usage_for` for the live state)."""
    matching = _matching(book, now, customer_id, customer_class, level, region_path, channel, store_id)
    return [e.promotion for e in matching if not e.exhausted]


def exhausted_for(
    book: PromotionBook,
    *,
    now: datetime,
    customer_id: str | None,
    customer_class: str | None,
    level: str | None,
    region_path: tuple[str, ...],
    channel: str | None,
    store_id: str | None,
) -> list[str]:
    """The ids of the promotions this buyer would get at ``now`` but whose budget is used up."""
    matching = _matching(book, now, customer_id, customer_class, level, region_path, channel, store_id)
    return [e.promotion.promotion_id for e in matching if e.exhausted]


BUDGET_EXHAUSTED = "budget exhausted"
LIMIT_REACHED = "per-customer limit reached"


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """A limited promotion's live state for one buyer: ``remaining_amount`` None is no amount
    budget; ``reason`` is set when it cannot be used at all."""

    remaining_amount: Decimal | None
    reason: str | None


async def usage_for(
    session: AsyncSession, book: PromotionBook, offered: Iterable[str], *, customer_id: UUID | None
) -> dict[str, Usage]:
    """The live budget state of the offered promotions that have a budget or a per-customer
    limit, in one statement (none when no offered promotion is limited): the book is compiled
    per revision, but orders consume budgets between revisions."""
    limited = {e.promotion.promotion_id for e in book.entries if e.limited} & set(offered)
    if not limited:
        return {}
    uses = aliased(PromotionUse)
    mine = (
        select(func.count(uses.id))
        .where(
            uses.tenant_id == Promotion.tenant_id,
            uses.promotion_id == Promotion.id,
            uses.customer_id == customer_id,
            uses.state == "consumed",
        )
        .scalar_subquery()
    )
    rows = await session.execute(
        select(
            Promotion.id,
            Promotion.budget_amount,
            Promotion.budget_count,
            Promotion.used_amount,
            Promotion.used_count,
            Promotion.per_customer_limit,
            (mine if customer_id is not None else literal(0)).label("mine"),
        ).where(Promotion.id.in_([UUID(p) for p in limited]))
    )
    out = {}
    for row in rows:
        remaining = None if row.budget_amount is None else row.budget_amount - row.used_amount
        reason = None
        if (row.budget_count is not None and row.used_count >= row.budget_count) or (
            remaining is not None and remaining <= 0
        ):
            reason = BUDGET_EXHAUSTED
        elif (
            customer_id is not None
            and row.per_customer_limit is not None
            and row.mine >= row.per_customer_limit
        ):
            reason = LIMIT_REACHED
        out[str(row.id)] = Usage(remaining_amount=remaining, reason=reason)
    return out


# --- budgets and limits consumed by orders ---------------------------------------------------


class Application(Protocol):
    """What an order applied: a quote's ``promotions`` entries (``stage`` ``coupon`` names a
    coupon code's id)."""

    @property
    def promotion_id(self) -> str: ...
    @property
    def stage(self) -> str: ...
    @property
    def discount(self) -> Decimal: ...


def _exhausted(promotion_id: str, code: str, reason: str) -> Conflict:
    return Conflict(
        f"promotion {code}: {reason}",
        code="promotion_exhausted",
        errors=[{"field": "promotions", "message": reason, "promotion_id": promotion_id, "code": code}],
    )


async def consume(
    session: AsyncSession, *, customer_id: UUID | None, order_id: UUID, applications: Iterable[Application]
) -> None:
    """Record the order's use of every promotion it applied (count 1 and its discount) against
    the promotion's budget and the customer's limit, in the order's transaction. Each promotion
    moves by one conditional UPDATE (``used_count + 1 <= budget_count`` and ``used_amount +
    discount <= budget_amount``) that also locks its row, so the customer's uses counted next
    include every committed rival; promotions are taken in id order, so two orders never wait
    on each other crosswise. A budget or limit that would be exceeded is a 409
    ``promotion_exhausted`` naming the promotion: the caller lets the order roll back. A budget
    used up by this order bumps the ``promotions`` revision, so later quotes stop offering it.
    Coupons (stage ``coupon``) are checked against their template's per-customer limit."""
    amounts: dict[UUID, Decimal] = {}
    coupon_ids: list[UUID] = []
    for a in applications:
        if a.stage == "coupon":
            coupon_ids.append(UUID(a.promotion_id))
        else:
            key = UUID(a.promotion_id)
            amounts[key] = amounts.get(key, ZERO) + a.discount
    used_up = False
    now = utcnow()
    for promotion_id in sorted(amounts):
        amount = amounts[promotion_id].quantize(CENT)
        row = (
            await session.execute(
                update(Promotion)
                .where(
                    Promotion.id == promotion_id,
                    or_(Promotion.budget_count.is_(None), Promotion.used_count + 1 <= Promotion.budget_count),
                    or_(
                        Promotion.budget_amount.is_(None),
                        Promotion.used_amount + amount <= Promotion.budget_amount,
                    ),
                )
                .values(used_count=Promotion.used_count + 1, used_amount=Promotion.used_amount + amount)
                .returning(
                    Promotion.code,
                    Promotion.budget_count,
                    Promotion.budget_amount,
                    Promotion.used_count,
                    Promotion.used_amount,
                    Promotion.per_customer_limit,
                )
                .execution_options(synchronize_session=False)
            )
        ).first()
        if row is None:
            code = await session.scalar(select(Promotion.code).where(Promotion.id == promotion_id))
            if code is None:
                raise NotFound(f"no such promotion {promotion_id}")
            raise _exhausted(str(promotion_id), code, BUDGET_EXHAUSTED)
        if customer_id is not None and row.per_customer_limit is not None:
            mine = await session.scalar(
                select(func.count(PromotionUse.id)).where(
                    PromotionUse.promotion_id == promotion_id,
                    PromotionUse.customer_id == customer_id,
                    PromotionUse.state == "consumed",
                )
            )
            if (mine or 0) + 1 > row.per_customer_limit:
                raise _exhausted(str(promotion_id), row.code, LIMIT_REACHED)
        used_up |= (row.budget_count is not None and row.used_count >= row.budget_count) or (
            row.budget_amount is not None and row.used_amount >= row.budget_amount
        )
        session.add(
            PromotionUse(
                promotion_id=promotion_id,
                order_id=order_id,
                customer_id=customer_id,
                amount=amount,
                state="consumed",
                consumed_at=now,
            )
        )
    if coupon_ids and customer_id is not None:
        await _check_coupon_limits(session, customer_id, coupon_ids)
    await catalog.flush_unique(session, f"promotion use of order {order_id}")
    if used_up:
        await revisions.bump(session, TOPIC)


async def _check_coupon_limits(session: AsyncSession, customer_id: UUID, coupon_ids: list[UUID]) -> None:
    """The customer holds no more codes of a template than its per-customer limit, counting the
    order's own codes once whether or not they are reserved yet. Templates are locked in id
    order, so concurrent orders of one customer count one after the other."""
    rows = (
        await session.execute(
            select(CouponCode.id, CouponCode.template_id).where(CouponCode.id.in_(coupon_ids))
        )
    ).all()
    wanted: Counter[UUID] = Counter(template_id for _, template_id in rows)
    for template_id in sorted(wanted):
        template = await session.scalar(
            select(CouponTemplate)
            .where(CouponTemplate.id == template_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if template is None or template.per_customer_limit is None:
            continue
        held = await session.scalar(
            select(func.count(CouponCode.id)).where(
                CouponCode.template_id == template_id,
                CouponCode.customer_id == customer_id,
                CouponCode.state.in_(HELD_STATES),
                CouponCode.id.not_in(coupon_ids),
            )
        )
        if (held or 0) + wanted[template_id] > template.per_customer_limit:
            raise Conflict(
                f"coupon template {template.code}: {LIMIT_REACHED}",
                code="promotion_exhausted",
                errors=[
                    {
                        "field": "coupon_codes",
                        "message": LIMIT_REACHED,
                        "coupon_template_id": str(template_id),
                        "code": template.code,
                    }
                ],
            )


async def release(session: AsyncSession, *, order_id: UUID) -> None:
    """Give back every use the order consumed (cancel or reject before shipment), exactly once:
    each use moves consumed → released by a conditional UPDATE, then its promotion's counters
    move back. A budget that was used up and now has room again bumps the revision."""
    released = (
        await session.execute(
            update(PromotionUse)
            .where(PromotionUse.order_id == order_id, PromotionUse.state == "consumed")
            .values(state="released", released_at=utcnow())
            .returning(PromotionUse.promotion_id, PromotionUse.amount)
            .execution_options(synchronize_session=False)
        )
    ).all()
    reopened = False
    for promotion_id, amount in sorted(released):
        row = (
            await session.execute(
                update(Promotion)
                .where(Promotion.id == promotion_id)
                .values(used_count=Promotion.used_count - 1, used_amount=Promotion.used_amount - amount)
                .returning(
                    Promotion.budget_count,
                    Promotion.budget_amount,
                    Promotion.used_count,
                    Promotion.used_amount,
                )
                .execution_options(synchronize_session=False)
            )
        ).one()
        reopened |= (row.budget_count is not None and row.used_count + 1 >= row.budget_count) or (
            row.budget_amount is not None and row.used_amount + amount >= row.budget_amount
        )
    if reopened:
        await revisions.bump(session, TOPIC)


# --- coupon templates ----------------------------------------------------------------------


def template_out(t: CouponTemplate) -> CouponTemplateOut:
    return CouponTemplateOut(
        id=t.id,
        code=t.code,
        name=t.name,
        threshold=t.threshold,
        amount=t.amount,
        products=_products_out(t.products or {}),
        valid_from=t.valid_from,
        valid_to=t.valid_to,
        total_quantity=t.total_quantity,
        issued_count=t.issued_count,
        remaining_quantity=None if t.total_quantity is None else t.total_quantity - t.issued_count,
        per_customer_limit=t.per_customer_limit,
        status=t.status,
        version=t.version,
        created_at=t.created_at,
    )


async def create_coupon_template(session: AsyncSession, data: CouponTemplateIn) -> CouponTemplateOut:
    if await session.scalar(select(CouponTemplate.id).where(CouponTemplate.code == data.code)) is not None:
        raise Conflict(f"coupon template {data.code} already exists", code="duplicate")
    valid_from, valid_to = _instant("valid_from", data.valid_from), _instant("valid_to", data.valid_to)
    _check_validity(valid_from, valid_to)
    await _check_products(session, data.products)
    template = CouponTemplate(
        code=data.code,
        name=data.name,
        threshold=_money("threshold", data.threshold),
        amount=_money("amount", data.amount, positive=True),
        products=_products_json(data.products),
        valid_from=valid_from,
        valid_to=valid_to,
        total_quantity=data.total_quantity,
        per_customer_limit=data.per_customer_limit,
        status=data.status,
    )
    session.add(template)
    await catalog.flush_unique(session, f"coupon template {data.code}")
    after = audit.snapshot(template, TEMPLATE_FIELDS)
    audit.record_change(session, "coupon_template", template.id, None, after)
    await revisions.bump(session, TOPIC)
    return template_out(template)


async def update_coupon_template(
    session: AsyncSession, template_id: UUID, data: CouponTemplatePatch, expected_version: int
) -> CouponTemplateOut:
    template: CouponTemplate = await _locked(session, CouponTemplate, template_id, "coupon template")
    audit.check_version(template, expected_version, "coupon template")
    values: dict[str, Any] = {f: getattr(data, f) for f in data.__struct_fields__ if f != "products"}
    values["threshold"] = _money("threshold", values["threshold"])
    values["amount"] = _money("amount", values["amount"], positive=True)
    for name in ("valid_from", "valid_to"):
        values[name] = _instant(name, values[name])
    if isinstance(data.products, Products):
        await _check_products(session, data.products)
        values["products"] = _products_json(data.products)
    valid_from = template.valid_from if values["valid_from"] is UNSET else values["valid_from"]
    valid_to = template.valid_to if values["valid_to"] is UNSET else values["valid_to"]
    _check_validity(valid_from, valid_to)
    total = values["total_quantity"]
    if isinstance(total, int) and total < template.issued_count:
        raise invalid("total_quantity", f"{template.issued_count} codes are already issued")
    if not catalog.differs(template, values):
        return template_out(template)
    before = audit.snapshot(template, TEMPLATE_FIELDS)
    catalog.assign(template, values)
    template.version += 1
    await session.flush()
    after = audit.snapshot(template, TEMPLATE_FIELDS)
    audit.record_change(session, "coupon_template", template.id, before, after)
    await revisions.bump(session, TOPIC)
    return template_out(template)


async def get_coupon_template(session: AsyncSession, template_id: UUID) -> CouponTemplateOut:
    template = await session.get(CouponTemplate, (require_tenant(), template_id))
    if template is None:
        raise NotFound("no such coupon template")
    return template_out(template)


async def list_coupon_templates(
    session: AsyncSession, cursor: str | None, limit: int, *, status: str | None = None, q: str | None = None
) -> tuple[list[CouponTemplateOut], str | None]:
    stmt = select(CouponTemplate)
    if status is not None:
        stmt = stmt.where(CouponTemplate.status == status)
    if q:
        stmt = stmt.where(
            or_(catalog.contains_ci(CouponTemplate.code, q), catalog.contains_ci(CouponTemplate.name, q))
        )
    rows = (await session.scalars(paged_query(stmt, CouponTemplate.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [template_out(t) for t in items], nxt


# --- coupon codes --------------------------------------------------------------------------


def new_coupon_code() -> str:
    """A random code such as ``K7Q2-M9XD-4HTP-B3WZ``."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + CODE_GROUP] for i in range(0, CODE_LENGTH, CODE_GROUP))


def normalize_coupon_code(text: str) -> str:
    """What a buyer typed, in the stored form: upper case, grouped by dashes."""
    raw = re.sub(r"[\s\-]", "", text).upper()
    return "-".join(raw[i : i + CODE_GROUP] for i in range(0, len(raw), CODE_GROUP))


def code_out(c: CouponCode) -> CouponCodeOut:
    return CouponCodeOut(
        id=c.id,
        template_id=c.template_id,
        code=c.code,
        customer_id=c.customer_id,
        state=c.state,
        issued_at=c.issued_at,
        redeemed_at=c.redeemed_at,
        version=c.version,
    )


async def _held_by(session: AsyncSession, template_id: UUID, customer_ids: set[UUID]) -> dict[UUID, int]:
    rows = await session.execute(
        select(CouponCode.customer_id, func.count(CouponCode.id))
        .where(
            CouponCode.template_id == template_id,
            CouponCode.customer_id.in_(customer_ids),
            CouponCode.state != "void",
        )
        .group_by(CouponCode.customer_id)
    )
    return {customer_id: n for customer_id, n in rows}


async def issue_coupon_codes(
    session: AsyncSession, template_id: UUID, data: CouponIssue
) -> CouponIssueResult:
    """Issue codes from a template. ``issued_count`` moves by one conditional UPDATE (``... WHERE
    issued_count + n <= total_quantity``), which also serialises concurrent issues of the template,
    so the per-customer count that follows sees every code issued before it."""
    template = await session.get(CouponTemplate, (require_tenant(), template_id))
    if template is None:
        raise NotFound("no such coupon template")
    owners: list[UUID | None] = [c for c in data.customer_ids for _ in range(data.quantity)]
    owners = owners or [None] * data.quantity
    n = len(owners)
    if n > MAX_ISSUE:
        raise invalid("quantity", f"at most {MAX_ISSUE} codes per request")
    for i, customer_id in enumerate(data.customer_ids):
        await channels.require_customer(session, customer_id, field=f"customer_ids[{i}]")
    if template.status != "active":
        raise Conflict(f"the coupon template is {template.status}", code="template_not_active")
    now = utcnow()
    if template.valid_to is not None and template.valid_to <= now:
        raise Conflict("the coupon template has expired", code="template_expired")
    issued = await session.scalar(
        update(CouponTemplate)
        .where(
            CouponTemplate.id == template.id,
            CouponTemplate.status == "active",
            or_(
                CouponTemplate.total_quantity.is_(None),
                CouponTemplate.issued_count + n <= CouponTemplate.total_quantity,
            ),
        )
        .values(issued_count=CouponTemplate.issued_count + n)
        .returning(CouponTemplate.issued_count)
        .execution_options(synchronize_session=False)
    )
    if issued is None:
        await session.refresh(template)
        if template.status != "active":
            raise Conflict(f"the coupon template is {template.status}", code="template_not_active")
        left = (template.total_quantity or 0) - template.issued_count
        raise Conflict(f"only {left} codes are left to issue", code="coupons_exhausted")
    if template.per_customer_limit is not None and data.customer_ids:
        wanted = Counter(c for c in owners if c is not None)
        held = await _held_by(session, template.id, set(wanted))
        for i, customer_id in enumerate(data.customer_ids):
            if held.get(customer_id, 0) + wanted[customer_id] > template.per_customer_limit:
                raise Conflict(
                    f"a customer may hold at most {template.per_customer_limit} codes of this template",
                    code="per_customer_limit",
                    errors=[field_error(f"customer_ids[{i}]", "would exceed the per-customer limit")],
                )
    texts: set[str] = set()
    while len(texts) < n:
        texts.add(new_coupon_code())
    codes = [
        CouponCode(template_id=template.id, code=text, customer_id=owner, state="issued", issued_at=now)
        for text, owner in zip(sorted(texts), owners, strict=True)
    ]
    session.add_all(codes)
    await catalog.flush_unique(session, "coupon code")
    for code in codes:
        audit.record_change(session, "coupon_code", code.id, None, audit.snapshot(code, CODE_FIELDS))
    await revisions.bump(session, TOPIC)
    return CouponIssueResult(template_id=template.id, issued_count=issued, codes=[code_out(c) for c in codes])


async def get_coupon_code(session: AsyncSession, coupon_code_id: UUID) -> CouponCodeOut:
    code = await session.get(CouponCode, (require_tenant(), coupon_code_id))
    if code is None:
        raise NotFound("no such coupon code")
    return code_out(code)


async def list_coupon_codes(
    session: AsyncSession,
    cursor: str | None,
    limit: int,
    *,
    template_id: UUID | None = None,
    customer_id: UUID | None = None,
    state: str | None = None,
) -> tuple[list[CouponCodeOut], str | None]:
    stmt = select(CouponCode)
    if template_id is not None:
        stmt = stmt.where(CouponCode.template_id == template_id)
    if customer_id is not None:
        stmt = stmt.where(CouponCode.customer_id == customer_id)
    if state is not None:
        stmt = stmt.where(CouponCode.state == state)
    rows = (await session.scalars(paged_query(stmt, CouponCode.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [code_out(c) for c in items], nxt


async def transition_coupon_code(
    session: AsyncSession,
    coupon_code_id: UUID,
    to: CodeState,
    *,
    expected_version: int | None = None,
    customer_id: UUID | None = None,
) -> CouponCodeOut:
    """Move a code along :data:`TRANSITIONS` exactly once (409 for any other move, including a
    second, concurrent one). Reserving binds an unassigned code to ``customer_id``. Order
    submission calls this; it does not bump the revision, since codes are read live, never
    compiled."""
    code = await session.get(CouponCode, (require_tenant(), coupon_code_id))
    if code is None:
        raise NotFound("no such coupon code")
    audit.check_version(code, expected_version, "coupon code")
    if to not in TRANSITIONS[code.state]:
        raise Conflict(f"a {code.state} coupon code cannot become {to}", code="illegal_transition")
    values: dict[str, Any] = {"state": to, "version": code.version + 1}
    if to == "reserved" and customer_id is not None:
        if code.customer_id not in (None, customer_id):
            raise Conflict("the coupon code was issued to another customer", code="not_your_coupon")
        values["customer_id"] = customer_id
    if to == "redeemed":
        values["redeemed_at"] = utcnow()
    before = audit.snapshot(code, CODE_FIELDS)
    result = await session.execute(
        update(CouponCode)
        .where(CouponCode.id == code.id, CouponCode.state == code.state, CouponCode.version == code.version)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        await session.refresh(code)
        raise Conflict(f"the coupon code is now {code.state}", code="illegal_transition")
    await session.refresh(code)
    audit.record_change(session, "coupon_code", code.id, before, audit.snapshot(code, CODE_FIELDS))
    return code_out(code)


async def void_coupon_code(
    session: AsyncSession, coupon_code_id: UUID, expected_version: int
) -> CouponCodeOut:
    """Withdraw an unused (issued) code."""
    out = await transition_coupon_code(session, coupon_code_id, "void", expected_version=expected_version)
    await revisions.bump(session, TOPIC)
    return out


# --- coupons for a quote -------------------------------------------------------------------


async def coupons_for(
    session: AsyncSession,
    codes: list[str],
    *,
    customer_id: UUID | None,
    now: datetime,
    field: str = "coupon_codes",
) -> list[promotions.Coupon]:
    """The engine coupons for the codes a buyer gives, in one statement. A code that cannot be
    used here (unknown, not issued, another customer's, template not active or outside its
    validity, given twice, or over the template's per-customer limit) is a 422 naming
    ``f"{field}[{i}]"``; every such code is reported."""
    if len(codes) > MAX_COUPONS_PER_QUOTE:
        raise invalid(field, f"at most {MAX_COUPONS_PER_QUOTE} coupon codes")
    if not codes:
        return []
    normalized = [normalize_coupon_code(c) for c in codes]
    held = aliased(CouponCode)
    used = (
        select(func.count(held.id))
        .where(
            held.tenant_id == CouponCode.tenant_id,
            held.template_id == CouponCode.template_id,
            held.customer_id == customer_id,
            held.state.in_(HELD_STATES),
        )
        .scalar_subquery()
    )
    rows = await session.execute(
        select(
            CouponCode.id,
            CouponCode.code,
            CouponCode.state,
            CouponCode.customer_id,
            CouponCode.template_id,
            CouponTemplate.threshold,
            CouponTemplate.amount,
            CouponTemplate.products,
            CouponTemplate.status,
            CouponTemplate.valid_from,
            CouponTemplate.valid_to,
            CouponTemplate.per_customer_limit,
            (used if customer_id is not None else literal(0)).label("held"),
        )
        .join(
            CouponTemplate,
            and_(
                CouponTemplate.tenant_id == CouponCode.tenant_id,
                CouponTemplate.id == CouponCode.template_id,
            ),
        )
        .where(CouponCode.code.in_(set(normalized)))
    )
    found = {row.code: row for row in rows}
    errors: list[dict[str, str]] = []
    coupons: list[promotions.Coupon] = []
    seen: dict[str, int] = {}
    per_template: Counter[UUID] = Counter()
    for i, text in enumerate(normalized):
        where = f"{field}[{i}]"
        row = found.get(text)
        problem = None
        if text in seen:
            problem = f"the same code as {field}[{seen[text]}]"
        elif row is None:
            problem = "no such coupon code"
        elif row.state != "issued":
            problem = f"the coupon code is {row.state}"
        elif row.customer_id is not None and row.customer_id != customer_id:
            problem = "the coupon code was issued to another customer"
        elif row.status != "active":
            problem = f"the coupon is {row.status}"
        elif (row.valid_from is not None and now < row.valid_from) or (
            row.valid_to is not None and now >= row.valid_to
        ):
            problem = "the coupon is not valid at this time"
        seen.setdefault(text, i)
        if problem is None:
            per_template[row.template_id] += 1
            limit = row.per_customer_limit
            if limit is not None and row.held + per_template[row.template_id] > limit:
                problem = f"a customer may use at most {limit} coupons of this kind"
        if problem is not None:
            errors.append(field_error(where, problem))
            continue
        coupons.append(
            promotions.Coupon(
                coupon_id=str(row.id),
                threshold=row.threshold,
                amount=row.amount,
                scope=_scope(row.products or {}),
            )
        )
    if errors:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise Unprocessable(detail, code="coupon_unusable", errors=errors)
    return coupons
