"""Metadata templates (environments/templates.py): made once per Airflow version by that
version's interpreter, copied into environments that have no metadata yet, made again when
another runtime would make them, and never carrying the default pool.

The interpreter here is a stand-in for `python -m airflow db migrate`: a script that builds
a small SQLite database where Airflow would, and counts its runs."""

from __future__ import annotations

import logging
import sqlite3
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from airgate.airflow.v3 import AIRFLOW_3
from airgate.environments.metadata import MetadataDatabases
from airgate.environments.provision import ProvisionError
from airgate.environments.templates import MetadataTemplates

FAKE_MIGRATE = """#!{python}
import os, sqlite3, sys
with open({runs!r}, "a") as runs:
    runs.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1:] != ["-m", "airflow", "db", "migrate"]:
    sys.exit(64)
if {fail!r}:
    sys.exit("ERROR: " + {fail!r})
if {hang!r}:
    import time
    time.sleep(600)
url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
    connection.executescript(\"""
        CREATE TABLE slot_pool (pool TEXT, slots INT);
        INSERT INTO slot_pool VALUES ('default_pool', 128), ('kept', 1);
        CREATE TABLE made_by (home TEXT);\""")
    connection.execute("INSERT INTO made_by VALUES (?)", (os.environ["AIRFLOW_HOME"],))
"""


def interpreter(folder: Path, fail: str = "", hang: bool = False) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    runs = folder / "runs"
    script = folder / "python"
    script.write_text(FAKE_MIGRATE.format(python=sys.executable, runs=str(runs), fail=fail,
                                          hang=hang))
    script.chmod(0o755)
    return script, runs


def rows(database: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(query).fetchall()


@pytest.fixture
def templates(tmp_path: Path) -> MetadataTemplates:
    return MetadataTemplates(tmp_path / "templates", MetadataDatabases(None))


def test_made_once_and_copied_into_each_new_environment(
        tmp_path: Path, templates: MetadataTemplates) -> None:
    python, runs = interpreter(tmp_path / "runtime")
    first, second = tmp_path / "a" / "airflow.db", tmp_path / "b" / "airflow.db"
    assert templates.seed("a", "3.3.2", python, AIRFLOW_3, first) is True
    assert templates.seed("b", "3.3.2", python, AIRFLOW_3, second) is True
    assert runs.read_text().splitlines() == ["-m airflow db migrate"]  # one migration
    for copy in (first, second):
        # The default pool is left to each environment's own migration; the rest is there.
        assert rows(copy, "SELECT pool, slots FROM slot_pool") == [("kept", 1)]
        # Made in airgate's folder for templates, not in an environment's.
        assert rows(copy, "SELECT home FROM made_by") == [
            (str(tmp_path / "templates" / "3.3.2" / "making"),)]


def test_an_environment_with_metadata_keeps_it(tmp_path: Path,
                                               templates: MetadataTemplates) -> None:
    python, runs = interpreter(tmp_path / "runtime")
    existing = tmp_path / "a" / "airflow.db"
    existing.parent.mkdir()
    existing.write_bytes(b"the environment's own metadata")
    assert templates.seed("a", "3.3.2", python, AIRFLOW_3, existing) is False
    assert existing.read_bytes() == b"the environment's own metadata"
    assert not runs.exists()  # nothing migrated for it either


def test_made_again_by_another_runtime_and_per_version(
        tmp_path: Path, templates: MetadataTemplates) -> None:
    old, old_runs = interpreter(tmp_path / "old")
    new, new_runs = interpreter(tmp_path / "new")
    templates.seed("a", "3.3.2", old, AIRFLOW_3, tmp_path / "a" / "airflow.db")
    templates.seed("b", "3.3.2", new, AIRFLOW_3, tmp_path / "b" / "airflow.db")
    templates.seed("c", "3.2.0", new, AIRFLOW_3, tmp_path / "c" / "airflow.db")
    templates.seed("d", "3.3.2", new, AIRFLOW_3, tmp_path / "d" / "airflow.db")
    assert len(old_runs.read_text().splitlines()) == 1
    assert len(new_runs.read_text().splitlines()) == 2  # 3.3.2 again, and 3.2.0


def test_a_failed_migration_fails_the_environment_and_leaves_no_template(
        tmp_path: Path, templates: MetadataTemplates, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "airgate.templates")
    broken, _ = interpreter(tmp_path / "broken", fail="no such table: alembic_version")
    target = tmp_path / "a" / "airflow.db"
    with pytest.raises(ProvisionError) as raised:
        templates.seed("a", "3.3.2", broken, AIRFLOW_3, target)
    assert raised.value.code == "AIRFLOW_DB_MIGRATE_FAILED"
    # Airflow's output is the operator's (it names their server), not the environment's.
    assert str(raised.value) == ("migrating Airflow 3.3.2's metadata template failed "
                                 "(exit 1); see airgate's log")
    logged = [getattr(r, "fields", {}) for r in caplog.records]
    assert any("ERROR: no such table: alembic_version" in str(f.get("output")) for f in logged)
    assert not target.exists()
    working, _ = interpreter(tmp_path / "working")
    assert templates.seed("a", "3.3.2", working, AIRFLOW_3, target) is True
    assert rows(target, "SELECT pool FROM slot_pool") == [("kept",)]


def test_stopping_airgate_ends_a_migration_under_way(tmp_path: Path,
                                                     templates: MetadataTemplates) -> None:
    python, runs = interpreter(tmp_path / "slow", hang=True)
    outcome: list[BaseException] = []

    def seed() -> None:
        try:
            templates.seed("a", "3.3.2", python, AIRFLOW_3, tmp_path / "a" / "airflow.db")
        except ProvisionError as error:
            outcome.append(error)

    thread = threading.Thread(target=seed)
    thread.start()
    deadline = time.monotonic() + 30
    while not runs.exists():  # the migration has started
        assert time.monotonic() < deadline, "the migration did not start"
        time.sleep(0.05)
    templates.close()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert [getattr(error, "code", None) for error in outcome] == ["INTERRUPTED"]
    assert not [process for process in psutil.process_iter(["cmdline"])
                if str(python) in " ".join(process.info["cmdline"] or [])]


def test_a_link_planted_by_the_environment_is_not_followed(
        tmp_path: Path, templates: MetadataTemplates) -> None:
    """An environment that deleted its metadata and left links in its AIRFLOW_HOME (where
    a copy lands) can't make airgate write the template over another file."""
    python, _ = interpreter(tmp_path / "runtime")
    victim = tmp_path / "airgate-secret"
    victim.write_bytes(b"kept")
    home = tmp_path / "a"
    home.mkdir()
    for planted in ("airflow.db.copying", ".airgate-copy-x", "airflow.db.tmp"):
        (home / planted).symlink_to(victim)
    (home / "airflow.db").symlink_to(tmp_path / "nowhere")  # dangling: no metadata
    assert templates.seed("a", "3.3.2", python, AIRFLOW_3, home / "airflow.db") is True
    assert victim.read_bytes() == b"kept"
    assert not (home / "airflow.db").is_symlink()
    assert rows(home / "airflow.db", "SELECT pool FROM slot_pool") == [("kept",)]
