"""Rebate accrual runs over REST (返利计提): request, list, show, adjust a line, settle, discard.

Requesting a run answers 202 at once with the run in ``computing``; a background job computes
it and moves it to ``review``. Settling credits money, so it needs an ``Idempotency-Key`` (428
without one). An action the run's state does not allow is a 409 ``illegal_transition``.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get, patch, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from omnicloud.core.deps import Cursor, Limit, Session, page_limit
from omnicloud.core.http import idempotent, if_match, requires
from omnicloud.core.tenancy import require_tenant
from omnicloud.pools.funds.api import require_key
from omnicloud.pools.rebates import job, service
from omnicloud.pools.rebates.schemas import (
    AccrualLineOut,
    AccrualRunIn,
    AccrualRunOut,
    AccrualRunPage,
    LineAdjustmentIn,
)
from omnicloud.pools.rebates.states import STATES

READ = [requires("rebates:read")]
ACCRUE = [requires("rebates:accrue")]
RunState = Annotated[
    str | None, QueryParameter(name="state", pattern=f"^({'|'.join(STATES)})$", description="Run state")
]
ILLEGAL = "A state that does not allow it is a 409 `illegal_transition`."


class RebateAccrualController(Controller):
    path = "/api/v1/rebate-accruals"
    tags = ["rebates"]

    @post(
        "/",
        operation_id="requestRebateAccrual",
        summary="Accrue a rebate policy for a period (202: computed in the background)",
        description="Creates the run of this policy and period, or recomputes the existing one (a "
        "settled run is a 409 `illegal_transition`; a period overlapping another run of the policy a "
        "409 `period_overlaps`). A policy that cannot be computed (target 0 on a tiered policy) is a "
        "422 `policy_misconfigured`; a basis without a source (invoiced, paid) a 422 "
        "`basis_unavailable`. Poll the run until it is in `review`.",
        guards=ACCRUE,
        status_code=202,
    )
    async def request_run(
        self, request: Request[Any, Any, Any], data: JSONBody[AccrualRunIn], session: Session, state: State
    ) -> Response[AccrualRunOut]:
        queued: list[UUID] = []

        async def create() -> AccrualRunOut:
            out, _ = await service.request_run(session, data)
            queued.append(out.id)
            return out

        response = await idempotent(request, session, create, status_code=202)
        if queued:  # after the request's transaction commits, so the job sees the run
            response.background = BackgroundTask(job.enqueue, state.queue, require_tenant(), queued[0])
        return response  # type: ignore[return-value]

    @get("/", operation_id="listRebateAccruals", summary="List rebate accrual runs", guards=READ)
    async def list_runs(
        self,
        session: Session,
        state: State,
        rebate_policy_id: FromQuery[UUID | None] = None,
        run_state: RunState = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> AccrualRunPage:
        items, nxt = await service.list_runs(
            session, cursor, page_limit(state, limit), rebate_policy_id=rebate_policy_id, state=run_state
        )
        return AccrualRunPage(items=items, next_cursor=nxt)

    @get(
        "/{rebate_accrual_id:uuid}",
        operation_id="getRebateAccrual",
        summary="Show a run with one line per customer: achieved amount, tier, accrual and why",
        guards=READ,
    )
    async def get_run(self, rebate_accrual_id: FromPath[UUID], session: Session) -> AccrualRunOut:
        return await service.get_run(session, rebate_accrual_id)

    @patch(
        "/{rebate_accrual_id:uuid}/lines/{customer_id:uuid}",
        operation_id="adjustRebateAccrualLine",
        summary="Adjust one customer's amount while the run is in review, with a reason (audited)",
        description=f"Optional `If-Match` with the line's version (412 when stale). {ILLEGAL}",
        guards=ACCRUE,
    )
    async def adjust_line(
        self,
        request: Request[Any, Any, Any],
        rebate_accrual_id: FromPath[UUID],
        customer_id: FromPath[UUID],
        data: JSONBody[LineAdjustmentIn],
        session: Session,
    ) -> AccrualLineOut:
        version = if_match(request, required=False)
        return await service.adjust_line(session, rebate_accrual_id, customer_id, data, version)

    @post(
        "/{rebate_accrual_id:uuid}/settle",
        operation_id="settleRebateAccrual",
        summary="Settle a run: credit each customer's rebate account exactly once",
        description="Form cash or discount credits the rebate account; form goods records the "
        "entitlement without money; a negative line is carried to the next run. Needs an "
        f"Idempotency-Key (428 without one). {ILLEGAL}",
        guards=[requires("rebates:settle")],
    )
    async def settle(
        self, request: Request[Any, Any, Any], rebate_accrual_id: FromPath[UUID], session: Session
    ) -> Response[AccrualRunOut]:
        await service.require_run(session, rebate_accrual_id)
        require_key(request)
        return await idempotent(
            request, session, lambda: service.settle(session, rebate_accrual_id), status_code=200
        )

    @post(
        "/{rebate_accrual_id:uuid}/discard",
        operation_id="discardRebateAccrual",
        summary="Discard a run that is computing or in review",
        description=f"Requesting the same policy and period again reopens it. {ILLEGAL}",
        guards=ACCRUE,
        status_code=200,
    )
    async def discard(self, rebate_accrual_id: FromPath[UUID], session: Session) -> AccrualRunOut:
        return await service.discard(session, rebate_accrual_id)


ROUTES = [RebateAccrualController]
