"""Price configuration (定价): the access sequence, price lists, entries and floors, and the
compiled price book the quote service prices with.

Every write bumps the ``prices`` revision before it reads anything: the revision row serialises a
tenant's price writes, so the checks below see every committed rule, and the compiled book is
cached by that revision. Rules are checked when they are saved, never at quote time: a list's
dimensions are exactly its step's, references exist in the tenant, an entry's unit is one its SKU
is sold in, and no two rules tie (same step, dimension values, SKU+unit and priority, overlapping
validity and bands). The tie check reads only the rules that could tie, with one query per write.

Dealers' own price lists (DOMAIN §7): a list with ``owner_customer_id`` belongs to that dealer. A
dealer (the ``owner`` argument: the dealer customer a dealer user acts for, None for the brand's
staff) sees and maintains only its own lists (404 for any other); the brand's staff read every
list and maintain only the brand's (403 ``dealer_owned`` on a dealer's). Every price of a dealer's
list lies inside the brand's guide price range for its SKU (422 ``outside_guide_price``); when the
brand later narrows a range, entries left outside it are flagged on read (``guide_violation``) and
refused at quote time. Each owner's lists compile into their own book under their own revision
topic, so one dealer's change never recompiles the brand's book or another dealer's; ties are
only ever between lists of the same owner.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
from msgspec import UNSET
from sqlalchemy import ColumnElement, and_, bindparam, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from omnicloud.catalog import service as catalog
from omnicloud.catalog.schemas import check_decimal
from omnicloud.channels import service as channels
from omnicloud.core import audit, revisions
from omnicloud.core.csvio import RowError, parse_rows, raise_if_errors, to_csv
from omnicloud.core.db import TENANT, TENANT_PARAM, TenantQuery, utcnow
from omnicloud.core.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    Unprocessable,
    field_error,
    invalid,
)
from omnicloud.core.ids import new_id
from omnicloud.core.paging import paged_query, split_page
from omnicloud.core.tenancy import require_tenant
from omnicloud.distribution import service as distribution
from omnicloud.policies import pricing
from omnicloud.policies.prices.models import PriceFloor, PriceList, PriceListEntry, PriceSequence
from omnicloud.policies.prices.schemas import (
    ENTRY_CSV_COLUMNS,
    PriceEntryCsvRow,
    PriceEntryIn,
    PriceEntryOut,
    PriceEntryPatch,
    PriceFloorIn,
    PriceFloorOut,
    PriceFloorPatch,
    PriceImportResult,
    PriceListIn,
    PriceListOut,
    PriceListPatch,
    SequenceIn,
    SequenceOut,
    StepOut,
)
from omnicloud.policies.pricing import DIMENSIONS, AccessStep, Floor, PriceEntry

TOPIC = "prices"
"""The brand's price configuration (its lists, floors and the access sequence)."""
SEQUENCE_TOPIC = "price_sequence"
"""Bumped with ``prices`` when the access sequence changes: the dealers' books depend on it."""
CENT = Decimal("0.01")
FOURTH = Decimal("0.0001")
ZERO = Decimal(0)
MAX_TIES_SHOWN = 5

DEFAULT_SEQUENCE: tuple[AccessStep, ...] = (
    AccessStep(name="customer", dimensions=("customer_id",), exclusive=True),
    AccessStep(name="level_region", dimensions=("level", "region_id")),
    AccessStep(name="class_channel", dimensions=("customer_class", "channel")),
    AccessStep(name="region", dimensions=("region_id",)),
    AccessStep(name="base"),
)
"""The built-in access sequence, from specific to general, used until a tenant stores its own."""

LIST_FIELDS = (
    "code",
    "name",
    "step",
    "currency",
    "priority",
    *DIMENSIONS,
    "valid_from",
    "valid_to",
    "status",
    "owner_customer_id",
    "version",
)
RULE_FIELDS = ("step", "priority", *DIMENSIONS, "valid_from", "valid_to", "status")
ENTRY_FIELDS = (
    "price_list_id",
    "sku_id",
    "unit_id",
    "price",
    "min_qty",
    "max_qty",
    "mode",
    "valid_from",
    "valid_to",
    "version",
)
FLOOR_FIELDS = ("sku_id", "unit_id", "price", "action", "valid_from", "valid_to", "version")


# --- rows read by column (the compile and check paths never load ORM entities) ---------------


class ListRow(msgspec.Struct, frozen=True):
    """A price list's columns that place its entries (step, priority, dimensions, validity)."""

    id: UUID
    code: str
    step: str
    priority: int
    customer_id: UUID | None
    customer_class: str | None
    level: str | None
    region_id: UUID | None
    channel: str | None
    sales_org_id: UUID | None
    valid_from: date | None
    valid_to: date | None
    status: str
    owner_customer_id: UUID | None = None


class EntryRow(msgspec.Struct, frozen=True):
    """A price entry's columns, as stored."""

    id: UUID
    price_list_id: UUID
    sku_id: UUID
    unit_id: UUID
    price: Decimal
    min_qty: Decimal
    max_qty: Decimal | None
    mode: str
    valid_from: date | None
    valid_to: date | None


LIST_COLUMNS = tuple(getattr(PriceList, f) for f in ListRow.__struct_fields__)
ENTRY_COLUMNS = tuple(getattr(PriceListEntry, f) for f in EntryRow.__struct_fields__)
FLOOR_COLUMNS = (
    PriceFloor.id,
    PriceFloor.sku_id,
    PriceFloor.unit_id,
    PriceFloor.price,
    PriceFloor.action,
    PriceFloor.valid_from,
    PriceFloor.valid_to,
)


def _list_row(pl: PriceList, **changes: Any) -> ListRow:
    return ListRow(*(changes.get(f, getattr(pl, f)) for f in ListRow.__struct_fields__))


def _entry_row(e: PriceListEntry, **changes: Any) -> EntryRow:
    return EntryRow(*(changes.get(f, getattr(e, f)) for f in EntryRow.__struct_fields__))


def _s(value: UUID | None) -> str | None:
    return None if value is None else str(value)


def _later(a: date | None, b: date | None) -> date | None:
    return b if a is None else a if b is None else max(a, b)


def _earlier(a: date | None, b: date | None) -> date | None:
    return b if a is None else a if b is None else min(a, b)


def _dates_overlap(a_from: date | None, a_to: date | None, b_from: date | None, b_to: date | None) -> bool:
    return (a_to is None or b_from is None or b_from <= a_to) and (
        b_to is None or a_from is None or a_from <= b_to
    )


def _list_fields(pl: ListRow) -> dict[str, Any]:
    """What every entry of a list takes from it: its step, priority and dimension values."""
    return {
        "price_list_id": str(pl.id),
        "step": pl.step,
        "priority": pl.priority,
        "customer_id": _s(pl.customer_id),
        "customer_class": pl.customer_class,
        "level": pl.level,
        "region_id": _s(pl.region_id),
        "channel": pl.channel,
        "sales_org_id": _s(pl.sales_org_id),
    }


