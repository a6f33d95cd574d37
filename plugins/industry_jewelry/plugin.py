"""Hook implementations of the jewelry pack (this module is the plugin object).

Installed through the ``omnicloud`` entry point ``industry_jewelry = "industry_jewelry.plugin"``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from industry_jewelry import pricing, service
from industry_jewelry.schemas import JewelrySettings
from omnicloud import hookimpl

MIGRATIONS = Path(__file__).resolve().parent / "migrations" / "versions"


# --- registration ------------------------------------------------------------------------------


@hookimpl
def register_routes(register: Callable[..., None]) -> None:
    from industry_jewelry.api import ROUTES

    register(*ROUTES)


@hookimpl
def register_permissions(register: Callable[[str, str], None]) -> None:
    register("jewelry:board:read", "Read the gold board, purities and trade-in quotes")
    register("jewelry:board:write", "Set gold board prices and maintain purities")


@hookimpl
def register_settings(register: Callable[[type], None]) -> None:
    register(JewelrySettings)


@hookimpl
def register_migrations(register: Callable[[str], None]) -> None:
    register(str(MIGRATIONS))


# --- tenant lifecycle --------------------------------------------------------------------------


@hookimpl
async def tenant_plugin_enabled(session: Any) -> None:
    await service.seed_purities(session)


@hookimpl
async def apply_manifest(session: Any, section: dict[str, Any]) -> bool:
    return await service.apply_manifest(session, section)


# --- pricing -----------------------------------------------------------------------------------


@hookimpl
def resolve_unit_price(
    session: Any, sku: Any, at: datetime, settings: dict[str, Any]
) -> Awaitable[Any] | None:
    # Decide synchronously: in a firstresult hook an awaitable counts as an answer, so a SKU
    # that is not jewelry must get a plain None for the core default to run.
    if not pricing.is_jewelry(getattr(sku, "attributes", None)):
        return None
    return service.resolve_unit_price(session, sku, at, settings.get(service.PLUGIN))
