"""Each environment's PostgreSQL metadata database belongs to a role of its own, on a server
that checks passwords (a private cluster with scram-sha-256 for every connection, as the
README asks operators to run): the environment's URL works, names no administrator, reaches
no other environment's database, and stops working when the next start rotates the password.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from airgate.environments.metadata import MetadataDatabases
from tests.support import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

ADMIN_PASSWORD = "operator-secret-4f9d"


def _as_postgres(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres account."""
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *command]


@dataclass(frozen=True)
class PasswordServer:
    url: str  # the administrator's
    log_dir: Path  # every statement the server received is logged here


@pytest.fixture(scope="module")
def server() -> Iterator[PasswordServer]:
    """A private PostgreSQL that checks every password, logging every statement."""
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not binaries:
        pytest.fail("PostgreSQL's server binaries are not installed (apt-get install postgresql)")
    bin_dir = Path(binaries[-1])
    # Not under pytest's own folder, which only root may enter.
    root = Path(tempfile.mkdtemp(prefix="airgate-pg-scram-"))
    data, password_file = root / "data", root / "password"
    password_file.write_text(ADMIN_PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(password_file, "postgres", "postgres")
    subprocess.run(_as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "admin",
                                 "--pwfile", str(password_file), "--auth=scram-sha-256"]),
                   check=True, capture_output=True, timeout=120)
    port = free_port()
    process = subprocess.Popen(_as_postgres([
        str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(root),
        "-c", "listen_addresses=127.0.0.1", "-c", "log_statement=all",
        "-c", f"log_directory={root}", "-c", "logging_collector=on"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"postgresql://admin:{ADMIN_PASSWORD}@127.0.0.1:{port}/postgres"
    deadline = time.monotonic() + 60
    while True:
        try:
            psycopg.connect(url).close()
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise
            time.sleep(0.2)
    try:
        yield PasswordServer(url, root)
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def connect(url: str, database: str | None = None) -> psycopg.Connection:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return psycopg.connect(parsed.render_as_string(hide_password=False), autocommit=True)


def url_of(databases: MetadataDatabases, name: str) -> str:
    """What the environment `name` is given to connect with, as text."""
    url = databases.prepare(name)
    assert url is not None
    return url.render_as_string(hide_password=False)


def test_each_environment_has_a_role_of_its_own(server: PasswordServer) -> None:
    databases = MetadataDatabases(server.url, installation="test-installation")
    urls = {name: url_of(databases, name) for name in ("team-a", "team-b")}
    try:
        for name, url in urls.items():
            parsed = make_url(url)
            assert parsed.username == databases.name_of(name) == parsed.database
            assert ADMIN_PASSWORD not in url and "admin" not in url
            with connect(url) as own:  # the password works where passwords are checked
                assert own.execute("SELECT current_user").fetchone() == (parsed.username,)
                assert own.execute("SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles "
                                   "WHERE rolname = current_user").fetchone() == (
                    False, False, False)
                own.execute("CREATE TABLE mine (x int)")  # it owns its database
        # One environment's role can't even connect to the other's database.
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            connect(urls["team-a"], databases.name_of("team-b"))
        # The server received the password only as a SCRAM verifier, never in clear.
        logged = "".join(path.read_text(errors="replace")
                         for path in server.log_dir.glob("*.log"))
        assert "CREATE ROLE" in logged  # the log is the right one
        for url in urls.values():
            password = make_url(url).password
            assert password and password not in logged
        # Each start rotates the password: the previous URL stops working.
        rotated = url_of(databases, "team-a")
        assert rotated != urls["team-a"]
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            connect(urls["team-a"])
        with connect(rotated) as own:
            assert own.execute("SELECT count(*) FROM mine").fetchone() == (0,)
    finally:
        for name in urls:
            databases.drop(name)
    with connect(server.url) as admin:
        names = [databases.name_of(name) for name in urls]
        assert admin.execute("SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s)",
                             (names,)).fetchone() == (0,)
        assert admin.execute("SELECT count(*) FROM pg_database WHERE datname = ANY(%s)",
                             (names,)).fetchone() == (0,)


def test_a_database_made_before_roles_is_handed_over(server: PasswordServer) -> None:
    """An environment whose database an earlier airgate made as the administrator: its
    tables become its role's, so Airflow can migrate them."""
    databases = MetadataDatabases(server.url, installation="older-installation")
    name = databases.name_of("legacy")
    with connect(server.url) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    with connect(server.url, name) as admin:
        admin.execute("CREATE TABLE dag (id serial PRIMARY KEY, dag_id text)")
        admin.execute("CREATE VIEW dag_ids AS SELECT dag_id FROM dag")
        admin.execute("INSERT INTO dag (dag_id) VALUES ('kept')")
    try:
        url = url_of(databases, "legacy")
        with connect(url) as own:
            owners = own.execute(
                "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                "ORDER BY c.relname").fetchall()
            assert owners == [("dag", name), ("dag_id_seq", name), ("dag_ids", name),
                              ("dag_pkey", name)]
            own.execute("ALTER TABLE dag ADD COLUMN owner text")  # what a migration does
            own.execute("INSERT INTO dag (dag_id) VALUES ('new')")
            assert own.execute("SELECT dag_id FROM dag_ids ORDER BY 1").fetchall() == [
                ("kept",), ("new",)]
    finally:
        databases.drop("legacy")



def test_a_snapshot_puts_the_metadata_back(server: PasswordServer, tmp_path: Path) -> None:
    """Before another Airflow version migrates an environment's database, airgate keeps a
    copy: restored after a failed upgrade, dropped after a good one."""
    databases = MetadataDatabases(server.url, installation="upgrades")
    url = url_of(databases, "upgrading")
    try:
        with connect(url) as own:
            own.execute("CREATE TABLE alembic_version (version_num text)")
            own.execute("INSERT INTO alembic_version VALUES ('2.10.3')")
        snapshot = databases.snapshot("upgrading", tmp_path / "unused.db")
        with connect(url) as own:  # a migration that got half way
            own.execute("UPDATE alembic_version SET version_num = 'half-way'")
            own.execute("CREATE TABLE new_in_3 (x int)")
        snapshot.restore()
        with connect(url) as own:
            assert own.execute("SELECT version_num FROM alembic_version").fetchall() == [
                ("2.10.3",)]
            assert own.execute("SELECT to_regclass('new_in_3')").fetchone() == (None,)
        databases.snapshot("upgrading", tmp_path / "unused.db").discard()
        with connect(server.url) as admin:
            assert admin.execute("SELECT count(*) FROM pg_database WHERE datname LIKE %s",
                                 (f"{databases.name_of('upgrading')[:54]}_previous",)
                                 ).fetchone() == (0,)
    finally:
        databases.drop("upgrading")


def test_a_sqlite_snapshot_puts_the_file_back(tmp_path: Path) -> None:
    import sqlite3

    databases = MetadataDatabases(None)
    database = tmp_path / "airflow.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num text)")
        connection.execute("INSERT INTO alembic_version VALUES ('2.10.3')")
    snapshot = databases.snapshot("upgrading", database)
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'half-way'")
    snapshot.restore()
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("2.10.3",)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["airflow.db"]
