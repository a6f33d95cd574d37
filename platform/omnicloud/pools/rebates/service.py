"""Rebate accrual runs (返利计提, DOMAIN §4): request, compute, review, adjust, settle.

A run is one rebate policy over one period. Finance requests it; a background job computes one
line per covered customer and moves the run to review; finance may adjust a line (audited),
then settles (credits the rebate accounts) or discards it.

The achieved amount
    comes from the basis source registered for the policy's basis (:func:`add_basis_source`):
    ``(customer_id, sku_id, amount)`` rows for a period, net of returns and excluding what
    rebate paid. ``shipped`` is built in: the brand's sales facts (a fact a dealer sold, with
    ``seller_customer_id`` set, is that dealer's sale, not the brand's) with ``day`` in the
    period, ``amount − rebate``. Until a source for ``invoiced`` or ``paid`` is registered, a
    run on that basis is refused with a 422. The policy's product scope, customer scope and
    explanation are the terms service's own (``preview_rebate`` computes the same way).

Re-running
    The same policy and period always maps to one run: requesting it again recomputes that run
    (its lines are replaced only when something changed, so an unchanged re-run is a no-op and
    keeps finance's adjustments) unless it is settled, which is a 409. Runs of one policy may
    not overlap, so no sale is counted twice.

Returns after settlement
    Returns count on the day the goods came back. When a period's returns exceed its sales in
    scope (goods of an earlier, settled period came back), the achieved amount is negative and
    the line is a negative accrual: the achieved amount times the average rate the customer's
    latest settled run of this policy paid (its accrual ÷ its achieved amount). A negative line
    is never taken from the rebate account: settlement carries it out, and the next run of the
    policy takes it in (``carried_in``) until later accruals have absorbed it.

Settlement
    credits each positive line to the customer's rebate account through ``funds.credit_rebate``
    (form ``cash`` or ``discount``), valid from the day after the period, with the key
    ``rebate-accrual:<run>:<customer>``, so a retried or concurrent settle never pays twice. Form
    ``goods`` records the entitlement on the line (``credited``) without moving money.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.catalog import service as catalog
from omnicloud.channels import service as channels
from omnicloud.core import audit, events
from omnicloud.core.db import Money, utcnow
from omnicloud.core.errors import Conflict, NotFound, Problem, invalid
from omnicloud.core.ids import new_id
from omnicloud.core.money import round_money
from omnicloud.core.paging import paged_query, split_page
from omnicloud.core.security import current_principal
from omnicloud.core.tenancy import require_tenant
from omnicloud.policies import rebates
from omnicloud.policies.terms import service as terms
from omnicloud.policies.terms.models import RebatePolicy
from omnicloud.policies.terms.schemas import SalesLine
from omnicloud.pools.funds import service as funds
from omnicloud.pools.funds.schemas import Reference
from omnicloud.pools.rebates import states
from omnicloud.pools.rebates.models import RebateAccrualLine, RebateAccrualRun
from omnicloud.pools.rebates.schemas import AccrualLineOut, AccrualRunIn, AccrualRunOut, LineAdjustmentIn
from omnicloud.pools.sales.models import SalesFact

ZERO = Decimal("0.00")
PAYS_MONEY = ("cash", "discount")
RUN_FIELDS = ("rebate_policy_id", "period_start", "period_end", "state", "version", "total", "customers")
LINE_FIELDS = ("customer_id", "computed", "amount", "adjustment_reason")
# What a recomputation compares to decide whether anything changed.
COMPUTED_FIELDS = (
    "achieved_amount",
    "excluded_amount",
    "achievement_ratio",
    "tier_achievement",
    "tier_rate",
    "accrual",
    "carried_in",
    "computed",
    "explanation",
)

BasisRow = tuple[UUID, UUID, Decimal]
BasisSource = Callable[[AsyncSession, date, date], Awaitable[Sequence[BasisRow]]]
_BASIS_SOURCES: dict[str, BasisSource] = {}


def add_basis_source(basis: str, source: BasisSource) -> None:
    """Register where a basis (``invoiced``, ``paid``) comes from: ``source(session, start, end)``
    returns ``(customer_id, sku_id, amount)`` rows for the days ``start`` to ``end``, net of
    returns and excluding rebate redemptions, for the brand's sales only. The pools depend on
    this module, so they register themselves (a later registration replaces an earlier one)."""
    _BASIS_SOURCES[basis] = source


def basis_source(basis: str) -> BasisSource | None:
    return _BASIS_SOURCES.get(basis)


async def shipped_basis(session: AsyncSession, start: date, end: date) -> list[BasisRow]:
    """The brand's shipped sales net of returns, less what rebate paid, per customer and SKU: one
    GROUP BY over the sales facts."""
    net = func.round(func.sum(SalesFact.amount - SalesFact.rebate), literal_column("2"), type_=Money)
    stmt = (
        select(SalesFact.customer_id, SalesFact.sku_id, net)
        .where(
            SalesFact.day >= start,
            SalesFact.day <= end,
            SalesFact.seller_customer_id.is_(None),
        )
        .group_by(SalesFact.customer_id, SalesFact.sku_id)
    )
    return [(c, s, Decimal(a)) for c, s, a in (await session.execute(stmt)).all()]


add_basis_source("shipped", shipped_basis)


def _actor() -> str:
    p = current_principal()
    return p.actor if p else "system"


# --- reading ---------------------------------------------------------------------------------


def line_out(line: RebateAccrualLine) -> AccrualLineOut:
    return AccrualLineOut(
        customer_id=line.customer_id,
        achieved_amount=line.achieved_amount,
        excluded_amount=line.excluded_amount,
        achievement_ratio=line.achievement_ratio,
        tier_achievement=line.tier_achievement,
        tier_rate=line.tier_rate,
        accrual=line.accrual,
        carried_in=line.carried_in,
        computed=line.computed,
        amount=line.amount,
        adjusted=line.adjustment_reason is not None,
        adjustment_reason=line.adjustment_reason,
        adjusted_by=line.adjusted_by,
        explanation=list(line.explanation),
        credited=line.credited,
        carried_out=line.carried_out,
        transfer_id=line.transfer_id,
        version=line.version,
    )


def run_out(run: RebateAccrualRun, lines: Sequence[RebateAccrualLine] | None = None) -> AccrualRunOut:
    return AccrualRunOut(
        id=run.id,
        rebate_policy_id=run.rebate_policy_id,
        period_start=run.period_start,
        period_end=run.period_end,
        state=run.state,  # type: ignore[arg-type]
        allowed_actions=states.allowed(run.state),
        version=run.version,
        basis=run.basis,
        form=run.form,
        total=run.total,
        customers=run.customers,
        error=run.error,
        requested_by=run.requested_by,
        requested_at=run.requested_at,
        computed_at=run.computed_at,
        settled_by=run.settled_by,
        settled_at=run.settled_at,
        lines=None if lines is None else [line_out(x) for x in lines],
    )


async def _run(session: AsyncSession, run_id: UUID, *, lock: bool = False) -> RebateAccrualRun:
    """The run, locked until the transaction ends when ``lock`` (PostgreSQL; SQLite writers are
    serialised by its write lock), so two actions on one run happen one after the other."""
    run = await session.get(
        RebateAccrualRun, (require_tenant(), run_id), with_for_update=lock or None, populate_existing=lock
    )
    if run is None:
        raise NotFound("no such rebate accrual run")
    return run


async def require_run(session: AsyncSession, run_id: UUID) -> None:
    """404 unless the run exists in this tenant (before asking the caller for anything else)."""
    await _run(session, run_id)


async def _lines(session: AsyncSession, run_id: UUID) -> list[RebateAccrualLine]:
    stmt = (
        select(RebateAccrualLine)
        .where(RebateAccrualLine.run_id == run_id)
        .order_by(RebateAccrualLine.customer_id)
    )
    return list((await session.scalars(stmt)).all())


async def get_run(session: AsyncSession, run_id: UUID) -> AccrualRunOut:
    run = await _run(session, run_id)
    return run_out(run, await _lines(session, run_id))


async def list_runs(
    session: AsyncSession,
    cursor: str | None,
    limit: int,
    *,
    rebate_policy_id: UUID | None = None,
    state: str | None = None,
) -> tuple[list[AccrualRunOut], str | None]:
    stmt = select(RebateAccrualRun)
    if rebate_policy_id is not None:
        stmt = stmt.where(RebateAccrualRun.rebate_policy_id == rebate_policy_id)
    if state is not None:
        stmt = stmt.where(RebateAccrualRun.state == state)
    rows = (await session.scalars(paged_query(stmt, RebateAccrualRun.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [run_out(r) for r in items], nxt


# --- state changes ---------------------------------------------------------------------------


def _move(run: RebateAccrualRun, action: str) -> None:
    """Apply ``action`` to the (locked) run: 409 when the state table has no such move."""
    try:
        run.state = states.transition(run.state, action)
    except states.IllegalTransition as exc:
        raise Conflict(str(exc), code="illegal_transition") from None
    run.version += 1


def _calendar_period(period: str, start: date, end: date) -> bool:
    """Whether ``start``..``end`` is one calendar month, quarter or year (``custom``: any)."""
    if period == "custom":
        return True
    months = {"month": 1, "quarter": 3, "year": 12}[period]
    if start.day != 1 or (start.month - 1) % months != 0:
        return False
    following = start.month - 1 + months
    after = date(start.year + following // 12, following % 12 + 1, 1)
    return end == after - timedelta(days=1)


async def _check_policy(session: AsyncSession, policy: RebatePolicy, start: date, end: date) -> None:
    """A run needs a computable policy in force in the period, on a basis with a source; a
    monthly, quarterly or yearly policy accrues per calendar period."""
    if policy.status == "draft":
        raise invalid("rebate_policy_id", "the rebate policy is a draft: activate it before accruing")
    try:
        rebates.validate_policy(terms.engine_policy(policy))
    except rebates.RebatePolicyError as exc:
        field, _, message = str(exc).partition(": ")
        raise invalid(
            "rebate_policy_id",
            f"the policy cannot be computed ({field}: {message})",
            code="policy_misconfigured",
        ) from None
    if basis_source(policy.basis) is None:
        raise invalid(
            "rebate_policy_id",
            f"no source for the basis {policy.basis!r} is installed yet: it cannot accrue",
            code="basis_unavailable",
        )
    if not terms.overlaps(policy, start, end):
        raise invalid("period_start", "the rebate policy is not in force in this period")
    if not _calendar_period(policy.period, start, end):
        raise invalid("period_end", f"a {policy.period}ly policy accrues per calendar {policy.period}")


async def request_run(session: AsyncSession, data: AccrualRunIn) -> tuple[AccrualRunOut, bool]:
    """Create the run of the policy and period, or ask the existing one to compute again. The
    flag says whether a computation must be queued (always, unless the run was just settled)."""
    policy = await session.get(RebatePolicy, (require_tenant(), data.rebate_policy_id))
    if policy is None:
        raise invalid("rebate_policy_id", "no such rebate policy")
    await _check_policy(session, policy, data.period_start, data.period_end)
    # Lock the policy row: concurrent requests for one policy check overlaps one after the other.
    await session.execute(select(RebatePolicy.id).where(RebatePolicy.id == policy.id).with_for_update())
    others = await session.execute(
        select(RebateAccrualRun.id, RebateAccrualRun.period_start, RebateAccrualRun.period_end).where(
            RebateAccrualRun.rebate_policy_id == policy.id,
            RebateAccrualRun.state != "discarded",
            RebateAccrualRun.period_start <= data.period_end,
            RebateAccrualRun.period_end >= data.period_start,
            or_(
                RebateAccrualRun.period_start != data.period_start,
                RebateAccrualRun.period_end != data.period_end,
            ),
        )
    )
    clash = others.first()
    if clash is not None:
        raise Conflict(
            f"run {clash.id} of this policy already covers {clash.period_start} to {clash.period_end}: "
            "periods of one policy must not overlap",
            code="period_overlaps",
        )
    existing = await session.scalar(
        select(RebateAccrualRun.id).where(
            RebateAccrualRun.rebate_policy_id == policy.id,
            RebateAccrualRun.period_start == data.period_start,
            RebateAccrualRun.period_end == data.period_end,
        )
    )
    if existing is None:
        run = RebateAccrualRun(
            id=new_id(),
            rebate_policy_id=policy.id,
            period_start=data.period_start,
            period_end=data.period_end,
            state="computing",
            version=1,
            basis=policy.basis,
            form=policy.form,
            total=ZERO,
            customers=0,
            requested_by=_actor(),
            requested_at=utcnow(),
        )
        session.add(run)
        await catalog.flush_unique(session, "rebate accrual run for this policy and period")
        before = None
    else:
        run = await _run(session, existing, lock=True)
        before = audit.snapshot(run, RUN_FIELDS)
        _move(run, "request")
        run.basis, run.form, run.error = policy.basis, policy.form, None
        run.requested_by, run.requested_at = _actor(), utcnow()
        await session.flush()
    audit.record_change(session, "rebate_accrual_run", run.id, before, audit.snapshot(run, RUN_FIELDS))
    events.emit(session, "rebate_accrual.requested", _event(run))
    return run_out(run), True


def _event(run: RebateAccrualRun) -> dict[str, Any]:
    return {
        "rebate_accrual_id": str(run.id),
        "rebate_policy_id": str(run.rebate_policy_id),
        "period_start": run.period_start.isoformat(),
        "period_end": run.period_end.isoformat(),
        "state": run.state,
        "total": str(run.total),
    }


# --- computing ---------------------------------------------------------------------------------


async def _settled_before(session: AsyncSession, policy_id: UUID, start: date) -> list[RebateAccrualLine]:
    """The lines of the policy's settled runs that ended before ``start``, latest period first."""
    stmt = (
        select(RebateAccrualLine)
        .join(
            RebateAccrualRun,
            (RebateAccrualRun.tenant_id == RebateAccrualLine.tenant_id)
            & (RebateAccrualRun.id == RebateAccrualLine.run_id),
        )
        .where(
            RebateAccrualRun.rebate_policy_id == policy_id,
            RebateAccrualRun.state == "settled",
            RebateAccrualRun.period_end < start,
        )
        .order_by(RebateAccrualRun.period_end.desc())
    )
    return list((await session.scalars(stmt)).all())


