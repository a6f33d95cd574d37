"""Quotes (报价): price a whole basket in one pass and change nothing.

The order of work is DOMAIN §1–§6: list prices through the access sequence (lines it cannot price
go to the tenant's pricing hooks: plugins, then the SKU's list price), then promotions stage by
stage with coupons, the price floor on each line's net price, the usable expense offset and rebate
with their caps, and a credit preview at submit. Compiled price, promotion and terms books are
cached per tenant and revision, so a quote costs a bounded number of statements whatever the
number of lines and rules. B2B orders, POS and e-commerce all price through here.

Routed lines (DOMAIN §7): when the buyer sits under a dealer and a supply relation routes a SKU
to that dealer, the line is the dealer's sale: it is priced by the dealer's own lists (the
tenant's access sequence over that dealer's book), must lie inside the brand's guide price range,
and shows ``seller_customer_id``. A routed line no list of its seller prices is a 422 naming the
line (no fallback to the brand's prices). The brand's promotions and coupons, expense offset,
rebate and credit preview are the brand's and cover only brand-sold lines; the brand's price
floors bound every line.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.catalog import service as catalog
from omnicloud.catalog.schemas import UnitPrice, check_decimal
from omnicloud.channels import service as channels
from omnicloud.core import revisions
from omnicloud.core.db import utcnow
from omnicloud.core.errors import Forbidden, Unprocessable, field_error, invalid
from omnicloud.core.money import round_money
from omnicloud.core.security import Principal
from omnicloud.core.tenancy import require_tenant
from omnicloud.distribution import service as distribution
from omnicloud.policies import pricing, promotions, rebates
from omnicloud.policies.allocation import allocate
from omnicloud.policies.offset import OffsetLine, line_cap
from omnicloud.policies.prices import service as prices
from omnicloud.policies.promos import service as promos
from omnicloud.policies.quotes.schemas import (
    AppliedOut,
    Band,
    CreditOut,
    FeesOut,
    FloorCheck,
    GiftLineOut,
    LineDiscount,
    NotApplicableOut,
    PriceSource,
    QuoteIn,
    QuoteLineIn,
    QuoteLineOut,
    QuoteOut,
    RebateOut,
    SellerOut,
    StageOut,
    TotalsOut,
)
from omnicloud.policies.terms import service as terms

ZERO = Decimal("0.00")
TOPICS = ("prices", "promotions", "terms", distribution.TOPIC)
FLOOR_SEVERITY = {"pass": 0, "warn": 1, "needs_approval": 2, "block": 3}


class _Line:
    """One request line while it is being priced."""

    def __init__(self, position: int, raw: QuoteLineIn, facts: catalog.SkuFacts, unit_id: UUID) -> None:
        self.position = position
        self.line_id = raw.line_id or str(position + 1)
        self.raw = raw
        self.facts = facts
        self.unit_id = unit_id
        self.base_quantity = raw.quantity * facts.factors[unit_id]
        self.list_price = ZERO
        self.source: PriceSource | None = None
        self.seller: UUID | None = None  # None: the brand sells it


async def quote(
    session: AsyncSession,
    plugins: Any,
    principal: Principal,
    data: QuoteIn,
    *,
    max_lines: int,
    credit_preview: bool = True,
) -> QuoteOut:
    """Price ``data``. An order that checks credit on its own payment plan passes
    ``credit_preview=False`` and gets ``credit=None``."""
    _check_numbers(data, max_lines)
    party = await _party(session, principal, data.customer_id)
    today = utcnow().date()
    day = data.date or today
    # Promotions run on timestamps: today's quote at this moment, another day's at its start.
    now = utcnow() if day == today else datetime.combine(day, time.min, tzinfo=UTC)
    channel = data.channel or (party.channel if party else None)
    revs = await revisions.current(session, TOPICS)
    lines = await _lines(session, data)
    if party is not None:
        book_of_rights = await distribution.authorization_book(session, revs[distribution.TOPIC])
        denied = distribution.unauthorized_in(book_of_rights, party, (ln.facts for ln in lines), day)
        if denied:
            raise Unprocessable(
                "the customer is not authorised to buy some of these products",
                code="not_authorized",
                errors=[
                    field_error(f"lines[{ln.position}].sku_id", "not authorised for this customer (商品授权)")
                    for ln in lines
                    if ln.facts.sku_id in denied
                ],
            )

    if party is not None:
        await _route(session, party.customer_id, lines, day)
    brand_lines = [ln for ln in lines if ln.seller is None]
    book = await prices.price_book(session, revs["prices"])
    context = pricing.PricingContext(
        date=day,
        customer_id=_s(party.customer_id) if party else None,
        customer_class=party.customer_class if party else None,
        level=party.level if party else None,
        region_path=tuple(str(r) for r in party.region_path) if party else (),
        channel=channel,
        sales_org_id=_s(party.sales_org_id) if party else None,
    )
    priced = pricing.price_order(book.index, context, [_price_line(ln) for ln in brand_lines])
    unpriced = []
    for ln, result in zip(brand_lines, priced, strict=True):
        if result.unit_price is None or result.explanation is None:
            unpriced.append(ln)
            continue
        ln.list_price = result.unit_price
        ln.source = _list_source(book, result.explanation)
    if len(brand_lines) < len(lines):
        await _seller_prices(session, [ln for ln in lines if ln.seller is not None], context)
    if unpriced:
        await _hook_prices(session, plugins, unpriced, party.customer_id if party else None, now)

    promotion_book = await promos.promotion_book(session, revs["promotions"])
    audience = {
        "now": now,
        "customer_id": context.customer_id,
        "customer_class": context.customer_class,
        "level": context.level,
        "region_path": context.region_path,
        "channel": channel,
        "store_id": None,
    }
    offered = promos.promotions_for(promotion_book, **audience)  # type: ignore[arg-type]
    not_applicable = {
        pid: promos.BUDGET_EXHAUSTED
        for pid in promos.exhausted_for(promotion_book, **audience)  # type: ignore[arg-type]
    }
    usage = await promos.usage_for(
        session,
        promotion_book,
        [p.promotion_id for p in offered],
        customer_id=party.customer_id if party else None,
    )
    not_applicable.update({pid: u.reason for pid, u in usage.items() if u.reason is not None})
    offered = [p for p in offered if p.promotion_id not in not_applicable]
    addons = {p.promotion_id for p in offered if isinstance(p, promotions.AddOnPurchase)}
    bad_addons = [
        field_error(f"lines[{ln.position}].addon_of", "no add-on promotion with this id is offered here")
        for ln in lines
        if ln.raw.addon_of is not None and str(ln.raw.addon_of) not in addons
    ]
    if bad_addons:
        raise Unprocessable("some lines name an add-on promotion that is not offered", errors=bad_addons)
    coupons = await promos.coupons_for(
        session, list(data.coupon_codes), customer_id=party.customer_id if party else None, now=now
    )
    try:
        outcome = _apply(brand_lines, offered, coupons, now, usage, not_applicable)
        if len(brand_lines) < len(lines):  # dealer-sold lines take no brand promotion
            dealer_sold = promotions.apply_promotions(
                [_promotion_line(ln) for ln in lines if ln.seller is not None], [], [], now
            )
            outcome = _merged(outcome, dealer_sold)
    except ValueError as exc:  # configurations are validated when saved; this guards the request
        raise Unprocessable(str(exc), code="unpriceable") from None
    results = {r.line_id: r for r in outcome.lines}

    terms_book = await terms.terms_book(session, revs["terms"])
    payable = [results[ln.line_id].payable for ln in lines]
    caps = [
        line_cap(
            OffsetLine(
                line_id=ln.line_id,
                amount=amount,
                ratio=terms.offset_ratio_for(
                    terms_book,
                    customer_id=context.customer_id or "",
                    sales_org_id=context.sales_org_id,
                    sku_id=str(ln.facts.sku_id),
                    category_ids=tuple(str(c) for c in ln.facts.categories),
                ),
            )
        )
        if party and ln.seller is None
        else ZERO
        for ln, amount in zip(lines, payable, strict=True)
    ]
    fees = _fees(data.use_fees or ZERO, caps)
    fee_shares = _spread(fees.usable, caps)
    after_fees = [p - f for p, f in zip(payable, fee_shares, strict=True)]
    brand_after_fees = [a if ln.seller is None else ZERO for ln, a in zip(lines, after_fees, strict=True)]
    brand_payable = sum((p for ln, p in zip(lines, payable, strict=True) if ln.seller is None), ZERO)
    rebate = _rebate(
        data.use_rebate or ZERO,
        brand_payable,
        sum(brand_after_fees, ZERO),
        terms.rebate_usage_cap_ratio(
            terms_book,
            customer_id=context.customer_id or "",
            customer_class=context.customer_class,
            level=context.level,
            region_path=context.region_path,
            day=day,
        )
        if party
        else ZERO,
    )
    rebate_shares = _spread(rebate.usable, brand_after_fees)
    due = outcome.payable - fees.usable - rebate.usable

    out_lines: list[QuoteLineOut] = []
    verdict = "pass"
    for i, ln in enumerate(lines):
        result = results[ln.line_id]
        net = round_money(result.payable / ln.raw.quantity)
        floor = prices.floor_for(book, str(ln.facts.sku_id), str(ln.unit_id), day)
        check = None
        if floor is not None:
            v = pricing.check_floor(net, floor.price, floor.action)  # type: ignore[arg-type]
            check = FloorCheck(
                floor_price=floor.price, action=floor.action, outcome=v.outcome, shortfall=v.shortfall
            )
            if FLOOR_SEVERITY[v.outcome] > FLOOR_SEVERITY[verdict]:
                verdict = v.outcome
        assert ln.source is not None
        out_lines.append(
            QuoteLineOut(
                line_id=ln.line_id,
                sku_id=ln.facts.sku_id,
                unit_id=ln.unit_id,
                quantity=ln.raw.quantity,
                base_quantity=ln.base_quantity,
                list_price=ln.list_price,
                gross=result.gross,
                price_source=ln.source,
                discounts=[
                    LineDiscount(promotion_id=a.promotion_id, stage=a.stage, amount=a.amount)
                    for a in result.allocations
                ],
                payable=result.payable,
                net_unit_price=net,
                floor=check,
                fee_cap=caps[i],
                fee_offset=fee_shares[i],
                rebate=rebate_shares[i],
                due=after_fees[i] - rebate_shares[i],
                seller_customer_id=ln.seller,
            )
        )
    credit = None
    if party is not None and credit_preview:
        verdict_credit = await terms.credit_preview(
            session,
            terms_book,
            customer_id=party.customer_id,
            customer_class=party.customer_class,
            amount=brand_payable - fees.usable - rebate.usable,
            check_point="submit",
            today=day,
            sales_org_id=party.sales_org_id,
        )
        if verdict_credit is not None:
            credit = CreditOut(
                check_point="submit",
                action=verdict_credit.action,
                exposure=verdict_credit.exposure,
                credit_line=verdict_credit.credit_line,
                available=verdict_credit.available,
                over_by=verdict_credit.over_by,
                overdue=[r.id for r in verdict_credit.overdue],
                reasons=list(verdict_credit.reasons),
            )
    return QuoteOut(
        customer_id=party.customer_id if party else None,
        channel=channel,
        date=day,
        lines=out_lines,
        gift_lines=[
            GiftLineOut(
                line_id=g.line_id,
                sku_id=UUID(g.sku_id),
                quantity=Decimal(g.quantity),
                promotion_id=g.line_id.removeprefix("gift:"),
            )
            for g in outcome.gift_lines
        ],
        stages=[
            StageOut(stage=s.stage, base=s.base, discount=s.discount, after=s.after)
            for s in outcome.stage_totals
        ],
        promotions=[
            AppliedOut(
                promotion_id=a.promotion_id, stage=a.stage, discount=a.discount, explanation=a.explanation
            )
            for a in outcome.applied
        ],
        fees=fees,
        rebate=rebate,
        credit=credit,
        floor_verdict=verdict,
        totals=TotalsOut(
            gross=outcome.gross,
            discount=outcome.discount,
            after_promotions=outcome.payable,
            fee_offset=fees.usable,
            rebate=rebate.usable,
            due=due,
        ),
        sellers=_sellers(lines, results),
        not_applicable=[
            NotApplicableOut(promotion_id=p, reason=r) for p, r in sorted(not_applicable.items())
        ],
    )


def _price_line(ln: _Line) -> pricing.PriceLine:
    return pricing.PriceLine(
        sku_id=str(ln.facts.sku_id),
        uom=str(ln.unit_id),
        quantity=ln.raw.quantity,
        base_quantity=ln.base_quantity,
    )


def _promotion_line(ln: _Line) -> promotions.Line:
    return promotions.Line(
        line_id=ln.line_id,
        sku_id=str(ln.facts.sku_id),
        quantity=ln.raw.quantity,
        unit_price=ln.list_price,
        category_id=_s(ln.facts.categories[0]) if ln.facts.categories else None,
        category_ancestors=tuple(str(c) for c in ln.facts.categories[1:]),
        brand_id=_s(ln.facts.brand_id),
        addon_of=_s(ln.raw.addon_of),
    )


async def _route(session: AsyncSession, buyer_id: UUID, lines: list[_Line], day: date) -> None:
    """Mark the lines a supply relation routes to a dealer. Only a buyer under a dealer can be
    supplied by one (a seller is always an ancestor), so a top-level buyer costs no statement."""
    buyer = await channels.require_customer(session, buyer_id)
    if buyer.path.strip("/").count("/") == 0:
        return
    routes = await distribution.route_supplier(
        session, buyer_id=buyer_id, sku_ids=[ln.facts.sku_id for ln in lines], region_id=None, day=day
    )
    for ln in lines:
        route = routes.get(ln.facts.sku_id)
        ln.seller = route.seller_id if route is not None else None


async def _seller_prices(session: AsyncSession, lines: list[_Line], context: pricing.PricingContext) -> None:
    """Price dealer-sold lines from each seller's own book; a line its seller has no price for,
    or whose price the brand's guide range no longer allows, is a 422 naming the line."""
    books = await prices.seller_books(session, {ln.seller for ln in lines if ln.seller is not None})
    errors: list[dict[str, Any]] = []
    points: list[distribution.PricePoint] = []
    at: list[_Line] = []
    for seller, book in books.items():
        mine = [ln for ln in lines if ln.seller == seller]
        for ln, result in zip(
            mine, pricing.price_order(book.index, context, [_price_line(ln) for ln in mine]), strict=True
        ):
            if result.unit_price is None or result.explanation is None:
                errors.append(
                    {
                        "field": f"lines[{ln.position}].sku_id",
                        "message": f"the seller {seller} has no price for this SKU",
                        "seller_customer_id": str(seller),
                    }
                )
                continue
            ln.list_price = result.unit_price
            ln.source = _list_source(book, result.explanation)
            for band in result.explanation.bands:
                points.append(
                    distribution.PricePoint(
                        sku_id=ln.facts.sku_id,
                        unit_id=ln.unit_id,
                        price=band.price,
                        valid_from=context.date,
                        valid_to=context.date,
                    )
                )
                at.append(ln)
    if errors:
        raise Unprocessable("the seller has no price for some lines", code="no_seller_price", errors=errors)
    violations = await distribution.guide_price_violations(session, points)
    if violations:
        raise Unprocessable(
            "some dealer prices are outside the brand's guide price range",
            code="outside_guide_price",
            errors=[
                {
                    "field": f"lines[{at[v.index].position}].sku_id",
                    "message": v.message,
                    "seller_customer_id": str(at[v.index].seller),
                    "guide_price_id": str(v.guide_price_id),
                }
                for v in violations
            ],
        )


