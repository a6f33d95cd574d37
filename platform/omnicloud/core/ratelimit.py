"""Fixed-window rate limits per tenant and per API key.

With Redis configured the counters live there (shared by every process); without it, or when
Redis does not answer, they live in this process, so a Redis outage degrades limits rather
than failing requests.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from omnicloud.core.errors import TooManyRequests
from omnicloud.core.security import Principal

log = logging.getLogger("omnicloud.ratelimit")

WINDOW = 60


class MemoryCounter:
    def __init__(self) -> None:
        self._window = 0
        self._counts: dict[str, int] = {}

    async def incr(self, keys: list[str], window: int) -> list[int]:
        if window != self._window:
            self._window = window
            self._counts = {}
        out = []
        for k in keys:
            self._counts[k] = self._counts.get(k, 0) + 1
            out.append(self._counts[k])
        return out


class RedisCounter:
    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def incr(self, keys: list[str], window: int) -> list[int]:
        pipe = self.redis.pipeline(transaction=False)
        for k in keys:
            full = f"rl:{k}:{window}"
            pipe.incr(full)
            pipe.expire(full, WINDOW * 2)
        res = await pipe.execute()
        return [int(v) for v in res[0::2]]


class RateLimiter:
    def __init__(self, per_key: int, per_tenant: int, redis: Any | None = None) -> None:
        self.per_key = per_key
        self.per_tenant = per_tenant
        self.memory = MemoryCounter()
        self.redis = RedisCounter(redis) if redis is not None else None

    async def check(self, principal: Principal) -> None:
        now = time.time()
        window = int(now // WINDOW)
        # Cache keys and Redis keys are prefixed with the tenant id.
        scope = str(principal.tenant_id or "operator")
        keys = [f"{scope}:key:{principal.key_id}", f"{scope}:tenant"]
        counts: list[int] | None = None
        if self.redis is not None:
            try:
                counts = await self.redis.incr(keys, window)
            except Exception as exc:  # Redis down: fall back to this process's counters
                log.warning("rate limit falling back to memory: %s", exc)
        if counts is None:
            counts = await self.memory.incr(keys, window)
        retry = str(int(WINDOW - now % WINDOW) + 1)
        if counts[0] > self.per_key:
            raise TooManyRequests(
                "rate limit for this API key exceeded",
                code="rate_limited_key",
                headers={"Retry-After": retry},
            )
        if principal.tenant_id is not None and counts[1] > self.per_tenant:
            raise TooManyRequests(
                "rate limit for this tenant exceeded",
                code="rate_limited_tenant",
                headers={"Retry-After": retry},
            )