def _engine_entry(e: EntryRow, pl: ListRow, fields: dict[str, Any] | None = None) -> PriceEntry | None:
    """The engine's view of an entry: its list's step, dimensions and priority (``fields``, from
    :func:`_list_fields`), and the intersection of both validities (None when they do not meet:
    the entry never applies)."""
    valid_from, valid_to = _later(pl.valid_from, e.valid_from), _earlier(pl.valid_to, e.valid_to)
    if valid_from is not None and valid_to is not None and valid_to < valid_from:
        return None
    return PriceEntry(
        id=str(e.id),
        sku_id=str(e.sku_id),
        uom=str(e.unit_id),
        price=e.price,
        valid_from=valid_from,
        valid_to=valid_to,
        min_qty=e.min_qty,
        max_qty=e.max_qty,
        mode=e.mode,  # type: ignore[arg-type]
        **(fields or _list_fields(pl)),
    )


def owner_topic(owner: UUID | None) -> str:
    """The revision topic of one owner's lists: ``prices`` for the brand, one per dealer."""
    return TOPIC if owner is None else f"prices:{owner.hex}"


async def _changing(session: AsyncSession, owner: UUID | None = None) -> None:
    """Start a write to ``owner``'s lists: bump its revision, which also serialises that owner's
    price writes so that the tie checks see every committed rival (ties are per owner)."""
    await revisions.bump(session, owner_topic(owner))


# --- the access sequence -------------------------------------------------------------------


async def _sequence_row(session: AsyncSession) -> PriceSequence | None:
    return await session.scalar(select(PriceSequence))


def _steps(row: PriceSequence | None) -> tuple[AccessStep, ...]:
    return DEFAULT_SEQUENCE if row is None else msgspec.convert(row.steps, tuple[AccessStep, ...])


async def access_sequence(session: AsyncSession) -> tuple[AccessStep, ...]:
    """The tenant's access sequence, or the built-in default."""
    return _steps(await _sequence_row(session))


def _sequence_out(row: PriceSequence | None) -> SequenceOut:
    return SequenceOut(
        steps=[
            StepOut(name=s.name, dimensions=list(s.dimensions), exclusive=s.exclusive) for s in _steps(row)
        ],
        version=0 if row is None else row.version,
        updated_at=None if row is None else row.updated_at,
    )


async def get_sequence(session: AsyncSession) -> SequenceOut:
    return _sequence_out(await _sequence_row(session))


def _probe(pl: ListRow) -> PriceEntry:
    """A stand-in entry for checking that a list fits its step (its own SKU, so probes never tie)."""
    return PriceEntry(
        id=str(pl.id),
        price_list_id=str(pl.id),
        step=pl.step,
        sku_id=str(pl.id),
        uom="",
        price=ZERO,
        customer_id=_s(pl.customer_id),
        customer_class=pl.customer_class,
        level=pl.level,
        region_id=_s(pl.region_id),
        channel=pl.channel,
        sales_org_id=_s(pl.sales_org_id),
    )


def _misfits(
    lists: Iterable[ListRow], sequence: Sequence[AccessStep]
) -> list[tuple[ListRow, pricing.Conflict]]:
    by_id = {str(pl.id): pl for pl in lists}
    conflicts = pricing.validate_rules([_probe(pl) for pl in by_id.values()], sequence)
    return [(by_id[c.entry_ids[0]], c) for c in conflicts if c.kind != "tie"]


async def put_sequence(session: AsyncSession, data: SequenceIn, expected_version: int) -> SequenceOut:
    """Replace the access sequence (If-Match: its version, 0 for the built-in default). Refused
    when an existing price list would no longer fit: its step gone or its dimensions changed."""
    await _changing(session)
    await revisions.bump(session, SEQUENCE_TOPIC)
    row = await _sequence_row(session)
    current = 0 if row is None else row.version
    if expected_version != current:
        raise PreconditionFailed(f"the price sequence is at version {current}", code="stale_version")
    steps = tuple(
        AccessStep(name=s.name, dimensions=tuple(s.dimensions), exclusive=s.exclusive) for s in data.steps
    )
    if steps == _steps(row):
        return _sequence_out(row)
    lists = [ListRow(*r) for r in await session.execute(select(*LIST_COLUMNS).order_by(PriceList.code))]
    misfits = _misfits(lists, steps)
    if misfits:
        codes = ", ".join(pl.code for pl, _ in misfits)
        raise Unprocessable(
            f"price lists would no longer fit the sequence: {codes}",
            code="sequence_misfit",
            errors=[
                {
                    "field": "steps",
                    "message": f"price list {pl.code}: {c.message}",
                    "price_list_id": str(pl.id),
                    "price_list_code": pl.code,
                }
                for pl, c in misfits
            ],
        )
    stored = msgspec.to_builtins(steps)
    before = None if row is None else {"steps": row.steps, "version": row.version}
    if row is None:
        row = PriceSequence(steps=stored, version=1)
        session.add(row)
    else:
        row.steps, row.version, row.updated_at = stored, row.version + 1, utcnow()
    await session.flush()
    audit.record_change(session, "price_sequence", row.id, before, {"steps": stored, "version": row.version})
    return _sequence_out(row)


# --- checks shared by lists, entries and floors --------------------------------------------


async def _check_list(session: AsyncSession, pl: ListRow, sequence: Sequence[AccessStep]) -> None:
    """The list fits its step exactly, and what it refers to exists in the tenant (422 naming the field)."""
    errors: list[dict[str, str]] = []
    for c in pricing.validate_rules([_probe(pl)], sequence):
        if c.kind == "unknown_step":
            errors.append(field_error("step", f"the access sequence has no step {pl.step!r}"))
        errors.extend(field_error(f, c.message) for f in c.fields)
    if errors:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise Unprocessable(detail, code="validation_failed", errors=errors)
    if pl.valid_from is not None and pl.valid_to is not None and pl.valid_to < pl.valid_from:
        raise invalid("valid_to", "must not be before valid_from")
    if pl.customer_id is not None:
        await channels.require_customer(session, pl.customer_id, field="customer_id")
    if pl.region_id is not None:
        await catalog.require_region(session, pl.region_id, field="region_id")
    if pl.sales_org_id is not None:
        try:
            await channels.get_sales_org(session, pl.sales_org_id)
        except NotFound:
            raise invalid("sales_org_id", "no such sales org") from None


