"""Each environment's own Airflow metadata database.

SQLite in the environment's AIRFLOW_HOME by default. When the operator names a PostgreSQL
server (AIRGATE_AIRFLOW_DATABASE_URL, e.g. postgresql://postgres@127.0.0.1:5432/postgres),
each environment gets its own database there and a login role of its own that owns that
database and nothing else: the operator's (administrator's) URL never reaches an
environment. The role's password is random and new at every start of the environment; the
server only ever receives its SCRAM verifier. Names carry the airgate installation, so two
installations sharing a server never share an environment's database or role.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

SCRAM_ITERATIONS = 4096  # PostgreSQL's own default
_log = logging.getLogger("airgate.metadata")


class MetadataDatabases:
    def __init__(self, server_url: str | None, installation: str = "") -> None:
        self._installation = installation
        self._server: URL | None = None
        if server_url:
            self._server = make_url(server_url).set(drivername="postgresql")

    def prepare(self, name: str) -> URL | None:
        """The URL the environment's Airflow connects with (its own role and a new
        password), its database and role made or brought up to date on the server first;
        None for SQLite in its AIRFLOW_HOME. Which driver, the major version decides."""
        if self._server is None:
            return None
        password = secrets.token_urlsafe(32)
        self._ensure(self.name_of(name), password)
        return self._server.set(database=self.name_of(name), username=self.name_of(name),
                                password=password)

    def of(self, installation: str) -> MetadataDatabases:
        """The same server, naming databases as `installation` does: an environment
        another gateway created keeps its database when this one takes it over."""
        other = MetadataDatabases(None, installation)
        other._server = self._server
        return other

    @property
    def on_server(self) -> bool:
        """Whether environments' metadata is on a PostgreSQL server (else SQLite files)."""
        return self._server is not None

    def exists(self, name: str) -> bool:
        """Whether environment `name` has its database on the server already."""
        with self._admin() as connection:
            return connection.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                      (self.name_of(name),)).fetchone() is not None

    def task_counts(self, name: str) -> tuple[int, int]:
        """Environment `name`'s task instances (queued, running) now: what its Celery
        workers have or will have in hand (environments/workers.py)."""
        with self._admin(self.name_of(name)) as connection:
            rows = dict(connection.execute(
                "SELECT state, count(*) FROM task_instance WHERE state IN ('queued', "
                "'running') GROUP BY state").fetchall())
        return int(rows.get("queued", 0)), int(rows.get("running", 0))

    # --- migrated templates (environments/templates.py) --------------------------------

    def template_name(self, version: str) -> str | None:
        """The server's template database for Airflow `version`; None for SQLite."""
        return None if self._server is None else self.name_of(f"template {version}")

    def empty_template(self, version: str) -> URL | None:
        """An empty template database for `version`, made anew, and the URL that migrates
        it (the administrator's: only Airflow's own code, run by airgate, uses it)."""
        template = self.template_name(version)
        if self._server is None or template is None:
            return None
        from psycopg import sql

        with self._admin() as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(template)))
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template)))
            connection.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(
                sql.Identifier(template)))
        return self._server.set(database=template)

    def finish_template(self, version: str, default_pool: str) -> None:
        """Leave out the default pool: each environment's own migration makes it, with the
        slots its configuration gives."""
        template = self.template_name(version)
        assert template is not None
        with self._admin(template) as connection:
            connection.execute("DELETE FROM slot_pool WHERE pool = %s", (default_pool,))

    def create_from(self, name: str, template: str) -> None:
        """Environment `name`'s database, a copy of `template`; its role and ownership are
        settled by `prepare` as for any environment."""
        from psycopg import sql

        with self._admin() as connection:
            connection.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(self.name_of(name)), sql.Identifier(template)))
            connection.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(
                sql.Identifier(self.name_of(name))))

    def redact(self, text: bytes) -> bytes:
        """`text` without the administrator's password, should Airflow print its URL."""
        password = self._server.password if self._server is not None else None
        return text.replace(str(password).encode(), b"***") if password else text

    def drop(self, name: str) -> None:
        if self._server is None:
            return
        from psycopg import sql

        database = sql.Identifier(self.name_of(name))
        with self._admin() as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                database))
            connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(database))

    def snapshot(self, name: str, sqlite_file: Path) -> Snapshot:
        """A copy of the environment's metadata as it is now (its processes stopped), to put
        back if an upgrade of its Airflow fails: Airflow's migrations commit one at a time,
        so a failed one leaves a database neither version can run."""
        if self._server is None:
            saved = sqlite_file.with_name(sqlite_file.name + ".before-upgrade")
            if sqlite_file.exists():
                shutil.copy2(sqlite_file, saved)
            return Snapshot(lambda: _restore_file(saved, sqlite_file),
                            lambda: saved.unlink(missing_ok=True))
        from psycopg import sql

        database = self.name_of(name)
        copy = f"{database[:54]}_previous"
        with self._admin() as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(copy)))
            connection.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
                sql.Identifier(copy), sql.Identifier(database), sql.Identifier(database)))
            connection.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(
                sql.Identifier(copy)))

        def restore() -> None:
            with self._admin() as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(database)))
                admin.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(copy), sql.Identifier(database)))

        def discard() -> None:
            with self._admin() as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(copy)))

        return Snapshot(restore, discard)

    def name_of(self, environment: str) -> str:
        """The environment's database, and its role: the same name."""
        return database_name(environment, self._installation)

    def _ensure(self, name: str, password: str) -> None:
        from psycopg import sql

        role = sql.Identifier(name)
        verifier = sql.Literal(scram_verifier(password))
        with self._admin() as connection:
            if connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                  (name,)).fetchone() is None:
                connection.execute(sql.SQL(
                    "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                    "PASSWORD {}").format(role, verifier))
            else:
                connection.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                    role, verifier))
            if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (name,)).fetchone() is None:
                connection.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(role, role))
            else:
                connection.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(role, role))
            # No other role may even connect (PUBLIC has CONNECT on new databases).
            connection.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(role))
        with self._admin(name) as connection:
            _hand_over_objects(connection, name)

    def _admin(self, database: str | None = None) -> Any:
        import psycopg

        assert self._server is not None
        url = self._server.set(drivername="postgresql")
        if database is not None:
            url = url.set(database=database)
        return psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An environment's metadata before an upgrade: put it back, or let it go."""

    restore: Callable[[], None]
    discard: Callable[[], None]


