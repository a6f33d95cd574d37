"""Commercial terms use cases: credit profiles with temporary lines and credit rules (信用), rebate
policies and their preview (返利), expense offset ratios (费用核销比例).

Every write records an audit entry with its outbox event and bumps the ``terms`` revision in the
caller's transaction. Writes that must stay unique where SQL cannot enforce it (a NULL sales org,
class or dimension is never equal to another NULL) bump the revision first: the revision row's
update serialises concurrent writers, so the duplicate check that follows sees every committed row.

The quote service reads the compiled :class:`TermsBook` (credit rules, offset ratios, active
rebate policies) for the current revision, and :func:`credit_preview` for one customer.

Credit granted by a dealer (DOMAIN §7): a credit profile with ``owner_customer_id`` is a level-1
dealer's grant to a dealer below it, checked when that dealer's orders are sold by it. The
credit-profile functions take ``owner``, whose profiles they reach: None the brand's (the
``/credit-profiles`` routes), a dealer its own grants (``/dealer-credit-profiles``); any other
profile is a 404. A dealer grants only to dealers below it in the tree and never per sales org.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.catalog import service as catalog
from omnicloud.channels import service as channels
from omnicloud.channels.models import Customer
from omnicloud.core import audit, revisions
from omnicloud.core.db import utcnow
from omnicloud.core.errors import Conflict, NotFound, invalid
from omnicloud.core.money import round_money
from omnicloud.core.paging import paged_query, split_page
from omnicloud.core.tenancy import require_tenant
from omnicloud.policies import credit, rebates
from omnicloud.policies.terms.models import (
    CreditProfile,
    CreditRule,
    OffsetRatio,
    RebatePolicy,
    TemporaryCreditLine,
)
from omnicloud.policies.terms.schemas import (
    CreditProfileIn,
    CreditProfileOut,
    CreditProfilePatch,
    CreditRuleIn,
    CreditRuleOut,
    CreditRulePatch,
    CustomerScopeBody,
    CustomerScopeOut,
    OffsetRatioIn,
    OffsetRatioOut,
    OffsetRatioPatch,
    ProductScopeBody,
    ProductScopeOut,
    RebatePolicyIn,
    RebatePolicyOut,
    RebatePolicyPatch,
    RebatePreviewIn,
    RebatePreviewOut,
    SalesLine,
    SliceOut,
    TemporaryLineIn,
    TemporaryLineOut,
    TierBody,
    TierOut,
)

TOPIC = "terms"
ZERO = Decimal("0.00")
PROFILE_FIELDS = ("customer_id", "sales_org_id", "credit_limit", "credit_days", "grace_days", "version")
LINE_FIELDS = ("profile_id", "amount", "expires_on", "reason")
RULE_FIELDS = ("check_point", "customer_class", "over_limit", "overdue", "version")
POLICY_FIELDS = (
    "code",
    "name",
    "period",
    "period_start",
    "period_end",
    "customers",
    "products",
    "basis",
    "mode",
    "target",
    "tiers",
    "cap",
    "form",
    "usage_cap_ratio",
    "status",
    "version",
)
RATIO_FIELDS = ("customer_id", "sales_org_id", "sku_id", "category_id", "ratio", "version")


def business_day() -> date:
    """The day (UTC) that decides whether a temporary line is still valid."""
    return utcnow().date()


async def _write(session: AsyncSession, kind: str, obj_id: UUID, before: Any, after: Any) -> None:
    audit.record_change(session, kind, obj_id, before, after)
    await revisions.bump(session, TOPIC)


def _assign(obj: Any, values: dict[str, Any]) -> bool:
    """Set the given (not UNSET) values; True when any differs from the current one."""
    changed = False
    for name, value in values.items():
        if value is not UNSET and getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed


def _same(column: Any, value: Any) -> Any:
    """``column = value`` where NULL equals NULL (the duplicate checks SQL cannot make)."""
    return column.is_(None) if value is None else column == value


async def _require_sales_org(session: AsyncSession, org_id: UUID, field: str = "sales_org_id") -> None:
    try:
        await channels.get_sales_org(session, org_id)
    except NotFound:
        raise invalid(field, "no such sales org") from None


async def _require_category(session: AsyncSession, category_id: UUID, field: str) -> None:
    try:
        await catalog.get_category(session, category_id)
    except NotFound:
        raise invalid(field, "no such category") from None


async def _require_brand(session: AsyncSession, brand_id: UUID, field: str) -> None:
    try:
        await catalog.get_brand(session, brand_id)
    except NotFound:
        raise invalid(field, "no such brand") from None


# --- credit profiles and temporary lines -----------------------------------------------------


async def _profile(session: AsyncSession, profile_id: UUID, owner: UUID | None = None) -> CreditProfile:
    """``owner``'s profile (None: the brand's); any other is a 404."""
    profile = await session.get(CreditProfile, (require_tenant(), profile_id))
    if profile is None or profile.owner_customer_id != owner:
        raise NotFound("no such credit profile")
    return profile


async def _lines_of(
    session: AsyncSession, profile_ids: Sequence[UUID]
) -> dict[UUID, list[TemporaryCreditLine]]:
    out: dict[UUID, list[TemporaryCreditLine]] = {pid: [] for pid in profile_ids}
    if profile_ids:
        stmt = (
            select(TemporaryCreditLine)
            .where(TemporaryCreditLine.profile_id.in_(profile_ids))
            .order_by(TemporaryCreditLine.expires_on, TemporaryCreditLine.id)
        )
        for line in (await session.scalars(stmt)).all():
            out[line.profile_id].append(line)
    return out


def _line_out(line: TemporaryCreditLine, day: date) -> TemporaryLineOut:
    return TemporaryLineOut(
        id=line.id,
        credit_profile_id=line.profile_id,
        amount=line.amount,
        expires_on=line.expires_on,
        reason=line.reason,
        valid=day <= line.expires_on,
        created_at=line.created_at,
    )


def _profile_out(p: CreditProfile, lines: Iterable[TemporaryCreditLine]) -> CreditProfileOut:
    day = business_day()
    outs = [_line_out(line, day) for line in lines]
    extra = sum((line.amount for line in outs if line.valid), ZERO)
    return CreditProfileOut(
        id=p.id,
        customer_id=p.customer_id,
        sales_org_id=p.sales_org_id,
        credit_limit=p.credit_limit,
        credit_days=p.credit_days,
        grace_days=p.grace_days,
        temporary_lines=outs,
        temporary_total=extra,
        credit_line=p.credit_limit + extra,
        version=p.version,
        created_at=p.created_at,
    )


async def _full_profile_out(session: AsyncSession, p: CreditProfile) -> CreditProfileOut:
    return _profile_out(p, (await _lines_of(session, [p.id]))[p.id])


async def create_credit_profile(
    session: AsyncSession, data: CreditProfileIn, owner: UUID | None = None
) -> CreditProfileOut:
    """A credit line for a customer: the brand's, or (``owner``) a dealer's grant to a dealer
    below it. One per customer, grantor and sales org (or none): a second one is a 409."""
    if owner is not None:
        # One answer for any id that is not below the grantor, known or not: it tells nothing
        # about customers elsewhere in the tree.
        grantor = await channels.require_customer(session, owner)
        below = await session.scalar(
            select(Customer.id).where(
                Customer.id == data.customer_id, Customer.path.startswith(grantor.path), Customer.id != owner
            )
        )
        if below is None:
            raise invalid("customer_id", "a dealer grants credit only to dealers below it")
    await channels.require_customer(session, data.customer_id)
    if owner is not None and data.sales_org_id is not None:
        raise invalid("sales_org_id", "a dealer's credit grant has no sales org")
    if data.sales_org_id is not None:
        await _require_sales_org(session, data.sales_org_id)
    await revisions.bump(session, TOPIC)
    taken = await session.scalar(
        select(CreditProfile.id).where(
            CreditProfile.customer_id == data.customer_id,
            _same(CreditProfile.sales_org_id, data.sales_org_id),
            _same(CreditProfile.owner_customer_id, owner),
        )
    )
    if taken is not None:
        raise Conflict(
            f"the customer already has a credit profile for this sales org ({taken})", code="duplicate"
        )
    profile = CreditProfile(
        customer_id=data.customer_id,
        sales_org_id=data.sales_org_id,
        owner_customer_id=owner,
        credit_limit=data.credit_limit,
        credit_days=data.credit_days,
        grace_days=data.grace_days,
        version=1,
        created_at=utcnow(),
    )
    session.add(profile)
    await catalog.flush_unique(session, "credit profile")
    audit.record_change(session, "credit_profile", profile.id, None, audit.snapshot(profile, PROFILE_FIELDS))
    return _profile_out(profile, [])


async def get_credit_profile(
    session: AsyncSession, profile_id: UUID, owner: UUID | None = None
) -> CreditProfileOut:
    return await _full_profile_out(session, await _profile(session, profile_id, owner))


async def list_credit_profiles(
    session: AsyncSession,
    cursor: str | None,
    limit: int,
    *,
    customer_id: UUID | None = None,
    owner: UUID | None = None,
) -> tuple[list[CreditProfileOut], str | None]:
    """``owner``'s profiles (None: the brand's), oldest first."""
    stmt = select(CreditProfile).where(_same(CreditProfile.owner_customer_id, owner))
    if customer_id is not None:
        stmt = stmt.where(CreditProfile.customer_id == customer_id)
    rows = (await session.scalars(paged_query(stmt, CreditProfile.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    lines = await _lines_of(session, [p.id for p in items])
    return [_profile_out(p, lines[p.id]) for p in items], nxt


async def update_credit_profile(
    session: AsyncSession,
    profile_id: UUID,
    data: CreditProfilePatch,
    expected_version: int,
    owner: UUID | None = None,
) -> CreditProfileOut:
    profile = await _profile(session, profile_id, owner)
    audit.check_version(profile, expected_version, "credit profile")
    before = audit.snapshot(profile, PROFILE_FIELDS)
    values = {
        "credit_limit": data.credit_limit,
        "credit_days": data.credit_days,
        "grace_days": data.grace_days,
    }
    if _assign(profile, values):
        profile.version += 1
        await session.flush()
        await _write(session, "credit_profile", profile.id, before, audit.snapshot(profile, PROFILE_FIELDS))
    return await _full_profile_out(session, profile)


async def add_temporary_line(
    session: AsyncSession, profile_id: UUID, data: TemporaryLineIn, owner: UUID | None = None
) -> TemporaryLineOut:
    """A temporary line changes the profile's credit line, so the profile's version moves too."""
    profile = await _profile(session, profile_id, owner)
    day = business_day()
    if data.expires_on < day:
        raise invalid("expires_on", f"must not be in the past (today is {day.isoformat()})")
    line = TemporaryCreditLine(
        profile_id=profile.id,
        amount=data.amount,
        expires_on=data.expires_on,
        reason=data.reason,
        created_at=utcnow(),
    )
    session.add(line)
    profile.version += 1
    await session.flush()
    await _write(session, "temporary_credit_line", line.id, None, audit.snapshot(line, LINE_FIELDS))
    return _line_out(line, day)


async def delete_temporary_line(
    session: AsyncSession, profile_id: UUID, line_id: UUID, owner: UUID | None = None
) -> CreditProfileOut:
    profile = await _profile(session, profile_id, owner)
    line = await session.get(TemporaryCreditLine, (require_tenant(), line_id))
    if line is None or line.profile_id != profile.id:
        raise NotFound("no such temporary credit line on this profile")
    before = audit.snapshot(line, LINE_FIELDS)
    await session.delete(line)
    profile.version += 1
    await session.flush()
    await _write(session, "temporary_credit_line", line_id, before, None)
    return await _full_profile_out(session, profile)


# --- credit rules ----------------------------------------------------------------------------


def _rule_out(r: CreditRule) -> CreditRuleOut:
    return CreditRuleOut(
        id=r.id,
        check_point=r.check_point,
        customer_class=r.customer_class,
        over_limit=r.over_limit,
        overdue=r.overdue,
        version=r.version,
        created_at=r.created_at,
    )


async def _rule(session: AsyncSession, rule_id: UUID) -> CreditRule:
    rule = await session.get(CreditRule, (require_tenant(), rule_id))
    if rule is None:
        raise NotFound("no such credit rule")
    return rule


async def _check_rule_unique(
    session: AsyncSession, check_point: str, customer_class: str | None, rule_id: UUID | None
) -> None:
    stmt = select(CreditRule.id).where(
        CreditRule.check_point == check_point, _same(CreditRule.customer_class, customer_class)
    )
    if rule_id is not None:
        stmt = stmt.where(CreditRule.id != rule_id)
    taken = await session.scalar(stmt)
    if taken is not None:
        who = f"class {customer_class}" if customer_class else "every class"
        raise Conflict(f"a {check_point} rule for {who} already exists ({taken})", code="duplicate")


async def create_credit_rule(session: AsyncSession, data: CreditRuleIn) -> CreditRuleOut:
    await revisions.bump(session, TOPIC)
    await _check_rule_unique(session, data.check_point, data.customer_class, None)
    rule = CreditRule(
        check_point=data.check_point,
        customer_class=data.customer_class,
        over_limit=data.over_limit,
        overdue=data.overdue,
        version=1,
        created_at=utcnow(),
    )
    session.add(rule)
    await catalog.flush_unique(session, "credit rule")
    audit.record_change(session, "credit_rule", rule.id, None, audit.snapshot(rule, RULE_FIELDS))
    return _rule_out(rule)


async def get_credit_rule(session: AsyncSession, rule_id: UUID) -> CreditRuleOut:
    return _rule_out(await _rule(session, rule_id))


async def list_credit_rules(
    session: AsyncSession, cursor: str | None, limit: int
) -> tuple[list[CreditRuleOut], str | None]:
    rows = (await session.scalars(paged_query(select(CreditRule), CreditRule.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [_rule_out(r) for r in items], nxt


async def update_credit_rule(
    session: AsyncSession, rule_id: UUID, data: CreditRulePatch, expected_version: int
) -> CreditRuleOut:
    rule = await _rule(session, rule_id)
    audit.check_version(rule, expected_version, "credit rule")
    before = audit.snapshot(rule, RULE_FIELDS)
    values = {
        "check_point": data.check_point,
        "customer_class": data.customer_class,
        "over_limit": data.over_limit,
        "overdue": data.overdue,
    }
    if not catalog.differs(rule, values):
        return _rule_out(rule)
    await revisions.bump(session, TOPIC)
    point = rule.check_point if isinstance(data.check_point, UnsetType) else data.check_point
    cls = rule.customer_class if isinstance(data.customer_class, UnsetType) else data.customer_class
    await _check_rule_unique(session, point, cls, rule.id)
    _assign(rule, values)
    rule.version += 1
    await catalog.flush_unique(session, "credit rule")
    audit.record_change(session, "credit_rule", rule.id, before, audit.snapshot(rule, RULE_FIELDS))
    return _rule_out(rule)


async def delete_credit_rule(session: AsyncSession, rule_id: UUID, expected_version: int) -> None:
    rule = await _rule(session, rule_id)
    audit.check_version(rule, expected_version, "credit rule")
    before = audit.snapshot(rule, RULE_FIELDS)
    await session.delete(rule)
    await session.flush()
    await _write(session, "credit_rule", rule_id, before, None)


# --- rebate policies -------------------------------------------------------------------------


def scope_builtins(scope: CustomerScopeBody | ProductScopeBody) -> dict[str, list[str]]:
    """Stored scopes keep each list sorted and without repeats, so equal scopes compare equal."""
    return {k: sorted(set(v)) for k, v in msgspec.to_builtins(scope).items()}


def _tiers_builtins(tiers: Sequence[TierBody]) -> list[dict[str, str]]:
    return [{"achievement": str(t.achievement), "rate": str(t.rate)} for t in tiers]


def engine_policy(p: RebatePolicy) -> rebates.RebatePolicy:
    return rebates.RebatePolicy(
        mode=cast(rebates.RebateMode, p.mode),
        tiers=[
            rebates.RebateTier(achievement=Decimal(t["achievement"]), rate=Decimal(t["rate"]))
            for t in p.tiers
        ],
        target=p.target,
        cap=p.cap,
        usage_cap_ratio=p.usage_cap_ratio,
    )


def customer_scope(p: RebatePolicy) -> rebates.CustomerScope:
    c = p.customers
    return rebates.CustomerScope(
        customer_ids=frozenset(c.get("customer_ids", ())),
        customer_classes=frozenset(c.get("customer_classes", ())),
        levels=frozenset(c.get("levels", ())),
        region_ids=frozenset(c.get("region_ids", ())),
    )


def product_scope(p: RebatePolicy) -> rebates.ProductScope:
    s = p.products
    return rebates.ProductScope(
        sku_ids=frozenset(s.get("sku_ids", ())),
        category_ids=frozenset(s.get("category_ids", ())),
        brand_ids=frozenset(s.get("brand_ids", ())),
    )


def _policy_out(p: RebatePolicy) -> RebatePolicyOut:
    return RebatePolicyOut(
        id=p.id,
        code=p.code,
        name=p.name,
        period=p.period,
        period_start=p.period_start,
        period_end=p.period_end,
        customers=msgspec.convert(p.customers, CustomerScopeOut),
        products=msgspec.convert(p.products, ProductScopeOut),
        basis=p.basis,
        mode=p.mode,
        target=p.target,
        tiers=[TierOut(achievement=Decimal(t["achievement"]), rate=Decimal(t["rate"])) for t in p.tiers],
        cap=p.cap,
        form=p.form,
        usage_cap_ratio=p.usage_cap_ratio,
        status=p.status,
        version=p.version,
        created_at=p.created_at,
    )


async def _policy(session: AsyncSession, policy_id: UUID) -> RebatePolicy:
    policy = await session.get(RebatePolicy, (require_tenant(), policy_id))
    if policy is None:
        raise NotFound("no such rebate policy")
    return policy


async def check_scope_refs(
    session: AsyncSession, customers: CustomerScopeBody | UnsetType, products: ProductScopeBody | UnsetType
) -> None:
    """Every id a scope names belongs to this tenant (422 naming the entry otherwise)."""
    if isinstance(customers, CustomerScopeBody):
        for i, cid in enumerate(customers.customer_ids):
            await channels.require_customer(session, cid, field=f"customers.customer_ids[{i}]")
        for i, rid in enumerate(customers.region_ids):
            await catalog.require_region(session, rid, field=f"customers.region_ids[{i}]")
    if isinstance(products, ProductScopeBody):
        for i, sid in enumerate(products.sku_ids):
            await catalog.require_sku(session, sid, field=f"products.sku_ids[{i}]")
        for i, cat in enumerate(products.category_ids):
            await _require_category(session, cat, f"products.category_ids[{i}]")
        for i, bid in enumerate(products.brand_ids):
            await _require_brand(session, bid, f"products.brand_ids[{i}]")


def _validate_policy(p: RebatePolicy) -> None:
    """A policy that cannot be computed is refused when saved (422 naming the field), never at
    accrual or quote time."""
    if p.period == "custom":
        for field in ("period_start", "period_end"):
            if getattr(p, field) is None:
                raise invalid(field, "a custom period needs period_start and period_end")
    if p.period_start is not None and p.period_end is not None and p.period_end < p.period_start:
        raise invalid("period_end", "must not be before period_start")
    try:
        rebates.validate_policy(engine_policy(p))
    except rebates.RebatePolicyError as exc:
        field, _, message = str(exc).partition(": ")
        raise invalid(field, message) from None


async def create_rebate_policy(session: AsyncSession, data: RebatePolicyIn) -> RebatePolicyOut:
    await check_scope_refs(session, data.customers, data.products)
    policy = RebatePolicy(
        code=data.code,
        name=data.name,
        period=data.period,
        period_start=data.period_start,
        period_end=data.period_end,
        customers=scope_builtins(data.customers),
        products=scope_builtins(data.products),
        basis=data.basis,
        mode=data.mode,
        target=data.target,
        tiers=_tiers_builtins(data.tiers),
        cap=data.cap,
        form=data.form,
        usage_cap_ratio=data.usage_cap_ratio,
        status=data.status,
        version=1,
        created_at=utcnow(),
    )
    _validate_policy(policy)
    if await session.scalar(select(RebatePolicy.id).where(RebatePolicy.code == data.code)) is not None:
        raise Conflict(f"rebate policy {data.code} already exists", code="duplicate")
    session.add(policy)
    await catalog.flush_unique(session, f"rebate policy {data.code}")
    await _write(session, "rebate_policy", policy.id, None, audit.snapshot(policy, POLICY_FIELDS))
    return _policy_out(policy)


async def get_rebate_policy(session: AsyncSession, policy_id: UUID) -> RebatePolicyOut:
    return _policy_out(await _policy(session, policy_id))


async def list_rebate_policies(
    session: AsyncSession,
    cursor: str | None,
    limit: int,
    *,
    status: str | None = None,
    period: str | None = None,
) -> tuple[list[RebatePolicyOut], str | None]:
    stmt = select(RebatePolicy)
    if status is not None:
        stmt = stmt.where(RebatePolicy.status == status)
    if period is not None:
        stmt = stmt.where(RebatePolicy.period == period)
    rows = (await session.scalars(paged_query(stmt, RebatePolicy.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [_policy_out(p) for p in items], nxt


async def update_rebate_policy(
    session: AsyncSession, policy_id: UUID, data: RebatePolicyPatch, expected_version: int
) -> RebatePolicyOut:
    policy = await _policy(session, policy_id)
    audit.check_version(policy, expected_version, "rebate policy")
    await check_scope_refs(session, data.customers, data.products)
    before = audit.snapshot(policy, POLICY_FIELDS)
    values: dict[str, Any] = {
        name: getattr(data, name)
        for name in (
            "name",
            "period",
            "period_start",
            "period_end",
            "basis",
            "mode",
            "target",
            "cap",
            "form",
            "usage_cap_ratio",
            "status",
        )
    }
    if isinstance(data.customers, CustomerScopeBody):
        values["customers"] = scope_builtins(data.customers)
    if isinstance(data.products, ProductScopeBody):
        values["products"] = scope_builtins(data.products)
    if isinstance(data.tiers, list):
        values["tiers"] = _tiers_builtins(data.tiers)
    if not _assign(policy, values):
        return _policy_out(policy)
    _validate_policy(policy)
    policy.version += 1
    await session.flush()
    await _write(session, "rebate_policy", policy.id, before, audit.snapshot(policy, POLICY_FIELDS))
    return _policy_out(policy)


def pct(ratio: Decimal) -> str:
    return f"{(ratio * 100).normalize():f}%"


async def sales_in_scope(
    session: AsyncSession, scope: rebates.ProductScope, sales: Sequence[SalesLine]
) -> tuple[Decimal, Decimal, int]:
    """(net sales in scope, net sales outside it, lines outside it); an unknown SKU is a 422."""
    facts = await catalog.sku_facts(session, [line.sku_id for line in sales])
    inside = outside = Decimal(0)
    excluded = 0
    for i, line in enumerate(sales):
        fact = facts.get(line.sku_id)
        if fact is None:
            raise invalid(f"sales[{i}].sku_id", "no such SKU")
        net = line.amount - line.returned_amount
        counts = scope.covers(
            sku_id=str(line.sku_id),
            category_path=[str(c) for c in fact.categories],
            brand_id=_s(fact.brand_id),
        )
        if counts:
            inside += net
        else:
            outside += net
            excluded += 1
    return inside, outside, excluded


def overlaps(p: RebatePolicy, start: date, end: date) -> bool:
    return (p.period_start is None or p.period_start <= end) and (
        p.period_end is None or start <= p.period_end
    )


async def preview_rebate(session: AsyncSession, policy_id: UUID, data: RebatePreviewIn) -> RebatePreviewOut:
    """What the policy would accrue for one customer and period, given its sales; changes nothing."""
    policy = await _policy(session, policy_id)
    if data.period_end < data.period_start:
        raise invalid("period_end", "must not be before period_start")
    customer = await channels.require_customer(session, data.customer_id)
    engine = engine_policy(policy)
    flat = policy.mode == "flat"
    explanation: list[str] = []
    if policy.status != "active":
        explanation.append(f"the policy is {policy.status}; this shows what it would pay if it were active")
    region_path = [str(r) for r in await catalog.region_ancestors(session, customer.region_id)]
    covered = customer_scope(policy).covers(
        customer_id=str(customer.id),
        customer_class=customer.customer_class,
        level=customer.level,
        region_path=region_path,
    )
    in_force = overlaps(policy, data.period_start, data.period_end)
    inside = outside = Decimal(0)
    if not covered:
        explanation.append("the customer is outside the policy's customer scope: nothing accrues")
    elif not in_force:
        explanation.append("the policy is not in force in this period: nothing accrues")
    else:
        inside, outside, excluded = await sales_in_scope(session, product_scope(policy), data.sales)
        if excluded:
            explanation.append(
                f"{excluded} of {len(data.sales)} sales lines ({round_money(outside)}) are outside the "
                "product scope and do not count"
            )
    achieved = round_money(max(inside, Decimal(0)))
    if inside < 0:
        explanation.append("returns exceed sales in scope: the achieved amount is 0")
    result = rebates.breakdown(engine, achieved)
    if covered and in_force:
        explanation.extend(explain_rebate(policy, result))
    tier = result.reached_tier
    return RebatePreviewOut(
        rebate_policy_id=policy.id,
        customer_id=customer.id,
        period_start=data.period_start,
        period_end=data.period_end,
        covered=covered,
        achieved_amount=achieved,
        excluded_amount=round_money(outside),
        target=None if flat else policy.target,
        achievement_ratio=result.achievement_ratio,
        reached_tier=TierOut(achievement=tier.achievement, rate=tier.rate) if tier else None,
        rate=tier.rate if tier else None,
        slices=[
            SliceOut(achievement=s.achievement, rate=s.rate, base=s.base, rebate=s.rebate)
            for s in result.slices
        ],
        uncapped_accrual=result.uncapped,
        accrual=result.accrual,
        cap=policy.cap,
        capped=result.capped,
        form=policy.form,
        explanation=explanation,
    )


def explain_rebate(p: RebatePolicy, r: rebates.RebateBreakdown) -> list[str]:
    out: list[str] = []
    if p.mode == "flat":
        out.append(f"flat rate {pct(r.slices[0].rate)} on {r.achieved_amount}")
    else:
        assert r.achievement_ratio is not None
        out.append(f"achieved {r.achieved_amount} of the target {p.target} ({pct(r.achievement_ratio)})")
        if r.reached_tier is None:
            first = Decimal(p.tiers[0]["achievement"])
            out.append(f"below the first tier at {pct(first)}: no rebate")
        elif p.mode == "retroactive":
            out.append(
                f"the {pct(r.reached_tier.achievement)} tier is reached: {pct(r.reached_tier.rate)} on "
                f"the whole {r.achieved_amount} (retroactive)"
            )
        else:
            slices = "; ".join(f"{s.base} at {pct(s.rate)} = {s.rebate}" for s in r.slices)
            out.append(f"each slice at its own rate (incremental): {slices}")
    if r.capped:
        out.append(f"capped at {p.cap} (uncapped {r.uncapped})")
    out.append(f"accrual {r.accrual}, paid as {p.form}")
    return out


# --- offset ratios ---------------------------------------------------------------------------


def _ratio_out(r: OffsetRatio) -> OffsetRatioOut:
    return OffsetRatioOut(
        id=r.id,
        customer_id=r.customer_id,
        sales_org_id=r.sales_org_id,
        sku_id=r.sku_id,
        category_id=r.category_id,
        ratio=r.ratio,
        version=r.version,
        created_at=r.created_at,
    )


async def _ratio(session: AsyncSession, ratio_id: UUID) -> OffsetRatio:
    ratio = await session.get(OffsetRatio, (require_tenant(), ratio_id))
    if ratio is None:
        raise NotFound("no such offset ratio")
    return ratio


async def create_offset_ratio(session: AsyncSession, data: OffsetRatioIn) -> OffsetRatioOut:
    if data.customer_id is not None and data.sales_org_id is not None:
        raise invalid("sales_org_id", "name a customer or a sales org, not both")
    if data.sku_id is not None and data.category_id is not None:
        raise invalid("category_id", "name a SKU or a category, not both")
    if data.customer_id is not None:
        await channels.require_customer(session, data.customer_id)
    if data.sales_org_id is not None:
        await _require_sales_org(session, data.sales_org_id)
    if data.sku_id is not None:
        await catalog.require_sku(session, data.sku_id)
    if data.category_id is not None:
        await _require_category(session, data.category_id, "category_id")
    await revisions.bump(session, TOPIC)
    taken = await session.scalar(
        select(OffsetRatio.id).where(
            _same(OffsetRatio.customer_id, data.customer_id),
            _same(OffsetRatio.sales_org_id, data.sales_org_id),
            _same(OffsetRatio.sku_id, data.sku_id),
            _same(OffsetRatio.category_id, data.category_id),
        )
    )
    if taken is not None:
        raise Conflict(f"an offset ratio for these dimensions already exists ({taken})", code="duplicate")
    ratio = OffsetRatio(
        customer_id=data.customer_id,
        sales_org_id=data.sales_org_id,
        sku_id=data.sku_id,
        category_id=data.category_id,
        ratio=data.ratio,
        version=1,
        created_at=utcnow(),
    )
    session.add(ratio)
    await catalog.flush_unique(session, "offset ratio")
    audit.record_change(session, "offset_ratio", ratio.id, None, audit.snapshot(ratio, RATIO_FIELDS))
    return _ratio_out(ratio)


async def get_offset_ratio(session: AsyncSession, ratio_id: UUID) -> OffsetRatioOut:
    return _ratio_out(await _ratio(session, ratio_id))


async def list_offset_ratios(
    session: AsyncSession,
    cursor: str | None,
    limit: int,
    *,
    customer_id: UUID | None = None,
    sales_org_id: UUID | None = None,
) -> tuple[list[OffsetRatioOut], str | None]:
    stmt = select(OffsetRatio)
    if customer_id is not None:
        stmt = stmt.where(OffsetRatio.customer_id == customer_id)
    if sales_org_id is not None:
        stmt = stmt.where(OffsetRatio.sales_org_id == sales_org_id)
    rows = (await session.scalars(paged_query(stmt, OffsetRatio.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [_ratio_out(r) for r in items], nxt


async def update_offset_ratio(
    session: AsyncSession, ratio_id: UUID, data: OffsetRatioPatch, expected_version: int
) -> OffsetRatioOut:
    ratio = await _ratio(session, ratio_id)
    audit.check_version(ratio, expected_version, "offset ratio")
    before = audit.snapshot(ratio, RATIO_FIELDS)
    if _assign(ratio, {"ratio": data.ratio}):
        ratio.version += 1
        await session.flush()
        await _write(session, "offset_ratio", ratio.id, before, audit.snapshot(ratio, RATIO_FIELDS))
    return _ratio_out(ratio)


async def delete_offset_ratio(session: AsyncSession, ratio_id: UUID, expected_version: int) -> None:
    ratio = await _ratio(session, ratio_id)
    audit.check_version(ratio, expected_version, "offset ratio")
    before = audit.snapshot(ratio, RATIO_FIELDS)
    await session.delete(ratio)
    await session.flush()
    await _write(session, "offset_ratio", ratio_id, before, None)


# --- the compiled book the quote service reads ----------------------------------------------

RatioKey = tuple[str | None, str | None, str | None, str | None]  # customer, sales org, SKU, category


class RebateCoverage(msgspec.Struct, frozen=True, kw_only=True):
    """An active rebate policy as a quote needs it: whom it covers, when, and its usage cap."""

    rebate_policy_id: str
    customers: rebates.CustomerScope
    starts: date | None
    ends: date | None
    usage_cap_ratio: Decimal

    def in_force(self, day: date) -> bool:
        return (self.starts is None or self.starts <= day) and (self.ends is None or day <= self.ends)


class TermsBook(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's credit rules, offset ratios and active rebate policies, compiled for one revision
    of the ``terms`` topic. Shared between requests: never mutate it."""

    revision: revisions.Revision
    credit_rules: dict[tuple[str, str | None], credit.CreditRule]  # (check point, customer class)
    offset_ratios: dict[RatioKey, Decimal]
    rebate_policies: tuple[RebateCoverage, ...]


