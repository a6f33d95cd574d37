"""The tenant of the current request or job.

The tenant always comes from the credential, never from a header the caller picks. It lives
in a context variable; the database layer reads it to filter every query (see ``core.db``).
Operator services that must see across tenants enter :func:`operator_scope` explicitly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from uuid import UUID

_tenant: ContextVar[UUID | None] = ContextVar("omnicloud_tenant", default=None)
_operator: ContextVar[bool] = ContextVar("omnicloud_operator_scope", default=False)


class NoTenant(RuntimeError):
    """A tenant-owned table was touched with no tenant in context."""


def current_tenant() -> UUID | None:
    return _tenant.get()


def require_tenant() -> UUID:
    tid = _tenant.get()
    if tid is None:
        raise NoTenant("no tenant in context: tenant-owned data needs a tenant")
    return tid


def in_operator_scope() -> bool:
    return _operator.get()


@contextmanager
def tenant_scope(tenant_id: UUID) -> Iterator[UUID]:
    token = _tenant.set(tenant_id)
    op = _operator.set(False)
    try:
        yield tenant_id
    finally:
        _operator.reset(op)
        _tenant.reset(token)


@contextmanager
def operator_scope() -> Iterator[None]:
    """Lift the tenant filter for operator services (tenant provisioning and inspection)."""
    token = _tenant.set(None)
    op = _operator.set(True)
    try:
        yield
    finally:
        _operator.reset(op)
        _tenant.reset(token)


def set_tenant(tenant_id: UUID | None) -> None:
    """Bind the tenant for the rest of the current task (a request's auth step)."""
    _tenant.set(tenant_id)
