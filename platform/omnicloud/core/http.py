"""HTTP plumbing shared by every controller: problem responses, the credential middleware,
the request-scoped transaction, permission guards, idempotency and ``If-Match``."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.core.db import set_read_only, utcnow
from omnicloud.core.errors import (
    Forbidden,
    PreconditionRequired,
    Problem,
    Unauthorized,
    Unprocessable,
)
from omnicloud.core.ids import new_id
from omnicloud.core.models import IdempotencyRecord
from omnicloud.core.security import Principal, current_principal, parse_credential, set_principal
from omnicloud.core.tenancy import NoTenant, require_tenant, set_tenant

log = logging.getLogger("omnicloud.http")

PROBLEM_JSON = "application/problem+json"


# --- problems -----------------------------------------------------------------------------


def problem_response(problem: Problem) -> Response[bytes]:
    return Response(
        content=msgspec.json.encode(problem.body()),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def _validation_errors(exc: ValidationException) -> list[dict[str, str]]:
    errors = []
    extra = exc.extra if isinstance(exc.extra, list) else [exc.extra] if exc.extra else []
    for item in extra:
        if isinstance(item, dict):
            key = str(item.get("key") or item.get("source") or "body")
            errors.append({"field": key, "message": str(item.get("message", exc.detail))})
    return errors


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if isinstance(exc, Problem):
        return problem_response(exc)
    if isinstance(exc, ValidationException):
        errors = _validation_errors(exc)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or str(exc.detail)
        return problem_response(
            Problem(detail, status=422, code="validation_failed", errors=errors, title="Invalid request")
        )
    if isinstance(exc, HTTPException):
        status = exc.status_code
        detail = str(exc.detail)
        codes = {
            400: "bad_request",
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
            429: "rate_limited",
        }
        code = codes.get(status, "http_error")
        if status == 400 and "malformed" in detail.lower():
            code = "malformed_json"
        return problem_response(
            Problem(
                detail, status=status, code=code, title=detail.split(":")[0], headers=dict(exc.headers or {})
            )
        )
    if isinstance(exc, NoTenant):
        log.error("tenant guard refused a query", exc_info=exc)
        return problem_response(
            Problem("tenant guard refused the operation", status=500, code="tenant_guard")
        )
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        Problem("internal error", status=500, code="internal_error", title="Internal error")
    )


# --- credentials --------------------------------------------------------------------------

PUBLIC_PREFIXES = ("/healthz", "/readyz", "/schema")
OPERATOR_PREFIX = "/api/v1/operator"


def read_credential(headers: Any) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    return headers.get("x-api-key")


class CredentialMiddleware:
    """Authenticates every ``/api`` request and binds its tenant and principal.

    The tenant comes from the credential only. Operator credentials reach only
    ``/api/v1/operator``; tenant credentials never do.
    """

    def __init__(
        self,
        app: ASGIApp,
        authenticate: Callable[[str, str], Awaitable[Principal]],
        limit: Callable[[Principal], Awaitable[None]],
    ) -> None:
        self.app = app
        self.authenticate = authenticate
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        set_tenant(None)
        set_principal(None)
        from litestar.datastructures import Headers

        raw = read_credential(Headers.from_scope(scope))
        if raw is None:
            raise Unauthorized(
                "send an API key as 'Authorization: Bearer <key>'",
                code="missing_credential",
                headers={"WWW-Authenticate": "Bearer"},
            )
        principal = await self.authenticate(raw, scope["path"])
        set_tenant(principal.tenant_id)
        set_principal(principal)
        await self.limit(principal)
        await self.app(scope, receive, send)


async def authenticate_raw(app_state: Any, raw: str, path: str) -> Principal:
    from omnicloud.identity import service as identity
    from omnicloud.operator import tokens

    parsed = parse_credential(raw)
    if parsed is None:
        raise Unauthorized("malformed API key", code="invalid_credential")
    operator_path = path == OPERATOR_PREFIX or path.startswith(OPERATOR_PREFIX + "/")
    if parsed.kind == "operator":
        principal = await tokens.authenticate(app_state.db, app_state.settings, parsed)
        if not operator_path:
            raise Forbidden("operator credentials reach only /api/v1/operator", code="operator_credential")
        return principal
    principal = await identity.authenticate(app_state.db, parsed, app_state.plugins.all_permissions)
    if operator_path:
        raise Forbidden("tenant credentials cannot reach the operator API", code="tenant_credential")
    return principal


# --- transactions and guards ---------------------------------------------------------------


async def provide_session(
    state: State, request: Request[Any, Any, Any]
) -> AsyncGenerator[AsyncSession, None]:
    """One transaction per request: committed when the handler returns, rolled back when it
    raises. GET and HEAD requests, and handlers marked ``opt={"read_only": True}`` (a POST that
    only computes, like a quote), only read: on PostgreSQL they run without a transaction (each
    statement sees its own snapshot) and on SQLite they take no write lock, so such a handler
    must never write."""
    # Litestar may finish this generator in another context, so no context-manager reset here.
    reading = request.method in ("GET", "HEAD") or bool(request.route_handler.opt.get("read_only"))
    set_read_only(reading)
    try:
        factory = state.db.read_sessions if reading else state.db.sessions
        async with factory() as session:
            async with session.begin():
                yield session
            if not reading:
                await state.relay.kick_pending(session)
    finally:
        set_read_only(False)


def provide_principal() -> Principal:
    p = current_principal()
    if p is None:
        raise Unauthorized("authentication required", code="missing_credential")
    return p


def requires(
    *permissions: str,
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]:
    """A guard: the caller needs every listed permission.

    The guard is a coroutine function although it never awaits: litestar runs a plain function
    guard in a worker thread, a thread hop on every request for a set lookup."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        p = current_principal()
        if p is None:
            raise Unauthorized("authentication required", code="missing_credential")
        missing = [perm for perm in permissions if not p.can(perm)]
        if missing:
            raise Forbidden(f"missing permission: {', '.join(missing)}", code="missing_permission")

    guard.__name__ = f"requires_{'_'.join(permissions)}"
    return guard


