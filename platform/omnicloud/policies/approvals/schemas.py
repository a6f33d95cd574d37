"""Request and response bodies for approval rules (审批规则). Money and ratios are decimal strings."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from omnicloud.catalog.schemas import Input, check_decimal
from omnicloud.channels.schemas import Code, Label, Name
from omnicloud.policies.terms.schemas import MAX_SCOPE, CustomerScopeBody, ProductScopeBody, check_ratio

Channels = Annotated[list[Label], msgspec.Meta(max_length=MAX_SCOPE)]


def _check_numbers(r: ApprovalRuleIn | ApprovalRulePatch) -> None:
    check_decimal("min_amount", r.min_amount, places=2)
    check_ratio("min_discount_ratio", r.min_discount_ratio)


class ApprovalRuleIn(Input):
    """Orders matching every condition set here wait for approval; a rule that sets none catches
    every order. ``approver_role`` (a role code) limits who may approve what the rule caught."""

    code: Code
    name: Name
    active: bool = True
    min_amount: Decimal | None = None
    min_discount_ratio: Decimal | None = None
    uses_credit: bool = False
    customers: CustomerScopeBody = msgspec.field(default_factory=CustomerScopeBody)
    products: ProductScopeBody = msgspec.field(default_factory=ProductScopeBody)
    channels: Channels = []
    approver_role: Label | None = None

    def __post_init__(self) -> None:
        _check_numbers(self)


class ApprovalRulePatch(Input):
    name: Name | UnsetType = UNSET
    active: bool | UnsetType = UNSET
    min_amount: Decimal | UnsetType | None = UNSET
    min_discount_ratio: Decimal | UnsetType | None = UNSET
    uses_credit: bool | UnsetType = UNSET
    customers: CustomerScopeBody | UnsetType = UNSET
    products: ProductScopeBody | UnsetType = UNSET
    channels: Channels | UnsetType = UNSET
    approver_role: Label | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        _check_numbers(self)


class ApprovalRuleOut(msgspec.Struct, kw_only=True):
    id: UUID
    code: str
    name: str
    active: bool
    min_amount: Decimal | None
    min_discount_ratio: Decimal | None
    uses_credit: bool
    customers: CustomerScopeBody
    products: ProductScopeBody
    channels: list[str]
    approver_role: str | None
    version: int
    created_at: datetime


class ApprovalRulePage(msgspec.Struct, kw_only=True):
    items: list[ApprovalRuleOut]
    next_cursor: str | None


class OrderFactsIn(Input, kw_only=True):
    """A trial order for the rules: what they would say about it (changes nothing)."""

    customer_id: UUID
    channel: Label | None = None
    gross: Decimal
    amount: Decimal
    credit_amount: Decimal = Decimal(0)
    sku_ids: Annotated[list[UUID], msgspec.Meta(max_length=1000)] = []

    def __post_init__(self) -> None:
        for field in ("gross", "amount", "credit_amount"):
            check_decimal(field, getattr(self, field), places=2)


class ApprovalMatchOut(msgspec.Struct, kw_only=True):
    rule_id: UUID
    code: str
    reason: str
    approver_role: str | None


class ApprovalVerdictOut(msgspec.Struct, kw_only=True):
    needs_approval: bool
    matches: list[ApprovalMatchOut]
