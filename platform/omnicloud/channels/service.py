"""Channel use cases: customers, the dealer tree, sales orgs and the customer CSV.

Customers form a tree through ``parent_id`` with a materialised ``path``
(``/<top dealer id>/.../<own id>/``), so a dealer's subtree is one prefix match. A dealer user
sees only its own customer and the customers below it; any other id answers 404. Every write
records an audit entry and emits an outbox event in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType
from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from omnicloud.catalog import service as catalog
from omnicloud.catalog.schemas import ImportResult
from omnicloud.channels.models import Customer, SalesOrg
from omnicloud.channels.schemas import (
    CUSTOMER_CSV_COLUMNS,
    CustomerCsvRow,
    CustomerIn,
    CustomerOut,
    CustomerPatch,
    CustomerSpec,
    SalesOrgIn,
    SalesOrgOut,
    SalesOrgPatch,
    SalesOrgSpec,
)
from omnicloud.core import audit
from omnicloud.core.csvio import RowError, parse_rows, raise_if_errors, to_csv
from omnicloud.core.errors import Conflict, Forbidden, NotFound, Problem, invalid
from omnicloud.core.ids import new_id
from omnicloud.core.paging import paged_query, split_page
from omnicloud.core.security import Principal
from omnicloud.core.tenancy import require_tenant

Outcome = Literal["created", "updated", "unchanged"]

SALES_ORG_FIELDS = ("code", "name", "parent_id")
CUSTOMER_FIELDS = (
    "code",
    "name",
    "kind",
    "customer_class",
    "level",
    "channel",
    "region_id",
    "sales_org_id",
    "parent_id",
    "path",
    "status",
    "version",
)
OUT_OF_SCOPE = "/nothing/"  # a path prefix no customer has


# --- scope ----------------------------------------------------------------------------------


async def require_customer(
    session: AsyncSession, customer_id: UUID, *, field: str = "customer_id"
) -> Customer:
    """The customer, or a 422 naming the field that referred to it."""
    customer = await session.get(Customer, (require_tenant(), customer_id))
    if customer is None:
        raise invalid(field, "no such customer")
    return customer


async def dealer_scope_path(session: AsyncSession, principal: Principal) -> str | None:
    """The dealer-tree path prefix a dealer user may see (its customer and every sub-dealer),
    or None for users who are not bound to a customer. Filter with
    ``Customer.path.startswith(prefix)``."""
    if principal.customer_id is None:
        return None
    # Through the identity map: a request that already holds the dealer's row reads nothing more,
    # and one that does not reads the row it will most likely need next anyway.
    customer = await session.get(Customer, (require_tenant(), principal.customer_id))
    if customer is None:  # the bound customer is gone: see nothing rather than everything
        return OUT_OF_SCOPE
    return customer.path


def subtree_ids(prefix: str) -> Select[tuple[UUID]]:
    """The ids of the customers under a dealer-tree path prefix, as a subquery other domains
    can filter by (one indexed prefix match instead of loading the subtree)."""
    return select(Customer.id).where(Customer.path.startswith(prefix))


def _in_scope(customer: Customer, scope: str | None) -> bool:
    return scope is None or customer.path.startswith(scope)


async def _scoped(session: AsyncSession, customer_id: UUID, scope: str | None) -> Customer | None:
    customer = await session.get(Customer, (require_tenant(), customer_id))
    return customer if customer is not None and _in_scope(customer, scope) else None


async def visible_customer(session: AsyncSession, customer_id: UUID, principal: Principal) -> Customer:
    """The customer if the caller may see it; otherwise 404, whether or not it exists."""
    customer = await _scoped(session, customer_id, await dealer_scope_path(session, principal))
    if customer is None:
        raise NotFound("no such customer")
    return customer


# --- sales orgs -----------------------------------------------------------------------------


def sales_org_out(o: SalesOrg) -> SalesOrgOut:
    return SalesOrgOut(id=o.id, code=o.code, name=o.name, parent_id=o.parent_id)


async def _sales_org(session: AsyncSession, org_id: UUID, field: str) -> SalesOrg:
    org = await session.get(SalesOrg, (require_tenant(), org_id))
    if org is None:
        raise invalid(field, "no such sales org")
    return org


async def _sales_org_by_code(session: AsyncSession, code: str, field: str) -> SalesOrg:
    org = await session.scalar(select(SalesOrg).where(SalesOrg.code == code))
    if org is None:
        raise invalid(field, f"no sales org with code {code!r}")
    return org


async def sales_org_id_by_code(session: AsyncSession, code: str, *, field: str = "sales_org_code") -> UUID:
    """The sales org's id, or a 422 naming the field that gave the code."""
    return (await _sales_org_by_code(session, code, field)).id


