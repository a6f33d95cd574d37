"""Tables of the cross-cutting machinery: audit log, outbox, idempotency records, webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from omnicloud.core.db import TenantOwned, tenant_fk, utcnow


class AuditEntry(TenantOwned):
    """Who did what, when, with the object before and after. Append-only."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index(None, "tenant_id", "object_type", "object_id"),
        Index(None, "tenant_id", "actor"),
    )

    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40))
    object_type: Mapped[str] = mapped_column(String(60))
    object_id: Mapped[str] = mapped_column(String(80))
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]


class OutboxEvent(TenantOwned):
    """A domain event written in the same transaction as the change it describes."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index(None, "tenant_id", "relayed_at", "id"),
        Index(None, "tenant_id", "type", "id"),
    )

    type: Mapped[str] = mapped_column(String(80))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    relayed_at: Mapped[datetime | None]


class IdempotencyRecord(TenantOwned):
    """The stored first response to a POST carrying an ``Idempotency-Key``."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "key"),)

    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int]
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookSubscription(TenantOwned):
    """A tenant's HTTP endpoint that receives matching events, signed with ``secret``.

    The secret is kept in the clear because every delivery signs with it; it is shown to the
    tenant once, when the subscription is created.
    """

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (Index(None, "tenant_id", "active"),)

    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(100))
    event_types: Mapped[list[str]]
    description: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookDelivery(TenantOwned):
    """One event for one subscription: attempted until delivered or out of attempts."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        tenant_fk("subscription_id", "webhook_subscriptions"),
        tenant_fk("event_id", "outbox_events"),
        UniqueConstraint("tenant_id", "subscription_id", "event_id"),
        Index(None, "tenant_id", "status", "next_attempt_at"),
        Index(None, "tenant_id", "subscription_id", "id"),
    )

    subscription_id: Mapped[UUID]
    event_id: Mapped[UUID]
    event_type: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TenantPlugin(TenantOwned):
    """A plugin enabled for a tenant, with its validated settings."""

    __tablename__ = "tenant_plugins"
    __table_args__ = (UniqueConstraint("tenant_id", "plugin"),)

    plugin: Mapped[str] = mapped_column(String(80))
    enabled: Mapped[bool] = mapped_column(default=True)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ConfigRevision(TenantOwned):
    """A stamp per tenant and topic (``prices``, ``promotions``, ...), replaced by a fresh one in the
    transaction of every change to that configuration; compiled caches are keyed by it (see
    core.revisions)."""

    __tablename__ = "config_revisions"
    __table_args__ = (UniqueConstraint("tenant_id", "topic"),)

    topic: Mapped[str] = mapped_column(String(40))
    stamp: Mapped[UUID]
