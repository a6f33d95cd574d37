"""Database engine, declarative bases and the tenant guard.

Layer 1 of tenant isolation lives here and works on both databases: every ORM SELECT, UPDATE
and DELETE that touches a :class:`TenantOwned` entity gets ``tenant_id = :current`` added as
a loader criterion, and every flush stamps and checks ``tenant_id``. With no tenant in
context the guard raises instead of returning all rows. Hot read paths that skip the ORM use
:class:`TenantQuery` instead, whose equivalent guard checks the statement once, when it is built.
Layer 2, PostgreSQL row-level security, is declared in each migration (ENABLE and FORCE with a
``tenant_isolation`` policy) and bound per transaction or connection in :func:`bind_rls_tenant`.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKeyConstraint,
    MetaData,
    Numeric,
    String,
    TypeDecorator,
    bindparam,
    create_engine,
    event,
    text,
)
from sqlalchemy import (
    exc as sa_exc,
)
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    mapped_column,
    with_loader_criteria,
)
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import (
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    ColumnClause,
    ColumnElement,
    Grouping,
    TextClause,
)
from sqlalchemy.sql.selectable import Alias, FromClause, Join, Select, TableClause, TextualSelect
from sqlalchemy.sql.util import find_tables

from omnicloud.core.ids import new_id
from omnicloud.core.tenancy import NoTenant, current_tenant, in_operator_scope, require_tenant

warnings.filterwarnings("ignore", message=".*does \\*not\\* support Decimal objects natively.*")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps are stored and returned as aware UTC datetimes on both databases."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


Money = Numeric(18, 2)
Quantity = Numeric(18, 4)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        datetime: UtcDateTime(),
        Decimal: Numeric(18, 4),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
        list[str]: JSON(),
        str: String(),
    }


class TenantOwned(Base):
    """A table owned by one tenant: composite primary key ``(tenant_id, id)``.

    Foreign keys to other tenant-owned tables are composite (see :func:`tenant_fk`), so a row
    can never point at another tenant's row.
    """

    __abstract__ = True

    tenant_id: Mapped[UUID] = mapped_column(primary_key=True)
    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)


def tenant_fk(column: str, target_table: str, *, ondelete: str | None = None) -> ForeignKeyConstraint:
    """``(tenant_id, column) -> target_table(tenant_id, id)``."""
    return ForeignKeyConstraint(
        ["tenant_id", column], [f"{target_table}.tenant_id", f"{target_table}.id"], ondelete=ondelete
    )


def tenant_tables() -> list[str]:
    return sorted(t.name for t in Base.metadata.sorted_tables if "tenant_id" in t.c)


# --- the guard --------------------------------------------------------------------------


@event.listens_for(TenantOwned, "init", propagate=True)
def _stamp_on_create(target: TenantOwned, args: Any, kwargs: dict[str, Any]) -> None:
    # Stamp at construction: a flush may happen after the code that built the row has left
    # the tenant's scope (operator services switch tenants inside one transaction).
    if kwargs.get("tenant_id") is None:
        kwargs["tenant_id"] = current_tenant()


class TenantMismatch(NoTenant):
    """A write carried a tenant id other than the one in context."""


class ReadOnlyViolation(RuntimeError):
    """A handler that promised to only read tried to write: a bug, never bad input."""


class TenantSession(Session):
    """The ORM session class every Omnicloud session uses; the guard listens on it."""


class UnfilterableQuery(NoTenant):
    """A query reaches a tenant table in a form the guard cannot filter."""


def _touches_tenant_data(state: ORMExecuteState) -> bool:
    if any(issubclass(m.class_, TenantOwned) for m in state.all_mappers):
        return True
    names = _tenant_table_names()
    if any(t.name in names for t in find_tables(state.statement, include_crud=True)):
        # e.g. select(func.count()).select_from(Model): no entity for the criterion to bind to.
        raise UnfilterableQuery(
            "this query reaches a tenant table without a mapped entity the guard can filter; "
            "select a mapped column instead, e.g. func.count(Model.id)"
        )
    return False


_TENANT_TABLES: list[frozenset[str]] = [frozenset()]


def _tenant_table_names() -> frozenset[str]:
    # Plugins add tables after import, so the set is rebuilt whenever the metadata grows.
    count = sum(1 for t in Base.metadata.tables.values() if "tenant_id" in t.c)
    if len(_TENANT_TABLES[0]) != count:
        _TENANT_TABLES[0] = frozenset(tenant_tables())
    return _TENANT_TABLES[0]


@event.listens_for(TenantSession, "do_orm_execute")
def _filter_by_tenant(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete) or in_operator_scope():
        return
    tid = current_tenant()
    if tid is None:
        if _touches_tenant_data(state):
            raise NoTenant("no tenant in context: tenant-owned data needs a tenant")
        return
    if not state.all_mappers:
        _touches_tenant_data(state)  # refuses tenant tables reached without an entity
    # The criterion is harmless on statements without tenant entities, so it is added without
    # first working out which entities a statement has (that costs as much as adding it).
    state.statement = state.statement.options(
        with_loader_criteria(TenantOwned, lambda cls: cls.tenant_id == tid, include_aliases=True)
    )


@event.listens_for(TenantSession, "before_flush")
def _stamp_tenant(session: Session, flush_context: Any, instances: Any) -> None:
    if _read_only.get() and (session.new or session.dirty or session.deleted):
        # A read-only request runs without a transaction on PostgreSQL: a write would commit alone.
        raise ReadOnlyViolation("a read-only request (GET, HEAD or a quote) tried to write")
    tid = current_tenant()
    operator = in_operator_scope()
    for obj in session.new:
        if not isinstance(obj, TenantOwned):
            continue
        if obj.tenant_id is None:
            if tid is None:
                raise NoTenant(f"cannot insert {type(obj).__name__} without a tenant in context")
            obj.tenant_id = tid
        elif not operator and obj.tenant_id != tid:
            raise TenantMismatch(f"{type(obj).__name__} carries another tenant's id")
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, TenantOwned) and not operator and obj.tenant_id != tid:
            raise TenantMismatch(f"{type(obj).__name__} belongs to another tenant")


@event.listens_for(TenantSession, "after_begin")
def _set_rls_tenant(session: Session, transaction: Any, connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        bind_rls_tenant(connection, current_tenant())


def bind_rls_tenant(connection: Connection, tenant_id: UUID | None) -> None:
    """Tell PostgreSQL's row-level security which tenant this connection works for."""
    tid = str(tenant_id or "")
    if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        # A real transaction: the setting lasts until it ends, whatever the connection did before.
        connection.execute(text("select set_config('app.tenant_id', :tid, true)"), {"tid": tid})
        return
    # A read without a transaction (GET requests): the setting is made for the connection's
    # session and remembered with it, so a connection serving the same tenant again costs no
    # round trip. Writes never run this way, and every read checks the remembered tenant first.
    if connection.info.get(_SESSION_TENANT) != tid:
        connection.execute(text("select set_config('app.tenant_id', :tid, false)"), {"tid": tid})
        connection.info[_SESSION_TENANT] = tid


