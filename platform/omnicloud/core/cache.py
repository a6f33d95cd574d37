"""Keeping per-process caches right across processes.

Identity and plugin state are cached in each process (a request then costs no look-up). When
a transaction changes such state it marks the tenant with :func:`tenant_changed`; once it
commits, every cache of that tenant is dropped here and, with Redis configured, in every other
process through a pub/sub message. Dropping after the commit, not before, keeps a concurrent
request from caching the state the transaction is replacing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from omnicloud.core.db import TenantSession

log = logging.getLogger("omnicloud.cache")

_PENDING = "omnicloud_changed_tenants"
_forgetters: list[Callable[[UUID], None]] = []


def on_tenant_change(forget: Callable[[UUID], None]) -> None:
    """Register a cache's ``forget(tenant_id)``."""
    _forgetters.append(forget)


def tenant_changed(session: AsyncSession | Session, tenant_id: UUID) -> None:
    """Drop the tenant's cached identity and plugin state once this transaction commits."""
    session.info.setdefault(_PENDING, set()).add(tenant_id)


def forget_locally(tenant_ids: Iterable[UUID]) -> None:
    for tenant_id in tenant_ids:
        for forget in _forgetters:
            forget(tenant_id)


@event.listens_for(TenantSession, "after_commit")
def _after_commit(session: Session) -> None:
    tenants = session.info.pop(_PENDING, None)
    if tenants:
        forget_locally(tenants)
        if BUS.redis is not None:
            BUS.publish(tenants)


@event.listens_for(TenantSession, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


class InvalidationBus:
    """Redis pub/sub between the processes of one deployment."""

    def __init__(self) -> None:
        self.redis: Any | None = None
        self.channel = "omnicloud:invalidate"
        self._listener: asyncio.Task[None] | None = None
        self._sent: set[asyncio.Task[Any]] = set()

    def configure(self, redis: Any | None, prefix: str) -> None:
        self.redis = redis
        self.channel = f"{prefix}:invalidate"

    def publish(self, tenant_ids: Iterable[UUID]) -> None:
        message = ",".join(str(t) for t in tenant_ids)
        try:
            task = asyncio.get_running_loop().create_task(self._send(message))
        except RuntimeError:  # no loop (a synchronous caller): other processes catch up by TTL
            return
        self._sent.add(task)
        task.add_done_callback(self._sent.discard)

    async def _send(self, message: str) -> None:
        try:
            await self.redis.publish(self.channel, message)  # type: ignore[union-attr]
        except Exception as exc:  # Redis away: other processes catch up when their entries expire
            log.warning("cache invalidation not broadcast: %s", exc)

    async def start(self) -> None:
        if self.redis is not None and self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        if self._sent:
            await asyncio.gather(*self._sent, return_exceptions=True)

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self.redis.pubsub()  # type: ignore[union-attr]
                await pubsub.subscribe(self.channel)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        data = (
                            message["data"].decode()
                            if isinstance(message["data"], bytes)
                            else message["data"]
                        )
                        forget_locally(UUID(t) for t in data.split(",") if t)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # reconnect; meanwhile entries expire by TTL
                log.warning("cache invalidation listener reconnecting: %s", exc)
                await asyncio.sleep(1.0)


BUS = InvalidationBus()
