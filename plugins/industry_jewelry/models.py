"""Tables of the jewelry pack, all prefixed ``jewelry_`` and tenant-owned.

Created by this plugin's own alembic branch (``migrations/versions/j0001_jewelry_board.py``),
never by the platform migration.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from omnicloud.core.db import Money, TenantOwned, utcnow


class JewelryPurity(TenantOwned):
    """A purity the tenant prices (成色), e.g. ``Au999`` 千足金 of metal ``gold``."""

    __tablename__ = "jewelry_purities"
    __table_args__ = (UniqueConstraint("tenant_id", "purity"),)

    metal: Mapped[str] = mapped_column(String(20))
    purity: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(default=True)


class JewelryBoardPrice(TenantOwned):
    """One board price (金价牌) per gram, append-only: every change is a new row, and the
    current price of a purity is its row with the latest ``effective_at``."""

    __tablename__ = "jewelry_board_prices"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "purity"], ["jewelry_purities.tenant_id", "jewelry_purities.purity"]
        ),
        Index(None, "tenant_id", "purity", "effective_at"),
        Index(None, "tenant_id", "purity", "id"),
        CheckConstraint("price > 0", name="price_positive"),
        CheckConstraint("exchange_price IS NULL OR exchange_price > 0", name="exchange_price_positive"),
        CheckConstraint("brand_premium IS NULL OR brand_premium >= 0", name="brand_premium_nonneg"),
    )

    metal: Mapped[str] = mapped_column(String(20))
    purity: Mapped[str] = mapped_column(String(20))
    price: Mapped[Decimal] = mapped_column(Money)
    exchange_price: Mapped[Decimal | None] = mapped_column(Money)
    brand_premium: Mapped[Decimal | None] = mapped_column(Money)
    effective_at: Mapped[datetime] = mapped_column(default=utcnow)
    set_by: Mapped[str] = mapped_column(String(80))
