"""The application factory."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Litestar, Router, get
from litestar.config.cors import CORSConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers import BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from sqlalchemy import text

from omnicloud import __version__
from omnicloud import models as _models  # noqa: F401  (complete metadata)
from omnicloud.admin.api import AuditController, PluginsController
from omnicloud.core.cache import BUS
from omnicloud.core.db import Database
from omnicloud.core.deps import DEPENDENCIES
from omnicloud.core.errors import NotFound, Problem
from omnicloud.core.http import CredentialMiddleware, authenticate_raw, handle_exception
from omnicloud.core.jobs import make_queue
from omnicloud.core.ratelimit import RateLimiter
from omnicloud.core.relay import Relay
from omnicloud.core.tenancy import current_tenant, tenant_scope
from omnicloud.identity.api import IdentityController
from omnicloud.operator.api import OperatorController
from omnicloud.plugins import PluginManager
from omnicloud.pools.rebates import job as rebate_job
from omnicloud.settings import Settings

log = logging.getLogger("omnicloud")

DOMAIN_ROUTES: list[Any] = [OperatorController, IdentityController, PluginsController, AuditController]


def _domain_routes() -> list[Any]:
    from omnicloud.catalog.api import ROUTES as catalog
    from omnicloud.channels.api import ROUTES as channels
    from omnicloud.distribution.api import ROUTES as distribution
    from omnicloud.inventory.api import ROUTES as inventory
    from omnicloud.policies.approvals.api import ROUTES as approvals
    from omnicloud.policies.prices.api import ROUTES as prices
    from omnicloud.policies.promos.api import ROUTES as promos
    from omnicloud.policies.quotes.api import ROUTES as quotes
    from omnicloud.policies.terms.api import ROUTES as terms
    from omnicloud.pools.assets.api import ROUTES as assets
    from omnicloud.pools.funds.api import ROUTES as funds
    from omnicloud.pools.invoices.api import ROUTES as invoices
    from omnicloud.pools.orders.api import ROUTES as orders
    from omnicloud.pools.rebates.api import ROUTES as rebate_accruals
    from omnicloud.pools.sales.api import ROUTES as sales
    from omnicloud.webhooks.api import ROUTES as webhooks

    return [
        *DOMAIN_ROUTES,
        *catalog,
        *channels,
        *inventory,
        *prices,
        *promos,
        *terms,
        *approvals,
        *quotes,
        *funds,
        *assets,
        *orders,
        *rebate_accruals,
        *sales,
        *invoices,
        *distribution,
        *webhooks,
    ]


@get("/healthz", operation_id="healthz", summary="Liveness", include_in_schema=True, tags=["health"])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/readyz",
    operation_id="readyz",
    summary="Readiness: database (and Redis when configured)",
    tags=["health"],
)
async def readyz(state: State) -> dict[str, str]:
    out = {"database": "ok"}
    try:
        async with state.db.engine.connect() as conn:
            await conn.execute(text("select 1"))
    except Exception as exc:
        raise Problem(f"database unavailable: {type(exc).__name__}", status=503, code="not_ready") from None
    if state.redis is not None:
        try:
            await state.redis.ping()
            out["redis"] = "ok"
        except Exception:
            out["redis"] = "unavailable (degraded: in-process fallbacks)"
    return out


def plugin_guard(name: str) -> Any:
    """404 for tenants that have not enabled the plugin."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        from omnicloud.admin.service import enabled_plugins

        tid = current_tenant()
        if tid is None:
            raise NotFound("not found")
        db: Database = connection.app.state.db
        with tenant_scope(tid):
            async with db.transaction() as session:
                enabled = await enabled_plugins(session)
        if name not in enabled:
            raise NotFound("not found", code="plugin_not_enabled")

    return guard


def create_app(
    settings: Settings | None = None, *, plugins: PluginManager | None = None, db: Database | None = None
) -> Litestar:
    settings = settings or Settings.from_env()
    plugins = plugins or PluginManager.discover(settings.plugins)
    db = db or Database(settings.database_url, pool_size=settings.db_pool_size)
    redis = None
    if settings.redis_url:
        import redis.asyncio as aioredis

        redis = aioredis.from_url(settings.redis_url, socket_connect_timeout=0.5, socket_timeout=0.5)
    limiter = RateLimiter(
        settings.rate_limit_per_key, settings.rate_limit_per_tenant, redis, prefix=settings.redis_prefix
    )

    routes: list[Any] = [healthz, readyz, *_domain_routes()]
    for name, info in sorted(plugins.plugins.items()):
        if info.routes:
            routes.append(
                Router(
                    path=f"/api/v1/x/{name}",
                    route_handlers=info.routes,
                    guards=[plugin_guard(name)],
                    tags=[name],
                )
            )

    queue = make_queue(settings, redis)
    for job_name, job in plugins.jobs.items():
        queue.register(job_name, job)
    queue.register(rebate_job.ACCRUAL_JOB, rebate_job.accrual_job(db))
    relay = Relay(db, plugins, queue, redis, settings)
    state = State(
        {
            "settings": settings,
            "db": db,
            "plugins": plugins,
            "redis": redis,
            "limiter": limiter,
            "queue": queue,
            "relay": relay,
        }
    )

    async def authenticate(raw: str, path: str) -> Any:
        return await authenticate_raw(state, raw, path)

    BUS.configure(redis, settings.redis_prefix)

    async def on_startup() -> None:
        await BUS.start()
        await queue.start()
        await relay.start()

    async def on_shutdown() -> None:
        await relay.stop()
        await queue.stop()
        await BUS.stop()
        await db.dispose()
        if redis is not None:
            await redis.aclose()

    return Litestar(
        route_handlers=routes,
        state=state,
        dependencies=DEPENDENCIES,
        middleware=[DefineMiddleware(CredentialMiddleware, authenticate=authenticate, limit=limiter.check)],
        exception_handlers={Exception: handle_exception},
        request_max_body_size=settings.max_body_bytes,
        cors_config=CORSConfig(allow_origins=list(settings.cors_origins)) if settings.cors_origins else None,
        openapi_config=OpenAPIConfig(
            title="Omnicloud API",
            version=__version__,
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        debug=settings.debug,
        logging_config=None,
    )
