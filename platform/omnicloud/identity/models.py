"""Identity tables."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from omnicloud.core.db import TenantOwned, tenant_fk, utcnow


class Role(TenantOwned):
    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    code: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    permissions: Mapped[list[str]]
    builtin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(TenantOwned):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "email"),
        tenant_fk("role_id", "roles"),
        tenant_fk("customer_id", "customers"),
    )

    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(200))
    role_id: Mapped[UUID]
    customer_id: Mapped[UUID | None]  # dealer users act for this customer and its sub-dealers
    status: Mapped[str] = mapped_column(String(20), default="active")  # active|disabled
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(TenantOwned):
    __tablename__ = "api_keys"
    __table_args__ = (tenant_fk("user_id", "users"), Index(None, "tenant_id", "user_id"))

    user_id: Mapped[UUID]
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(40))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
