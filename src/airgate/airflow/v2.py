"""Airflow 2: a Flask web server (gunicorn) that serves the UI and `/api/v1`, a scheduler
that parses DAGs itself, and a triggerer. Callers are signed in by airgate's API auth backend
(`v2_support/airgate_airflow2/api_auth.py`, copied into the environment), which accepts
airgate's tokens and keeps a Flask-AppBuilder user per IAM identity in step with its role.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import URL

from airgate.airflow.major import Placement, Ports
from airgate.airflow.tokens import ISSUER, audience

SUPPORT = Path(__file__).with_name("v2_support")
SESSION_MINUTES = 12 * 60  # a web sign-in lasts as long as MWAA's


class Airflow2:
    number = 2
    rest_prefix = "/api/v1"
    # No standalone DAG processor: Airflow 2 allows one only on PostgreSQL and MySQL, and the
    # scheduler parses DAGs itself otherwise.
    components = ("webserver", "scheduler", "triggerer")
    blocked_sections = frozenset({"airgate"})
    blocked_options = frozenset({
        "core.sql_alchemy_conn", "core.security", "api.auth_backends", "api.auth_backend",
        "webserver.config_file", "webserver.secret_key", "webserver.web_server_host",
        "webserver.web_server_port", "webserver.base_url", "webserver.session_backend",
        "webserver.web_server_ssl_cert", "webserver.web_server_ssl_key",
        "webserver.workers", "scheduler.standalone_dag_processor",
        "scheduler.dag_dir_list_interval",
    })

    def argv(self, component: str, ports: Ports) -> list[str]:
        return [component]  # where each listens comes from the configuration

    def health_url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}/health"

    def is_healthy(self, report: Mapping[str, Any]) -> bool:
        parts = ("metadatabase", "scheduler", "triggerer")
        return all((report.get(part) or {}).get("status") == "healthy" for part in parts)

    def options(self, placement: Placement) -> dict[str, str]:
        return {
            # Airflow 2.10 appends its session backend anyway (with a warning on every CLI
            # command): named here, after airgate's, it serves signed-in browsers' /api/v1.
            "api.auth_backends": "airgate_airflow2.api_auth,airflow.api.auth.backend.session",
            "airgate.jwks_path": str(placement.jwks),
            "airgate.audience": audience(placement.name),
            "airgate.issuer": ISSUER,
            "webserver.web_server_host": placement.ports.listen,
            "webserver.web_server_port": str(placement.ports.api),
            # Links and redirects in the UI name airgate's front, where users reach it.
            "webserver.base_url": f"{placement.web_scheme}://127.0.0.1:{placement.ports.web}",
            "webserver.config_file": str(placement.support / "webserver_config.py"),
            "webserver.secret_key": placement.web_secret,
            "webserver.session_lifetime_minutes": str(SESSION_MINUTES),
            "webserver.workers": "2",
            "webserver.expose_config": "False",
            "scheduler.standalone_dag_processor": "False",
            "scheduler.dag_dir_list_interval": "10",
            "scheduler.min_file_process_interval": "10",
        }

    def database_options(self, url: URL | None, sqlite_file: Path) -> dict[str, str]:
        if url is None:
            return {"database.sql_alchemy_conn": f"sqlite:///{sqlite_file}"}
        # Airflow 2's SQLAlchemy 1.4 has no psycopg 3 dialect: psycopg2, in the runtime.
        return {"database.sql_alchemy_conn": url.set(drivername="postgresql+psycopg2")
                .render_as_string(hide_password=False)}

    def migration_options(self, url: URL | None, sqlite_file: Path) -> dict[str, str]:
        return self.database_options(url, sqlite_file)

    signs_own_tokens = False  # it trusts airgate's key only

    def python_path(self, placement: Placement) -> tuple[Path, ...]:
        return (placement.support,)

    def environment(self, database: Mapping[str, str]) -> dict[str, str]:
        variables = {}
        if database.get("database.sql_alchemy_conn", "").startswith("sqlite"):
            # Airflow 2 refuses the LocalExecutor on SQLite because SQLite has one writer;
            # airgate runs it anyway, as it does on Airflow 3 (where it is allowed), with a
            # small parallelism. PostgreSQL is the choice for real work, as on MWAA.
            variables["_AIRFLOW__SKIP_DATABASE_EXECUTOR_COMPATIBILITY_CHECK"] = "1"
        return variables

    def write_support(self, placement: Placement) -> None:
        """airgate's auth backend and web server configuration, into `support`: replaced
        at every start, so an environment always runs this airgate's version of them."""
        shutil.rmtree(placement.support, ignore_errors=True)
        shutil.copytree(SUPPORT, placement.support,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for path in (placement.support, *placement.support.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)

    def warm_up(self, client: httpx.Client, port: int) -> None:
        return None

    def worker_options(self, api_url: str) -> dict[str, str]:
        """Airflow 2's tasks use the metadata database directly, as the kit says."""
        return {}


AIRFLOW_2 = Airflow2()
