"""Promotions, coupon templates and coupon codes over REST (see docs/promotions.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from omnicloud.catalog.api import Text
from omnicloud.core.deps import Cursor, Limit, Session, page_limit
from omnicloud.core.http import idempotent, if_match, requires
from omnicloud.policies.promos import service
from omnicloud.policies.promos.schemas import (
    CodeState,
    CouponCodeOut,
    CouponCodePage,
    CouponIssue,
    CouponIssueResult,
    CouponTemplateIn,
    CouponTemplateOut,
    CouponTemplatePage,
    CouponTemplatePatch,
    PromotionIn,
    PromotionOut,
    PromotionPage,
    PromotionPatch,
    PromotionStatus,
    PromotionType,
    TemplateStatus,
)

READ = [requires("promotions:read")]
WRITE = [requires("promotions:write")]
ActiveOn = Annotated[
    datetime | None,
    QueryParameter(
        name="active_on",
        description="Only active promotions whose validity holds at this instant (with a timezone)",
    ),
]


class PromotionController(Controller):
    path = "/api/v1/promotions"
    tags = ["promotions"]

    @get("/", operation_id="listPromotions", summary="List promotions", guards=READ)
    async def list_promotions(
        self,
        session: Session,
        state: State,
        type: FromQuery[PromotionType | None] = None,
        status: FromQuery[PromotionStatus | None] = None,
        active_on: ActiveOn = None,
        q: Text = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> PromotionPage:
        items, nxt = await service.list_promotions(
            session,
            cursor,
            page_limit(state, limit),
            type=type,
            status=status,
            active_on=active_on,
            q=q,
        )
        return PromotionPage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="createPromotion",
        summary="Create a promotion",
        description="`rule` holds the fields of `type` and is checked by the promotion engine; any "
        "problem is a 422 naming the field (e.g. `rule.tiers[1].threshold`). SKUs, categories, "
        "brands, customers and regions it names must exist.",
        guards=WRITE,
    )
    async def create_promotion(
        self, request: Request[Any, Any, Any], data: JSONBody[PromotionIn], session: Session
    ) -> Response[PromotionOut]:
        return await idempotent(request, session, lambda: service.create_promotion(session, data))

    @get("/{promotion_id:uuid}", operation_id="getPromotion", summary="Show a promotion", guards=READ)
    async def get_promotion(self, promotion_id: FromPath[UUID], session: Session) -> PromotionOut:
        return await service.get_promotion(session, promotion_id)

    @patch(
        "/{promotion_id:uuid}",
        operation_id="updatePromotion",
        summary="Change a promotion",
        description="Needs If-Match with the version you read (428 without, 412 when stale). `rule` "
        "is replaced as a whole and checked against the promotion's (new) type.",
        guards=WRITE,
    )
    async def update_promotion(
        self,
        promotion_id: FromPath[UUID],
        data: JSONBody[PromotionPatch],
        request: Request[Any, Any, Any],
        session: Session,
    ) -> PromotionOut:
        return await service.update_promotion(session, promotion_id, data, _version(request))

    @delete(
        "/{promotion_id:uuid}",
        operation_id="deletePromotion",
        summary="Delete a promotion no order has used",
        description="Needs If-Match. A promotion whose budget orders have used is a 409: end it "
        "instead (PATCH `status: ended`), so the orders that used it keep their reference.",
        guards=WRITE,
    )
    async def delete_promotion(
        self, promotion_id: FromPath[UUID], request: Request[Any, Any, Any], session: Session
    ) -> None:
        await service.delete_promotion(session, promotion_id, _version(request))


class CouponTemplateController(Controller):
    path = "/api/v1/coupon-templates"
    tags = ["promotions"]

    @get("/", operation_id="listCouponTemplates", summary="List coupon templates", guards=READ)
    async def list_templates(
        self,
        session: Session,
        state: State,
        status: FromQuery[TemplateStatus | None] = None,
        q: Text = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> CouponTemplatePage:
        items, nxt = await service.list_coupon_templates(
            session, cursor, page_limit(state, limit), status=status, q=q
        )
        return CouponTemplatePage(items=items, next_cursor=nxt)

    @post("/", operation_id="createCouponTemplate", summary="Create a coupon template", guards=WRITE)
    async def create_template(
        self, request: Request[Any, Any, Any], data: JSONBody[CouponTemplateIn], session: Session
    ) -> Response[CouponTemplateOut]:
        return await idempotent(request, session, lambda: service.create_coupon_template(session, data))

    @get(
        "/{coupon_template_id:uuid}",
        operation_id="getCouponTemplate",
        summary="Show a coupon template with its issued count",
        guards=READ,
    )
    async def get_template(self, coupon_template_id: FromPath[UUID], session: Session) -> CouponTemplateOut:
        return await service.get_coupon_template(session, coupon_template_id)

    @patch(
        "/{coupon_template_id:uuid}",
        operation_id="updateCouponTemplate",
        summary="Change a coupon template",
        description="Needs If-Match (428 without, 412 when stale). `total_quantity` cannot drop "
        "below the codes already issued.",
        guards=WRITE,
    )
    async def update_template(
        self,
        coupon_template_id: FromPath[UUID],
        data: JSONBody[CouponTemplatePatch],
        request: Request[Any, Any, Any],
        session: Session,
    ) -> CouponTemplateOut:
        return await service.update_coupon_template(session, coupon_template_id, data, _version(request))

    @post(
        "/{coupon_template_id:uuid}/issue",
        operation_id="issueCouponCodes",
        summary="Issue coupon codes to customers, or unassigned",
        description="Send an Idempotency-Key. Issues `quantity` codes to each of `customer_ids`, or "
        "`quantity` unassigned codes; all or nothing. More than the template's `total_quantity` "
        "allows is a 409 `coupons_exhausted`; more than its `per_customer_limit` for a customer a "
        "409 `per_customer_limit`; a paused, ended or expired template a 409.",
        guards=WRITE,
    )
    async def issue(
        self,
        coupon_template_id: FromPath[UUID],
        request: Request[Any, Any, Any],
        data: JSONBody[CouponIssue],
        session: Session,
    ) -> Response[CouponIssueResult]:
        return await idempotent(
            request, session, lambda: service.issue_coupon_codes(session, coupon_template_id, data)
        )


class CouponCodeController(Controller):
    path = "/api/v1/coupon-codes"
    tags = ["promotions"]

    @get("/", operation_id="listCouponCodes", summary="List issued coupon codes", guards=READ)
    async def list_codes(
        self,
        session: Session,
        state: State,
        template_id: FromQuery[UUID | None] = None,
        customer_id: FromQuery[UUID | None] = None,
        code_state: Annotated[
            CodeState | None, QueryParameter(name="state", description="issued, reserved, redeemed or void")
        ] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> CouponCodePage:
        items, nxt = await service.list_coupon_codes(
            session,
            cursor,
            page_limit(state, limit),
            template_id=template_id,
            customer_id=customer_id,
            state=code_state,
        )
        return CouponCodePage(items=items, next_cursor=nxt)

    @get(
        "/{coupon_code_id:uuid}",
        operation_id="getCouponCode",
        summary="Show a coupon code and its state",
        guards=READ,
    )
    async def get_code(self, coupon_code_id: FromPath[UUID], session: Session) -> CouponCodeOut:
        return await service.get_coupon_code(session, coupon_code_id)

    @post(
        "/{coupon_code_id:uuid}/void",
        operation_id="voidCouponCode",
        summary="Withdraw an unused coupon code",
        description="Needs If-Match. Only an issued code can be voided: a reserved, redeemed or "
        "void one is a 409.",
        guards=WRITE,
        status_code=200,
    )
    async def void(
        self, coupon_code_id: FromPath[UUID], request: Request[Any, Any, Any], session: Session
    ) -> CouponCodeOut:
        return await service.void_coupon_code(session, coupon_code_id, _version(request))


def _version(request: Request[Any, Any, Any]) -> int:
    version = if_match(request)
    assert version is not None  # required: if_match answers 428 without it
    return version


ROUTES: list[Any] = [PromotionController, CouponTemplateController, CouponCodeController]
