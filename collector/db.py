"""Storage plumbing shared by every domain: the declarative base, engines, migrations.

One storage layer for SQLite and PostgreSQL. Times are stored as float seconds since
the epoch (UTC): the same type and comparisons on both databases, and cheap to write.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, MetaData, create_engine, event, make_url, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql.dml import Insert

from collector.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# PostgreSQL advisory locks that collector processes share, one per job, all drawn here
# so that no two jobs take the same one by mistake. Any constants work; they only have to
# be the same in every collector process and differ from each other.
MIGRATION_LOCK_ID = 0x5741_4B45_0001
PRUNE_LOCK_ID = 0x5741_4B45_0002
ENGINE_LOCK_ID = 0x5741_4B45_0003
IMMEDIATE = "watchkeeper_immediate"
"""Execution option: on SQLite, begin with BEGIN IMMEDIATE (take the write lock first)."""

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every table; constraint names are stable across databases."""

    metadata = MetaData(naming_convention=NAMING)


def create_db_engine(settings: Settings) -> Engine:
    """An engine for the configured URL, with SQLite tuned for a durable, concurrent store."""
    url = make_url(settings.database_url)
    db = settings.database
    if url.get_backend_name() != "sqlite":
        return create_engine(
            url, pool_size=db.pool_size, max_overflow=db.max_overflow, pool_pre_ping=True
        )
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_size=db.pool_size, max_overflow=db.max_overflow)
    busy_ms = int(db.sqlite_busy_timeout * 1000)
    synchronous = db.sqlite_synchronous
    cache_kib = 65536

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # The wait first: switching a new file to WAL takes a lock that another connection
        # (a migration in another process, say) may hold for longer than the driver's 5 s.
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        _enable_wal(cur, db.sqlite_busy_timeout)
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute(f"PRAGMA cache_size=-{cache_kib}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer that reads first and upgrades later can hit SQLITE_BUSY without
        # waiting; taking the write lock at BEGIN makes busy_timeout apply.
        immediate = conn.get_execution_options().get(IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _enable_wal(cur: Any, patience: float) -> None:
    """Switch the file to WAL (a lasting property of the file), waiting out other openers.

    SQLite answers a journal-mode change that races another connection with "database is
    locked" at once, without calling the busy handler, so the wait is done here: several
    collector processes (or a migration beside a running collector) may open a new store
    at the same moment.
    """
    deadline = time.monotonic() + patience
    delay = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def is_postgres(bind: Engine | Connection) -> bool:
    """True on PostgreSQL (row locks, advisory locks); False on SQLite."""
    return bind.dialect.name == "postgresql"


def upsert_insert(bind: Engine | Connection, table: Any) -> Any:
    """The dialect's INSERT that supports ON CONFLICT (SQLite and PostgreSQL)."""
    insert_fn = postgresql.insert if is_postgres(bind) else sqlite.insert
    stmt: Insert = insert_fn(table)
    return stmt


def in_list(bind: Engine | Connection, count: int) -> str:
    """``count`` positional parameter markers for an ``IN (...)`` in ``exec_driver_sql``."""
    return _markers("?" if bind.dialect.paramstyle == "qmark" else "%s", count)


@lru_cache(maxsize=512)
def _markers(marker: str, count: int) -> str:
    return ", ".join([marker] * count)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for the read paths and the CLI."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction (BEGIN IMMEDIATE on SQLite), committed on exit."""
    with engine.connect().execution_options(**{IMMEDIATE: True}) as conn, conn.begin():
        yield conn


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    cfg = Config(str(Path(__file__).parent / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine) -> None:
    """Upgrade the schema to head; on PostgreSQL serialized across processes."""
    with write_transaction(engine) as conn:
        if is_postgres(conn):
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        command.upgrade(alembic_config(conn), "head")


class BulkStatement:
    """An INSERT compiled once per dialect, run with all rows in as few statements as possible.

    The ingest path writes a dozen rows per push at a thousand pushes a second. Going
    through SQLAlchemy's per-row parameter processing would cost more than the database
    does, so on SQLite the rows go into one multi-row ``VALUES (...), (...)`` statement per
    chunk; on PostgreSQL psycopg's executemany (pipelined) is used, or SQLAlchemy's
    "insertmanyvalues" when rows are returned. Rows are tuples in ``columns`` order, with
    JSON columns already serialized to text. With ``returning``, ``execute`` returns those
    columns of the rows actually inserted (not the ones an ON CONFLICT DO NOTHING skipped).
    """

    CHUNK_ROWS = 500  # SQLite allows 32766 parameters per statement

    def __init__(
        self, build: Callable[[Connection], Any], columns: Sequence[str],
        *, returning: Sequence[str] = (),
    ) -> None:
        self._build = build
        self._columns = tuple(columns)
        self._returning = tuple(returning)
        self._compiled: dict[str, tuple[str, str, str, tuple[int, ...] | None] | Any] = {}

    def execute(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Insert ``rows`` on ``conn``; the ``returning`` columns of the inserted ones."""
        if not rows:
            return []
        compiled = self._compiled.get(conn.dialect.name)
        if compiled is None:
            compiled = self._compiled[conn.dialect.name] = self._compile(conn)
        names = self._columns
        if not isinstance(compiled, tuple):  # named parameters: PostgreSQL
            named = [dict(zip(names, row, strict=True)) for row in rows]
            if isinstance(compiled, str):
                conn.exec_driver_sql(compiled, named)
                return []
            return [tuple(r) for r in conn.execute(compiled, named)]
        head, group, tail, order = compiled
        returned: list[tuple[Any, ...]] = []
        for start in range(0, len(rows), self.CHUNK_ROWS):
            chunk = rows[start : start + self.CHUNK_ROWS]
            sql = head + ", ".join([group] * len(chunk)) + tail
            if order is None:
                params = tuple(chain.from_iterable(chunk))
            else:
                params = tuple(chain.from_iterable(map(itemgetter(*order), chunk)))
            result = conn.exec_driver_sql(sql, params)
            if self._returning:
                returned.extend(result.fetchall())
        return returned

    def _compile(self, conn: Connection) -> tuple[str, str, str, tuple[int, ...] | None] | Any:
        statement = self._build(conn)
        stmt = statement.compile(dialect=conn.dialect, column_keys=list(self._columns))
        if not stmt.positional:
            if self._returning:
                table = statement.table
                return statement.returning(*(table.c[name] for name in self._returning))
            return str(stmt)
        sql = str(stmt)
        names = stmt.positiontup or ()
        order: tuple[int, ...] | None = tuple(self._columns.index(n) for n in names)
        if order == tuple(range(len(self._columns))):
            order = None
        marker = " VALUES "
        at = sql.index(marker) + len(marker)
        end = sql.index(")", at) + 1
        tail = sql[end:]
        if self._returning:
            quote = conn.dialect.identifier_preparer.quote
            tail += " RETURNING " + ", ".join(quote(name) for name in self._returning)
        return sql[:at], sql[at:end], tail, order