async def switch_rls_tenant(session: AsyncSession, tenant_id: UUID | None) -> None:
    """Re-bind row-level security mid-session (operator services moving between tenants)."""
    if session.bind.dialect.name == "postgresql":
        connection = await session.connection()
        await connection.run_sync(lambda c: bind_rls_tenant(c, tenant_id))


_SESSION_TENANT = "omnicloud_session_tenant"


# --- reads without the ORM -----------------------------------------------------------------

TENANT_PARAM = "current_tenant"
TENANT = bindparam(TENANT_PARAM)
"""The tenant in context, bound when a :class:`TenantQuery` runs: filter with
``Model.tenant_id == TENANT``."""


class TenantQuery:
    """A Core SELECT for a hot read path, where ORM execution costs more than the query.

    The ORM guard cannot see these statements, so this one stands in for it and refuses, when
    the query is built, a statement in which any tenant table is read without
    ``tenant_id = TENANT`` (never a literal tenant id: only the reader binds the tenant): in
    the WHERE clause (ANDed, never under OR or NOT), or in the ON clause of a join that the
    table's rows must satisfy (an inner join, or the outer side of a left join). Every SELECT
    inside the statement (subqueries, CTEs, unions) is held to the same rule, and raw SQL text
    is refused because it cannot be checked. Checking costs about a millisecond, so build each
    query once (at import, or cached per shape) and pass its variable parts as parameters.
    """

    __slots__ = ("statement",)

    def __init__(self, statement: Select[Any]) -> None:
        unfiltered = sorted(_unfiltered_tenant_tables(statement))
        if unfiltered:
            raise UnfilterableQuery(
                f"{', '.join(unfiltered)} read without tenant_id = TENANT; "
                "filter every tenant table by the tenant in context"
            )
        self.statement = statement