def _restore_file(copy: Path, original: Path) -> None:
    for stale in (original, original.with_name(original.name + "-wal"),
                  original.with_name(original.name + "-shm")):
        stale.unlink(missing_ok=True)
    if copy.exists():
        copy.replace(original)


def _hand_over_objects(connection: Any, role: str) -> None:
    """Tables, views and sequences an earlier airgate made as the administrator (before
    environments had roles of their own) become the environment role's, so that it can
    migrate them."""
    from psycopg import sql

    kinds = {"r": "TABLE", "p": "TABLE", "f": "FOREIGN TABLE", "v": "VIEW",
             "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
    rows = connection.execute(
        "SELECT c.relkind, n.nspname, c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg_toast%%' AND c.relkind = ANY(%s) "
        "AND pg_get_userbyid(c.relowner) <> %s "
        # Sequences that belong to a column move with their table.
        "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid "
        "AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') "
        "AND c.relkind = 'S') ORDER BY c.relkind DESC",
        (list(kinds), role)).fetchall()
    for kind, schema, name in rows:
        connection.execute(sql.SQL("ALTER {} {}.{} OWNER TO {}").format(
            sql.SQL(kinds[kind]), sql.Identifier(schema), sql.Identifier(name),
            sql.Identifier(role)))
    if rows:
        _log.info("environment database handed to its own role",
                  extra={"fields": {"role": role, "objects": len(rows)}})


def scram_verifier(password: str, iterations: int = SCRAM_ITERATIONS) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier for `password` (RFC 5802, RFC 7677), as
    `CREATE ROLE ... PASSWORD` accepts it: the server can check the password, its catalogue
    and statement log never hold it."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return (f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}")


def database_name(environment: str, installation: str = "") -> str:
    """A PostgreSQL name per environment and installation: readable, at most 63 bytes, and
    distinct even for names that differ only in case."""
    readable = re.sub(r"[^a-z0-9_]", "_", environment.lower())[:40]
    digest = hashlib.sha256(f"{installation}/{environment}".encode()).hexdigest()[:8]
    return f"airflow_{readable}_{digest}"
