"""Warehouses, lots, stock levels, reservations and the movement journal.

Every change of stock is a :class:`StockMovement` appended in the same transaction as a
conditional UPDATE of its :class:`StockLevel` (``... WHERE on_hand + :d >= reserved + :r``):
a change that would take available stock below zero matches no row and becomes a 409 that
changes nothing. Quantities are rounded to the column's 4 places inside the statement, so
SQLite's floating-point arithmetic cannot drift. Dealer users see only warehouses owned by
their customer and its sub-dealers; everything else answers 404 (or 422 when referenced
from a request body).

Batched holds, for the order service: every line of an order held, shipped or cancelled in one
transaction with a number of statements that does not grow with the number of lines. They run
inside the caller's transaction and never commit; on a Problem the caller's transaction must
roll back (a request does when the Problem propagates). ``actor`` is recorded on the movements
and, when it is a dealer user, limits the warehouses as the single-hold endpoints do: the order
service passes None when it holds its supplier's stock. ``reference`` (e.g. ``"order:<id>"``,
at most 80 characters: it is the audit entry's object id) ties the holds of one document.
The audit entry and the outbox event of a call are added to the session and written by the
caller's next flush or commit, together with its own.

``reserve_many(session, actor, requests: Sequence[StockRequest], *, reference: str) -> list[ReservationOut]``
    Places holds for every request, all or nothing: a request that available stock (on hand −
    reserved) cannot cover is a 409 ``insufficient_stock`` naming its index
    (``errors[0].field`` is ``requests[<i>].quantity``) and SKU, raised before anything is
    written; a warehouse that does not exist (or is out of a dealer's scope) is a 422 on
    ``requests[<i>].warehouse_id``, an inactive one a 409 ``warehouse_inactive``. A request with
    ``lot_no`` None is allocated across the SKU's lots in that warehouse in
    :func:`allocation_key` order (earliest expiry first, lots without an expiry date last, then
    lot number; ``""``, stock without a lot, has no expiry), so it may take several holds;
    industry_food will plug FEFO with freshness windows in at that point (no hook yet). Returns
    the holds in request order. Four statements whatever the number of requests: one SELECT that locks the
    candidate levels (``FOR NO KEY UPDATE``, in id order, so concurrent batches cannot
    deadlock; SQLite serialises writers with ``BEGIN IMMEDIATE``), one UPDATE of every level
    (a CASE per level, guarded by ``reserved + x <= on_hand`` with the CHECK constraint as
    backstop and its row count verified), one INSERT of the holds and one of the movements.
``consume_many(session, actor, reference, quantities: Mapping[UUID, Decimal] | None = None)``
    Ships, returning ``list[ReservationOut]``: posts the reference's placed holds (an ``issue``
    movement each: on hand and reserved go down). ``quantities`` (reservation id → quantity)
    posts only those holds, each by that much; a hold posted in part stays placed with the rest
    as its ``quantity``. Every problem is found before anything is written: an id that is not a
    hold of the reference, or a bad quantity, is a 422 on ``quantities[<id>]``, a hold no
    longer placed a 409 ``reservation_closed``, more than a hold holds a 409
    ``exceeds_reservation``. With nothing placed (or ``quantities`` empty) it does nothing and
    returns [].
``release_many(session, actor, reference: str) -> list[ReservationOut]``
    Cancels: voids every placed hold of the reference (a ``release`` movement each); with
    nothing placed it does nothing and returns [].

Both close each hold exactly once: they lock the reference's holds with their levels (levels
first, in id order; the single-hold endpoints lock in the same order), then a conditional
UPDATE on ``status = 'placed'`` whose row count is verified; the loser of a race sees the holds
closed (a 409, or nothing left to release) and changes nothing. Four statements whatever the
number of holds: the locking SELECT, one UPDATE of the holds, one of the levels, one INSERT of
the movements. Both return the holds they changed, oldest first, as they are afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from omnicloud.catalog import service as catalog
from omnicloud.channels import service as channels
from omnicloud.core import audit, events
from omnicloud.core.csvio import RowError, parse_rows, raise_if_errors, to_csv
from omnicloud.core.db import utcnow
from omnicloud.core.errors import Conflict, NotFound, field_error, invalid
from omnicloud.core.ids import new_id
from omnicloud.core.paging import paged_query, split_page
from omnicloud.core.security import Principal
from omnicloud.core.tenancy import require_tenant
from omnicloud.inventory.models import (
    MOVEMENT_KINDS,
    Lot,
    StockLevel,
    StockMovement,
    StockReservation,
    Warehouse,
)
from omnicloud.inventory.schemas import (
    CSV_COLUMNS,
    AdjustmentIn,
    ImportResult,
    IssueIn,
    LotIn,
    LotOut,
    MovementOut,
    ReceiptIn,
    ReservationIn,
    ReservationOut,
    StockChangeOut,
    StockCsvRow,
    StockLevelOut,
    StockRequest,
    TransferIn,
    WarehouseIn,
    WarehouseOut,
    WarehousePatch,
    check_quantity,
)

ZERO = Decimal("0.0000")  # quantities carry the column's 4 places


def insufficient(detail: str, *, field: str | None = None) -> Conflict:
    errors = [field_error(field, detail)] if field else None
    return Conflict(detail, code="insufficient_stock", errors=errors)


# --- dealer scope ---------------------------------------------------------------------------


async def _dealer_prefix(session: AsyncSession, actor: Principal | None) -> str | None:
    return None if actor is None else await channels.dealer_scope_path(session, actor)


async def _owner_in_scope(session: AsyncSession, prefix: str, owner_id: UUID | None) -> bool:
    if owner_id is None:  # the brand's own warehouses are not a dealer's
        return False
    customer = await channels.require_customer(session, owner_id, field="owner_customer_id")
    return bool(customer.path.startswith(prefix))


async def visible_warehouse_ids(session: AsyncSession, actor: Principal | None) -> frozenset[UUID] | None:
    """The warehouses a dealer user may see (those owned by its subtree), or None for users
    who see them all."""
    if actor is None or not actor.is_dealer:
        return None
    prefix = await channels.dealer_scope_path(session, actor)
    assert prefix is not None
    owned = select(Warehouse.id).where(Warehouse.owner_customer_id.in_(channels.subtree_ids(prefix)))
    return frozenset((await session.scalars(owned)).all())


async def _find_warehouse(
    session: AsyncSession, actor: Principal | None, warehouse_id: UUID
) -> Warehouse | None:
    warehouse = await session.get(Warehouse, (require_tenant(), warehouse_id))
    if warehouse is None:
        return None
    prefix = await _dealer_prefix(session, actor)
    if prefix is not None and not await _owner_in_scope(session, prefix, warehouse.owner_customer_id):
        return None
    return warehouse


async def visible_warehouse(session: AsyncSession, actor: Principal | None, warehouse_id: UUID) -> Warehouse:
    """The warehouse, or 404 when it does not exist, is another tenant's or is out of scope."""
    warehouse = await _find_warehouse(session, actor, warehouse_id)
    if warehouse is None:
        raise NotFound("no such warehouse")
    return warehouse


async def _stock_warehouse(
    session: AsyncSession, actor: Principal | None, warehouse_id: UUID, field: str
) -> Warehouse:
    """A warehouse named in a request body that moves stock: visible and active."""
    warehouse = await _find_warehouse(session, actor, warehouse_id)
    if warehouse is None:
        raise invalid(field, "no such warehouse")
    if warehouse.status != "active":
        raise Conflict(f"warehouse {warehouse.code} is inactive", code="warehouse_inactive")
    return warehouse


