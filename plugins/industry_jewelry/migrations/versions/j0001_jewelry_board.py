"""jewelry board: purities and board prices

The root of the ``industry_jewelry`` branch; it needs the platform tables (``p0001``).
Per-tenant rows (the default purities) are written by the plugin's enable hook, never here.

Revision ID: j0001
Revises:
Create Date: 2026-11-29 10:50:44
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "j0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("industry_jewelry",)
depends_on: str | Sequence[str] | None = "p0001"

TENANT_TABLES = ["jewelry_purities", "jewelry_board_prices"]

# The platform's row-level security expression, copied (migrations never import app code).
RLS = "(tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid))"


def _row_level_security() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON {table} USING {RLS} WITH CHECK {RLS}")


def upgrade() -> None:
    op.create_table(
        "jewelry_purities",
        sa.Column("metal", sa.String(length=20), nullable=False),
        sa.Column("purity", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_jewelry_purities")),
        sa.UniqueConstraint("tenant_id", "purity", name=op.f("uq_jewelry_purities_tenant_id_purity")),
    )
    op.create_table(
        "jewelry_board_prices",
        sa.Column("metal", sa.String(length=20), nullable=False),
        sa.Column("purity", sa.String(length=20), nullable=False),
        sa.Column("price", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("exchange_price", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("brand_premium", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("set_by", sa.String(length=80), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "brand_premium IS NULL OR brand_premium >= 0",
            name=op.f("ck_jewelry_board_prices_brand_premium_nonneg"),
        ),
        sa.CheckConstraint(
            "exchange_price IS NULL OR exchange_price > 0",
            name=op.f("ck_jewelry_board_prices_exchange_price_positive"),
        ),
        sa.CheckConstraint("price > 0", name=op.f("ck_jewelry_board_prices_price_positive")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "purity"],
            ["jewelry_purities.tenant_id", "jewelry_purities.purity"],
            name=op.f("fk_jewelry_board_prices_tenant_id_purity_jewelry_purities"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_jewelry_board_prices")),
    )
    op.create_index(
        op.f("ix_jewelry_board_prices_tenant_id_purity_effective_at"),
        "jewelry_board_prices",
        ["tenant_id", "purity", "effective_at"],
    )
    op.create_index(
        op.f("ix_jewelry_board_prices_tenant_id_purity_id"),
        "jewelry_board_prices",
        ["tenant_id", "purity", "id"],
    )
    _row_level_security()


def downgrade() -> None:
    op.drop_index(op.f("ix_jewelry_board_prices_tenant_id_purity_id"), table_name="jewelry_board_prices")
    op.drop_index(
        op.f("ix_jewelry_board_prices_tenant_id_purity_effective_at"), table_name="jewelry_board_prices"
    )
    op.drop_table("jewelry_board_prices")
    op.drop_table("jewelry_purities")