def _s(value: UUID | None) -> str | None:
    return None if value is None else str(value)


async def _build_book(session: AsyncSession, revision: revisions.Revision) -> TermsBook:
    rules = await session.execute(
        select(CreditRule.check_point, CreditRule.customer_class, CreditRule.over_limit, CreditRule.overdue)
    )
    ratios = await session.execute(
        select(
            OffsetRatio.customer_id,
            OffsetRatio.sales_org_id,
            OffsetRatio.sku_id,
            OffsetRatio.category_id,
            OffsetRatio.ratio,
        )
    )
    policies = await session.execute(
        select(
            RebatePolicy.id,
            RebatePolicy.customers,
            RebatePolicy.period_start,
            RebatePolicy.period_end,
            RebatePolicy.usage_cap_ratio,
        )
        .where(RebatePolicy.status == "active")
        .order_by(RebatePolicy.id)
    )
    return TermsBook(
        revision=revision,
        credit_rules={
            (point, cls): credit.CreditRule(
                check_point=cast(credit.CheckPoint, point),
                over_limit=cast(credit.CreditAction, over),
                overdue=cast(credit.CreditAction, overdue),
            )
            for point, cls, over, overdue in rules
        },
        offset_ratios={(_s(c), _s(o), _s(s), _s(k)): r for c, o, s, k, r in ratios},
        rebate_policies=tuple(
            RebateCoverage(
                rebate_policy_id=str(pid),
                customers=rebates.CustomerScope(
                    customer_ids=frozenset(scope.get("customer_ids", ())),
                    customer_classes=frozenset(scope.get("customer_classes", ())),
                    levels=frozenset(scope.get("levels", ())),
                    region_ids=frozenset(scope.get("region_ids", ())),
                ),
                starts=start,
                ends=end,
                usage_cap_ratio=cap,
            )
            for pid, scope, start, end, cap in policies
        ),
    )


