"""Domain events: written to the outbox in the caller's transaction, relayed after commit."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.core.models import OutboxEvent

PENDING_KEY = "omnicloud_outbox_pending"


def emit(session: AsyncSession, type_: str, payload: Any) -> OutboxEvent:
    """Add an event to the outbox; it becomes visible to the relay only if the caller commits."""
    event = OutboxEvent(type=type_, payload=msgspec.to_builtins(payload))
    session.add(event)
    session.info.setdefault(PENDING_KEY, set()).add(event.tenant_id)
    return event
