"""Approval rules over REST, and a trial that shows what the rules say about an order. Updates
and deletes need If-Match (428 without, 412 when stale); GETs carry the version in an ETag."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody

from omnicloud.catalog.api import with_etag
from omnicloud.core.deps import Cursor, Limit, Session, page_limit
from omnicloud.core.http import idempotent, if_match, requires
from omnicloud.policies.approvals import service
from omnicloud.policies.approvals.schemas import (
    ApprovalRuleIn,
    ApprovalRuleOut,
    ApprovalRulePage,
    ApprovalRulePatch,
    ApprovalVerdictOut,
    OrderFactsIn,
)

STALE = "Without If-Match: 428. With a stale version: 412."
READ = [requires("approvals:read")]
WRITE = [requires("approvals:write")]


def _version(request: Request[Any, Any, Any]) -> int:
    version = if_match(request)
    assert version is not None
    return version


class ApprovalRuleController(Controller):
    path = "/api/v1/approval-rules"
    tags = ["orders"]

    @get("/", operation_id="listApprovalRules", summary="List order approval rules", guards=READ)
    async def list_rules(
        self,
        session: Session,
        state: State,
        active: FromQuery[bool | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> ApprovalRulePage:
        items, nxt = await service.list_rules(session, cursor, page_limit(state, limit), active=active)
        return ApprovalRulePage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="createApprovalRule",
        summary="Send orders that match these conditions to approval",
        description="Every condition set must hold; a rule that sets none catches every order. "
        "A duplicate code is a 409.",
        guards=WRITE,
    )
    async def create_rule(
        self, request: Request[Any, Any, Any], data: JSONBody[ApprovalRuleIn], session: Session
    ) -> Response[ApprovalRuleOut]:
        return await idempotent(request, session, lambda: service.create_rule(session, data))

    @post(
        "/trial",
        operation_id="trialApprovalRules",
        summary="What the active rules say about an order with these facts (changes nothing)",
        guards=READ,
        opt={"read_only": True},
        status_code=200,
    )
    async def trial(self, data: JSONBody[OrderFactsIn], session: Session) -> ApprovalVerdictOut:
        return await service.trial(session, data)

    @get(
        "/{approval_rule_id:uuid}",
        operation_id="getApprovalRule",
        summary="Show an approval rule",
        guards=READ,
    )
    async def get_rule(self, approval_rule_id: FromPath[UUID], session: Session) -> Response[ApprovalRuleOut]:
        return with_etag(await service.get_rule(session, approval_rule_id))

    @patch(
        "/{approval_rule_id:uuid}",
        operation_id="updateApprovalRule",
        summary="Change an approval rule (If-Match: the version you read)",
        description=STALE,
        guards=WRITE,
    )
    async def update_rule(
        self,
        approval_rule_id: FromPath[UUID],
        data: JSONBody[ApprovalRulePatch],
        request: Request[Any, Any, Any],
        session: Session,
    ) -> Response[ApprovalRuleOut]:
        version = _version(request)
        return with_etag(await service.update_rule(session, approval_rule_id, data, version))

    @delete(
        "/{approval_rule_id:uuid}",
        operation_id="deleteApprovalRule",
        summary="Delete an approval rule (If-Match: the version you read)",
        description=STALE,
        guards=WRITE,
    )
    async def delete_rule(
        self, approval_rule_id: FromPath[UUID], request: Request[Any, Any, Any], session: Session
    ) -> None:
        await service.delete_rule(session, approval_rule_id, _version(request))


ROUTES: list[Any] = [ApprovalRuleController]
