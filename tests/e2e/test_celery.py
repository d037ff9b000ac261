"""Celery environments on real Airflow, Redis and RabbitMQ: workers scaled between
MinWorkers and MaxWorkers with the tasks, every task successful, bounds changed live.

A DAG of many parallel tasks, triggered through InvokeRestApi with boto3, makes the queue
grow past what one worker takes (mw1.micro: 3 tasks each): workers go up to MaxWorkers,
then, once the run is over and the quiet period has passed, back down to MinWorkers by
Celery's warm shutdown. The worker counts are read where an operator reads them: /metrics.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from airgate.environments.local import LocalRuntime
from airgate.server import local_runtime
from tests.e2e.test_runtime import create_args, wait_for, wait_for_status
from tests.support import (
    POSTGRES_ADMIN_URL,
    RunningAirgate,
    labels,
    running_airgate,
    scrape_metrics,
)

pytestmark = [pytest.mark.e2e, pytest.mark.airflow, pytest.mark.postgres, pytest.mark.broker,
              pytest.mark.timeout(900)]

PARALLEL = 12
FAN_OUT_DAG = f'''
import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(dag_id="fan_out", schedule=None, catchup=False, max_active_tasks={PARALLEL},
         start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    for n in range({PARALLEL}):
        BashOperator(task_id=f"part_{{n}}", bash_command="sleep 20; echo part done")
'''
ONE_TASK_DAG = '''
import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(dag_id="one_task", schedule=None, catchup=False,
         start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    BashOperator(task_id="hello", bash_command="echo hello from a celery worker")
'''


def home_with(tmp_path: Path, **dags: str) -> Path:
    home = tmp_path / "home"
    folder = home / "buckets" / "data-team" / "dags"
    folder.mkdir(parents=True)
    for name, text in dags.items():
        (folder / f"{name}.py").write_text(text)
    return home


def invoke(server: RunningAirgate, name: str, method: str, path: str, **more: Any) -> Any:
    return server.client().invoke_rest_api(Name=name, Method=method, Path=path,
                                           **more)["RestApiResponse"]


def run_to_success(server: RunningAirgate, name: str, dag: str, timeout: float) -> str:
    """Unpause `dag`, trigger it through InvokeRestApi, wait for its run's success."""
    wait_for(lambda: invoke(server, name, "GET", "/dags")["total_entries"] > 0, 120,
             f"{dag} to be parsed", interval=2)
    invoke(server, name, "PATCH", f"/dags/{dag}", Body={"is_paused": False})
    run = invoke(server, name, "POST", f"/dags/{dag}/dagRuns", Body={"logical_date": None})
    path = f"/dags/{dag}/dagRuns/{run['dag_run_id']}"

    def finished() -> str | None:
        state = invoke(server, name, "GET", path)["state"]
        return state if state in ("success", "failed") else None

    assert wait_for(finished, timeout, f"the {dag} run to finish", interval=2) == "success"
    return str(run["dag_run_id"])


class WorkerGauge:
    """airgate_environment_workers as scraped once a second, in a thread; every scrape's
    outcome kept (a failed scrape fails the test)."""

    def __init__(self, server: RunningAirgate, name: str) -> None:
        self._server, self._series = server, labels(environment=name)
        self.seen: list[tuple[float, float, float]] = []  # (time, workers, queued)
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                samples = scrape_metrics(self._server.endpoint_url)
                self.seen.append((time.monotonic(),
                                  samples["airgate_environment_workers"][self._series],
                                  samples["airgate_environment_queued_tasks"][self._series]))
            except BaseException as error:  # recorded, raised by the test
                self.errors.append(error)

    def __enter__(self) -> WorkerGauge:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def now(self) -> float:
        assert not self.errors, self.errors
        return self.seen[-1][1] if self.seen else -1.0


def worker_mains(runtime: LocalRuntime, name: str) -> dict[str, int]:
    """Worker components and their process ids (the supervised ones)."""
    return {component: pid for component, pid in runtime.pids(name).items()
            if component.startswith("worker-")}