def _unfiltered_tenant_tables(statement: Select[Any]) -> set[str]:
    if not isinstance(statement, Select):
        raise UnfilterableQuery("a TenantQuery is a SELECT")
    names: set[str] = set()
    for element in visitors.iterate(statement):
        if isinstance(element, (TextClause, TextualSelect)):
            raise UnfilterableQuery("a TenantQuery cannot check raw SQL text; use Core expressions")
        if isinstance(element, Select):
            where = _tenant_filtered(element.whereclause)
            for from_ in element.get_final_froms():
                names.update(_unfiltered(from_, where))
    return names


def _unfiltered(from_: FromClause, covered: frozenset[str]) -> Iterator[str]:
    """Tenant tables under ``from_`` that no filter in ``covered`` (names) or in a join holds to."""
    if isinstance(from_, Join):
        on = _tenant_filtered(from_.onclause) if not from_.full else frozenset()
        yield from _unfiltered(from_.left, covered if from_.isouter else covered | on)
        yield from _unfiltered(from_.right, covered | on)
        return
    if isinstance(from_, TextClause):
        raise UnfilterableQuery("a TenantQuery cannot check raw SQL text; use Core expressions")
    table = from_.element if isinstance(from_, Alias) else from_
    if isinstance(table, TableClause) and "tenant_id" in table.c and from_.name not in covered:
        yield from_.name


def _tenant_filtered(clause: ColumnElement[Any] | None) -> frozenset[str]:
    """Names of the tables (or aliases) that ``clause`` restricts to ``tenant_id = TENANT``."""
    return frozenset(
        column.table.name
        for term in _conjuncts(clause)
        if isinstance(term, BinaryExpression) and term.operator is operators.eq
        for column, other in ((term.left, term.right), (term.right, term.left))
        if isinstance(other, BindParameter)
        and other.key == TENANT_PARAM
        and isinstance(column, ColumnClause)
        and column.name == "tenant_id"
        and isinstance(column.table, (TableClause, Alias))
    )


def _conjuncts(clause: ColumnElement[Any] | None) -> Iterator[ColumnElement[Any]]:
    if clause is None:
        return
    if isinstance(clause, Grouping):
        yield from _conjuncts(clause.element)
    elif isinstance(clause, BooleanClauseList) and clause.operator is operators.and_:
        for term in clause.clauses:
            yield from _conjuncts(term)
    else:
        yield clause


class TenantReader:
    """Runs :class:`TenantQuery` statements for the tenant in context, each as one statement
    outside any transaction: no BEGIN or COMMIT, and one snapshot per statement. With no
    tenant in context it raises, like the ORM guard.

    On PostgreSQL, row-level security still applies: every connection of the reader binds the
    tenant when it begins, as sessions do. On SQLite the whole read runs in a worker thread on
    a plain ``sqlite3`` connection: one hop to a thread where aiosqlite makes five (cursor,
    execute, fetch, close, rollback), hops that cost more CPU than a page's query.
    """

    def __init__(self, engine: AsyncEngine | Engine) -> None:
        self.engine = engine
        if isinstance(engine, AsyncEngine) and engine.dialect.name == "postgresql":
            event.listen(engine.sync_engine, "begin", _bind_rls_on_begin)

    async def rows(self, query: TenantQuery, params: Mapping[str, Any] | None = None) -> Sequence[Row[Any]]:
        if not isinstance(query, TenantQuery):
            raise UnfilterableQuery("the reader runs TenantQuery statements only: they are checked")
        tid = require_tenant()
        if params and TENANT_PARAM in params:
            raise TenantMismatch("the tenant of a TenantQuery comes from the context, never a parameter")
        bound = {**(params or {}), TENANT_PARAM: tid}
        if isinstance(self.engine, Engine):
            return await asyncio.to_thread(_rows, self.engine, query.statement, bound)
        async with self.engine.connect() as connection:
            return (await connection.execute(query.statement, bound)).all()

    def dispose(self) -> None:
        """Close the SQLite reader's own connections (PostgreSQL's are the Database's pool)."""
        if isinstance(self.engine, Engine):
            self.engine.dispose()


def _rows(engine: Engine, statement: Select[Any], params: dict[str, Any]) -> Sequence[Row[Any]]:
    with engine.connect() as connection:
        return connection.execute(statement, params).all()


def _bind_rls_on_begin(connection: Connection) -> None:
    bind_rls_tenant(connection, current_tenant())


