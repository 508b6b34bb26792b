"""The metadata database: an SQLAlchemy engine with loopml's schema, migrated on open.

SQLite (the default) runs in WAL mode with a busy timeout and foreign keys on, and every
write transaction starts with ``BEGIN IMMEDIATE`` so that two processes writing the same
file queue up instead of failing. PostgreSQL is used through ``postgresql+psycopg://``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.sql.dml import UpdateBase

from loopml.errors import InvalidInput, MissingDependency, StoreError

MIGRATIONS = Path(__file__).with_name("migrations")
_WRITE = "loopml_write"


def now_ms() -> int:
    """The current time in integer milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _make_engine(url: str, busy_timeout: float) -> Engine:
    try:
        parsed = sa.make_url(url)
    except ArgumentError as exc:
        raise InvalidInput(f"store_uri {url!r} is not a database URL: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": busy_timeout})

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            write = conn.get_execution_options().get(_WRITE, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    try:
        return sa.create_engine(parsed, pool_pre_ping=True)
    except NoSuchModuleError as exc:
        raise InvalidInput(f"store_uri {url!r}: unknown database dialect") from exc
    except ModuleNotFoundError as exc:
        raise MissingDependency(exc.name or "database driver", "postgres") from exc


class MetadataDB:
    """loopml's metadata database.

    Parameters
    ----------
    url : SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://...``).
    busy_timeout : seconds a SQLite writer waits for another writer's lock.
    migrate : bring the schema to the newest revision on open.
    """

    def __init__(self, url: str, *, busy_timeout: float = 60.0, migrate: bool = True) -> None:
        self.url = url
        self.engine = _make_engine(url, busy_timeout)
        self.dialect = self.engine.dialect.name
        self._write_turn: AbstractContextManager[Any] = (
            threading.RLock() if self.dialect == "sqlite" else nullcontext()
        )
        self._upserts: dict[tuple[Any, ...], UpdateBase] = {}
        self._compiled: dict[tuple[Any, ...], str] = {}
        # the same dialect with named parameters, so the driver takes rows as dicts
        dialect_class: Any = type(self.engine.dialect)
        self._named_dialect = dialect_class(
            paramstyle="named" if self.dialect == "sqlite" else "pyformat"
        )
        if migrate:
            self.ensure_schema()

    def __repr__(self) -> str:
        return f"MetadataDB({self.engine.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for queries (a plain, non-locking transaction)."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreError(f"metadata DB unavailable ({self!r}): {exc.orig}") from exc

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, committed on success and rolled back on any error.

        On SQLite the threads of one process take turns on a lock before ``BEGIN
        IMMEDIATE``, so they queue instead of polling SQLite's busy handler (which sleeps
        up to 100 ms a try); the busy timeout is then only for other processes.
        """
        with self._write_turn:
            try:
                with (
                    self.engine.connect().execution_options(**{_WRITE: True}) as conn,
                    conn.begin(),
                ):
                    yield conn
            except OperationalError as exc:
                raise StoreError(f"metadata DB write failed ({self!r}): {exc.orig}") from exc

    # -- schema ------------------------------------------------------------------------
    def current_revision(self) -> str | None:
        """The schema revision the database is at (None for an empty database)."""
        with self.read() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @staticmethod
    def head_revision() -> str | None:
        """The newest schema revision this version of loopml knows."""
        return ScriptDirectory.from_config(_alembic_config()).get_current_head()

    def ensure_schema(self) -> None:
        """Upgrade the schema if (and only if) it is behind."""
        try:
            if self.current_revision() != self.head_revision():
                self.upgrade()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open metadata DB {self!r}: {exc}") from exc

    def upgrade(self) -> None:
        """Apply every pending migration, holding a lock so concurrent openers queue up."""
        cfg = _alembic_config()
        with self.write() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(8007001)")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    # -- helpers shared by the services -------------------------------------------------
    def execute_many(
        self, conn: Connection, stmt: UpdateBase, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Run an INSERT/UPDATE for each row straight through the driver's ``executemany``.

        The statement is compiled once per set of row keys; bind values go to the driver
        as they are, so rows must hold plain ints, floats, strings, bytes or None. This is
        the hot path of run creation and metric flushes, where SQLAlchemy's per-execution
        bookkeeping would cost more than the database work.
        """
        if not rows:
            return
        keys = tuple(rows[0])
        cache_key = (stmt, keys)
        sql = self._compiled.get(cache_key)
        if sql is None:
            compiled = stmt.compile(dialect=self._named_dialect, column_keys=list(keys))
            sql = self._compiled[cache_key] = compiled.string
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(sql, rows)
        except self.engine.dialect.loaded_dbapi.Error as exc:
            raise StoreError(f"metadata DB write failed ({self!r}): {exc}") from exc
        finally:
            cursor.close()

    @staticmethod
    def fetch_tuples(conn: Connection, query: sa.Executable) -> list[tuple[Any, ...]]:
        """Run ``query`` and return the driver's own tuples, skipping SQLAlchemy's Row
        objects and result processing: several times faster for bulk reads of plain ints,
        floats and strings (not for JSON, binary or date columns)."""
        result = conn.execute(query)
        try:
            return list(result.cursor.fetchall())
        finally:
            result.close()

    def upsert(
        self,
        conn: Connection,
        table: sa.Table,
        rows: Sequence[Mapping[str, Any]],
        *,
        keys: Iterable[str],
        update: Iterable[str] = (),
        where: Any = None,
    ) -> int:
        """Insert ``rows``; on a key clash update columns ``update`` (or keep the old row).

        Returns the number of rows inserted or updated. ``where(table, excluded)`` can
        guard the update.
        """
        if not rows:
            return 0
        stmt = self.upsert_statement(table, keys=keys, update=update, where=where)
        return conn.execute(stmt, list(rows)).rowcount

    def upsert_statement(
        self, table: sa.Table, *, keys: Iterable[str], update: Iterable[str] = (), where: Any = None
    ) -> UpdateBase:
        """The (cached) statement :meth:`upsert` executes, to run with a list of rows."""
        keys, update = tuple(keys), tuple(update)
        cache_key = (table.name, keys, update, where)
        stmt = self._upserts.get(cache_key)
        if stmt is None:
            insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
            base = insert(table)
            if update:
                stmt = base.on_conflict_do_update(
                    index_elements=list(keys),
                    set_={c: base.excluded[c] for c in update},
                    where=where(table, base.excluded) if where is not None else None,
                )
            else:
                stmt = base.on_conflict_do_nothing(index_elements=list(keys))
            self._upserts[cache_key] = stmt
        return stmt
