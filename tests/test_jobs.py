"""The job queue: in-process and Redis run the same job code, with retries, dead letters,
deduplication, dead-worker recovery, and an in-process fallback when Redis is away."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID

import msgspec
import pytest

from omnicloud.core.jobs import InProcessQueue, Job, JobQueue, RedisQueue, make_queue
from omnicloud.core.tenancy import current_tenant
from omnicloud.settings import Settings
from tests.fixtures import REDIS

FAST = {"max_attempts": 3, "base_delay": 0.01, "max_delay": 0.05}


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def redis_queue(app: Any, redis: Any, **kw: Any) -> JobQueue:
    settings = msgspec.structs.replace(app.state.settings, redis_url=REDIS)
    return make_queue(settings, redis, namespace=f"test:{uuid.uuid4().hex}", block_seconds=0.2, **kw)


@pytest.fixture(params=["memory", "redis"])
async def queue(request: pytest.FixtureRequest, app: Any, redis: Any) -> AsyncIterator[JobQueue]:
    q = InProcessQueue(**FAST) if request.param == "memory" else redis_queue(app, redis, **FAST)
    yield q
    await q.stop()
    await forget(q)


async def forget(q: JobQueue) -> None:
    if isinstance(q, RedisQueue):
        keys = [k async for k in q.redis.scan_iter(match=f"{q.ns}:*")]
        if keys:
            await q.redis.delete(*keys)


class Recorder:
    """A job that remembers what it saw and fails its first ``failures`` runs."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[tuple[Any, UUID | None, dict[str, Any]]] = []

    async def __call__(self, tenant_id: UUID | None, **payload: Any) -> None:
        self.calls.append((tenant_id, current_tenant(), payload))
        if len(self.calls) <= self.failures:
            raise RuntimeError(f"failure {len(self.calls)}")


async def test_same_job_code_runs_in_tenant_scope_with_json_payload(queue: JobQueue) -> None:
    job = Recorder()
    queue.register("demo.echo", job)
    tid, ref = uuid.uuid4(), uuid.uuid4()
    await queue.start()
    assert await queue.enqueue("demo.echo", tid, {"ref": ref, "n": 2})
    await until(lambda: len(job.calls) == 1)
    tenant_arg, in_scope, payload = job.calls[0]
    assert tenant_arg == tid and in_scope == tid
    assert payload == {"ref": str(ref), "n": 2}  # JSON on both backends
    assert current_tenant() is None


async def test_failures_retry_with_backoff_then_dead_letter(
    queue: JobQueue, caplog: pytest.LogCaptureFixture
) -> None:
    flaky, broken = Recorder(failures=2), Recorder(failures=99)
    queue.register("demo.flaky", flaky)
    queue.register("demo.broken", broken)
    await queue.start()
    tid = uuid.uuid4()
    with caplog.at_level(logging.WARNING, logger="omnicloud.jobs"):
        await queue.enqueue("demo.flaky", tid, {"k": 1})
        await queue.enqueue("demo.broken", tid, {"k": 2})
        await until(lambda: len(flaky.calls) == 3 and len(queue.dead) == 1)
    assert len(broken.calls) == 3  # max_attempts, then no more
    dead_job, reason = queue.dead[0]
    assert dead_job.name == "demo.broken" and dead_job.attempt == 2 and "failure 3" in reason
    assert any("dead after 3 attempts" in r.getMessage() for r in caplog.records)
    await asyncio.sleep(0.2)
    assert len(flaky.calls) == 3 and len(broken.calls) == 3
    if isinstance(queue, RedisQueue):
        stored = await queue.redis.lrange(queue.key("dead"), 0, -1)
        assert len(stored) == 1 and msgspec.json.decode(stored[0])["job"]["name"] == "demo.broken"


async def test_unknown_job_is_dead_lettered_at_once(queue: JobQueue) -> None:
    await queue.start()
    await queue.enqueue("demo.nobody", uuid.uuid4(), {})
    await until(lambda: len(queue.dead) == 1)
    assert "no job registered" in queue.dead[0][1] and queue.dead[0][0].attempt == 0


async def test_dedupe_key_holds_only_while_the_job_waits(queue: JobQueue) -> None:
    job = Recorder()
    queue.register("demo.once", job)
    tid = uuid.uuid4()
    assert await queue.enqueue("demo.once", tid, {}, dedupe_key="k1")
    assert not await queue.enqueue("demo.once", tid, {}, dedupe_key="k1")
    assert await queue.enqueue("demo.once", tid, {}, dedupe_key="k2")
    await queue.start()
    await until(lambda: len(job.calls) == 2)
    assert await queue.enqueue("demo.once", tid, {}, dedupe_key="k1")  # released when it ran
    await until(lambda: len(job.calls) == 3)


