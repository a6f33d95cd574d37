"""The outbox relay and webhooks: signed deliveries to a real HTTP receiver, retries with
backoff on an injected clock, giving up, the REST API, plugins' after_event per tenant, and
recovery by the sweep."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import msgspec
import pytest

from omnicloud import hookimpl
from omnicloud.admin import service as admin
from omnicloud.core import events
from omnicloud.core.jobs import InProcessQueue, JobQueue, make_queue
from omnicloud.core.relay import Relay, events_channel
from omnicloud.core.tenancy import tenant_scope
from omnicloud.plugins import PluginManager
from omnicloud.settings import Settings
from omnicloud.webhooks import service as webhooks
from omnicloud.webhooks.schemas import WebhookCreated, WebhookIn
from omnicloud.webhooks.signing import verify_signature
from tests.fixtures import REDIS, TenantHandle, bearer, make_tenant

# --- harness -------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A real HTTP endpoint on 127.0.0.1 that records requests; it answers 500 while
    ``fail`` is positive (counting down), else 200."""

    port: int = 0
    fail: int = 0
    requests: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                if line:
                    key, _, value = line.partition(":")
                    headers[key.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(head[0].split(" ")[1], headers, body))
            status = "500 Internal Server Error" if self.fail > 0 else "200 OK"
            self.fail = max(self.fail - 1, 0)
            writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".encode())
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    server = await asyncio.start_server(rec.handle, "127.0.0.1", 0)
    rec.port = server.sockets[0].getsockname()[1]
    yield rec
    server.close()
    await server.wait_closed()


