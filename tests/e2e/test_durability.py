"""What makes a reported commit durable, and what a crash leaves.

- The settings that make it durable, read back from connections the store itself opens:
  SQLite in WAL mode with synchronous=FULL (each commit's WAL frames are fsynced before the
  commit returns; with NORMAL, a power loss may take back the last commits), foreign keys
  and the busy timeout airgate sets on every connection; PostgreSQL with fsync and
  synchronous_commit on, whatever server the store is given.
- A crash of the process: a writer is killed with SIGKILL in the middle of a stream of
  commits, and every change it reported committed is still there, whole. This shows
  atomicity across a process crash, not power-loss durability: after SIGKILL the operating
  system still holds whatever the process wrote, fsynced or not, so this part passes with
  synchronous=OFF too. Power loss is what the settings above are for.
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from airgate.environments.store import EnvironmentStore
from airgate.store.db import Database
from tests.support import running_airgate

pytestmark = pytest.mark.e2e

WRITER = """
import datetime, sys
from airgate.environments.store import EnvironmentStore
from airgate.store.db import Database
store = EnvironmentStore(Database(sys.argv[1]))
now = datetime.datetime.now(datetime.UTC)
for i in range(100000):
    store.create(f"env-{i}", {"DagS3Path": "dags"}, {"n": str(i)}, now, source="CUSTOMER")
    print(f"env-{i}", flush=True)
"""

# What every SQLite connection of the store must say: PRAGMA name -> value read back.
SQLITE_PRAGMAS = {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1,
                  "busy_timeout": 30000}


def sqlite_pragmas(database: Database) -> list[dict[str, object]]:
    """The pragmas of two connections the store's engine opens at once (so both a pooled
    connection and a fresh one are seen)."""
    found = []
    # Read-only (plain BEGIN): two BEGIN IMMEDIATE at once would queue on the write lock.
    engine = database.engine.execution_options(airgate_readonly=True)
    with engine.connect() as first, engine.connect() as second:
        for connection in (first, second):
            found.append({name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                          for name in SQLITE_PRAGMAS})
    return found


def test_sqlite_connections_are_wal_and_synchronous_full(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'airgate.db'}")
    try:
        assert sqlite_pragmas(database) == [SQLITE_PRAGMAS, SQLITE_PRAGMAS]
        # The store's own transactions run on such connections too.
        with database.transaction() as session:
            assert session.execute(text("PRAGMA synchronous")).scalar() == 2
        with database.reading() as session:
            assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        database.close()
    # WAL is a property of the file: a plain connection opened afterwards finds it.
    import sqlite3

    with sqlite3.connect(tmp_path / "airgate.db") as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_running_airgate_store_is_wal_and_synchronous_full(tmp_path: Path) -> None:
    """The store as `airgate up` builds it, from its settings (home, default URL)."""
    with running_airgate(tmp_path / "home") as server:
        assert server.settings.effective_database_url.startswith("sqlite:")
        assert sqlite_pragmas(server.airgate.db) == [SQLITE_PRAGMAS, SQLITE_PRAGMAS]


@pytest.mark.postgres
def test_postgresql_commits_wait_for_the_disk(tmp_path: Path) -> None:
    from tests.support import postgres_database

    with postgres_database() as url:
        database = Database(url)
        try:
            with database.engine.connect() as connection:
                settings = {name: connection.exec_driver_sql(f"SHOW {name}").scalar()
                            for name in ("fsync", "synchronous_commit", "full_page_writes")}
        finally:
            database.close()
    assert settings == {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


def test_kill_during_commits(tmp_path: Path, database_url: str | None) -> None:
    url = database_url or f"sqlite:///{tmp_path / 'airgate.db'}"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, url], stdout=subprocess.PIPE,
                              text=True)
    assert writer.stdout is not None
    committed = [writer.stdout.readline().strip() for _ in range(40)]
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=10)
    committed += [line.strip() for line in writer.stdout.read().splitlines() if line.strip()]
    assert committed[:40] == [f"env-{i}" for i in range(40)]

    store = EnvironmentStore(Database(url))
    names = set(store.names(None, 1_000_000))
    assert set(committed) <= names
    # Whatever was in flight is either wholly there or wholly absent, tags included.
    for record in store.all():
        assert record.tags == {"n": record.name.split("-")[1]}
    store.create("after-crash", {}, {}, datetime.datetime.now(datetime.UTC), source="CUSTOMER")
    assert "after-crash" in store.names(None, 1_000_000)