def _apply(
    lines: list[_Line],
    offered: list[promotions.Promotion],
    coupons: list[promotions.Coupon],
    now: datetime,
    usage: dict[str, promos.Usage],
    not_applicable: dict[str, str],
) -> promotions.PromotionResult:
    """The brand's promotions over brand-sold lines. A promotion whose discount here would exceed
    what is left of its amount budget is left out (not applicable: budget exhausted) and the
    basket priced again, so a quote never offers what submitting would refuse."""
    while True:
        outcome = promotions.apply_promotions([_promotion_line(ln) for ln in lines], offered, coupons, now)
        over = {
            a.promotion_id
            for a in outcome.applied
            if a.stage != "coupon"
            and a.promotion_id in usage
            and usage[a.promotion_id].remaining_amount is not None
            and a.discount > usage[a.promotion_id].remaining_amount  # type: ignore[operator]
        }
        if not over:
            return outcome
        not_applicable.update(dict.fromkeys(over, promos.BUDGET_EXHAUSTED))
        offered = [p for p in offered if p.promotion_id not in over]


def _merged(
    brand: promotions.PromotionResult, dealer: promotions.PromotionResult
) -> promotions.PromotionResult:
    """Brand-sold and dealer-sold lines as one basket: stage totals add up stage by stage."""
    return promotions.PromotionResult(
        lines=[*brand.lines, *dealer.lines],
        gift_lines=brand.gift_lines,
        stage_totals=[
            promotions.StageTotal(
                stage=b.stage, base=b.base + d.base, discount=b.discount + d.discount, after=b.after + d.after
            )
            for b, d in zip(brand.stage_totals, dealer.stage_totals, strict=True)
        ],
        applied=brand.applied,
        gross=brand.gross + dealer.gross,
        discount=brand.discount + dealer.discount,
        payable=brand.payable + dealer.payable,
        explanations=brand.explanations,
    )