async def terms_book(session: AsyncSession, revision: revisions.Revision) -> TermsBook:
    """The compiled terms for ``revision`` (read it with ``revisions.current``), built once per
    tenant and revision (three statements) and reused until the next change."""
    return await revisions.COMPILED.get(TOPIC, revision, lambda: _build_book(session, revision))


def offset_ratio_for(
    book: TermsBook, *, customer_id: str, sales_org_id: str | None, sku_id: str, category_ids: tuple[str, ...]
) -> Decimal:
    """The share of a line that fees may pay. The most specific ratio wins: the customer's, then
    the sales org's, then the tenant's; at each, the SKU's, then its categories' (``category_ids``
    is the SKU's own category then its ancestors, nearest first), then the party's default.
    No ratio anywhere → 0 (fees pay nothing)."""
    parties: list[tuple[str | None, str | None]] = [(customer_id, None)]
    if sales_org_id is not None:
        parties.append((None, sales_org_id))
    parties.append((None, None))
    products: list[tuple[str | None, str | None]] = [
        (sku_id, None),
        *((None, c) for c in category_ids),
        (None, None),
    ]
    for customer, org in parties:
        for sku, category in products:
            ratio = book.offset_ratios.get((customer, org, sku, category))
            if ratio is not None:
                return ratio
    return Decimal(0)


