"""The plugin machinery with a tiny in-test plugin: registration and its validation, per-tenant
hook callers, firstresult with the core default, async implementations, the lifecycle hooks,
and the plugin's routes mounted behind the 404 guard."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

import click
import httpx
import msgspec
import pluggy
import pytest
from litestar import Controller, get

from omnicloud import hookimpl
from omnicloud.admin import service as admin
from omnicloud.app import create_app
from omnicloud.catalog.schemas import UnitPrice
from omnicloud.core.db import utcnow
from omnicloud.core.errors import Unprocessable
from omnicloud.core.http import requires
from omnicloud.core.ids import new_id
from omnicloud.core.tenancy import tenant_scope
from omnicloud.plugins import CORE_PLUGIN, PluginError, PluginManager, await_me_maybe, first_result
from omnicloud.webhooks.schemas import EventOut
from tests.fixtures import OPERATOR, bearer, make_tenant


class ProbeSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    greeting: str = "hello"
    times: int = 1


class ProbeController(Controller):
    path = "/hello"

    @get("/", operation_id="probeHello", summary="Say hello", guards=[requires("probe:use")])
    async def hello(self) -> dict[str, str]:
        return {"hello": "world"}


@click.command("ping")
def ping() -> None:
    """Answer pong."""
    click.echo("pong")


class Probe:
    """Implements every hook and records what it was called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def tick(self, tenant_id: UUID) -> None:
        self.calls.append(("tick", tenant_id))

    @hookimpl
    def register_routes(self, register: Callable[..., None]) -> None:
        register(ProbeController)

    @hookimpl
    def register_permissions(self, register: Callable[[str, str], None]) -> None:
        register("probe:use", "Use the probe")

    @hookimpl
    def register_settings(self, register: Callable[[type], None]) -> None:
        register(ProbeSettings)

    @hookimpl
    def register_migrations(self, register: Callable[[str], None]) -> None:
        register("/nonexistent/probe/migrations/versions")

    @hookimpl
    def register_jobs(self, register: Callable[..., None]) -> None:
        register("probe.tick", self.tick)

    @hookimpl
    def register_cli_commands(self, register: Callable[[Any], None]) -> None:
        register(ping)

    @hookimpl
    async def tenant_plugin_enabled(self, tenant_id: UUID, settings: ProbeSettings) -> None:
        self.calls.append(("tenant_plugin_enabled", (tenant_id, settings)))

    @hookimpl
    def tenant_plugin_disabled(self, tenant_id: UUID) -> None:
        self.calls.append(("tenant_plugin_disabled", tenant_id))

    @hookimpl
    async def apply_manifest(self, section: dict[str, Any]) -> bool:
        self.calls.append(("apply_manifest", section))
        return bool(section)

    @hookimpl
    def resolve_unit_price(self, sku: Any, quantity: Decimal, settings: dict[str, Any]) -> Any:
        if "probe" not in sku.attributes:
            return None
        return UnitPrice(unit_price=Decimal("1.23") * quantity, source="probe", detail={"s": settings})

    @hookimpl
    async def after_event(self, event: Any, tenant_id: UUID) -> None:
        self.calls.append(("after_event", (event.type, tenant_id)))


def manager_with_probe() -> tuple[PluginManager, Probe]:
    manager = PluginManager()
    probe = Probe()
    manager.add("probe", probe, version="9.9")
    return manager, probe


class Sku(msgspec.Struct):
    attributes: dict[str, Any]
    list_price: Decimal | None = Decimal("10.00")


def price_kwargs(sku: Sku, quantity: str = "1") -> dict[str, Any]:
    return {
        "session": None,
        "tenant_id": new_id(),
        "sku": sku,
        "quantity": Decimal(quantity),
        "customer_id": None,
        "at": utcnow(),
        "settings": {"probe": {"greeting": "hi"}},
    }


# --- registration ---------------------------------------------------------------------------


