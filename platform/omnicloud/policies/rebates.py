"""Rebate (返利) accrual and redemption: pure arithmetic over a policy, no storage."""

from collections.abc import Iterable
from decimal import ROUND_DOWN, Decimal
from typing import Literal

import msgspec

from omnicloud.core.money import CENT, round_money

RebateMode = Literal["retroactive", "incremental", "flat"]
RATIO_PLACES = Decimal("0.0001")


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


class CustomerScope(msgspec.Struct, frozen=True, kw_only=True):
    """Whom a policy covers: every list that is not empty must match (so an empty scope covers
    every customer); a region matches the customer's region or any of its ancestors."""

    customer_ids: frozenset[str] = frozenset()
    customer_classes: frozenset[str] = frozenset()
    levels: frozenset[str] = frozenset()
    region_ids: frozenset[str] = frozenset()

    def covers(
        self, *, customer_id: str, customer_class: str | None, level: str | None, region_path: Iterable[str]
    ) -> bool:
        return (
            (not self.customer_ids or customer_id in self.customer_ids)
            and (not self.customer_classes or customer_class in self.customer_classes)
            and (not self.levels or level in self.levels)
            and (not self.region_ids or not self.region_ids.isdisjoint(region_path))
        )


class ProductScope(msgspec.Struct, frozen=True, kw_only=True):
    """Which sales count towards a policy: every list that is not empty must match; a category
    matches the product's own category or any of its ancestors."""

    sku_ids: frozenset[str] = frozenset()
    category_ids: frozenset[str] = frozenset()
    brand_ids: frozenset[str] = frozenset()

    def covers(self, *, sku_id: str, category_path: Iterable[str], brand_id: str | None) -> bool:
        return (
            (not self.sku_ids or sku_id in self.sku_ids)
            and (not self.category_ids or not self.category_ids.isdisjoint(category_path))
            and (not self.brand_ids or brand_id in self.brand_ids)
        )


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


class RebateSlice(msgspec.Struct, frozen=True, kw_only=True):
    """The part of the achieved amount (``base``) that earns ``rate``, from the tier at ``achievement``;
    ``rebate`` is rounded to the cent for display (the accrual is rounded once, on the total)."""

    achievement: Decimal
    rate: Decimal
    base: Decimal
    rebate: Decimal


class RebateBreakdown(msgspec.Struct, frozen=True, kw_only=True):
    """How an accrual came about: the achievement, the tier reached, each slice and the cap."""

    achieved_amount: Decimal
    achievement_ratio: Decimal | None  # achieved / target, floored to 4 places; None for flat
    reached_tier: RebateTier | None
    slices: tuple[RebateSlice, ...]
    uncapped: Decimal
    accrual: Decimal
    capped: bool


def _slice(tier: RebateTier, base: Decimal) -> RebateSlice:
    return RebateSlice(
        achievement=tier.achievement, rate=tier.rate, base=base, rebate=round_money(base * tier.rate)
    )


def breakdown(policy: RebatePolicy, achieved_amount: Decimal) -> RebateBreakdown:
    """The rebate earned on ``achieved_amount`` (net of returns) for one period, with its workings."""
    validate_policy(policy)
    if achieved_amount < 0:
        raise ValueError("achieved_amount must not be negative; returns after settlement accrue separately")
    ratio: Decimal | None = None
    slices: list[RebateSlice] = []
    if policy.mode == "flat":
        reached: RebateTier | None = policy.tiers[0]
        slices.append(_slice(policy.tiers[0], achieved_amount))
        exact = achieved_amount * policy.tiers[0].rate
    else:
        exact_ratio = achieved_amount / policy.target
        ratio = exact_ratio.quantize(RATIO_PLACES, rounding=ROUND_DOWN)
        passed = [t for t in policy.tiers if t.achievement <= exact_ratio]
        reached = passed[-1] if passed else None
        if policy.mode == "retroactive":
            exact = achieved_amount * reached.rate if reached else Decimal(0)
            if reached:
                slices.append(_slice(reached, achieved_amount))
        else:
            exact = Decimal(0)
            bounds = [t.achievement * policy.target for t in policy.tiers]
            for i, tier in enumerate(policy.tiers):
                upper = bounds[i + 1] if i + 1 < len(bounds) else None
                top = achieved_amount if upper is None else min(achieved_amount, upper)
                if top > bounds[i]:
                    exact += (top - bounds[i]) * tier.rate
                    slices.append(_slice(tier, top - bounds[i]))
    capped = policy.cap is not None and exact > policy.cap
    return RebateBreakdown(
        achieved_amount=achieved_amount,
        achievement_ratio=ratio,
        reached_tier=reached,
        slices=tuple(slices),
        uncapped=round_money(exact),
        accrual=round_money(min(exact, policy.cap) if policy.cap is not None else exact),
        capped=capped,
    )


def accrue(policy: RebatePolicy, achieved_amount: Decimal) -> Decimal:
    """The rebate earned on ``achieved_amount`` (net of returns) for one period, rounded to the cent."""
    return breakdown(policy, achieved_amount).accrual


def usable(
    balance: Decimal, order_amount: Decimal, usage_cap_ratio: Decimal, eligible_amount: Decimal
) -> Decimal:
    """min(balance, order amount × usage cap ratio, eligible lines), never negative, floored to the cent."""
    if not (0 <= usage_cap_ratio <= 1):
        raise ValueError("usage_cap_ratio must lie between 0 and 1")
    ceiling = (order_amount * usage_cap_ratio).quantize(CENT, rounding=ROUND_DOWN)
    return max(Decimal("0.00"), min(balance, ceiling, eligible_amount)).quantize(CENT, rounding=ROUND_DOWN)
