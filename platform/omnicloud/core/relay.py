"""The outbox relay: committed domain events reach plugins, webhooks and Redis pub/sub.

``kick(tenant_id)`` after a commit that emitted events queues one ``outbox.relay`` job per
tenant (deduplicated). The job, :meth:`Relay.relay_tenant`, works through the tenant's
unrelayed events in id order, a batch per transaction: it adds a webhook delivery for every
matching active subscription and stamps ``relayed_at``, so each event is relayed exactly
once. After the batch commits it calls ``after_event`` on the tenant's enabled plugins (each
plugin on its own; an error is logged and never stops the relay), publishes each event on
``<redis_prefix>:<tenant>:events`` when Redis is configured (best effort), and queues a
``webhooks.deliver`` job for every due delivery.

Hooks run after the batch commits rather than inside its transaction because on SQLite that
transaction holds the database's write lock: a hook that writes through its own session
would wait for the relay and time out. The price is that a crash between the commit and the
hooks skips those hooks, which the hook contract allows (``after_event`` is not retried);
webhooks are never skipped, because their deliveries are rows written with ``relayed_at``.

``webhooks.deliver`` claims a delivery (counting the attempt and leasing the row), POSTs
the signed event with no transaction open, and records the outcome: 2xx is delivered,
anything else backs off ``2**attempts`` seconds (capped, jittered) until
``webhook_max_attempts``, then the delivery is failed. :meth:`Relay.sweep` runs
periodically and relays every active tenant that has unrelayed events or due deliveries, so
a crash, a lost job or a Redis outage delays work but never loses it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import httpx
import msgspec
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud import __version__
from omnicloud.admin.service import enabled_plugins
from omnicloud.core.db import Database, utcnow
from omnicloud.core.events import PENDING_KEY
from omnicloud.core.jobs import JobQueue
from omnicloud.core.models import OutboxEvent
from omnicloud.core.tenancy import current_tenant, operator_scope, tenant_scope
from omnicloud.plugins import PluginManager, await_me_maybe
from omnicloud.webhooks import service as webhooks
from omnicloud.webhooks.schemas import EventOut as Event
from omnicloud.webhooks.signing import SIGNATURE_HEADER, sign

log = logging.getLogger("omnicloud.relay")

RELAY_JOB = "outbox.relay"
DELIVER_JOB = "webhooks.deliver"

__all__ = ["DELIVER_JOB", "RELAY_JOB", "Event", "Relay", "events_channel"]


def events_channel(tenant_id: UUID, prefix: str = "omnicloud") -> str:
    """The pub/sub channel of a tenant's events (``prefix`` is ``OMNICLOUD_REDIS_PREFIX``)."""
    return f"{prefix}:{tenant_id}:events"


