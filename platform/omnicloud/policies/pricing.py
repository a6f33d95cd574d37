"""Price determination (定价): the access sequence over compiled price-list entries.

Pure functions over msgspec Structs. `compile_index` turns a tenant's entries into dict buckets once;
`price_order` then prices every line with a bounded number of dict lookups, whatever the number of
entries. Bands are in the base UOM, lower and upper bounds inclusive, `max_qty=None` is open; prices
are per unit of the entry's own UOM, so a line in cases is matched against its bands by its quantity
in base units and priced per case.

Search semantics: steps are walked from specific to general; each step yields at most one record
(valid on the date, band containing the quantity, highest priority, then the nearest region ancestor,
then the smallest entry id). An exclusive step that yields a record stops the search. Among the records
collected, the highest priority wins and a tie goes to the more specific step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Literal

import msgspec

from omnicloud.core.money import round_money

Mode = Literal["all_units", "graduated"]
FloorAction = Literal["warn", "block", "needs_approval"]
FloorOutcome = Literal["pass", "warn", "block", "needs_approval"]
Dimension = Literal["customer_id", "customer_class", "level", "region_id", "channel", "sales_org_id"]
DIMENSIONS: tuple[Dimension, ...] = (
    "customer_id",
    "customer_class",
    "level",
    "region_id",
    "channel",
    "sales_org_id",
)
ZERO = Decimal(0)


def _within(day: date, valid_from: date | None, valid_to: date | None) -> bool:
    """Validity bounds are inclusive; None is open."""
    return (valid_from is None or valid_from <= day) and (valid_to is None or day <= valid_to)


class PriceEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One price-list entry for a SKU+UOM, placed in an access-sequence step."""

    id: str
    price_list_id: str
    step: str
    sku_id: str
    uom: str
    price: Decimal
    priority: int = 0
    customer_id: str | None = None
    customer_class: str | None = None
    level: str | None = None
    region_id: str | None = None
    channel: str | None = None
    sales_org_id: str | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    min_qty: Decimal = ZERO
    max_qty: Decimal | None = None
    mode: Mode = "all_units"

    def __post_init__(self) -> None:
        if self.price < 0:
            raise ValueError("price must not be negative")
        if self.min_qty < 0:
            raise ValueError("min_qty must not be negative")
        if self.max_qty is not None and self.max_qty < self.min_qty:
            raise ValueError("max_qty must not be below min_qty")
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError("valid_to must not be before valid_from")

    def valid_on(self, day: date) -> bool:
        return _within(day, self.valid_from, self.valid_to)

    def band_contains(self, quantity: Decimal) -> bool:
        return self.min_qty <= quantity and (self.max_qty is None or quantity <= self.max_qty)


class AccessStep(msgspec.Struct, frozen=True, kw_only=True):
    """A step of the access sequence: the dimensions its entries are keyed by."""

    name: str
    dimensions: tuple[Dimension, ...] = ()
    exclusive: bool = False


class PricingContext(msgspec.Struct, frozen=True, kw_only=True):
    """Who buys, where and when. `region_path` is the own region first, then its ancestors."""

    date: date
    customer_id: str | None = None
    customer_class: str | None = None
    level: str | None = None
    region_path: tuple[str, ...] = ()
    channel: str | None = None
    sales_org_id: str | None = None


class PriceLine(msgspec.Struct, frozen=True, kw_only=True):
    """A line to price. `quantity` is in the UOM named by `uom`; `base_quantity` is the same
    quantity in the SKU's base UOM, which bands are matched in (None: `uom` is the base UOM)."""

    sku_id: str
    uom: str
    quantity: Decimal
    base_quantity: Decimal | None = None

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise ValueError("quantity must be greater than zero")
        if self.base_quantity is not None and self.base_quantity <= 0:
            raise ValueError("base_quantity must be greater than zero")

    @property
    def band_quantity(self) -> Decimal:
        """The quantity bands are matched against: in the base UOM."""
        return self.quantity if self.base_quantity is None else self.base_quantity


class BandSlice(msgspec.Struct, frozen=True, kw_only=True):
    """The part of a line priced by one band; `quantity` is in the base UOM, like the bounds."""

    entry_id: str
    min_qty: Decimal
    max_qty: Decimal | None
    price: Decimal
    quantity: Decimal


class PriceExplanation(msgspec.Struct, frozen=True, kw_only=True):
    price_list_id: str
    step: str
    mode: Mode
    entry_ids: tuple[str, ...]
    bands: tuple[BandSlice, ...]


class PricedLine(msgspec.Struct, frozen=True, kw_only=True):
    """A priced line; `unit_price`, `amount` and `explanation` are None when no entry applies."""

    sku_id: str
    uom: str
    quantity: Decimal
    unit_price: Decimal | None
    amount: Decimal | None
    explanation: PriceExplanation | None