def app_role_sql(role: str, password: str | None = None) -> list[str]:
    """DDL for the role the application connects as: no ownership, no RLS bypass."""
    if not role.replace("_", "").isalnum():
        raise ValueError("role name must be alphanumeric")
    login = f"LOGIN PASSWORD '{password.replace(chr(39), chr(39) * 2)}'" if password else "LOGIN"
    return [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
        f"CREATE ROLE {role} {login} NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; END IF; END $$",
        f"ALTER ROLE {role} NOSUPERUSER NOBYPASSRLS",
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
        # Append-only records: the application may add to them, never rewrite them.
        f"REVOKE UPDATE, DELETE ON audit_log, stock_movements, fund_transfers, fund_entries FROM {role}",
    ]


# --- engines and sessions -----------------------------------------------------------------


def _sqlite_setup(sync: Engine) -> None:
    @event.listens_for(sync, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA cache_size=-32000")  # 32 MB of pages per connection
        cur.close()

    @event.listens_for(sync, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(_ONE_STATEMENT):
            return  # TenantReader: a lone SELECT runs in its own implicit transaction
        # A writer takes the lock up front: a deferred transaction that reads and then writes
        # fails with SQLITE_BUSY instead of waiting when another writer got there first.
        # Read-only requests begin deferred, so readers never queue behind writers (WAL).
        conn.exec_driver_sql("BEGIN" if _read_only.get() else "BEGIN IMMEDIATE")


_read_only: ContextVar[bool] = ContextVar("omnicloud_read_only", default=False)
_ONE_STATEMENT = "omnicloud_one_statement"


def set_read_only(value: bool) -> None:
    """Mark the transactions this task begins as read-only (GET requests); on SQLite they
    begin deferred. :meth:`Database.transaction` always begins a writer."""
    _read_only.set(value)


def _json_dumps(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def make_engine(url: str, *, pool_size: int = 20, pooled: bool = True) -> AsyncEngine:
    """``pooled=False`` opens a connection per use: for callers that drive the app from
    several event loops (a pooled asyncpg connection belongs to the loop that opened it)."""
    extra: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": msgspec.json.decode}
    if not pooled:
        extra["poolclass"] = NullPool
    if url.startswith("sqlite"):
        if pooled:  # every aiosqlite connection is a thread: keep a few
            extra.update(pool_size=4, max_overflow=4)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **extra)
        _sqlite_setup(engine.sync_engine)
        return engine
    if pooled:
        # No pre-ping (three round trips per checkout); stale connections are recycled and a
        # dropped one is invalidated on its first error.
        extra.update(pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800)
    return create_async_engine(url, **extra)


def _sqlite_reader_engine(engine: AsyncEngine, pooled: bool) -> Engine:
    """The same SQLite file through the synchronous driver, for :class:`TenantReader`: its
    connections move between worker threads, one read at a time, and never begin."""
    extra: dict[str, Any] = {"poolclass": NullPool} if not pooled else {"pool_size": 4, "max_overflow": 4}
    sync = create_engine(
        engine.url.set(drivername="sqlite+pysqlite"),
        connect_args={"timeout": 30, "check_same_thread": False},
        json_deserializer=msgspec.json.decode,
        **extra,
    )
    _sqlite_setup(sync)
    return sync.execution_options(**{_ONE_STATEMENT: True})


class Database:
    """An engine and its session factory."""

    def __init__(self, url: str, *, pool_size: int = 20, pooled: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size, pooled=pooled)
        self.sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=TenantSession, autoflush=False
        )
        # Reads on PostgreSQL skip BEGIN/COMMIT: a single statement sees a consistent snapshot,
        # and a page of a list is one statement (plus its children, fetched by id).
        postgres = self.dialect == "postgresql"
        reader = self.engine.execution_options(isolation_level="AUTOCOMMIT") if postgres else self.engine
        self.read_sessions = async_sessionmaker(
            reader, expire_on_commit=False, sync_session_class=TenantSession, autoflush=False
        )
        # The reader's own engine. PostgreSQL: the AUTOCOMMIT view of the same pool again, so
        # that its row-level security listener fires for its connections only. SQLite: the
        # synchronous driver on the same file (see TenantReader).
        self.reader = TenantReader(
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if postgres
            else _sqlite_reader_engine(self.engine, pooled)
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        token = _read_only.set(False)
        try:
            async with self.sessions() as session, session.begin():
                yield session
        finally:
            _read_only.reset(token)

    async def dispose(self) -> None:
        self.reader.dispose()
        await self.engine.dispose()


def is_unique_violation(err: sa_exc.IntegrityError) -> bool:
    msg = str(err.orig).lower()
    return "unique" in msg or "duplicate key" in msg
