"""Catalog use cases."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.catalog.models import Sku
from omnicloud.core.errors import invalid
from omnicloud.core.tenancy import require_tenant


async def require_sku(session: AsyncSession, sku_id: UUID, *, field: str = "sku_id") -> Sku:
    """The SKU, or a 422 naming the field that referred to it."""
    sku = await session.get(Sku, (require_tenant(), sku_id))
    if sku is None:
        raise invalid(field, "no such SKU")
    return sku
