"""Operator credentials: a bootstrap token from ``OMNICLOUD_OPERATOR_TOKEN``, or tokens
created with ``omnicloud operator token create`` and stored hashed."""

from __future__ import annotations

import hmac
import time
from uuid import UUID

from sqlalchemy import select

from omnicloud.core.db import Database, utcnow
from omnicloud.core.errors import Unauthorized
from omnicloud.core.ids import new_id
from omnicloud.core.security import (
    ParsedKey,
    Principal,
    format_operator_token,
    hash_secret,
    new_secret,
    secret_matches,
)
from omnicloud.core.tenancy import operator_scope
from omnicloud.operator.models import OperatorToken
from omnicloud.settings import Settings

_cache: dict[UUID, tuple[float, str, bool]] = {}
TTL = 30.0


def operator_principal(token_id: UUID | None) -> Principal:
    return Principal(kind="operator", key_id=token_id, permissions=frozenset({"operator"}))


async def authenticate(db: Database, settings: Settings, parsed: ParsedKey) -> Principal:
    full = format_operator_token(parsed.key_id, parsed.secret)
    if settings.operator_token and hmac.compare_digest(full, settings.operator_token):
        return operator_principal(None)
    hit = _cache.get(parsed.key_id)
    if hit is None or hit[0] < time.monotonic():
        with operator_scope():
            async with db.transaction() as session:
                row = await session.get(OperatorToken, parsed.key_id)
                if row is not None and row.revoked_at is None:
                    row.last_used_at = utcnow()
        hit = (time.monotonic() + TTL, row.secret_hash if row else "", bool(row and row.revoked_at is None))
        _cache[parsed.key_id] = hit
    if not hit[2] or not secret_matches(parsed.secret, hit[1]):
        raise Unauthorized("invalid operator token", code="invalid_credential")
    return operator_principal(parsed.key_id)


async def create_token(db: Database, name: str) -> str:
    token_id = new_id()
    secret = new_secret()
    with operator_scope():
        async with db.transaction() as session:
            session.add(OperatorToken(id=token_id, name=name, secret_hash=hash_secret(secret)))
    return format_operator_token(token_id, secret)


async def revoke_tokens(db: Database, name: str) -> int:
    with operator_scope():
        async with db.transaction() as session:
            rows = (
                await session.scalars(
                    select(OperatorToken).where(
                        OperatorToken.name == name, OperatorToken.revoked_at.is_(None)
                    )
                )
            ).all()
            for row in rows:
                row.revoked_at = utcnow()
                _cache.pop(row.id, None)
    return len(rows)


def new_bootstrap_token() -> str:
    """A token to put in OMNICLOUD_OPERATOR_TOKEN."""
    return format_operator_token(new_id(), new_secret())
