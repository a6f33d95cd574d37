"""The fund pool (资金池): customer accounts, an append-only double-entry ledger, freezes (冻结) and
remittances (汇款).

Money model
    Every movement is a :class:`FundTransfer` whose :class:`FundEntry` legs sum to zero. A positive
    leg credits an account. Customer accounts (cash, rebate, fee, special, deposit) hold what the
    brand owes the customer; the brand's side of each transfer is one of the tenant's system
    accounts (``receipts``, ``sales``, ``fee_expense``, ``rebate_expense``, ``adjustments``), which
    go negative. ``fund_accounts.balance`` is a cache of the entries and ``held`` of the placed
    holds, both changed only by conditional UPDATEs in the transaction that writes the entries or
    holds (``... WHERE balance - held >= :amount``); the table's CHECK constraints are the
    backstop. Entries and transfers are never updated or deleted: corrections are new transfers
    (:func:`adjust`). Every transfer has a reference (document type and id) and a unique
    idempotency key, so the same request never moves money twice.

Pools by owner (DOMAIN §7)
    Every account belongs to one pool (``owner_customer_id``): NULL is the brand's pool, as
    above; a dealer's pool holds the accounts its sub-dealers keep *at it* (cash and deposit
    filed by remittances to it) and its own system accounts (slots ``system:<code>:<owner>``),
    which are its side of those transfers. A transfer never crosses pools (each leg's UPDATE
    checks the account's pool), so every pool's balances sum to zero on their own and
    :func:`reconcile` checks that too. Functions that move money take ``owner`` (None: the
    brand's pool, the default, so every brand caller is unchanged). A dealer pool has no sales
    orgs: its accounts are the customer's per kind. Fees and rebate are the brand's instruments
    (its promotions, offset ratios and rebate policies), so a dealer pool pays orders from
    special and cash accounts and its credit.

Credit (信用) is not a ledger account: a credit line is a limit, not money, and its occupation is
the customer's exposure (open orders, receivables) that ``policies.terms.credit_preview`` checks
with pass/warn/block actions a balance constraint cannot express. :func:`plan_payment` reports the
part of an order left on credit (``PaymentPlan.credit``); the order service checks that amount
with ``terms.credit_preview`` and records the occupation on the order.

Functions the order service calls, all inside the caller's transaction (they never commit). On a
Problem the caller's transaction must roll back (a request does when the Problem propagates):

``payment_accounts(session, *, customer_id, sales_org_id, today, owner=None) -> list[payment.Account]``
    The accounts that may pay an order of this customer and sales org (exactly that org; None is
    the customer's accounts without one) in ``owner``'s pool, as the payment engine takes them.
    One statement.
``plan_payment(session, *, customer_id, sales_org_id, request) -> payment.PaymentPlan``
    The payment sequence (DOMAIN §6) over those accounts; see ``pools.payment``. Changes nothing.
``freeze(session, *, customer_id, sales_org_id, plan, reference, owner=None) -> list[HoldOut]``
    Places one hold per draw of the plan, each by a conditional UPDATE of its account; a plan
    with a shortfall, or an account that no longer has the amount available (a concurrent order
    got there first), is a 409 ``insufficient_funds``.
``post_holds(session, reference, amount=None, *, by_kind=None, owner=None) -> TransferOut | None``
    Turns the reference's placed holds into one ``payment`` transfer to the pool's ``sales`` account,
    in payment-sequence order; with ``amount``, posts that much and keeps the rest frozen (child
    holds); with ``by_kind`` (account kind → amount), posts that much of each kind's holds, so
    a shipment deducts the fee, rebate, special and cash parts of exactly the goods it ships.
    Each hold is posted exactly once (conditional UPDATE on its state): with nothing placed it
    does nothing and returns None; ``amount`` above what is placed is a 409, and so is losing a
    race with a concurrent post or release of the same holds (``holds_closed``,
    ``duplicate_transfer``).
``release_holds(session, reference, amount=None) -> list[HoldOut]``
    Unfreezes in reverse payment order (cash, special, rebate, fee), each hold exactly once;
    ``amount=None`` releases everything and, with nothing placed, does nothing; ``amount`` above
    what is placed is a 409. ``void_holds(session, reference)`` is ``amount=None``.
``refund(session, reference, amount=None, *, key, memo=None, by_kind=None, owner=None) -> TransferOut | None``
    Returns posted money to the accounts it came from (原路返回), in reverse payment order; fee
    and rebate accounts keep their original expiry. With ``by_kind`` (account kind → amount) it
    returns that much to each kind (a return gives back each part its goods carried); more than
    the document posted net of earlier refunds, in all or of one kind, is a 409. ``key`` (e.g.
    ``"return:<id>"``) makes it idempotent: the same key again returns the first refund and
    moves nothing.
``credit_rebate(session, *, customer_id, sales_org_id, amount, reference, key, ...) -> TransferOut``
    Settles rebate into the customer's rebate account for that validity (the rebate run).
``holds_for(session, reference) -> list[HoldOut]``
    The reference's holds, every state.
``reconcile(session) -> list[str]``
    Ledger discrepancies of the tenant (empty when every transfer sums to zero, every balance
    equals its entries and every ``held`` its placed holds).

Dealer users see only the accounts, remittances and statements of their own customer subtree;
any other id answers 404. A remittance to a dealer (``seller_customer_id``) is decided by that
dealer's users (``funds:own``) or the brand's finance; any other dealer that can see it gets a 403.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import ColumnElement, and_, case, func, literal_column, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from omnicloud.catalog import service as catalog
from omnicloud.channels import service as channels
from omnicloud.core import audit, events
from omnicloud.core.db import Money, is_unique_violation, utcnow
from omnicloud.core.errors import Conflict, Forbidden, NotFound, invalid
from omnicloud.core.ids import new_id
from omnicloud.core.paging import paged_query, split_page
from omnicloud.core.security import Principal, current_principal
from omnicloud.core.tenancy import require_tenant
from omnicloud.policies.rebates import ProductScope
from omnicloud.pools import payment
from omnicloud.pools.funds.models import (
    FundAccount,
    FundEntry,
    FundHold,
    FundTransfer,
    Remittance,
)
from omnicloud.pools.funds.schemas import (
    AccountStatement,
    AdjustmentIn,
    EntryOut,
    FeeGrantIn,
    FeeGrantOut,
    FundAccountOut,
    HoldOut,
    LegOut,
    ProductScopeOut,
    Reference,
    RemittanceIn,
    RemittanceOut,
    SpecialAccountIn,
    StatementLine,
    StatementOut,
    TransferOut,
)

ZERO = Decimal("0.00")
PAYING_KINDS = payment.STEPS  # fee, rebate, special, cash: the kinds that pay orders
RELEASE_ORDER = {"cash": 0, "special": 1, "rebate": 2, "fee": 3}  # reverse payment sequence
MAX_STATEMENT_LINES = 2000
REMITTANCE_FIELDS = ("customer_id", "sales_org_id", "account_kind", "amount", "bank_reference", "status")


def business_day() -> date:
    """The day (UTC) that decides which fee, rebate and special accounts are valid."""
    return utcnow().date()


def insufficient(detail: str) -> Conflict:
    return Conflict(detail, code="insufficient_funds")


def _round(expr: Any) -> ColumnElement[Any]:
    # SQLite computes in floating point: round every result to the column's cents.
    return func.round(expr, literal_column("2"), type_=Money)


def _caller_key(prefix: str, key: str) -> str:
    """A caller's idempotency key, namespaced so it can never collide with the ledger's own."""
    if not 1 <= len(key) <= 200:
        raise ValueError("an idempotency key has 1 to 200 characters")
    return f"{prefix}:{key}"


def _actor() -> str:
    p = current_principal()
    return p.actor if p else "system"


def _same_org(sales_org_id: UUID | None) -> ColumnElement[bool]:
    column = FundAccount.sales_org_id
    return column.is_(None) if sales_org_id is None else column == sales_org_id


def _same_owner(owner: UUID | None) -> ColumnElement[bool]:
    """The accounts of ``owner``'s pool (None: the brand's)."""
    column = FundAccount.owner_customer_id
    return column.is_(None) if owner is None else column == owner


def _valid_on(day: date) -> ColumnElement[bool]:
    return and_(
        or_(FundAccount.valid_from.is_(None), FundAccount.valid_from <= day),
        or_(FundAccount.expires_on.is_(None), FundAccount.expires_on >= day),
    )


# --- accounts ---------------------------------------------------------------------------------


def _scope_out(scope: dict[str, Any] | None) -> ProductScopeOut | None:
    return None if scope is None else msgspec.convert(scope, ProductScopeOut)


def account_out(a: FundAccount, day: date | None = None) -> FundAccountOut:
    day = day or business_day()
    valid = (a.valid_from is None or a.valid_from <= day) and (a.expires_on is None or day <= a.expires_on)
    return FundAccountOut(
        id=a.id,
        customer_id=a.customer_id,
        sales_org_id=a.sales_org_id,
        owner_customer_id=a.owner_customer_id,
        kind=a.kind,
        code=a.code,
        name=a.name,
        fee_type=a.fee_type,
        source=a.source,
        activity_ref=a.activity_ref,
        valid_from=a.valid_from,
        expires_on=a.expires_on,
        scope=_scope_out(a.scope),
        balance=a.balance,
        held=a.held,
        available=a.balance - a.held,
        usable_today=a.kind in PAYING_KINDS and valid,
        created_at=a.created_at,
        updated_at=a.updated_at,
    )


async def _by_slot(session: AsyncSession, slot: str) -> FundAccount | None:
    return await session.scalar(
        select(FundAccount).where(FundAccount.slot == slot).execution_options(populate_existing=True)
    )


async def _open(session: AsyncSession, account: FundAccount) -> FundAccount:
    """Insert a new account; one with a ``slot`` that appeared concurrently is used instead."""
    try:
        async with session.begin_nested():
            session.add(account)
            await session.flush()
    except IntegrityError as exc:
        found = await _by_slot(session, account.slot) if account.slot and is_unique_violation(exc) else None
        if found is None:
            raise
        return found
    if account.customer_id is not None:
        after = {"customer_id": str(account.customer_id), "kind": account.kind, "slot": account.slot}
        audit.record(session, "create", "fund_account", account.id, after=after)
        events.emit(session, "fund_account.created", {"id": account.id, **after})
    return account


def _new_account(**values: Any) -> FundAccount:
    now = utcnow()
    return FundAccount(id=new_id(), balance=ZERO, held=ZERO, created_at=now, updated_at=now, **values)


async def system_account(session: AsyncSession, code: str, owner: UUID | None = None) -> FundAccount:
    """The system account ``code`` of ``owner``'s pool (None: the brand's), opened on first use."""
    slot = f"system:{code}" if owner is None else f"system:{code}:{owner}"
    found = await _by_slot(session, slot)
    if found is not None:
        return found
    return await _open(
        session, _new_account(kind="system", code=code, slot=slot, name=code, owner_customer_id=owner)
    )


async def customer_account(
    session: AsyncSession, customer_id: UUID, sales_org_id: UUID | None, kind: str, owner: UUID | None = None
) -> FundAccount:
    """The customer's one cash or deposit account for the sales org in ``owner``'s pool (None: the
    brand's; a dealer's pool has no sales orgs), opened on first use."""
    assert kind in ("cash", "deposit")
    assert owner is None or sales_org_id is None
    slot = f"{kind}:{customer_id}:{sales_org_id or '-'}" + ("" if owner is None else f"@{owner}")
    found = await _by_slot(session, slot)
    if found is not None:
        return found
    return await _open(
        session,
        _new_account(
            kind=kind,
            slot=slot,
            customer_id=customer_id,
            sales_org_id=sales_org_id,
            owner_customer_id=owner,
        ),
    )


async def _dealer_prefix(session: AsyncSession, principal: Principal | None) -> str | None:
    return None if principal is None else await channels.dealer_scope_path(session, principal)


async def _customer_visible(session: AsyncSession, principal: Principal | None, customer_id: UUID) -> bool:
    if principal is None or not principal.is_dealer:
        return True
    try:
        await channels.visible_customer(session, customer_id, principal)
    except NotFound:
        return False
    return True


async def _visible_account(
    session: AsyncSession, principal: Principal | None, account_id: UUID
) -> FundAccount:
    account = await session.get(FundAccount, (require_tenant(), account_id), populate_existing=True)
    if account is None or (
        principal is not None
        and principal.is_dealer
        and (
            account.customer_id is None
            or not await _customer_visible(session, principal, account.customer_id)
        )
    ):
        raise NotFound("no such fund account")
    return account


async def get_account(session: AsyncSession, principal: Principal, account_id: UUID) -> FundAccountOut:
    return account_out(await _visible_account(session, principal, account_id))


async def list_accounts(
    session: AsyncSession,
    principal: Principal,
    cursor: str | None,
    limit: int,
    *,
    customer_id: UUID | None = None,
    kind: str | None = None,
    owner_customer_id: UUID | None = None,
    brand_pool: bool | None = None,
) -> tuple[list[FundAccountOut], str | None]:
    """Accounts, oldest first; ``owner_customer_id`` keeps one dealer's pool, ``brand_pool`` true
    the brand's pool only (false: dealers' pools only)."""
    stmt = select(FundAccount)
    prefix = await _dealer_prefix(session, principal)
    if prefix is not None:
        stmt = stmt.where(FundAccount.customer_id.in_(channels.subtree_ids(prefix)))
    if customer_id is not None:
        stmt = stmt.where(FundAccount.customer_id == customer_id)
    if owner_customer_id is not None:
        stmt = stmt.where(FundAccount.owner_customer_id == owner_customer_id)
    if brand_pool is not None:
        column = FundAccount.owner_customer_id
        stmt = stmt.where(column.is_(None) if brand_pool else column.is_not(None))
    if kind is not None:
        stmt = stmt.where(FundAccount.kind == kind)
    rows = (await session.scalars(paged_query(stmt, FundAccount.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    day = business_day()
    return [account_out(a, day) for a in items], nxt


async def _require_sales_org(session: AsyncSession, org_id: UUID | None) -> None:
    if org_id is None:
        return
    try:
        await channels.get_sales_org(session, org_id)
    except NotFound:
        raise invalid("sales_org_id", "no such sales org") from None


async def _check_scope(session: AsyncSession, data: SpecialAccountIn) -> None:
    for i, sku_id in enumerate(data.scope.sku_ids):
        await catalog.require_sku(session, sku_id, field=f"scope.sku_ids[{i}]")
    for i, category_id in enumerate(data.scope.category_ids):
        try:
            await catalog.get_category(session, category_id)
        except NotFound:
            raise invalid(f"scope.category_ids[{i}]", "no such category") from None
    for i, brand_id in enumerate(data.scope.brand_ids):
        try:
            await catalog.get_brand(session, brand_id)
        except NotFound:
            raise invalid(f"scope.brand_ids[{i}]", "no such brand") from None


async def open_special_account(session: AsyncSession, data: SpecialAccountIn) -> FundAccountOut:
    """Open a special-funds account (专项资金) for a product scope; it starts empty."""
    await channels.require_customer(session, data.customer_id)
    await _require_sales_org(session, data.sales_org_id)
    await _check_scope(session, data)
    scope = {k: sorted({str(v) for v in ids}) for k, ids in msgspec.to_builtins(data.scope).items()}
    account = await _open(
        session,
        _new_account(
            kind="special",
            customer_id=data.customer_id,
            sales_org_id=data.sales_org_id,
            name=data.name,
            scope=scope,
            valid_from=data.valid_from,
            expires_on=data.expires_on,
        ),
    )
    return account_out(account)


# --- the ledger -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leg:
    """One side of a transfer: ``amount`` > 0 credits ``account_id``; ``release`` is held money
    this leg takes (posting a hold), released from ``held`` in the same UPDATE."""

    account_id: UUID
    amount: Decimal
    release: Decimal = ZERO
    system: bool = False


def transfer_out(t: FundTransfer, entries: Iterable[FundEntry]) -> TransferOut:
    return TransferOut(
        id=t.id,
        kind=t.kind,
        reference_type=t.ref_type,
        reference_id=t.ref_id,
        memo=t.memo,
        actor=t.actor,
        at=t.at,
        legs=[
            LegOut(fund_account_id=e.account_id, amount=e.amount, balance_after=e.balance_after)
            for e in entries
        ],
    )


async def _apply(session: AsyncSession, leg: Leg, now: datetime, owner: UUID | None) -> Decimal:
    """Move one leg's amount with a conditional UPDATE on an account of ``owner``'s pool; returns
    the balance after it."""
    balance = _round(FundAccount.balance + leg.amount)
    values: dict[str, Any] = {"balance": balance, "updated_at": now}
    stmt = update(FundAccount).where(FundAccount.id == leg.account_id, _same_owner(owner))
    if leg.system:
        stmt = stmt.where(FundAccount.kind == "system")
    else:
        stmt = stmt.where(FundAccount.kind != "system")
        held = _round(FundAccount.held - leg.release)
        if leg.release:
            values["held"] = held
            stmt = stmt.where(FundAccount.held >= leg.release)
        if leg.amount < 0:
            stmt = stmt.where(balance >= held)
    row = (
        await session.execute(
            stmt.values(**values).returning(FundAccount.balance).execution_options(synchronize_session=False)
        )
    ).first()
    if row is None:
        found = (
            await session.execute(
                select(FundAccount.balance - FundAccount.held, FundAccount.owner_customer_id).where(
                    FundAccount.id == leg.account_id
                )
            )
        ).first()
        if found is None or found[1] != owner:
            raise ValueError("a transfer moves money inside one pool")
        raise insufficient(f"only {Decimal(found[0] or 0).quantize(ZERO)} available on the account")
    return Decimal(row[0]).quantize(ZERO)


async def _open_transfer(
    session: AsyncSession,
    *,
    kind: str,
    reference: Reference,
    key: str,
    memo: str | None = None,
) -> FundTransfer:
    """Insert the transfer row before any balance moves: its unique key refuses a second one."""
    transfer = FundTransfer(
        id=new_id(),
        kind=kind,
        ref_type=reference.type,
        ref_id=reference.id,
        idempotency_key=key,
        memo=memo,
        actor=_actor(),
        at=utcnow(),
    )
    session.add(transfer)
    try:
        await session.flush()
    except IntegrityError as exc:
        if is_unique_violation(exc) and "idempotency_key" in str(exc.orig):
            raise Conflict(
                "this movement was already made (or is being made by a concurrent request)",
                code="duplicate_transfer",
            ) from None
        raise
    return transfer


async def _write_legs(
    session: AsyncSession, transfer: FundTransfer, legs: Sequence[Leg], owner: UUID | None = None
) -> TransferOut:
    """Move each leg by conditional UPDATE, in account order (two transfers never lock the same
    accounts in opposite orders), and append its entry. Every leg is in ``owner``'s pool."""
    if sum((leg.amount for leg in legs), ZERO) != 0 or any(leg.amount == 0 for leg in legs):
        raise ValueError("a transfer's legs are non-zero and sum to zero")
    entries: list[FundEntry] = []
    for leg in sorted(legs, key=lambda leg: leg.account_id):
        after = await _apply(session, leg, transfer.at, owner)
        # The entry id is taken after the account's row lock, so entry order is balance order.
        entries.append(
            FundEntry(
                id=new_id(),
                transfer_id=transfer.id,
                account_id=leg.account_id,
                amount=leg.amount,
                balance_after=after,
                at=transfer.at,
            )
        )
    session.add_all(entries)
    await session.flush()
    summary = {
        "kind": transfer.kind,
        "reference_type": transfer.ref_type,
        "reference_id": str(transfer.ref_id),
        "legs": [{"fund_account_id": str(e.account_id), "amount": str(e.amount)} for e in entries],
    }
    audit.record(session, transfer.kind, "fund_transfer", transfer.id, after=summary)
    events.emit(session, "fund_transfer.created", {"id": transfer.id, **summary})
    return transfer_out(transfer, entries)


