"""Declarative tenant manifests (``tenants/*.toml``), applied idempotently.

A manifest names a tenant, its first admin, its plugins with their settings, optional master
data under ``[seed]`` and plugin sections under ``[x.<plugin>]``. Applying is idempotent: a
second run changes nothing. Every manifest is validated before anything is applied; a
broken one is reported with its file and field, and nothing is applied from it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.core.db import Database
from omnicloud.core.errors import Problem
from omnicloud.core.tenancy import operator_scope
from omnicloud.operator.models import Tenant
from omnicloud.operator.schemas import Email, Name, Slug, TenantIn
from omnicloud.plugins import PluginManager, await_me_maybe


class AdminSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    email: Email
    name: Name = "Tenant administrator"


class UserSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    email: Email
    name: Name
    role: str
    customer: str | None = None  # customer code, for dealer users


class Seed(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Master data, keyed by code. Each entry takes the fields of the matching create API,
    with references given as codes (``parent_code``, ``region_code`` ...)."""

    units: list[dict[str, Any]] = []
    brands: list[dict[str, Any]] = []
    categories: list[dict[str, Any]] = []
    regions: list[dict[str, Any]] = []
    sales_orgs: list[dict[str, Any]] = []
    products: list[dict[str, Any]] = []
    customers: list[dict[str, Any]] = []
    warehouses: list[dict[str, Any]] = []
    stock: list[dict[str, Any]] = []
    users: list[UserSpec] = []
    price_lists: list[dict[str, Any]] = []
    promotions: list[dict[str, Any]] = []
    credit_profiles: list[dict[str, Any]] = []
    opening_cash: list[dict[str, Any]] = []


class Manifest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    slug: Slug
    name: Name
    industry: str | None = None
    admin: AdminSpec
    plugins: dict[str, dict[str, Any]] = {}
    seed: Seed = msgspec.field(default_factory=Seed)
    x: dict[str, dict[str, Any]] = {}


class ManifestError(Exception):
    def __init__(self, path: Path, field: str, message: str) -> None:
        super().__init__(f"{path}: {field}: {message}" if field else f"{path}: {message}")
        self.path = path
        self.field = field
        self.message = message


class ApplyResult(msgspec.Struct, kw_only=True):
    slug: str
    tenant_id: str
    created: bool
    changes: list[str]
    admin_api_key: str | None = None


def _field_of(exc: msgspec.ValidationError) -> tuple[str, str]:
    text = str(exc)
    if " - at `$." in text:
        message, _, path = text.rpartition(" - at `$.")
        return path.rstrip("`"), message
    return "", text


