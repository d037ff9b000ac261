"""Airflow 3: an api-server that serves the UI, `/api/v2` and the task execution API, and
trusts airgate's tokens itself (JWTs against a JWKS file); SimpleAuthManager applies the
role a token carries."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import URL

from airgate.airflow.major import Placement, Ports
from airgate.airflow.tokens import ISSUER, audience

AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
OWN_KEY_ID = "airflow"  # the environment's own key in its JWKS; airgate's is "airgate"


class Airflow3:
    number = 3
    rest_prefix = "/api/v2"
    components = ("api-server", "scheduler", "dag-processor", "triggerer")
    blocked_sections = frozenset({"api_auth", "execution_api"})
    blocked_options = frozenset({
        "core.auth_manager", "core.simple_auth_manager_all_admins",
        "core.simple_auth_manager_users", "core.simple_auth_manager_passwords_file",
        "core.execution_api_server_url", "core.multi_team",
        "api.host", "api.port", "api.base_url", "api.workers", "api.secret_key",
        "api.ssl_cert", "api.ssl_key", "dag_processor.dag_bundle_config_list",
        "dag_processor.dag_bundle_storage_path",
    })

    def argv(self, component: str, ports: Ports) -> list[str]:
        if component == "api-server":
            return ["api-server", "--host", ports.listen, "--port", str(ports.api)]
        if component == "triggerer":
            # The scheduler's log server serves the triggerer's logs too (the same folder on
            # the same machine): one process (about 97 MiB PSS) fewer to start and keep.
            return ["triggerer", "--skip-serve-logs"]
        return [component]

    def health_url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}/api/v2/monitor/health"

    def is_healthy(self, report: Mapping[str, Any]) -> bool:
        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return all((report.get(part) or {}).get("status") == "healthy" for part in parts)

    def options(self, placement: Placement) -> dict[str, str]:
        api_url = f"http://127.0.0.1:{placement.ports.api}"
        return {
            "core.auth_manager": AUTH_MANAGER,
            "core.simple_auth_manager_users": "admin:ADMIN",
            "core.execution_api_server_url": f"{api_url}/execution/",
            "api.host": placement.ports.listen,
            "api.port": str(placement.ports.api),
            # Links and redirects in the UI name airgate's front, where users reach it.
            "api.base_url": f"{placement.web_scheme}://127.0.0.1:{placement.ports.web}/",
            "api.workers": "1",
            "api_auth.jwt_private_key_path": str(placement.own_key),
            "api_auth.jwt_kid": OWN_KEY_ID,
            "api_auth.trusted_jwks_url": str(placement.jwks),
            "api_auth.jwt_issuer": ISSUER,
            "api_auth.jwt_audience": audience(placement.name),
            # Logs of deferred tasks, from the one log server (the scheduler's; see argv).
            "logging.trigger_log_server_port": str(placement.ports.worker_logs),
            "dag_processor.refresh_interval": "10",
            "dag_processor.min_file_process_interval": "10",
        }

    def database_options(self, url: URL | None, sqlite_file: Path) -> dict[str, str]:
        if url is None:
            return {"database.sql_alchemy_conn": f"sqlite:///{sqlite_file}"}
        text = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        # psycopg 3 for both of Airflow 3's engines, the sync and the async one.
        return {"database.sql_alchemy_conn": text, "database.sql_alchemy_conn_async": text}

    def migration_options(self, url: URL | None, sqlite_file: Path) -> dict[str, str]:
        """psycopg2 for migrations: with psycopg 3, Airflow 3.2.0's migration e812941398f4
        fails (IndeterminateDatatype) on databases coming from Airflow 2 or 3.0/3.1."""
        if url is None:
            return self.database_options(url, sqlite_file)
        return {**self.database_options(url, sqlite_file), "database.sql_alchemy_conn":
                url.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)}

    signs_own_tokens = True  # UI and task tokens, with the environment's own key

    def python_path(self, placement: Placement) -> tuple[Path, ...]:
        return ()

    def environment(self, database: Mapping[str, str]) -> dict[str, str]:
        return {}

    def write_support(self, placement: Placement) -> None:
        return None

    def warm_up(self, client: httpx.Client, port: int) -> None:
        """Airflow builds its task execution API on the first request to it, which holds
        the whole api-server for seconds (4 to 30 s measured here): pay that before
        AVAILABLE, not during the first task or a caller's InvokeRestApi call."""
        with contextlib.suppress(httpx.HTTPError):
            client.get(f"http://127.0.0.1:{port}/execution/health", timeout=120.0)

    def worker_options(self, api_url: str) -> dict[str, str]:
        """Tasks report to the task execution API, on the api-server."""
        return {"core.execution_api_server_url": f"{api_url}/execution/"}


AIRFLOW_3 = Airflow3()
