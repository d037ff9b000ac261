"""How an environment runs its tasks: one object per executor, asked by the runtime.

- `LocalExecution`: Airflow's LocalExecutor, the scheduler forking task processes on this
  machine (the default: it needs nothing but Airflow).
- `CeleryExecution`: Airflow's CeleryExecutor (the Celery provider), as on MWAA: the
  scheduler queues tasks on a broker, each environment on its own namespace there
  (environments/brokers.py), and Celery workers, between `MinWorkers` and `MaxWorkers` of
  them, take them; each worker runs as many tasks at once as MWAA's environment class gives.

Each says which Airflow options it needs, whether the environment has workers to scale and
how a worker is started; the autoscaler (environments/autoscaler.py) decides how many.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from airgate.environments.brokers import Brokers
from airgate.environments.layout import MAX_WORKERS

__all__ = ["DEFAULT_PARALLELISM", "MAX_WORKERS", "TASKS_PER_WORKER", "WORKER_PREFIX",
           "CeleryExecution", "Execution", "LocalExecution", "first_workers",
           "tasks_per_worker", "worker_bounds"]

DEFAULT_PARALLELISM = 4  # LocalExecutor forks this many workers up front (~130 MB RSS each)
DEFAULT_CLASS = "mw1.small"
# Tasks one worker runs at once, per MWAA environment class (MWAA's default
# celery.worker_autoscale maximum; mw1.micro's is not documented as firmly).
TASKS_PER_WORKER = {"mw1.micro": 3, "mw1.small": 5, "mw1.medium": 10, "mw1.large": 20,
                    "mw1.xlarge": 40, "mw1.2xlarge": 80}
WORKER_PREFIX = "worker-"  # Celery workers are components worker-1, worker-2, ...


def tasks_per_worker(spec: Mapping[str, Any]) -> int:
    """Tasks one worker takes at once: `celery.worker_autoscale`'s maximum where the
    caller sets it (MWAA lets them), else the environment class's."""
    autoscale = str((spec.get("AirflowConfigurationOptions") or {}).get(
        "celery.worker_autoscale", ""))
    highest = autoscale.partition(",")[0].strip()
    if highest.isdigit() and int(highest) > 0:
        return int(highest)
    return TASKS_PER_WORKER.get(str(spec.get("EnvironmentClass") or DEFAULT_CLASS),
                                TASKS_PER_WORKER[DEFAULT_CLASS])


def worker_bounds(spec: Mapping[str, Any]) -> tuple[int, int]:
    """(MinWorkers, MaxWorkers) as MWAA defaults them (1 and 10), the maximum never
    below the minimum nor above MAX_WORKERS."""
    low = min(MAX_WORKERS, max(1, int(spec.get("MinWorkers") or 1)))
    return low, min(MAX_WORKERS, max(low, int(spec.get("MaxWorkers") or 10)))


def first_workers(spec: Mapping[str, Any]) -> list[str]:
    """The workers a Celery environment starts with: MinWorkers of them."""
    return [f"{WORKER_PREFIX}{n}" for n in range(1, worker_bounds(spec)[0] + 1)]


class Execution(Protocol):
    executor: str  # Airflow's name for it, for the setup log
    scales_workers: bool  # whether the environment has Celery workers to scale

    def options(self, name: str, spec: Mapping[str, Any]) -> dict[str, str]:
        """Airflow options ("section.key") the environment's processes need for it."""

    def worker_argv(self, worker: str) -> list[str]:
        """`airflow ...` arguments of one worker named `worker` (worker-1, ...), the same
        on every Airflow major version."""

    def forget(self, name: str) -> None:
        """The environment is gone: release what it held (its broker login and queues)."""

    def of(self, installation: str) -> Execution:
        """The same executor for an environment `installation` created (its broker login
        is named by it)."""


class LocalExecution:
    executor = "LocalExecutor"
    scales_workers = False

    def options(self, name: str, spec: Mapping[str, Any]) -> dict[str, str]:
        return {"core.executor": self.executor,
                "core.parallelism": str(spec.get("MaxWorkers") or DEFAULT_PARALLELISM)}

    def worker_argv(self, worker: str) -> list[str]:
        raise NotImplementedError("the LocalExecutor has no workers of its own")

    def forget(self, name: str) -> None:
        return None

    def of(self, installation: str) -> LocalExecution:
        return self


class CeleryExecution:
    executor = "CeleryExecutor"
    scales_workers = True

    def __init__(self, brokers: Brokers) -> None:
        self._brokers = brokers

    @property
    def broker_kind(self) -> str:
        return self._brokers.kind

    def options(self, name: str, spec: Mapping[str, Any]) -> dict[str, str]:
        """The broker login is new at every start (`Brokers.prepare`); results go to the
        metadata database (the Celery provider's default); remote control is off, since
        airgate stops workers with signals (warm shutdown), not broadcasts."""
        per_worker = tasks_per_worker(spec)
        return {
            "core.executor": self.executor,
            # As many as the most workers could take, so UpdateEnvironment can raise
            # MaxWorkers without restarting the scheduler; queued tasks wait on the broker.
            "core.parallelism": str(MAX_WORKERS * per_worker),
            "celery.worker_concurrency": str(per_worker),
            "celery.worker_enable_remote_control": "False",
            "celery.worker_prefetch_multiplier": "1",
            **self._brokers.prepare(name).airflow_options(),
        }

    def worker_argv(self, worker: str) -> list[str]:
        return celery_worker_argv(worker)

    def forget(self, name: str) -> None:
        self._brokers.drop(name)

    def of(self, installation: str) -> CeleryExecution:
        return CeleryExecution(self._brokers.of(installation))


def celery_worker_argv(worker: str) -> list[str]:
    """`airflow ...` arguments of one Celery worker, here or on another machine. Logs are
    read from the log folder of the machine that runs the environment, so workers serve
    none; mingle and gossip only chatter among workers airgate already knows about."""
    return ["celery", "worker", "--celery-hostname", f"{worker}@%h", "--skip-serve-logs",
            "--without-mingle", "--without-gossip"]