def load(path: Path) -> Manifest:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(path, "", f"cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(path, "", f"not valid TOML: {exc}") from None
    try:
        return msgspec.convert(raw, Manifest)
    except msgspec.ValidationError as exc:
        field, message = _field_of(exc)
        raise ManifestError(path, field, message) from None


def load_directory(directory: Path) -> list[tuple[Path, Manifest]]:
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise ManifestError(directory, "", "no *.toml manifests here")
    loaded = [(f, load(f)) for f in files]
    seen: dict[str, Path] = {}
    for path, manifest in loaded:
        if manifest.slug in seen:
            raise ManifestError(
                path, "slug", f"{manifest.slug} is also declared in {seen[manifest.slug].name}"
            )
        seen[manifest.slug] = path
    return loaded


async def apply_directory(
    db: Database, plugins: PluginManager, directory: Path, *, progress: bool = False
) -> list[ApplyResult]:
    """Validate every manifest first, then apply each in its own transaction."""
    loaded = load_directory(directory)
    for path, manifest in loaded:
        check_plugins(path, manifest, plugins)
    results: list[ApplyResult] = []
    if progress:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task("applying manifests", total=len(loaded))
            for path, manifest in loaded:
                results.append(await apply_one(db, plugins, path, manifest))
                bar.advance(task)
    else:
        for path, manifest in loaded:
            results.append(await apply_one(db, plugins, path, manifest))
    return results


def check_plugins(path: Path, manifest: Manifest, plugins: PluginManager) -> None:
    for name, settings in manifest.plugins.items():
        if name not in plugins.plugins:
            raise ManifestError(path, f"plugins.{name}", "no such installed plugin")
        try:
            plugins.validate_settings(name, settings)
        except Problem as p:
            field = p.errors[0]["field"] if p.errors else "settings"
            raise ManifestError(path, f"plugins.{name}.{field.removeprefix('settings.')}", p.detail) from None
    for name in manifest.x:
        if name not in manifest.plugins:
            raise ManifestError(path, f"x.{name}", "the plugin must be enabled under [plugins]")


async def apply_one(db: Database, plugins: PluginManager, path: Path, manifest: Manifest) -> ApplyResult:
    from omnicloud.operator import service

    try:
        with operator_scope():
            async with db.transaction() as session:
                tenant = await session.scalar(select(Tenant).where(Tenant.slug == manifest.slug))
                changes: list[str] = []
                key: str | None = None
                created = tenant is None
                if tenant is None:
                    made = await service.create_tenant(
                        session,
                        TenantIn(
                            slug=manifest.slug,
                            name=manifest.name,
                            admin_email=manifest.admin.email,
                            admin_name=manifest.admin.name,
                            industry=manifest.industry,
                            plugins={},
                        ),
                        plugins,
                    )
                    key = made.admin_api_key
                    tenant = await session.get(Tenant, made.tenant.id)
                    assert tenant is not None
                else:
                    if (tenant.name, tenant.industry) != (manifest.name, manifest.industry):
                        tenant.name, tenant.industry = manifest.name, manifest.industry
                        changes.append("tenant")
                async with service.within_tenant(session, tenant.id):
                    changes.extend(await _apply_inside(session, plugins, tenant.id, manifest))
                return ApplyResult(
                    slug=manifest.slug,
                    tenant_id=str(tenant.id),
                    created=created,
                    changes=[] if created else changes,
                    admin_api_key=key,
                )
    except Problem as p:
        field = p.errors[0].get("field", "") if p.errors else ""
        raise ManifestError(path, field, p.detail) from None
    except msgspec.ValidationError as exc:
        field, message = _field_of(exc)
        raise ManifestError(path, field, message) from None


async def _apply_inside(
    session: AsyncSession, plugins: PluginManager, tenant_id: Any, manifest: Manifest
) -> list[str]:
    from omnicloud.admin import service as admin

    changes: list[str] = []
    enabled = await admin.enabled_plugins(session)
    for name, raw in sorted(manifest.plugins.items()):
        settings = plugins.validate_settings(name, raw)
        if enabled.get(name) != settings:
            await admin.enable_plugin(session, plugins, name, raw, field=f"plugins.{name}")
            changes.append(f"plugin {name}")
    changes.extend(await apply_seed(session, manifest.seed))
    for name, section in sorted(manifest.x.items()):
        hooks = plugins.for_tenant(frozenset({name}))
        for result in hooks.apply_manifest(session=session, tenant_id=tenant_id, section=section):
            if await await_me_maybe(result):
                changes.append(f"x.{name}")
    return changes


SeedStep = Callable[[AsyncSession, dict[str, Any]], Awaitable[bool]]


async def _each(
    session: AsyncSession, section: str, items: list[dict[str, Any]], step: SeedStep
) -> list[str]:
    changed = 0
    for index, item in enumerate(items):
        try:
            if await step(session, item):
                changed += 1
        except Problem as p:
            field = p.errors[0].get("field", "") if p.errors else ""
            p.errors = [
                {"field": f"seed.{section}[{index}]" + (f".{field}" if field else ""), "message": p.detail}
            ]
            raise
        except msgspec.ValidationError as exc:
            field, message = _field_of(exc)
            raise Problem(
                message,
                status=422,
                code="validation_failed",
                errors=[
                    {"field": f"seed.{section}[{index}]" + (f".{field}" if field else ""), "message": message}
                ],
            ) from None
    return [f"{changed} {section}"] if changed else []


async def apply_seed(session: AsyncSession, seed: Seed) -> list[str]:
    from omnicloud.operator import seeding

    changes: list[str] = []
    for section, step in seeding.STEPS:
        items = getattr(seed, section)
        if section == "users":
            items = [msgspec.to_builtins(u) for u in items]
        changes.extend(await _each(session, section, items, step))
    return changes
