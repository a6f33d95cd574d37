"""The ``omnicloud`` command."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec

from omnicloud.settings import Settings

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def _plugins(settings: Settings) -> Any:
    from omnicloud.plugins import PluginManager

    return PluginManager.discover(settings.plugins)


def _owner_db(settings: Settings) -> Any:
    from omnicloud.core.db import Database

    return Database(settings.owner_database_url, pool_size=2)


async def _with_db(settings: Settings, fn: Callable[[Any], Awaitable[T]]) -> T:
    db = _owner_db(settings)
    try:
        return await fn(db)
    finally:
        await db.dispose()


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(msgspec.to_builtins(value), indent=2, ensure_ascii=False))


def _fail(message: str, code: int = 2) -> None:
    click.secho(message, fg="red", err=True)
    sys.exit(code)


@click.group()
@click.version_option(package_name="omnicloud")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Omnicloud: multi-tenant marketing cloud."""
    ctx.obj = Settings.from_env()


# --- serve ---------------------------------------------------------------------------------


@main.command()
@click.option(
    "--demo", is_flag=True, help="Migrate, apply tenants/*.toml, seed demo data and print credentials."
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes.")
@click.option(
    "--tenants-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Manifests for --demo (default: ./tenants, then the repository's).",
)
@click.pass_obj
def serve(
    settings: Settings, demo: bool, host: str, port: int, workers: int, tenants_dir: Path | None
) -> None:
    """Run the HTTP server."""
    import uvicorn

    if demo:
        from omnicloud.operator.demo import prepare_demo

        base_url = f"http://{host}:{port}"
        creds = run(prepare_demo(settings, base_url, tenants_dir))
        Path("demo-credentials.json").write_text(json.dumps(creds, indent=2, ensure_ascii=False))
        click.secho(f"\nOmnicloud demo at {base_url}  (API docs: {base_url}/schema)", fg="green", bold=True)
        click.echo(f"operator token: {creds['operator_token']}")
        for t in creds["tenants"]:
            click.echo(
                f"tenant {t['slug']} ({t['name']}), plugins {t['plugins']}:\n  admin API key: {t['api_key']}"
            )
        click.echo("written to demo-credentials.json\n")
    uvicorn.run("omnicloud.asgi:app", host=host, port=port, workers=workers, log_level="info")


# --- db --------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database migrations and roles (run as the owner: OMNICLOUD_MIGRATION_DATABASE_URL)."""


@db.command("upgrade")
@click.argument("target", default="heads")
@click.pass_obj
def db_upgrade(settings: Settings, target: str) -> None:
    """Upgrade the platform and every plugin branch (default: all heads)."""
    from rich.console import Console

    from omnicloud import migrations

    plugins = _plugins(settings)
    with Console(stderr=True).status(f"upgrading to {target}"):
        run(_with_db(settings, lambda d: migrations.upgrade(d.engine, plugins, target)))
    click.echo(f"upgraded to {target}")


@db.command("downgrade")
@click.argument("target")
@click.pass_obj
def db_downgrade(settings: Settings, target: str) -> None:
    """Downgrade, e.g. ``industry_jewelry@base`` to remove a plugin's tables."""
    from omnicloud import migrations

    plugins = _plugins(settings)
    run(_with_db(settings, lambda d: migrations.downgrade(d.engine, plugins, target)))
    click.echo(f"downgraded to {target}")


@db.command("current")
@click.pass_obj
def db_current(settings: Settings) -> None:
    """Show the applied revisions."""
    from omnicloud import migrations

    async def go(d: Any) -> tuple[str, ...]:
        async with d.engine.connect() as conn:
            return await conn.run_sync(migrations.current_heads)

    heads = run(_with_db(settings, go))
    click.echo("\n".join(heads) if heads else "(empty database)")


@db.command("pending")
@click.pass_obj
def db_pending(settings: Settings) -> None:
    """List revisions not yet applied; exit 1 when there are any."""
    from omnicloud import migrations

    plugins = _plugins(settings)

    async def go(d: Any) -> list[str]:
        async with d.engine.connect() as conn:
            return await conn.run_sync(lambda c: migrations.pending(c, plugins))

    todo = run(_with_db(settings, go))
    click.echo("\n".join(todo) if todo else "up to date")
    sys.exit(1 if todo else 0)


@db.command("create-app-role")
@click.argument("role", default="omnicloud_app")
@click.option("--password", default=None, help="Password for the role (omit for trust/peer auth).")
@click.pass_obj
def db_create_app_role(settings: Settings, role: str, password: str | None) -> None:
    """Create the PostgreSQL role the app connects as: no table ownership, no RLS bypass.

    Run after `db upgrade`, as the owner. Then point OMNICLOUD_DATABASE_URL at this role.
    """
    from sqlalchemy import text

    from omnicloud.core.db import app_role_sql

    if not settings.owner_database_url.startswith("postgresql"):
        _fail("create-app-role is for PostgreSQL")

    async def go(d: Any) -> None:
        async with d.engine.begin() as conn:
            for stmt in app_role_sql(role, password):
                await conn.execute(text(stmt))

    run(_with_db(settings, go))
    click.echo(f"role {role} ready: it can read and write tenant rows only under row-level security")


# --- tenants -------------------------------------------------------------------------------


@main.group()
def tenants() -> None:
    """Provision and inspect tenants."""


def _operator_tx(settings: Settings, fn: Callable[[Any, Any], Awaitable[T]]) -> T:
    from omnicloud.core.tenancy import operator_scope

    plugins = _plugins(settings)

    async def go(d: Any) -> T:
        with operator_scope():
            async with d.transaction() as session:
                return await fn(session, plugins)

    return run(_with_db(settings, go))


def _problem_guard(fn: Callable[[], T]) -> T:
    from omnicloud.core.errors import Problem

    try:
        return fn()
    except Problem as p:
        _fail(f"{p.code}: {p.detail}")
        raise


@tenants.command("create")
@click.argument("slug")
@click.option("--name", required=True)
@click.option("--admin-email", required=True)
@click.option("--industry", default=None)
@click.option("--plugin", "plugin_names", multiple=True, help="Enable a plugin (repeatable).")
@click.pass_obj
def tenants_create(
    settings: Settings,
    slug: str,
    name: str,
    admin_email: str,
    industry: str | None,
    plugin_names: tuple[str, ...],
) -> None:
    """Create a tenant; prints its first admin API key (shown once)."""
    from omnicloud.operator import service
    from omnicloud.operator.schemas import TenantIn

    try:
        data = msgspec.convert(
            {
                "slug": slug,
                "name": name,
                "admin_email": admin_email,
                "industry": industry,
                "plugins": {p: {} for p in plugin_names},
            },
            TenantIn,
        )
    except msgspec.ValidationError as exc:
        _fail(f"invalid tenant: {exc}")
        return
    created = _problem_guard(lambda: _operator_tx(settings, lambda s, p: service.create_tenant(s, data, p)))
    _echo_json(created)


@tenants.command("list")
@click.option("--status", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def tenants_list(settings: Settings, status: str | None, as_json: bool) -> None:
    """List tenants."""
    from omnicloud.operator import service

    async def all_tenants(session: Any, _: Any) -> list[Any]:
        out, cursor = [], None
        while True:
            items, cursor = await service.list_tenants(session, cursor, 500, status)
            out.extend(items)
            if cursor is None:
                return out

    items = _operator_tx(settings, all_tenants)
    if as_json:
        _echo_json(items)
        return
    for t in items:
        click.echo(f"{t.slug:<24} {t.status:<10} {t.id}  {t.name}")


def _tenant_action(name: str, help_: str, fn_name: str, *extra: Any) -> None:
    @tenants.command(name, help=help_)
    @click.argument("ref")
    @click.pass_obj
    def cmd(settings: Settings, ref: str, **kwargs: Any) -> None:
        from omnicloud.operator import service

        fn = getattr(service, fn_name)
        _echo_json(_problem_guard(lambda: _operator_tx(settings, lambda s, _p: fn(s, ref, **kwargs))))

    for option in extra:
        cmd = option(cmd)


_tenant_action("show", "Show a tenant by id or slug.", "show_tenant")
_tenant_action(
    "suspend",
    "Suspend a tenant: its credentials get 403.",
    "suspend_tenant",
    click.option("--reason", required=True),
)
_tenant_action("resume", "Resume a suspended tenant.", "resume_tenant")
_tenant_action("delete", "Soft-delete a tenant (reversible until purged).", "delete_tenant")
_tenant_action("restore", "Restore a soft-deleted tenant.", "restore_tenant")
_tenant_action("purge", "Remove a soft-deleted tenant and all its data. Irreversible.", "purge_tenant")


@tenants.command("apply")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.pass_obj
def tenants_apply(settings: Settings, directory: Path) -> None:
    """Apply tenants/*.toml manifests idempotently: a second run changes nothing."""
    from omnicloud.operator.manifest import ManifestError, apply_directory

    try:
        results = run(
            _with_db(settings, lambda d: apply_directory(d, _plugins(settings), directory, progress=True))
        )
    except ManifestError as exc:
        _fail(str(exc))
        return
    for r in results:
        click.echo(
            f"{r.slug}: {'created' if r.created else 'up to date' if not r.changes else 'updated'}"
            + (f" ({', '.join(r.changes)})" if r.changes else "")
        )
        if r.admin_api_key:
            click.echo(f"  admin API key (shown once): {r.admin_api_key}")


# --- plugins ---------------------------------------------------------------------------------


@main.group()
def plugins() -> None:
    """Installed plugins."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def plugins_list(settings: Settings, as_json: bool) -> None:
    """Show each installed plugin: name, version, hooks and how many tenants enable it."""
    from omnicloud.operator.service import count_plugin_tenants

    manager = _plugins(settings)
    counts = run(_with_db(settings, lambda d: count_plugin_tenants(d)))
    rows = [
        {"name": n, "version": i.version, "hooks": i.hooks, "tenants_enabled": counts.get(n, 0)}
        for n, i in sorted(manager.plugins.items())
    ]
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no plugins installed")
    for r in rows:
        click.echo(
            f"{r['name']} {r['version']}  tenants: {r['tenants_enabled']}\n  hooks: {', '.join(r['hooks'])}"
        )


class PluginCommands(click.Group):
    """``omnicloud x <plugin> <command>``: the commands plugins register (``register_cli_commands``)."""

    def _plugin_groups(self, ctx: click.Context) -> dict[str, click.Group]:
        settings = ctx.obj if isinstance(ctx.obj, Settings) else Settings.from_env()
        return {
            name: click.Group(
                name, commands={c.name: c for c in info.cli_commands}, help=f"Commands of {name}."
            )
            for name, info in _plugins(settings).plugins.items()
            if info.cli_commands
        }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self._plugin_groups(ctx))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._plugin_groups(ctx).get(name)


main.add_command(PluginCommands("x", help="Commands of installed plugins."))


# --- operator credentials ---------------------------------------------------------------------


@main.group()
def operator() -> None:
    """Operator credentials."""


@operator.command("create-token")
@click.argument("name")
@click.pass_obj
def operator_create_token(settings: Settings, name: str) -> None:
    """Create an operator token (shown once)."""
    from omnicloud.operator import tokens

    click.echo(run(_with_db(settings, lambda d: tokens.create_token(d, name))))


@operator.command("revoke-tokens")
@click.argument("name")
@click.pass_obj
def operator_revoke_tokens(settings: Settings, name: str) -> None:
    """Revoke every operator token with this name."""
    from omnicloud.operator import tokens

    click.echo(f"revoked {run(_with_db(settings, lambda d: tokens.revoke_tokens(d, name)))}")


if __name__ == "__main__":
    main()
