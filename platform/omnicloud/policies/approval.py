"""Order approval rules (审批规则): which orders wait for a person before they go on. Pure: no I/O.

A rule matches an order when every condition it sets holds (an unset condition always holds, so a
rule with no conditions sends every order to approval):

- ``min_amount``: the order's amount after promotions is at least this;
- ``min_discount_ratio``: promotions took at least this share of the gross amount;
- ``uses_credit``: part of the order is left on credit;
- ``customers``: the buyer is in the customer scope (ids, classes, levels, regions by ancestor);
- ``products``: at least one line is in the product scope (SKUs, categories by ancestor, brands);
- ``channels``: the order comes through one of these channels.

Every matching rule gives a reason that names it and says why it matched, and may name the role
whose users approve what it caught (``approver_role``): an order caught by rules naming roles is
approved by a user holding one of those roles, or by a tenant administrator (see
:func:`may_approve`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

import msgspec

from omnicloud.policies.rebates import CustomerScope, ProductScope


class ApprovalRule(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    code: str
    name: str
    min_amount: Decimal | None = None
    min_discount_ratio: Decimal | None = None
    uses_credit: bool = False
    customers: CustomerScope = CustomerScope()
    products: ProductScope = ProductScope()
    channels: frozenset[str] = frozenset()
    approver_role: str | None = None


class OrderLineFacts(msgspec.Struct, frozen=True, kw_only=True):
    sku_id: str
    category_path: tuple[str, ...] = ()
    brand_id: str | None = None


class OrderFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What the rules look at: the buyer, the channel, the money and the lines."""

    customer_id: str
    customer_class: str | None = None
    level: str | None = None
    region_path: tuple[str, ...] = ()
    channel: str | None = None
    gross: Decimal
    amount: Decimal  # after promotions
    credit_amount: Decimal = Decimal(0)
    lines: tuple[OrderLineFacts, ...] = ()


class Match(msgspec.Struct, frozen=True, kw_only=True):
    rule_id: str
    code: str
    reason: str
    approver_role: str | None = None


def _why(rule: ApprovalRule, facts: OrderFacts) -> list[str] | None:
    """The conditions that hold, in words; None as soon as one does not."""
    why: list[str] = []
    if rule.min_amount is not None:
        if facts.amount < rule.min_amount:
            return None
        why.append(f"amount {facts.amount} ≥ {rule.min_amount}")
    if rule.min_discount_ratio is not None:
        discount = facts.gross - facts.amount
        if facts.gross <= 0 or discount < rule.min_discount_ratio * facts.gross:
            return None
        why.append(f"discount {discount} is at least {rule.min_discount_ratio:%} of {facts.gross}")
    if rule.uses_credit:
        if facts.credit_amount <= 0:
            return None
        why.append(f"{facts.credit_amount} on credit")
    if not rule.customers.covers(
        customer_id=facts.customer_id,
        customer_class=facts.customer_class,
        level=facts.level,
        region_path=facts.region_path,
    ):
        return None
    if rule.customers != CustomerScope():
        why.append("the customer is in the rule's scope")
    if rule.products != ProductScope():
        if not any(
            rule.products.covers(sku_id=ln.sku_id, category_path=ln.category_path, brand_id=ln.brand_id)
            for ln in facts.lines
        ):
            return None
        why.append("a line is in the rule's product scope")
    if rule.channels:
        if facts.channel not in rule.channels:
            return None
        why.append(f"channel {facts.channel}")
    return why


def matching(rules: Iterable[ApprovalRule], facts: OrderFacts) -> list[Match]:
    """Every rule the order matches, in the order given (by code), each with its reason."""
    out = []
    for rule in rules:
        why = _why(rule, facts)
        if why is None:
            continue
        reason = f"rule {rule.code} ({rule.name})" + (": " + "; ".join(why) if why else ": every order")
        out.append(Match(rule_id=rule.id, code=rule.code, reason=reason, approver_role=rule.approver_role))
    return out


ADMIN_ROLE = "tenant_admin"


def may_approve(required_roles: Sequence[str], roles: Iterable[str]) -> bool:
    """Whether a user with ``roles`` may approve an order whose rules named ``required_roles``
    (none named: anyone who may approve orders)."""
    if not required_roles:
        return True
    held = set(roles)
    return ADMIN_ROLE in held or not held.isdisjoint(required_roles)
