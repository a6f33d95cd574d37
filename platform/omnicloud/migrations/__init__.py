"""Alembic environment: the platform branch plus one branch per installed plugin."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

HERE = Path(__file__).resolve().parent
PLATFORM_BRANCH = "platform"


def alembic_config(url: str, plugin_dirs: list[str]) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("path_separator", "os")
    locations = [str(HERE / "versions"), *plugin_dirs]
    import os

    cfg.set_main_option("version_locations", os.pathsep.join(locations))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def plugin_migration_dirs(plugins: Any) -> list[str]:
    dirs: list[str] = []
    for info in plugins.plugins.values():
        dirs.extend(info.migrations)
    return dirs


async def run(engine: AsyncEngine, cfg: Config, fn: Any, *args: Any) -> Any:
    """Run an alembic command on an async engine's connection, in one transaction."""

    def _run(sync_conn: Any) -> Any:
        cfg.attributes["connection"] = sync_conn
        return fn(cfg, *args)

    async with engine.begin() as conn:
        return await conn.run_sync(_run)


async def upgrade(engine: AsyncEngine, plugins: Any, target: str = "heads") -> None:
    cfg = alembic_config(str(engine.url), plugin_migration_dirs(plugins))
    await run(engine, cfg, command.upgrade, target)


async def downgrade(engine: AsyncEngine, plugins: Any, target: str) -> None:
    cfg = alembic_config(str(engine.url), plugin_migration_dirs(plugins))
    await run(engine, cfg, command.downgrade, target)


def current_heads(sync_conn: Any) -> tuple[str, ...]:
    from alembic.runtime.migration import MigrationContext

    return tuple(MigrationContext.configure(sync_conn).get_current_heads())


def all_heads(plugins: Any, url: str = "sqlite://") -> tuple[str, ...]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(url, plugin_migration_dirs(plugins)))
    return tuple(script.get_heads())


def pending(sync_conn: Any, plugins: Any) -> list[str]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://", plugin_migration_dirs(plugins)))
    ctx = MigrationContext.configure(sync_conn)
    applied: set[str] = set()
    for head in ctx.get_current_heads():
        applied.update(r.revision for r in script.walk_revisions("base", head))
    return [r.revision for r in script.walk_revisions() if r.revision not in applied]


def sync_run(coro: Any) -> Any:
    return asyncio.run(coro)