class Clock:
    """Time for the relay, starting a month ahead so that nothing driven by the real clock
    (an application sweeper) ever finds these deliveries due."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC) + timedelta(days=30)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def api(client: httpx.AsyncClient) -> httpx.AsyncClient:
    return client


@pytest.fixture
async def relays(app: Any) -> AsyncIterator[Callable[..., Relay]]:
    made: list[tuple[Relay, JobQueue]] = []

    def build(
        *,
        queue: JobQueue | None = None,
        plugins: PluginManager | None = None,
        clock: Callable[[], datetime] | None = None,
        redis: Any = None,
        **settings: Any,
    ) -> Relay:
        q = queue or InProcessQueue()
        relay = Relay(
            app.state.db,
            plugins or app.state.plugins,
            q,
            redis if redis is not None else app.state.redis,
            msgspec.structs.replace(app.state.settings, **settings),
            clock=clock or Clock(),
            rng=lambda: 0.5,
        )
        made.append((relay, q))
        return relay

    yield build
    for relay, q in made:
        await relay.stop()
        await q.stop()


async def emit(app: Any, tenant: TenantHandle, type_: str, payload: dict[str, Any]) -> UUID:
    with tenant_scope(UUID(tenant.id)):
        async with app.state.db.transaction() as session:
            event = events.emit(session, type_, payload)
            await session.flush()
            return event.id


async def subscribe(app: Any, tenant: TenantHandle, url: str, *patterns: str) -> WebhookCreated:
    """A subscription written through the service (no REST request, so nothing is kicked)."""
    with tenant_scope(UUID(tenant.id)):
        async with app.state.db.transaction() as session:
            return await webhooks.create_webhook(session, WebhookIn(url=url, event_types=list(patterns)))


async def deliveries(app: Any, tenant: TenantHandle, webhook_id: UUID) -> list[Any]:
    with tenant_scope(UUID(tenant.id)):
        async with app.state.db.transaction() as session:
            items, _ = await webhooks.list_deliveries(session, webhook_id, None, None, 100)
            return items


async def until(condition: Callable[[], Any], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


# --- delivery ------------------------------------------------------------------------------


async def test_delivery_is_signed_and_carries_the_event(app, api, receiver, relays):
    tenant = await make_tenant(api)
    sub = await subscribe(app, tenant, receiver.url, "product.*")
    clock = Clock()
    relay = relays(clock=clock)
    product_event = await emit(app, tenant, "product.created", {"sku": "A-1", "price": "9.90"})
    await emit(app, tenant, "order.created", {"no": 1})  # not subscribed
    assert await relay.relay_tenant(UUID(tenant.id)) == 3  # with webhook.created
    assert await relay.queue.run_pending() == 1
    assert len(receiver.requests) == 1
    req = receiver.requests[0]
    body = msgspec.json.decode(req.body)
    assert body == {
        "id": str(product_event),
        "type": "product.created",
        "tenant_id": tenant.id,
        "created_at": body["created_at"],
        "payload": {"sku": "A-1", "price": "9.90"},
    }
    assert req.headers["omnicloud-event-id"] == str(product_event)
    assert req.headers["omnicloud-event-type"] == "product.created"
    assert req.headers["content-type"] == "application/json"
    signature, now = req.headers["omnicloud-signature"], clock().timestamp()
    assert signature.startswith(f"t={int(now)},v1=")
    assert verify_signature(sub.secret, signature, req.body, now=now)
    assert not verify_signature(sub.secret, signature, req.body + b" ", now=now)
    assert not verify_signature("whsec_another-secret-entirely", signature, req.body, now=now)
    assert not verify_signature(sub.secret, signature, req.body, now=now + 301)  # replayed late
    assert not verify_signature(sub.secret, None, req.body, now=now)
    [delivery] = await deliveries(app, tenant, sub.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert delivery.event_id == product_event and delivery.delivered_at == clock()


async def test_failures_back_off_then_deliver(app, api, receiver, relays):
    tenant = await make_tenant(api)
    sub = await subscribe(app, tenant, receiver.url, "stock.*")
    clock = Clock()
    relay = relays(clock=clock)
    await emit(app, tenant, "stock.adjusted", {"qty": "5"})
    await relay.relay_tenant(UUID(tenant.id))
    [delivery] = await deliveries(app, tenant, sub.id)
    receiver.fail = 2

    assert await relay.queue.run_pending() == 1  # the first attempt, queued by the relay
    [d] = await deliveries(app, tenant, sub.id)
    assert (d.attempts, d.last_status_code) == (1, 500) and d.last_error.startswith("HTTP 500")
    assert d.next_attempt_at == clock() + timedelta(seconds=2)  # 2**1, jitter at its midpoint
    assert relay.queue.delayed == 1  # the retry waits in the queue
    await relay.queue.stop()  # ... and is lost
    assert relay.queue.delayed == 0
    assert await relay.deliver(UUID(tenant.id), delivery.id) is None  # a job too early: not due
    assert relay.queue.delayed == 1  # so it is queued again for when it is due
    assert len(receiver.requests) == 1

    clock.advance(2)
    assert await relay.deliver(UUID(tenant.id), delivery.id) == "pending"
    [d] = await deliveries(app, tenant, sub.id)
    assert d.attempts == 2 and d.next_attempt_at == clock() + timedelta(seconds=4)

    clock.advance(4)
    assert await relay.deliver(UUID(tenant.id), delivery.id) == "delivered"
    [d] = await deliveries(app, tenant, sub.id)
    assert (d.status, d.attempts, d.last_status_code, d.last_error) == ("delivered", 3, 200, None)
    assert len(receiver.requests) == 3
    assert {r.headers["omnicloud-event-id"] for r in receiver.requests} == {str(d.event_id)}
    assert [r.headers["omnicloud-attempt"] for r in receiver.requests] == ["1", "2", "3"]
    assert await relay.deliver(UUID(tenant.id), delivery.id) is None  # delivered once, for good


async def test_gives_up_after_max_attempts_and_a_retry_starts_again(app, api, receiver, relays):
    tenant = await make_tenant(api)
    sub = await subscribe(app, tenant, receiver.url, "order.*")
    clock = Clock()
    relay = relays(clock=clock, webhook_max_attempts=3)
    await emit(app, tenant, "order.created", {"no": 7})
    await relay.relay_tenant(UUID(tenant.id))
    [delivery] = await deliveries(app, tenant, sub.id)
    receiver.fail = 100
    outcomes = []
    for _ in range(4):
        outcomes.append(await relay.deliver(UUID(tenant.id), delivery.id))
        clock.advance(3600)
    assert outcomes == ["pending", "pending", "failed", None]
    assert len(receiver.requests) == 3

    url = f"/api/v1/webhooks/{sub.id}/deliveries"
    page = (await api.get(url, params={"status": "failed"}, headers=tenant.auth)).json()
    [failed] = page["items"]
    assert failed["id"] == str(delivery.id) and failed["attempts"] == 3
    assert failed["last_status_code"] == 500 and failed["next_attempt_at"] is None
    assert (await api.get(url, params={"status": "pending"}, headers=tenant.auth)).json()["items"] == []
    assert (await api.get(url, params={"status": "lost"}, headers=tenant.auth)).status_code == 422

    r = await api.post(f"{url}/{delivery.id}/retry", headers=tenant.auth)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["attempts"]) == ("pending", 0)
    receiver.fail = 0
    await relay.deliver(UUID(tenant.id), delivery.id)
    await until(lambda: len(receiver.requests) == 4)
    r = await api.get(url, headers=tenant.auth)
    assert r.json()["items"][0]["status"] == "delivered"
    r = await api.post(f"{url}/{delivery.id}/retry", headers=tenant.auth)
    assert r.status_code == 409 and r.json()["code"] == "not_failed"


async def test_inactive_webhook_stops_its_deliveries(app, api, receiver, relays):
    tenant = await make_tenant(api)
    sub = await subscribe(app, tenant, receiver.url, "product.*")
    relay = relays()
    await emit(app, tenant, "product.updated", {})
    await relay.relay_tenant(UUID(tenant.id))
    r = await api.delete(f"/api/v1/webhooks/{sub.id}", headers=tenant.auth)
    assert r.status_code == 200 and r.json()["active"] is False
    assert await relay.queue.run_pending() >= 1
    assert receiver.requests == []
    [d] = await deliveries(app, tenant, sub.id)
    assert (d.status, d.last_error) == ("failed", "webhook is inactive")
    await emit(app, tenant, "product.updated", {})
    await relay.relay_tenant(UUID(tenant.id))
    assert len(await deliveries(app, tenant, sub.id)) == 1  # no new delivery for it
    r = await api.post(f"/api/v1/webhooks/{sub.id}/deliveries/{d.id}/retry", headers=tenant.auth)
    assert r.status_code == 409 and r.json()["code"] == "webhook_inactive"


# --- the relay -----------------------------------------------------------------------------


async def test_rolled_back_events_are_never_relayed(app, api, receiver, relays):
    tenant = await make_tenant(api)
    sub = await subscribe(app, tenant, receiver.url, "product.*")
    relay = relays()
    with tenant_scope(UUID(tenant.id)), pytest.raises(RuntimeError):
        async with app.state.db.transaction() as session:
            events.emit(session, "product.deleted", {"sku": "GHOST"})
            assert session.info[events.PENDING_KEY]
            await session.flush()
            raise RuntimeError("the change fails after emitting")
    await relay.relay_tenant(UUID(tenant.id))
    await relay.queue.run_pending()
    r = await api.get("/api/v1/events", params={"type": "product.*"}, headers=tenant.auth)
    assert r.json()["items"] == []
    assert await deliveries(app, tenant, sub.id) == [] and receiver.requests == []


async def test_kick_pending_wakes_the_relay_once_per_committed_session(app, api, relays):
    tenant = await make_tenant(api)
    relay = relays()
    with tenant_scope(UUID(tenant.id)):
        async with app.state.db.sessions() as session:
            async with session.begin():
                events.emit(session, "brand.created", {"code": "B1"})
            assert await relay.kick_pending(session) == 1
            assert await relay.kick_pending(session) == 0  # consumed
            async with session.begin():
                await webhooks.list_webhooks(session, None, 10)  # a read emits nothing
            assert await relay.kick_pending(session) == 0
    assert relay.queue.pending == 1
    await relay.queue.run_pending()
    r = await api.get("/api/v1/events", params={"type": "brand.created"}, headers=tenant.auth)
    assert r.json()["items"][0]["relayed_at"] is not None


async def test_relay_twice_and_concurrently_delivers_once(app, api, receiver, relays):
    tenant = await make_tenant(api)
    tid = UUID(tenant.id)
    sub = await subscribe(app, tenant, receiver.url, "price.*")
    ids = [await emit(app, tenant, "price.changed", {"n": i}) for i in range(3)]
    first, second = relays(), relays()
    counts = await asyncio.gather(first.relay_tenant(tid), second.relay_tenant(tid))
    assert sum(counts) == 4  # three price events and the webhook.created of the subscription
    assert await first.relay_tenant(tid) == 0
    for relay in (first, second):
        await relay.enqueue_due(tid)
    await asyncio.gather(first.queue.run_pending(), second.queue.run_pending())
    assert sorted(r.headers["omnicloud-event-id"] for r in receiver.requests) == sorted(map(str, ids))
    found = await deliveries(app, tenant, sub.id)
    assert len(found) == 3 and {d.status for d in found} == {"delivered"}


class Probe:
    def __init__(self) -> None:
        self.seen: list[tuple[UUID, str, UUID]] = []

    @hookimpl
    def after_event(self, event: Any, tenant_id: UUID) -> None:
        self.seen.append((tenant_id, event.type, event.id))


class Broken:
    @hookimpl
    async def after_event(self, event: Any) -> None:
        raise RuntimeError("plugin bug")


async def test_after_event_reaches_only_plugins_the_tenant_enabled(app, api, relays, caplog):
    probe = Probe()
    plugins = PluginManager()
    plugins.add("events_probe", probe)
    plugins.add("events_broken", Broken())
    a, b = await make_tenant(api), await make_tenant(api)
    with tenant_scope(UUID(a.id)):
        async with app.state.db.transaction() as session:
            await admin.enable_plugin(session, plugins, "events_broken", {})
            await admin.enable_plugin(session, plugins, "events_probe", {})
    a_events = [await emit(app, a, "customer.created", {"i": i}) for i in range(3)]
    await emit(app, b, "customer.created", {"i": 99})
    relay = relays(plugins=plugins)
    with caplog.at_level(logging.ERROR, logger="omnicloud.relay"):
        assert await relay.relay_tenant(UUID(a.id)) == 3
        assert await relay.relay_tenant(UUID(b.id)) == 1
    assert probe.seen == [(UUID(a.id), "customer.created", i) for i in a_events]  # in order
    assert sum("events_broken failed in after_event" in r.getMessage() for r in caplog.records) == 3
    r = await api.get("/api/v1/events", headers=a.auth)
    assert all(e["relayed_at"] is not None for e in r.json()["items"])
    assert await relay.relay_tenant(UUID(a.id)) == 0
    assert len(probe.seen) == 3


def queue_of(kind: str, app: Any, redis: Any) -> JobQueue:
    if kind == "memory":
        return InProcessQueue()
    if kind == "redis-down":  # Redis configured but unreachable: jobs run in-process
        import redis.asyncio as aioredis

        url = "redis://127.0.0.1:1/0"
        down = aioredis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        return make_queue(Settings(redis_url=url), down, block_seconds=0.2)
    settings = msgspec.structs.replace(app.state.settings, redis_url=REDIS)
    return make_queue(settings, redis, namespace=f"test:{uuid.uuid4().hex}", block_seconds=0.2)


@pytest.mark.parametrize("kind", ["memory", "redis", "redis-down"])
async def test_kick_runs_the_same_jobs_on_either_queue(app, api, receiver, relays, kind, redis):
    queue = queue_of(kind, app, redis)
    tenant = await make_tenant(api)
    tid = UUID(tenant.id)
    sub = await subscribe(app, tenant, receiver.url, "order.*")
    relay = relays(queue=queue, clock=lambda: datetime.now(UTC))  # real time: workers drive it
    event_id = await emit(app, tenant, "order.submitted", {"no": 1})
    receiver.fail = 1  # the first attempt fails; the queue brings the retry back on time
    relay.rng = lambda: 0.0  # shortest backoff: 2 s * 0.8
    assert await relay.kick(tid)
    assert not await relay.kick(tid)  # deduplicated while the first one waits
    await queue.start()
    await until(lambda: len(receiver.requests) == 2)
    assert {r.headers["omnicloud-event-id"] for r in receiver.requests} == {str(event_id)}
    await asyncio.sleep(0.3)
    assert len(receiver.requests) == 2
    [d] = await deliveries(app, tenant, sub.id)
    assert (d.status, d.attempts) == ("delivered", 2)
    if kind == "redis":
        await queue.stop()
        keys = [k async for k in redis.scan_iter(match=f"{queue.ns}:*")]
        assert not any(k.endswith(b":ready") for k in keys)
        if keys:
            await redis.delete(*keys)


async def test_sweep_relays_forgotten_events_and_due_deliveries(app, api, receiver, relays):
    tenant = await make_tenant(api)
    tid = UUID(tenant.id)
    sub = await subscribe(app, tenant, receiver.url, "invoice.*")
    clock = Clock()
    relay = relays(clock=clock)
    event_id = await emit(app, tenant, "invoice.issued", {"no": "INV-1"})  # nobody kicked
    assert await relay.sweep() >= 1
    with tenant_scope(tid):
        async with app.state.db.transaction() as session:
            assert (await webhooks.get_event(session, event_id)).relayed_at == clock()
    [d] = await deliveries(app, tenant, sub.id)
    assert d.status == "pending"
    # The delivery job got lost (a crash): the next sweep queues the due delivery again.
    restarted = relays(clock=clock)
    await restarted.sweep()
    await restarted.queue.run_pending()
    assert [r.headers["omnicloud-event-id"] for r in receiver.requests] == [str(event_id)]
    [d] = await deliveries(app, tenant, sub.id)
    assert d.status == "delivered"


async def test_events_are_published_on_the_tenant_channel(app, api, relays, redis):
    tenant = await make_tenant(api)
    pubsub = redis.pubsub()
    await pubsub.subscribe(events_channel(UUID(tenant.id), app.state.settings.redis_prefix))
    await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
    event_id = await emit(app, tenant, "auction.bid_placed", {"amount": "10.00"})
    await relays(redis=redis).relay_tenant(UUID(tenant.id))
    message = None
    for _ in range(20):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            break
    await pubsub.aclose()
    assert message is not None
    assert msgspec.json.decode(message["data"])["id"] == str(event_id)


# --- REST ----------------------------------------------------------------------------------


async def test_webhook_crud_over_rest(api):
    tenant = await make_tenant(api)
    h = tenant.auth
    bad = [
        ({"url": "ftp://example.com/x", "event_types": ["*"]}, "url"),
        ({"url": "https://", "event_types": ["*"]}, "url"),
        ({"url": "https://example.com/h", "event_types": ["Product!"]}, "event_types"),
        ({"url": "https://example.com/h", "event_types": []}, "event_types"),
        ({"url": "https://example.com/h", "event_types": ["*"], "secret": "short"}, "secret"),
        ({"url": "https://example.com/h", "event_types": ["*"], "extra": 1}, "extra"),
    ]
    for body, field_name in bad:
        r = await api.post("/api/v1/webhooks", json=body, headers=h)
        assert r.status_code in (400, 422) and field_name in r.text, (body, r.text)
    r = await api.post(
        "/api/v1/webhooks",
        json={"url": "https://example.com/hooks", "event_types": ["product.*", "order.created"]},
        headers={**h, "Idempotency-Key": "wh-1"},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_") and created["version"] == 1
    replay = await api.post(
        "/api/v1/webhooks",
        json={"url": "https://example.com/hooks", "event_types": ["product.*", "order.created"]},
        headers={**h, "Idempotency-Key": "wh-1"},
    )
    assert replay.json()["id"] == created["id"]
    own = await api.post(
        "/api/v1/webhooks",
        json={"url": "http://example.com/b", "event_types": ["*"], "secret": "my-own-secret-123456"},
        headers=h,
    )
    assert own.json()["secret"] == "my-own-secret-123456"
    wid = created["id"]
    listed = (await api.get("/api/v1/webhooks", params={"limit": 1}, headers=h)).json()
    assert len(listed["items"]) == 1 and listed["next_cursor"]
    assert all("secret" not in w for w in listed["items"])
    shown = (await api.get(f"/api/v1/webhooks/{wid}", headers=h)).json()
    assert "secret" not in shown and shown["event_types"] == ["order.created", "product.*"]

    patch = {"event_types": ["*"], "url": "https://example.com/v2"}
    assert (await api.patch(f"/api/v1/webhooks/{wid}", json=patch, headers=h)).status_code == 428
    stale = await api.patch(f"/api/v1/webhooks/{wid}", json=patch, headers={**h, "If-Match": '"7"'})
    assert stale.status_code == 412
    bad_url = await api.patch(
        f"/api/v1/webhooks/{wid}", json={"url": "mailto:x@example.com"}, headers={**h, "If-Match": '"1"'}
    )
    assert bad_url.status_code == 422 and bad_url.json()["errors"][0]["field"] == "url"
    r = await api.patch(f"/api/v1/webhooks/{wid}", json=patch, headers={**h, "If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["version"] == 2 and r.json()["url"].endswith("/v2")
    r = await api.delete(f"/api/v1/webhooks/{wid}", headers=h)
    assert r.json()["active"] is False and r.json()["version"] == 3
    inactive = (await api.get("/api/v1/webhooks", params={"active": "false"}, headers=h)).json()
    assert [w["id"] for w in inactive["items"]] == [wid]

    log = (await api.get("/api/v1/events", params={"type": "webhook.*"}, headers=h)).json()["items"]
    assert [e["type"] for e in log] == ["webhook.created"] * 2 + ["webhook.updated", "webhook.deactivated"]
    assert all("secret" not in e["payload"] for e in log)
    one = (await api.get(f"/api/v1/events/{log[0]['id']}", headers=h)).json()
    assert one["payload"]["id"] == wid
    exact = (await api.get("/api/v1/events", params={"type": "webhook.updated"}, headers=h)).json()
    assert len(exact["items"]) == 1
    audit = (await api.get("/api/v1/audit", params={"object_type": "webhook"}, headers=h)).json()
    assert {a["action"] for a in audit["items"]} == {"create", "update", "deactivate"}


async def test_permissions_and_other_tenants(app, api, receiver, relays):
    a, b = await make_tenant(api), await make_tenant(api)
    sub = await subscribe(app, a, receiver.url, "product.*")
    await emit(app, a, "product.created", {})
    await relays().relay_tenant(UUID(a.id))
    [d] = await deliveries(app, a, sub.id)
    event_id = d.event_id
    for path in (
        f"/api/v1/webhooks/{sub.id}",
        f"/api/v1/webhooks/{sub.id}/deliveries",
        f"/api/v1/events/{event_id}",
    ):
        assert (await api.get(path, headers=a.auth)).status_code == 200
        assert (await api.get(path, headers=b.auth)).status_code == 404
    for method, path in (
        ("PATCH", f"/api/v1/webhooks/{sub.id}"),
        ("DELETE", f"/api/v1/webhooks/{sub.id}"),
        ("POST", f"/api/v1/webhooks/{sub.id}/deliveries/{d.id}/retry"),
    ):
        r = await api.request(
            method,
            path,
            headers=b.auth,  # no If-Match: a foreign id is a 404, not a 428
            json={"active": False} if method == "PATCH" else None,
        )
        assert r.status_code == 404, (method, path, r.text)
    assert (await api.get("/api/v1/webhooks", headers=b.auth)).json()["items"] == []
    b_events = (await api.get("/api/v1/events", headers=b.auth)).json()["items"]
    assert str(event_id) not in {e["id"] for e in b_events}
    other = await api.get(f"/api/v1/webhooks/{uuid.uuid4()}/deliveries", headers=a.auth)
    assert other.status_code == 404

    r = await api.post(
        "/api/v1/users",
        json={"email": f"aud@{a.slug}.example", "name": "Auditor", "role": "auditor"},
        headers=a.auth,
    )
    assert r.status_code == 201, r.text
    key = await api.post("/api/v1/api-keys", json={"name": "aud", "user_id": r.json()["id"]}, headers=a.auth)
    auditor = bearer(key.json()["secret"])
    assert (await api.get(f"/api/v1/webhooks/{sub.id}/deliveries", headers=auditor)).status_code == 200
    assert (await api.get("/api/v1/events", headers=auditor)).status_code == 200
    r = await api.post(
        "/api/v1/webhooks", json={"url": "https://x.example/h", "event_types": ["*"]}, headers=auditor
    )
    assert r.status_code == 403
    assert (await api.delete(f"/api/v1/webhooks/{sub.id}", headers=auditor)).status_code == 403
