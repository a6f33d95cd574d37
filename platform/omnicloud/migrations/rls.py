"""Row-level security for tenant tables, shared by every revision that creates some."""

from alembic import op

POLICY = "(tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid))"


def enable_row_level_security(tables: list[str]) -> None:
    """ENABLE + FORCE RLS with the tenant policy (PostgreSQL only; SQLite relies on the ORM guard)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in tables:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON {table} USING {POLICY} WITH CHECK {POLICY}")