def test_registration_hooks_are_collected():
    manager, probe = manager_with_probe()
    info = manager.plugins["probe"]
    assert info.version == "9.9" and info.module is probe
    assert info.hooks == sorted(
        [
            "after_event",
            "apply_manifest",
            "register_cli_commands",
            "register_jobs",
            "register_migrations",
            "register_permissions",
            "register_routes",
            "register_settings",
            "resolve_unit_price",
            "tenant_plugin_disabled",
            "tenant_plugin_enabled",
        ]
    )
    assert info.routes == [ProbeController]
    assert info.permissions == {"probe:use": "Use the probe"} and manager.all_permissions["probe:use"]
    assert info.settings_schema is ProbeSettings
    assert info.migrations == ["/nonexistent/probe/migrations/versions"]
    assert manager.jobs == {"probe.tick": probe.tick}
    assert info.cli_commands == [ping]


def test_registration_reaches_only_the_plugin_being_added():
    manager, _ = manager_with_probe()

    class Other:
        @hookimpl
        def register_permissions(self, register: Callable[[str, str], None]) -> None:
            register("other:thing", "Another plugin's permission")

    manager.add("other", Other())
    assert manager.plugins["probe"].permissions == {"probe:use": "Use the probe"}
    assert manager.plugins["other"].permissions == {"other:thing": "Another plugin's permission"}
    assert manager.plugins["other"].routes == [] and manager.plugins["other"].settings_schema is None


class NoDefaults(msgspec.Struct):
    needed: int


def _plugin(hook: str, fn: Callable[..., None]) -> Any:
    """A plugin object with one registration hook implemented by ``fn(register)``."""

    def impl(register: Callable[..., None]) -> None:
        fn(register)

    impl.__name__ = hook
    return type("OnePlugin", (), {hook: staticmethod(hookimpl(impl))})()


@pytest.mark.parametrize(
    ("hook", "fn", "message"),
    [
        ("register_permissions", lambda r: r("jewelry:x", "wrong prefix"), "must start with"),
        ("register_permissions", lambda r: r("bad", "no prefix"), "must start with"),
        ("register_settings", lambda r: r(NoDefaults), "needs a default"),
        ("register_settings", lambda r: r(dict), "msgspec.Struct"),
        ("register_jobs", lambda r: r("tick", lambda **_: None), "must start with"),
    ],
)
def test_registration_is_validated(hook, fn, message):
    manager = PluginManager()
    with pytest.raises(PluginError, match=message):
        manager.add("bad", _plugin(hook, fn))


def test_names_and_signatures_are_validated():
    manager, _ = manager_with_probe()
    with pytest.raises(PluginError, match="twice"):
        manager.add("probe", Probe())
    with pytest.raises(PluginError, match="identifier"):
        PluginManager().add("not-a-name", Probe())

    class WrongArgument:
        @hookimpl
        def resolve_unit_price(self, sku: Any, colour: str) -> Any:
            return None

    with pytest.raises(pluggy.PluginValidationError):
        PluginManager().add("wrong", WrongArgument())


def test_industry_plugin_is_discovered_through_the_entry_point():
    found = PluginManager.discover(["industry_jewelry"])
    assert list(found.plugins) == ["industry_jewelry"]
    assert found.plugins["industry_jewelry"].version != "0"
    assert PluginManager.discover([]).plugins == {}


def test_validate_settings_names_the_field():
    manager, _ = manager_with_probe()
    assert manager.validate_settings("probe", {"times": 3}) == {"greeting": "hello", "times": 3}
    with pytest.raises(Unprocessable) as err:
        manager.validate_settings("probe", {"times": "x"})
    assert err.value.errors[0]["field"] == "settings.times"
    manager.add("plain", _plugin("register_permissions", lambda r: r("plain:x", "x")))
    assert manager.validate_settings("plain", {}) == {}
    with pytest.raises(Unprocessable):
        manager.validate_settings("plain", {"anything": 1})


