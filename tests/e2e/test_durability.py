"""A crash at any moment loses no committed change: a writer is killed with SIGKILL in the
middle of a stream of commits, and every change it reported committed is still there."""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from airgate.environments.store import EnvironmentStore
from airgate.store.db import Database

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


def test_kill_during_commits(tmp_path: Path, database_url: str | None) -> None:
    url = database_url or f"sqlite:///{tmp_path / 'airgate.db'}"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, url], stdout=subprocess.PIPE,
                              text=True)
    assert writer.stdout is not None
    committed = [writer.stdout.readline().strip() for _ in range(40)]
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=10)
    committed += [line.strip() for line in writer.stdout.read().splitlines() if line.strip()]

    store = EnvironmentStore(Database(url))
    names = set(store.names(None, 1_000_000))
    assert set(committed) <= names
    # Whatever was in flight is either wholly there or wholly absent, tags included.
    for record in store.all():
        assert record.tags == {"n": record.name.split("-")[1]}
    store.create("after-crash", {}, {}, datetime.datetime.now(datetime.UTC), source="CUSTOMER")