class Conflict(msgspec.Struct, frozen=True, kw_only=True):
    """A configuration error found when rules are saved; `fields` names the dimensions at fault."""

    kind: Literal["tie", "unknown_step", "missing_dimension", "extra_dimension"]
    entry_ids: tuple[str, ...]
    message: str
    fields: tuple[str, ...] = ()


class Floor(msgspec.Struct, frozen=True, kw_only=True):
    """A price floor (价盘) for one SKU+UOM: the lowest net unit price and the action below it."""

    id: str
    price: Decimal
    action: FloorAction
    valid_from: date | None = None
    valid_to: date | None = None

    def valid_on(self, day: date) -> bool:
        return _within(day, self.valid_from, self.valid_to)


class FloorVerdict(msgspec.Struct, frozen=True, kw_only=True):
    outcome: FloorOutcome
    shortfall: Decimal


BucketKey = tuple[str, str, str, tuple[str | None, ...]]


class PriceIndex(msgspec.Struct, frozen=True, kw_only=True):
    """Entries bucketed by (sku_id, uom, step, dimension values), each bucket sorted (-priority, id)."""

    sequence: tuple[AccessStep, ...]
    buckets: dict[BucketKey, tuple[PriceEntry, ...]]


def _key(entry: PriceEntry, step: AccessStep) -> BucketKey:
    values = tuple(getattr(entry, d) for d in step.dimensions)
    return (entry.sku_id, entry.uom, step.name, values)


def _order(entry: PriceEntry) -> tuple[int, str]:
    return (-entry.priority, entry.id)


def compile_index(entries: Iterable[PriceEntry], sequence: Sequence[AccessStep]) -> PriceIndex:
    """Bucket entries once per rule set; entries of unknown steps are left out (see validate_rules)."""
    steps = {s.name: s for s in sequence}
    grouped: dict[BucketKey, list[PriceEntry]] = {}
    for entry in entries:
        step = steps.get(entry.step)
        if step is not None:
            grouped.setdefault(_key(entry, step), []).append(entry)
    buckets = {k: tuple(sorted(v, key=_order)) for k, v in grouped.items()}
    return PriceIndex(sequence=tuple(sequence), buckets=buckets)


def _context_keys(ctx: PricingContext, step: AccessStep) -> list[tuple[str | None, ...]]:
    """Dimension tuples to look up, nearest region first; empty when the context lacks a dimension."""
    keys: list[tuple[str | None, ...]] = [()]
    for dim in step.dimensions:
        values = list(ctx.region_path) if dim == "region_id" else [getattr(ctx, dim)]
        if not values or values[0] is None:
            return []
        keys = [(*k, v) for k in keys for v in values]
    return keys


def _step_winner(
    index: PriceIndex, ctx: PricingContext, line: PriceLine, step: AccessStep
) -> tuple[PriceEntry, tuple[PriceEntry, ...]] | None:
    best: tuple[tuple[int, int, str], PriceEntry, tuple[PriceEntry, ...]] | None = None
    for depth, values in enumerate(_context_keys(ctx, step)):
        bucket = index.buckets.get((line.sku_id, line.uom, step.name, values), ())
        for entry in bucket:
            if entry.valid_on(ctx.date) and entry.band_contains(line.band_quantity):
                rank = (-entry.priority, depth, entry.id)
                if best is None or rank < best[0]:
                    best = (rank, entry, bucket)
                break
    return None if best is None else (best[1], best[2])


def _ladder(
    winner: PriceEntry, bucket: tuple[PriceEntry, ...], day: date, quantity: Decimal
) -> list[PriceEntry]:
    """The graduated bands below the winner, from the same list and priority, by upper bound."""
    lower = [
        e
        for e in bucket
        if e.mode == "graduated"
        and e.price_list_id == winner.price_list_id
        and e.priority == winner.priority
        and e.max_qty is not None
        and e.max_qty < quantity
        and e.id != winner.id
        and e.valid_on(day)
    ]
    return [*sorted(lower, key=lambda e: (e.max_qty, e.id)), winner]


def _slices(ladder: list[PriceEntry], quantity: Decimal) -> list[BandSlice]:
    # Upper bounds are the breakpoints: band i covers (previous upper bound, its upper bound].
    slices: list[BandSlice] = []
    covered = ZERO
    for entry in ladder:
        top = quantity if entry.max_qty is None else min(quantity, entry.max_qty)
        part = max(ZERO, top - covered)
        covered = top
        if part > 0:
            slices.append(
                BandSlice(
                    entry_id=entry.id,
                    min_qty=entry.min_qty,
                    max_qty=entry.max_qty,
                    price=entry.price,
                    quantity=part,
                )
            )
    return slices