# --- warehouses -----------------------------------------------------------------------------


def warehouse_out(w: Warehouse) -> WarehouseOut:
    return WarehouseOut(
        id=w.id,
        code=w.code,
        name=w.name,
        owner_customer_id=w.owner_customer_id,
        region_id=w.region_id,
        status=w.status,
        created_at=w.created_at,
    )


WAREHOUSE_FIELDS = ("code", "name", "owner_customer_id", "region_id", "status")


async def _check_owner(session: AsyncSession, actor: Principal | None, owner_id: UUID | None) -> None:
    prefix = await _dealer_prefix(session, actor)
    if owner_id is None:
        if prefix is not None:
            raise invalid("owner_customer_id", "dealers maintain only warehouses of their own dealer tree")
        return
    customer = await channels.require_customer(session, owner_id, field="owner_customer_id")
    if prefix is not None and not customer.path.startswith(prefix):
        raise invalid("owner_customer_id", "no such customer")
    if customer.kind != "dealer":
        raise invalid("owner_customer_id", "a warehouse is owned by the brand or by a dealer")


async def _flush_warehouse(session: AsyncSession, warehouse: Warehouse) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:  # owner and region were checked: the code is taken
        raise Conflict(f"warehouse {warehouse.code} exists", code="warehouse_exists") from None


async def create_warehouse(session: AsyncSession, actor: Principal | None, data: WarehouseIn) -> WarehouseOut:
    await _check_owner(session, actor, data.owner_customer_id)
    if data.region_id is not None:
        await catalog.require_region(session, data.region_id)
    warehouse = Warehouse(
        code=data.code,
        name=data.name,
        owner_customer_id=data.owner_customer_id,
        region_id=data.region_id,
        status=data.status,
    )
    session.add(warehouse)
    await _flush_warehouse(session, warehouse)
    after = audit.snapshot(warehouse, WAREHOUSE_FIELDS)
    audit.record(session, "create", "warehouse", warehouse.id, after=after)
    events.emit(session, "warehouse.created", {"id": warehouse.id, **after})
    return warehouse_out(warehouse)


async def get_warehouse(session: AsyncSession, actor: Principal | None, warehouse_id: UUID) -> WarehouseOut:
    return warehouse_out(await visible_warehouse(session, actor, warehouse_id))


async def _change_warehouse(
    session: AsyncSession, actor: Principal | None, warehouse: Warehouse, changes: dict[str, Any]
) -> bool:
    changes = {k: v for k, v in changes.items() if getattr(warehouse, k) != v}
    if not changes:
        return False
    if "owner_customer_id" in changes:
        await _check_owner(session, actor, changes["owner_customer_id"])
    if changes.get("region_id") is not None:
        await catalog.require_region(session, changes["region_id"])
    before = audit.snapshot(warehouse, WAREHOUSE_FIELDS)
    for key, value in changes.items():
        setattr(warehouse, key, value)
    await _flush_warehouse(session, warehouse)
    after = audit.snapshot(warehouse, WAREHOUSE_FIELDS)
    audit.record(session, "update", "warehouse", warehouse.id, before=before, after=after)
    events.emit(session, "warehouse.updated", {"id": warehouse.id, **after})
    return True


async def update_warehouse(
    session: AsyncSession, actor: Principal | None, warehouse_id: UUID, data: WarehousePatch
) -> WarehouseOut:
    warehouse = await visible_warehouse(session, actor, warehouse_id)
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    await _change_warehouse(session, actor, warehouse, changes)
    return warehouse_out(warehouse)


