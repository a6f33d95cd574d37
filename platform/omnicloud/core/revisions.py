"""Compiled configuration, cached per tenant and kept right by revision stamps.

A change to a tenant's prices, promotions or terms replaces that topic's stamp with a fresh id in
the same transaction. A reader reads the current stamps (one indexed statement) and reuses what it
compiled for exactly that stamp, or compiles again. No process can serve rules older than the
transaction it runs in, whether or not a cache invalidation message reached it. A stamp is never
reused, so what a transaction compiled from its own uncommitted change is never served after that
transaction rolls back: its stamp simply never becomes current.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.core.ids import new_id
from omnicloud.core.models import ConfigRevision
from omnicloud.core.tenancy import require_tenant

T = TypeVar("T")
Revision = UUID | None  # None: the topic was never changed
MAX_ENTRIES = 512


async def bump(session: AsyncSession, topic: str) -> None:
    """Mark ``topic`` changed for the current tenant; call it in the transaction of the change.
    The row update also serialises concurrent changes to the same topic, so a service that bumps
    before it validates sees every committed change of its rivals."""
    if await _restamp(session, topic):
        return
    try:
        async with session.begin_nested():
            session.add(ConfigRevision(topic=topic, stamp=new_id()))
    except IntegrityError:  # a concurrent first change created the row: restamp it
        await _restamp(session, topic)


async def _restamp(session: AsyncSession, topic: str) -> bool:
    result = await session.execute(
        update(ConfigRevision)
        .where(ConfigRevision.topic == topic)
        .values(stamp=new_id())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def current(session: AsyncSession, topics: tuple[str, ...]) -> dict[str, Revision]:
    """The current stamp of each topic, in one statement."""
    rows = await session.execute(
        select(ConfigRevision.topic, ConfigRevision.stamp).where(ConfigRevision.topic.in_(topics))
    )
    found = {topic: stamp for topic, stamp in rows}
    return {t: found.get(t) for t in topics}


class CompiledCache:
    """What was compiled for (tenant, topic) at one stamp; least recently used entries go first."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[tuple[UUID, str], tuple[Revision, Any]] = OrderedDict()
        self._max = max_entries

    async def get(self, topic: str, revision: Revision, build: Callable[[], Awaitable[T]]) -> T:
        key = (require_tenant(), topic)
        hit = self._entries.get(key)
        if hit is not None and hit[0] == revision:
            self._entries.move_to_end(key)
            return hit[1]  # type: ignore[no-any-return]
        value = await build()
        self._entries[key] = (revision, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self._entries.clear()


COMPILED = CompiledCache()
