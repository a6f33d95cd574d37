"""Request, response and settings bodies of the jewelry pack."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

import msgspec

Metal = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z_]{0,19}$", examples=["gold"])]
PurityCode = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,19}$", examples=["Au999", "Pt950"])
]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class JewelrySettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Per-tenant settings; every field has a default."""

    lock_minutes: Annotated[int, msgspec.Meta(ge=1, le=1440)] = 15
    """How long a quoted gold price stays locked for an order (锁价), in minutes."""
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] = "CNY"
    default_labour_per_gram: Decimal = Decimal("0")
    """Labour per gram (克工费) for items that carry none of their own."""
    accepted_purities: list[PurityCode] = []
    """Purities accepted for old-gold trade-in (旧金回收); empty accepts every active purity."""

    def __post_init__(self) -> None:
        if not self.default_labour_per_gram.is_finite() or self.default_labour_per_gram < 0:
            raise ValueError("default_labour_per_gram must be >= 0")


class Input(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: unknown fields are rejected."""


class PurityIn(Input):
    metal: Metal
    name: Name
    active: bool = True


class PurityOut(msgspec.Struct, kw_only=True):
    purity: str
    metal: str
    name: str
    active: bool


class PurityList(msgspec.Struct, kw_only=True):
    items: list[PurityOut]


class BoardPriceSet(Input):
    """A board price per gram: ``price``, or ``exchange_price`` and ``brand_premium`` (the
    board is then their sum), or all three when they agree."""

    price: Decimal | None = None
    exchange_price: Decimal | None = None
    brand_premium: Decimal | None = None


class BoardPriceIn(BoardPriceSet, kw_only=True):
    metal: Metal
    purity: PurityCode


class BoardPriceOut(msgspec.Struct, kw_only=True):
    id: UUID
    metal: str
    purity: str
    price: Decimal
    exchange_price: Decimal | None
    brand_premium: Decimal | None
    effective_at: datetime
    set_by: str


class BoardList(msgspec.Struct, kw_only=True):
    """The current board: the latest price of every purity that has one."""

    currency: str
    items: list[BoardPriceOut]


class BoardHistoryPage(msgspec.Struct, kw_only=True):
    items: list[BoardPriceOut]
    next_cursor: str | None


class TradeInIn(Input):
    metal: Metal
    purity: PurityCode
    weight_g: Decimal
    loss_pct: Decimal = Decimal("0")
    """The melting loss (损耗) deducted, in percent: 0 <= loss_pct < 100."""


class TradeInQuote(msgspec.Struct, kw_only=True):
    """What old gold is worth towards a purchase: weight × (1 − loss %) × recycle price."""

    metal: str
    purity: str
    weight_g: Decimal
    loss_pct: Decimal
    recycle_price: Decimal
    recycle_basis: str  # "exchange_price" when the board row has one, else "board_price"
    board_effective_at: datetime
    value: Decimal
    currency: str


class ManifestPurity(PurityIn, kw_only=True):
    purity: PurityCode


class ManifestSection(Input):
    """``[x.industry_jewelry]`` in a tenant manifest."""

    purities: list[ManifestPurity] = []
    board: list[BoardPriceIn] = []
