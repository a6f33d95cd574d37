"""The migrated schema equals the models, on the backend under test."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from omnicloud import migrations
from omnicloud import models as _models  # noqa: F401
from omnicloud.core.db import Base, Database


def _relevant(diff: list) -> list:
    # The migration tracking table is alembic's own.
    return [d for d in diff if not (d[0] == "remove_table" and d[1].name == "alembic_version")]


async def test_migrated_schema_has_no_autogenerate_diff(backend):
    db = Database(backend.owner_url, pool_size=1)
    try:
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
            )
            heads = await conn.run_sync(migrations.current_heads)
            pending = await conn.run_sync(lambda c: migrations.pending(c, backend.plugins))
    finally:
        await db.dispose()
    assert _relevant(diff) == []
    assert set(heads) <= set(migrations.all_heads(backend.plugins)) and heads
    assert pending == []