def _sellers(lines: list[_Line], results: dict[str, promotions.LineResult]) -> list[SellerOut]:
    """The quote split by seller, the brand first, then dealers by id."""
    by: dict[UUID | None, list[_Line]] = {}
    for ln in lines:
        by.setdefault(ln.seller, []).append(ln)
    order = sorted(by, key=lambda s: (s is not None, str(s)))
    return [
        SellerOut(
            seller_customer_id=seller,
            line_ids=[ln.line_id for ln in by[seller]],
            gross=sum((results[ln.line_id].gross for ln in by[seller]), ZERO),
            payable=sum((results[ln.line_id].payable for ln in by[seller]), ZERO),
        )
        for seller in order
    ]


def _check_numbers(data: QuoteIn, max_lines: int) -> None:
    """Quantities and amounts, each error naming its field."""
    if len(data.lines) > max_lines:
        raise invalid("lines", f"a quote takes at most {max_lines} lines")
    checks = [(f"lines[{i}].quantity", ln.quantity, 4, True) for i, ln in enumerate(data.lines)]
    checks += [("use_fees", data.use_fees, 2, False), ("use_rebate", data.use_rebate, 2, False)]
    errors = []
    for field, value, places, positive in checks:
        try:
            check_decimal(field, value, places=places, positive=positive)
        except ValueError as exc:
            errors.append(field_error(field, str(exc).removeprefix(f"{field} ")))
    if errors:
        raise Unprocessable("some numbers are out of range", code="validation_failed", errors=errors)


