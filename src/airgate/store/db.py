"""Engine and sessions for the state store.

SQLite runs in WAL mode with `synchronous=FULL`, so a commit is on disk before it returns and
a crash at any moment loses no committed change; PostgreSQL gives the same by default.
`postgresql://` URLs are served by psycopg 3.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from airgate.store.schema import Base


def engine_for(url: str) -> Engine:
    """An engine for `url`, with the schema created if it is missing."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
    else:
        engine = create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=10)
    Base.metadata.create_all(engine)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling is turned off so that BEGIN IMMEDIATE below is
    # ours: writers then queue on the lock instead of failing with "database is locked".
    connection.isolation_level = None
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    readonly = connection.get_execution_options().get("airgate_readonly", False)
    connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


class Database:
    """The store: hands out transactions. One per process, shared by all requests."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = engine_for(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readers = sessionmaker(
            self.engine.execution_options(airgate_readonly=True), expire_on_commit=False
        )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose changes commit together when the block ends without error."""
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session: on SQLite it does not queue behind writers."""
        with self._readers.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()