async def list_warehouses(
    session: AsyncSession,
    actor: Principal | None,
    cursor: str | None,
    limit: int,
    *,
    owner_customer_id: UUID | None = None,
    region_id: UUID | None = None,
    status: str | None = None,
    code: str | None = None,
) -> tuple[list[WarehouseOut], str | None]:
    stmt = select(Warehouse)
    scope = await visible_warehouse_ids(session, actor)
    if scope is not None:
        stmt = stmt.where(Warehouse.id.in_(scope))
    if owner_customer_id is not None:
        stmt = stmt.where(Warehouse.owner_customer_id == owner_customer_id)
    if region_id is not None:
        stmt = stmt.where(Warehouse.region_id == region_id)
    if status is not None:
        stmt = stmt.where(Warehouse.status == status)
    if code is not None:
        stmt = stmt.where(Warehouse.code == code)
    rows = (await session.scalars(paged_query(stmt, Warehouse.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [warehouse_out(w) for w in items], nxt


async def upsert_warehouse(session: AsyncSession, data: WarehouseIn) -> bool:
    """Create or update the warehouse with ``data.code`` (tenant manifests). True if anything
    changed; a second run with the same data changes nothing."""
    warehouse = await session.scalar(select(Warehouse).where(Warehouse.code == data.code))
    if warehouse is None:
        await create_warehouse(session, None, data)
        return True
    return await _change_warehouse(session, None, warehouse, msgspec.structs.asdict(data))


# --- lots -----------------------------------------------------------------------------------


def lot_out(lot: Lot) -> LotOut:
    return LotOut(
        id=lot.id,
        sku_id=lot.sku_id,
        lot_no=lot.lot_no,
        production_date=lot.production_date,
        expiry_date=lot.expiry_date,
        created_at=lot.created_at,
    )


async def _lot(session: AsyncSession, sku_id: UUID, lot_no: str, *, lock: bool = False) -> Lot | None:
    if not lot_no:
        return None
    stmt = select(Lot).where(Lot.sku_id == sku_id, Lot.lot_no == lot_no)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(stmt)


def _fills(lot: Lot, production: date | None, expiry: date | None) -> bool:
    return bool((production and not lot.production_date) or (expiry and not lot.expiry_date))


def _lot_date_conflict(lot: Lot, production: date | None, expiry: date | None) -> tuple[str, str] | None:
    """Field and reason when the dates contradict the recorded lot."""
    if production and lot.production_date and production != lot.production_date:
        return "production_date", f"lot {lot.lot_no} was produced on {lot.production_date}"
    if expiry and lot.expiry_date and expiry != lot.expiry_date:
        return "expiry_date", f"lot {lot.lot_no} expires on {lot.expiry_date}"
    merged_production = production or lot.production_date
    merged_expiry = expiry or lot.expiry_date
    if merged_production and merged_expiry and merged_expiry < merged_production:
        return "expiry_date", "must not be before production_date"
    return None


async def _ensure_lot(
    session: AsyncSession, sku_id: UUID, lot_no: str, production: date | None, expiry: date | None
) -> Lot | None:
    """The lot, created on first use; dates it lacked are filled in, contradicting ones are 422."""
    if not lot_no:
        return None
    lot = await _lot(session, sku_id, lot_no)
    if lot is None:
        lot = Lot(sku_id=sku_id, lot_no=lot_no, production_date=production, expiry_date=expiry)
        try:
            async with session.begin_nested():
                session.add(lot)
                await session.flush()
        except IntegrityError:  # created concurrently: use that one
            lot = await _lot(session, sku_id, lot_no)
            assert lot is not None
        else:
            after = _lot_snapshot(lot)
            audit.record(session, "create", "lot", lot.id, after=after)
            events.emit(session, "lot.created", {"id": lot.id, **after})
            return lot
    if _fills(lot, production, expiry):  # a concurrent receipt may be filling them too
        lot = await _lot(session, sku_id, lot_no, lock=True)
        assert lot is not None
    conflict = _lot_date_conflict(lot, production, expiry)
    if conflict:
        raise invalid(*conflict)
    if _fills(lot, production, expiry):
        before = _lot_snapshot(lot)
        lot.production_date = lot.production_date or production
        lot.expiry_date = lot.expiry_date or expiry
        after = _lot_snapshot(lot)
        audit.record(session, "update", "lot", lot.id, before=before, after=after)
        events.emit(session, "lot.updated", {"id": lot.id, **after})
    return lot


def _lot_snapshot(lot: Lot) -> dict[str, Any]:
    return audit.snapshot(lot, ("sku_id", "lot_no", "production_date", "expiry_date"))


async def create_lot(session: AsyncSession, data: LotIn) -> LotOut:
    await catalog.require_sku(session, data.sku_id)
    lot = Lot(
        sku_id=data.sku_id,
        lot_no=data.lot_no,
        production_date=data.production_date,
        expiry_date=data.expiry_date,
    )
    session.add(lot)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict(f"lot {data.lot_no} exists for this SKU", code="lot_exists") from None
    after = _lot_snapshot(lot)
    audit.record(session, "create", "lot", lot.id, after=after)
    events.emit(session, "lot.created", {"id": lot.id, **after})
    return lot_out(lot)


async def get_lot(session: AsyncSession, lot_id: UUID) -> LotOut:
    lot = await session.get(Lot, (require_tenant(), lot_id))
    if lot is None:
        raise NotFound("no such lot")
    return lot_out(lot)


async def list_lots(
    session: AsyncSession,
    cursor: str | None,
    limit: int,
    *,
    sku_id: UUID | None = None,
    lot_no: str | None = None,
    expiring_before: date | None = None,
) -> tuple[list[LotOut], str | None]:
    stmt = select(Lot)
    if sku_id is not None:
        stmt = stmt.where(Lot.sku_id == sku_id)
    if lot_no is not None:
        stmt = stmt.where(Lot.lot_no == lot_no)
    if expiring_before is not None:
        stmt = stmt.where(Lot.expiry_date < expiring_before)
    rows = (await session.scalars(paged_query(stmt, Lot.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [lot_out(lot) for lot in items], nxt


# --- levels and movements -------------------------------------------------------------------


async def _level(
    session: AsyncSession, warehouse_id: UUID, sku_id: UUID, lot_no: str, *, lock: bool = False
) -> StockLevel | None:
    stmt = (
        select(StockLevel)
        .where(
            StockLevel.warehouse_id == warehouse_id, StockLevel.sku_id == sku_id, StockLevel.lot_no == lot_no
        )
        .execution_options(populate_existing=True)
    )
    if lock:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def _ensure_level(session: AsyncSession, warehouse_id: UUID, sku_id: UUID, lot_no: str) -> StockLevel:
    level = await _level(session, warehouse_id, sku_id, lot_no)
    if level is not None:
        return level
    level = StockLevel(warehouse_id=warehouse_id, sku_id=sku_id, lot_no=lot_no, on_hand=ZERO, reserved=ZERO)
    try:
        async with session.begin_nested():
            session.add(level)
            await session.flush()
    except IntegrityError:  # created concurrently: use that one
        found = await _level(session, warehouse_id, sku_id, lot_no)
        assert found is not None
        return found
    return level


def _round(expr: Any) -> ColumnElement[Any]:
    return func.round(expr, literal_column("4"))


@dataclass
class Moved:
    movement: StockMovement
    level: StockLevelOut


async def _move(
    session: AsyncSession,
    actor: Principal | None,
    level: StockLevel,
    kind: str,
    on_hand_delta: Decimal,
    reserved_delta: Decimal,
    *,
    lot: Lot | None = None,
    reservation_id: UUID | None = None,
    transfer_id: UUID | None = None,
    reason: str | None = None,
    reference: str | None = None,
) -> Moved:
    """Apply a delta to one level with a conditional UPDATE and journal it."""
    new_on_hand = _round(StockLevel.on_hand + on_hand_delta)
    new_reserved = _round(StockLevel.reserved + reserved_delta)
    now = utcnow()
    stmt = (
        update(StockLevel)
        .where(StockLevel.id == level.id, new_reserved >= 0, new_on_hand >= new_reserved)
        .values(on_hand=new_on_hand, reserved=new_reserved, updated_at=now)
        .returning(StockLevel.on_hand, StockLevel.reserved)
        .execution_options(synchronize_session=False)
    )
    row = (await session.execute(stmt)).first()
    if row is None:
        stock = await session.scalar(
            select(StockLevel.on_hand - StockLevel.reserved).where(StockLevel.id == level.id)
        )
        available = Decimal(stock).normalize()
        if on_hand_delta < 0 and reserved_delta == 0 and kind == "adjust":
            raise insufficient(f"on hand cannot go below the reserved quantity ({available:f} available)")
        raise insufficient(f"only {available:f} available")
    on_hand, reserved = row
    movement = StockMovement(
        id=new_id(),
        warehouse_id=level.warehouse_id,
        sku_id=level.sku_id,
        lot_no=level.lot_no,
        kind=kind,
        on_hand_delta=on_hand_delta,
        reserved_delta=reserved_delta,
        on_hand_after=on_hand,
        reserved_after=reserved,
        reservation_id=reservation_id,
        transfer_id=transfer_id,
        reason=reason,
        reference=reference,
        actor=actor.actor if actor else "system",
        at=now,
    )
    session.add(movement)
    if lot is None and level.lot_no:
        lot = await _lot(session, level.sku_id, level.lot_no)
    audit.record(
        session,
        kind,
        "stock_level",
        level.id,
        before={"on_hand": str(on_hand - on_hand_delta), "reserved": str(reserved - reserved_delta)},
        after={"on_hand": str(on_hand), "reserved": str(reserved), "movement_id": str(movement.id)},
    )
    out = StockLevelOut(
        id=level.id,
        warehouse_id=level.warehouse_id,
        sku_id=level.sku_id,
        lot_no=level.lot_no,
        production_date=lot.production_date if lot else None,
        expiry_date=lot.expiry_date if lot else None,
        on_hand=on_hand,
        reserved=reserved,
        available=on_hand - reserved,
        updated_at=now,
    )
    return Moved(movement, out)


def movement_out(m: StockMovement) -> MovementOut:
    return MovementOut(
        id=m.id,
        warehouse_id=m.warehouse_id,
        sku_id=m.sku_id,
        lot_no=m.lot_no,
        kind=m.kind,
        on_hand_delta=m.on_hand_delta,
        reserved_delta=m.reserved_delta,
        on_hand_after=m.on_hand_after,
        reserved_after=m.reserved_after,
        reservation_id=m.reservation_id,
        transfer_id=m.transfer_id,
        reason=m.reason,
        reference=m.reference,
        actor=m.actor,
        at=m.at,
    )


async def _changed(session: AsyncSession, event: str, moved: Sequence[Moved]) -> StockChangeOut:
    await session.flush()
    out = StockChangeOut(movements=[movement_out(m.movement) for m in moved], levels=[m.level for m in moved])
    if moved:
        events.emit(session, event, {"movements": out.movements})
    return out


# --- stock operations -----------------------------------------------------------------------


async def receive(session: AsyncSession, actor: Principal | None, data: ReceiptIn) -> StockChangeOut:
    warehouse = await _stock_warehouse(session, actor, data.warehouse_id, "warehouse_id")
    await catalog.require_sku(session, data.sku_id)
    lot = await _ensure_lot(session, data.sku_id, data.lot_no, data.production_date, data.expiry_date)
    level = await _ensure_level(session, warehouse.id, data.sku_id, data.lot_no)
    moved = await _move(
        session, actor, level, "receipt", data.quantity, ZERO, lot=lot, reference=data.reference
    )
    return await _changed(session, "stock.received", [moved])


async def _existing_level(
    session: AsyncSession, actor: Principal | None, warehouse_id: UUID, sku_id: UUID, lot_no: str, field: str
) -> StockLevel:
    warehouse = await _stock_warehouse(session, actor, warehouse_id, field)
    await catalog.require_sku(session, sku_id)
    level = await _level(session, warehouse.id, sku_id, lot_no)
    if level is None:
        raise insufficient("only 0 available")
    return level


async def issue(session: AsyncSession, actor: Principal | None, data: IssueIn) -> StockChangeOut:
    level = await _existing_level(session, actor, data.warehouse_id, data.sku_id, data.lot_no, "warehouse_id")
    moved = await _move(session, actor, level, "issue", -data.quantity, ZERO, reference=data.reference)
    return await _changed(session, "stock.issued", [moved])


async def _set_on_hand(
    session: AsyncSession,
    actor: Principal | None,
    warehouse: Warehouse,
    sku_id: UUID,
    lot_no: str,
    target: Decimal,
    *,
    production: date | None = None,
    expiry: date | None = None,
    reason: str | None = None,
    reference: str | None = None,
) -> Moved | None:
    """Adjust on hand to a counted quantity; no movement when it already matches."""
    lot = await _ensure_lot(session, sku_id, lot_no, production, expiry)
    current = await _level(session, warehouse.id, sku_id, lot_no, lock=True)
    if current is None:
        if target == 0:
            return None
        await _ensure_level(session, warehouse.id, sku_id, lot_no)
        current = await _level(session, warehouse.id, sku_id, lot_no, lock=True)
        assert current is not None
    delta = target - current.on_hand
    if delta == 0:
        return None
    return await _move(
        session, actor, current, "adjust", delta, ZERO, lot=lot, reason=reason, reference=reference
    )


async def adjust(session: AsyncSession, actor: Principal | None, data: AdjustmentIn) -> StockChangeOut:
    warehouse = await _stock_warehouse(session, actor, data.warehouse_id, "warehouse_id")
    await catalog.require_sku(session, data.sku_id)
    if data.counted_quantity is not None:
        moved = await _set_on_hand(
            session,
            actor,
            warehouse,
            data.sku_id,
            data.lot_no,
            data.counted_quantity,
            production=data.production_date,
            expiry=data.expiry_date,
            reason=data.reason or "count",
            reference=data.reference,
        )
        return await _changed(session, "stock.adjusted", [moved] if moved else [])
    assert data.delta is not None
    lot = await _ensure_lot(session, data.sku_id, data.lot_no, data.production_date, data.expiry_date)
    if data.delta > 0:
        level = await _ensure_level(session, warehouse.id, data.sku_id, data.lot_no)
    else:
        found = await _level(session, warehouse.id, data.sku_id, data.lot_no)
        if found is None:
            raise insufficient("on hand cannot go below the reserved quantity (0 available)")
        level = found
    moved = await _move(
        session,
        actor,
        level,
        "adjust",
        data.delta,
        ZERO,
        lot=lot,
        reason=data.reason or "correction",
        reference=data.reference,
    )
    return await _changed(session, "stock.adjusted", [moved])


async def transfer(session: AsyncSession, actor: Principal | None, data: TransferIn) -> StockChangeOut:
    source = await _existing_level(
        session, actor, data.from_warehouse_id, data.sku_id, data.lot_no, "from_warehouse_id"
    )
    target_warehouse = await _stock_warehouse(session, actor, data.to_warehouse_id, "to_warehouse_id")
    target = await _ensure_level(session, target_warehouse.id, data.sku_id, data.lot_no)
    transfer_id = new_id()
    legs = [(source, "transfer_out", -data.quantity), (target, "transfer_in", data.quantity)]
    moved: dict[str, Moved] = {}
    # Update in id order so two opposite transfers cannot deadlock.
    for level, kind, delta in sorted(legs, key=lambda leg: leg[0].id):
        moved[kind] = await _move(
            session, actor, level, kind, delta, ZERO, transfer_id=transfer_id, reference=data.reference
        )
    return await _changed(session, "stock.transferred", [moved["transfer_out"], moved["transfer_in"]])


# --- reservations ---------------------------------------------------------------------------


def reservation_out(r: StockReservation) -> ReservationOut:
    return ReservationOut(
        id=r.id,
        warehouse_id=r.warehouse_id,
        sku_id=r.sku_id,
        lot_no=r.lot_no,
        quantity=r.quantity,
        status=r.status,
        reference=r.reference,
        created_at=r.created_at,
        closed_at=r.closed_at,
    )


async def reserve(session: AsyncSession, actor: Principal | None, data: ReservationIn) -> ReservationOut:
    level = await _existing_level(session, actor, data.warehouse_id, data.sku_id, data.lot_no, "warehouse_id")
    reservation = StockReservation(
        id=new_id(),
        level_id=level.id,
        warehouse_id=level.warehouse_id,
        sku_id=level.sku_id,
        lot_no=level.lot_no,
        quantity=data.quantity,
        reference=data.reference,
        created_at=utcnow(),
    )
    session.add(reservation)
    await session.flush()
    audit.record(
        session, "create", "stock_reservation", reservation.id, after={"quantity": str(data.quantity)}
    )
    moved = await _move(
        session,
        actor,
        level,
        "reserve",
        ZERO,
        data.quantity,
        reservation_id=reservation.id,
        reference=data.reference,
    )
    await _changed(session, "stock.reserved", [moved])
    return reservation_out(reservation)


async def _visible_reservation(
    session: AsyncSession, actor: Principal | None, reservation_id: UUID
) -> StockReservation:
    reservation = await session.get(StockReservation, (require_tenant(), reservation_id))
    if reservation is None or await _find_warehouse(session, actor, reservation.warehouse_id) is None:
        raise NotFound("no such reservation")
    return reservation


async def get_reservation(
    session: AsyncSession, actor: Principal | None, reservation_id: UUID
) -> ReservationOut:
    return reservation_out(await _visible_reservation(session, actor, reservation_id))


async def _close(
    session: AsyncSession, actor: Principal | None, reservation_id: UUID, status: str
) -> ReservationOut:
    """Release or consume a placed reservation, exactly once. The level is locked before the
    reservation, the order the batched functions lock in, so the two cannot deadlock."""
    reservation = await _visible_reservation(session, actor, reservation_id)
    level = await session.get(
        StockLevel,
        (require_tenant(), reservation.level_id),
        with_for_update={"key_share": True},
        populate_existing=True,
    )
    assert level is not None
    closed_at = utcnow()
    row = (
        await session.execute(
            update(StockReservation)
            .where(StockReservation.id == reservation.id, StockReservation.status == "placed")
            .values(status=status, closed_at=closed_at)
            .returning(StockReservation.quantity)  # a partial consume may have lowered it meanwhile
            .execution_options(synchronize_session=False)
        )
    ).first()
    if row is None:
        await session.refresh(reservation)
        raise Conflict(f"the reservation is already {reservation.status}", code="reservation_closed")
    set_committed_value(reservation, "quantity", row.quantity)
    reservation.status, reservation.closed_at = status, closed_at
    q = reservation.quantity
    if status == "released":
        moved = await _move(session, actor, level, "release", ZERO, -q, reservation_id=reservation.id)
        event = "stock.released"
    else:
        moved = await _move(session, actor, level, "issue", -q, -q, reservation_id=reservation.id)
        event = "stock.issued"
    action = "release" if status == "released" else "consume"
    audit.record(session, action, "stock_reservation", reservation.id, after={"status": status})
    await _changed(session, event, [moved])
    return reservation_out(reservation)


async def release(session: AsyncSession, actor: Principal | None, reservation_id: UUID) -> ReservationOut:
    return await _close(session, actor, reservation_id, "released")


async def consume(session: AsyncSession, actor: Principal | None, reservation_id: UUID) -> ReservationOut:
    """Post the hold: the reserved quantity leaves the warehouse."""
    return await _close(session, actor, reservation_id, "consumed")


async def list_reservations(
    session: AsyncSession,
    actor: Principal | None,
    cursor: str | None,
    limit: int,
    *,
    warehouse_id: UUID | None = None,
    sku_id: UUID | None = None,
    status: str | None = None,
    reference: str | None = None,
) -> tuple[list[ReservationOut], str | None]:
    stmt = await _scoped(
        session, actor, select(StockReservation), StockReservation.warehouse_id, warehouse_id
    )
    if sku_id is not None:
        stmt = stmt.where(StockReservation.sku_id == sku_id)
    if status is not None:
        stmt = stmt.where(StockReservation.status == status)
    if reference is not None:
        stmt = stmt.where(StockReservation.reference == reference)
    rows = (await session.scalars(paged_query(stmt, StockReservation.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [reservation_out(r) for r in items], nxt


# --- batched holds (orders) -----------------------------------------------------------------

AUDIT_ID_MAX = 80  # a batch's audit entry is filed under its reference


@dataclass
class Candidate:
    """A stock level a request may take from, as locked for allocation."""

    id: UUID
    warehouse_id: UUID
    sku_id: UUID
    lot_no: str
    expiry_date: date | None
    available: Decimal


def allocation_key(level: Candidate) -> tuple[bool, date, str]:
    """The order in which a request without a lot number takes the SKU's lots in a warehouse:
    earliest expiry first, lots without an expiry date last, then lot number. industry_food
    will plug FEFO with freshness windows in here."""
    return (level.expiry_date is None, level.expiry_date or date.min, level.lot_no)


@dataclass
class _Take:
    index: int  # of the request
    level: Candidate
    quantity: Decimal


@dataclass
class _Change:
    """What one hold does to its level."""

    reservation_id: UUID
    level_id: UUID
    warehouse_id: UUID
    sku_id: UUID
    lot_no: str
    on_hand: Decimal
    reserved: Decimal


def _check_reference(reference: str) -> None:
    if not 1 <= len(reference) <= AUDIT_ID_MAX:
        raise invalid("reference", f"must be 1 to {AUDIT_ID_MAX} characters")


def _quantity(field: str, value: Decimal) -> Decimal:
    try:
        return check_quantity(field, Decimal(value))
    except ValueError as exc:
        raise invalid(field, str(exc).split(": ", 1)[1]) from None


def _actor_name(actor: Principal | None) -> str:
    return actor.actor if actor else "system"


def _shifted(column: Any, key: Any, deltas: Mapping[UUID, Decimal]) -> Any:
    """``column`` plus each row's delta (a CASE on ``key``), rounded as :func:`_move` rounds."""
    moving = sorted((k, d) for k, d in deltas.items() if d)
    if not moving:
        return column
    return _round(column + case(*[(key == k, d) for k, d in moving], else_=ZERO))


async def _apply_changes(
    session: AsyncSession,
    actor: Principal | None,
    reference: str,
    kind: str,
    changes: Sequence[_Change],
    now: datetime,
) -> list[MovementOut]:
    """Move every level the holds touch in one conditional UPDATE, then journal one movement
    per hold in one INSERT. Each movement's ``*_after`` is its level after it: the UPDATE
    returns the level after all of them, and the journal walks back from there."""
    deltas: dict[UUID, tuple[Decimal, Decimal]] = {}
    for c in changes:
        on_hand, reserved = deltas.get(c.level_id, (ZERO, ZERO))
        deltas[c.level_id] = (on_hand + c.on_hand, reserved + c.reserved)
    new_on_hand = _shifted(StockLevel.on_hand, StockLevel.id, {k: d[0] for k, d in deltas.items()})
    new_reserved = _shifted(StockLevel.reserved, StockLevel.id, {k: d[1] for k, d in deltas.items()})
    values: dict[str, Any] = {"reserved": new_reserved, "updated_at": now}
    if new_on_hand is not StockLevel.on_hand:
        values["on_hand"] = new_on_hand
    rows = await session.execute(
        update(StockLevel)
        .where(StockLevel.id.in_(sorted(deltas)), new_reserved >= 0, new_on_hand >= new_reserved)
        .values(**values)
        .returning(StockLevel.id, StockLevel.on_hand, StockLevel.reserved)
        .execution_options(synchronize_session=False)
    )
    running = {r.id: (r.on_hand, r.reserved) for r in rows}
    if len(running) != len(deltas):  # the levels were locked: only a bug gets here
        raise insufficient("a stock level no longer covers the holds")
    afters: list[tuple[Decimal, Decimal]] = []
    for c in reversed(changes):
        on_hand, reserved = running[c.level_id]
        afters.append((on_hand, reserved))
        running[c.level_id] = (on_hand - c.on_hand, reserved - c.reserved)
    afters.reverse()
    tid, by = require_tenant(), _actor_name(actor)
    journal = [
        {
            "tenant_id": tid,
            "id": new_id(),
            "warehouse_id": c.warehouse_id,
            "sku_id": c.sku_id,
            "lot_no": c.lot_no,
            "kind": kind,
            "on_hand_delta": c.on_hand,
            "reserved_delta": c.reserved,
            "on_hand_after": on_hand,
            "reserved_after": reserved,
            "reservation_id": c.reservation_id,
            "transfer_id": None,
            "reason": None,
            "reference": reference,
            "actor": by,
            "at": now,
        }
        for c, (on_hand, reserved) in zip(changes, afters, strict=True)
    ]
    await session.execute(insert(StockMovement), journal)
    return [MovementOut(**{k: v for k, v in m.items() if k != "tenant_id"}) for m in journal]


def _batch_recorded(
    session: AsyncSession,
    action: str,
    event: str,
    reference: str,
    holds: Sequence[ReservationOut],
    movements: list[MovementOut],
) -> None:
    """One audit entry and one outbox event per call, whatever the number of holds."""
    after = {
        "reference": reference,
        "holds": [
            {"id": str(h.id), "quantity": str(m.reserved_delta.copy_abs()), "status": h.status}
            for h, m in zip(holds, movements, strict=True)
        ],
    }
    audit.record(session, action, "stock_holds", reference, after=after)
    events.emit(session, event, {"reference": reference, "movements": movements})


_CANDIDATE_COLUMNS = (
    StockLevel.id,
    StockLevel.warehouse_id,
    StockLevel.sku_id,
    StockLevel.lot_no,
    StockLevel.on_hand,
    StockLevel.reserved,
    Lot.expiry_date,
    Warehouse.code,
    Warehouse.status,
)


async def _lock_candidates(session: AsyncSession, requests: Sequence[StockRequest]) -> list[Any]:
    """Every level the requests may take from, locked in id order, in one statement."""
    any_lot = sorted({(r.warehouse_id, r.sku_id) for r in requests if r.lot_no is None})
    one_lot = sorted({(r.warehouse_id, r.sku_id, r.lot_no) for r in requests if r.lot_no is not None})
    wanted = []
    if any_lot:
        wanted.append(tuple_(StockLevel.warehouse_id, StockLevel.sku_id).in_(any_lot))
    if one_lot:
        wanted.append(tuple_(StockLevel.warehouse_id, StockLevel.sku_id, StockLevel.lot_no).in_(one_lot))
    stmt = (
        select(*_CANDIDATE_COLUMNS)
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
        .where(or_(*wanted))
        .order_by(StockLevel.id)
        .with_for_update(of=StockLevel, key_share=True)
    )
    return list((await session.execute(stmt)).all())


def _allocate(
    requests: Sequence[StockRequest],
    quantities: Sequence[Decimal],
    levels: Sequence[Candidate],
    today: date | None = None,
) -> tuple[list[_Take], tuple[int, Decimal] | None]:
    """Takes for every request, in request order; or the first request that stock cannot
    cover, with what was left for it. A request without a lot number never takes a lot that
    expired before ``today``; one that names its lot takes that lot whatever its expiry."""
    today = today or utcnow().date()
    groups: dict[tuple[UUID, UUID], list[Candidate]] = {}
    for level in levels:
        groups.setdefault((level.warehouse_id, level.sku_id), []).append(level)
    for group in groups.values():
        group.sort(key=allocation_key)
    takes: list[_Take] = []
    for index, (request, wanted) in enumerate(zip(requests, quantities, strict=True)):
        group = groups.get((request.warehouse_id, request.sku_id), [])
        if request.lot_no is not None:
            group = [c for c in group if c.lot_no == request.lot_no]
        else:
            group = [c for c in group if c.expiry_date is None or c.expiry_date >= today]
        available = sum((c.available for c in group), ZERO)
        if available < wanted:
            return takes, (index, available)
        for level in group:
            part = min(level.available, wanted)
            if part > 0:
                takes.append(_Take(index, level, part))
                level.available -= part
                wanted -= part
    return takes, None


async def _shortage(
    session: AsyncSession, actor: Principal | None, index: int, request: StockRequest, available: Decimal
) -> Conflict:
    """The 409 for a request stock cannot cover (a 422 when its warehouse or SKU does not exist)."""
    await _stock_warehouse(session, actor, request.warehouse_id, f"requests[{index}].warehouse_id")
    sku = await catalog.require_sku(session, request.sku_id, field=f"requests[{index}].sku_id")
    lot = "" if request.lot_no is None else f" lot {request.lot_no!r} of"
    return insufficient(
        f"requests[{index}]: only {available.normalize():f} of{lot} SKU {sku.code} available",
        field=f"requests[{index}].quantity",
    )


def _hold_out(row: Mapping[str, Any]) -> ReservationOut:
    return ReservationOut(
        id=row["id"],
        warehouse_id=row["warehouse_id"],
        sku_id=row["sku_id"],
        lot_no=row["lot_no"],
        quantity=row["quantity"],
        status=row["status"],
        reference=row["reference"],
        created_at=row["created_at"],
        closed_at=row["closed_at"],
    )


async def reserve_many(
    session: AsyncSession, actor: Principal | None, requests: Sequence[StockRequest], *, reference: str
) -> list[ReservationOut]:
    """Hold stock for every request, all or nothing (see the module docstring)."""
    _check_reference(reference)
    quantities = [_quantity(f"requests[{i}].quantity", r.quantity) for i, r in enumerate(requests)]
    if not requests:
        return []
    scope = await visible_warehouse_ids(session, actor)
    for i, r in enumerate(requests):
        if scope is not None and r.warehouse_id not in scope:
            raise invalid(f"requests[{i}].warehouse_id", "no such warehouse")
    rows = await _lock_candidates(session, requests)
    inactive = {r.warehouse_id: r.code for r in rows if r.status != "active"}
    for r in requests:
        if r.warehouse_id in inactive:
            raise Conflict(f"warehouse {inactive[r.warehouse_id]} is inactive", code="warehouse_inactive")
    levels = [
        Candidate(
            id=r.id,
            warehouse_id=r.warehouse_id,
            sku_id=r.sku_id,
            lot_no=r.lot_no,
            expiry_date=r.expiry_date,
            available=r.on_hand - r.reserved,
        )
        for r in rows
    ]
    takes, short = _allocate(requests, quantities, levels)
    if short is not None:
        index, available = short
        raise await _shortage(session, actor, index, requests[index], available)
    tid, now = require_tenant(), utcnow()
    holds = [
        {
            "tenant_id": tid,
            "id": new_id(),
            "level_id": t.level.id,
            "warehouse_id": t.level.warehouse_id,
            "sku_id": t.level.sku_id,
            "lot_no": t.level.lot_no,
            "quantity": t.quantity,
            "status": "placed",
            "reference": reference,
            "created_at": now,
            "closed_at": None,
        }
        for t in takes
    ]
    await session.execute(insert(StockReservation), holds)
    changes = [
        _Change(h["id"], h["level_id"], h["warehouse_id"], h["sku_id"], h["lot_no"], ZERO, h["quantity"])
        for h in holds
    ]
    movements = await _apply_changes(session, actor, reference, "reserve", changes, now)
    outs = [_hold_out(h) for h in holds]
    _batch_recorded(session, "reserve", "stock.reserved", reference, outs, movements)
    return outs


_HELD_COLUMNS = (
    StockReservation.id,
    StockReservation.level_id,
    StockReservation.warehouse_id,
    StockReservation.sku_id,
    StockReservation.lot_no,
    StockReservation.quantity,
    StockReservation.status,
    StockReservation.reference,
    StockReservation.created_at,
    StockReservation.closed_at,
)


async def _lock_holds(session: AsyncSession, actor: Principal | None, reference: str) -> list[Any]:
    """Every hold of the reference, each after its level, locked in (level, hold) id order;
    a hold closed concurrently shows its new status."""
    stmt = (
        select(*_HELD_COLUMNS)
        .select_from(StockLevel)
        .join(
            StockReservation,
            and_(
                StockReservation.tenant_id == StockLevel.tenant_id, StockReservation.level_id == StockLevel.id
            ),
        )
        .where(StockReservation.reference == reference)
        .order_by(StockLevel.id, StockReservation.id)
        .with_for_update(of=[StockLevel, StockReservation], key_share=True)
    )
    rows = list((await session.execute(stmt)).all())
    scope = await visible_warehouse_ids(session, actor)
    if scope is not None and any(r.warehouse_id not in scope for r in rows):
        raise NotFound("no such reservation")
    return sorted(rows, key=lambda r: r.id)


def _taken(
    rows: Sequence[Any], quantities: Mapping[UUID, Decimal] | None, reference: str
) -> list[tuple[Any, Decimal]]:
    """The holds to close and how much of each, oldest first; every problem before any write."""
    if quantities is None:
        return [(r, r.quantity) for r in rows if r.status == "placed"]
    by_id = {r.id: r for r in rows}
    taken = []
    for rid in sorted(quantities):
        field = f"quantities[{rid}]"
        part = _quantity(field, quantities[rid])
        row = by_id.get(rid)
        if row is None:
            raise invalid(field, f"no hold of {reference}")
        if row.status != "placed":
            raise Conflict(f"reservation {rid} is already {row.status}", code="reservation_closed")
        if part > row.quantity:
            raise Conflict(
                f"reservation {rid} holds only {row.quantity.normalize():f}", code="exceeds_reservation"
            )
        taken.append((row, part))
    return taken


async def _close_holds(
    session: AsyncSession, taken: Sequence[tuple[Any, Decimal]], status: str, now: datetime
) -> None:
    """Close the taken holds (or lower a partly taken one) in one UPDATE, each exactly once."""
    closing = [r.id for r, part in taken if part == r.quantity]
    partial = {r.id: -part for r, part in taken if part != r.quantity}
    stmt = update(StockReservation).where(
        StockReservation.id.in_([r.id for r, _ in taken]), StockReservation.status == "placed"
    )
    values: dict[str, Any] = {}
    if partial:
        new_quantity = _shifted(StockReservation.quantity, StockReservation.id, partial)
        values["quantity"] = new_quantity
        stmt = stmt.where(new_quantity > 0)
        if closing:
            is_closing = StockReservation.id.in_(closing)
            values["status"] = case((is_closing, status), else_="placed")
            values["closed_at"] = case(
                (is_closing, literal(now, StockReservation.closed_at.type)), else_=null()
            )
    else:
        values.update(status=status, closed_at=now)
    result = await session.execute(stmt.values(**values).execution_options(synchronize_session=False))
    if result.rowcount != len(taken):  # type: ignore[attr-defined]
        raise Conflict("the holds were closed by a concurrent request", code="reservation_closed")


async def _close_many(
    session: AsyncSession,
    actor: Principal | None,
    reference: str,
    status: str,
    quantities: Mapping[UUID, Decimal] | None = None,
) -> list[ReservationOut]:
    _check_reference(reference)
    rows = await _lock_holds(session, actor, reference)
    taken = _taken(rows, quantities, reference)
    if not taken:
        return []
    now = utcnow()
    await _close_holds(session, taken, status, now)
    consumed = status == "consumed"
    changes = [
        _Change(r.id, r.level_id, r.warehouse_id, r.sku_id, r.lot_no, -part if consumed else ZERO, -part)
        for r, part in taken
    ]
    kind = "issue" if consumed else "release"
    movements = await _apply_changes(session, actor, reference, kind, changes, now)
    outs = [
        _hold_out(
            {
                **r._mapping,
                "quantity": r.quantity if part == r.quantity else r.quantity - part,
                "status": status if part == r.quantity else "placed",
                "closed_at": now if part == r.quantity else None,
            }
        )
        for r, part in taken
    ]
    action, event = ("consume", "stock.issued") if consumed else ("release", "stock.released")
    _batch_recorded(session, action, event, reference, outs, movements)
    return outs


async def consume_many(
    session: AsyncSession,
    actor: Principal | None,
    reference: str,
    quantities: Mapping[UUID, Decimal] | None = None,
) -> list[ReservationOut]:
    """Ship: post the reference's placed holds, all or part (see the module docstring)."""
    return await _close_many(session, actor, reference, "consumed", quantities)


async def release_many(
    session: AsyncSession,
    actor: Principal | None,
    reference: str,
    quantities: Mapping[UUID, Decimal] | None = None,
) -> list[ReservationOut]:
    """Cancel: void the reference's placed holds, all (each exactly once) or, with ``quantities``
    (hold id → quantity), part of them (see the module docstring)."""
    return await _close_many(session, actor, reference, "released", quantities)


# --- reading stock --------------------------------------------------------------------------


async def _scoped(
    session: AsyncSession, actor: Principal | None, stmt: Any, column: Any, warehouse_id: UUID | None
) -> Any:
    """Limit ``stmt`` to one warehouse (404 if not visible) or to the caller's warehouses."""
    if warehouse_id is not None:
        await visible_warehouse(session, actor, warehouse_id)
        return stmt.where(column == warehouse_id)
    scope = await visible_warehouse_ids(session, actor)
    return stmt if scope is None else stmt.where(column.in_(scope))


_LEVEL_COLUMNS = (
    StockLevel.id,
    StockLevel.warehouse_id,
    StockLevel.sku_id,
    StockLevel.lot_no,
    Lot.production_date,
    Lot.expiry_date,
    StockLevel.on_hand,
    StockLevel.reserved,
    StockLevel.updated_at,
)


def _levels_query(sku_id: UUID | None, lot_no: str | None, expiring_before: date | None) -> Any:
    stmt = select(*_LEVEL_COLUMNS).outerjoin(
        Lot,
        and_(
            Lot.tenant_id == StockLevel.tenant_id,
            Lot.sku_id == StockLevel.sku_id,
            Lot.lot_no == StockLevel.lot_no,
        ),
    )
    if sku_id is not None:
        stmt = stmt.where(StockLevel.sku_id == sku_id)
    if lot_no is not None:
        stmt = stmt.where(StockLevel.lot_no == lot_no)
    if expiring_before is not None:
        stmt = stmt.where(Lot.expiry_date < expiring_before)
    return stmt


def _level_out(row: Any) -> StockLevelOut:
    return StockLevelOut(
        id=row.id,
        warehouse_id=row.warehouse_id,
        sku_id=row.sku_id,
        lot_no=row.lot_no,
        production_date=row.production_date,
        expiry_date=row.expiry_date,
        on_hand=row.on_hand,
        reserved=row.reserved,
        available=row.on_hand - row.reserved,
        updated_at=row.updated_at,
    )


async def list_stock(
    session: AsyncSession,
    actor: Principal | None,
    cursor: str | None,
    limit: int,
    *,
    warehouse_id: UUID | None = None,
    sku_id: UUID | None = None,
    lot_no: str | None = None,
    expiring_before: date | None = None,
) -> tuple[list[StockLevelOut], str | None]:
    stmt = _levels_query(sku_id, lot_no, expiring_before)
    stmt = await _scoped(session, actor, stmt, StockLevel.warehouse_id, warehouse_id)
    rows = (await session.execute(paged_query(stmt, StockLevel.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [_level_out(r) for r in items], nxt


async def list_movements(
    session: AsyncSession,
    actor: Principal | None,
    cursor: str | None,
    limit: int,
    *,
    warehouse_id: UUID | None = None,
    sku_id: UUID | None = None,
    lot_no: str | None = None,
    kind: str | None = None,
    reference: str | None = None,
    reservation_id: UUID | None = None,
    transfer_id: UUID | None = None,
) -> tuple[list[MovementOut], str | None]:
    if kind is not None and kind not in MOVEMENT_KINDS:
        raise invalid("kind", f"one of {', '.join(MOVEMENT_KINDS)}")
    stmt = await _scoped(session, actor, select(StockMovement), StockMovement.warehouse_id, warehouse_id)
    filters = {
        StockMovement.sku_id: sku_id,
        StockMovement.lot_no: lot_no,
        StockMovement.kind: kind,
        StockMovement.reference: reference,
        StockMovement.reservation_id: reservation_id,
        StockMovement.transfer_id: transfer_id,
    }
    for column, value in filters.items():
        if value is not None:
            stmt = stmt.where(column == value)
    rows = (await session.scalars(paged_query(stmt, StockMovement.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [movement_out(m) for m in items], nxt


# --- CSV ------------------------------------------------------------------------------------


async def export_stock(
    session: AsyncSession,
    actor: Principal | None,
    *,
    warehouse_id: UUID | None = None,
    sku_id: UUID | None = None,
) -> str:
    """Stock levels as CSV in the import's columns: importing it back changes nothing."""
    stmt = (
        _levels_query(sku_id, None, None)
        .add_columns(Warehouse.code)
        .join(
            Warehouse,
            and_(Warehouse.tenant_id == StockLevel.tenant_id, Warehouse.id == StockLevel.warehouse_id),
        )
    )
    stmt = await _scoped(session, actor, stmt, StockLevel.warehouse_id, warehouse_id)
    rows = (await session.execute(stmt)).all()
    codes = await catalog.sku_codes_by_id(session, [r.sku_id for r in rows])
    lines = sorted(
        (r.code, codes[r.sku_id], r.lot_no, r.production_date, r.expiry_date, r.on_hand.normalize())
        for r in rows
    )
    return to_csv(CSV_COLUMNS, [(*line[:5], f"{line[5]:f}") for line in lines])


class _RawRow(msgspec.Struct, kw_only=True):
    warehouse_code: str = ""
    sku_code: str = ""
    lot_no: str = ""
    production_date: str = ""
    expiry_date: str = ""
    quantity: str = ""


def _decode_row(line: int, raw: _RawRow | dict[str, Any], errors: list[RowError]) -> StockCsvRow | None:
    fields = raw if isinstance(raw, dict) else msgspec.structs.asdict(raw)
    try:
        values = {k: v for k, v in fields.items() if v is not None and v != ""}
        return msgspec.convert(values, StockCsvRow, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc).split(" - at ")[0]
        field = str(exc).rsplit("`$.", 1)[-1].rstrip("`") if "`$." in str(exc) else ""
        if not field and ": " in message:
            field, message = message.split(": ", 1)
        errors.append(RowError(line, field, message))
        return None


@dataclass
class _Planned:
    warehouse: Warehouse
    sku_id: UUID
    row: StockCsvRow
    level_id: UUID | None  # None: the level does not exist yet


async def import_stock(session: AsyncSession, actor: Principal | None, text: str) -> ImportResult:
    """Set on-hand quantities from CSV through adjustment movements. All-or-nothing: every bad
    row is reported with its line number; re-importing the same file moves nothing."""
    raw_rows = parse_rows(text, _RawRow, required_columns=("warehouse_code", "sku_code", "quantity"))
    errors: list[RowError] = []
    decoded = [(line, row) for line, raw in raw_rows if (row := _decode_row(line, raw, errors)) is not None]
    warehouses = await _warehouses_by_code(session, actor, {r.warehouse_code for _, r in decoded})
    skus = await catalog.sku_ids_by_code(session, [r.sku_code for _, r in decoded])
    planned: list[_Planned] = []
    seen: dict[tuple[str, str, str], int] = {}
    lot_dates: dict[tuple[UUID, str], tuple[int, date | None, date | None]] = {}
    for line, row in decoded:
        warehouse, sku_id = warehouses.get(row.warehouse_code), skus.get(row.sku_code)
        if warehouse is None:
            errors.append(RowError(line, "warehouse_code", f"no such warehouse {row.warehouse_code!r}"))
        elif warehouse.status != "active":
            errors.append(RowError(line, "warehouse_code", f"warehouse {row.warehouse_code} is inactive"))
        if sku_id is None:
            errors.append(RowError(line, "sku_code", f"no such SKU {row.sku_code!r}"))
        key = (row.warehouse_code, row.sku_code, row.lot_no)
        if key in seen:
            errors.append(RowError(line, "lot_no", f"same warehouse, SKU and lot as line {seen[key]}"))
            continue
        seen[key] = line
        if warehouse is None or warehouse.status != "active" or sku_id is None:
            continue
        if row.lot_no:
            problem = await _row_lot_problem(session, lot_dates, line, sku_id, row)
            if problem:
                errors.append(problem)
                continue
        level = await _level(session, warehouse.id, sku_id, row.lot_no)
        if level is not None and row.quantity < level.reserved:
            errors.append(RowError(line, "quantity", f"{level.reserved.normalize():f} is reserved"))
            continue
        planned.append(_Planned(warehouse, sku_id, row, level.id if level is not None else None))
    raise_if_errors(errors)
    # Lock existing levels in id order, as batch holds and transfers do, so that an import never
    # deadlocks with them on PostgreSQL; new levels cannot be held by anyone else yet.
    planned.sort(key=lambda p: (p.level_id is None, p.level_id or p.sku_id))
    import_id = new_id()
    reference = f"import:{import_id}"
    moved: list[Moved] = []
    for p in planned:
        m = await _set_on_hand(
            session,
            actor,
            p.warehouse,
            p.sku_id,
            p.row.lot_no,
            p.row.quantity,
            production=p.row.production_date,
            expiry=p.row.expiry_date,
            reason="import",
            reference=reference,
        )
        if m is not None:
            moved.append(m)
    await _changed(session, "stock.adjusted", moved)
    result = ImportResult(rows=len(planned), changed=len(moved), reference=reference)
    audit.record(session, "import", "stock_import", import_id, after=msgspec.to_builtins(result))
    return result


async def _row_lot_problem(
    session: AsyncSession,
    earlier: dict[tuple[UUID, str], tuple[int, date | None, date | None]],
    line: int,
    sku_id: UUID,
    row: StockCsvRow,
) -> RowError | None:
    """The row's lot dates must agree with the recorded lot and with earlier rows."""
    key = (sku_id, row.lot_no)
    if key in earlier:
        first_line, production, expiry = earlier[key]
        if (row.production_date, row.expiry_date) != (production, expiry):
            return RowError(line, "production_date", f"lot dates differ from line {first_line}")
        return None
    earlier[key] = (line, row.production_date, row.expiry_date)
    lot = await _lot(session, sku_id, row.lot_no)
    conflict = _lot_date_conflict(lot, row.production_date, row.expiry_date) if lot else None
    return RowError(line, *conflict) if conflict else None


async def _warehouses_by_code(
    session: AsyncSession, actor: Principal | None, codes: set[str]
) -> dict[str, Warehouse]:
    found = (await session.scalars(select(Warehouse).where(Warehouse.code.in_(sorted(codes))))).all()
    scope = await visible_warehouse_ids(session, actor)
    return {w.code: w for w in found if scope is None or w.id in scope}


async def set_stock_level(
    session: AsyncSession,
    warehouse_code: str,
    sku_code: str,
    lot_no: str,
    quantity: Decimal,
    production_date: date | None = None,
    expiry_date: date | None = None,
) -> bool:
    """Set on hand for a warehouse, SKU and lot by codes (tenant manifests); moves only the
    difference and returns whether anything moved."""
    raw = {
        "warehouse_code": warehouse_code,
        "sku_code": sku_code,
        "lot_no": lot_no,
        "quantity": quantity,
        "production_date": production_date,
        "expiry_date": expiry_date,
    }
    errors: list[RowError] = []
    row = _decode_row(0, raw, errors)
    if row is None:
        raise invalid(errors[0].field or "quantity", errors[0].message)
    warehouse = await session.scalar(select(Warehouse).where(Warehouse.code == warehouse_code))
    if warehouse is None:
        raise invalid("warehouse_code", f"no such warehouse {warehouse_code!r}")
    sku_id = (await catalog.sku_ids_by_code(session, [sku_code])).get(sku_code)
    if sku_id is None:
        raise invalid("sku_code", f"no such SKU {sku_code!r}")
    moved = await _set_on_hand(
        session,
        None,
        warehouse,
        sku_id,
        row.lot_no,
        row.quantity,
        production=row.production_date,
        expiry=row.expiry_date,
        reason="manifest",
    )
    await _changed(session, "stock.adjusted", [moved] if moved else [])
    return moved is not None