def _s(value: UUID | None) -> str | None:
    return None if value is None else str(value)


async def _party(
    session: AsyncSession, principal: Principal, customer_id: UUID | None
) -> channels.Party | None:
    """A dealer quotes for itself only: its own customer by default, 404 outside its subtree and
    403 for a sub-dealer (it may see them, not sell as them)."""
    if principal.is_dealer:
        customer_id = customer_id or principal.customer_id
    if customer_id is None:
        return None
    party = await channels.pricing_party(session, customer_id, principal)
    if principal.is_dealer and customer_id != principal.customer_id:
        raise Forbidden("a dealer quotes only for itself", code="dealer_quotes_for_itself")
    return party


async def _lines(session: AsyncSession, data: QuoteIn) -> list[_Line]:
    facts = await catalog.sku_facts(session, [ln.sku_id for ln in data.lines])
    errors: list[dict[str, str]] = []
    lines: list[_Line] = []
    seen: set[str] = set()
    for i, raw in enumerate(data.lines):
        known = facts.get(raw.sku_id)
        if known is None or known.status != "active":
            errors.append(field_error(f"lines[{i}].sku_id", "no such active SKU"))
            continue
        unit_id = raw.unit_id or known.base_unit_id
        if unit_id not in known.factors:
            errors.append(field_error(f"lines[{i}].unit_id", "the product has no conversion to this unit"))
            continue
        line = _Line(i, raw, known, unit_id)
        if line.line_id in seen:
            errors.append(field_error(f"lines[{i}].line_id", "line ids must be unique"))
        seen.add(line.line_id)
        lines.append(line)
    if errors:
        raise Unprocessable("some lines cannot be quoted", errors=errors)
    return lines