def _clip(policy: RebatePolicy, start: date, end: date) -> tuple[date, date]:
    """The part of the period in which the policy is in force."""
    return (
        max(start, policy.period_start) if policy.period_start else start,
        min(end, policy.period_end) if policy.period_end else end,
    )


async def _covered(session: AsyncSession, policy: RebatePolicy, customer_id: UUID) -> bool:
    customer = await channels.require_customer(session, customer_id)
    region_path = [str(r) for r in await catalog.region_ancestors(session, customer.region_id)]
    return terms.customer_scope(policy).covers(
        customer_id=str(customer.id),
        customer_class=customer.customer_class,
        level=customer.level,
        region_path=region_path,
    )


async def compute_lines(
    session: AsyncSession, policy: RebatePolicy, start: date, end: date
) -> list[dict[str, Any]]:
    """Each covered customer's line values for the policy and period (nothing is written)."""
    engine = terms.engine_policy(policy)
    source = basis_source(policy.basis)
    if source is None:
        raise invalid(
            "rebate_policy_id", f"no source for the basis {policy.basis!r}", code="basis_unavailable"
        )
    first, last = _clip(policy, start, end)
    by_customer: dict[UUID, list[SalesLine]] = defaultdict(list)
    for customer_id, sku_id, amount in await source(session, first, last):
        net = round_money(amount)
        by_customer[customer_id].append(
            SalesLine(sku_id=sku_id, amount=max(net, ZERO), returned_amount=max(-net, ZERO))
        )
    carried: dict[UUID, Decimal] = {}
    rates: dict[UUID, Decimal] = {}
    settled = await _settled_before(session, policy.id, start)
    if settled:
        latest_run = settled[0].run_id
        for line in settled:
            if line.run_id == latest_run and line.carried_out:
                carried[line.customer_id] = line.carried_out
            if line.customer_id not in rates and line.achieved_amount > 0:
                rates[line.customer_id] = line.accrual / line.achieved_amount
    scope = terms.product_scope(policy)
    out: list[dict[str, Any]] = []
    for customer_id in sorted(set(by_customer) | set(carried)):
        carried_in = carried.get(customer_id, ZERO)
        sales = by_customer.get(customer_id, [])
        if not await _covered(session, policy, customer_id) and not carried_in:
            continue
        inside, outside, excluded = await terms.sales_in_scope(session, scope, sales)
        achieved = round_money(inside)
        explanation: list[str] = []
        if excluded:
            explanation.append(
                f"{excluded} of {len(sales)} SKUs sold ({round_money(outside)}) are outside the product "
                "scope and do not count"
            )
        ratio = tier_achievement = tier_rate = None
        if achieved >= 0:
            result = rebates.breakdown(engine, achieved)
            accrual = result.accrual
            ratio = result.achievement_ratio
            if result.reached_tier is not None:
                tier_achievement, tier_rate = result.reached_tier.achievement, result.reached_tier.rate
            explanation.extend(terms.explain_rebate(policy, result))
        else:
            rate = rates.get(customer_id, Decimal(0))
            accrual = round_money(achieved * rate)
            explanation.append(
                f"returns exceed sales in this period by {-achieved}: a negative accrual at the "
                f"{terms.pct(rate.quantize(Decimal('0.0001')))} the latest settled run paid on average"
            )
        if carried_in:
            explanation.append(f"{carried_in} carried in from the previous settled run")
        out.append(
            {
                "customer_id": customer_id,
                "achieved_amount": achieved,
                "excluded_amount": round_money(outside),
                "achievement_ratio": ratio,
                "tier_achievement": tier_achievement,
                "tier_rate": tier_rate,
                "accrual": accrual,
                "carried_in": carried_in,
                "computed": accrual + carried_in,
                "explanation": explanation,
            }
        )
    return out


