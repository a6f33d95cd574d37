"""The plugin contract.

Every hook takes keyword arguments only; an implementation may accept any subset of them,
so a hook can grow an argument without breaking existing plugins. Hooks come in two phases:

* **Registration** hooks run once at start-up for every *installed* plugin. They receive a
  ``register`` callback; the core validates what is registered.
* **Tenant** hooks run only for plugins the calling tenant has *enabled*. Async
  implementations return awaitables that the core awaits.

docs/plugins.md documents each hook with an example; a test fails when one is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pluggy

hookspec = pluggy.HookspecMarker("omnicloud")


# --- registration (once, at start-up, all installed plugins) ---------------------------------


@hookspec
def register_routes(register: Callable[..., None]) -> None:
    """Register litestar route handlers or controllers: ``register(handler, ...)``.

    They are mounted under ``/api/v1/x/<plugin>/`` behind a guard that answers 404 to tenants
    that have not enabled the plugin.
    """


@hookspec
def register_permissions(register: Callable[[str, str], None]) -> None:
    """Register permissions: ``register("jewelry:board:write", "Set gold board prices")``.

    Names must start with the plugin's short name and a colon. Tenant admins grant them
    through roles; ``tenant_admin`` has them all.
    """


@hookspec
def register_settings(register: Callable[[type], None]) -> None:
    """Register the plugin's settings schema, a ``msgspec.Struct`` whose fields all have
    defaults: ``register(JewelrySettings)``. Settings sent by a tenant admin are validated
    against it, and a bad field gets a 422 naming it.
    """


@hookspec
def register_migrations(register: Callable[[str], None]) -> None:
    """Register the absolute path of the plugin's alembic versions folder. Its revisions form
    a branch labelled with the plugin name that ``depends_on`` a platform revision.
    """


@hookspec
def register_jobs(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register background jobs: ``register("industry_jewelry.refresh", async_fn)``. A job
    receives ``tenant_id`` and its payload as keyword arguments and runs with that tenant in
    context. Jobs must be idempotent.
    """


@hookspec
def register_cli_commands(register: Callable[[Any], None]) -> None:
    """Register ``click`` commands; they appear under ``omnicloud x <plugin> ...``."""


# --- tenant lifecycle ----------------------------------------------------------------------


@hookspec
def tenant_plugin_enabled(session: Any, tenant_id: UUID, settings: Any) -> Any:
    """The plugin was just enabled (or re-enabled) for a tenant. Do per-tenant set-up here,
    idempotently, inside the caller's transaction (never in a migration). May be async.
    """


@hookspec
def tenant_plugin_disabled(session: Any, tenant_id: UUID) -> Any:
    """The plugin was disabled for a tenant. Its data stays; only its effects stop. May be async."""


@hookspec
def apply_manifest(session: Any, tenant_id: UUID, section: dict[str, Any]) -> Any:
    """``omnicloud tenants apply`` found an ``[x.<plugin>]`` table in a tenant manifest: apply
    it idempotently (a second run changes nothing) inside the caller's transaction. Raise
    ``omnicloud.core.errors.Unprocessable`` naming the field for bad input. May be async.
    """


# --- tenant hooks called by the core (enabled plugins only) ------------------------------


@hookspec(firstresult=True)
def resolve_unit_price(
    session: Any,
    tenant_id: UUID,
    sku: Any,
    quantity: Decimal,
    customer_id: UUID | None,
    at: datetime,
    settings: dict[str, Any],
) -> Any:
    """Price one unit of ``sku`` (a ``omnicloud.catalog.schemas.SkuOut``) for ``quantity``.

    Return a ``omnicloud.catalog.schemas.UnitPrice`` to decide the price, or ``None`` to
    leave it to the next implementation. The core default (registered ``trylast``) answers
    with the SKU's list price. ``settings`` maps each enabled plugin to its settings. May be
    async.
    """


@hookspec
def after_event(event: Any, tenant_id: UUID) -> Any:
    """A domain event was committed (``omnicloud.webhooks.schemas.EventOut``). Called from the outbox
    relay after commit, so a failure here never rolls back the change; it is logged and the
    event is not retried for this plugin. May be async.
    """
