"""Fixed-window rate limits per tenant and per API key.

Counts are kept in this process and, with Redis configured, shared through Redis: each process
adds its local counts to Redis in the background at most every ``sync_seconds`` and reads back
the global totals, so a request never waits for Redis. Between syncs a process sees the global
count as of the last sync plus its own requests since, so limits hold to within one sync
interval. When Redis does not answer, the local counts simply keep counting: an outage degrades
the limits instead of failing requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from omnicloud.core.errors import TooManyRequests
from omnicloud.core.security import Principal

log = logging.getLogger("omnicloud.ratelimit")

WINDOW = 60


class Counter:
    def __init__(
        self, redis: Any | None = None, *, prefix: str = "omnicloud", sync_seconds: float = 0.2
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.sync_seconds = sync_seconds
        self._window = 0
        self._known: dict[str, int] = {}  # global totals as of the last sync
        self._pending: dict[str, int] = {}  # this process's counts not yet in Redis
        self._last_sync = 0.0
        self._task: asyncio.Task[None] | None = None

    def hit(self, keys: list[str], window: int) -> list[int]:
        if window != self._window:
            self._window, self._known, self._pending = window, {}, {}
        counts = []
        for k in keys:
            self._pending[k] = self._pending.get(k, 0) + 1
            counts.append(self._known.get(k, 0) + self._pending[k])
        if self.redis is not None and self._task is None:
            now = time.monotonic()
            if now - self._last_sync >= self.sync_seconds:
                self._last_sync = now
                self._task = asyncio.get_running_loop().create_task(self._sync(window))
        return counts

    async def _sync(self, window: int) -> None:
        pending, self._pending = self._pending, {}
        try:
            pipe = self.redis.pipeline(transaction=False)  # type: ignore[union-attr]
            for k, n in pending.items():
                full = f"{self.prefix}:rl:{k}:{window}"
                pipe.incrby(full, n)
                pipe.expire(full, WINDOW * 2)
            totals = (await pipe.execute())[0::2]
            if window == self._window:
                for k, total in zip(pending, totals, strict=True):
                    self._known[k] = int(total)
        except Exception as exc:  # Redis away: keep the counts here and try again later
            log.warning("rate limit counts stay in this process: %s", exc)
            if window == self._window:
                for k, n in pending.items():
                    self._known[k] = self._known.get(k, 0) + n
        finally:
            self._task = None

    async def flush(self) -> None:
        """Wait for a sync in flight (tests and shutdown)."""
        if self._task is not None:
            await self._task


class RateLimiter:
    def __init__(
        self,
        per_key: int,
        per_tenant: int,
        redis: Any | None = None,
        *,
        prefix: str = "omnicloud",
        sync_seconds: float = 0.2,
    ) -> None:
        self.per_key = per_key
        self.per_tenant = per_tenant
        self.counter = Counter(redis, prefix=prefix, sync_seconds=sync_seconds)

    async def check(self, principal: Principal) -> None:
        now = time.time()
        # Keys carry the tenant id, like every cache key and channel.
        scope = str(principal.tenant_id or "operator")
        key_count, tenant_count = self.counter.hit(
            [f"{scope}:key:{principal.key_id}", f"{scope}:tenant"], int(now // WINDOW)
        )
        retry = str(int(WINDOW - now % WINDOW) + 1)
        if key_count > self.per_key:
            raise TooManyRequests(
                "rate limit for this API key exceeded",
                code="rate_limited_key",
                headers={"Retry-After": retry},
            )
        if principal.tenant_id is not None and tenant_count > self.per_tenant:
            raise TooManyRequests(
                "rate limit for this tenant exceeded",
                code="rate_limited_tenant",
                headers={"Retry-After": retry},
            )
