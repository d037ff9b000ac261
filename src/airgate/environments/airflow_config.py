"""An environment's Airflow configuration, as AIRFLOW__SECTION__KEY variables.

airgate owns the options that keep it in control of the environment (where the metadata and
DAGs live, which ports, which keys and tokens are trusted, which auth manager decides), so
callers can't set those, as MWAA refuses its blocked options. Everything else in
AirflowConfigurationOptions ("section.key": "value") is passed through.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airgate.airflow.major import AirflowMajor, Placement, Ports
from airgate.environments.executors import Execution, first_workers
from airgate.environments.layout import EnvironmentLayout
from airgate.errors import ValidationException

__all__ = [
    "Ports",
    "airflow_environment",
    "check_options",
    "components",
    "option_variables",
    "schedulers",
]

# Whole sections, and single options, that only airgate sets on every major version; each
# major version adds its own (`AirflowMajor.blocked_options`). The broker's login and
# namespace are the environment's own (environments/brokers.py).
_BLOCKED_SECTIONS = frozenset({"database", "celery_broker_transport_options"})
_BLOCKED_OPTIONS = frozenset({
    "core.executor", "core.dags_folder", "core.plugins_folder", "core.fernet_key",
    "core.hostname_callable", "logging.base_log_folder", "logging.worker_log_server_port",
    "logging.trigger_log_server_port", "scheduler.enable_health_check",
    "scheduler.scheduler_health_check_server_host",
    "scheduler.scheduler_health_check_server_port", "celery.broker_url",
    "celery.result_backend", "celery.worker_enable_remote_control",
    "celery.extra_celery_config",
})


def check_options(options: Mapping[str, str], major: AirflowMajor) -> None:
    """ValidationException naming every option airgate can't let a caller set."""
    refused = []
    for key in options:
        section, _, option = key.partition(".")
        if not option:
            refused.append(f"{key} (expected section.option)")
        elif section in _BLOCKED_SECTIONS | major.blocked_sections \
                or key in _BLOCKED_OPTIONS | major.blocked_options \
                or option.endswith(("_cmd", "_secret")):
            refused.append(key)
    if refused:
        raise ValidationException(
            "These Airflow configuration options are blocked because airgate manages them: "
            + ", ".join(sorted(refused)))


# What an environment's processes inherit of airgate's own environment: nothing but these
# (locale, time zone, proxies). Everything else they get is set below, so no secret of
# airgate's (AIRGATE_*, AWS_*, PIP_* with an index's credentials) can reach a tenant.
PASSED_THROUGH = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "HTTP_PROXY", "HTTPS_PROXY",
                  "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def airflow_environment(spec: Mapping[str, Any], layout: EnvironmentLayout,
                        placement: Placement, major: AirflowMajor, dags_folder: str,
                        fernet_key: str, interpreter: Path, base_env: Mapping[str, str],
                        database: Mapping[str, str], executor: Mapping[str, str],
                        user: str = "airflow") -> dict[str, str]:
    """The process environment every component of the environment runs with: an
    allow-list, never airgate's own environment minus a deny-list. `executor`: the
    executor's options (environments/executors.py)."""
    env = {key: base_env[key] for key in PASSED_THROUGH if key in base_env}
    options: dict[str, str] = {
        **executor,
        "core.dags_folder": dags_folder,
        "core.plugins_folder": str(layout.plugins),
        "core.load_examples": "False",
        "core.fernet_key": fernet_key,
        **database,
        "logging.base_log_folder": str(layout.airflow_home / "logs"),
        "logging.worker_log_server_port": str(placement.ports.worker_logs),
        "logging.trigger_log_server_port": str(placement.ports.trigger_logs),
        **major.options(placement),
    }
    level = _log_level(spec)
    if level is not None:
        options["logging.logging_level"] = level
    options.update(spec.get("AirflowConfigurationOptions") or {})
    env.update({_variable(key): value for key, value in options.items()})
    env.setdefault("LANG", "C.UTF-8")
    imports = [*map(str, major.python_path(placement)), str(layout.site_packages)]
    env.update({
        **major.environment(database),
        "AIRFLOW_HOME": str(layout.airflow_home),
        "PYTHONPATH": ":".join(imports),
        # Tasks that call `airflow` or `python` get this environment's own.
        "PATH": f"{interpreter.parent}:{SYSTEM_PATH}",
        "HOME": str(layout.home),
        "TMPDIR": "/tmp",
        "USER": user,
        "LOGNAME": user,
    })
    return env


def schedulers(spec: Mapping[str, Any], metadata_on_server: bool) -> int:
    """How many schedulers the environment runs: `Schedulers` (1 if not given) when its
    metadata is on PostgreSQL; Airflow's HA scheduling needs the row locks SQLite doesn't
    have, so one there."""
    return max(1, int(spec.get("Schedulers") or 1)) if metadata_on_server else 1


def components(spec: Mapping[str, Any], major: AirflowMajor, ports: Ports,
               metadata_on_server: bool,
               execution: Execution | None = None) -> list[tuple[str, list[str]]]:
    """The environment's long-running processes, each with its `airflow ...` arguments:
    `major`'s components, then the schedulers past the first (scheduler-2, ...), which
    serve no logs: the first scheduler's log server serves the same folder; then, with
    Celery, the first MinWorkers workers (the autoscaler starts more)."""
    processes = [(component, major.argv(component, ports)) for component in major.components]
    processes += [(f"scheduler-{n}", [*major.argv("scheduler", ports), "--skip-serve-logs"])
                  for n in range(2, schedulers(spec, metadata_on_server) + 1)]
    if execution is not None and execution.scales_workers:
        processes += [(worker, execution.worker_argv(worker))
                      for worker in first_workers(spec)]
    return processes


def option_variables(options: Mapping[str, str]) -> dict[str, str]:
    """`section.option` settings as the AIRFLOW__SECTION__OPTION variables Airflow reads."""
    return {_variable(key): value for key, value in options.items()}


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

