"""Rebate (返利) accrual and redemption: pure arithmetic over a policy, no storage."""

from decimal import ROUND_DOWN, Decimal
from typing import Literal

import msgspec

from omnicloud.core.money import CENT, round_money

RebateMode = Literal["retroactive", "incremental", "flat"]


class RebatePolicyError(ValueError):
    """A rebate policy that cannot be computed (e.g. target 0 for a tiered policy)."""


class RebateTier(msgspec.Struct, frozen=True, kw_only=True):
    """From ``achievement`` (achieved / target, e.g. 0.8 = 80 %) on, ``rate`` applies."""

    achievement: Decimal
    rate: Decimal


class RebatePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """``retroactive``: the reached tier's rate on the whole amount; ``incremental``: each slice at its
    own rate; ``flat``: one rate on everything, no target."""

    mode: RebateMode
    tiers: list[RebateTier]
    target: Decimal = Decimal(0)
    cap: Decimal | None = None
    usage_cap_ratio: Decimal = Decimal(1)


def validate_policy(policy: RebatePolicy) -> None:
    """Raise RebatePolicyError naming what is wrong; returns None for a usable policy."""
    if not policy.tiers:
        raise RebatePolicyError("tiers: at least one tier is required")
    if policy.mode == "flat":
        if len(policy.tiers) != 1:
            raise RebatePolicyError("tiers: a flat policy has exactly one rate")
    elif policy.target <= 0:
        raise RebatePolicyError("target: must be greater than zero for a tiered policy")
    achievements = [t.achievement for t in policy.tiers]
    if any(a < 0 for a in achievements) or achievements != sorted(set(achievements)):
        raise RebatePolicyError("tiers: achievements must be non-negative and strictly increasing")
    if any(not (0 <= t.rate <= 1) for t in policy.tiers):
        raise RebatePolicyError("tiers: rates must lie between 0 and 1")
    if policy.cap is not None and policy.cap < 0:
        raise RebatePolicyError("cap: must not be negative")
    if not (0 <= policy.usage_cap_ratio <= 1):
        raise RebatePolicyError("usage_cap_ratio: must lie between 0 and 1")


def accrue(policy: RebatePolicy, achieved_amount: Decimal) -> Decimal:
    """The rebate earned on ``achieved_amount`` (net of returns) for one period, rounded to the cent."""
    validate_policy(policy)
    if achieved_amount < 0:
        raise ValueError("achieved_amount must not be negative; returns after settlement accrue separately")
    if policy.mode == "flat":
        rebate = achieved_amount * policy.tiers[0].rate
    elif policy.mode == "retroactive":
        ratio = achieved_amount / policy.target
        reached = [t for t in policy.tiers if t.achievement <= ratio]
        rebate = achieved_amount * reached[-1].rate if reached else Decimal(0)
    else:
        rebate = Decimal(0)
        bounds = [t.achievement * policy.target for t in policy.tiers]
        for i, tier in enumerate(policy.tiers):
            upper = bounds[i + 1] if i + 1 < len(bounds) else None
            top = achieved_amount if upper is None else min(achieved_amount, upper)
            if top > bounds[i]:
                rebate += (top - bounds[i]) * tier.rate
    if policy.cap is not None:
        rebate = min(rebate, policy.cap)
    return round_money(rebate)


def usable(
    balance: Decimal, order_amount: Decimal, usage_cap_ratio: Decimal, eligible_amount: Decimal
) -> Decimal:
    """min(balance, order amount × usage cap ratio, eligible lines), never negative, floored to the cent."""
    if not (0 <= usage_cap_ratio <= 1):
        raise ValueError("usage_cap_ratio must lie between 0 and 1")
    ceiling = (order_amount * usage_cap_ratio).quantize(CENT, rounding=ROUND_DOWN)
    return max(Decimal("0.00"), min(balance, ceiling, eligible_amount)).quantize(CENT, rounding=ROUND_DOWN)