async def test_delayed_job_waits(queue: JobQueue) -> None:
    job = Recorder()
    queue.register("demo.later", job)
    await queue.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await queue.enqueue("demo.later", None, {}, delay=0.3)
    await until(lambda: len(job.calls) == 1)
    assert loop.time() - started >= 0.29
    assert job.calls[0][0] is None


async def test_in_process_stop_drains_queued_jobs() -> None:
    q = InProcessQueue(concurrency=1)
    job = Recorder()

    async def slow(tenant_id: UUID | None, **payload: Any) -> None:
        await asyncio.sleep(0.01)
        await job(tenant_id, **payload)

    q.register("demo.slow", slow)
    await q.start()
    for i in range(5):
        await q.enqueue("demo.slow", uuid.uuid4(), {"i": i})
    await q.stop()
    assert [c[2]["i"] for c in job.calls] == [0, 1, 2, 3, 4]


async def test_run_pending_drives_an_unstarted_queue() -> None:
    q = InProcessQueue(**FAST)
    job = Recorder()
    q.register("demo.echo", job)
    await q.enqueue("demo.echo", uuid.uuid4(), {"a": 1})
    await q.enqueue("demo.echo", uuid.uuid4(), {"a": 2})
    assert q.pending == 2
    assert await q.run_pending() == 2 and q.pending == 0
    assert [c[2] for c in job.calls] == [{"a": 1}, {"a": 2}]


async def test_redis_outage_falls_back_to_in_process_and_loses_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import redis.asyncio as aioredis

    url = "redis://127.0.0.1:1/0"  # nothing listens there
    down = aioredis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    q = make_queue(Settings(redis_url=url), down, block_seconds=0.2, **FAST)
    assert isinstance(q, RedisQueue)
    job, flaky = Recorder(), Recorder(failures=1)
    q.register("demo.echo", job)
    q.register("demo.flaky", flaky)
    with caplog.at_level(logging.WARNING, logger="omnicloud.jobs"):
        for i in range(5):
            assert await q.enqueue("demo.echo", uuid.uuid4(), {"i": i})
        assert await q.enqueue("demo.flaky", uuid.uuid4(), {}, dedupe_key="f")
        assert not await q.enqueue("demo.flaky", uuid.uuid4(), {}, dedupe_key="f")
        await q.start()
        await until(lambda: len(job.calls) == 5 and len(flaky.calls) == 2)
    await q.stop()
    await down.aclose()
    assert sorted(c[2]["i"] for c in job.calls) == [0, 1, 2, 3, 4]
    assert any("runs in-process" in r.getMessage() for r in caplog.records)


async def test_redis_recovers_jobs_of_a_dead_worker(app: Any, redis: Any) -> None:
    q = redis_queue(app, redis, **FAST)
    assert isinstance(q, RedisQueue)
    job = Recorder()
    q.register("demo.echo", job)
    tid = uuid.uuid4()
    lost = Job(id="lost", name="demo.echo", tenant_id=tid, payload={"from": "dead worker"})
    # A worker took the job (BLMOVE to its processing list) and died before the ack.
    await q.redis.lpush(q.key("processing", "gone"), msgspec.json.encode(lost))
    await q.redis.sadd(q.key("workers"), "gone")
    try:
        await q.start()
        await until(lambda: len(job.calls) == 1)
        assert job.calls[0][:2] == (tid, tid) and job.calls[0][2] == {"from": "dead worker"}
        assert await q.redis.llen(q.key("processing", "gone")) == 0
        assert not await q.redis.sismember(q.key("workers"), "gone")
    finally:
        await q.stop()
    assert await q.redis.llen(q.processing) == 0  # acked
    await forget(q)


async def test_redis_stop_hands_unfinished_jobs_back(app: Any, redis: Any) -> None:
    q = redis_queue(app, redis, **FAST)
    assert isinstance(q, RedisQueue)
    gate = asyncio.Event()
    started: list[int] = []

    async def hang(tenant_id: UUID | None, **payload: Any) -> None:
        started.append(payload["i"])
        await gate.wait()

    q.register("demo.hang", hang)
    await q.start()
    await q.enqueue("demo.hang", uuid.uuid4(), {"i": 1})
    await until(lambda: started == [1])
    await q.stop()  # cancels the running job: it goes back to "ready" for another worker
    assert await q.redis.llen(q.key("ready")) == 1
    await forget(q)