async def _sku_units(session: AsyncSession, sku_ids: Collection[UUID]) -> dict[UUID, set[UUID]]:
    """The units each SKU may be priced in: its product's base unit and converted units."""
    out: dict[UUID, set[UUID]] = {}
    wanted = sorted(set(sku_ids))
    for i in range(0, len(wanted), 1000):  # bounded statements whatever the size of an import
        facts = await catalog.sku_facts(session, wanted[i : i + 1000])
        out.update({sku_id: set(f.factors) for sku_id, f in facts.items()})
    return out


async def _unit_codes(session: AsyncSession) -> dict[UUID, str]:
    codes: dict[UUID, str] = {}
    cursor: str | None = None
    while True:
        units, cursor = await catalog.list_units(session, cursor, 1000)
        codes.update({u.id: u.code for u in units})
        if cursor is None:
            return codes


NOT_A_UNIT_OF_THE_SKU = "is neither the base unit of the SKU's product nor one of its converted units"


async def _check_unit(session: AsyncSession, sku_id: UUID, unit_id: UUID) -> None:
    allowed = (await _sku_units(session, [sku_id])).get(sku_id)
    if allowed is None:
        raise invalid("sku_id", "no such SKU")
    if unit_id not in allowed:
        try:
            await catalog.get_unit(session, unit_id)
        except NotFound:
            raise invalid("unit_id", "no such unit") from None
        raise invalid("unit_id", NOT_A_UNIT_OF_THE_SKU)


def _same_place(pl: ListRow) -> list[ColumnElement[bool]]:
    """Active lists of the same owner in the same step with the same dimension values and
    priority: the only lists whose entries can tie with this list's."""
    criteria = [PriceList.step == pl.step, PriceList.priority == pl.priority, PriceList.status == "active"]
    for name in (*DIMENSIONS, "owner_customer_id"):
        column, value = getattr(PriceList, name), getattr(pl, name)
        criteria.append(column.is_(None) if value is None else column == value)
    return criteria


async def _rivals(session: AsyncSession, pl: ListRow, *criteria: Any) -> list[tuple[EntryRow, ListRow]]:
    stmt = (
        select(*ENTRY_COLUMNS, *LIST_COLUMNS)
        .join(
            PriceList,
            and_(
                PriceList.tenant_id == PriceListEntry.tenant_id, PriceList.id == PriceListEntry.price_list_id
            ),
        )
        .where(*_same_place(pl), *criteria)
    )
    n = len(ENTRY_COLUMNS)
    return [(EntryRow(*r[:n]), ListRow(*r[n:])) for r in await session.execute(stmt)]


def _ties(
    candidates: Sequence[tuple[EntryRow, ListRow]],
    rivals: Sequence[tuple[EntryRow, ListRow]],
    sequence: Sequence[AccessStep],
) -> list[tuple[str, str]]:
    """Pairs (candidate id, other id) that tie; a candidate replaces a rival with its id."""
    entries: dict[str, PriceEntry] = {}
    for e, pl in rivals:
        found = _engine_entry(e, pl)
        if found is not None:
            entries[found.id] = found
    ids = set()
    for e, pl in candidates:
        ids.add(str(e.id))
        entries.pop(str(e.id), None)
        found = _engine_entry(e, pl)
        if found is not None:
            entries[found.id] = found
    pairs = []
    for c in pricing.validate_rules(entries.values(), sequence):
        if c.kind == "tie" and ids & set(c.entry_ids):
            a, b = c.entry_ids
            pairs.append((a, b) if a in ids else (b, a))
    return pairs


def _tie_message(a: str, code_a: str, b: str, code_b: str) -> str:
    return (
        f"entry {a} (price list {code_a}) ties with entry {b} (price list {code_b}): same step, "
        "dimension values, SKU, unit and priority with overlapping validity and quantity bands"
    )


def _tie_problem(pairs: Sequence[tuple[str, str]], codes: dict[str, str], field: str) -> Unprocessable:
    """A 422 whose detail and errors[] name both rules of every tie: entry ids and list codes."""
    messages = [_tie_message(a, codes[a], b, codes[b]) for a, b in pairs]
    errors: list[dict[str, Any]] = [
        {"field": field, "message": m, "entry_ids": [a, b], "price_list_codes": [codes[a], codes[b]]}
        for m, (a, b) in zip(messages, pairs, strict=True)
    ]
    detail = "; ".join(messages[:MAX_TIES_SHOWN])
    if len(messages) > MAX_TIES_SHOWN:
        detail += f"; and {len(messages) - MAX_TIES_SHOWN} more"
    return Unprocessable(detail, code="price_tie", errors=errors)


def _outside_list(e: EntryRow, pl: ListRow) -> Unprocessable:
    field = (
        "valid_from"
        if e.valid_from is not None and pl.valid_to is not None and e.valid_from > pl.valid_to
        else "valid_to"
    )
    return invalid(
        field, f"the entry's validity does not meet its price list's ({pl.valid_from} to {pl.valid_to})"
    )


async def _check_entry(
    session: AsyncSession, e: EntryRow, pl: ListRow, sequence: Sequence[AccessStep]
) -> None:
    """An entry applies at some date, and ties with no rule of an active list."""
    if _engine_entry(e, pl) is None:
        raise _outside_list(e, pl)
    if pl.status != "active":
        return
    rivals = await _rivals(
        session, pl, PriceListEntry.sku_id == e.sku_id, PriceListEntry.unit_id == e.unit_id
    )
    pairs = _ties([(e, pl)], rivals, sequence)
    if pairs:
        codes = {str(r.id): lst.code for r, lst in rivals} | {str(e.id): pl.code}
        raise _tie_problem(pairs, codes, "min_qty")


async def _check_list_entries(
    session: AsyncSession, pl: ListRow, sequence: Sequence[AccessStep], field: str
) -> None:
    """After a change to a list's place (step, dimensions, priority, validity, status), its
    entries tie with no entry of another list; rivals are read only for the list's SKUs."""
    own = [
        (EntryRow(*r), pl)
        for r in await session.execute(select(*ENTRY_COLUMNS).where(PriceListEntry.price_list_id == pl.id))
    ]
    if not own:
        return
    mine = aliased(PriceListEntry)
    skus = select(mine.sku_id).where(mine.price_list_id == pl.id)
    rivals = await _rivals(session, pl, PriceList.id != pl.id, PriceListEntry.sku_id.in_(skus))
    pairs = _ties(own, rivals, sequence)
    if pairs:
        codes = {str(r.id): lst.code for r, lst in [*rivals, *own]}
        raise _tie_problem(pairs, codes, field)


# --- price lists ---------------------------------------------------------------------------


def price_list_out(pl: PriceList) -> PriceListOut:
    return PriceListOut(
        id=pl.id,
        code=pl.code,
        name=pl.name,
        step=pl.step,
        currency=pl.currency,
        priority=pl.priority,
        customer_id=pl.customer_id,
        customer_class=pl.customer_class,
        level=pl.level,
        region_id=pl.region_id,
        channel=pl.channel,
        sales_org_id=pl.sales_org_id,
        valid_from=pl.valid_from,
        valid_to=pl.valid_to,
        status=pl.status,
        owner_customer_id=pl.owner_customer_id,
        version=pl.version,
        created_at=pl.created_at,
    )