# A 1,000-line basket names the same few lists and entries over and over: parse each id once.
_uuid = functools.lru_cache(maxsize=65_536)(UUID)


def _list_source(book: prices.PriceBook, explanation: pricing.PriceExplanation) -> PriceSource:
    return PriceSource(
        kind="price_list",
        price_list_id=_uuid(explanation.price_list_id),
        price_list_code=book.list_codes.get(explanation.price_list_id),
        step=explanation.step,
        mode=explanation.mode,
        bands=[
            Band(
                entry_id=_uuid(b.entry_id),
                min_qty=b.min_qty,
                max_qty=b.max_qty,
                price=b.price,
                quantity=b.quantity,
            )
            for b in explanation.bands
        ],
    )


async def _hook_prices(
    session: AsyncSession, plugins: Any, lines: list[_Line], customer_id: UUID | None, at: datetime
) -> None:
    """Lines the access sequence leaves unpriced ask the tenant's pricing hooks, plugins first and
    the SKU's list price last; a line nobody prices is a 422 naming it."""
    from omnicloud.admin import service as admin
    from omnicloud.plugins import first_result

    enabled = await admin.enabled_plugins(session)
    hooks = plugins.for_tenant(frozenset(enabled))
    skus = await catalog.skus_for_pricing(session, [ln.facts.sku_id for ln in lines])
    errors = []
    for ln in lines:
        result = await first_result(
            hooks.resolve_unit_price,
            session=session,
            tenant_id=require_tenant(),
            sku=skus[ln.facts.sku_id],
            quantity=ln.base_quantity,
            customer_id=customer_id,
            at=at,
            settings=dict(enabled),
        )
        if not isinstance(result, UnitPrice):
            errors.append(field_error(f"lines[{ln.position}].sku_id", "no price applies to this SKU"))
            continue
        # Hooks price one base unit; the line's unit holds `factor` of them.
        ln.list_price = round_money(result.unit_price * ln.facts.factors[ln.unit_id])
        ln.source = PriceSource(kind="hook", source=result.source, detail=result.detail)
    if errors:
        raise Unprocessable("no price applies to some lines", code="no_price", errors=errors)


def _fees(requested: Decimal, caps: list[Decimal]) -> FeesOut:
    total = sum(caps, ZERO)
    return FeesOut(requested=requested, line_cap_total=total, usable=min(requested, total))


def _rebate(requested: Decimal, order_amount: Decimal, remaining: Decimal, ratio: Decimal) -> RebateOut:
    """DOMAIN §4 through the rebate engine; the buyer's request stands in for the balance, which
    the order draws at submit."""
    cap = rebates.usable(order_amount, order_amount, ratio, order_amount)
    return RebateOut(
        requested=requested,
        usage_cap_ratio=ratio,
        cap=cap,
        usable=rebates.usable(requested, order_amount, ratio, remaining),
    )


def _spread(amount: Decimal, weights: list[Decimal]) -> list[Decimal]:
    if amount <= 0 or sum(weights, ZERO) <= 0:
        return [ZERO for _ in weights]
    return allocate(amount, weights)
