"""Webhook and event request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2000, description="An http(s) URL")]
EventPattern = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=80,
        pattern=r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$",
        description='An event type ("product.created"), a prefix ("product.*") or "*"',
    ),
]
EventPatterns = Annotated[list[EventPattern], msgspec.Meta(min_length=1, max_length=50)]
Secret = Annotated[
    str,
    msgspec.Meta(min_length=16, max_length=100, pattern=r"^[\x21-\x7e]+$", description="Signing secret"),
]
Description = Annotated[str, msgspec.Meta(max_length=200)]


class Input(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: unknown fields are rejected."""


class WebhookIn(Input):
    url: Url
    event_types: EventPatterns
    secret: Secret | None = None  # generated when omitted
    description: Description | None = None
    active: bool = True


class WebhookPatch(Input):
    url: Url | None = None
    event_types: EventPatterns | None = None
    description: Description | None = None
    active: bool | None = None


class WebhookOut(msgspec.Struct, kw_only=True):
    id: UUID
    url: str
    event_types: list[str]
    description: str | None
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookOut, kw_only=True):
    secret: str  # shown once, never again


class WebhookPage(msgspec.Struct, kw_only=True):
    items: list[WebhookOut]
    next_cursor: str | None


class DeliveryOut(msgspec.Struct, kw_only=True):
    id: UUID
    webhook_id: UUID
    event_id: UUID
    event_type: str
    status: str  # pending | delivered | failed
    attempts: int
    next_attempt_at: datetime | None  # only while pending
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class DeliveryPage(msgspec.Struct, kw_only=True):
    items: list[DeliveryOut]
    next_cursor: str | None


class EventOut(msgspec.Struct, kw_only=True, frozen=True):
    """A committed domain event: the webhook body and what ``after_event`` receives."""

    id: UUID
    type: str
    tenant_id: UUID
    created_at: datetime
    payload: dict[str, Any]


class EventRecord(EventOut, kw_only=True, frozen=True):
    relayed_at: datetime | None


class EventPage(msgspec.Struct, kw_only=True):
    items: list[EventRecord]
    next_cursor: str | None
