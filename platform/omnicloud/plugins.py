"""Plugin manager: discovery through entry points, registration, and per-tenant hook calls.

*Installed* plugins are discovered from the ``omnicloud`` entry-point group (filtered by the
``OMNICLOUD_PLUGINS`` allowlist) and registered once. *Enabled* is a per-tenant fact; per
request only the tenant's enabled plugins run, through pluggy's ``subset_hook_caller``,
cached per set of enabled plugins. Plugins are never registered or unregistered per request.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import msgspec
import pluggy

from omnicloud import hookspecs

log = logging.getLogger("omnicloud.plugins")

ENTRY_POINT_GROUP = "omnicloud"
CORE_PLUGIN = "omnicloud.defaults"


async def await_me_maybe(value: Any) -> Any:
    """Hook implementations may be sync or async; await whatever needs awaiting."""
    if callable(value):
        value = value()
    if inspect.isawaitable(value):
        value = await value
    return value


async def first_result(caller: Any, **kwargs: Any) -> Any:
    """Call a ``firstresult`` hook whose implementations may be async.

    pluggy stops at the first non-None value, and an un-awaited coroutine is not None, so an
    async implementation that declines would end the chain. Here each implementation is called
    in pluggy's order with the arguments it accepts, awaited, and the first real answer wins.
    """
    for impl in reversed(caller.get_hookimpls()):
        value = await await_me_maybe(impl.function(**{name: kwargs[name] for name in impl.argnames}))
        if value is not None:
            return value
    return None


@dataclass
class PluginInfo:
    name: str
    version: str
    module: Any
    hooks: list[str]
    routes: list[Any] = field(default_factory=list)
    permissions: dict[str, str] = field(default_factory=dict)
    settings_schema: type | None = None
    migrations: list[str] = field(default_factory=list)
    jobs: dict[str, Callable[..., Any]] = field(default_factory=dict)
    cli_commands: list[Any] = field(default_factory=list)


class PluginError(RuntimeError):
    pass


class PluginManager:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("omnicloud")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._subsets: dict[frozenset[str], TenantHooks] = {}
        from omnicloud import defaults

        self.pm.register(defaults, name=CORE_PLUGIN)

    # --- discovery and registration ---------------------------------------------------

    @classmethod
    def discover(cls, allowlist: Iterable[str] | None = None) -> PluginManager:
        manager = cls()
        allowed = set(allowlist) if allowlist is not None else None
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if allowed is not None and ep.name not in allowed:
                continue
            version = ep.dist.version if ep.dist else "0"
            manager.add(ep.name, ep.load(), version=version)
        return manager

    def add(self, name: str, module: ModuleType | Any, *, version: str = "0") -> PluginInfo:
        if name in self.plugins:
            raise PluginError(f"plugin {name!r} is registered twice")
        if not name.isidentifier():
            raise PluginError(f"plugin name {name!r} must be an identifier")
        self.pm.register(module, name=name)
        unknown = sorted(h.name for h in (self.pm.get_hookcallers(module) or []) if h.spec is None)
        if unknown:
            self.pm.unregister(module)
            raise PluginError(f"plugin {name!r} implements hooks that do not exist: {', '.join(unknown)}")
        hooks = sorted(h.name for h in (self.pm.get_hookcallers(module) or []))
        info = PluginInfo(name=name, version=version, module=module, hooks=hooks)
        self._collect(info)
        self.plugins[name] = info
        self._subsets.clear()
        return info

    def _call_registration(self, module: Any, hook: str, register: Callable[..., None]) -> None:
        others = [p for p in self.pm.get_plugins() if p is not module]
        self.pm.subset_hook_caller(hook, others)(register=register)

    def _collect(self, info: PluginInfo) -> None:
        prefix = info.name.removeprefix("industry_")

        def add_permission(name: str, description: str) -> None:
            if not name.startswith(f"{prefix}:"):
                raise PluginError(f"{info.name}: permission {name!r} must start with {prefix!r}:")
            info.permissions[name] = description

        def set_settings(schema: type) -> None:
            if not (isinstance(schema, type) and issubclass(schema, msgspec.Struct)):
                raise PluginError(f"{info.name}: settings schema must be a msgspec.Struct")
            try:
                schema()
            except TypeError as exc:
                raise PluginError(f"{info.name}: every settings field needs a default") from exc
            info.settings_schema = schema

        def add_job(name: str, fn: Callable[..., Any]) -> None:
            if not name.startswith(f"{info.name}."):
                raise PluginError(f"{info.name}: job {name!r} must start with {info.name!r}.")
            info.jobs[name] = fn

        module = info.module
        self._call_registration(module, "register_routes", lambda *h: info.routes.extend(h))
        self._call_registration(module, "register_permissions", add_permission)
        self._call_registration(module, "register_settings", set_settings)
        self._call_registration(module, "register_migrations", info.migrations.append)
        self._call_registration(module, "register_jobs", add_job)
        self._call_registration(module, "register_cli_commands", info.cli_commands.append)

    # --- per-tenant calls ----------------------------------------------------------------

    def for_tenant(self, enabled: frozenset[str]) -> TenantHooks:
        """Hook callers that reach the core defaults and the given enabled plugins only."""
        enabled = frozenset(n for n in enabled if n in self.plugins)
        hooks = self._subsets.get(enabled)
        if hooks is None:
            hooks = self._subsets[enabled] = TenantHooks(self, enabled)
        return hooks

    def validate_settings(self, name: str, raw: dict[str, Any]) -> dict[str, Any]:
        """Validate settings against the plugin's schema; returns the normalised dict."""
        from omnicloud.core.errors import invalid

        schema = self.plugins[name].settings_schema
        if schema is None:
            if raw:
                raise invalid("settings", f"plugin {name} takes no settings")
            return {}
        try:
            value = msgspec.convert(raw, schema)
        except msgspec.ValidationError as exc:
            message = str(exc)
            path = message.rsplit("- at `", 1)[-1].rstrip("`") if "- at `" in message else "$"
            field_name = path.removeprefix("$.").removeprefix("$") or "settings"
            raise invalid(
                f"settings.{field_name}" if field_name != "settings" else field_name,
                message.split(" - at ")[0],
            ) from None
        return msgspec.to_builtins(value)

    @property
    def all_permissions(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for info in self.plugins.values():
            out.update(info.permissions)
        return out

    @property
    def jobs(self) -> dict[str, Callable[..., Any]]:
        out: dict[str, Callable[..., Any]] = {}
        for info in self.plugins.values():
            out.update(info.jobs)
        return out


class TenantHooks:
    """``hooks.resolve_unit_price(...)`` reaches only the core and the enabled plugins."""

    def __init__(self, manager: PluginManager, enabled: frozenset[str]) -> None:
        self._manager = manager
        self.enabled = enabled
        self._remove = [info.module for n, info in manager.plugins.items() if n not in enabled]
        self._callers: dict[str, Any] = {}

    def __getattr__(self, hook: str) -> Any:
        if hook.startswith("_"):
            raise AttributeError(hook)
        caller = self._callers.get(hook)
        if caller is None:
            caller = self._callers[hook] = self._manager.pm.subset_hook_caller(hook, self._remove)
        return caller