def rebate_usage_cap_ratio(
    book: TermsBook,
    *,
    customer_id: str,
    customer_class: str | None,
    level: str | None,
    region_path: tuple[str, ...],
    day: date,
) -> Decimal:
    """How much of an order rebates may pay (返利使用比例): the smallest usage cap ratio among the
    active policies covering the customer on ``day`` (the strictest wins); none → 0."""
    caps = [
        p.usage_cap_ratio
        for p in book.rebate_policies
        if p.in_force(day)
        and p.customers.covers(
            customer_id=customer_id, customer_class=customer_class, level=level, region_path=region_path
        )
    ]
    return min(caps, default=Decimal(0))


# --- credit check for quotes -----------------------------------------------------------------


ExposureSource = Callable[[AsyncSession, UUID], Awaitable[credit.ExposureInputs]]
_EXPOSURE_SOURCES: list[ExposureSource] = []


def add_exposure_source(source: ExposureSource) -> None:
    """Register what a document pool adds to a customer's exposure. The pools depend on this
    module, not the other way round, so they register themselves (the order pool does at import)."""
    if source not in _EXPOSURE_SOURCES:
        _EXPOSURE_SOURCES.append(source)


async def exposure_inputs(session: AsyncSession, customer_id: UUID) -> credit.ExposureInputs:
    """The customer's credit exposure: open orders, shipped-not-invoiced, receivables and unapplied
    prepayments, summed over the registered document pools (the order pool reports open orders
    and shipped-not-invoiced, the invoice pool moves invoiced credit to receivables)."""
    parts = [await source(session, customer_id) for source in _EXPOSURE_SOURCES]
    return credit.ExposureInputs(
        open_orders=sum((p.open_orders for p in parts), Decimal(0)),
        shipped_not_invoiced=sum((p.shipped_not_invoiced for p in parts), Decimal(0)),
        receivables=sum((p.receivables for p in parts), Decimal(0)),
        unapplied_prepayments=sum((p.unapplied_prepayments for p in parts), Decimal(0)),
    )


