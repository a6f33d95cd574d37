"""Approval rules (审批规则): maintained by the brand, compiled once per revision, asked by the
order pool at submit (``approval_for``) and by anyone trying a rule set (``trial``).

Every change bumps the ``approvals`` revision in its own transaction, so an order is always
checked against the rules as they stood when it was submitted, on every process. Rules apply in
code order; inactive rules are kept but never match.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.catalog import service as catalog
from omnicloud.channels import service as channels
from omnicloud.core import audit, revisions
from omnicloud.core.db import utcnow
from omnicloud.core.errors import NotFound, invalid
from omnicloud.core.paging import paged_query, split_page
from omnicloud.core.tenancy import require_tenant
from omnicloud.identity.models import Role
from omnicloud.policies import approval
from omnicloud.policies.approvals.models import ApprovalRule
from omnicloud.policies.approvals.schemas import (
    ApprovalMatchOut,
    ApprovalRuleIn,
    ApprovalRuleOut,
    ApprovalRulePatch,
    ApprovalVerdictOut,
    OrderFactsIn,
)
from omnicloud.policies.terms import service as terms
from omnicloud.policies.terms.schemas import CustomerScopeBody, ProductScopeBody

TOPIC = "approvals"
FIELDS = (
    "code",
    "name",
    "active",
    "min_amount",
    "min_discount_ratio",
    "uses_credit",
    "customers",
    "products",
    "channels",
    "approver_role",
)


def rule_out(r: ApprovalRule) -> ApprovalRuleOut:
    return ApprovalRuleOut(
        id=r.id,
        code=r.code,
        name=r.name,
        active=r.active,
        min_amount=r.min_amount,
        min_discount_ratio=r.min_discount_ratio,
        uses_credit=r.uses_credit,
        customers=msgspec.convert(r.customers, CustomerScopeBody),
        products=msgspec.convert(r.products, ProductScopeBody),
        channels=list(r.channels),
        approver_role=r.approver_role,
        version=r.version,
        created_at=r.created_at,
    )


async def _rule(session: AsyncSession, rule_id: UUID) -> ApprovalRule:
    rule = await session.get(ApprovalRule, (require_tenant(), rule_id))
    if rule is None:
        raise NotFound("no such approval rule")
    return rule


async def _check_role(session: AsyncSession, code: Any) -> None:
    if isinstance(code, str) and await session.scalar(select(Role.id).where(Role.code == code)) is None:
        raise invalid("approver_role", f"no role has the code {code!r}")


def _values(data: ApprovalRuleIn | ApprovalRulePatch) -> dict[str, Any]:
    values: dict[str, Any] = {
        "active": data.active,
        "min_amount": data.min_amount,
        "min_discount_ratio": data.min_discount_ratio,
        "uses_credit": data.uses_credit,
        "channels": data.channels
        if isinstance(data.channels, msgspec.UnsetType)
        else sorted(set(data.channels)),
        "approver_role": data.approver_role,
        "name": data.name,
    }
    for scope in ("customers", "products"):
        body = getattr(data, scope)
        values[scope] = body if isinstance(body, msgspec.UnsetType) else terms.scope_builtins(body)
    return values


async def _check(session: AsyncSession, data: ApprovalRuleIn | ApprovalRulePatch) -> None:
    await terms.check_scope_refs(session, data.customers, data.products)
    await _check_role(session, data.approver_role)


async def create_rule(session: AsyncSession, data: ApprovalRuleIn) -> ApprovalRuleOut:
    await _check(session, data)
    await revisions.bump(session, TOPIC)
    rule = ApprovalRule(code=data.code, version=1, created_at=utcnow(), **_values(data))
    session.add(rule)
    await catalog.flush_unique(session, f"approval rule {data.code}")
    audit.record_change(session, "approval_rule", rule.id, None, audit.snapshot(rule, FIELDS))
    return rule_out(rule)


async def get_rule(session: AsyncSession, rule_id: UUID) -> ApprovalRuleOut:
    return rule_out(await _rule(session, rule_id))


async def list_rules(
    session: AsyncSession, cursor: str | None, limit: int, *, active: bool | None = None
) -> tuple[list[ApprovalRuleOut], str | None]:
    stmt = select(ApprovalRule)
    if active is not None:
        stmt = stmt.where(ApprovalRule.active.is_(active))
    rows = (await session.scalars(paged_query(stmt, ApprovalRule.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [rule_out(r) for r in items], nxt


async def update_rule(
    session: AsyncSession, rule_id: UUID, data: ApprovalRulePatch, expected_version: int
) -> ApprovalRuleOut:
    rule = await _rule(session, rule_id)
    audit.check_version(rule, expected_version, "approval rule")
    values = _values(data)
    if not catalog.differs(rule, values):
        return rule_out(rule)
    await _check(session, data)
    await revisions.bump(session, TOPIC)
    before = audit.snapshot(rule, FIELDS)
    catalog.assign(rule, values)
    rule.version += 1
    await session.flush()
    audit.record_change(session, "approval_rule", rule.id, before, audit.snapshot(rule, FIELDS))
    return rule_out(rule)


async def delete_rule(session: AsyncSession, rule_id: UUID, expected_version: int) -> None:
    rule = await _rule(session, rule_id)
    audit.check_version(rule, expected_version, "approval rule")
    before = audit.snapshot(rule, FIELDS)
    await revisions.bump(session, TOPIC)
    await session.delete(rule)
    await session.flush()
    audit.record_change(session, "approval_rule", rule_id, before, None)


# --- asking the rules -------------------------------------------------------------------------


def _engine_rule(r: Any) -> approval.ApprovalRule:
    return approval.ApprovalRule(
        id=str(r.id),
        code=r.code,
        name=r.name,
        min_amount=r.min_amount,
        min_discount_ratio=r.min_discount_ratio,
        uses_credit=r.uses_credit,
        customers=terms.customer_scope(r),
        products=terms.product_scope(r),
        channels=frozenset(r.channels),
        approver_role=r.approver_role,
    )


async def _build(session: AsyncSession) -> tuple[approval.ApprovalRule, ...]:
    rows = await session.scalars(
        select(ApprovalRule).where(ApprovalRule.active.is_(True)).order_by(ApprovalRule.code)
    )
    return tuple(_engine_rule(r) for r in rows)


async def rule_book(session: AsyncSession, revision: revisions.Revision) -> tuple[approval.ApprovalRule, ...]:
    """The active rules for ``revision``, in code order, built once per tenant and revision."""
    return await revisions.COMPILED.get(TOPIC, revision, lambda: _build(session))


async def order_facts(
    session: AsyncSession,
    *,
    customer: Any,
    channel: str | None,
    gross: Decimal,
    amount: Decimal,
    credit_amount: Decimal,
    sku_ids: Sequence[UUID],
    need_lines: bool = True,
) -> approval.OrderFacts:
    """The facts the rules look at for an order of ``customer`` (a Customer row)."""
    region_path = tuple(str(r) for r in await catalog.region_ancestors(session, customer.region_id))
    lines: tuple[approval.OrderLineFacts, ...] = ()
    if need_lines and sku_ids:
        facts = await catalog.sku_facts(session, list(dict.fromkeys(sku_ids)))
        lines = tuple(
            approval.OrderLineFacts(
                sku_id=str(f.sku_id),
                category_path=tuple(str(c) for c in f.categories),
                brand_id=str(f.brand_id) if f.brand_id else None,
            )
            for f in facts.values()
        )
    return approval.OrderFacts(
        customer_id=str(customer.id),
        customer_class=customer.customer_class,
        level=customer.level,
        region_path=region_path,
        channel=channel,
        gross=gross,
        amount=amount,
        credit_amount=credit_amount,
        lines=lines,
    )


async def approval_for(
    session: AsyncSession,
    *,
    customer: Any,
    channel: str | None,
    gross: Decimal,
    amount: Decimal,
    credit_amount: Decimal,
    sku_ids: Sequence[UUID],
    revision: revisions.Revision,
) -> list[approval.Match]:
    """The rules an order matches (none: the rules let it through). ``revision`` is the
    ``approvals`` stamp (the caller reads it with its other stamps); without active rules this
    reads nothing."""
    rules = await rule_book(session, revision)
    if not rules:
        return []
    facts = await order_facts(
        session,
        customer=customer,
        channel=channel,
        gross=gross,
        amount=amount,
        credit_amount=credit_amount,
        sku_ids=sku_ids,
        need_lines=any(r.products != approval.ProductScope() for r in rules),
    )
    return approval.matching(rules, facts)


async def trial(session: AsyncSession, data: OrderFactsIn) -> ApprovalVerdictOut:
    """What the active rules say about an order with these facts; changes nothing."""
    customer = await channels.require_customer(session, data.customer_id, field="customer_id")
    for i, sku_id in enumerate(data.sku_ids):
        await catalog.require_sku(session, sku_id, field=f"sku_ids[{i}]")
    matches = await approval_for(
        session,
        customer=customer,
        channel=data.channel,
        gross=data.gross,
        amount=data.amount,
        credit_amount=data.credit_amount,
        sku_ids=data.sku_ids,
        revision=(await revisions.current(session, (TOPIC,)))[TOPIC],
    )
    return ApprovalVerdictOut(
        needs_approval=bool(matches),
        matches=[
            ApprovalMatchOut(
                rule_id=UUID(m.rule_id), code=m.code, reason=m.reason, approver_role=m.approver_role
            )
            for m in matches
        ],
    )
