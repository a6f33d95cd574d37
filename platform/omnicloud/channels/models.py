"""Channel tables. The dealer tree keeps a materialised ``path`` so a dealer's subtree is one
indexed prefix match."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from omnicloud.core.db import TenantOwned, tenant_fk, utcnow


class SalesOrg(TenantOwned):
    __tablename__ = "sales_orgs"
    __table_args__ = (UniqueConstraint("tenant_id", "code"), tenant_fk("parent_id", "sales_orgs"))

    code: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[UUID | None]


class Customer(TenantOwned):
    """A dealer (经销商) or terminal (终端门店). Dealers form a tree through ``parent_id``."""

    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        tenant_fk("parent_id", "customers"),
        tenant_fk("region_id", "regions"),
        tenant_fk("sales_org_id", "sales_orgs"),
        Index(None, "tenant_id", "path"),
        Index(None, "tenant_id", "parent_id"),
    )

    code: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # dealer|terminal
    customer_class: Mapped[str | None] = mapped_column(String(40))
    level: Mapped[str | None] = mapped_column(String(40))
    channel: Mapped[str | None] = mapped_column(String(40))
    region_id: Mapped[UUID | None]
    sales_org_id: Mapped[UUID | None]
    parent_id: Mapped[UUID | None]
    path: Mapped[str] = mapped_column(String(2000))  # "/<top dealer id>/.../<own id>/"
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)
