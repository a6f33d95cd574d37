"""The jewelry branch migrates on its own: down to its base and back up to every head."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from industry_jewelry.models import JewelryBoardPrice, JewelryPurity
from omnicloud import migrations
from omnicloud.core.db import Base, Database

TABLES = {JewelryPurity.__tablename__, JewelryBoardPrice.__tablename__}


async def _state(db: Database) -> tuple[set[str], tuple[str, ...], list[object]]:
    async with db.engine.connect() as conn:
        tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        heads = await conn.run_sync(migrations.current_heads)
        diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
    ours = [d for d in diff if isinstance(d, tuple) and getattr(d[1], "name", "").startswith("jewelry_")]
    return tables, heads, ours


async def test_branch_downgrades_and_upgrades(backend):
    db = Database(backend.owner_url, pool_size=1)
    try:
        tables, heads, diff = await _state(db)
        assert TABLES <= tables and diff == []
        assert "j0001" in heads

        await migrations.downgrade(db.engine, backend.plugins, "industry_jewelry@base")
        tables, heads, _ = await _state(db)
        assert not TABLES & tables
        assert heads and "j0001" not in heads
        assert "skus" in tables  # the platform stays

        await migrations.upgrade(db.engine, backend.plugins, "heads")
        tables, heads, diff = await _state(db)
        assert TABLES <= tables and "j0001" in heads and diff == []
        if db.dialect == "postgresql":
            async with db.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        text(
                            "select c.relname, c.relrowsecurity, c.relforcerowsecurity, count(p.polname) "
                            "from pg_class c left join pg_policy p on p.polrelid = c.oid "
                            "where c.relname like 'jewelry\\_%' group by 1, 2, 3"
                        )
                    )
                ).all()
            assert {r[0] for r in rows} == TABLES
            assert all(r[1] and r[2] and r[3] == 1 for r in rows), rows
    finally:
        await db.dispose()