def _price_line(index: PriceIndex, ctx: PricingContext, line: PriceLine) -> PricedLine:
    found: tuple[tuple[int, int], AccessStep, PriceEntry, tuple[PriceEntry, ...]] | None = None
    for position, step in enumerate(index.sequence):
        hit = _step_winner(index, ctx, line, step)
        if hit is None:
            continue
        rank = (-hit[0].priority, position)
        if found is None or rank < found[0]:
            found = (rank, step, hit[0], hit[1])
        if step.exclusive:
            break
    if found is None:
        return PricedLine(
            sku_id=line.sku_id,
            uom=line.uom,
            quantity=line.quantity,
            unit_price=None,
            amount=None,
            explanation=None,
        )
    _, step, winner, bucket = found
    base = line.band_quantity
    if winner.mode == "graduated":
        slices = _slices(_ladder(winner, bucket, ctx.date, base), base)
        # Slices are in base units and prices per line unit: price × slice ÷ (base per line unit).
        base_amount = sum((s.price * s.quantity for s in slices), ZERO)
        amount = round_money(base_amount if base == line.quantity else base_amount * line.quantity / base)
        unit_price = round_money(amount / line.quantity)
    else:
        slices = [
            BandSlice(
                entry_id=winner.id,
                min_qty=winner.min_qty,
                max_qty=winner.max_qty,
                price=winner.price,
                quantity=base,
            )
        ]
        amount = round_money(winner.price * line.quantity)
        unit_price = winner.price
    explanation = PriceExplanation(
        price_list_id=winner.price_list_id,
        step=step.name,
        mode=winner.mode,
        entry_ids=tuple(s.entry_id for s in slices),
        bands=tuple(slices),
    )
    return PricedLine(
        sku_id=line.sku_id,
        uom=line.uom,
        quantity=line.quantity,
        unit_price=unit_price,
        amount=amount,
        explanation=explanation,
    )


def price_order(index: PriceIndex, ctx: PricingContext, lines: Iterable[PriceLine]) -> list[PricedLine]:
    """Price every line in one pass, in the order given."""
    return [_price_line(index, ctx, line) for line in lines]


def _overlap(a: PriceEntry, b: PriceEntry) -> bool:
    dates = (a.valid_to is None or b.valid_from is None or b.valid_from <= a.valid_to) and (
        b.valid_to is None or a.valid_from is None or a.valid_from <= b.valid_to
    )
    bands = (a.max_qty is None or b.min_qty <= a.max_qty) and (b.max_qty is None or a.min_qty <= b.max_qty)
    return dates and bands


def validate_rules(entries: Iterable[PriceEntry], sequence: Sequence[AccessStep]) -> list[Conflict]:
    """Configuration errors: ties (same step, key and priority, overlapping dates and bands) and
    entries that do not fit their step."""
    steps = {s.name: s for s in sequence}
    conflicts: list[Conflict] = []
    grouped: dict[tuple[BucketKey, int], list[PriceEntry]] = {}
    for entry in sorted(entries, key=lambda e: e.id):
        step = steps.get(entry.step)
        if step is None:
            conflicts.append(
                Conflict(kind="unknown_step", entry_ids=(entry.id,), message=f"unknown step {entry.step!r}")
            )
            continue
        missing = [d for d in step.dimensions if getattr(entry, d) is None]
        extra = [d for d in DIMENSIONS if d not in step.dimensions and getattr(entry, d) is not None]
        if missing:
            conflicts.append(
                Conflict(
                    kind="missing_dimension",
                    entry_ids=(entry.id,),
                    message=f"step {step.name!r} requires {', '.join(missing)}",
                    fields=tuple(missing),
                )
            )
        if extra:
            conflicts.append(
                Conflict(
                    kind="extra_dimension",
                    entry_ids=(entry.id,),
                    message=f"step {step.name!r} does not use {', '.join(extra)}",
                    fields=tuple(extra),
                )
            )
        grouped.setdefault((_key(entry, step), entry.priority), []).append(entry)
    for group in grouped.values():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                if _overlap(a, b):
                    conflicts.append(
                        Conflict(
                            kind="tie",
                            entry_ids=(a.id, b.id),
                            message=f"entries {a.id} and {b.id} tie in step {a.step!r} "
                            f"at priority {a.priority} with overlapping dates and bands",
                        )
                    )
    return conflicts


def check_floor(net_unit_price: Decimal, floor: Decimal | None, action: FloorAction) -> FloorVerdict:
    """Price floor (价盘): a net unit price below the floor takes the configured action."""
    if floor is None or net_unit_price >= floor:
        return FloorVerdict(outcome="pass", shortfall=ZERO)
    return FloorVerdict(outcome=action, shortfall=floor - net_unit_price)