# --- per-tenant calls -------------------------------------------------------------------------


async def test_firstresult_with_the_core_default_trylast():
    manager, _ = manager_with_probe()
    impls = manager.pm.hook.resolve_unit_price.get_hookimpls()
    assert [i.plugin_name for i in impls if i.trylast] == [CORE_PLUGIN]

    enabled = manager.for_tenant(frozenset({"probe"}))
    price = await await_me_maybe(enabled.resolve_unit_price(**price_kwargs(Sku({"probe": 1}), "2")))
    assert price.unit_price == Decimal("2.46") and price.source == "probe"
    assert price.detail == {"s": {"probe": {"greeting": "hi"}}}
    # The plugin answers None for other SKUs: the core default decides.
    price = await await_me_maybe(enabled.resolve_unit_price(**price_kwargs(Sku({}))))
    assert (price.unit_price, price.source) == (Decimal("10.00"), "list_price")
    # Neither answers: None.
    assert enabled.resolve_unit_price(**price_kwargs(Sku({}, list_price=None))) is None


async def test_tenants_without_the_plugin_never_reach_it():
    manager, probe = manager_with_probe()
    a, b = new_id(), new_id()
    on, off = manager.for_tenant(frozenset({"probe"})), manager.for_tenant(frozenset())
    assert manager.for_tenant(frozenset({"probe", "not-installed"})) is on  # cached per enabled set
    price = await await_me_maybe(off.resolve_unit_price(**price_kwargs(Sku({"probe": 1}))))
    assert price.source == "list_price"

    event = EventOut(id=new_id(), type="thing.done", tenant_id=a, created_at=utcnow(), payload={})
    for hooks, tenant in ((on, a), (off, b)):
        for result in hooks.after_event(event=event, tenant_id=tenant):
            await await_me_maybe(result)
        for result in hooks.apply_manifest(session=None, tenant_id=tenant, section={"k": tenant.hex}):
            await await_me_maybe(result)
        for result in hooks.tenant_plugin_disabled(session=None, tenant_id=tenant):
            await await_me_maybe(result)
    assert probe.calls == [
        ("after_event", ("thing.done", a)),
        ("apply_manifest", {"k": a.hex}),
        ("tenant_plugin_disabled", a),
    ]


async def test_await_me_maybe_awaits_async_implementations():
    async def answer() -> int:
        return 42

    assert await await_me_maybe(7) == 7
    assert await await_me_maybe(answer()) == 42
    assert await await_me_maybe(answer) == 42
    manager, probe = manager_with_probe()
    results = manager.for_tenant(frozenset({"probe"})).apply_manifest(
        session=None, tenant_id=new_id(), section={}
    )
    assert len(results) == 1 and await await_me_maybe(results[0]) is False  # a coroutine until awaited
    job = manager.jobs["probe.tick"]
    await job(tenant_id=new_id())
    assert probe.calls[-1][0] == "tick"


async def test_enable_and_disable_run_the_lifecycle_hooks(client, app, tenant_a):
    manager, probe = manager_with_probe()
    tid = UUID(tenant_a.id)
    with tenant_scope(tid):
        async with app.state.db.transaction() as session:
            row = await admin.enable_plugin(session, manager, "probe", {"greeting": "ni hao"})
            assert row.enabled and row.settings == {"greeting": "ni hao", "times": 1}
            assert "probe" in await admin.enabled_plugins(session)
        assert probe.calls == [("tenant_plugin_enabled", (tid, ProbeSettings(greeting="ni hao")))]

        with pytest.raises(Unprocessable):
            async with app.state.db.transaction() as session:
                await admin.enable_plugin(session, manager, "probe", {"times": -1.5})
        assert len(probe.calls) == 1  # a bad setting never reaches the plugin

        async with app.state.db.transaction() as session:
            await admin.disable_plugin(session, manager, "probe")
            assert "probe" not in await admin.enabled_plugins(session)
    assert probe.calls[-1] == ("tenant_plugin_disabled", tid)