def _same(lines: Sequence[RebateAccrualLine], computed: Sequence[dict[str, Any]]) -> bool:
    def key(values: dict[str, Any]) -> tuple[Any, ...]:
        return (
            values["customer_id"],
            *(
                None if values[f] is None else (values[f] if f == "explanation" else Decimal(values[f]))
                for f in COMPUTED_FIELDS
            ),
        )

    old = sorted(
        key({"customer_id": x.customer_id, **{f: getattr(x, f) for f in COMPUTED_FIELDS}}) for x in lines
    )
    return old == sorted(key(v) for v in computed)


async def compute_run(session: AsyncSession, run_id: UUID) -> bool:
    """Compute a run that is waiting for it and move it to review; False when there was nothing
    to do (the job is at least once: a repeat finds the run no longer computing). A policy that
    can no longer be computed moves the run to discarded with the reason in ``error``."""
    run = await _run(session, run_id, lock=True)
    if run.state != "computing":
        return False
    policy = await session.get(RebatePolicy, (require_tenant(), run.rebate_policy_id))
    assert policy is not None  # a foreign key
    before = audit.snapshot(run, RUN_FIELDS)
    try:
        await _check_policy(session, policy, run.period_start, run.period_end)
        computed = await compute_lines(session, policy, run.period_start, run.period_end)
    except Problem as exc:
        run.error = exc.detail[:400]
        _move(run, "fail")
        await session.flush()
        audit.record_change(session, "rebate_accrual_run", run.id, before, audit.snapshot(run, RUN_FIELDS))
        events.emit(session, "rebate_accrual.failed", {**_event(run), "error": run.error})
        return True
    existing = await _lines(session, run.id)
    if not _same(existing, computed):
        await session.execute(delete(RebateAccrualLine).where(RebateAccrualLine.run_id == run.id))
        now = utcnow()
        session.add_all(
            RebateAccrualLine(
                id=new_id(), run_id=run.id, amount=v["computed"], version=1, created_at=now, **v
            )
            for v in computed
        )
        run.total = sum((v["computed"] for v in computed), ZERO)
        run.customers = len(computed)
    run.computed_at = utcnow()
    _move(run, "computed")
    await session.flush()
    audit.record_change(session, "rebate_accrual_run", run.id, before, audit.snapshot(run, RUN_FIELDS))
    events.emit(session, "rebate_accrual.computed", _event(run))
    return True


