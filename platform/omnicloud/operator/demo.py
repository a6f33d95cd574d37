"""``omnicloud serve --demo``: migrate, apply the demo manifests, and hand out credentials.

Secrets are stored hashed and shown once, so every demo start revokes the previous demo
credentials and issues fresh ones; the data itself is applied idempotently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from omnicloud import migrations
from omnicloud.core.db import Database
from omnicloud.core.tenancy import operator_scope
from omnicloud.operator import tokens
from omnicloud.operator.manifest import apply_directory
from omnicloud.operator.models import Tenant
from omnicloud.plugins import PluginManager
from omnicloud.settings import Settings

DEMO_KEY_NAME = "demo key"


def find_tenants_dir(explicit: Path | None = None) -> Path:
    candidates = (
        [explicit] if explicit else [Path.cwd() / "tenants", Path(__file__).resolve().parents[3] / "tenants"]
    )
    for candidate in candidates:
        if candidate is not None and candidate.is_dir() and any(candidate.glob("*.toml")):
            return candidate
    raise SystemExit(f"no tenant manifests found (looked in {', '.join(str(c) for c in candidates)})")


async def prepare_demo(settings: Settings, base_url: str, tenants_dir: Path | None = None) -> dict[str, Any]:
    plugins = PluginManager.discover(settings.plugins)
    directory = find_tenants_dir(tenants_dir)
    db = Database(settings.owner_database_url, pool_size=2)
    try:
        await migrations.upgrade(db.engine, plugins)
        results = await apply_directory(db, plugins, directory, progress=True)
        await tokens.revoke_tokens(db, "demo")
        operator_token = await tokens.create_token(db, "demo")
        tenants = [await _demo_credentials(db, r.slug) for r in results]
    finally:
        await db.dispose()
    return {"base_url": base_url, "operator_token": operator_token, "tenants": tenants}


async def _demo_credentials(db: Database, slug: str) -> dict[str, Any]:
    """Fresh demo keys for the tenant's admin and every seeded user; old demo keys are revoked."""
    from omnicloud.admin.service import enabled_plugin_names
    from omnicloud.identity import service as identity
    from omnicloud.operator.service import within_tenant

    with operator_scope():
        async with db.transaction() as session:
            tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
            assert tenant is not None
            async with within_tenant(session, tenant.id):
                issued = await identity.rotate_named_keys(session, tenant.id, DEMO_KEY_NAME)
                plugin_names = await enabled_plugin_names(session)
    users = [
        {
            "email": u.email,
            "role": u.role,
            "customer_id": str(u.customer_id) if u.customer_id else None,
            "api_key": secret,
        }
        for u, secret in issued
    ]
    admin = next(u for u in users if u["role"] == "tenant_admin")
    return {
        "slug": tenant.slug,
        "name": tenant.name,
        "api_key": admin["api_key"],
        "plugins": plugin_names,
        "users": users,
    }
