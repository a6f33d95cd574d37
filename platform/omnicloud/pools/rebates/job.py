"""The background job that computes a rebate accrual run (``rebates.accrue``).

The API queues it after the request that created or re-opened the run has committed; the job
is idempotent (a run that is no longer computing is left alone) and locks the run, so a
duplicate delivery or a retry never computes twice at the same time. Should the process stop
before the job ran, requesting the same policy and period again queues it again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from omnicloud.core.db import Database
from omnicloud.core.jobs import JobQueue
from omnicloud.pools.rebates import service

ACCRUAL_JOB = "rebates.accrue"


def accrual_job(db: Database) -> Callable[..., Awaitable[bool]]:
    """The job function to register as :data:`ACCRUAL_JOB` (``queue.register``)."""

    async def run(*, tenant_id: UUID, rebate_accrual_id: str, **_: Any) -> bool:
        async with db.transaction() as session:
            return await service.compute_run(session, UUID(rebate_accrual_id))

    return run


async def enqueue(queue: JobQueue, tenant_id: UUID, run_id: UUID) -> bool:
    """Queue the computation of a run (one waiting job per run)."""
    return await queue.enqueue(
        ACCRUAL_JOB, tenant_id, {"rebate_accrual_id": str(run_id)}, dedupe_key=f"{ACCRUAL_JOB}:{run_id}"
    )
