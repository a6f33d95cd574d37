"""Alembic runs here with a connection handed in by omnicloud.migrations (see ``run``)."""

from alembic import context

from omnicloud import models  # noqa: F401  (complete metadata)
from omnicloud.core.db import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations with `omnicloud db upgrade`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    compare_type=True,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
