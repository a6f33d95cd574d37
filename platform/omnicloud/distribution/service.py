"""Distribution use cases (DOMAIN §7): dealer onboarding and the set-up of multi-level supply.

- Join applications (申请加盟): a dealer files one for a sub-dealer under itself, or the brand's
  staff record one; approval creates the dealer in the tree through the channels service, and
  optionally a dealer user with an API key, in the caller's one transaction.
- Product authorisations (商品授权): which products a buyer may buy; rules are compiled per
  tenant and cached by the ``distribution`` revision (see engine.py for how a rule wins).
- Supply relations (供货关系): which seller supplies which buyer; overlaps at one priority are
  refused when saved, so routing an order never meets a tie it cannot explain.
- Guide price ranges (指导价): the bounds of level-1 dealers' own prices, checked by the prices
  domain when it saves a dealer-owned entry (:func:`guide_price_violations`).

Dealer users see only objects of their own subtree (others answer 404); authorisations, supply
relations and guide prices are written by the brand's staff only. Every write records an audit
entry and an outbox event in the caller's transaction; the services never commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
from msgspec import UNSET
from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.catalog import service as catalog
from omnicloud.channels import service as channels
from omnicloud.channels.schemas import CustomerIn
from omnicloud.core import audit, events, revisions
from omnicloud.core.db import utcnow
from omnicloud.core.errors import Conflict, Forbidden, NotFound, Unprocessable, invalid
from omnicloud.core.ids import new_id
from omnicloud.core.money import round_money
from omnicloud.core.paging import decode_cursor, encode_cursor, paged_query, split_page
from omnicloud.core.security import Principal, current_principal
from omnicloud.core.tenancy import require_tenant
from omnicloud.distribution import engine
from omnicloud.distribution.models import GuidePrice, JoinApplication, ProductAuthorization, SupplyRelation
from omnicloud.distribution.schemas import (
    ApprovalIn,
    ApprovalOut,
    AuthorizedSkuOut,
    GuidePriceIn,
    GuidePriceOut,
    GuidePricePatch,
    GuidePricePut,
    JoinApplicationIn,
    JoinApplicationOut,
    ProductAuthorizationIn,
    ProductAuthorizationOut,
    ProductAuthorizationPatch,
    SupplyRelationIn,
    SupplyRelationOut,
    SupplyRelationPatch,
)
from omnicloud.identity import service as identity
from omnicloud.identity.schemas import UserIn

TOPIC = "distribution"
"""The revision topic of product authorisations: bumped by every write, keys the compiled rules."""
SUPPLY_TOPIC = "supply_relations"
GUIDE_TOPIC = "guide_prices"
# Bumping these serialises a tenant's writes, so the overlap checks see every committed rival.

LIST_FIELDS = ("sku_ids", "category_ids", "brand_ids", "region_ids")
"""Fields holding lists of ids (JSON arrays of strings; empty means all)."""

SCAN_CHUNK = 500
"""SKUs examined per statement when listing what a customer may buy."""


def _brand_only(principal: Principal, what: str) -> None:
    if principal.is_dealer:
        raise Forbidden(f"{what} are maintained by the brand's staff only", code="brand_only")


def _stored(name: str, value: Any) -> Any:
    """A field's value as stored: lists of ids as strings, each once, in the order first given."""
    if name in LIST_FIELDS:
        return list(dict.fromkeys(str(v) for v in value))
    return value


def _uuids(values: Iterable[str]) -> list[UUID]:
    return [UUID(v) for v in values]


# --- join applications ----------------------------------------------------------------------

APPLICATION_FIELDS = (
    "company_name",
    "contact_name",
    "phone",
    "region_id",
    "channel",
    "requested_parent_id",
    "requested_level",
    "requested_class",
    "note",
    "filed_by_customer_id",
    "state",
    "reject_reason",
    "customer_id",
    "user_id",
    "decided_by",
    "decided_at",
)


def join_application_out(a: JoinApplication) -> JoinApplicationOut:
    return JoinApplicationOut(
        id=a.id, created_at=a.created_at, **{f: getattr(a, f) for f in APPLICATION_FIELDS}
    )


def _application_scope(scope: str | None) -> list[ColumnElement[bool]]:
    """A dealer sees the applications it filed and those under its subtree."""
    if scope is None:
        return []
    subtree = channels.subtree_ids(scope)
    return [
        or_(
            JoinApplication.requested_parent_id.in_(subtree),
            JoinApplication.filed_by_customer_id.in_(subtree),
        )
    ]


async def _visible_application(
    session: AsyncSession, application_id: UUID, principal: Principal
) -> JoinApplication:
    scope = await channels.dealer_scope_path(session, principal)
    stmt = select(JoinApplication).where(JoinApplication.id == application_id, *_application_scope(scope))
    application = await session.scalar(stmt)
    if application is None:
        raise NotFound("no such join application")
    return application