def if_match(request: Request[Any, Any, Any], *, required: bool = True) -> int | None:
    """The version a configuration update is based on, from ``If-Match: "<version>"``."""
    raw = request.headers.get("if-match")
    if raw is None:
        if required:
            raise PreconditionRequired("send If-Match with the version you read", code="if_match_required")
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise Unprocessable("If-Match must be a version number", code="bad_if_match")
    return int(value)


# --- idempotency ---------------------------------------------------------------------------

IDEMPOTENCY_HEADER = "idempotency-key"


async def idempotent(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    create: Callable[[], Awaitable[Any]],
    *,
    status_code: int = 201,
) -> Response[bytes]:
    """Run a creating POST once per ``Idempotency-Key``.

    The record is inserted in the request's own transaction, before the work, so concurrent
    requests with the same key wait on it (PostgreSQL's unique index; SQLite's write lock)
    and then replay the stored response. The same key with a different body is a 422. The
    insert skips a conflicting key instead of failing, so no savepoint is needed: two
    statements per keyed request, whatever the work.
    """
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return _json(status_code, await create())
    if not 1 <= len(key) <= 255:
        raise Unprocessable("Idempotency-Key must be 1 to 255 characters", code="bad_idempotency_key")
    body = await request.body()
    principal = current_principal()
    fingerprint = hashlib.sha256(
        b"\0".join(
            [
                request.method.encode(),
                request.url.path.encode(),
                str(principal.user_id if principal else "").encode(),
                body,
            ]
        )
    ).hexdigest()
    record_id = new_id()
    claim = (
        _dialect_insert(session)(IdempotencyRecord)
        .values(
            tenant_id=require_tenant(),
            id=record_id,
            key=key,
            fingerprint=fingerprint,
            status_code=0,
            body=b"",
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "key"])
        .returning(IdempotencyRecord.id)
    )
    if (await session.execute(claim)).scalar() is None:
        stored = await session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.key == key))
        if stored is None:
            raise Problem(
                "concurrent request with the same Idempotency-Key", status=409, code="idempotency_in_progress"
            ) from None
        if stored.fingerprint != fingerprint:
            raise Unprocessable(
                "this Idempotency-Key was used with a different request", code="idempotency_key_reused"
            ) from None
        return Response(
            content=stored.body,
            status_code=stored.status_code,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    result = await create()
    encoded = msgspec.json.encode(result)
    await session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.id == record_id)
        .values(status_code=status_code, body=encoded)
        .execution_options(synchronize_session=False)
    )
    return Response(content=encoded, status_code=status_code, media_type="application/json")


def _dialect_insert(session: AsyncSession) -> Any:
    """INSERT with ON CONFLICT for the session's database (PostgreSQL or SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        return pg_insert
    return sqlite_insert


def _json(status_code: int, result: Any) -> Response[bytes]:
    return Response(
        content=msgspec.json.encode(result), status_code=status_code, media_type="application/json"
    )


# --- CSV uploads -----------------------------------------------------------------------------

CSV = "text/csv"


@dataclass
class CsvUpload(Operation):
    """Documents a ``text/csv`` request body, which handlers read with :func:`read_csv`."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            content={CSV: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))},
            required=True,
            description="UTF-8 CSV with a header row, within the request body limit",
        )


async def read_csv(request: Request[Any, Any, Any]) -> str:
    """The request body as text; the app's body limit (``max_body_bytes``) answers 413."""
    raw = await request.body()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Unprocessable(
            "the CSV must be UTF-8 encoded",
            code="csv_encoding",
            errors=[{"field": "body", "message": "not UTF-8"}],
        ) from None