def _lock_key(tenant_id: UUID) -> int:
    digest = hashlib.blake2b(b"omnicloud-relay:" + tenant_id.bytes, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Relay:
    def __init__(
        self,
        db: Database,
        plugins: PluginManager,
        queue: JobQueue,
        redis: Any,
        settings: Any,
        *,
        clock: Callable[[], datetime] = utcnow,
        rng: Callable[[], float] = random.random,
        transport: httpx.AsyncBaseTransport | None = None,
        batch_size: int = 100,
    ) -> None:
        self.db = db
        self.plugins = plugins
        self.queue = queue
        self.redis = redis
        self.settings = settings
        self.clock = clock
        self.rng = rng
        self.batch_size = batch_size
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._locks: dict[UUID, asyncio.Lock] = {}
        self._sweeper: asyncio.Task[None] | None = None
        queue.register(RELAY_JOB, self._relay_job)
        queue.register(DELIVER_JOB, self._deliver_job)

    # --- relaying --------------------------------------------------------------------------

    async def kick(self, tenant_id: UUID) -> bool:
        """Queue a relay of the tenant's outbox; call it after a commit that emitted events.
        ``False`` when a relay of that tenant is already waiting (it will see the events)."""
        return await self.queue.enqueue(RELAY_JOB, tenant_id, {}, dedupe_key=f"{RELAY_JOB}:{tenant_id}")

    async def kick_pending(self, session: AsyncSession) -> int:
        """Call after ``session`` committed: kick the relay for every tenant whose events the
        session emitted (``events.PENDING_KEY``, either ``True`` for the current tenant or a
        collection of tenant ids). Returns how many tenants were kicked."""
        pending = session.info.pop(PENDING_KEY, None)
        if not pending:
            return 0
        tenants = set(pending) if isinstance(pending, set | frozenset | list | tuple) else {current_tenant()}
        kicked = 0
        for tenant_id in tenants:
            if tenant_id is not None:
                await self.kick(tenant_id)
                kicked += 1
        return kicked

    async def _relay_job(self, tenant_id: UUID) -> None:
        await self.relay_tenant(tenant_id)

    async def relay_tenant(self, tenant_id: UUID) -> int:
        """Relay the tenant's unrelayed events; returns how many. Safe to run concurrently
        and repeatedly: an event is claimed by exactly one batch."""
        relayed = 0
        async with self._locks.setdefault(tenant_id, asyncio.Lock()):
            with tenant_scope(tenant_id):
                while True:
                    batch, enabled = await self._relay_batch(tenant_id)
                    relayed += len(batch)
                    for event in batch:
                        await self._notify_plugins(event, enabled)
                        await self._publish(event)
                    if len(batch) < self.batch_size:
                        break
                await self.enqueue_due(tenant_id)
        return relayed

    async def _relay_batch(self, tenant_id: UUID) -> tuple[list[Event], list[str]]:
        now = self.clock()
        async with self.db.transaction() as session:
            if self.db.dialect == "postgresql":
                # One relay per tenant at a time across processes keeps events in order.
                await session.execute(text("select pg_advisory_xact_lock(:k)"), {"k": _lock_key(tenant_id)})
            stmt = (
                select(OutboxEvent)
                .where(OutboxEvent.relayed_at.is_(None))
                .order_by(OutboxEvent.id)
                .limit(self.batch_size)
            )
            rows = list((await session.scalars(stmt)).all())
            if not rows:
                return [], []
            subscriptions = await webhooks.active_subscriptions(session)
            for row in rows:
                webhooks.fan_out(session, subscriptions, row, now)
                row.relayed_at = now
            await session.flush()
            enabled = sorted(await enabled_plugins(session))
            return [webhooks.event_out(r) for r in rows], enabled

    async def _notify_plugins(self, event: Event, enabled: list[str]) -> None:
        for name in enabled:
            info = self.plugins.plugins.get(name)
            if info is None or "after_event" not in info.hooks:
                continue
            try:
                hooks = self.plugins.for_tenant(frozenset({name}))
                for result in hooks.after_event(event=event, tenant_id=event.tenant_id):
                    await await_me_maybe(result)
            except Exception:
                log.exception("plugin %s failed in after_event for %s %s", name, event.type, event.id)

    async def _publish(self, event: Event) -> None:
        if self.redis is None:
            return
        try:
            prefix = getattr(self.settings, "redis_prefix", "omnicloud")
            await self.redis.publish(events_channel(event.tenant_id, prefix), msgspec.json.encode(event))
        except Exception as exc:
            log.debug("pub/sub publish skipped: %s", type(exc).__name__)

    async def enqueue_due(self, tenant_id: UUID) -> int:
        """Queue a delivery job for each of the tenant's due deliveries."""
        with tenant_scope(tenant_id):
            async with self.db.transaction() as session:
                due = await webhooks.due_deliveries(session, self.clock())
        for delivery_id in due:
            await self._enqueue_delivery(tenant_id, delivery_id)
        return len(due)

    async def _enqueue_delivery(self, tenant_id: UUID, delivery_id: UUID, delay: float = 0.0) -> None:
        await self.queue.enqueue(
            DELIVER_JOB,
            tenant_id,
            {"delivery_id": str(delivery_id)},
            dedupe_key=f"{DELIVER_JOB}:{delivery_id}",
            delay=delay,
        )

    # --- delivering ------------------------------------------------------------------------

    async def _deliver_job(self, tenant_id: UUID, delivery_id: str) -> None:
        await self.deliver(tenant_id, UUID(delivery_id))

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self.settings.webhook_timeout_seconds,
                follow_redirects=False,
                transport=self._transport,
                headers={"User-Agent": f"Omnicloud-Webhooks/{__version__}"},
            )
        return self._http

    async def deliver(self, tenant_id: UUID, delivery_id: UUID) -> str | None:
        """One attempt at a delivery, if it is due; returns its status afterwards, or ``None``
        when there was nothing to do. A job that comes early (clocks differ a little between
        processes) or during another worker's lease is queued again for when it is due."""
        lease = self.settings.webhook_timeout_seconds + 30
        with tenant_scope(tenant_id):
            async with self.db.transaction() as session:
                attempt = await webhooks.claim(session, delivery_id, self.clock(), lease)
            if isinstance(attempt, webhooks.NotDue):
                await self._enqueue_delivery(tenant_id, delivery_id, self._wait_until(attempt.until))
                return None
            if attempt is None:
                return None
            status_code, error = await self._post(attempt)
            async with self.db.transaction() as session:
                out = await webhooks.record_result(
                    session,
                    delivery_id,
                    status_code=status_code,
                    error=error,
                    now=self.clock(),
                    max_attempts=self.settings.webhook_max_attempts,
                    rng=self.rng,
                )
        if out is None:
            return None
        if out.status == webhooks.PENDING and out.next_attempt_at is not None:
            await self._enqueue_delivery(tenant_id, delivery_id, self._wait_until(out.next_attempt_at))
        elif out.status == webhooks.FAILED:
            log.warning("webhook delivery %s failed after %d attempts", delivery_id, out.attempts)
        return out.status

    def _wait_until(self, when: datetime) -> float:
        return max((when - self.clock()).total_seconds(), 0.0) + 0.05

    async def _post(self, attempt: webhooks.Attempt) -> tuple[int | None, str | None]:
        timestamp = int(self.clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(attempt.secret, timestamp, attempt.body),
            "Omnicloud-Event-Id": str(attempt.event_id),
            "Omnicloud-Event-Type": attempt.event_type,
            "Omnicloud-Delivery-Id": str(attempt.delivery_id),
            "Omnicloud-Attempt": str(attempt.attempts),
        }
        try:
            response = await self._client().post(attempt.url, content=attempt.body, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}: {response.text[:200]}"

    # --- recovery --------------------------------------------------------------------------

    async def _active_tenants(self) -> list[UUID]:
        from omnicloud.operator import service as operator

        ids: list[UUID] = []
        cursor: str | None = None
        with operator_scope():
            async with self.db.transaction() as session:
                while True:
                    page, cursor = await operator.list_tenants(session, cursor, 500, "active")
                    ids.extend(t.id for t in page)
                    if cursor is None:
                        return ids

    async def _has_work(self, tenant_id: UUID) -> bool:
        with tenant_scope(tenant_id):
            async with self.db.transaction() as session:
                waiting = await session.scalar(
                    select(OutboxEvent.id).where(OutboxEvent.relayed_at.is_(None)).limit(1)
                )
                return waiting is not None or bool(await webhooks.due_deliveries(session, self.clock(), 1))

    async def sweep(self) -> int:
        """Relay every active tenant with unrelayed events or due deliveries; returns how many
        tenants had work. Run it periodically (:meth:`start`) to recover from crashes."""
        busy = 0
        for tenant_id in await self._active_tenants():
            try:
                if await self._has_work(tenant_id):
                    busy += 1
                    await self.relay_tenant(tenant_id)
            except Exception:
                log.exception("sweep failed for tenant %s", tenant_id)
        return busy

    async def _sweep_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("relay sweep failed")

    async def start(self, sweep_interval: float = 30.0) -> None:
        """Start the periodic sweep (the first one after ``sweep_interval`` seconds)."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(sweep_interval))

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None