async def create_join_application(
    session: AsyncSession, data: JoinApplicationIn, principal: Principal
) -> JoinApplicationOut:
    """File an application. A dealer applies under its own subtree (under itself when it names no
    parent); anyone else records applications for the brand and needs distribution:write."""
    scope = await channels.dealer_scope_path(session, principal)
    if scope is None and not principal.can("distribution:write"):
        raise Forbidden(
            "recording an application for the brand needs distribution:write", code="missing_permission"
        )
    parent_id = data.requested_parent_id
    if parent_id is UNSET:
        parent_id = principal.customer_id
    if parent_id is None and scope is not None:
        raise invalid("requested_parent_id", "a dealer applies for sub-dealers inside its own subtree only")
    if isinstance(parent_id, UUID):
        parent = await channels.require_customer(session, parent_id, field="requested_parent_id")
        if scope is not None and not parent.path.startswith(scope):
            raise invalid("requested_parent_id", "no such customer")
        if parent.kind != "dealer":
            raise invalid("requested_parent_id", "a terminal cannot have sub-dealers")
    if data.region_id is not None:
        await catalog.require_region(session, data.region_id, field="region_id")
    application = JoinApplication(
        id=new_id(),
        company_name=data.company_name,
        contact_name=data.contact_name,
        phone=data.phone,
        region_id=data.region_id,
        channel=data.channel,
        requested_parent_id=parent_id,
        requested_level=data.requested_level,
        requested_class=data.requested_class,
        note=data.note,
        filed_by_customer_id=principal.customer_id,
        state="pending",
        created_at=utcnow(),
    )
    session.add(application)
    await session.flush()
    audit.record_change(
        session, "join_application", application.id, None, audit.snapshot(application, APPLICATION_FIELDS)
    )
    return join_application_out(application)


async def get_join_application(
    session: AsyncSession, application_id: UUID, principal: Principal
) -> JoinApplicationOut:
    return join_application_out(await _visible_application(session, application_id, principal))


