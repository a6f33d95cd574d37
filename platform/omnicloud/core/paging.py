"""Cursor pagination: ``limit`` (capped) and an opaque ``cursor``.

Ids are UUIDv7, so ordering by id is creation order and the cursor is simply the last id seen.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, TypeVar
from uuid import UUID

from omnicloud.core.errors import invalid

T = TypeVar("T")


def encode_cursor(last_id: UUID) -> str:
    return base64.urlsafe_b64encode(last_id.bytes).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> UUID | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return UUID(bytes=raw)
    except (ValueError, TypeError):
        raise invalid("cursor", "not a cursor this API issued") from None


def paged_query(stmt: Any, id_column: Any, cursor: str | None, limit: int) -> Any:
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(id_column > after)
    return stmt.order_by(id_column).limit(limit + 1)


def split_page(rows: Sequence[T], limit: int, id_of: Any = lambda r: r.id) -> tuple[list[T], str | None]:
    """Trim the extra row fetched by :func:`paged_query` and compute the next cursor."""
    items = list(rows[:limit])
    nxt = encode_cursor(id_of(items[-1])) if len(rows) > limit and items else None
    return items, nxt