async def _transfer(
    session: AsyncSession,
    *,
    kind: str,
    reference: Reference,
    key: str,
    legs: Sequence[Leg],
    memo: str | None = None,
    owner: UUID | None = None,
) -> TransferOut:
    """Write one balanced transfer and its entries, inside ``owner``'s pool."""
    transfer = await _open_transfer(session, kind=kind, reference=reference, key=key, memo=memo)
    return await _write_legs(session, transfer, legs, owner)


async def _existing(session: AsyncSession, key: str) -> TransferOut | None:
    transfer = await session.scalar(select(FundTransfer).where(FundTransfer.idempotency_key == key))
    if transfer is None:
        return None
    entries = (
        await session.scalars(
            select(FundEntry).where(FundEntry.transfer_id == transfer.id).order_by(FundEntry.account_id)
        )
    ).all()
    return transfer_out(transfer, entries)


_ENTRY_COLUMNS = (
    FundEntry.id,
    FundEntry.account_id,
    FundEntry.transfer_id,
    FundTransfer.kind,
    FundTransfer.ref_type,
    FundTransfer.ref_id,
    FundEntry.amount,
    FundEntry.balance_after,
    FundTransfer.memo,
    FundEntry.at,
)


def _with_transfer(stmt: Any) -> Any:
    return stmt.join(
        FundTransfer,
        and_(FundTransfer.tenant_id == FundEntry.tenant_id, FundTransfer.id == FundEntry.transfer_id),
    )


