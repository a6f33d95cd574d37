"""Identity request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=60, pattern=r"^[a-z][a-z0-9_]*$")]


class Input(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: unknown fields are rejected."""


class RoleIn(Input):
    code: Code
    name: Name
    permissions: list[Annotated[str, msgspec.Meta(min_length=1, max_length=100)]]


class RoleOut(msgspec.Struct, kw_only=True):
    id: UUID
    code: str
    name: str
    permissions: list[str]
    builtin: bool


class RolePage(msgspec.Struct, kw_only=True):
    items: list[RoleOut]
    next_cursor: str | None


class UserIn(Input):
    email: Email
    name: Name
    role: Code
    customer_id: UUID | None = None


class UserPatch(Input):
    name: Name | None = None
    role: Code | None = None
    status: Annotated[str, msgspec.Meta(pattern="^(active|disabled)$")] | None = None


class UserOut(msgspec.Struct, kw_only=True):
    id: UUID
    email: str
    name: str
    role: str
    customer_id: UUID | None
    status: str
    created_at: datetime


class UserPage(msgspec.Struct, kw_only=True):
    items: list[UserOut]
    next_cursor: str | None


class ApiKeyIn(Input):
    name: Name
    user_id: UUID | None = None  # defaults to the caller
    expires_at: datetime | None = None


class ApiKeyOut(msgspec.Struct, kw_only=True):
    id: UUID
    user_id: UUID
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyOut, kw_only=True):
    secret: str  # the whole key; shown once, never again


class ApiKeyPage(msgspec.Struct, kw_only=True):
    items: list[ApiKeyOut]
    next_cursor: str | None


class PermissionOut(msgspec.Struct, kw_only=True):
    name: str
    description: str


class MeOut(msgspec.Struct, kw_only=True):
    tenant_id: UUID
    user_id: UUID
    roles: list[str]
    permissions: list[str]
    customer_id: UUID | None