# --- review, settle, discard -------------------------------------------------------------------


async def adjust_line(
    session: AsyncSession,
    run_id: UUID,
    customer_id: UUID,
    data: LineAdjustmentIn,
    expected_version: int | None,
) -> AccrualLineOut:
    """Override one line's amount while the run is in review (audited with the reason). A
    recomputation that changes the run's figures replaces the lines, adjustments included."""
    run = await _run(session, run_id, lock=True)
    line = await session.scalar(
        select(RebateAccrualLine).where(
            RebateAccrualLine.run_id == run_id, RebateAccrualLine.customer_id == customer_id
        )
    )
    if line is None:
        raise NotFound("the run has no line for this customer")
    audit.check_version(line, expected_version, "rebate accrual line")
    _move(run, "adjust")
    before = audit.snapshot(line, LINE_FIELDS)
    run.total += data.amount - line.amount
    line.amount = data.amount
    line.adjustment_reason = data.reason
    line.adjusted_by = _actor()
    line.version += 1
    await session.flush()
    audit.record_change(session, "rebate_accrual_line", line.id, before, audit.snapshot(line, LINE_FIELDS))
    events.emit(
        session,
        "rebate_accrual.adjusted",
        {**_event(run), "customer_id": str(customer_id), "amount": str(line.amount), "reason": data.reason},
    )
    return line_out(line)


