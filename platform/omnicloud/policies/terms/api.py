"""Commercial terms over REST: credit profiles and their temporary lines, credit rules, rebate
policies with a preview, expense offset ratios. Updates and deletes need If-Match (428 without,
412 when stale); GETs carry the version in an ETag."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody

from omnicloud.catalog.api import with_etag
from omnicloud.core.deps import Cursor, Limit, Session, page_limit
from omnicloud.core.http import idempotent, if_match, requires
from omnicloud.policies.terms import service
from omnicloud.policies.terms.schemas import (
    CreditProfileIn,
    CreditProfileOut,
    CreditProfilePage,
    CreditProfilePatch,
    CreditRuleIn,
    CreditRuleOut,
    CreditRulePage,
    CreditRulePatch,
    OffsetRatioIn,
    OffsetRatioOut,
    OffsetRatioPage,
    OffsetRatioPatch,
    Period,
    PolicyStatus,
    RebatePolicyIn,
    RebatePolicyOut,
    RebatePolicyPage,
    RebatePolicyPatch,
    RebatePreviewIn,
    RebatePreviewOut,
    TemporaryLineIn,
    TemporaryLineOut,
)

STALE = "Without If-Match: 428. With a stale version: 412."


def _version(request: Request[Any, Any, Any]) -> int:
    version = if_match(request)
    assert version is not None
    return version


class CreditProfileController(Controller):
    path = "/api/v1/credit-profiles"
    tags = ["credit"]

    @get(
        "/",
        operation_id="listCreditProfiles",
        summary="List credit profiles with their temporary lines",
        guards=[requires("credit:read")],
    )
    async def list_profiles(
        self,
        session: Session,
        state: State,
        customer_id: FromQuery[UUID | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> CreditProfilePage:
        items, nxt = await service.list_credit_profiles(
            session, cursor, page_limit(state, limit), customer_id=customer_id
        )
        return CreditProfilePage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="createCreditProfile",
        summary="Give a customer a credit line, optionally for one sales org",
        description="One profile per customer and sales org (or none): a second one is a 409.",
        guards=[requires("credit:write")],
    )
    async def create_profile(
        self, request: Request[Any, Any, Any], data: JSONBody[CreditProfileIn], session: Session
    ) -> Response[CreditProfileOut]:
        return await idempotent(request, session, lambda: service.create_credit_profile(session, data))

    @get(
        "/{credit_profile_id:uuid}",
        operation_id="getCreditProfile",
        summary="Show a credit profile, its temporary lines and the credit line valid today",
        guards=[requires("credit:read")],
    )
    async def get_profile(
        self, credit_profile_id: FromPath[UUID], session: Session
    ) -> Response[CreditProfileOut]:
        return with_etag(await service.get_credit_profile(session, credit_profile_id))

    @patch(
        "/{credit_profile_id:uuid}",
        operation_id="updateCreditProfile",
        summary="Change a credit limit, credit days or grace days (If-Match: the version you read)",
        description=STALE,
        guards=[requires("credit:write")],
    )
    async def update_profile(
        self,
        credit_profile_id: FromPath[UUID],
        data: JSONBody[CreditProfilePatch],
        request: Request[Any, Any, Any],
        session: Session,
    ) -> Response[CreditProfileOut]:
        version = _version(request)
        return with_etag(await service.update_credit_profile(session, credit_profile_id, data, version))

    @post(
        "/{credit_profile_id:uuid}/temporary-lines",
        operation_id="createTemporaryCreditLine",
        summary="Add a temporary credit line valid up to and including expires_on",
        description="An expires_on in the past is a 422. The profile's version moves on.",
        guards=[requires("credit:write")],
    )
    async def add_line(
        self,
        credit_profile_id: FromPath[UUID],
        request: Request[Any, Any, Any],
        data: JSONBody[TemporaryLineIn],
        session: Session,
    ) -> Response[TemporaryLineOut]:
        return await idempotent(
            request, session, lambda: service.add_temporary_line(session, credit_profile_id, data)
        )

    @delete(
        "/{credit_profile_id:uuid}/temporary-lines/{credit_line_id:uuid}",
        operation_id="deleteTemporaryCreditLine",
        summary="Withdraw a temporary credit line; answers the profile as it is now",
        guards=[requires("credit:write")],
        status_code=200,
    )
    async def delete_line(
        self, credit_profile_id: FromPath[UUID], credit_line_id: FromPath[UUID], session: Session
    ) -> Response[CreditProfileOut]:
        return with_etag(await service.delete_temporary_line(session, credit_profile_id, credit_line_id))


class CreditRuleController(Controller):
    path = "/api/v1/credit-rules"
    tags = ["credit"]

    @get("/", operation_id="listCreditRules", summary="List credit rules", guards=[requires("credit:read")])
    async def list_rules(
        self, session: Session, state: State, limit: Limit = None, cursor: Cursor = None
    ) -> CreditRulePage:
        items, nxt = await service.list_credit_rules(session, cursor, page_limit(state, limit))
        return CreditRulePage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="createCreditRule",
        summary="Set the over-limit and overdue actions at a check point, optionally for a customer class",
        description="One rule per check point and class (or none): a second one is a 409.",
        guards=[requires("credit:write")],
    )
    async def create_rule(
        self, request: Request[Any, Any, Any], data: JSONBody[CreditRuleIn], session: Session
    ) -> Response[CreditRuleOut]:
        return await idempotent(request, session, lambda: service.create_credit_rule(session, data))

    @get(
        "/{credit_rule_id:uuid}",
        operation_id="getCreditRule",
        summary="Show a credit rule",
        guards=[requires("credit:read")],
    )
    async def get_rule(self, credit_rule_id: FromPath[UUID], session: Session) -> Response[CreditRuleOut]:
        return with_etag(await service.get_credit_rule(session, credit_rule_id))

    @patch(
        "/{credit_rule_id:uuid}",
        operation_id="updateCreditRule",
        summary="Change a credit rule (If-Match: the version you read)",
        description=STALE + " Moving it onto another rule's check point and class is a 409.",
        guards=[requires("credit:write")],
    )
    async def update_rule(
        self,
        credit_rule_id: FromPath[UUID],
        data: JSONBody[CreditRulePatch],
        request: Request[Any, Any, Any],
        session: Session,
    ) -> Response[CreditRuleOut]:
        version = _version(request)
        return with_etag(await service.update_credit_rule(session, credit_rule_id, data, version))

    @delete(
        "/{credit_rule_id:uuid}",
        operation_id="deleteCreditRule",
        summary="Delete a credit rule (If-Match: the version you read)",
        description=STALE,
        guards=[requires("credit:write")],
    )
    async def delete_rule(
        self, credit_rule_id: FromPath[UUID], request: Request[Any, Any, Any], session: Session
    ) -> None:
        await service.delete_credit_rule(session, credit_rule_id, _version(request))


class RebatePolicyController(Controller):
    path = "/api/v1/rebate-policies"
    tags = ["rebates"]

    @get(
        "/",
        operation_id="listRebatePolicies",
        summary="List rebate policies",
        guards=[requires("rebates:read")],
    )
    async def list_policies(
        self,
        session: Session,
        state: State,
        status: FromQuery[PolicyStatus | None] = None,
        period: FromQuery[Period | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> RebatePolicyPage:
        items, nxt = await service.list_rebate_policies(
            session, cursor, page_limit(state, limit), status=status, period=period
        )
        return RebatePolicyPage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="createRebatePolicy",
        summary="Create a rebate policy",
        description="A policy that cannot be computed (target 0 unless flat, tiers out of order, a custom "
        "period without dates) is a 422 naming the field. A code already used is a 409.",
        guards=[requires("rebates:write")],
    )
    async def create_policy(
        self, request: Request[Any, Any, Any], data: JSONBody[RebatePolicyIn], session: Session
    ) -> Response[RebatePolicyOut]:
        return await idempotent(request, session, lambda: service.create_rebate_policy(session, data))

    @get(
        "/{rebate_policy_id:uuid}",
        operation_id="getRebatePolicy",
        summary="Show a rebate policy",
        guards=[requires("rebates:read")],
    )
    async def get_policy(
        self, rebate_policy_id: FromPath[UUID], session: Session
    ) -> Response[RebatePolicyOut]:
        return with_etag(await service.get_rebate_policy(session, rebate_policy_id))

    @patch(
        "/{rebate_policy_id:uuid}",
        operation_id="updateRebatePolicy",
        summary="Change a rebate policy (If-Match: the version you read)",
        description=STALE + " The policy as changed is validated as a whole.",
        guards=[requires("rebates:write")],
    )
    async def update_policy(
        self,
        rebate_policy_id: FromPath[UUID],
        data: JSONBody[RebatePolicyPatch],
        request: Request[Any, Any, Any],
        session: Session,
    ) -> Response[RebatePolicyOut]:
        version = _version(request)
        return with_etag(await service.update_rebate_policy(session, rebate_policy_id, data, version))

    @post(
        "/{rebate_policy_id:uuid}/preview",
        operation_id="previewRebatePolicy",
        summary="What would this policy pay a customer for a period, given these sales? Changes nothing",
        description="Sales count net of returns; lines outside the product scope do not count; a "
        "customer outside the customer scope gets 0 and the answer says why.",
        guards=[requires("rebates:read")],
        status_code=200,
    )
    async def preview(
        self, rebate_policy_id: FromPath[UUID], data: JSONBody[RebatePreviewIn], session: Session
    ) -> RebatePreviewOut:
        return await service.preview_rebate(session, rebate_policy_id, data)


class OffsetRatioController(Controller):
    path = "/api/v1/offset-ratios"
    tags = ["fees"]

    @get(
        "/",
        operation_id="listOffsetRatios",
        summary="List expense offset ratios",
        guards=[requires("fees:read")],
    )
    async def list_ratios(
        self,
        session: Session,
        state: State,
        customer_id: FromQuery[UUID | None] = None,
        sales_org_id: FromQuery[UUID | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> OffsetRatioPage:
        items, nxt = await service.list_offset_ratios(
            session, cursor, page_limit(state, limit), customer_id=customer_id, sales_org_id=sales_org_id
        )
        return OffsetRatioPage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="createOffsetRatio",
        summary="Set how much of a line fees may pay, per customer or sales org and SKU or category",
        description="Leave out the party for every customer and the product for every product. The same "
        "dimensions twice are a 409.",
        guards=[requires("fees:write")],
    )
    async def create_ratio(
        self, request: Request[Any, Any, Any], data: JSONBody[OffsetRatioIn], session: Session
    ) -> Response[OffsetRatioOut]:
        return await idempotent(request, session, lambda: service.create_offset_ratio(session, data))

    @get(
        "/{offset_ratio_id:uuid}",
        operation_id="getOffsetRatio",
        summary="Show an expense offset ratio",
        guards=[requires("fees:read")],
    )
    async def get_ratio(self, offset_ratio_id: FromPath[UUID], session: Session) -> Response[OffsetRatioOut]:
        return with_etag(await service.get_offset_ratio(session, offset_ratio_id))

    @patch(
        "/{offset_ratio_id:uuid}",
        operation_id="updateOffsetRatio",
        summary="Change an expense offset ratio (If-Match: the version you read)",
        description=STALE,
        guards=[requires("fees:write")],
    )
    async def update_ratio(
        self,
        offset_ratio_id: FromPath[UUID],
        data: JSONBody[OffsetRatioPatch],
        request: Request[Any, Any, Any],
        session: Session,
    ) -> Response[OffsetRatioOut]:
        version = _version(request)
        return with_etag(await service.update_offset_ratio(session, offset_ratio_id, data, version))

    @delete(
        "/{offset_ratio_id:uuid}",
        operation_id="deleteOffsetRatio",
        summary="Delete an expense offset ratio (If-Match: the version you read)",
        description=STALE,
        guards=[requires("fees:write")],
    )
    async def delete_ratio(
        self, offset_ratio_id: FromPath[UUID], request: Request[Any, Any, Any], session: Session
    ) -> None:
        await service.delete_offset_ratio(session, offset_ratio_id, _version(request))


ROUTES: list[Any] = [
    CreditProfileController,
    CreditRuleController,
    RebatePolicyController,
    OffsetRatioController,
]