# --- routes ----------------------------------------------------------------------------------


async def test_plugin_routes_are_mounted_behind_the_enabled_guard(backend):
    manager, probe = manager_with_probe()
    application = create_app(backend.settings, plugins=manager)
    try:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            admin.ENABLED_CACHE.clear()
            with_probe = await make_tenant(client, plugins={"probe": {"times": 2}}, prefix="p")
            without = await make_tenant(client, prefix="p")
            assert probe.calls[0][1][1] == ProbeSettings(times=2)

            r = await client.get("/api/v1/x/probe/hello", headers=with_probe.auth)
            assert r.status_code == 200 and r.json() == {"hello": "world"}
            r = await client.get("/api/v1/x/probe/hello", headers=without.auth)
            assert r.status_code == 404 and r.json()["code"] == "plugin_not_enabled"

            # Permissions registered by the plugin gate its routes like any other.
            role = f"r_{secrets.token_hex(3)}"
            r = await client.post(
                "/api/v1/roles",
                headers=with_probe.auth,
                json={"code": role, "name": role, "permissions": ["catalog:read"]},
            )
            assert r.status_code == 201, r.text
            r = await client.post(
                "/api/v1/users",
                headers=with_probe.auth,
                json={"email": f"u@{with_probe.slug}.example", "name": "U", "role": role},
            )
            key = await client.post(
                "/api/v1/api-keys", headers=with_probe.auth, json={"name": "u", "user_id": r.json()["id"]}
            )
            r = await client.get("/api/v1/x/probe/hello", headers=bearer(key.json()["secret"]))
            assert r.status_code == 403

            r = await client.delete("/api/v1/plugins/probe", headers=with_probe.auth)
            assert r.status_code == 200
            assert (await client.get("/api/v1/x/probe/hello", headers=with_probe.auth)).status_code == 404

            schema = (await client.get("/schema/openapi.json")).json()
            assert schema["paths"]["/api/v1/x/probe/hello"]["get"]["operationId"] == "probeHello"
            r = await client.get("/api/v1/operator/tenants", headers=OPERATOR)
            assert r.status_code == 200
    finally:
        await application.state.db.dispose()


async def test_first_result_lets_an_async_implementation_decline():
    class Shy:
        @hookimpl
        async def resolve_unit_price(self, sku: Any) -> Any:
            return None if not sku.attributes else UnitPrice(unit_price=Decimal("1"), source="shy", detail={})

    manager = PluginManager()
    manager.add("shy", Shy())
    hooks = manager.for_tenant(frozenset({"shy"}))
    declined = await first_result(hooks.resolve_unit_price, **price_kwargs(Sku({})))
    assert (declined.unit_price, declined.source) == (Decimal("10.00"), "list_price")
    answered = await first_result(hooks.resolve_unit_price, **price_kwargs(Sku({"x": 1})))
    assert answered.source == "shy"


def test_misspelled_hook_is_refused():
    class Typo:
        @hookimpl
        def resolve_unit_prices(self, sku: Any) -> Any:
            return None

    manager = PluginManager()
    with pytest.raises(PluginError, match="resolve_unit_prices"):
        manager.add("typo", Typo())
    assert "typo" not in manager.plugins


def test_plugin_cli_commands_run_under_omnicloud_x(monkeypatch):
    from click.testing import CliRunner

    from omnicloud import cli

    manager, _ = manager_with_probe()
    monkeypatch.setattr(cli, "_plugins", lambda settings: manager)
    result = CliRunner().invoke(cli.main, ["x", "probe", "ping"], catch_exceptions=False)
    assert result.exit_code == 0 and result.output.strip() == "pong"
    listing = CliRunner().invoke(cli.main, ["x", "--help"], catch_exceptions=False).output
    assert "probe" in listing