async def _save_sales_org(
    session: AsyncSession, org: SalesOrg | None, values: dict[str, Any], parent_field: str
) -> tuple[SalesOrg, Outcome]:
    parent_id = values.get("parent_id", UNSET)
    if org is not None and parent_id is not UNSET and parent_id != org.parent_id:
        if org.id in await catalog.ancestors_by_parent(session, SalesOrg, parent_id, parent_field):
            raise invalid(parent_field, "a sales org cannot move under itself or its descendants")
    if org is None:
        org = SalesOrg(**{k: v for k, v in values.items() if v is not UNSET})
        session.add(org)
        await catalog.flush_unique(session, f"sales org {org.code}")
        audit.record_change(session, "sales_org", org.id, None, audit.snapshot(org, SALES_ORG_FIELDS))
        return org, "created"
    before = audit.snapshot(org, SALES_ORG_FIELDS)
    if not catalog.assign(org, values):
        return org, "unchanged"
    await catalog.flush_unique(session, f"sales org {org.code}")
    audit.record_change(session, "sales_org", org.id, before, audit.snapshot(org, SALES_ORG_FIELDS))
    return org, "updated"


async def create_sales_org(session: AsyncSession, data: SalesOrgIn) -> SalesOrgOut:
    if await session.scalar(select(SalesOrg.id).where(SalesOrg.code == data.code)) is not None:
        raise Conflict(f"sales org {data.code} already exists", code="duplicate")
    if data.parent_id is not None:
        await _sales_org(session, data.parent_id, "parent_id")
    values = {"code": data.code, "name": data.name, "parent_id": data.parent_id}
    org, _ = await _save_sales_org(session, None, values, "parent_id")
    return sales_org_out(org)


async def update_sales_org(session: AsyncSession, org_id: UUID, data: SalesOrgPatch) -> SalesOrgOut:
    org = await session.get(SalesOrg, (require_tenant(), org_id))
    if org is None:
        raise NotFound("no such sales org")
    if isinstance(data.parent_id, UUID):
        await _sales_org(session, data.parent_id, "parent_id")
    org, _ = await _save_sales_org(
        session, org, {"name": data.name, "parent_id": data.parent_id}, "parent_id"
    )
    return sales_org_out(org)


async def upsert_sales_org(session: AsyncSession, spec: SalesOrgSpec) -> tuple[SalesOrgOut, bool]:
    org = await session.scalar(select(SalesOrg).where(SalesOrg.code == spec.code))
    parent_id: UUID | UnsetType | None = UNSET
    if spec.parent_code is None:
        parent_id = None
    elif isinstance(spec.parent_code, str):
        parent_id = (await _sales_org_by_code(session, spec.parent_code, "parent_code")).id
    values = {"code": spec.code, "name": spec.name, "parent_id": parent_id}
    org, outcome = await _save_sales_org(session, org, values, "parent_code")
    return sales_org_out(org), outcome != "unchanged"


async def get_sales_org(session: AsyncSession, org_id: UUID) -> SalesOrgOut:
    org = await session.get(SalesOrg, (require_tenant(), org_id))
    if org is None:
        raise NotFound("no such sales org")
    return sales_org_out(org)


