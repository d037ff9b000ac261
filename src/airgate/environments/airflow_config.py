"""An environment's Airflow configuration, as AIRFLOW__SECTION__KEY variables.

airgate owns the options that keep it in control of the environment (where the metadata and
DAGs live, which ports, which keys and tokens are trusted, which auth manager decides), so
callers can't set those, as MWAA refuses its blocked options. Everything else in
AirflowConfigurationOptions ("section.key": "value") is passed through.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airgate.airflow.tokens import ISSUER, audience
from airgate.environments.layout import EnvironmentLayout
from airgate.errors import ValidationException

AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
OWN_KEY_ID = "airflow"
DEFAULT_PARALLELISM = 4  # LocalExecutor forks this many workers up front (~130 MB RSS each)
DAG_REFRESH_SECONDS = 10  # new and changed DAG files are parsed within 30 s

# Whole sections, and single options, that only airgate sets.
_BLOCKED_SECTIONS = frozenset({"database", "api_auth", "execution_api"})
_BLOCKED_OPTIONS = frozenset({
    "core.executor", "core.auth_manager", "core.simple_auth_manager_all_admins",
    "core.simple_auth_manager_users", "core.simple_auth_manager_passwords_file",
    "core.execution_api_server_url", "core.dags_folder", "core.plugins_folder",
    "core.fernet_key", "core.multi_team", "core.hostname_callable",
    "api.host", "api.port", "api.base_url", "api.workers", "api.secret_key", "api.ssl_cert",
    "api.ssl_key", "logging.base_log_folder", "logging.worker_log_server_port",
    "logging.trigger_log_server_port", "scheduler.enable_health_check",
    "scheduler.scheduler_health_check_server_host",
    "scheduler.scheduler_health_check_server_port", "dag_processor.dag_bundle_config_list",
    "dag_processor.dag_bundle_storage_path",
})


def check_options(options: Mapping[str, str]) -> None:
    """ValidationException naming every option airgate can't let a caller set."""
    refused = []
    for key in options:
        section, _, option = key.partition(".")
        if not option:
            refused.append(f"{key} (expected section.option)")
        elif section in _BLOCKED_SECTIONS or key in _BLOCKED_OPTIONS \
                or option.endswith(("_cmd", "_secret")):
            refused.append(key)
    if refused:
        raise ValidationException(
            "These Airflow configuration options are blocked because airgate manages them: "
            + ", ".join(sorted(refused)))


@dataclass(frozen=True, slots=True)
class Ports:
    api: int
    worker_logs: int
    trigger_logs: int
    web: int  # airgate's front for the environment: its WebServerHostname

    def as_dict(self) -> dict[str, int]:
        return {"api": self.api, "worker_logs": self.worker_logs,
                "trigger_logs": self.trigger_logs, "web": self.web}


# What an environment's processes inherit of airgate's own environment: nothing but these
# (locale, time zone, proxies). Everything else they get is set below, so no secret of
# airgate's (AIRGATE_*, AWS_*, PIP_* with an index's credentials) can reach a tenant.
PASSED_THROUGH = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "HTTP_PROXY", "HTTPS_PROXY",
                  "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def airflow_environment(name: str, spec: Mapping[str, Any], layout: EnvironmentLayout,
                        ports: Ports, dags_folder: str, fernet_key: str, interpreter: Path,
                        base_env: Mapping[str, str],
                        database: Mapping[str, str] | None = None,
                        web_scheme: str = "http", user: str = "airflow") -> dict[str, str]:
    """The process environment every component of `name` runs with: an allow-list, never
    airgate's own environment minus a deny-list."""
    api_url = f"http://127.0.0.1:{ports.api}"
    env = {key: base_env[key] for key in PASSED_THROUGH if key in base_env}
    options: dict[str, str] = {
        "core.executor": "LocalExecutor",
        "core.auth_manager": AUTH_MANAGER,
        "core.simple_auth_manager_users": "admin:ADMIN",
        "core.dags_folder": dags_folder,
        "core.plugins_folder": str(layout.plugins),
        "core.load_examples": "False",
        "core.fernet_key": fernet_key,
        "core.parallelism": str(spec.get("MaxWorkers") or DEFAULT_PARALLELISM),
        "core.execution_api_server_url": f"{api_url}/execution/",
        **(database or {"database.sql_alchemy_conn": f"sqlite:///{layout.database}"}),
        "api.host": "127.0.0.1",
        "api.port": str(ports.api),
        # Links and redirects in the UI name airgate's front, where users reach it.
        "api.base_url": f"{web_scheme}://127.0.0.1:{ports.web}/",
        "api.workers": "1",
        "api_auth.jwt_private_key_path": str(layout.own_key),
        "api_auth.jwt_kid": OWN_KEY_ID,
        "api_auth.trusted_jwks_url": str(layout.jwks),
        "api_auth.jwt_issuer": ISSUER,
        "api_auth.jwt_audience": audience(name),
        "logging.base_log_folder": str(layout.airflow_home / "logs"),
        "logging.worker_log_server_port": str(ports.worker_logs),
        "logging.trigger_log_server_port": str(ports.trigger_logs),
        "dag_processor.refresh_interval": str(DAG_REFRESH_SECONDS),
        "dag_processor.min_file_process_interval": str(DAG_REFRESH_SECONDS),
    }
    level = _log_level(spec)
    if level is not None:
        options["logging.logging_level"] = level
    options.update(spec.get("AirflowConfigurationOptions") or {})
    env.update({_variable(key): value for key, value in options.items()})
    env.setdefault("LANG", "C.UTF-8")
    env.update({
        "AIRFLOW_HOME": str(layout.airflow_home),
        "PYTHONPATH": str(layout.site_packages),
        # Tasks that call `airflow` or `python` get this environment's own.
        "PATH": f"{interpreter.parent}:{SYSTEM_PATH}",
        "HOME": str(layout.home),
        "TMPDIR": "/tmp",
        "USER": user,
        "LOGNAME": user,
    })
    return env


def _variable(key: str) -> str:
    section, _, option = key.partition(".")
    return f"AIRFLOW__{section.upper()}__{option.upper()}"


def _log_level(spec: Mapping[str, Any]) -> str | None:
    """The most verbose level among the enabled MWAA log modules, if any is enabled."""
    order = ["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]
    levels = [str(module.get("LogLevel")) for module in
              (spec.get("LoggingConfiguration") or {}).values()
              if isinstance(module, Mapping) and module.get("Enabled")]
    known = [level for level in levels if level in order]
    return max(known, key=order.index) if known else None