async def list_entries(
    session: AsyncSession, principal: Principal, account_id: UUID, cursor: str | None, limit: int
) -> tuple[list[EntryOut], str | None]:
    """An account's ledger entries, oldest first."""
    account = await _visible_account(session, principal, account_id)
    stmt = _with_transfer(select(*_ENTRY_COLUMNS)).where(FundEntry.account_id == account.id)
    rows = (await session.execute(paged_query(stmt, FundEntry.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [
        EntryOut(
            id=r.id,
            fund_account_id=r.account_id,
            transfer_id=r.transfer_id,
            transfer_kind=r.kind,
            reference_type=r.ref_type,
            reference_id=r.ref_id,
            amount=r.amount,
            balance_after=r.balance_after,
            memo=r.memo,
            at=r.at,
        )
        for r in items
    ], nxt


# --- holds ------------------------------------------------------------------------------------


def _loaded(obj: Any, **values: Any) -> None:
    """Show values a conditional UPDATE already wrote on a loaded object, without a second UPDATE."""
    for name, value in values.items():
        set_committed_value(obj, name, value)


def hold_out(h: FundHold) -> HoldOut:
    return HoldOut(
        id=h.id,
        fund_account_id=h.account_id,
        customer_id=h.customer_id,
        step=h.step,
        seq=h.seq,
        reference_type=h.ref_type,
        reference_id=h.ref_id,
        amount=h.amount,
        state=h.state,
        posted_amount=h.posted_amount,
        parent_id=h.parent_id,
        transfer_id=h.transfer_id,
        created_at=h.created_at,
        closed_at=h.closed_at,
    )


_PAYING_COLUMNS = (
    FundAccount.id,
    FundAccount.kind,
    FundAccount.balance,
    FundAccount.held,
    FundAccount.valid_from,
    FundAccount.expires_on,
    FundAccount.scope,
)


async def payment_accounts(
    session: AsyncSession,
    *,
    customer_id: UUID,
    sales_org_id: UUID | None,
    today: date,
    owner: UUID | None = None,
) -> list[payment.Account]:
    """The accounts in ``owner``'s pool that may pay this customer's order today, in one statement."""
    rows = await session.execute(
        select(*_PAYING_COLUMNS).where(
            FundAccount.customer_id == customer_id,
            _same_org(sales_org_id),
            _same_owner(owner),
            FundAccount.kind.in_(PAYING_KINDS),
            FundAccount.balance > FundAccount.held,
            _valid_on(today),
        )
    )
    return [
        payment.Account(
            account_id=str(r.id),
            kind=r.kind,
            available=Decimal(r.balance - r.held).quantize(ZERO),
            valid_from=r.valid_from,
            expires_on=r.expires_on,
            scope=None if r.scope is None else ProductScope(**{k: frozenset(v) for k, v in r.scope.items()}),
        )
        for r in rows
    ]


async def plan_payment(
    session: AsyncSession,
    *,
    customer_id: UUID,
    sales_org_id: UUID | None,
    request: payment.PaymentRequest,
    owner: UUID | None = None,
) -> payment.PaymentPlan:
    """The payment sequence for an order over the customer's accounts in ``owner``'s pool; changes
    nothing. A line or cap the engine refuses (not whole cents, a fee cap above its line) is a 422."""
    accounts = await payment_accounts(
        session, customer_id=customer_id, sales_org_id=sales_org_id, today=request.today, owner=owner
    )
    try:
        return payment.plan_payment(request, accounts)
    except ValueError as exc:
        raise invalid("lines", str(exc)) from None


async def freeze(
    session: AsyncSession,
    *,
    customer_id: UUID,
    sales_org_id: UUID | None,
    plan: payment.PaymentPlan,
    reference: Reference,
    owner: UUID | None = None,
) -> list[HoldOut]:
    """Place the plan's holds on accounts of ``owner``'s pool (see the module docstring); 409
    ``insufficient_funds`` when the plan has a shortfall or an account no longer has its amount
    available."""
    if plan.shortfall > 0:
        raise insufficient(f"the accounts leave {plan.shortfall} of {plan.total} unpaid")
    day, now = business_day(), utcnow()
    holds: list[FundHold] = []
    for seq, draw in enumerate(plan.draws):
        if draw.amount <= 0 or draw.step not in PAYING_KINDS:
            raise ValueError("a plan draws positive amounts from paying accounts")
        account_id = UUID(draw.account_id)
        result = await session.execute(
            update(FundAccount)
            .where(
                FundAccount.id == account_id,
                FundAccount.customer_id == customer_id,
                _same_org(sales_org_id),
                _same_owner(owner),
                FundAccount.kind == draw.step,
                _valid_on(day),
                _round(FundAccount.balance - FundAccount.held) >= draw.amount,
            )
            .values(held=_round(FundAccount.held + draw.amount), updated_at=now)
            .returning(FundAccount.id)
            .execution_options(synchronize_session=False)
        )
        if result.first() is None:
            raise insufficient(f"the {draw.step} account no longer has {draw.amount} available")
        holds.append(
            FundHold(
                id=new_id(),
                account_id=account_id,
                customer_id=customer_id,
                step=draw.step,
                seq=seq,
                ref_type=reference.type,
                ref_id=reference.id,
                amount=draw.amount,
                state="placed",
                posted_amount=ZERO,
                created_at=now,
            )
        )
    if not holds:
        return []
    session.add_all(holds)
    await session.flush()
    outs = [hold_out(h) for h in holds]
    _hold_event(session, "freeze", "fund_holds.placed", reference, outs)
    return outs


def _hold_event(
    session: AsyncSession, action: str, event: str, reference: Reference, holds: list[HoldOut]
) -> None:
    payload = {
        "reference_type": reference.type,
        "reference_id": str(reference.id),
        "holds": [
            {
                "id": str(h.id),
                "fund_account_id": str(h.fund_account_id),
                "amount": str(h.amount),
                "state": h.state,
            }
            for h in holds
        ],
    }
    audit.record(session, action, "fund_holds", f"{reference.type}:{reference.id}", after=payload)
    events.emit(session, event, payload)


async def holds_for(session: AsyncSession, reference: Reference) -> list[HoldOut]:
    """Every hold of a document, in payment order, oldest first."""
    rows = await session.scalars(
        select(FundHold)
        .where(FundHold.ref_type == reference.type, FundHold.ref_id == reference.id)
        .order_by(FundHold.seq, FundHold.id)
        .execution_options(populate_existing=True)
    )
    return [hold_out(h) for h in rows]


async def _placed(session: AsyncSession, reference: Reference) -> list[FundHold]:
    rows = await session.scalars(
        select(FundHold)
        .where(
            FundHold.ref_type == reference.type, FundHold.ref_id == reference.id, FundHold.state == "placed"
        )
        .order_by(FundHold.seq, FundHold.id)
        .execution_options(populate_existing=True)
    )
    return list(rows)


def _split(holds: Sequence[FundHold], amount: Decimal | None) -> list[tuple[FundHold, Decimal]]:
    """Take ``amount`` (None: all) from ``holds`` in their order: full holds, then at most one part."""
    total = sum((h.amount for h in holds), ZERO)
    want = total if amount is None else amount
    if want <= 0 or want != want.quantize(ZERO):
        raise invalid("amount", "must be a positive whole number of cents")
    if want > total:
        raise Conflict(f"only {total} is frozen for this document", code="exceeds_holds")
    taken: list[tuple[FundHold, Decimal]] = []
    for hold in holds:
        if want <= 0:
            break
        part = min(hold.amount, want)
        taken.append((hold, part))
        want -= part
    return taken


async def _close(
    session: AsyncSession,
    taken: list[tuple[FundHold, Decimal]],
    state: str,
    now: datetime,
    transfer_id: UUID | None = None,
) -> list[FundHold]:
    """Close the taken holds exactly once (conditional UPDATE on ``placed``) and place a child
    hold for what stays frozen of a partly taken one. Returns the children."""
    full = [h.id for h, part in taken if part == h.amount]
    partial = [(h, part) for h, part in taken if part != h.amount]
    closed = 0
    posted = state == "posted"
    if full:
        result = await session.execute(
            update(FundHold)
            .where(FundHold.id.in_(full), FundHold.state == "placed")
            .values(
                state=state,
                posted_amount=FundHold.amount if posted else ZERO,
                transfer_id=transfer_id,
                closed_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        closed += result.rowcount  # type: ignore[attr-defined]
    children: list[FundHold] = []
    for hold, part in partial:
        result = await session.execute(
            update(FundHold)
            .where(FundHold.id == hold.id, FundHold.state == "placed")
            .values(
                state=state, posted_amount=part if posted else ZERO, transfer_id=transfer_id, closed_at=now
            )
            .execution_options(synchronize_session=False)
        )
        closed += result.rowcount  # type: ignore[attr-defined]
        children.append(
            FundHold(
                id=new_id(),
                account_id=hold.account_id,
                customer_id=hold.customer_id,
                step=hold.step,
                seq=hold.seq,
                ref_type=hold.ref_type,
                ref_id=hold.ref_id,
                amount=hold.amount - part,
                state="placed",
                posted_amount=ZERO,
                parent_id=hold.id,
                created_at=now,
            )
        )
    if closed != len(taken):
        raise Conflict("the holds were closed by a concurrent request", code="holds_closed")
    for hold, part in taken:
        _loaded(
            hold, state=state, closed_at=now, transfer_id=transfer_id, posted_amount=part if posted else ZERO
        )
    session.add_all(children)
    return children


def _split_by_kind(
    holds: Sequence[FundHold], by_kind: Mapping[str, Decimal]
) -> list[tuple[FundHold, Decimal]]:
    """Take each kind's amount from that kind's holds in their order (see :func:`_split`)."""
    unknown = set(by_kind) - set(PAYING_KINDS)
    if unknown:
        raise ValueError(f"not a paying account kind: {sorted(unknown)}")
    taken: list[tuple[FundHold, Decimal]] = []
    for kind in PAYING_KINDS:
        want = by_kind.get(kind, ZERO)
        if want == 0:
            continue
        of_kind = [h for h in holds if h.step == kind]
        if not of_kind:
            raise Conflict(f"nothing is frozen on {kind} accounts for this document", code="exceeds_holds")
        taken += _split(of_kind, want)
    return sorted(taken, key=lambda t: (t[0].seq, t[0].id))


async def post_holds(
    session: AsyncSession,
    reference: Reference,
    amount: Decimal | None = None,
    *,
    by_kind: Mapping[str, Decimal] | None = None,
    owner: UUID | None = None,
) -> TransferOut | None:
    """Deduct frozen money into the ``sales`` account of ``owner``'s pool (see the module
    docstring); the holds are on that pool's accounts."""
    if by_kind is not None and amount is not None:
        raise ValueError("post an amount or amounts by kind, not both")
    if by_kind is not None and not any(by_kind.values()):
        return None
    holds = await _placed(session, reference)
    if not holds:
        if amount is not None or by_kind is not None:
            raise Conflict("nothing is frozen for this document", code="exceeds_holds")
        return None
    taken = _split(holds, amount) if by_kind is None else _split_by_kind(holds, by_kind)
    now = utcnow()
    by_account: dict[UUID, Decimal] = defaultdict(lambda: ZERO)
    for hold, part in taken:
        by_account[hold.account_id] += part
    sales = await system_account(session, "sales", owner)
    total = sum(by_account.values(), ZERO)
    legs = [Leg(account_id=a, amount=-part, release=part) for a, part in by_account.items()]
    legs.append(Leg(account_id=sales.id, amount=total, system=True))
    # The key is the first hold's, which can be posted only once; the transfer row exists
    # before the holds point at it.
    transfer = await _open_transfer(
        session, kind="payment", reference=reference, key=f"hold-post:{taken[0][0].id}"
    )
    children = await _close(session, taken, "posted", now, transfer.id)
    out = await _write_legs(session, transfer, legs, owner)
    _hold_event(
        session,
        "post",
        "fund_holds.posted",
        reference,
        [hold_out(h) for h, _ in taken] + [hold_out(c) for c in children],
    )
    return out


async def release_holds(
    session: AsyncSession, reference: Reference, amount: Decimal | None = None
) -> list[HoldOut]:
    """Unfreeze in reverse payment order (see the module docstring)."""
    holds = await _placed(session, reference)
    if not holds:
        if amount is not None:
            raise Conflict("nothing is frozen for this document", code="exceeds_holds")
        return []
    reverse = sorted(holds, key=lambda h: (h.seq, h.id), reverse=True)
    taken = _split(reverse, amount)
    now = utcnow()
    children = await _close(session, taken, "voided", now)
    by_account: dict[UUID, Decimal] = defaultdict(lambda: ZERO)
    for hold, part in taken:
        by_account[hold.account_id] += part
    for account_id in sorted(by_account):
        part = by_account[account_id]
        result = await session.execute(
            update(FundAccount)
            .where(FundAccount.id == account_id, FundAccount.held >= part)
            .values(held=_round(FundAccount.held - part), updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict("the account holds less than its placed holds", code="ledger_inconsistent")
    await session.flush()
    outs = [hold_out(h) for h, _ in taken] + [hold_out(c) for c in children]
    _hold_event(session, "release", "fund_holds.released", reference, outs)
    return outs


async def void_holds(session: AsyncSession, reference: Reference) -> list[HoldOut]:
    """Release everything still frozen for the document (cancel before deduction)."""
    return await release_holds(session, reference)


async def refund(
    session: AsyncSession,
    reference: Reference,
    amount: Decimal | None = None,
    *,
    key: str,
    memo: str | None = None,
    by_kind: Mapping[str, Decimal] | None = None,
    owner: UUID | None = None,
) -> TransferOut | None:
    """Return posted money to where it came from, out of the ``sales`` account of ``owner``'s
    pool (see the module docstring)."""
    if by_kind is not None and amount is not None:
        raise ValueError("refund an amount or amounts by kind, not both")
    stored_key = _caller_key("refund", key)
    existing = await _existing(session, stored_key)
    if existing is not None:
        if (existing.reference_type, existing.reference_id) != (reference.type, reference.id):
            raise Conflict("this refund key was used for another document", code="idempotency_key_reused")
        return existing
    net = func.sum(FundEntry.amount)
    rows = (
        await session.execute(
            _with_transfer(
                select(FundEntry.account_id, FundAccount.kind, FundAccount.expires_on, net).join(
                    FundAccount,
                    and_(
                        FundAccount.tenant_id == FundEntry.tenant_id, FundAccount.id == FundEntry.account_id
                    ),
                )
            )
            .where(
                FundTransfer.ref_type == reference.type,
                FundTransfer.ref_id == reference.id,
                FundTransfer.kind.in_(("payment", "refund")),
                FundAccount.kind != "system",
            )
            .group_by(FundEntry.account_id, FundAccount.kind, FundAccount.expires_on)
        )
    ).all()
    refundable = [
        (r.account_id, r.kind, r.expires_on, -Decimal(r[3]).quantize(ZERO)) for r in rows if Decimal(r[3]) < 0
    ]
    # Reverse payment order: cash, special, rebate, fee; within a kind the latest expiry first.
    refundable.sort(key=lambda r: (RELEASE_ORDER[r[1]], -(r[2] or date.max).toordinal(), r[0]))
    total = sum((r[3] for r in refundable), ZERO)
    if by_kind is not None:
        unknown = set(by_kind) - set(PAYING_KINDS)
        if unknown:
            raise ValueError(f"not a paying account kind: {sorted(unknown)}")
        want = sum(by_kind.values(), ZERO)
        if want == 0:
            return None
        wanted = {kind: by_kind.get(kind, ZERO) for kind in RELEASE_ORDER}
    else:
        want = total if amount is None else amount
        if want == 0 and amount is None:
            return None
        wanted = None
    if (
        want <= 0
        or want != want.quantize(ZERO)
        or any(v < 0 or v != v.quantize(ZERO) for v in (wanted or {}).values())
    ):
        raise invalid("amount", "must be a positive whole number of cents")
    if want > total:
        raise Conflict(f"only {total} of this document can be refunded", code="exceeds_refundable")
    legs: list[Leg] = []
    remaining = want
    for account_id, kind, _expires, available in refundable:
        if wanted is not None:
            part = min(available, wanted[kind])
            wanted[kind] -= part
        else:
            part = min(available, remaining)
        if part > 0:
            legs.append(Leg(account_id=account_id, amount=part))
        remaining -= part
    short = {k: v for k, v in (wanted or {}).items() if v > 0}
    if short:
        kinds = ", ".join(f"{v} more {k}" for k, v in short.items())
        raise Conflict(f"this document has not posted {kinds} to refund", code="exceeds_refundable")
    sales = await system_account(session, "sales", owner)
    legs.append(Leg(account_id=sales.id, amount=-want, system=True))
    return await _transfer(
        session, kind="refund", reference=reference, key=stored_key, legs=legs, memo=memo, owner=owner
    )


# --- crediting accounts ----------------------------------------------------------------------


async def credit_rebate(
    session: AsyncSession,
    *,
    customer_id: UUID,
    sales_org_id: UUID | None,
    amount: Decimal,
    reference: Reference,
    key: str,
    valid_from: date | None = None,
    expires_on: date | None = None,
    memo: str | None = None,
) -> TransferOut:
    """Credit settled rebate (返利) to the customer's rebate account for this validity (one per
    customer, sales org and validity, so refunds keep their expiry). Idempotent by ``key``."""
    stored_key = _caller_key("rebate", key)
    existing = await _existing(session, stored_key)
    if existing is not None:
        return existing
    if amount <= 0 or amount != amount.quantize(ZERO):
        raise invalid("amount", "must be a positive whole number of cents")
    slot = f"rebate:{customer_id}:{sales_org_id or '-'}:{valid_from or '-'}:{expires_on or '-'}"
    account = await _by_slot(session, slot) or await _open(
        session,
        _new_account(
            kind="rebate",
            slot=slot,
            customer_id=customer_id,
            sales_org_id=sales_org_id,
            valid_from=valid_from,
            expires_on=expires_on,
        ),
    )
    expense = await system_account(session, "rebate_expense")
    return await _transfer(
        session,
        kind="rebate_credit",
        reference=reference,
        key=stored_key,
        legs=[
            Leg(account_id=account.id, amount=amount),
            Leg(account_id=expense.id, amount=-amount, system=True),
        ],
        memo=memo,
    )


async def grant_fee(session: AsyncSession, data: FeeGrantIn) -> FeeGrantOut:
    """Grant an expense balance (费用): a fee account of its own, credited from fee expense."""
    await channels.require_customer(session, data.customer_id)
    await _require_sales_org(session, data.sales_org_id)
    day = business_day()
    if data.expires_on < day:
        raise invalid("expires_on", f"must not be in the past (today is {day.isoformat()})")
    account = await _open(
        session,
        _new_account(
            kind="fee",
            customer_id=data.customer_id,
            sales_org_id=data.sales_org_id,
            name=f"{data.fee_type}: {data.source}"[:200],
            fee_type=data.fee_type,
            source=data.source,
            activity_ref=data.activity_ref,
            valid_from=data.valid_from or day,
            expires_on=data.expires_on,
        ),
    )
    expense = await system_account(session, "fee_expense")
    transfer = await _transfer(
        session,
        kind="fee_grant",
        reference=Reference(type="fee_grant", id=account.id),
        key=f"fee_grant:{account.id}",
        legs=[
            Leg(account_id=account.id, amount=data.amount),
            Leg(account_id=expense.id, amount=-data.amount, system=True),
        ],
        memo=data.source,
    )
    await session.refresh(account)
    return FeeGrantOut(fund_account=account_out(account, day), transfer=transfer)


async def adjust(session: AsyncSession, data: AdjustmentIn) -> TransferOut:
    """A correcting transfer (调账) with a reason; entries are never edited. It stays in the
    account's pool: the counter-account is that pool's ``adjustments`` or another account of the
    same customer in the same pool."""
    account = await session.get(FundAccount, (require_tenant(), data.fund_account_id))
    if account is None or account.customer_id is None:
        raise invalid("fund_account_id", "no such customer fund account")
    owner = account.owner_customer_id
    if data.counter_fund_account_id is None:
        counter = await system_account(session, "adjustments", owner)
    else:
        found = await session.get(FundAccount, (require_tenant(), data.counter_fund_account_id))
        if found is None or found.customer_id != account.customer_id or found.owner_customer_id != owner:
            raise invalid("counter_fund_account_id", "no such account of the same customer in the same pool")
        counter = found
    adjustment_id = new_id()
    return await _transfer(
        session,
        kind="adjustment",
        reference=Reference(type="adjustment", id=adjustment_id),
        key=f"adjustment:{adjustment_id}",
        legs=[
            Leg(account_id=account.id, amount=data.amount),
            Leg(account_id=counter.id, amount=-data.amount, system=counter.customer_id is None),
        ],
        memo=data.reason,
        owner=owner,
    )


# --- remittances ------------------------------------------------------------------------------


def remittance_out(r: Remittance) -> RemittanceOut:
    return RemittanceOut(
        id=r.id,
        customer_id=r.customer_id,
        sales_org_id=r.sales_org_id,
        seller_customer_id=r.seller_customer_id,
        account_kind=r.account_kind,
        amount=r.amount,
        bank_reference=r.bank_reference,
        remitted_on=r.remitted_on,
        note=r.note,
        status=r.status,
        submitted_by=r.submitted_by,
        decided_by=r.decided_by,
        decided_at=r.decided_at,
        reject_reason=r.reject_reason,
        transfer_id=r.transfer_id,
        fund_account_id=r.account_id,
        created_at=r.created_at,
    )


async def create_remittance(session: AsyncSession, principal: Principal, data: RemittanceIn) -> RemittanceOut:
    """File a remittance (pending). A dealer files for itself; others need ``funds:write``."""
    if principal.is_dealer:
        if data.customer_id not in (None, principal.customer_id):
            raise invalid("customer_id", "a dealer files remittances for itself")
        customer_id = principal.customer_id
    else:
        if not principal.can("funds:write"):
            raise Forbidden("missing permission: funds:write", code="missing_permission")
        if data.customer_id is None:
            raise invalid("customer_id", "name the customer who remitted")
        customer_id = data.customer_id
    assert customer_id is not None
    customer = await channels.require_customer(session, customer_id)
    await _require_sales_org(session, data.sales_org_id)
    if data.seller_customer_id is not None:
        await _require_supplier(session, customer, data.seller_customer_id)
        if data.sales_org_id is not None:
            raise invalid("sales_org_id", "a dealer's pool has no sales orgs")
    day = business_day()
    if data.remitted_on > day:
        raise invalid("remitted_on", f"must not be in the future (today is {day.isoformat()})")
    live = await session.scalar(
        select(Remittance.id).where(
            Remittance.customer_id == customer_id,
            Remittance.bank_reference == data.bank_reference,
            Remittance.status != "rejected",
        )
    )
    if live is not None:
        raise Conflict(f"this bank reference is already filed ({live})", code="duplicate_remittance")
    remittance = Remittance(
        id=new_id(),
        customer_id=customer_id,
        sales_org_id=data.sales_org_id,
        seller_customer_id=data.seller_customer_id,
        account_kind=data.account_kind,
        amount=data.amount,
        bank_reference=data.bank_reference,
        remitted_on=data.remitted_on,
        note=data.note,
        status="pending",
        submitted_by=principal.actor,
        created_at=utcnow(),
    )
    session.add(remittance)
    await catalog.flush_unique(session, "a remittance with this bank reference")
    audit.record_change(
        session, "remittance", remittance.id, None, audit.snapshot(remittance, REMITTANCE_FIELDS)
    )
    return remittance_out(remittance)


async def _require_supplier(session: AsyncSession, customer: Any, seller_id: UUID) -> None:
    """A dealer pool a customer may pay into: a dealer above it in the dealer tree (its
    supplier), never itself. Any other id, known or not, gets the same answer, so the check tells
    nothing about customers elsewhere in the tree."""
    ancestors = {UUID(x) for x in customer.path.strip("/").split("/")[:-1]}
    if seller_id not in ancestors:
        raise invalid("seller_customer_id", "must be a dealer above the customer in the dealer tree")


def _may_decide(principal: Principal, remittance: Remittance) -> None:
    """Who confirms or rejects: the brand's finance (``funds:write``) any remittance; a dealer's
    users (``funds:own``) those paid into its own pool only."""
    if principal.is_dealer:
        if remittance.seller_customer_id is None or remittance.seller_customer_id != principal.customer_id:
            raise Forbidden("a dealer decides only remittances paid into its own pool", code="not_your_pool")
        if not principal.can("funds:own"):
            raise Forbidden("missing permission: funds:own", code="missing_permission")
    elif not principal.can("funds:write"):
        raise Forbidden("missing permission: funds:write", code="missing_permission")


async def _visible_remittance(session: AsyncSession, principal: Principal, remittance_id: UUID) -> Remittance:
    remittance = await session.get(Remittance, (require_tenant(), remittance_id), populate_existing=True)
    if remittance is None or not await _customer_visible(session, principal, remittance.customer_id):
        raise NotFound("no such remittance")
    return remittance


async def get_remittance(session: AsyncSession, principal: Principal, remittance_id: UUID) -> RemittanceOut:
    return remittance_out(await _visible_remittance(session, principal, remittance_id))


async def list_remittances(
    session: AsyncSession,
    principal: Principal,
    cursor: str | None,
    limit: int,
    *,
    customer_id: UUID | None = None,
    status: str | None = None,
    seller_customer_id: UUID | None = None,
) -> tuple[list[RemittanceOut], str | None]:
    stmt = select(Remittance)
    prefix = await _dealer_prefix(session, principal)
    if prefix is not None:
        stmt = stmt.where(Remittance.customer_id.in_(channels.subtree_ids(prefix)))
    if customer_id is not None:
        stmt = stmt.where(Remittance.customer_id == customer_id)
    if seller_customer_id is not None:
        stmt = stmt.where(Remittance.seller_customer_id == seller_customer_id)
    if status is not None:
        stmt = stmt.where(Remittance.status == status)
    rows = (await session.scalars(paged_query(stmt, Remittance.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [remittance_out(r) for r in items], nxt


async def _decide(session: AsyncSession, remittance: Remittance, status: str, reason: str | None) -> None:
    """pending → confirmed | rejected, exactly once; anything else is a 409."""
    now = utcnow()
    result = await session.execute(
        update(Remittance)
        .where(Remittance.id == remittance.id, Remittance.status == "pending")
        .values(status=status, decided_by=_actor(), decided_at=now, reject_reason=reason)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        await session.refresh(remittance)
        raise Conflict(f"the remittance is already {remittance.status}", code="remittance_decided")
    _loaded(remittance, status=status, decided_by=_actor(), decided_at=now, reject_reason=reason)


async def confirm_remittance(
    session: AsyncSession, principal: Principal, remittance_id: UUID
) -> RemittanceOut:
    """Finance (or, paid into a dealer's pool, that dealer) confirms the receipt: cash (or deposit)
    in the pool it was paid into is credited exactly once."""
    remittance = await _visible_remittance(session, principal, remittance_id)
    _may_decide(principal, remittance)
    before = audit.snapshot(remittance, REMITTANCE_FIELDS)
    await _decide(session, remittance, "confirmed", None)
    owner = remittance.seller_customer_id
    account = await customer_account(
        session, remittance.customer_id, remittance.sales_org_id, remittance.account_kind, owner
    )
    receipts = await system_account(session, "receipts", owner)
    transfer = await _transfer(
        session,
        kind="receipt",
        reference=Reference(type="remittance", id=remittance.id),
        key=f"remittance:{remittance.id}",
        legs=[
            Leg(account_id=account.id, amount=remittance.amount),
            Leg(account_id=receipts.id, amount=-remittance.amount, system=True),
        ],
        memo=f"bank {remittance.bank_reference}",
        owner=owner,
    )
    remittance.transfer_id, remittance.account_id = transfer.id, account.id
    await session.flush()
    audit.record(
        session, "confirm", "remittance", remittance.id, before=before, after={"status": "confirmed"}
    )
    events.emit(
        session,
        "remittance.confirmed",
        {"id": remittance.id, "transfer_id": transfer.id, **audit.snapshot(remittance, REMITTANCE_FIELDS)},
    )
    return remittance_out(remittance)


async def reject_remittance(
    session: AsyncSession, principal: Principal, remittance_id: UUID, reason: str
) -> RemittanceOut:
    """Finance (or the dealer it was paid to) rejects the receipt; no balance changes."""
    remittance = await _visible_remittance(session, principal, remittance_id)
    _may_decide(principal, remittance)
    before = audit.snapshot(remittance, REMITTANCE_FIELDS)
    await _decide(session, remittance, "rejected", reason)
    audit.record(session, "reject", "remittance", remittance.id, before=before, after={"status": "rejected"})
    events.emit(
        session,
        "remittance.rejected",
        {"id": remittance.id, "reason": reason, **audit.snapshot(remittance, REMITTANCE_FIELDS)},
    )
    return remittance_out(remittance)


# --- holds and statements for readers --------------------------------------------------------


async def list_holds(
    session: AsyncSession,
    principal: Principal,
    account_id: UUID,
    cursor: str | None,
    limit: int,
    *,
    state: str | None = None,
) -> tuple[list[HoldOut], str | None]:
    account = await _visible_account(session, principal, account_id)
    stmt = select(FundHold).where(FundHold.account_id == account.id)
    if state is not None:
        stmt = stmt.where(FundHold.state == state)
    rows = (await session.scalars(paged_query(stmt, FundHold.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [hold_out(h) for h in items], nxt


def _of_customer(stmt: Any, customer_id: UUID) -> Any:
    return stmt.join(
        FundAccount,
        and_(FundAccount.tenant_id == FundEntry.tenant_id, FundAccount.id == FundEntry.account_id),
    ).where(FundAccount.customer_id == customer_id)


async def statement(
    session: AsyncSession, principal: Principal, customer_id: UUID, date_from: date, date_to: date
) -> StatementOut:
    """A statement (对账单) for the period, computed from the ledger alone: per account the
    opening balance, the period's movements and the closing balance."""
    await channels.visible_customer(session, customer_id, principal)
    if date_to < date_from:
        raise invalid("to", "must not be before from")
    start = datetime.combine(date_from, time.min, UTC)
    end = datetime.combine(date_to, time.max, UTC)
    accounts = (
        await session.scalars(
            select(FundAccount).where(FundAccount.customer_id == customer_id).order_by(FundAccount.id)
        )
    ).all()
    opening_rows = await session.execute(
        _of_customer(select(FundEntry.account_id, func.sum(FundEntry.amount)), customer_id)
        .where(FundEntry.at < start)
        .group_by(FundEntry.account_id)
    )
    opening = {aid: Decimal(total).quantize(ZERO) for aid, total in opening_rows}
    in_period = and_(FundEntry.at >= start, FundEntry.at <= end)
    credit = case((FundEntry.amount > 0, FundEntry.amount), else_=0)
    debit = case((FundEntry.amount < 0, -FundEntry.amount), else_=0)
    total_rows = await session.execute(
        _of_customer(
            select(FundEntry.account_id, func.sum(credit), func.sum(debit), func.count(FundEntry.id)),
            customer_id,
        )
        .where(in_period)
        .group_by(FundEntry.account_id)
    )
    totals = {aid: (Decimal(c).quantize(ZERO), Decimal(d).quantize(ZERO), n) for aid, c, d, n in total_rows}
    line_rows = (
        await session.execute(
            _of_customer(_with_transfer(select(*_ENTRY_COLUMNS)), customer_id)
            .where(in_period)
            .order_by(FundEntry.account_id, FundEntry.id)
            .limit(MAX_STATEMENT_LINES + 1)
        )
    ).all()
    truncated = len(line_rows) > MAX_STATEMENT_LINES
    lines: dict[UUID, list[Any]] = defaultdict(list)
    for row in line_rows[:MAX_STATEMENT_LINES]:
        lines[row.account_id].append(row)
    out: list[AccountStatement] = []
    for a in accounts:
        first = opening.get(a.id, ZERO)
        credits, debits, count = totals.get(a.id, (ZERO, ZERO, 0))
        running = first
        shown: list[StatementLine] = []
        for r in lines[a.id]:
            running += r.amount
            shown.append(
                StatementLine(
                    entry_id=r.id,
                    at=r.at,
                    transfer_id=r.transfer_id,
                    transfer_kind=r.kind,
                    reference_type=r.ref_type,
                    reference_id=r.ref_id,
                    memo=r.memo,
                    amount=r.amount,
                    balance=running,
                )
            )
        out.append(
            AccountStatement(
                fund_account_id=a.id,
                kind=a.kind,
                name=a.name,
                fee_type=a.fee_type,
                expires_on=a.expires_on,
                opening_balance=first,
                credits=credits,
                debits=debits,
                closing_balance=first + credits - debits,
                entry_count=count,
                lines=shown,
            )
        )
    return StatementOut(
        customer_id=customer_id,
        date_from=date_from,
        date_to=date_to,
        accounts=out,
        opening_balance=sum((s.opening_balance for s in out), ZERO),
        closing_balance=sum((s.closing_balance for s in out), ZERO),
        lines_truncated=truncated,
    )


# --- reconciliation ---------------------------------------------------------------------------


async def reconcile(session: AsyncSession) -> list[str]:
    """What does not add up in the tenant's ledger (empty when all is well): a transfer whose
    legs do not sum to zero, a balance that is not the sum of its entries, a ``held`` that is not
    the sum of its placed holds, a customer account below zero or below what it holds, a pool
    (the brand's or a dealer's) whose balances do not sum to zero."""
    problems: list[str] = []
    unbalanced = await session.execute(
        select(FundEntry.transfer_id, func.sum(FundEntry.amount))
        .group_by(FundEntry.transfer_id)
        .having(_round(func.sum(FundEntry.amount)) != 0)
    )
    problems += [f"transfer {tid} sums to {total}" for tid, total in unbalanced]
    sums = dict(
        (
            await session.execute(
                select(FundEntry.account_id, func.sum(FundEntry.amount)).group_by(FundEntry.account_id)
            )
        ).all()
    )
    held = dict(
        (
            await session.execute(
                select(FundHold.account_id, func.sum(FundHold.amount))
                .where(FundHold.state == "placed")
                .group_by(FundHold.account_id)
            )
        ).all()
    )
    pools: dict[UUID | None, Decimal] = defaultdict(lambda: ZERO)
    for a in (await session.scalars(select(FundAccount).execution_options(populate_existing=True))).all():
        pools[a.owner_customer_id] += a.balance
        entries = Decimal(sums.get(a.id, 0)).quantize(ZERO)
        placed = Decimal(held.get(a.id, 0)).quantize(ZERO)
        if entries != a.balance:
            problems.append(f"account {a.id} balance {a.balance} but its entries sum to {entries}")
        if placed != a.held:
            problems.append(f"account {a.id} holds {a.held} but its placed holds sum to {placed}")
        if a.kind != "system" and not (ZERO <= a.held <= a.balance):
            problems.append(f"account {a.id} balance {a.balance} does not cover held {a.held}")
    problems += [
        f"the pool of {owner or 'the brand'} sums to {total}" for owner, total in pools.items() if total != 0
    ]
    return problems
