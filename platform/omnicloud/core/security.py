"""Credentials and the principal of a request.

API keys look like ``ock_<tenant>_<key id>_<secret>``: the tenant and key id are public and
let us find the key under row-level security; only a SHA-256 of the secret is stored (the
secret has 256 bits of entropy, so a slow hash adds nothing). Operator tokens are the same
shape with the ``oco`` prefix and no tenant.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from contextvars import ContextVar
from uuid import UUID

import msgspec

KEY_PREFIX = "ock"
OPERATOR_PREFIX = "oco"


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling: an operator, or a tenant user through one of its API keys."""

    kind: str  # "operator" | "user"
    tenant_id: UUID | None = None
    user_id: UUID | None = None
    key_id: UUID | None = None
    roles: tuple[str, ...] = ()
    permissions: frozenset[str] = frozenset()
    customer_id: UUID | None = None  # set for dealer users: the customer they act for

    @property
    def is_dealer(self) -> bool:
        return self.customer_id is not None

    def can(self, permission: str) -> bool:
        return "*" in self.permissions or permission in self.permissions

    @property
    def actor(self) -> str:
        if self.kind == "operator":
            return f"operator:{self.key_id or 'bootstrap'}"
        return f"user:{self.user_id}"


_principal: ContextVar[Principal | None] = ContextVar("omnicloud_principal", default=None)


def current_principal() -> Principal | None:
    return _principal.get()


def set_principal(p: Principal | None) -> None:
    _principal.set(p)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def format_api_key(tenant_id: UUID, key_id: UUID, secret: str) -> str:
    return f"{KEY_PREFIX}_{tenant_id.hex}_{key_id.hex}_{secret}"


def format_operator_token(token_id: UUID, secret: str) -> str:
    return f"{OPERATOR_PREFIX}_{token_id.hex}_{secret}"


def display_prefix(full_key: str) -> str:
    """The part of a key that may be shown after creation."""
    return full_key[:12] + "…" + full_key[-4:]


class ParsedKey(msgspec.Struct, frozen=True):
    kind: str
    tenant_id: UUID | None
    key_id: UUID
    secret: str


def parse_credential(raw: str) -> ParsedKey | None:
    parts = raw.split("_", 3)
    try:
        if parts[0] == KEY_PREFIX and len(parts) == 4:
            return ParsedKey("user", UUID(hex=parts[1]), UUID(hex=parts[2]), parts[3])
        if parts[0] == OPERATOR_PREFIX and len(parts) >= 3:
            _, key_hex, secret = raw.split("_", 2)
            return ParsedKey("operator", None, UUID(hex=key_hex), secret)
    except ValueError:
        return None
    return None