async def _found_list(
    session: AsyncSession, price_list_id: UUID, owner: UUID | None = None, *, write: bool = False
) -> PriceList:
    """The list as ``owner`` may reach it: a dealer only its own (404 for any other, so it cannot
    tell whether the list exists); the brand's staff every list, but writes only the brand's."""
    pl = await session.get(PriceList, (require_tenant(), price_list_id))
    if pl is None or (owner is not None and pl.owner_customer_id != owner):
        raise NotFound("no such price list")
    if write and owner is None and pl.owner_customer_id is not None:
        raise Forbidden(
            "this price list is a dealer's own: only that dealer maintains it", code="dealer_owned"
        )
    return pl


def _owned_by(owner: UUID | None) -> Any:
    return PriceList.owner_customer_id.is_(None) if owner is None else PriceList.owner_customer_id == owner


async def price_list_id_by_code(session: AsyncSession, code: str, owner: UUID | None = None) -> UUID | None:
    """The id of the brand's list (or ``owner``'s) with this code: codes are unique per owner."""
    return await session.scalar(select(PriceList.id).where(PriceList.code == code, _owned_by(owner)))


async def _code_taken(session: AsyncSession, code: str, owner: UUID | None) -> None:
    if await price_list_id_by_code(session, code, owner) is not None:
        raise Conflict(f"price list {code} already exists", code="duplicate")


async def _check_owner_dimensions(session: AsyncSession, pl: ListRow) -> None:
    """A dealer's list prices only buyers it can supply: a ``customer_id`` dimension names one of
    its sub-dealers (a supply relation's seller is always an ancestor of the buyer)."""
    if pl.owner_customer_id is None or pl.customer_id is None:
        return
    owner = await channels.require_customer(session, pl.owner_customer_id)
    buyer = await channels.require_customer(session, pl.customer_id, field="customer_id")
    if buyer.id == owner.id or not buyer.path.startswith(owner.path):
        raise invalid("customer_id", "a dealer's price list prices only the dealers under it")


async def create_price_list(
    session: AsyncSession, data: PriceListIn, owner: UUID | None = None
) -> PriceListOut:
    """Create a list; ``owner`` (a dealer) makes it that dealer's own."""
    await _changing(session, owner)
    await _code_taken(session, data.code, owner)
    fields = {f: getattr(data, f) for f in LIST_FIELDS if f not in ("version", "owner_customer_id")}
    pl = PriceList(id=new_id(), version=1, created_at=utcnow(), owner_customer_id=owner, **fields)
    row = _list_row(pl)
    await _check_list(session, row, await access_sequence(session))
    await _check_owner_dimensions(session, row)
    session.add(pl)
    await catalog.flush_unique(session, f"price list {pl.code}")
    audit.record_change(session, "price_list", pl.id, None, audit.snapshot(pl, LIST_FIELDS))
    return price_list_out(pl)


async def get_price_list(
    session: AsyncSession, price_list_id: UUID, owner: UUID | None = None
) -> PriceListOut:
    return price_list_out(await _found_list(session, price_list_id, owner))


