"""A customer's assets (资产) in one read: its fund accounts with totals per kind, and its credit
standing per profile. Dealers read their own and their sub-dealers' (others are 404).

Pools (DOMAIN §7): a level-2 dealer keeps accounts and credit at its level-1 supplier as well as
at the brand. ``totals`` and ``credit`` are the brand's pool, as they always were; ``pools``
shows every pool the customer has accounts or credit in (the brand's first, then each dealer's),
each with its own totals and credit standing, a dealer's credit measured against the orders that
dealer sells the customer."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.channels import service as channels
from omnicloud.core.security import Principal
from omnicloud.policies import credit
from omnicloud.policies.terms import service as terms
from omnicloud.policies.terms.models import CreditProfile, TemporaryCreditLine
from omnicloud.pools import order_states
from omnicloud.pools.assets.schemas import (
    AssetsOut,
    CreditStanding,
    ExposureView,
    KindTotal,
    OverdueView,
    PoolAssets,
    TemporaryLineView,
)
from omnicloud.pools.funds import service as funds
from omnicloud.pools.funds.models import FundAccount
from omnicloud.pools.funds.schemas import FundAccountOut
from omnicloud.pools.orders import service as orders
from omnicloud.pools.orders.models import Order

ZERO = Decimal("0.00")
KIND_ORDER = ("cash", "rebate", "fee", "special", "deposit")


async def _accounts(session: AsyncSession, customer_id: UUID, day: date) -> list[FundAccountOut]:
    rows = await session.scalars(
        select(FundAccount).where(FundAccount.customer_id == customer_id).order_by(FundAccount.id)
    )
    return [funds.account_out(a, day) for a in rows]


def _totals(accounts: list[FundAccountOut]) -> list[KindTotal]:
    by_kind: dict[str, list[FundAccountOut]] = defaultdict(list)
    for a in accounts:
        by_kind[a.kind].append(a)
    return [
        KindTotal(
            kind=kind,
            balance=sum((a.balance for a in mine), ZERO),
            held=sum((a.held for a in mine), ZERO),
            available=sum((a.available for a in mine), ZERO),
            usable=sum((a.available for a in mine if a.usable_today), ZERO),
            accounts=len(mine),
        )
        for kind in sorted(by_kind, key=lambda k: (KIND_ORDER.index(k) if k in KIND_ORDER else 99, k))
        if (mine := by_kind[kind])
    ]


def _of_owner(column: Any, owner: UUID | None) -> Any:
    return column.is_(None) if owner is None else column == owner


async def credit_standing(
    session: AsyncSession, customer_id: UUID, day: date, owner: UUID | None = None
) -> list[CreditStanding]:
    """Each of the customer's credit profiles granted by ``owner`` (None: the brand) with its
    temporary lines valid on ``day``, the exposure (the brand's: what the document pools report;
    a dealer's: the orders it sells the customer), what is left, and the receivables overdue on
    ``day`` (the brand's only: invoices are the brand's)."""
    rows = (
        await session.execute(
            select(CreditProfile, TemporaryCreditLine.amount, TemporaryCreditLine.expires_on)
            .outerjoin(
                TemporaryCreditLine,
                and_(
                    TemporaryCreditLine.tenant_id == CreditProfile.tenant_id,
                    TemporaryCreditLine.profile_id == CreditProfile.id,
                    TemporaryCreditLine.expires_on >= day,
                ),
            )
            .where(
                CreditProfile.customer_id == customer_id,
                _of_owner(CreditProfile.owner_customer_id, owner),
            )
            .order_by(CreditProfile.id, TemporaryCreditLine.expires_on)
        )
    ).all()
    if not rows:
        return []
    if owner is None:
        inputs = await terms.exposure_inputs(session, customer_id)
    else:
        inputs = await orders.seller_exposure(session, customer_id, seller_id=owner)
    exposure = credit.exposure(inputs)
    # Read once; each profile's grace days are applied below (the rows do not depend on them).
    unpaid = await terms.open_receivables(session, customer_id, 0) if owner is None else ()
    profiles: dict[UUID, tuple[CreditProfile, list[TemporaryLineView]]] = {}
    for profile, amount, expires_on in rows:
        lines = profiles.setdefault(profile.id, (profile, []))[1]
        if amount is not None:
            lines.append(TemporaryLineView(amount=amount, expires_on=expires_on))
    out = []
    for profile, lines in profiles.values():
        line = profile.credit_limit + sum((t.amount for t in lines), ZERO)
        receivables = [msgspec.structs.replace(r, grace_days=profile.grace_days) for r in unpaid]
        out.append(
            CreditStanding(
                sales_org_id=profile.sales_org_id,
                limit=profile.credit_limit,
                temporary_lines=lines,
                credit_line=line,
                credit_days=profile.credit_days,
                grace_days=profile.grace_days,
                exposure=ExposureView(
                    open_orders=inputs.open_orders,
                    shipped_not_invoiced=inputs.shipped_not_invoiced,
                    receivables=inputs.receivables,
                    unapplied_prepayments=inputs.unapplied_prepayments,
                    total=exposure,
                ),
                available=line - exposure,
                overdue=[
                    OverdueView(
                        id=r.id,
                        amount=r.amount,
                        due_date=r.due_date,
                        overdue_since=r.due_date + timedelta(days=r.grace_days + 1),
                    )
                    for r in receivables
                    if r.overdue_on(day)
                ],
            )
        )
    return out


async def assets(session: AsyncSession, principal: Principal, customer_id: UUID) -> AssetsOut:
    await channels.visible_customer(session, customer_id, principal)  # 404 for a stranger
    day = funds.business_day()
    accounts = await _accounts(session, customer_id, day)
    grantors = await session.scalars(
        select(CreditProfile.owner_customer_id)
        .where(CreditProfile.customer_id == customer_id, CreditProfile.owner_customer_id.is_not(None))
        .distinct()
    )
    dealers = sorted({a.owner_customer_id for a in accounts if a.owner_customer_id} | set(grantors))
    pools = []
    for owner in (None, *dealers):
        mine = [a for a in accounts if a.owner_customer_id == owner]
        standing = await credit_standing(session, customer_id, day, owner)
        pools.append(PoolAssets(owner_customer_id=owner, totals=_totals(mine), credit=standing))
    brand = pools[0]
    return AssetsOut(
        customer_id=customer_id,
        on=day,
        totals=brand.totals,
        accounts=accounts,
        credit=brand.credit,
        pools=pools,
    )


async def _ties_to_leaving_dealers(
    session: AsyncSession, prefix: str, leaving: frozenset[UUID]
) -> str | None:
    """What ties customers under ``prefix`` to dealers that would stop being their ancestors:
    money held or credit granted in such a dealer's pool, or orders it sells them still open."""
    subtree = channels.subtree_ids(prefix)
    money = await session.scalar(
        select(func.count(FundAccount.id)).where(
            FundAccount.customer_id.in_(subtree),
            FundAccount.owner_customer_id.in_(leaving),
            or_(FundAccount.balance != 0, FundAccount.held != 0),
        )
    )
    if money:
        return "it keeps money in the pool of a dealer it would leave: settle those accounts first"
    grants = await session.scalar(
        select(func.count(CreditProfile.id)).where(
            CreditProfile.customer_id.in_(subtree), CreditProfile.owner_customer_id.in_(leaving)
        )
    )
    if grants:
        return "a dealer it would leave grants it credit: withdraw the grant first"
    open_sales = await session.scalar(
        select(func.count(Order.id)).where(
            Order.customer_id.in_(subtree),
            Order.seller_customer_id.in_(leaving),
            Order.status.not_in(order_states.FINAL),
        )
    )
    if open_sales:
        return "a dealer it would leave still has open orders selling to it: finish or cancel them first"
    return None


channels.add_move_guard(_ties_to_leaving_dealers)