def test_workers_scale_with_the_queue_on_redis(tmp_path: Path) -> None:
    name = "CeleryRedis"
    home = home_with(tmp_path, fan_out=FAN_OUT_DAG)
    with running_airgate(home, runtime_factory=local_runtime,
                         airflow_database_url=POSTGRES_ADMIN_URL,
                         broker_url="redis://127.0.0.1:6379/0",
                         worker_quiet_seconds=15) as server:
        mwaa = server.client()
        mwaa.create_environment(**create_args(name, EnvironmentClass="mw1.micro",
                                              MinWorkers=1, MaxWorkers=3))
        wait_for_status(mwaa, name, "AVAILABLE")
        runtime = server.airgate.runtime
        assert isinstance(runtime, LocalRuntime)
        assert list(worker_mains(runtime, name)) == ["worker-1"]
        setup = (home / "environments" / name / "logs" / "setup.log").read_text()
        assert "airgate: CeleryExecutor: 1 to 3 workers of 3 tasks each" in setup
        scheduler = runtime.pids(name)["scheduler"]

        with WorkerGauge(server, name) as gauge:
            run_id = run_to_success(server, name, "fan_out", timeout=420)
            # Up to MaxWorkers while 12 tasks wanted 4 workers' worth of slots, never past it.
            assert max(workers for _, workers, _ in gauge.seen) == 3, gauge.seen
            assert max(queued for _, _, queued in gauge.seen) > 0, gauge.seen
            instances = invoke(server, name, "GET",
                               f"/dags/fan_out/dagRuns/{run_id}/taskInstances")
            states = [ti["state"] for ti in instances["task_instances"]]
            assert states == ["success"] * PARALLEL, states
            # Each worker took tasks (Celery's own log line for every task it received).
            logs = home / "environments" / name / "logs"
            for worker in ("worker-1", "worker-2", "worker-3"):
                assert "received" in (logs / f"{worker}.log").read_text(), worker
            # Back to MinWorkers once the quiet period has passed.
            wait_for(lambda: gauge.now() == 1.0, 120, "workers back to MinWorkers", 1.0)
        assert list(worker_mains(runtime, name)) == ["worker-1"]

        # UpdateEnvironment changes the bounds live: no restart, a second worker at once.
        mwaa.update_environment(Name=name, MinWorkers=2)
        wait_for_status(mwaa, name, "AVAILABLE", timeout=60)
        wait_for(lambda: len(worker_mains(runtime, name)) == 2, 60, "MinWorkers=2 to run")
        assert runtime.pids(name)["scheduler"] == scheduler  # nothing restarted
        assert psutil.pid_exists(scheduler)
        mwaa.delete_environment(Name=name)
        wait_for(lambda: name not in [e for e in mwaa.list_environments()["Environments"]],
                 180, "the environment to go")


def test_a_celery_environment_on_rabbitmq_runs_its_dag(tmp_path: Path) -> None:
    import httpx

    name = "CeleryRabbit"
    home = home_with(tmp_path, one_task=ONE_TASK_DAG)
    with running_airgate(home, runtime_factory=local_runtime,
                         airflow_database_url=POSTGRES_ADMIN_URL,
                         broker_url="amqp://guest:guest@127.0.0.1:5672//") as server:
        mwaa = server.client()
        mwaa.create_environment(**create_args(name, MinWorkers=1, MaxWorkers=2))
        wait_for_status(mwaa, name, "AVAILABLE")
        run_to_success(server, name, "one_task", timeout=240)
        vhosts = {v["name"] for v in httpx.get("http://127.0.0.1:15672/api/vhosts",
                                               auth=("guest", "guest")).json()}
        own = [vhost for vhost in vhosts if vhost.startswith("airgate_celeryrabbit_")]
        assert len(own) == 1, vhosts
        mwaa.delete_environment(Name=name)
        wait_for(lambda: name not in mwaa.list_environments()["Environments"], 180,
                 "the environment to go")
        vhosts = {v["name"] for v in httpx.get("http://127.0.0.1:15672/api/vhosts",
                                               auth=("guest", "guest")).json()}
        assert own[0] not in vhosts
