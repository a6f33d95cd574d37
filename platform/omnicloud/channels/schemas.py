"""Channel request and response bodies: customers (dealers and terminals) and sales orgs.

``*In`` bodies create through REST and refer to other objects by id; ``*Patch`` bodies change
only the fields they carry; ``*Spec`` bodies drive the idempotent upserts (tenant manifests,
CSV import) and refer to other objects by code. In a ``Patch`` or a ``Spec`` an omitted field
keeps its current value (on create it takes its default); ``null`` clears it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
# PostgreSQL text cannot hold NUL, so free text refuses it up front.
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[^\x00]+$")]
Kind = Literal["dealer", "terminal"]
Status = Literal["active", "inactive"]


class Input(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: unknown fields are rejected."""


# --- sales orgs -----------------------------------------------------------------------------


class SalesOrgIn(Input):
    code: Code
    name: Name
    parent_id: UUID | None = None


class SalesOrgPatch(Input):
    """Rename a sales org or move it (``parent_id: null`` makes it a root)."""

    name: Name | UnsetType = UNSET
    parent_id: UUID | UnsetType | None = UNSET


class SalesOrgSpec(Input):
    code: Code
    name: Name
    parent_code: Code | UnsetType | None = UNSET


class SalesOrgOut(msgspec.Struct, kw_only=True):
    id: UUID
    code: str
    name: str
    parent_id: UUID | None


class SalesOrgPage(msgspec.Struct, kw_only=True):
    items: list[SalesOrgOut]
    next_cursor: str | None


# --- customers ------------------------------------------------------------------------------


class CustomerIn(Input):
    """A dealer (经销商) or a terminal store (终端门店). ``parent_id`` is the supplying dealer."""

    code: Code
    name: Name
    kind: Kind
    customer_class: Label | None = None
    level: Label | None = None
    channel: Label | None = None
    region_id: UUID | None = None
    sales_org_id: UUID | None = None
    parent_id: UUID | None = None
    status: Status = "active"


class CustomerPatch(Input):
    name: Name | UnsetType = UNSET
    kind: Kind | UnsetType = UNSET
    customer_class: Label | UnsetType | None = UNSET
    level: Label | UnsetType | None = UNSET
    channel: Label | UnsetType | None = UNSET
    region_id: UUID | UnsetType | None = UNSET
    sales_org_id: UUID | UnsetType | None = UNSET
    parent_id: UUID | UnsetType | None = UNSET
    status: Status | UnsetType = UNSET


class CustomerSpec(Input):
    code: Code
    name: Name
    kind: Kind
    customer_class: Label | UnsetType | None = UNSET
    level: Label | UnsetType | None = UNSET
    channel: Label | UnsetType | None = UNSET
    region_code: Code | UnsetType | None = UNSET
    sales_org_code: Code | UnsetType | None = UNSET
    parent_code: Code | UnsetType | None = UNSET
    status: Status | UnsetType = UNSET


class CustomerOut(msgspec.Struct, kw_only=True):
    id: UUID
    code: str
    name: str
    kind: str
    customer_class: str | None
    level: str | None
    channel: str | None
    region_id: UUID | None
    sales_org_id: UUID | None
    parent_id: UUID | None
    path: str
    status: str
    version: int
    created_at: datetime


class CustomerPage(msgspec.Struct, kw_only=True):
    items: list[CustomerOut]
    next_cursor: str | None


# --- CSV -----------------------------------------------------------------------------------

CUSTOMER_CSV_COLUMNS = (
    "code",
    "name",
    "kind",
    "class",
    "level",
    "region_code",
    "channel",
    "parent_code",
    "sales_org_code",
)


class CustomerCsvRow(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One row of a customer CSV. An empty cell keeps the current value."""

    code: Code
    name: Name
    kind: Kind
    customer_class: Label | None = msgspec.field(default=None, name="class")
    level: Label | None = None
    region_code: Code | None = None
    channel: Label | None = None
    parent_code: Code | None = None
    sales_org_code: Code | None = None