async def list_join_applications(
    session: AsyncSession,
    principal: Principal,
    cursor: str | None,
    limit: int,
    *,
    state: str | None = None,
    requested_parent_id: UUID | None = None,
) -> tuple[list[JoinApplicationOut], str | None]:
    scope = await channels.dealer_scope_path(session, principal)
    stmt = select(JoinApplication).where(*_application_scope(scope))
    if state is not None:
        stmt = stmt.where(JoinApplication.state == state)
    if requested_parent_id is not None:
        stmt = stmt.where(JoinApplication.requested_parent_id == requested_parent_id)
    rows = (await session.scalars(paged_query(stmt, JoinApplication.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [join_application_out(a) for a in items], nxt


async def _decide(
    session: AsyncSession, application: JoinApplication, state: str, reason: str | None = None
) -> dict[str, Any]:
    """Move a pending application to ``state`` exactly once, returning its snapshot before: the
    conditional UPDATE makes a concurrent decision wait for this one, then find nothing pending."""
    if application.state != "pending":
        raise Conflict(f"the application is already {application.state}", code="illegal_transition")
    before = audit.snapshot(application, APPLICATION_FIELDS)
    principal = current_principal()
    result = await session.execute(
        update(JoinApplication)
        .where(JoinApplication.id == application.id, JoinApplication.state == "pending")
        .values(
            state=state,
            reject_reason=reason,
            decided_by=principal.actor if principal else "system",
            decided_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("the application was decided meanwhile", code="illegal_transition")
    await session.refresh(application)
    return before


def _decided(session: AsyncSession, application: JoinApplication, before: dict[str, Any]) -> None:
    """Audit the decision as ``approve``/``reject`` and emit ``join_application.<state>``."""
    after = audit.snapshot(application, APPLICATION_FIELDS)
    verb = {"approved": "approve", "rejected": "reject"}[application.state]
    audit.record(session, verb, "join_application", application.id, before=before, after=after)
    events.emit(session, f"join_application.{application.state}", {"id": str(application.id), **after})


async def approve_join_application(
    session: AsyncSession, application_id: UUID, data: ApprovalIn, principal: Principal
) -> ApprovalOut:
    """Approve: create the dealer under the requested parent (through the channels service, so
    the tree rules hold) and, when asked, a dealer user with an API key whose secret is shown
    once. All of it happens in the caller's transaction: any failure leaves nothing behind."""
    application = await _visible_application(session, application_id, principal)
    before = await _decide(session, application, "approved")
    customer = await channels.create_customer(
        session,
        CustomerIn(
            code=data.code,
            name=application.company_name,
            kind="dealer",
            customer_class=data.customer_class or application.requested_class,
            level=data.level or application.requested_level,
            channel=application.channel,
            region_id=application.region_id,
            sales_org_id=data.sales_org_id,
            parent_id=application.requested_parent_id,
        ),
        principal,
    )
    user = key = None
    if data.dealer_user is not None:
        user = await identity.create_user(
            session,
            UserIn(
                email=data.dealer_user.email,
                name=data.dealer_user.name,
                role="dealer",
                customer_id=customer.id,
            ),
        )
        key = await identity.issue_key(
            session, require_tenant(), user.id, f"join application {application.id}"
        )
    application.customer_id = customer.id
    application.user_id = user.id if user else None
    await session.flush()
    _decided(session, application, before)
    return ApprovalOut(
        application=join_application_out(application), customer=customer, user=user, api_key=key
    )


async def reject_join_application(
    session: AsyncSession, application_id: UUID, reason: str, principal: Principal
) -> JoinApplicationOut:
    """Reject with a reason; nothing else changes."""
    application = await _visible_application(session, application_id, principal)
    before = await _decide(session, application, "rejected", reason)
    _decided(session, application, before)
    return join_application_out(application)


# --- catalog facts shared by rules ------------------------------------------------------------


def product_of(facts: catalog.SkuFacts) -> engine.Product:
    """A SKU as the distribution rules see it."""
    return engine.Product(
        sku_id=str(facts.sku_id),
        categories=tuple(str(c) for c in facts.categories),
        brand_id=None if facts.brand_id is None else str(facts.brand_id),
    )


def buyer_of(party: channels.Party) -> engine.Buyer:
    """A customer as the distribution rules see it (from the pricing party the quote builds)."""
    return engine.Buyer(
        customer_id=str(party.customer_id),
        customer_class=party.customer_class,
        level=party.level,
        region_path=tuple(str(r) for r in party.region_path),
    )


async def _buyer(session: AsyncSession, customer: Any) -> engine.Buyer:
    lineage = tuple(await catalog.region_ancestors(session, customer.region_id))
    return engine.Buyer(
        customer_id=str(customer.id),
        customer_class=customer.customer_class,
        level=customer.level,
        region_path=tuple(str(r) for r in lineage),
    )


async def _category_lineage(session: AsyncSession) -> dict[str, tuple[str, ...]]:
    """Every category with its ancestors (itself first), read page by page."""
    parents: dict[UUID, UUID | None] = {}
    cursor: str | None = None
    while True:
        page, cursor = await catalog.list_categories(session, cursor, 1000)
        parents.update({c.id: c.parent_id for c in page})
        if cursor is None:
            break
    out: dict[str, tuple[str, ...]] = {}
    for node in parents:
        chain: list[str] = []
        current: UUID | None = node
        while current is not None and str(current) not in chain:
            chain.append(str(current))
            current = parents.get(current)
        out[str(node)] = tuple(chain)
    return out


async def _region_lineage(session: AsyncSession) -> dict[str, tuple[str, ...]]:
    """Every region with its ancestors (itself first), from the materialised paths."""
    out: dict[str, tuple[str, ...]] = {}
    cursor: str | None = None
    while True:
        page, cursor = await catalog.list_regions(session, cursor, 1000)
        out.update({str(r.id): tuple(reversed(r.path.strip("/").split("/"))) for r in page})
        if cursor is None:
            return out


async def _brand_ids(session: AsyncSession) -> set[str]:
    found: set[str] = set()
    cursor: str | None = None
    while True:
        page, cursor = await catalog.list_brands(session, cursor, 1000)
        found.update(str(b.id) for b in page)
        if cursor is None:
            return found


class _Facts(msgspec.Struct, kw_only=True):
    """What the checks of a saved rule learnt about the catalog."""

    products: dict[str, engine.Product]
    categories: dict[str, tuple[str, ...]]
    regions: dict[str, tuple[str, ...]]


async def _check_catalog(
    session: AsyncSession,
    sku_ids: Sequence[UUID | str],
    category_ids: Sequence[UUID | str],
    brand_ids: Sequence[UUID | str],
    region_ids: Sequence[UUID | str] = (),
) -> _Facts:
    """Every listed id exists in the tenant (422 naming ``<list>[i]`` as given); returns their facts."""
    skus, categories_given, brands_given, regions_given = (
        [str(v) for v in ids] for ids in (sku_ids, category_ids, brand_ids, region_ids)
    )
    facts = await catalog.sku_facts(session, _uuids(skus))
    for i, sku in enumerate(skus):
        if UUID(sku) not in facts:
            raise invalid(f"sku_ids[{i}]", "no such SKU")
    categories = await _category_lineage(session) if categories_given else {}
    for i, category in enumerate(categories_given):
        if category not in categories:
            raise invalid(f"category_ids[{i}]", "no such category")
    brands = await _brand_ids(session) if brands_given else set()
    for i, brand in enumerate(brands_given):
        if brand not in brands:
            raise invalid(f"brand_ids[{i}]", "no such brand")
    regions = await _region_lineage(session) if regions_given else {}
    for i, region in enumerate(regions_given):
        if region not in regions:
            raise invalid(f"region_ids[{i}]", "no such region")
    return _Facts(
        products={str(k): product_of(v) for k, v in facts.items()}, categories=categories, regions=regions
    )


def _products(
    sku_ids: Iterable[UUID | str], category_ids: Iterable[UUID | str], brand_ids: Iterable[UUID | str]
) -> engine.Products:
    return engine.Products(
        sku_ids=frozenset(str(v) for v in sku_ids),
        category_ids=frozenset(str(v) for v in category_ids),
        brand_ids=frozenset(str(v) for v in brand_ids),
    )


# --- product authorisations ------------------------------------------------------------------

AUTH_FIELDS = (
    "effect",
    "customer_id",
    "level",
    "customer_class",
    "region_id",
    "sku_ids",
    "category_ids",
    "brand_ids",
    "valid_from",
    "valid_to",
    "version",
)
SUBJECT_FIELDS = ("customer_id", "level", "customer_class", "region_id")
_SUBJECT = {
    "customer_id": "customer",
    "level": "level",
    "customer_class": "customer_class",
    "region_id": "region",
}


def _subject(r: Any) -> tuple[engine.Subject, str | None]:
    for name in SUBJECT_FIELDS:
        value = getattr(r, name)
        if value is not None:
            return _SUBJECT[name], str(value)  # type: ignore[return-value]
    return "all", None


def product_authorization_out(r: ProductAuthorization) -> ProductAuthorizationOut:
    return ProductAuthorizationOut(
        id=r.id,
        effect=r.effect,
        subject=_subject(r)[0],
        customer_id=r.customer_id,
        level=r.level,
        customer_class=r.customer_class,
        region_id=r.region_id,
        sku_ids=_uuids(r.sku_ids),
        category_ids=_uuids(r.category_ids),
        brand_ids=_uuids(r.brand_ids),
        valid_from=r.valid_from,
        valid_to=r.valid_to,
        version=r.version,
        created_at=r.created_at,
    )


def _authorization_scope(scope: str | None) -> list[ColumnElement[bool]]:
    """A dealer sees the rules written for customers of its subtree (not the brand's general ones)."""
    if scope is None:
        return []
    return [ProductAuthorization.customer_id.in_(channels.subtree_ids(scope))]


async def _visible_authorization(
    session: AsyncSession, authorization_id: UUID, principal: Principal
) -> ProductAuthorization:
    scope = await channels.dealer_scope_path(session, principal)
    stmt = select(ProductAuthorization).where(
        ProductAuthorization.id == authorization_id, *_authorization_scope(scope)
    )
    found = await session.scalar(stmt)
    if found is None:
        raise NotFound("no such product authorization")
    return found


async def _check_authorization(session: AsyncSession, values: dict[str, Any]) -> None:
    subjects = [name for name in SUBJECT_FIELDS if values[name] is not None]
    if len(subjects) > 1:
        raise invalid(
            subjects[1], f"a rule has one subject: {subjects[0]} is set, so {subjects[1]} must be null"
        )
    if values["valid_from"] is not None and values["valid_to"] is not None:
        if values["valid_to"] < values["valid_from"]:
            raise invalid("valid_to", "must not be before valid_from")
    if values["customer_id"] is not None:
        await channels.require_customer(session, values["customer_id"])
    if values["region_id"] is not None:
        await catalog.require_region(session, values["region_id"])
    await _check_catalog(session, values["sku_ids"], values["category_ids"], values["brand_ids"])


async def create_product_authorization(
    session: AsyncSession, data: ProductAuthorizationIn, principal: Principal
) -> ProductAuthorizationOut:
    _brand_only(principal, "product authorizations")
    await revisions.bump(session, TOPIC)
    values = {f: getattr(data, f) for f in AUTH_FIELDS if f != "version"}
    await _check_authorization(session, values)
    stored = {k: _stored(k, v) for k, v in values.items()}
    rule = ProductAuthorization(id=new_id(), version=1, created_at=utcnow(), **stored)
    session.add(rule)
    await session.flush()
    audit.record_change(session, "product_authorization", rule.id, None, audit.snapshot(rule, AUTH_FIELDS))
    return product_authorization_out(rule)


async def get_product_authorization(
    session: AsyncSession, authorization_id: UUID, principal: Principal
) -> ProductAuthorizationOut:
    return product_authorization_out(await _visible_authorization(session, authorization_id, principal))


async def list_product_authorizations(
    session: AsyncSession,
    principal: Principal,
    cursor: str | None,
    limit: int,
    *,
    customer_id: UUID | None = None,
    effect: str | None = None,
) -> tuple[list[ProductAuthorizationOut], str | None]:
    scope = await channels.dealer_scope_path(session, principal)
    stmt = select(ProductAuthorization).where(*_authorization_scope(scope))
    if customer_id is not None:
        stmt = stmt.where(ProductAuthorization.customer_id == customer_id)
    if effect is not None:
        stmt = stmt.where(ProductAuthorization.effect == effect)
    rows = (await session.scalars(paged_query(stmt, ProductAuthorization.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [product_authorization_out(r) for r in items], nxt


async def update_product_authorization(
    session: AsyncSession,
    authorization_id: UUID,
    data: ProductAuthorizationPatch,
    expected_version: int,
    principal: Principal,
) -> ProductAuthorizationOut:
    _brand_only(principal, "product authorizations")
    await revisions.bump(session, TOPIC)
    rule = await _visible_authorization(session, authorization_id, principal)
    audit.check_version(rule, expected_version, "product authorization")
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not UNSET}
    changed = {k: v for k, v in changes.items() if getattr(rule, k) != _stored(k, v)}
    if not changed:
        return product_authorization_out(rule)
    values = {f: changed.get(f, getattr(rule, f)) for f in AUTH_FIELDS if f != "version"}
    await _check_authorization(session, values)
    before = audit.snapshot(rule, AUTH_FIELDS)
    for name, value in changed.items():
        setattr(rule, name, _stored(name, value))
    rule.version += 1
    await session.flush()
    audit.record_change(session, "product_authorization", rule.id, before, audit.snapshot(rule, AUTH_FIELDS))
    return product_authorization_out(rule)


async def delete_product_authorization(
    session: AsyncSession, authorization_id: UUID, expected_version: int, principal: Principal
) -> None:
    _brand_only(principal, "product authorizations")
    await revisions.bump(session, TOPIC)
    rule = await _visible_authorization(session, authorization_id, principal)
    audit.check_version(rule, expected_version, "product authorization")
    before = audit.snapshot(rule, AUTH_FIELDS)
    await session.delete(rule)
    await session.flush()
    audit.record_change(session, "product_authorization", rule.id, before, None)


# --- the compiled rules and the questions orders ask -------------------------------------------

_RULE_COLUMNS = (
    ProductAuthorization.id,
    ProductAuthorization.effect,
    ProductAuthorization.customer_id,
    ProductAuthorization.level,
    ProductAuthorization.customer_class,
    ProductAuthorization.region_id,
    ProductAuthorization.sku_ids,
    ProductAuthorization.category_ids,
    ProductAuthorization.brand_ids,
    ProductAuthorization.valid_from,
    ProductAuthorization.valid_to,
)


async def _compile_rules(session: AsyncSession) -> engine.AuthIndex:
    rows = await session.execute(select(*_RULE_COLUMNS).order_by(ProductAuthorization.id))
    rules = []
    for row in rows:
        subject, value = _subject(row)
        rules.append(
            engine.AuthRule(
                id=str(row.id),
                effect=row.effect,
                subject=subject,
                subject_value=value,
                products=_products(row.sku_ids, row.category_ids, row.brand_ids),
                valid_from=row.valid_from,
                valid_to=row.valid_to,
            )
        )
    return engine.compile_rules(rules)


async def authorization_book(session: AsyncSession, revision: revisions.Revision) -> engine.AuthIndex:
    """The tenant's authorisation rules compiled for ``revision`` (read it with
    ``revisions.current(session, (TOPIC, ...))``): one select on a miss, none on a hit."""
    return await revisions.COMPILED.get(TOPIC, revision, lambda: _compile_rules(session))


def unauthorized_in(
    book: engine.AuthIndex, party: channels.Party, facts: Iterable[catalog.SkuFacts], day: date
) -> set[UUID]:
    """The SKUs of ``facts`` that ``party`` may not buy on ``day``, without a statement: for an
    order that already holds its buyer and SKU facts."""
    products = [product_of(f) for f in facts]
    return {UUID(s) for s in engine.unauthorized(book, buyer_of(party), products, day)}


async def unauthorized_skus(
    session: AsyncSession, *, customer_id: UUID, sku_ids: Sequence[UUID], day: date
) -> set[UUID]:
    """The SKUs of a basket that the customer may not buy on ``day`` (SKUs that do not exist
    included), in at most five statements whatever the size of the basket: the revision, the
    customer, its region's lineage and the SKU facts (two). An unknown customer is a 422 naming
    customer_id."""
    revision = (await revisions.current(session, (TOPIC,)))[TOPIC]
    book = await authorization_book(session, revision)
    customer = await channels.require_customer(session, customer_id)
    buyer = await _buyer(session, customer)
    facts = await catalog.sku_facts(session, list(set(sku_ids)))
    products = [product_of(f) for f in facts.values()]
    denied = {UUID(s) for s in engine.unauthorized(book, buyer, products, day)}
    return denied | (set(sku_ids) - set(facts))


async def list_authorized_skus(
    session: AsyncSession,
    customer_id: UUID,
    principal: Principal,
    cursor: str | None,
    limit: int,
    day: date,
) -> tuple[list[AuthorizedSkuOut], str | None]:
    """The active SKUs the customer may buy on ``day``, by id. SKUs are examined in chunks of
    :data:`SCAN_CHUNK`; when a deny-everything rule leaves only SKUs that grants name, only
    those are examined, and when no grant can authorise anything the answer is immediate."""
    customer = await channels.visible_customer(session, customer_id, principal)
    revision = (await revisions.current(session, (TOPIC,)))[TOPIC]
    book = await authorization_book(session, revision)
    groups = engine.buyer_rules(book, await _buyer(session, customer), day)
    candidates = engine.only_grants_can_authorize(groups)
    if candidates is not None and candidates.everything:
        return [], None
    named_only = candidates is not None and not candidates.category_ids and not candidates.brand_ids
    after = decode_cursor(cursor)
    pool: list[UUID] = []
    if candidates is not None and named_only:
        pool = sorted(u for u in _uuids(candidates.sku_ids) if after is None or u > after)
    found: list[AuthorizedSkuOut] = []
    more = True
    while more and len(found) <= limit:
        if named_only:  # only the SKUs the grants name can be authorised: look at those only
            chunk, pool = pool[:SCAN_CHUNK], pool[SCAN_CHUNK:]
            by_id = await catalog.skus_for_pricing(session, chunk) if chunk else {}
            skus = [by_id[i] for i in chunk if i in by_id and by_id[i].status == "active"]
            more = bool(pool)
        else:
            skus, scan_cursor = await catalog.list_skus(
                session,
                None if after is None else encode_cursor(after),
                SCAN_CHUNK,
                show_cost=False,
                status="active",
            )
            more = scan_cursor is not None
            after = skus[-1].id if skus else after
        facts = await catalog.sku_facts(session, [s.id for s in skus])
        for sku in skus:
            f = facts[sku.id]
            decision = engine.decide(groups, product_of(f))
            if decision.authorized:
                found.append(
                    AuthorizedSkuOut(
                        sku_id=sku.id,
                        code=sku.code,
                        name=sku.name,
                        product_id=sku.product_id,
                        brand_id=f.brand_id,
                        category_id=f.categories[0] if f.categories else None,
                        rule_id=None if decision.rule_id is None else UUID(decision.rule_id),
                    )
                )
    items = found[:limit]
    return items, encode_cursor(items[-1].sku_id) if len(found) > limit else None


# --- supply relations -------------------------------------------------------------------------

RELATION_FIELDS = (
    "buyer_id",
    "seller_id",
    "sku_ids",
    "category_ids",
    "brand_ids",
    "region_ids",
    "priority",
    "drop_ship_allowed",
    "valid_from",
    "valid_to",
    "version",
)


class SupplyRoute(msgspec.Struct, frozen=True, kw_only=True):
    """Who supplies a SKU to a buyer: ``seller_id`` None is the brand; ``relation_id`` None means
    no relation applies and the brand supplies by default."""

    seller_id: UUID | None
    relation_id: UUID | None
    drop_ship_allowed: bool


BRAND_ROUTE = SupplyRoute(seller_id=None, relation_id=None, drop_ship_allowed=False)


def supply_relation_out(r: SupplyRelation) -> SupplyRelationOut:
    return SupplyRelationOut(
        id=r.id,
        buyer_id=r.buyer_id,
        seller_id=r.seller_id,
        sku_ids=_uuids(r.sku_ids),
        category_ids=_uuids(r.category_ids),
        brand_ids=_uuids(r.brand_ids),
        region_ids=_uuids(r.region_ids),
        priority=r.priority,
        drop_ship_allowed=r.drop_ship_allowed,
        valid_from=r.valid_from,
        valid_to=r.valid_to,
        version=r.version,
        created_at=r.created_at,
    )


def _relation_scope(scope: str | None) -> list[ColumnElement[bool]]:
    """A dealer sees the relations whose buyer is in its subtree (those it buys or sells by)."""
    if scope is None:
        return []
    return [SupplyRelation.buyer_id.in_(channels.subtree_ids(scope))]


async def _visible_relation(session: AsyncSession, relation_id: UUID, principal: Principal) -> SupplyRelation:
    scope = await channels.dealer_scope_path(session, principal)
    stmt = select(SupplyRelation).where(SupplyRelation.id == relation_id, *_relation_scope(scope))
    found = await session.scalar(stmt)
    if found is None:
        raise NotFound("no such supply relation")
    return found


def _engine_relation(relation_id: Any, values: Any) -> engine.Relation:
    """The engine's view of a relation, from a selected row or (before it is saved) its values."""
    get = values.get if isinstance(values, dict) else lambda name: getattr(values, name)
    return engine.Relation(
        id=str(relation_id),
        seller_id=None if get("seller_id") is None else str(get("seller_id")),
        products=_products(get("sku_ids"), get("category_ids"), get("brand_ids")),
        region_ids=frozenset(str(v) for v in get("region_ids")),
        priority=get("priority"),
        drop_ship_allowed=get("drop_ship_allowed"),
        valid_from=get("valid_from"),
        valid_to=get("valid_to"),
    )


_RELATION_COLUMNS = (
    SupplyRelation.id,
    SupplyRelation.seller_id,
    SupplyRelation.sku_ids,
    SupplyRelation.category_ids,
    SupplyRelation.brand_ids,
    SupplyRelation.region_ids,
    SupplyRelation.priority,
    SupplyRelation.drop_ship_allowed,
    SupplyRelation.valid_from,
    SupplyRelation.valid_to,
)


async def _check_relation(session: AsyncSession, relation_id: UUID, values: dict[str, Any]) -> None:
    """The seller is the brand or an ancestor of the buyer; the ids exist; and no relation of the
    same buyer at the same priority overlaps in validity, products and regions (422 naming both)."""
    if values["valid_from"] is not None and values["valid_to"] is not None:
        if values["valid_to"] < values["valid_from"]:
            raise invalid("valid_to", "must not be before valid_from")
    buyer = await channels.require_customer(session, values["buyer_id"], field="buyer_id")
    if values["seller_id"] is not None:
        seller = await channels.require_customer(session, values["seller_id"], field="seller_id")
        if seller.id == buyer.id or not buyer.path.startswith(seller.path):
            raise invalid(
                "seller_id",
                "the seller must be the brand (null) or an ancestor of the buyer in the dealer tree",
            )
    candidate = _engine_relation(relation_id, values)
    rivals = [
        _engine_relation(row.id, row)
        for row in await session.execute(
            select(*_RELATION_COLUMNS)
            .where(
                SupplyRelation.buyer_id == buyer.id,
                SupplyRelation.priority == values["priority"],
                SupplyRelation.id != relation_id,
            )
            .order_by(SupplyRelation.id)
        )
    ]
    rivals = [
        r
        for r in rivals
        if engine.dates_overlap(candidate.valid_from, candidate.valid_to, r.valid_from, r.valid_to)
    ]
    everyone = [candidate, *rivals]
    facts = await _check_catalog(
        session,
        values["sku_ids"],
        values["category_ids"],
        values["brand_ids"],
        values["region_ids"],
    )
    if rivals:
        # Facts for the rivals' SKUs and lineages of their groups, for the overlap test.
        extra = await catalog.sku_facts(
            session, _uuids({s for r in rivals for s in r.products.sku_ids} - set(facts.products))
        )
        facts.products.update({str(k): product_of(v) for k, v in extra.items()})
        if not facts.categories and any(r.products.category_ids for r in everyone):
            facts.categories = await _category_lineage(session)
        if not facts.regions and any(r.region_ids for r in everyone):
            facts.regions = await _region_lineage(session)
    for rival in rivals:
        if engine.products_overlap(
            candidate.products, rival.products, facts.products, facts.categories
        ) and engine.regions_overlap(candidate.region_ids, rival.region_ids, facts.regions):
            message = (
                f"supply relation {relation_id} overlaps supply relation {rival.id}: same buyer and "
                f"priority {values['priority']}, overlapping validity, products and regions; "
                "give one of them another priority or narrow it"
            )
            raise Unprocessable(
                message,
                code="supply_overlap",
                errors=[
                    {
                        "field": "priority",
                        "message": message,
                        "supply_relation_ids": [str(relation_id), rival.id],
                    }
                ],
            )


async def create_supply_relation(
    session: AsyncSession, data: SupplyRelationIn, principal: Principal
) -> SupplyRelationOut:
    _brand_only(principal, "supply relations")
    await revisions.bump(session, SUPPLY_TOPIC)
    values = {f: getattr(data, f) for f in RELATION_FIELDS if f != "version"}
    relation_id = new_id()
    await _check_relation(session, relation_id, values)
    stored = {k: _stored(k, v) for k, v in values.items()}
    relation = SupplyRelation(id=relation_id, version=1, created_at=utcnow(), **stored)
    session.add(relation)
    await session.flush()
    audit.record_change(
        session, "supply_relation", relation.id, None, audit.snapshot(relation, RELATION_FIELDS)
    )
    return supply_relation_out(relation)


async def get_supply_relation(
    session: AsyncSession, relation_id: UUID, principal: Principal
) -> SupplyRelationOut:
    return supply_relation_out(await _visible_relation(session, relation_id, principal))


async def list_supply_relations(
    session: AsyncSession,
    principal: Principal,
    cursor: str | None,
    limit: int,
    *,
    buyer_id: UUID | None = None,
    seller_id: UUID | None = None,
) -> tuple[list[SupplyRelationOut], str | None]:
    scope = await channels.dealer_scope_path(session, principal)
    stmt = select(SupplyRelation).where(*_relation_scope(scope))
    if buyer_id is not None:
        stmt = stmt.where(SupplyRelation.buyer_id == buyer_id)
    if seller_id is not None:
        stmt = stmt.where(SupplyRelation.seller_id == seller_id)
    rows = (await session.scalars(paged_query(stmt, SupplyRelation.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [supply_relation_out(r) for r in items], nxt


async def update_supply_relation(
    session: AsyncSession,
    relation_id: UUID,
    data: SupplyRelationPatch,
    expected_version: int,
    principal: Principal,
) -> SupplyRelationOut:
    _brand_only(principal, "supply relations")
    await revisions.bump(session, SUPPLY_TOPIC)
    relation = await _visible_relation(session, relation_id, principal)
    audit.check_version(relation, expected_version, "supply relation")
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not UNSET}
    changed = {k: v for k, v in changes.items() if getattr(relation, k) != _stored(k, v)}
    if not changed:
        return supply_relation_out(relation)
    values = {f: changed.get(f, getattr(relation, f)) for f in RELATION_FIELDS if f != "version"}
    await _check_relation(session, relation.id, values)
    before = audit.snapshot(relation, RELATION_FIELDS)
    for name, value in changed.items():
        setattr(relation, name, _stored(name, value))
    relation.version += 1
    await session.flush()
    audit.record_change(
        session, "supply_relation", relation.id, before, audit.snapshot(relation, RELATION_FIELDS)
    )
    return supply_relation_out(relation)


async def delete_supply_relation(
    session: AsyncSession, relation_id: UUID, expected_version: int, principal: Principal
) -> None:
    _brand_only(principal, "supply relations")
    await revisions.bump(session, SUPPLY_TOPIC)
    relation = await _visible_relation(session, relation_id, principal)
    audit.check_version(relation, expected_version, "supply relation")
    before = audit.snapshot(relation, RELATION_FIELDS)
    await session.delete(relation)
    await session.flush()
    audit.record_change(session, "supply_relation", relation.id, before, None)


async def route_supplier(
    session: AsyncSession, *, buyer_id: UUID, sku_ids: Sequence[UUID], region_id: UUID | None, day: date
) -> dict[UUID, SupplyRoute]:
    """Who supplies each SKU of a basket to ``buyer_id``, shipped to ``region_id`` (None: the
    buyer's own region), on ``day``: the winning relation (see engine.route), or the brand when
    none applies. A relation whose seller is no longer an ancestor of the buyer (the tree moved)
    is ignored. SKUs that do not exist are left out. At most five statements whatever the size
    of the basket: the buyer, the region's lineage, the buyer's relations and the SKU facts (two).
    An unknown buyer or region is a 422 naming the argument."""
    buyer = await channels.require_customer(session, buyer_id, field="buyer_id")
    region_path: tuple[UUID, ...] = ()
    if region_id is not None:
        region_path = tuple(await catalog.region_ancestors(session, region_id))
        if not region_path:
            raise invalid("region_id", "no such region")
    elif buyer.region_id is not None:
        region_path = tuple(await catalog.region_ancestors(session, buyer.region_id))
    rows = await session.execute(select(*_RELATION_COLUMNS).where(SupplyRelation.buyer_id == buyer.id))
    ancestors = set(buyer.path.strip("/").split("/")[:-1])
    relations = [
        _engine_relation(row.id, row)
        for row in rows
        if row.seller_id is None or str(row.seller_id) in ancestors
    ]
    facts = await catalog.sku_facts(session, list(set(sku_ids)))
    path = tuple(str(r) for r in region_path)
    out: dict[UUID, SupplyRoute] = {}
    for sku_id, f in facts.items():
        rel = engine.route(relations, product_of(f), path, day)
        out[sku_id] = (
            BRAND_ROUTE
            if rel is None
            else SupplyRoute(
                seller_id=None if rel.seller_id is None else UUID(rel.seller_id),
                relation_id=UUID(rel.id),
                drop_ship_allowed=rel.drop_ship_allowed,
            )
        )
    return out


# --- guide prices ---------------------------------------------------------------------------

GUIDE_FIELDS = ("sku_id", "unit_id", "min_price", "max_price", "valid_from", "valid_to", "version")


def guide_price_out(g: GuidePrice) -> GuidePriceOut:
    return GuidePriceOut(
        id=g.id,
        sku_id=g.sku_id,
        unit_id=g.unit_id,
        min_price=g.min_price,
        max_price=g.max_price,
        valid_from=g.valid_from,
        valid_to=g.valid_to,
        version=g.version,
        created_at=g.created_at,
    )


async def _found_guide(session: AsyncSession, guide_id: UUID) -> GuidePrice:
    guide = await session.get(GuidePrice, (require_tenant(), guide_id))
    if guide is None:
        raise NotFound("no such guide price")
    return guide


async def _check_guide(session: AsyncSession, guide: GuidePrice) -> None:
    """The unit is one the SKU is sold in, the range is a range, and at most one range per SKU
    and unit holds on any day (so the bound a price meets is never in doubt)."""
    if guide.max_price < guide.min_price:
        raise invalid("max_price", "must not be below min_price")
    if guide.valid_from is not None and guide.valid_to is not None and guide.valid_to < guide.valid_from:
        raise invalid("valid_to", "must not be before valid_from")
    stmt = select(GuidePrice.id, GuidePrice.valid_from, GuidePrice.valid_to).where(
        GuidePrice.sku_id == guide.sku_id, GuidePrice.unit_id == guide.unit_id, GuidePrice.id != guide.id
    )
    for other_id, valid_from, valid_to in await session.execute(stmt.order_by(GuidePrice.id)):
        if engine.dates_overlap(guide.valid_from, guide.valid_to, valid_from, valid_to):
            raise invalid(
                "valid_from",
                f"overlaps guide price {other_id} ({valid_from or 'open'} to {valid_to or 'open'}) "
                "of the same SKU and unit",
                code="guide_price_overlap",
            )


async def create_guide_price(
    session: AsyncSession, data: GuidePriceIn, principal: Principal
) -> GuidePriceOut:
    _brand_only(principal, "guide prices")
    await revisions.bump(session, GUIDE_TOPIC)
    facts = (await catalog.sku_facts(session, [data.sku_id])).get(data.sku_id)
    if facts is None:
        raise invalid("sku_id", "no such SKU")
    if data.unit_id not in facts.factors:
        raise invalid(
            "unit_id", "is neither the base unit of the SKU's product nor one of its converted units"
        )
    guide = GuidePrice(
        id=new_id(),
        sku_id=data.sku_id,
        unit_id=data.unit_id,
        min_price=round_money(data.min_price),
        max_price=round_money(data.max_price),
        valid_from=data.valid_from,
        valid_to=data.valid_to,
        version=1,
        created_at=utcnow(),
    )
    await _check_guide(session, guide)
    session.add(guide)
    await session.flush()
    audit.record_change(session, "guide_price", guide.id, None, audit.snapshot(guide, GUIDE_FIELDS))
    return guide_price_out(guide)


async def get_guide_price(session: AsyncSession, guide_id: UUID) -> GuidePriceOut:
    return guide_price_out(await _found_guide(session, guide_id))


async def list_guide_prices(
    session: AsyncSession, cursor: str | None, limit: int, *, sku_id: UUID | None = None
) -> tuple[list[GuidePriceOut], str | None]:
    stmt = select(GuidePrice)
    if sku_id is not None:
        stmt = stmt.where(GuidePrice.sku_id == sku_id)
    rows = (await session.scalars(paged_query(stmt, GuidePrice.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [guide_price_out(g) for g in items], nxt


async def update_guide_price(
    session: AsyncSession,
    guide_id: UUID,
    data: GuidePricePut | GuidePricePatch,
    expected_version: int,
    principal: Principal,
) -> GuidePriceOut:
    """PUT (every field) or PATCH (the fields given) a range; the SKU and unit stay."""
    _brand_only(principal, "guide prices")
    await revisions.bump(session, GUIDE_TOPIC)
    guide = await _found_guide(session, guide_id)
    audit.check_version(guide, expected_version, "guide price")
    values = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not UNSET}
    values = {k: round_money(v) if isinstance(v, Decimal) else v for k, v in values.items()}
    changed = {k: v for k, v in values.items() if getattr(guide, k) != v}
    if not changed:
        return guide_price_out(guide)
    before = audit.snapshot(guide, GUIDE_FIELDS)
    for name, value in changed.items():
        setattr(guide, name, value)
    await _check_guide(session, guide)
    guide.version += 1
    await session.flush()
    audit.record_change(session, "guide_price", guide.id, before, audit.snapshot(guide, GUIDE_FIELDS))
    return guide_price_out(guide)


async def delete_guide_price(
    session: AsyncSession, guide_id: UUID, expected_version: int, principal: Principal
) -> None:
    _brand_only(principal, "guide prices")
    await revisions.bump(session, GUIDE_TOPIC)
    guide = await _found_guide(session, guide_id)
    audit.check_version(guide, expected_version, "guide price")
    before = audit.snapshot(guide, GUIDE_FIELDS)
    await session.delete(guide)
    await session.flush()
    audit.record_change(session, "guide_price", guide.id, before, None)


class PricePoint(msgspec.Struct, frozen=True, kw_only=True):
    """A dealer's price for a SKU in a unit over a validity, as the prices domain saves it."""

    sku_id: UUID
    unit_id: UUID
    price: Decimal
    valid_from: date | None = None
    valid_to: date | None = None


class GuideViolation(msgspec.Struct, frozen=True, kw_only=True):
    """A price outside a guide range that overlaps its validity; ``index`` is its position in
    the points checked, ``min_price``/``max_price`` the bounds in the point's unit."""

    index: int
    guide_price_id: UUID
    min_price: Decimal
    max_price: Decimal
    message: str


async def guide_price_violations(session: AsyncSession, points: Sequence[PricePoint]) -> list[GuideViolation]:
    """The points whose price leaves a guide range valid on any day of the point's validity, in
    three statements whatever their number (the ranges and the SKU facts). A range in the SKU's
    own unit bounds the point; without one, a range in the base unit bounds it scaled by the
    unit's factor (a case of 12 is bounded by 12 × the piece range), so a dealer cannot escape
    a bound by pricing in another unit. A SKU without a range is not bounded."""
    if not points:
        return []
    skus = {p.sku_id for p in points}
    rows = (await session.scalars(select(GuidePrice).where(GuidePrice.sku_id.in_(skus)))).all()
    ranges: dict[tuple[UUID, UUID], list[GuidePrice]] = {}
    for g in sorted(rows, key=lambda g: g.id):
        ranges.setdefault((g.sku_id, g.unit_id), []).append(g)
    facts = await catalog.sku_facts(session, list(skus)) if rows else {}
    out = []
    for index, point in enumerate(points):
        factor = Decimal(1)
        found = ranges.get((point.sku_id, point.unit_id))
        if not found and point.sku_id in facts:
            f = facts[point.sku_id]
            found = ranges.get((point.sku_id, f.base_unit_id))
            factor = f.factors.get(point.unit_id, Decimal(1))
        for g in found or ():
            if not engine.dates_overlap(point.valid_from, point.valid_to, g.valid_from, g.valid_to):
                continue
            low, high = round_money(g.min_price * factor), round_money(g.max_price * factor)
            if not low <= point.price <= high:
                out.append(
                    GuideViolation(
                        index=index,
                        guide_price_id=g.id,
                        min_price=low,
                        max_price=high,
                        message=f"{point.price} is outside the guide price range {low} to {high} "
                        f"(guide price {g.id})",
                    )
                )
    return out
