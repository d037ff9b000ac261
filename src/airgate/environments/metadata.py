"""Each environment's own Airflow metadata database.

SQLite in the environment's AIRFLOW_HOME by default. When the operator names a PostgreSQL
server (AIRGATE_AIRFLOW_DATABASE_URL, e.g. postgresql://postgres@127.0.0.1:5432/postgres),
each environment gets its own database on it, created on first start and dropped with the
environment, reached through psycopg 3 for both Airflow's sync and async engines. Names
carry the airgate installation, so that two installations sharing a server never share an
environment's database.
"""

from __future__ import annotations

import hashlib
import re

from sqlalchemy.engine import URL, make_url

from airgate.environments.layout import EnvironmentLayout


class MetadataDatabases:
    def __init__(self, server_url: str | None, installation: str = "") -> None:
        self._installation = installation
        self._server: URL | None = None
        if server_url:
            self._server = make_url(server_url).set(drivername="postgresql+psycopg")

    def connections(self, name: str, layout: EnvironmentLayout) -> dict[str, str]:
        """Airflow's database options for this environment."""
        if self._server is None:
            return {"database.sql_alchemy_conn": f"sqlite:///{layout.database}"}
        url = self._server.set(database=self.name_of(name)).render_as_string(
            hide_password=False)
        return {"database.sql_alchemy_conn": url, "database.sql_alchemy_conn_async": url}

    def ensure(self, name: str) -> None:
        """Create the environment's database on the server if it is not there yet."""
        if self._server is None:
            return
        import psycopg

        database = self.name_of(name)
        with psycopg.connect(self._admin_dsn(), autocommit=True) as connection:
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                        (database,)).fetchone()
            if exists is None:
                connection.execute(f'CREATE DATABASE "{database}"')

    def drop(self, name: str) -> None:
        if self._server is None:
            return
        import psycopg

        with psycopg.connect(self._admin_dsn(), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.name_of(name)}" WITH (FORCE)')

    def name_of(self, environment: str) -> str:
        return database_name(environment, self._installation)

    def _admin_dsn(self) -> str:
        assert self._server is not None
        return self._server.set(drivername="postgresql").render_as_string(hide_password=False)


def database_name(environment: str, installation: str = "") -> str:
    """A PostgreSQL name per environment and installation: readable, at most 63 bytes, and
    distinct even for names that differ only in case."""
    readable = re.sub(r"[^a-z0-9_]", "_", environment.lower())[:40]
    digest = hashlib.sha256(f"{installation}/{environment}".encode()).hexdigest()[:8]
    return f"airflow_{readable}_{digest}"
