"""The core's own hook implementations, registered ``trylast`` so any plugin overrides them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from omnicloud import hookimpl


@hookimpl(trylast=True)
def resolve_unit_price(sku: Any, quantity: Decimal) -> Any:
    from omnicloud.catalog.schemas import UnitPrice

    if sku.list_price is None:
        return None
    return UnitPrice(unit_price=sku.list_price, source="list_price", detail={})
