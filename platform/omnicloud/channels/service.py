"""Channel use cases: customers, the dealer tree, sales orgs."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.channels.models import Customer
from omnicloud.core.errors import invalid
from omnicloud.core.security import Principal
from omnicloud.core.tenancy import require_tenant


async def require_customer(
    session: AsyncSession, customer_id: UUID, *, field: str = "customer_id"
) -> Customer:
    """The customer, or a 422 naming the field that referred to it."""
    customer = await session.get(Customer, (require_tenant(), customer_id))
    if customer is None:
        raise invalid(field, "no such customer")
    return customer


async def dealer_scope_path(session: AsyncSession, principal: Principal) -> str | None:
    """The dealer-tree path prefix a dealer user may see (its customer and every sub-dealer),
    or None for users who are not bound to a customer. Filter with
    ``Customer.path.startswith(prefix)``."""
    if principal.customer_id is None:
        return None
    path = await session.scalar(select(Customer.path).where(Customer.id == principal.customer_id))
    if path is None:  # the bound customer is gone: see nothing rather than everything
        return "/nothing/"
    return path
