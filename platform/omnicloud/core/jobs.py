"""Background jobs: one job API, two backends.

``make_queue(settings, redis)`` gives a :class:`RedisQueue` when Redis is configured and an
:class:`InProcessQueue` otherwise. Job code is the same for both: a job is registered under a
name and called as ``await fn(tenant_id=..., **payload)`` inside ``tenant_scope(tenant_id)``.
Payloads travel as JSON in both backends (UUIDs arrive as strings), so a job that works
in-process works on Redis.

Delivery is at least once, so **job code must be idempotent**. A job that raises is retried
with exponential backoff (jittered) up to ``max_attempts`` times, then dead-lettered and
logged. ``dedupe_key`` drops an enqueue while a job with the same key is still waiting (queued
or delayed); the key is released when the job starts, so work that arrives during a run is
picked up by the next one.

Redis layout (prefix ``namespace``, default ``<redis_prefix>:jobs``): ``ready`` is a list; a worker
moves a job atomically with ``BLMOVE`` to its own ``processing:<worker>`` list and removes it
(the ack) when the job has finished or its retry is scheduled. Each worker refreshes
``alive:<worker>`` (a key with a TTL); a worker whose key expired is dead, and any live worker
moves that worker's ``processing`` list back to ``ready``. ``delayed`` is a sorted set scored
by due time, promoted to ``ready`` by a Lua script. ``dead`` holds the last 1000 dead letters.
When Redis cannot be reached, ``enqueue`` hands the job to an in-process fallback queue that
the same process runs, so nothing is lost while Redis is away.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import msgspec

from omnicloud.core.tenancy import tenant_scope

log = logging.getLogger("omnicloud.jobs")

JobFn = Callable[..., Awaitable[Any]]


class Job(msgspec.Struct, kw_only=True):
    id: str
    name: str
    tenant_id: UUID | None
    payload: dict[str, Any]
    attempt: int = 0
    dedupe_key: str | None = None


class UnknownJob(LookupError):
    pass


def new_job(name: str, tenant_id: UUID | None, payload: Any, dedupe_key: str | None) -> Job:
    # A JSON round trip gives in-process jobs exactly the payload a Redis worker would see.
    data = msgspec.json.decode(msgspec.json.encode(payload if payload is not None else {}))
    if not isinstance(data, dict):
        raise TypeError("a job payload must be a mapping")
    return Job(id=uuid.uuid4().hex, name=name, tenant_id=tenant_id, payload=data, dedupe_key=dedupe_key)


class JobQueue(ABC):
    """What both backends share: the registry, running a job, retries and dead letters."""

    def __init__(self, *, max_attempts: int = 5, base_delay: float = 1.0, max_delay: float = 300.0) -> None:
        self.handlers: dict[str, JobFn] = {}
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.dead: deque[tuple[Job, str]] = deque(maxlen=1000)

    def register(self, name: str, fn: JobFn) -> None:
        """Run ``fn`` for jobs named ``name`` (a later registration replaces an earlier one)."""
        self.handlers[name] = fn

    @abstractmethod
    async def enqueue(
        self,
        name: str,
        tenant_id: UUID | None,
        payload: Any = None,
        *,
        dedupe_key: str | None = None,
        delay: float = 0.0,
    ) -> bool:
        """Queue a job; ``False`` when a waiting job already holds ``dedupe_key``."""

    @abstractmethod
    async def start(self) -> None:
        """Start the workers of this process."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop the workers; unfinished work stays recoverable."""

    def retry_delay(self, attempt: int) -> float:
        """Seconds before retry number ``attempt`` (1-based): exponential, capped, jittered."""
        return min(self.base_delay * 2 ** (attempt - 1), self.max_delay) * (0.5 + random.random())

    async def execute(self, job: Job) -> None:
        """Run one job; on failure schedule its retry or dead-letter it. Never raises."""
        fn = self.handlers.get(job.name)
        try:
            if fn is None:
                raise UnknownJob(f"no job registered as {job.name!r}")
            if job.tenant_id is None:
                await fn(tenant_id=None, **job.payload)
            else:
                with tenant_scope(job.tenant_id):
                    await fn(tenant_id=job.tenant_id, **job.payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._failed(job, exc, retryable=fn is not None)

    async def _failed(self, job: Job, exc: Exception, *, retryable: bool) -> None:
        attempt = job.attempt + 1
        reason = f"{type(exc).__name__}: {exc}"
        if retryable and attempt < self.max_attempts:
            log.warning("job %s (%s) failed, attempt %d: %s", job.name, job.id, attempt, reason)
            retry = msgspec.structs.replace(job, attempt=attempt, dedupe_key=None)
            await self._schedule_retry(retry, self.retry_delay(attempt))
            return
        log.error(
            "job %s (%s) for tenant %s dead after %d attempts: %s",
            job.name,
            job.id,
            job.tenant_id,
            attempt,
            reason,
            exc_info=exc,
        )
        self.dead.append((job, reason))
        await self._dead_letter(job, reason)

    @abstractmethod
    async def _schedule_retry(self, job: Job, delay: float) -> None:
        """Run ``job`` again after ``delay`` seconds."""

    async def _dead_letter(self, job: Job, reason: str) -> None:
        return None


class InProcessQueue(JobQueue):
    """An asyncio queue worked by ``concurrency`` tasks of this process."""

    def __init__(self, *, concurrency: int = 4, **kw: Any) -> None:
        super().__init__(**kw)
        self.concurrency = concurrency
        self._ready: asyncio.Queue[Job] = asyncio.Queue()
        self._waiting: set[str] = set()
        self._timers: dict[str, tuple[asyncio.TimerHandle, Job]] = {}
        self._workers: list[asyncio.Task[None]] = []

    async def enqueue(
        self,
        name: str,
        tenant_id: UUID | None,
        payload: Any = None,
        *,
        dedupe_key: str | None = None,
        delay: float = 0.0,
    ) -> bool:
        return self.put(new_job(name, tenant_id, payload, dedupe_key), delay)

    def put(self, job: Job, delay: float = 0.0) -> bool:
        if job.dedupe_key is not None:
            if job.dedupe_key in self._waiting:
                return False
            self._waiting.add(job.dedupe_key)
        if delay > 0:
            self._timers[job.id] = (asyncio.get_running_loop().call_later(delay, self._due, job), job)
        else:
            self._ready.put_nowait(job)
        return True

    def _due(self, job: Job) -> None:
        self._timers.pop(job.id, None)
        self._ready.put_nowait(job)

    @property
    def pending(self) -> int:
        """Jobs queued now (not counting delayed ones)."""
        return self._ready.qsize()

    @property
    def delayed(self) -> int:
        """Jobs waiting for their time."""
        return len(self._timers)

    async def _schedule_retry(self, job: Job, delay: float) -> None:
        self.put(job, delay)

    def _take(self, job: Job) -> Job:
        if job.dedupe_key is not None:
            self._waiting.discard(job.dedupe_key)
        return job

    async def run_pending(self) -> int:
        """Run the queued jobs in the calling task until none is ready; returns how many ran.

        For tools and tests that drive the queue by hand instead of starting workers.
        """
        ran = 0
        while not self._ready.empty():
            try:
                await self.execute(self._take(self._ready.get_nowait()))
            finally:
                self._ready.task_done()
            ran += 1
        return ran

    async def _work(self) -> None:
        while True:
            job = self._take(await self._ready.get())
            try:
                await self.execute(job)
            finally:
                self._ready.task_done()

    async def start(self) -> None:
        if not self._workers:
            self._workers = [asyncio.create_task(self._work()) for _ in range(self.concurrency)]

    async def stop(self, *, drain_timeout: float = 5.0) -> None:
        """Finish the queued jobs (up to ``drain_timeout``), then stop the workers.

        Delayed jobs are dropped: their work is recorded in the database and resumed by the
        relay's sweep (jobs are resumable by contract).
        """
        if self._workers and not self._ready.empty():
            try:
                await asyncio.wait_for(self._ready.join(), drain_timeout)
            except TimeoutError:
                log.warning("stopping with %d queued jobs", self._ready.qsize())
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._timers:
            log.info("dropping %d delayed jobs on stop", len(self._timers))
        for handle, job in self._timers.values():
            handle.cancel()
            self._take(job)
        self._timers.clear()


_ENQUEUE = """
if ARGV[3] ~= '' then
  if not redis.call('SET', ARGV[3], '1', 'NX', 'EX', ARGV[4]) then return 0 end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
else
  redis.call('LPUSH', KEYS[1], ARGV[1])
end
return 1
"""

_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, raw in ipairs(due) do
  redis.call('ZREM', KEYS[1], raw)
  redis.call('LPUSH', KEYS[2], raw)
end
return #due
"""


class RedisQueue(JobQueue):
    """A reliable Redis list queue shared by every process, with an in-process fallback."""

    def __init__(
        self,
        redis: Any,
        blocking: Any,
        *,
        namespace: str = "omnicloud:jobs",
        concurrency: int = 4,
        block_seconds: float = 1.0,
        heartbeat_seconds: float = 5.0,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.redis = redis
        self.blocking = blocking  # a client whose socket timeout outlasts BLMOVE's block
        self.ns = namespace
        self.concurrency = concurrency
        self.block_seconds = block_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.worker = uuid.uuid4().hex
        self.fallback = InProcessQueue(concurrency=concurrency, **kw)
        self.fallback.handlers = self.handlers
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        self._enqueue_script = redis.register_script(_ENQUEUE)
        self._promote_script = redis.register_script(_PROMOTE)

    def key(self, *parts: str) -> str:
        return ":".join((self.ns, *parts))

    @property
    def processing(self) -> str:
        return self.key("processing", self.worker)

    async def enqueue(
        self,
        name: str,
        tenant_id: UUID | None,
        payload: Any = None,
        *,
        dedupe_key: str | None = None,
        delay: float = 0.0,
    ) -> bool:
        return await self._push(new_job(name, tenant_id, payload, dedupe_key), delay)

    async def _push(self, job: Job, delay: float) -> bool:
        from redis.exceptions import RedisError

        dedupe = self.key("dedupe", job.dedupe_key) if job.dedupe_key else ""
        due = time.time() + delay if delay > 0 else 0
        try:
            added = await self._enqueue_script(
                keys=[self.key("ready"), self.key("delayed")],
                args=[msgspec.json.encode(job), repr(due), dedupe, int(delay) + 600],
            )
        except RedisError as exc:
            log.warning("redis unavailable (%s): job %s runs in-process", type(exc).__name__, job.name)
            return self.fallback.put(job, delay)
        return bool(added)

    async def _schedule_retry(self, job: Job, delay: float) -> None:
        await self._push(job, delay)

    async def _dead_letter(self, job: Job, reason: str) -> None:
        from redis.exceptions import RedisError

        entry = msgspec.json.encode({"job": job, "reason": reason, "at": time.time()})
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.lpush(self.key("dead"), entry)
                pipe.ltrim(self.key("dead"), 0, 999)
                await pipe.execute()
        except RedisError:
            log.warning("could not record dead letter for job %s in redis", job.id)

    async def run_one(self, client: Any | None = None) -> bool:
        """Take one job from Redis and run it; ``False`` when none arrived within the block."""
        client = client or self.blocking
        await self._promote_script(keys=[self.key("delayed"), self.key("ready")], args=[repr(time.time())])
        raw = await client.blmove(
            self.key("ready"), self.processing, self.block_seconds, src="RIGHT", dest="LEFT"
        )
        if raw is None:
            return False
        try:
            job = msgspec.json.decode(raw, type=Job)
        except msgspec.DecodeError:
            log.error("dropping undecodable job %r", raw[:200])
            await self.redis.lrem(self.processing, 1, raw)
            return True
        if job.dedupe_key:
            await self.redis.delete(self.key("dedupe", job.dedupe_key))
        await self.execute(job)
        await self.redis.lrem(self.processing, 1, raw)
        return True

    async def _work(self) -> None:
        from redis.exceptions import RedisError

        pause = 0.1
        while self._running:  # a flag too: redis-py may turn a cancellation into an error
            try:
                await self.run_one()
                pause = 0.1
            except RedisError as exc:
                log.warning("redis worker paused: %s", type(exc).__name__)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
            except Exception:
                log.exception("redis worker error")
                await asyncio.sleep(1.0)

    async def recover(self) -> int:
        """Return the jobs of dead workers (expired heartbeat) to the ready list."""
        moved = 0
        for raw in await self.redis.smembers(self.key("workers")):
            worker = raw.decode() if isinstance(raw, bytes) else raw
            if worker == self.worker or await self.redis.exists(self.key("alive", worker)):
                continue
            source = self.key("processing", worker)
            while await self.redis.lmove(source, self.key("ready"), "RIGHT", "LEFT") is not None:
                moved += 1
            await self.redis.srem(self.key("workers"), worker)
        if moved:
            log.warning("recovered %d jobs from dead workers", moved)
        return moved

    async def _beat(self) -> None:
        await self.redis.set(self.key("alive", self.worker), "1", ex=int(self.heartbeat_seconds * 3) + 1)
        await self.redis.sadd(self.key("workers"), self.worker)

    async def _heartbeat(self) -> None:
        from redis.exceptions import RedisError

        while self._running:
            try:
                await self._beat()
                await self.recover()
            except RedisError as exc:
                log.warning("redis heartbeat failed: %s", type(exc).__name__)
            await asyncio.sleep(self.heartbeat_seconds)

    async def start(self) -> None:
        await self.fallback.start()
        if not self._tasks:
            self._running = True
            self._tasks = [asyncio.create_task(self._heartbeat())]
            self._tasks += [asyncio.create_task(self._work()) for _ in range(self.concurrency)]

    async def stop(self) -> None:
        from redis.exceptions import RedisError

        self._running = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        try:  # hand unfinished jobs back instead of waiting for the heartbeat to expire
            while await self.redis.lmove(self.processing, self.key("ready"), "RIGHT", "LEFT") is not None:
                pass
            await self.redis.delete(self.key("alive", self.worker))
            await self.redis.srem(self.key("workers"), self.worker)
        except RedisError:
            log.warning("redis unavailable on stop; dead-worker recovery will requeue our jobs")
        await self.fallback.stop()
        await self.blocking.aclose()


def make_queue(settings: Any, redis: Any, *, namespace: str | None = None, **kw: Any) -> JobQueue:
    """The Redis queue when Redis is configured, else the in-process queue. Redis keys live
    under ``namespace``, by default ``<OMNICLOUD_REDIS_PREFIX>:jobs``."""
    if redis is None or not settings.redis_url:
        return InProcessQueue(**kw)
    import redis.asyncio as aioredis

    namespace = namespace or f"{getattr(settings, 'redis_prefix', 'omnicloud')}:jobs"
    block = float(kw.pop("block_seconds", 1.0))
    blocking = aioredis.from_url(settings.redis_url, socket_connect_timeout=0.5, socket_timeout=block + 5)
    return RedisQueue(redis, blocking, namespace=namespace, block_seconds=block, **kw)
