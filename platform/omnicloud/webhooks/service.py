"""Webhook use cases: subscriptions, deliveries and the event log over REST, and the
database side of relaying and delivering (fan-out, claiming an attempt, recording its result).
The HTTP side lives in ``omnicloud.core.relay``."""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from urllib.parse import urlsplit
from uuid import UUID

import msgspec
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.core import audit, events
from omnicloud.core.errors import Conflict, NotFound, PreconditionRequired, invalid
from omnicloud.core.models import OutboxEvent, WebhookDelivery, WebhookSubscription
from omnicloud.core.paging import paged_query, split_page
from omnicloud.webhooks.schemas import (
    DeliveryOut,
    EventOut,
    EventRecord,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
    WebhookPatch,
)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
MAX_BACKOFF_SECONDS = 3600.0


# --- shapes --------------------------------------------------------------------------------


def webhook_out(s: WebhookSubscription) -> WebhookOut:
    return WebhookOut(
        id=s.id,
        url=s.url,
        event_types=list(s.event_types),
        description=s.description,
        active=s.active,
        version=s.version,
        created_at=s.created_at,
        updated_at=s.updated_at,
    )


def delivery_out(d: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut(
        id=d.id,
        webhook_id=d.subscription_id,
        event_id=d.event_id,
        event_type=d.event_type,
        status=d.status,
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at if d.status == PENDING else None,
        last_attempt_at=d.last_attempt_at,
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        delivered_at=d.delivered_at,
        created_at=d.created_at,
    )


def event_out(e: OutboxEvent) -> EventOut:
    return EventOut(id=e.id, type=e.type, tenant_id=e.tenant_id, created_at=e.created_at, payload=e.payload)


def event_record(e: OutboxEvent) -> EventRecord:
    return EventRecord(
        id=e.id,
        type=e.type,
        tenant_id=e.tenant_id,
        created_at=e.created_at,
        payload=e.payload,
        relayed_at=e.relayed_at,
    )


def _public(s: WebhookSubscription) -> dict[str, object]:
    """What audit and events may show: never the secret."""
    return {"url": s.url, "event_types": list(s.event_types), "active": s.active}


# --- subscriptions -------------------------------------------------------------------------


def check_url(url: str, field: str = "url") -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise invalid(field, "must be an http or https URL")
    if not parts.hostname:
        raise invalid(field, "must name a host")
    if parts.fragment:
        raise invalid(field, "must not contain a fragment")
    return url


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def matches(patterns: list[str], event_type: str) -> bool:
    """``"*"`` matches everything, ``"product.*"`` every ``product.`` event, else exact."""
    return any(fnmatchcase(event_type, p) for p in patterns)


async def _subscription(session: AsyncSession, webhook_id: UUID) -> WebhookSubscription:
    sub = await session.scalar(select(WebhookSubscription).where(WebhookSubscription.id == webhook_id))
    if sub is None:
        raise NotFound("no such webhook")
    return sub


async def create_webhook(session: AsyncSession, data: WebhookIn) -> WebhookCreated:
    check_url(data.url)
    sub = WebhookSubscription(
        url=data.url,
        secret=data.secret or new_webhook_secret(),
        event_types=sorted(set(data.event_types)),
        description=data.description,
        active=data.active,
    )
    session.add(sub)
    await session.flush()
    audit.record(session, "create", "webhook", sub.id, after=_public(sub))
    events.emit(session, "webhook.created", {"id": sub.id, **_public(sub)})
    return WebhookCreated(**msgspec.structs.asdict(webhook_out(sub)), secret=sub.secret)


async def list_webhooks(
    session: AsyncSession, cursor: str | None, limit: int, active: bool | None = None
) -> tuple[list[WebhookOut], str | None]:
    stmt = select(WebhookSubscription)
    if active is not None:
        stmt = stmt.where(WebhookSubscription.active.is_(active))
    rows = (await session.scalars(paged_query(stmt, WebhookSubscription.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [webhook_out(s) for s in items], nxt


async def get_webhook(session: AsyncSession, webhook_id: UUID) -> WebhookOut:
    return webhook_out(await _subscription(session, webhook_id))


async def update_webhook(
    session: AsyncSession, webhook_id: UUID, data: WebhookPatch, version: int | None
) -> WebhookOut:
    sub = await _subscription(session, webhook_id)  # 404 before 428: ids of others stay unknown
    if version is None:
        raise PreconditionRequired("send If-Match with the version you read", code="if_match_required")
    audit.check_version(sub, version, "webhook")
    before = _public(sub)
    if data.url is not None:
        sub.url = check_url(data.url)
    if data.event_types is not None:
        sub.event_types = sorted(set(data.event_types))
    if data.description is not None:
        sub.description = data.description
    if data.active is not None:
        sub.active = data.active
    sub.version += 1
    await session.flush()
    audit.record(session, "update", "webhook", sub.id, before=before, after=_public(sub))
    events.emit(session, "webhook.updated", {"id": sub.id, **_public(sub)})
    return webhook_out(sub)


async def deactivate_webhook(session: AsyncSession, webhook_id: UUID, version: int | None) -> WebhookOut:
    sub = await _subscription(session, webhook_id)
    audit.check_version(sub, version, "webhook")
    if sub.active:
        sub.active = False
        sub.version += 1
        await session.flush()
        audit.record(session, "deactivate", "webhook", sub.id, before={"active": True}, after=_public(sub))
        events.emit(session, "webhook.deactivated", {"id": sub.id, **_public(sub)})
    return webhook_out(sub)


# --- deliveries ----------------------------------------------------------------------------


async def list_deliveries(
    session: AsyncSession, webhook_id: UUID, status: str | None, cursor: str | None, limit: int
) -> tuple[list[DeliveryOut], str | None]:
    await _subscription(session, webhook_id)
    stmt = select(WebhookDelivery).where(WebhookDelivery.subscription_id == webhook_id)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    rows = (await session.scalars(paged_query(stmt, WebhookDelivery.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [delivery_out(d) for d in items], nxt


async def retry_delivery(
    session: AsyncSession, webhook_id: UUID, delivery_id: UUID, now: datetime
) -> DeliveryOut:
    """Put a failed delivery back in line with a fresh set of attempts."""
    sub = await _subscription(session, webhook_id)
    delivery = await session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.subscription_id == webhook_id
        )
    )
    if delivery is None:
        raise NotFound("no such delivery")
    if delivery.status != FAILED:
        raise Conflict(f"the delivery is {delivery.status}; only failed ones are retried", code="not_failed")
    if not sub.active:
        raise Conflict("the webhook is inactive; activate it first", code="webhook_inactive")
    delivery.status = PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = now
    await session.flush()
    audit.record(
        session,
        "retry",
        "webhook_delivery",
        delivery.id,
        before={"status": FAILED},
        after={"status": PENDING},
    )
    # The event wakes the relay after commit, and the relay queues every due delivery.
    events.emit(session, "webhook.delivery.retried", {"webhook_id": sub.id, "delivery_id": delivery.id})
    return delivery_out(delivery)


async def active_subscriptions(session: AsyncSession) -> list[WebhookSubscription]:
    stmt = select(WebhookSubscription).where(WebhookSubscription.active.is_(True))
    return list((await session.scalars(stmt.order_by(WebhookSubscription.id))).all())


def fan_out(
    session: AsyncSession, subscriptions: list[WebhookSubscription], event: OutboxEvent, now: datetime
) -> int:
    """Add a pending delivery of ``event`` for every subscription that wants it."""
    count = 0
    for sub in subscriptions:
        if matches(sub.event_types, event.type):
            session.add(
                WebhookDelivery(
                    subscription_id=sub.id,
                    event_id=event.id,
                    event_type=event.type,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
            count += 1
    return count


async def due_deliveries(session: AsyncSession, now: datetime, limit: int = 500) -> list[UUID]:
    stmt = (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


class Attempt(msgspec.Struct, kw_only=True):
    """Everything one HTTP attempt needs, read in the claiming transaction."""

    delivery_id: UUID
    url: str
    secret: str
    event_id: UUID
    event_type: str
    body: bytes
    attempts: int


class NotDue(msgspec.Struct, kw_only=True):
    """The delivery is pending but waits for its backoff or for another worker's lease."""

    until: datetime


async def claim(
    session: AsyncSession, delivery_id: UUID, now: datetime, lease: float
) -> Attempt | NotDue | None:
    """Take a due delivery for one attempt. :class:`NotDue` when it is pending but not due
    yet (backing off, or leased to another worker); ``None`` when there is nothing to do
    (delivered, failed, or gone).

    The claim counts the attempt and leases the row by moving ``next_attempt_at`` past the
    HTTP timeout, so no transaction stays open during the request and a worker that dies
    mid-request leaves a delivery that the sweep retries when the lease ends.
    """
    result = await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == PENDING,
            WebhookDelivery.next_attempt_at <= now,
        )
        .values(
            attempts=WebhookDelivery.attempts + 1,
            next_attempt_at=now + timedelta(seconds=lease),
            last_attempt_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        row = (
            await session.execute(
                select(WebhookDelivery.status, WebhookDelivery.next_attempt_at).where(
                    WebhookDelivery.id == delivery_id
                )
            )
        ).first()
        return NotDue(until=row.next_attempt_at) if row is not None and row.status == PENDING else None
    delivery = await session.scalar(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id))
    assert delivery is not None
    sub = await _subscription(session, delivery.subscription_id)
    if not sub.active:
        delivery.status = FAILED
        delivery.last_error = "webhook is inactive"
        await session.flush()
        return None
    event = await session.scalar(select(OutboxEvent).where(OutboxEvent.id == delivery.event_id))
    assert event is not None
    return Attempt(
        delivery_id=delivery.id,
        url=sub.url,
        secret=sub.secret,
        event_id=event.id,
        event_type=event.type,
        body=msgspec.json.encode(event_out(event)),
        attempts=delivery.attempts,
    )


def backoff_seconds(attempts: int, rng: Callable[[], float] = random.random) -> float:
    """Wait after ``attempts`` failed attempts: 2**attempts seconds, capped, ±20 % jitter."""
    return min(2.0**attempts, MAX_BACKOFF_SECONDS) * (0.8 + 0.4 * rng())


async def record_result(
    session: AsyncSession,
    delivery_id: UUID,
    *,
    status_code: int | None,
    error: str | None,
    now: datetime,
    max_attempts: int,
    rng: Callable[[], float] = random.random,
) -> DeliveryOut | None:
    """Store the outcome of an attempt: delivered on 2xx, else back off or give up."""
    delivery = await session.scalar(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id))
    if delivery is None or delivery.status != PENDING:
        return None
    delivery.last_status_code = status_code
    if status_code is not None and 200 <= status_code < 300:
        delivery.status = DELIVERED
        delivery.delivered_at = now
        delivery.last_error = None
    else:
        delivery.last_error = (error or f"HTTP {status_code}")[:500]
        if delivery.attempts >= max_attempts:
            delivery.status = FAILED
        else:
            delivery.next_attempt_at = now + timedelta(seconds=backoff_seconds(delivery.attempts, rng))
    await session.flush()
    return delivery_out(delivery)


# --- the event log -------------------------------------------------------------------------


async def list_events(
    session: AsyncSession, type_filter: str | None, cursor: str | None, limit: int
) -> tuple[list[EventRecord], str | None]:
    stmt = select(OutboxEvent)
    if type_filter and type_filter != "*":
        if type_filter.endswith(".*"):
            stmt = stmt.where(OutboxEvent.type.startswith(type_filter[:-1], autoescape=True))
        else:
            stmt = stmt.where(OutboxEvent.type == type_filter)
    rows = (await session.scalars(paged_query(stmt, OutboxEvent.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [event_record(e) for e in items], nxt


async def get_event(session: AsyncSession, event_id: UUID) -> EventRecord:
    event = await session.scalar(select(OutboxEvent).where(OutboxEvent.id == event_id))
    if event is None:
        raise NotFound("no such event")
    return event_record(event)