async def list_price_lists(
    session: AsyncSession,
    cursor: str | None,
    limit: int,
    *,
    step: str | None = None,
    status: str | None = None,
    customer_id: UUID | None = None,
    owner_customer_id: UUID | None = None,
    q: str | None = None,
    owner: UUID | None = None,
) -> tuple[list[PriceListOut], str | None]:
    """Lists by id; a dealer (``owner``) sees only its own, the brand's staff every list
    (``owner_customer_id`` narrows to one dealer's)."""
    stmt = select(PriceList)
    if owner is not None:
        stmt = stmt.where(PriceList.owner_customer_id == owner)
    for column, value in (
        (PriceList.step, step),
        (PriceList.status, status),
        (PriceList.customer_id, customer_id),
        (PriceList.owner_customer_id, owner_customer_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if q:
        stmt = stmt.where(or_(catalog.contains_ci(PriceList.code, q), catalog.contains_ci(PriceList.name, q)))
    rows = (await session.scalars(paged_query(stmt, PriceList.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [price_list_out(pl) for pl in items], nxt


async def update_price_list(
    session: AsyncSession,
    price_list_id: UUID,
    data: PriceListPatch,
    expected_version: int,
    owner: UUID | None = None,
) -> PriceListOut:
    """Change a list; a change to its place (step, dimensions, priority, validity, status)
    re-checks its entries for ties, and a dealer's new validity its entries' guide ranges."""
    await _changing(session, owner)
    pl = await _found_list(session, price_list_id, owner, write=True)
    audit.check_version(pl, expected_version, "price list")
    values = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not UNSET}
    changed = {k: v for k, v in values.items() if getattr(pl, k) != v}
    if not changed:
        return price_list_out(pl)
    if "code" in changed:
        await _code_taken(session, changed["code"], pl.owner_customer_id)
    row = _list_row(pl, **changed)
    sequence = await access_sequence(session)
    await _check_list(session, row, sequence)
    await _check_owner_dimensions(session, row)
    moved = [f for f in RULE_FIELDS if f in changed]
    if moved and row.status == "active":
        await _check_list_entries(session, row, sequence, moved[0])
    if owner is not None and {"valid_from", "valid_to"} & set(changed):
        own = select(*ENTRY_COLUMNS).where(PriceListEntry.price_list_id == pl.id)
        await _check_guides(session, row, [EntryRow(*r) for r in await session.execute(own)])
    before = audit.snapshot(pl, LIST_FIELDS)
    for name, value in changed.items():
        setattr(pl, name, value)
    pl.version += 1
    await catalog.flush_unique(session, f"price list {pl.code}")
    audit.record_change(session, "price_list", pl.id, before, audit.snapshot(pl, LIST_FIELDS))
    return price_list_out(pl)


async def delete_price_list(
    session: AsyncSession, price_list_id: UUID, expected_version: int, owner: UUID | None = None
) -> None:
    """Delete a list with all its entries."""
    await _changing(session, owner)
    pl = await _found_list(session, price_list_id, owner, write=True)
    audit.check_version(pl, expected_version, "price list")
    count = await session.scalar(
        select(func.count(PriceListEntry.id)).where(PriceListEntry.price_list_id == pl.id)
    )
    before = {**audit.snapshot(pl, LIST_FIELDS), "entries": count or 0}
    await session.execute(
        delete(PriceListEntry)
        .where(PriceListEntry.price_list_id == pl.id)
        .execution_options(synchronize_session=False)
    )
    await session.delete(pl)
    await session.flush()
    audit.record_change(session, "price_list", pl.id, before, None)


# --- guide price ranges of dealers' entries ------------------------------------------------


def _point(e: EntryRow, pl: ListRow) -> distribution.PricePoint:
    """An entry's price over the days it can apply (its validity within its list's)."""
    return distribution.PricePoint(
        sku_id=e.sku_id,
        unit_id=e.unit_id,
        price=e.price,
        valid_from=_later(pl.valid_from, e.valid_from),
        valid_to=_earlier(pl.valid_to, e.valid_to),
    )


async def _guide_violations(
    session: AsyncSession, pl: ListRow, entries: Sequence[EntryRow]
) -> dict[int, distribution.GuideViolation]:
    """The first guide range each entry of a dealer's list leaves, by the entry's position."""
    if pl.owner_customer_id is None or not entries:
        return {}
    found: dict[int, distribution.GuideViolation] = {}
    for v in await distribution.guide_price_violations(session, [_point(e, pl) for e in entries]):
        found.setdefault(v.index, v)
    return found


def _guide_message(e: EntryRow, v: distribution.GuideViolation) -> str:
    return (
        f"entry {e.id}: price {e.price} is outside the brand's guide price range "
        f"{v.min_price} to {v.max_price} (guide price {v.guide_price_id})"
    )


async def _check_guides(session: AsyncSession, pl: ListRow, entries: Sequence[EntryRow]) -> None:
    """A 422 ``outside_guide_price`` naming every entry of a dealer's list outside its range."""
    violations = await _guide_violations(session, pl, entries)
    if not violations:
        return
    errors: list[dict[str, Any]] = [
        {
            "field": "price",
            "message": _guide_message(entries[i], v),
            "entry_id": str(entries[i].id),
            "guide_price_id": str(v.guide_price_id),
            "min_price": str(v.min_price),
            "max_price": str(v.max_price),
        }
        for i, v in sorted(violations.items())
    ]
    detail = "; ".join(e["message"] for e in errors[:MAX_TIES_SHOWN])
    raise Unprocessable(detail, code="outside_guide_price", errors=errors)


# --- entries -------------------------------------------------------------------------------


def price_entry_out(e: PriceListEntry, guide_violation: str | None = None) -> PriceEntryOut:
    return PriceEntryOut(
        id=e.id,
        price_list_id=e.price_list_id,
        sku_id=e.sku_id,
        unit_id=e.unit_id,
        price=e.price,
        min_qty=e.min_qty,
        max_qty=e.max_qty,
        mode=e.mode,
        valid_from=e.valid_from,
        valid_to=e.valid_to,
        version=e.version,
        created_at=e.created_at,
        guide_violation=guide_violation,
    )


async def _flagged(
    session: AsyncSession, pl: PriceList, entries: Sequence[PriceListEntry]
) -> list[PriceEntryOut]:
    """Entries as shown: a dealer's entry that a narrowed guide range has left outside says so."""
    rows = [_entry_row(e) for e in entries]
    violations = await _guide_violations(session, _list_row(pl), rows)
    return [
        price_entry_out(e, _guide_message(r, violations[i]) if i in violations else None)
        for i, (e, r) in enumerate(zip(entries, rows, strict=True))
    ]


def _quantize(value: Any, quantum: Decimal) -> Any:
    return value.quantize(quantum) if isinstance(value, Decimal) else value


async def _found_entry(session: AsyncSession, entry_id: UUID) -> PriceListEntry:
    entry = await session.get(PriceListEntry, (require_tenant(), entry_id))
    if entry is None:
        raise NotFound("no such price entry")
    return entry


async def _reachable_entry(
    session: AsyncSession, entry_id: UUID, owner: UUID | None, *, write: bool = False
) -> tuple[PriceListEntry, PriceList]:
    """The entry with its list, as ``owner`` may reach it (see :func:`_found_list`)."""
    entry = await _found_entry(session, entry_id)
    try:
        pl = await _found_list(session, entry.price_list_id, owner, write=write)
    except NotFound:
        raise NotFound("no such price entry") from None
    return entry, pl


async def create_price_entry(
    session: AsyncSession, price_list_id: UUID, data: PriceEntryIn, owner: UUID | None = None
) -> PriceEntryOut:
    await _changing(session, owner)
    pl = await _found_list(session, price_list_id, owner, write=True)
    await _check_unit(session, data.sku_id, data.unit_id)
    entry = PriceListEntry(
        id=new_id(),
        price_list_id=pl.id,
        sku_id=data.sku_id,
        unit_id=data.unit_id,
        price=data.price.quantize(CENT),
        min_qty=data.min_qty.quantize(FOURTH),
        max_qty=_quantize(data.max_qty, FOURTH),
        mode=data.mode,
        valid_from=data.valid_from,
        valid_to=data.valid_to,
        version=1,
        created_at=utcnow(),
    )
    row, place = _entry_row(entry), _list_row(pl)
    await _check_entry(session, row, place, await access_sequence(session))
    await _check_guides(session, place, [row])
    session.add(entry)
    await session.flush()
    audit.record_change(session, "price_entry", entry.id, None, audit.snapshot(entry, ENTRY_FIELDS))
    return price_entry_out(entry)


async def get_price_entry(session: AsyncSession, entry_id: UUID, owner: UUID | None = None) -> PriceEntryOut:
    entry, pl = await _reachable_entry(session, entry_id, owner)
    return (await _flagged(session, pl, [entry]))[0]


async def list_price_entries(
    session: AsyncSession,
    price_list_id: UUID,
    cursor: str | None,
    limit: int,
    *,
    sku_id: UUID | None = None,
    owner: UUID | None = None,
) -> tuple[list[PriceEntryOut], str | None]:
    pl = await _found_list(session, price_list_id, owner)
    stmt = select(PriceListEntry).where(PriceListEntry.price_list_id == price_list_id)
    if sku_id is not None:
        stmt = stmt.where(PriceListEntry.sku_id == sku_id)
    rows = (await session.scalars(paged_query(stmt, PriceListEntry.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return await _flagged(session, pl, items), nxt


async def update_price_entry(
    session: AsyncSession,
    entry_id: UUID,
    data: PriceEntryPatch,
    expected_version: int,
    owner: UUID | None = None,
) -> PriceEntryOut:
    await _changing(session, owner)
    entry, pl = await _reachable_entry(session, entry_id, owner, write=True)
    audit.check_version(entry, expected_version, "price entry")
    values = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not UNSET}
    values = {k: _quantize(v, CENT if k == "price" else FOURTH) for k, v in values.items()}
    changed = {k: v for k, v in values.items() if getattr(entry, k) != v}
    if not changed:
        return price_entry_out(entry)
    row = _entry_row(entry, **changed)
    if row.max_qty is not None and row.max_qty < row.min_qty:
        raise invalid("max_qty", "must not be below min_qty")
    if row.valid_from is not None and row.valid_to is not None and row.valid_to < row.valid_from:
        raise invalid("valid_to", "must not be before valid_from")
    place = _list_row(pl)
    await _check_entry(session, row, place, await access_sequence(session))
    await _check_guides(session, place, [row])
    before = audit.snapshot(entry, ENTRY_FIELDS)
    for name, value in changed.items():
        setattr(entry, name, value)
    entry.version += 1
    await session.flush()
    audit.record_change(session, "price_entry", entry.id, before, audit.snapshot(entry, ENTRY_FIELDS))
    return price_entry_out(entry)


async def delete_price_entry(
    session: AsyncSession, entry_id: UUID, expected_version: int, owner: UUID | None = None
) -> None:
    await _changing(session, owner)
    entry, _ = await _reachable_entry(session, entry_id, owner, write=True)
    audit.check_version(entry, expected_version, "price entry")
    before = audit.snapshot(entry, ENTRY_FIELDS)
    await session.delete(entry)
    await session.flush()
    audit.record_change(session, "price_entry", entry.id, before, None)


# --- entries CSV ---------------------------------------------------------------------------

EntryKey = tuple[UUID, UUID, Decimal, date | None]
"""An entry's identity inside its list: SKU, unit, band start and validity start. Two entries of
one list with the same key would tie, so the key is unique among valid entries."""


def _key(e: EntryRow) -> EntryKey:
    return (e.sku_id, e.unit_id, e.min_qty, e.valid_from)


def _plain(quantity: Decimal | None) -> str | None:
    return None if quantity is None else format(quantity.normalize(), "f")


async def export_entries_csv(session: AsyncSession, price_list_id: UUID, owner: UUID | None = None) -> str:
    """A list's entries in the import's columns, by SKU code, unit code and band."""
    pl = await _found_list(session, price_list_id, owner)
    rows = [
        EntryRow(*r)
        for r in await session.execute(select(*ENTRY_COLUMNS).where(PriceListEntry.price_list_id == pl.id))
    ]
    skus = await catalog.sku_codes_by_id(session, [e.sku_id for e in rows])
    units = await _unit_codes(session)
    coded = [(skus.get(e.sku_id, str(e.sku_id)), units.get(e.unit_id, str(e.unit_id)), e) for e in rows]
    coded.sort(key=lambda c: (c[0], c[1], c[2].min_qty, c[2].valid_from or date.min, c[2].id))
    return to_csv(
        ENTRY_CSV_COLUMNS,
        (
            (sku, unit, e.price, _plain(e.min_qty), _plain(e.max_qty), e.mode, e.valid_from, e.valid_to)
            for sku, unit, e in coded
        ),
    )


def _row_entry(
    line: int,
    row: PriceEntryCsvRow,
    sku_id: UUID | None,
    unit_id: UUID | None,
    allowed: set[UUID] | None,
    errors: list[RowError],
) -> EntryRow | None:
    """A CSV row as an entry row (id filled in later), or None with its errors recorded."""
    problems: list[RowError] = []
    for column, places in (("price", 2), ("min_qty", 4), ("max_qty", 4)):
        try:
            check_decimal(column, getattr(row, column), places=places)
        except ValueError as exc:
            problems.append(RowError(line, column, str(exc)))
    if sku_id is None:
        problems.append(RowError(line, "sku_code", f"no SKU with code {row.sku_code!r}"))
    if unit_id is None:
        problems.append(RowError(line, "unit_code", f"no unit with code {row.unit_code!r}"))
    elif allowed is not None and unit_id not in allowed:
        problems.append(RowError(line, "unit_code", NOT_A_UNIT_OF_THE_SKU))
    min_qty = ZERO if row.min_qty is None else row.min_qty
    if not problems and row.max_qty is not None and row.max_qty < min_qty:
        problems.append(RowError(line, "max_qty", "must not be below min_qty"))
    if row.valid_from is not None and row.valid_to is not None and row.valid_to < row.valid_from:
        problems.append(RowError(line, "valid_to", "must not be before valid_from"))
    if problems or sku_id is None or unit_id is None:
        errors.extend(problems)
        return None
    return EntryRow(
        id=new_id(),
        price_list_id=UUID(int=0),
        sku_id=sku_id,
        unit_id=unit_id,
        price=row.price.quantize(CENT),
        min_qty=min_qty.quantize(FOURTH),
        max_qty=_quantize(row.max_qty, FOURTH),
        mode=row.mode or "all_units",
        valid_from=row.valid_from,
        valid_to=row.valid_to,
    )


async def import_entries_csv(
    session: AsyncSession,
    price_list_id: UUID,
    text: str,
    *,
    replace: bool = False,
    owner: UUID | None = None,
) -> PriceImportResult:
    """Upsert a list's entries from CSV, all or nothing. A row updates the entry with the same
    SKU, unit, band start and validity start, or creates one; with ``replace`` the list's
    entries that no row names are deleted. Every bad row is reported with its line number,
    including, for a dealer's list, a price outside the brand's guide range."""
    await _changing(session, owner)
    pl = await _found_list(session, price_list_id, owner, write=True)
    place = _list_row(pl)
    rows = parse_rows(text, PriceEntryCsvRow, required_columns=("sku_code", "unit_code", "price"))
    sku_ids = await catalog.sku_ids_by_code(session, [r.sku_code for _, r in rows])
    unit_ids = {code: uid for uid, code in (await _unit_codes(session)).items()}
    units_of = await _sku_units(session, sku_ids.values())
    own = select(*ENTRY_COLUMNS).where(PriceListEntry.price_list_id == pl.id)
    current = [EntryRow(*r) for r in await session.execute(own)]
    existing = {_key(e): e for e in current}
    errors: list[RowError] = []
    final: dict[EntryKey, EntryRow] = {} if replace else dict(existing)
    lines: dict[UUID, int] = {}
    seen: dict[EntryKey, int] = {}
    for line, row in rows:
        sku_id = sku_ids.get(row.sku_code)
        allowed = units_of.get(sku_id) if sku_id else None
        found = _row_entry(line, row, sku_id, unit_ids.get(row.unit_code), allowed, errors)
        if found is None:
            continue
        key = _key(found)
        if key in seen:
            errors.append(
                RowError(line, "min_qty", f"same SKU, unit, min_qty and valid_from as line {seen[key]}")
            )
            continue
        seen[key] = line
        old = existing.get(key)
        entry = msgspec.structs.replace(found, id=old.id if old else found.id, price_list_id=pl.id)
        if _engine_entry(entry, place) is None:
            problem = _outside_list(entry, place)
            errors.append(RowError(line, problem.errors[0]["field"], problem.errors[0]["message"]))
            continue
        final[key] = entry
        lines[entry.id] = line
    if place.status == "active":  # the good rows are checked too, so one upload shows every error
        rivals = await _rivals(session, place, PriceList.id != place.id)
        errors.extend(_file_ties(rivals, list(final.values()), place, lines, await access_sequence(session)))
    named = [e for e in final.values() if e.id in lines]
    for i, v in sorted((await _guide_violations(session, place, named)).items()):
        errors.append(RowError(lines[named[i].id], "price", v.message))
    raise_if_errors(errors)
    return await _write_import(session, pl.id, current, final, lines)


def _file_ties(
    rivals: list[tuple[EntryRow, ListRow]],
    ours: list[EntryRow],
    place: ListRow,
    lines: dict[UUID, int],
    sequence: Sequence[AccessStep],
) -> list[RowError]:
    """Ties between the list as the file leaves it and the other lists, one error per row."""
    skus = {e.sku_id for e in ours}
    others = [(e, pl) for e, pl in rivals if e.sku_id in skus]
    codes = {str(e.id): pl.code for e, pl in others} | {str(e.id): place.code for e in ours}
    at = {str(k): v for k, v in lines.items()}
    errors = []
    for a, b in _ties([(e, place) for e in ours], others, sequence):
        if a not in at:
            a, b = b, a
        other = f"line {at[b]}" if b in at else f"entry {b} (price list {codes[b]})"
        errors.append(
            RowError(
                at.get(a, 1),
                "min_qty",
                f"ties with {other}: same SKU, unit and priority, overlapping validity and quantity bands",
            )
        )
    return errors


async def _write_import(
    session: AsyncSession,
    price_list_id: UUID,
    current: list[EntryRow],
    final: dict[EntryKey, EntryRow],
    lines: dict[UUID, int],
) -> PriceImportResult:
    old = {e.id: e for e in current}
    keep = {e.id for e in final.values()}
    touched = {e.id for e in final.values() if e.id in lines and e.id in old and e != old[e.id]}
    gone = set(old) - keep
    entities: dict[UUID, PriceListEntry] = {}
    if touched or gone:
        stmt = select(PriceListEntry).where(PriceListEntry.price_list_id == price_list_id)
        entities = {e.id: e for e in (await session.scalars(stmt)).all()}
    created = 0
    for e in final.values():
        if e.id not in lines or e.id in old:
            continue
        entity = PriceListEntry(**msgspec.structs.asdict(e), version=1, created_at=utcnow())
        session.add(entity)
        audit.record_change(session, "price_entry", e.id, None, audit.snapshot(entity, ENTRY_FIELDS))
        created += 1
    by_id = {e.id: e for e in final.values()}
    for entry_id in sorted(touched):
        entity = entities[entry_id]
        before = audit.snapshot(entity, ENTRY_FIELDS)
        for name, value in msgspec.structs.asdict(by_id[entry_id]).items():
            setattr(entity, name, value)
        entity.version += 1
        audit.record_change(session, "price_entry", entry_id, before, audit.snapshot(entity, ENTRY_FIELDS))
    for entry_id in sorted(gone):
        entity = entities[entry_id]
        audit.record_change(session, "price_entry", entry_id, audit.snapshot(entity, ENTRY_FIELDS), None)
        await session.delete(entity)
    await session.flush()
    return PriceImportResult(
        created=created,
        updated=len(touched),
        unchanged=len(lines) - created - len(touched),
        deleted=len(gone),
    )


# --- floors --------------------------------------------------------------------------------


def price_floor_out(f: PriceFloor) -> PriceFloorOut:
    return PriceFloorOut(
        id=f.id,
        sku_id=f.sku_id,
        unit_id=f.unit_id,
        price=f.price,
        action=f.action,
        valid_from=f.valid_from,
        valid_to=f.valid_to,
        version=f.version,
        created_at=f.created_at,
    )


async def _found_floor(session: AsyncSession, floor_id: UUID) -> PriceFloor:
    floor = await session.get(PriceFloor, (require_tenant(), floor_id))
    if floor is None:
        raise NotFound("no such price floor")
    return floor


async def _check_floor_overlap(session: AsyncSession, floor: PriceFloor) -> None:
    """At most one floor per SKU and unit on any day, so the floor a line meets is never in doubt."""
    stmt = select(PriceFloor.id, PriceFloor.valid_from, PriceFloor.valid_to).where(
        PriceFloor.sku_id == floor.sku_id, PriceFloor.unit_id == floor.unit_id, PriceFloor.id != floor.id
    )
    for other_id, valid_from, valid_to in await session.execute(stmt.order_by(PriceFloor.id)):
        if _dates_overlap(floor.valid_from, floor.valid_to, valid_from, valid_to):
            raise invalid(
                "valid_from",
                f"overlaps price floor {other_id} ({valid_from or 'open'} to {valid_to or 'open'}) "
                "of the same SKU and unit",
                code="floor_overlap",
            )


async def create_price_floor(session: AsyncSession, data: PriceFloorIn) -> PriceFloorOut:
    await _changing(session)
    await _check_unit(session, data.sku_id, data.unit_id)
    floor = PriceFloor(
        id=new_id(),
        sku_id=data.sku_id,
        unit_id=data.unit_id,
        price=data.price.quantize(CENT),
        action=data.action,
        valid_from=data.valid_from,
        valid_to=data.valid_to,
        version=1,
        created_at=utcnow(),
    )
    await _check_floor_overlap(session, floor)
    session.add(floor)
    await session.flush()
    audit.record_change(session, "price_floor", floor.id, None, audit.snapshot(floor, FLOOR_FIELDS))
    return price_floor_out(floor)


async def get_price_floor(session: AsyncSession, floor_id: UUID) -> PriceFloorOut:
    return price_floor_out(await _found_floor(session, floor_id))


async def list_price_floors(
    session: AsyncSession, cursor: str | None, limit: int, *, sku_id: UUID | None = None
) -> tuple[list[PriceFloorOut], str | None]:
    stmt = select(PriceFloor)
    if sku_id is not None:
        stmt = stmt.where(PriceFloor.sku_id == sku_id)
    rows = (await session.scalars(paged_query(stmt, PriceFloor.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [price_floor_out(f) for f in items], nxt


async def update_price_floor(
    session: AsyncSession, floor_id: UUID, data: PriceFloorPatch, expected_version: int
) -> PriceFloorOut:
    await _changing(session)
    floor = await _found_floor(session, floor_id)
    audit.check_version(floor, expected_version, "price floor")
    values = {k: _quantize(v, CENT) for k, v in msgspec.structs.asdict(data).items() if v is not UNSET}
    changed = {k: v for k, v in values.items() if getattr(floor, k) != v}
    if not changed:
        return price_floor_out(floor)
    before = audit.snapshot(floor, FLOOR_FIELDS)
    for name, value in changed.items():
        setattr(floor, name, value)
    if floor.valid_from is not None and floor.valid_to is not None and floor.valid_to < floor.valid_from:
        raise invalid("valid_to", "must not be before valid_from")
    await _check_floor_overlap(session, floor)
    floor.version += 1
    await session.flush()
    audit.record_change(session, "price_floor", floor.id, before, audit.snapshot(floor, FLOOR_FIELDS))
    return price_floor_out(floor)


async def delete_price_floor(session: AsyncSession, floor_id: UUID, expected_version: int) -> None:
    await _changing(session)
    floor = await _found_floor(session, floor_id)
    audit.check_version(floor, expected_version, "price floor")
    before = audit.snapshot(floor, FLOOR_FIELDS)
    await session.delete(floor)
    await session.flush()
    audit.record_change(session, "price_floor", floor.id, before, None)


# --- the compiled price book ---------------------------------------------------------------


class PriceBook(msgspec.Struct, frozen=True):
    """One owner's price configuration at one revision, compiled for pricing whole orders: the
    brand's lists and floors, or one dealer's lists (a dealer's book has no floors: the brand's
    floors bound every line)."""

    index: pricing.PriceIndex
    floors: dict[tuple[str, str], tuple[Floor, ...]]
    """(sku_id, unit_id) as str -> that SKU+unit's floors, by start date."""
    list_codes: dict[str, str]
    """price_list_id -> code, for explanations."""


async def price_book(session: AsyncSession, revision: revisions.Revision) -> PriceBook:
    """The brand's book compiled for ``revision`` (read it with ``revisions.current``): compiled
    once per tenant and revision from four column selects in the caller's transaction, then
    served from memory."""
    return await revisions.COMPILED.get(TOPIC, revision, lambda: _compile(session, None))


async def seller_books(session: AsyncSession, sellers: Collection[UUID]) -> dict[UUID, PriceBook]:
    """Each dealer seller's own book, keyed by the access sequence's stamp and that dealer's
    stamp (one statement for the stamps; a compile only for a book not cached at them)."""
    if not sellers:
        return {}
    topics = {seller: owner_topic(seller) for seller in sorted(set(sellers))}
    stamps = await revisions.current(session, (SEQUENCE_TOPIC, *topics.values()))
    books = {}
    for seller, topic in topics.items():
        revision = (stamps[SEQUENCE_TOPIC], stamps[topic])
        books[seller] = await revisions.COMPILED.get(
            topic,
            revision,  # type: ignore[arg-type]
            lambda seller=seller: _compile(session, seller),  # type: ignore[misc]
        )
    return books


# The compile path reads by column outside the ORM (see core.db.TenantQuery): built once here.
_OWNER = bindparam("owner")
_SEQUENCE_STEPS = TenantQuery(select(PriceSequence.steps).where(PriceSequence.tenant_id == TENANT))
_ALL_LISTS = {
    brand: TenantQuery(
        select(*LIST_COLUMNS).where(
            PriceList.tenant_id == TENANT,
            PriceList.owner_customer_id.is_(None) if brand else PriceList.owner_customer_id == _OWNER,
        )
    )
    for brand in (True, False)
}
_ALL_ENTRIES = {
    brand: TenantQuery(
        select(*ENTRY_COLUMNS)
        .join(
            PriceList,
            and_(
                PriceList.tenant_id == PriceListEntry.tenant_id, PriceList.id == PriceListEntry.price_list_id
            ),
        )
        .where(
            PriceListEntry.tenant_id == TENANT,
            PriceList.tenant_id == TENANT,
            PriceList.owner_customer_id.is_(None) if brand else PriceList.owner_customer_id == _OWNER,
        )
    )
    for brand in (True, False)
}
_ALL_FLOORS = TenantQuery(
    select(*FLOOR_COLUMNS)
    .where(PriceFloor.tenant_id == TENANT)
    .order_by(PriceFloor.valid_from, PriceFloor.id)
)


async def _compile(session: AsyncSession, owner: UUID | None) -> PriceBook:
    connection = await session.connection()  # the caller's transaction, so the caller's snapshot
    params: dict[str, Any] = {TENANT_PARAM: require_tenant()}
    if owner is not None:
        params["owner"] = owner

    async def rows(query: TenantQuery) -> Sequence[Any]:
        return (await connection.execute(query.statement, params)).all()

    brand = owner is None
    stored = await rows(_SEQUENCE_STEPS)
    sequence = DEFAULT_SEQUENCE if not stored else msgspec.convert(stored[0][0], tuple[AccessStep, ...])
    lists = [ListRow(*r) for r in await rows(_ALL_LISTS[brand])]
    active = {pl.id: (pl, _list_fields(pl)) for pl in lists if pl.status == "active"}
    entries = []
    for r in await rows(_ALL_ENTRIES[brand]):
        place = active.get(r[1])
        if place is not None:
            found = _engine_entry(EntryRow(*r), *place)
            if found is not None:
                entries.append(found)
    floors: dict[tuple[str, str], list[Floor]] = {}
    for floor_id, sku_id, unit_id, price, action, valid_from, valid_to in (
        await rows(_ALL_FLOORS) if brand else ()
    ):
        floors.setdefault((str(sku_id), str(unit_id)), []).append(
            Floor(id=str(floor_id), price=price, action=action, valid_from=valid_from, valid_to=valid_to)
        )
    return PriceBook(
        index=pricing.compile_index(entries, sequence),
        floors={k: tuple(v) for k, v in floors.items()},
        list_codes={str(pl.id): pl.code for pl in lists},
    )


def floor_for(book: PriceBook, sku_id: str, unit_id: str, day: date) -> Floor | None:
    """The floor of a SKU in a unit on a day (floors of one SKU+unit never overlap)."""
    for floor in book.floors.get((sku_id, unit_id), ()):
        if floor.valid_on(day):
            return floor
    return None


async def pricing_context(
    session: AsyncSession,
    day: date,
    *,
    customer_id: UUID | None = None,
    channel: str | None = None,
    sales_org_id: UUID | None = None,
) -> pricing.PricingContext:
    """Who buys, as the engine sees it: the customer's class, level, channel, sales org and
    region with its ancestors (nearest first); ``channel`` and ``sales_org_id`` override the
    customer's. An unknown customer is a 422 naming customer_id."""
    if customer_id is None:
        return pricing.PricingContext(date=day, channel=channel, sales_org_id=_s(sales_org_id))
    customer = await channels.require_customer(session, customer_id)
    region_path: tuple[str, ...] = ()
    if customer.region_id is not None:
        region_path = tuple(str(r) for r in await catalog.region_ancestors(session, customer.region_id))
    return pricing.PricingContext(
        date=day,
        customer_id=str(customer.id),
        customer_class=customer.customer_class,
        level=customer.level,
        region_path=region_path,
        channel=channel or customer.channel,
        sales_org_id=_s(sales_org_id or customer.sales_org_id),
    )