async def _settles_in_order(session: AsyncSession, run: RebateAccrualRun) -> None:
    """Periods of one policy settle in order, each on figures that saw the settlement before it:
    a negative line is carried into the next run when that run is computed, so settling a run
    while an earlier period is still open, or after an earlier period settled since this run was
    computed, could lose a carry. Either is a 409 that says what to do."""
    earlier = (
        await session.execute(
            select(RebateAccrualRun.period_start, RebateAccrualRun.state, RebateAccrualRun.settled_at)
            .where(
                RebateAccrualRun.rebate_policy_id == run.rebate_policy_id,
                RebateAccrualRun.period_end < run.period_start,
                RebateAccrualRun.state.in_(("computing", "review", "settled")),
            )
            .order_by(RebateAccrualRun.period_end.desc())
        )
    ).all()
    for start, state, settled_at in earlier:
        if state != "settled":
            raise Conflict(
                f"the run for the period from {start} is still {state}: settle or discard it first",
                code="settle_in_order",
            )
        if run.computed_at is not None and settled_at is not None and settled_at > run.computed_at:
            raise Conflict(
                f"the period from {start} was settled after this run was computed: request this "
                "period again so it carries what that settlement left over",
                code="stale_run",
            )


async def settle(session: AsyncSession, run_id: UUID) -> AccrualRunOut:
    """Credit every positive line (form cash or discount) to the customer's rebate account, record
    goods entitlements, and carry negative lines out to the next run. Exactly once: the run is
    locked and must be in review, and each credit's key is derived from the run and customer."""
    run = await _run(session, run_id, lock=True)
    before = audit.snapshot(run, RUN_FIELDS)
    _move(run, "settle")
    await _settles_in_order(session, run)
    lines = await _lines(session, run_id)
    for line in lines:
        line.credited = max(line.amount, ZERO)
        line.carried_out = min(line.amount, ZERO)
        if line.amount > 0 and run.form in PAYS_MONEY:
            transfer = await funds.credit_rebate(
                session,
                customer_id=line.customer_id,
                sales_org_id=None,
                amount=line.amount,
                reference=Reference(type="rebate_accrual", id=run.id),
                key=f"rebate-accrual:{run.id}:{line.customer_id}",
                valid_from=run.period_end + timedelta(days=1),
                memo=f"rebate {run.period_start} to {run.period_end}",
            )
            line.transfer_id = transfer.id
    run.settled_by, run.settled_at = _actor(), utcnow()
    await session.flush()
    audit.record_change(session, "rebate_accrual_run", run.id, before, audit.snapshot(run, RUN_FIELDS))
    events.emit(
        session,
        "rebate_accrual.settled",
        {**_event(run), "credited": str(sum((x.credited or ZERO for x in lines), ZERO))},
    )
    return run_out(run, lines)


async def discard(session: AsyncSession, run_id: UUID) -> AccrualRunOut:
    """Drop a run that is computing or in review; requesting its period again reopens it."""
    run = await _run(session, run_id, lock=True)
    before = audit.snapshot(run, RUN_FIELDS)
    _move(run, "discard")
    await session.flush()
    audit.record_change(session, "rebate_accrual_run", run.id, before, audit.snapshot(run, RUN_FIELDS))
    events.emit(session, "rebate_accrual.discarded", _event(run))
    return run_out(run, await _lines(session, run_id))
