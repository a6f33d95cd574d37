"""Operator request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

Slug = Annotated[str, msgspec.Meta(min_length=2, max_length=63, pattern=r"^[a-z][a-z0-9-]*[a-z0-9]$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class TenantIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    slug: Slug
    name: Name
    admin_email: Email
    admin_name: Name = "Tenant administrator"
    industry: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    plugins: dict[str, dict[str, Any]] = {}


class SuspendIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: Reason


class TenantOut(msgspec.Struct, kw_only=True):
    id: UUID
    slug: str
    name: str
    status: str
    status_reason: str | None
    industry: str | None
    created_at: datetime
    deleted_at: datetime | None
    plugins: list[str] = []


class TenantCreated(msgspec.Struct, kw_only=True):
    tenant: TenantOut
    admin_user_id: UUID
    admin_api_key: str  # shown once


class TenantPage(msgspec.Struct, kw_only=True):
    items: list[TenantOut]
    next_cursor: str | None
