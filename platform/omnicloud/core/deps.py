"""Dependencies every controller may declare: ``session``, ``reader``, ``principal``, ``state``
pieces, and the paging query parameters."""

from __future__ import annotations

from typing import Annotated, Any

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.core.db import TenantReader
from omnicloud.core.http import provide_principal, provide_session
from omnicloud.core.security import Principal

Limit = Annotated[int | None, QueryParameter(name="limit", ge=1, le=1000, description="Page size (capped)")]
Cursor = Annotated[
    str | None, QueryParameter(name="cursor", max_length=200, description="Opaque cursor from next_cursor")
]


def page_limit(state: Any, limit: int | None) -> int:
    settings = state.settings
    if limit is None:
        return settings.page_limit_default
    return min(limit, settings.page_limit_max)


def provide_reader(state: State) -> TenantReader:
    return state.db.reader


DEPENDENCIES = {
    "session": Provide(provide_session),
    "reader": Provide(provide_reader, sync_to_thread=False),
    "principal": Provide(provide_principal, sync_to_thread=False),
}


Session = NamedDependency[AsyncSession]
"""Declare ``session: Session`` to get the request's transaction."""

Reader = NamedDependency[TenantReader]
"""Declare ``reader: Reader`` on a hot GET to run prebuilt :class:`~omnicloud.core.db.TenantQuery`
statements without a session or a transaction."""

Caller = NamedDependency[Principal]
"""Declare ``principal: Caller`` to get the authenticated principal."""
