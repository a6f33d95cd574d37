"""Channel use cases: customers, the dealer tree, sales orgs."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.channels.models import Customer
from omnicloud.core.errors import invalid
from omnicloud.core.tenancy import require_tenant


async def require_customer(
    session: AsyncSession, customer_id: UUID, *, field: str = "customer_id"
) -> Customer:
    """The customer, or a 422 naming the field that referred to it."""
    customer = await session.get(Customer, (require_tenant(), customer_id))
    if customer is None:
        raise invalid(field, "no such customer")
    return customer
