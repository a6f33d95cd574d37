"""The audit trail: services call :func:`record` inside their transaction."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.core import events
from omnicloud.core.errors import PreconditionFailed
from omnicloud.core.models import AuditEntry
from omnicloud.core.security import current_principal


def snapshot(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """A JSON-safe picture of an object's fields, for before/after."""
    return msgspec.to_builtins({f: getattr(obj, f) for f in fields})


def record(
    session: AsyncSession,
    action: str,
    object_type: str,
    object_id: Any,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    actor: str | None = None,
) -> None:
    p = current_principal()
    session.add(
        AuditEntry(
            actor=actor or (p.actor if p else "system"),
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            before=before,
            after=after,
        )
    )


def record_change(
    session: AsyncSession,
    object_type: str,
    object_id: Any,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """One write's audit entry plus its ``<object_type>.created|updated|deleted`` outbox event."""
    action = "create" if before is None else "delete" if after is None else "update"
    record(session, action, object_type, object_id, before=before, after=after)
    events.emit(session, f"{object_type}.{action}d", {"id": str(object_id), **(after or before or {})})


def check_version(obj: Any, expected: int | None, what: str) -> None:
    """412 when the caller's If-Match version is not the object's current one."""
    if expected is not None and obj.version != expected:
        raise PreconditionFailed(f"the {what} is at version {obj.version}", code="stale_version")