async def list_sales_orgs(
    session: AsyncSession, cursor: str | None, limit: int, *, parent_id: UUID | None = None
) -> tuple[list[SalesOrgOut], str | None]:
    stmt = select(SalesOrg)
    if parent_id is not None:
        stmt = stmt.where(SalesOrg.parent_id == parent_id)
    rows = (await session.scalars(paged_query(stmt, SalesOrg.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [sales_org_out(o) for o in items], nxt


# --- customers: writes ----------------------------------------------------------------------


def customer_out(c: Customer) -> CustomerOut:
    return CustomerOut(
        id=c.id,
        code=c.code,
        name=c.name,
        kind=c.kind,
        customer_class=c.customer_class,
        level=c.level,
        channel=c.channel,
        region_id=c.region_id,
        sales_org_id=c.sales_org_id,
        parent_id=c.parent_id,
        path=c.path,
        status=c.status,
        version=c.version,
        created_at=c.created_at,
    )


def _check_tree(
    customer: Customer | None,
    kind: str,
    parent: Customer | UnsetType | None,
    scope: str | None,
    parent_field: str,
) -> None:
    """The tree rules: only dealers are parents, no cycles, dealers write inside their subtree."""
    if isinstance(parent, Customer):
        if parent.kind != "dealer":
            raise invalid(parent_field, "a terminal cannot be the parent of a customer")
        if customer is not None and parent.path.startswith(customer.path):
            raise invalid(parent_field, "a customer cannot move under itself or its descendants")
    if scope is None:
        return
    if parent is None or (parent is UNSET and customer is None):
        raise invalid(parent_field, "a dealer creates and moves customers inside its own subtree only")


async def _has_children(session: AsyncSession, customer: Customer) -> bool:
    child = await session.scalar(select(Customer.id).where(Customer.parent_id == customer.id).limit(1))
    return child is not None


async def _save_customer(
    session: AsyncSession,
    customer: Customer | None,
    values: dict[str, Any],
    parent: Customer | UnsetType | None,
    *,
    scope: str | None,
    parent_field: str,
    expected_version: int | None = None,
) -> tuple[Customer, Outcome]:
    """Write a customer whose references are resolved. ``parent`` is UNSET to keep it."""
    kind = values.get("kind", UNSET)
    if kind is UNSET:
        assert customer is not None
        kind = customer.kind
    _check_tree(customer, kind, parent, scope, parent_field)
    if customer is None:
        cid = new_id()
        parent_path = parent.path if isinstance(parent, Customer) else "/"
        fields = {k: v for k, v in values.items() if v is not UNSET}
        customer = Customer(
            id=cid,
            parent_id=parent.id if isinstance(parent, Customer) else None,
            path=f"{parent_path}{cid}/",
            **{"status": "active", **fields},
        )
        session.add(customer)
        await catalog.flush_unique(session, f"customer {customer.code}")
        audit.record_change(session, "customer", cid, None, audit.snapshot(customer, CUSTOMER_FIELDS))
        return customer, "created"
    audit.check_version(customer, expected_version, "customer")
    if kind == "terminal" and customer.kind == "dealer" and await _has_children(session, customer):
        raise invalid("kind", "a customer with children cannot become a terminal")
    new_parent_id = parent.id if isinstance(parent, Customer) else None
    moves = parent is not UNSET and new_parent_id != customer.parent_id
    if not moves and not catalog.differs(customer, values):
        return customer, "unchanged"
    if scope is not None and customer.path == scope:
        # Its own class, level or place in the tree would change what the dealer is offered.
        raise Forbidden("a dealer cannot change its own customer record", code="own_customer")
    before = audit.snapshot(customer, CUSTOMER_FIELDS)
    catalog.assign(customer, values)
    if moves:
        new_path = parent.path if isinstance(parent, Customer) else "/"
        await _check_move(session, customer, new_path)
        await _move_subtree(session, customer, new_path)
        customer.parent_id = new_parent_id
    customer.version += 1
    await catalog.flush_unique(session, f"customer {customer.code}")
    audit.record_change(session, "customer", customer.id, before, audit.snapshot(customer, CUSTOMER_FIELDS))
    return customer, "updated"


MoveGuard = Callable[[AsyncSession, str, frozenset[UUID]], Awaitable[str | None]]
_MOVE_GUARDS: list[MoveGuard] = []


def add_move_guard(guard: MoveGuard) -> None:
    """Register ``guard(session, subtree_prefix, leaving)``: what keeps the customers under
    ``subtree_prefix`` tied to the dealers in ``leaving`` (their ancestors no more after a move),
    or None. Pools that hold money, credit or orders with a dealer register one, so a move never
    hands them to another dealer nor hides them from their own."""
    if guard not in _MOVE_GUARDS:
        _MOVE_GUARDS.append(guard)


async def _check_move(session: AsyncSession, customer: Customer, new_parent_path: str) -> None:
    old_ancestors = {UUID(x) for x in customer.path.strip("/").split("/")[:-1]}
    new_ancestors = {UUID(x) for x in new_parent_path.strip("/").split("/") if x}
    leaving = frozenset(old_ancestors - new_ancestors)
    if not leaving:
        return
    for guard in _MOVE_GUARDS:
        reason = await guard(session, customer.path, leaving)
        if reason is not None:
            raise Conflict(f"{customer.code} cannot move: {reason}", code="has_dealer_relations")


async def _move_subtree(session: AsyncSession, customer: Customer, new_parent_path: str) -> None:
    old, new = customer.path, f"{new_parent_path}{customer.id}/"
    for row in (await session.scalars(select(Customer).where(Customer.path.startswith(old)))).all():
        row.path = new + row.path[len(old) :]
    customer.path = new


async def _references(session: AsyncSession, data: CustomerIn | CustomerPatch) -> dict[str, Any]:
    """Resolve the ids of a REST body to the values to write (422 naming the field)."""
    values: dict[str, Any] = {
        name: getattr(data, name)
        for name in (
            "name",
            "kind",
            "customer_class",
            "level",
            "channel",
            "region_id",
            "sales_org_id",
            "status",
        )
    }
    if isinstance(data.region_id, UUID):
        await catalog.require_region(session, data.region_id, field="region_id")
    if isinstance(data.sales_org_id, UUID):
        await _sales_org(session, data.sales_org_id, "sales_org_id")
    return values


async def _parent_by_id(
    session: AsyncSession, parent_id: UUID | UnsetType | None, scope: str | None
) -> Customer | UnsetType | None:
    if not isinstance(parent_id, UUID):
        return parent_id
    parent = await _scoped(session, parent_id, scope)
    if parent is None:
        raise invalid("parent_id", "no such customer")
    return parent


async def create_customer(session: AsyncSession, data: CustomerIn, principal: Principal) -> CustomerOut:
    scope = await dealer_scope_path(session, principal)
    if await session.scalar(select(Customer.id).where(Customer.code == data.code)) is not None:
        raise Conflict(f"customer {data.code} already exists", code="duplicate")
    parent = await _parent_by_id(session, data.parent_id, scope)
    values = {**await _references(session, data), "code": data.code}
    customer, _ = await _save_customer(session, None, values, parent, scope=scope, parent_field="parent_id")
    return customer_out(customer)


async def update_customer(
    session: AsyncSession,
    customer_id: UUID,
    data: CustomerPatch,
    principal: Principal,
    expected_version: int | None = None,
) -> CustomerOut:
    scope = await dealer_scope_path(session, principal)
    customer = await _scoped(session, customer_id, scope)
    if customer is None:
        raise NotFound("no such customer")
    parent = await _parent_by_id(session, data.parent_id, scope)
    values = await _references(session, data)
    customer, _ = await _save_customer(
        session,
        customer,
        values,
        parent,
        scope=scope,
        parent_field="parent_id",
        expected_version=expected_version,
    )
    return customer_out(customer)


async def _upsert_customer(
    session: AsyncSession, spec: CustomerSpec, scope: str | None
) -> tuple[Customer, Outcome]:
    customer = await session.scalar(select(Customer).where(Customer.code == spec.code))
    if customer is not None and not _in_scope(customer, scope):
        raise invalid("code", "already used by a customer outside your subtree")
    parent: Customer | UnsetType | None = UNSET
    if spec.parent_code is None:
        parent = None
    elif isinstance(spec.parent_code, str):
        found = await session.scalar(select(Customer).where(Customer.code == spec.parent_code))
        if found is None or not _in_scope(found, scope):
            raise invalid("parent_code", f"no customer with code {spec.parent_code!r}")
        parent = found
    values: dict[str, Any] = {
        "code": spec.code,
        "name": spec.name,
        "kind": spec.kind,
        "customer_class": spec.customer_class,
        "level": spec.level,
        "channel": spec.channel,
        "status": spec.status,
    }
    if isinstance(spec.region_code, str):
        values["region_id"] = (
            await catalog.region_by_code(session, spec.region_code, field="region_code")
        ).id
    elif spec.region_code is None:
        values["region_id"] = None
    if isinstance(spec.sales_org_code, str):
        values["sales_org_id"] = (await _sales_org_by_code(session, spec.sales_org_code, "sales_org_code")).id
    elif spec.sales_org_code is None:
        values["sales_org_id"] = None
    return await _save_customer(session, customer, values, parent, scope=scope, parent_field="parent_code")


async def upsert_customer(
    session: AsyncSession, spec: CustomerSpec, *, scope: str | None = None
) -> tuple[CustomerOut, bool]:
    """Create or update a customer by code. ``scope`` (a dealer's path) confines the write to
    that dealer's subtree."""
    customer, outcome = await _upsert_customer(session, spec, scope)
    return customer_out(customer), outcome != "unchanged"


# --- customers: reads -----------------------------------------------------------------------


async def get_customer(session: AsyncSession, customer_id: UUID, principal: Principal) -> CustomerOut:
    return customer_out(await visible_customer(session, customer_id, principal))


async def _customer_page(
    session: AsyncSession, stmt: Select[Any], cursor: str | None, limit: int
) -> tuple[list[CustomerOut], str | None]:
    rows = (await session.scalars(paged_query(stmt, Customer.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [customer_out(c) for c in items], nxt


async def list_customers(
    session: AsyncSession,
    principal: Principal,
    cursor: str | None,
    limit: int,
    *,
    filters: dict[str, Any] | None = None,
    q: str | None = None,
) -> tuple[list[CustomerOut], str | None]:
    """Customers the caller may see; ``filters`` maps column names to required values."""
    stmt = select(Customer)
    scope = await dealer_scope_path(session, principal)
    if scope is not None:
        stmt = stmt.where(Customer.path.startswith(scope))
    for name, value in (filters or {}).items():
        if value is not None:
            stmt = stmt.where(getattr(Customer, name) == value)
    if q:
        stmt = stmt.where(
            or_(
                catalog.contains_ci(Customer.code, q),
                catalog.contains_ci(Customer.name, q),
            )
        )
    return await _customer_page(session, stmt, cursor, limit)


async def list_children(
    session: AsyncSession, customer_id: UUID, principal: Principal, cursor: str | None, limit: int
) -> tuple[list[CustomerOut], str | None]:
    customer = await visible_customer(session, customer_id, principal)
    stmt = select(Customer).where(Customer.parent_id == customer.id)
    return await _customer_page(session, stmt, cursor, limit)


async def list_subtree(
    session: AsyncSession, customer_id: UUID, principal: Principal, cursor: str | None, limit: int
) -> tuple[list[CustomerOut], str | None]:
    """The customer and every customer below it."""
    customer = await visible_customer(session, customer_id, principal)
    stmt = select(Customer).where(Customer.path.startswith(customer.path))
    return await _customer_page(session, stmt, cursor, limit)


# --- customer CSV ---------------------------------------------------------------------------

_CSV_FIELD = {"customer_class": "class"}
_RANK: tuple[Outcome, ...] = ("unchanged", "updated", "created")


def _file_order(
    rows: list[tuple[int, CustomerCsvRow]], errors: list[RowError]
) -> list[tuple[int, CustomerCsvRow]]:
    """Rows ordered parents first, so a file may define a parent after its children."""
    by_code: dict[str, tuple[int, CustomerCsvRow]] = {}
    for line, row in rows:
        if row.code in by_code:
            errors.append(RowError(line, "code", f"already on line {by_code[row.code][0]}"))
        else:
            by_code[row.code] = (line, row)
    ordered: list[tuple[int, CustomerCsvRow]] = []
    state: dict[str, str] = {}
    for code in by_code:
        chain: list[str] = []
        current: str | None = code
        while current in by_code and current not in state:
            state[current] = "visiting"
            chain.append(current)
            current = by_code[current][1].parent_code
        if current in by_code and state.get(current) == "visiting":
            for member in chain[chain.index(current) :]:
                errors.append(RowError(by_code[member][0], "parent_code", "the file's parents form a cycle"))
                state[member] = "bad"
            chain = chain[: chain.index(current)]
        for member in reversed(chain):
            state[member] = "done"
            ordered.append(by_code[member])
    return ordered


def _spec(row: CustomerCsvRow) -> CustomerSpec:
    def keep(value: Any) -> Any:
        return UNSET if value is None else value

    return CustomerSpec(
        code=row.code,
        name=row.name,
        kind=row.kind,
        customer_class=keep(row.customer_class),
        level=keep(row.level),
        channel=keep(row.channel),
        region_code=keep(row.region_code),
        sales_org_code=keep(row.sales_org_code),
        parent_code=keep(row.parent_code),
    )


async def import_customers_csv(session: AsyncSession, text: str, principal: Principal) -> ImportResult:
    """Upsert customers from CSV by code, all or nothing; dealers only inside their subtree."""
    scope = await dealer_scope_path(session, principal)
    rows = parse_rows(text, CustomerCsvRow, required_columns=("code", "name", "kind"))
    errors: list[RowError] = []
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    failed: dict[str, int] = {}
    for line, row in _file_order(rows, errors):
        if row.parent_code in failed:
            errors.append(
                RowError(line, "parent_code", f"the parent's row (line {failed[row.parent_code]}) is bad")
            )
            failed[row.code] = line
            continue
        try:
            _, outcome = await _upsert_customer(session, _spec(row), scope)
        except Problem as problem:
            if problem.status == 409:
                raise
            failed[row.code] = line
            errors.append(catalog.row_error(line, problem, _CSV_FIELD))
            continue
        counts[outcome] += 1
    raise_if_errors(errors)
    return ImportResult(**counts)


async def export_customers_csv(session: AsyncSession, principal: Principal) -> str:
    """The customers the caller may see, in the import's columns (parents before children)."""
    scope = await dealer_scope_path(session, principal)
    parent = aliased(Customer)
    stmt = (
        select(
            Customer.code,
            Customer.name,
            Customer.kind,
            Customer.customer_class,
            Customer.level,
            Customer.channel,
            Customer.path,
            parent.code,
            parent.path,
            Customer.region_id,
            Customer.sales_org_id,
        )
        .outerjoin(parent, parent.id == Customer.parent_id)
        .order_by(Customer.path)
    )
    if scope is not None:
        stmt = stmt.where(Customer.path.startswith(scope))
    regions = await catalog.region_codes(session)
    orgs = {oid: code for oid, code in (await session.execute(select(SalesOrg.id, SalesOrg.code))).all()}
    out = []
    for code, name, kind, cls, level, channel, _, parent_code, parent_path, region_id, org_id in (
        await session.execute(stmt)
    ).all():
        visible_parent = (
            parent_code
            if parent_path is not None and (scope is None or parent_path.startswith(scope))
            else None
        )
        out.append(
            (
                code,
                name,
                kind,
                cls,
                level,
                regions.get(region_id) if region_id else None,
                channel,
                visible_parent,
                orgs.get(org_id) if org_id else None,
            )
        )
    return to_csv(CUSTOMER_CSV_COLUMNS, out)


async def customer_id_by_code(session: AsyncSession, code: str, *, field: str = "customer_code") -> UUID:
    """The id of the customer with this code, or a 422 naming the field that referred to it."""
    customer_id = await session.scalar(select(Customer.id).where(Customer.code == code))
    if customer_id is None:
        raise invalid(field, f"no customer {code!r}")
    return customer_id


# --- facts for pricing ----------------------------------------------------------------------


class Party(msgspec.Struct, frozen=True, kw_only=True):
    """Who buys, as pricing sees it; ``region_path`` is the customer's region, then its ancestors."""

    customer_id: UUID
    customer_class: str | None
    level: str | None
    channel: str | None
    sales_org_id: UUID | None
    region_path: tuple[UUID, ...]


async def pricing_party(session: AsyncSession, customer_id: UUID, principal: Principal) -> Party:
    """The customer with its region lineage; 404 when the caller may not see it."""
    customer = await visible_customer(session, customer_id, principal)
    return Party(
        customer_id=customer_id,
        customer_class=customer.customer_class,
        level=customer.level,
        channel=customer.channel,
        sales_org_id=customer.sales_org_id,
        region_path=tuple(await catalog.region_ancestors(session, customer.region_id)),
    )
