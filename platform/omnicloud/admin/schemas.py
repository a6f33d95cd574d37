"""Tenant-admin request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec


class PluginOut(msgspec.Struct, kw_only=True):
    name: str
    version: str
    hooks: list[str]
    permissions: list[str]
    enabled: bool
    settings: dict[str, Any]
    settings_version: int | None
    settings_schema: dict[str, Any] | None


class PluginList(msgspec.Struct, kw_only=True):
    items: list[PluginOut]


class PluginSettingsIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    settings: dict[str, Any] = {}


class AuditOut(msgspec.Struct, kw_only=True):
    id: UUID
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditPage(msgspec.Struct, kw_only=True):
    items: list[AuditOut]
    next_cursor: str | None