ReceivablesSource = Callable[[AsyncSession, UUID], Awaitable[list[tuple[UUID, Decimal, date]]]]
_RECEIVABLES_SOURCES: list[ReceivablesSource] = []


def add_receivables_source(source: ReceivablesSource) -> None:
    """Register where unpaid receivables live, as ``(id, outstanding, due date)`` rows of one
    customer: the invoice pool registers itself at import (pools depend on policies, never the
    other way round)."""
    if source not in _RECEIVABLES_SOURCES:
        _RECEIVABLES_SOURCES.append(source)


async def open_receivables(
    session: AsyncSession, customer_id: UUID, grace_days: int
) -> tuple[credit.Receivable, ...]:
    """The customer's unpaid receivables with due dates, for the overdue check (grace days from
    its credit profile), from every registered source (the invoice pool: an issued invoice's
    credit part)."""
    rows = [row for source in _RECEIVABLES_SOURCES for row in await source(session, customer_id)]
    return tuple(
        credit.Receivable(id=str(receivable_id), amount=outstanding, due_date=due, grace_days=grace_days)
        for receivable_id, outstanding, due in rows
    )


async def credit_preview(
    session: AsyncSession,
    book: TermsBook,
    *,
    customer_id: UUID,
    customer_class: str | None,
    amount: Decimal,
    check_point: str,
    today: date,
    sales_org_id: UUID | None = None,
    lock: bool = False,
    owner_customer_id: UUID | None = None,
    exposure: ExposureSource | None = None,
) -> credit.CreditVerdict | None:
    """The credit verdict for a document of ``amount`` at ``check_point``; None when the customer has
    no credit profile (no credit control). The profile for ``sales_org_id`` is used when there is one,
    else the customer's profile without a sales org. One statement reads the profile with its
    temporary lines valid on ``today``. The rule for the check point and the customer's class wins
    over the check point's rule without a class; no rule passes.

    A document that will occupy credit passes ``lock=True``: the profile rows stay locked until its
    transaction ends, so concurrent documents of one customer are checked one after the other, each
    seeing the exposure of those committed before it.

    ``owner_customer_id`` checks the credit a dealer granted (a document that dealer sells) instead
    of the brand's: the caller passes what reports that dealer's ``exposure`` (the registered
    sources report the brand's), read after the lock like theirs; there are no receivables in a
    dealer's pool (invoices are the brand's)."""
    stmt = (
        select(
            CreditProfile.id,
            CreditProfile.sales_org_id,
            CreditProfile.credit_limit,
            CreditProfile.grace_days,
            TemporaryCreditLine.amount,
            TemporaryCreditLine.expires_on,
        )
        .outerjoin(
            TemporaryCreditLine,
            and_(
                TemporaryCreditLine.tenant_id == CreditProfile.tenant_id,
                TemporaryCreditLine.profile_id == CreditProfile.id,
                TemporaryCreditLine.expires_on >= today,
            ),
        )
        .where(
            CreditProfile.customer_id == customer_id,
            _same(CreditProfile.owner_customer_id, owner_customer_id),
        )
    )
    orgs = [CreditProfile.sales_org_id.is_(None)]
    if sales_org_id is not None:
        orgs.append(CreditProfile.sales_org_id == sales_org_id)
    stmt = stmt.where(or_(*orgs))
    if lock:
        stmt = stmt.with_for_update(of=CreditProfile)
    rows = (await session.execute(stmt)).all()
    if not rows:
        return None
    chosen = sales_org_id if any(r.sales_org_id == sales_org_id for r in rows) else None
    mine = [r for r in rows if r.sales_org_id == chosen]
    profile = credit.CreditProfile(
        limit=mine[0].credit_limit,
        temporary_lines=tuple(
            credit.TemporaryLine(amount=r.amount, expires_on=r.expires_on)
            for r in mine
            if r.amount is not None
        ),
    )
    rule = book.credit_rules.get((check_point, customer_class)) or book.credit_rules.get((check_point, None))
    if owner_customer_id is not None:
        assert exposure is not None, "a dealer's credit is checked against that dealer's exposure"
        inputs, receivables = await exposure(session, customer_id), ()
    else:
        inputs = await exposure_inputs(session, customer_id)
        receivables = await open_receivables(session, customer_id, mine[0].grace_days)
    return credit.check_credit(
        profile,
        [rule] if rule is not None else [],
        inputs,
        amount,
        cast(credit.CheckPoint, check_point),
        today,
        receivables,
    )
