"""Webhook subscriptions, their deliveries, and the tenant's event log over REST."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from omnicloud.core.db import utcnow
from omnicloud.core.deps import Cursor, Limit, Session, page_limit
from omnicloud.core.http import idempotent, if_match, requires
from omnicloud.webhooks import service
from omnicloud.webhooks.schemas import (
    DeliveryOut,
    DeliveryPage,
    EventPage,
    EventRecord,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
    WebhookPage,
    WebhookPatch,
)

DeliveryStatus = Annotated[
    str | None,
    QueryParameter(
        name="status", pattern="^(pending|delivered|failed)$", description="pending, delivered or failed"
    ),
]
EventType = Annotated[
    str | None,
    QueryParameter(
        name="type",
        max_length=80,
        pattern=r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$",
        description='An event type, or a prefix such as "product.*"',
    ),
]


class WebhooksController(Controller):
    path = "/api/v1/webhooks"
    tags = ["webhooks"]

    @post(
        "/",
        operation_id="createWebhook",
        summary="Subscribe an URL to events; the signing secret is shown once",
        guards=[requires("webhooks:write")],
    )
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[WebhookIn], session: Session
    ) -> Response[WebhookCreated]:
        return await idempotent(request, session, lambda: service.create_webhook(session, data))

    @get("/", operation_id="listWebhooks", summary="List webhooks", guards=[requires("webhooks:read")])
    async def list_webhooks(
        self,
        session: Session,
        state: State,
        active: FromQuery[bool | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> WebhookPage:
        items, nxt = await service.list_webhooks(session, cursor, page_limit(state, limit), active)
        return WebhookPage(items=items, next_cursor=nxt)

    @get(
        "/{webhook_id:uuid}",
        operation_id="getWebhook",
        summary="Show a webhook",
        guards=[requires("webhooks:read")],
    )
    async def get_webhook(self, webhook_id: FromPath[UUID], session: Session) -> WebhookOut:
        return await service.get_webhook(session, webhook_id)

    @patch(
        "/{webhook_id:uuid}",
        operation_id="updateWebhook",
        summary="Change a webhook's URL, event types, description or active flag",
        description="Send If-Match with the version you read; a stale version answers 412.",
        guards=[requires("webhooks:write")],
    )
    async def update(
        self,
        webhook_id: FromPath[UUID],
        data: JSONBody[WebhookPatch],
        request: Request[Any, Any, Any],
        session: Session,
    ) -> WebhookOut:
        return await service.update_webhook(session, webhook_id, data, if_match(request, required=False))

    @delete(
        "/{webhook_id:uuid}",
        operation_id="deleteWebhook",
        summary="Deactivate a webhook (its deliveries stay listed)",
        guards=[requires("webhooks:write")],
        status_code=200,
    )
    async def deactivate(
        self, webhook_id: FromPath[UUID], request: Request[Any, Any, Any], session: Session
    ) -> WebhookOut:
        return await service.deactivate_webhook(session, webhook_id, if_match(request, required=False))

    @get(
        "/{webhook_id:uuid}/deliveries",
        operation_id="listWebhookDeliveries",
        summary="A webhook's deliveries, newest last, filterable by status",
        guards=[requires("webhooks:read")],
    )
    async def deliveries(
        self,
        webhook_id: FromPath[UUID],
        session: Session,
        state: State,
        status: DeliveryStatus = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> DeliveryPage:
        items, nxt = await service.list_deliveries(
            session, webhook_id, status, cursor, page_limit(state, limit)
        )
        return DeliveryPage(items=items, next_cursor=nxt)

    @post(
        "/{webhook_id:uuid}/deliveries/{delivery_id:uuid}/retry",
        operation_id="retryWebhookDelivery",
        summary="Send a failed delivery again, with a fresh set of attempts",
        guards=[requires("webhooks:write")],
        status_code=200,
    )
    async def retry(
        self, webhook_id: FromPath[UUID], delivery_id: FromPath[UUID], session: Session
    ) -> DeliveryOut:
        return await service.retry_delivery(session, webhook_id, delivery_id, utcnow())


class EventsController(Controller):
    path = "/api/v1/events"
    tags = ["webhooks"]

    @get(
        "/",
        operation_id="listEvents",
        summary="The tenant's domain events (the outbox), oldest first",
        guards=[requires("webhooks:read")],
    )
    async def list_events(
        self,
        session: Session,
        state: State,
        event_type: EventType = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> EventPage:
        items, nxt = await service.list_events(session, event_type, cursor, page_limit(state, limit))
        return EventPage(items=items, next_cursor=nxt)

    @get(
        "/{event_id:uuid}",
        operation_id="getEvent",
        summary="Show one domain event",
        guards=[requires("webhooks:read")],
    )
    async def get_event(self, event_id: FromPath[UUID], session: Session) -> EventRecord:
        return await service.get_event(session, event_id)


ROUTES: list[Any] = [WebhooksController, EventsController]
