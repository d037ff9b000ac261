"""`airgate worker` on a second machine, simulated on this one: a home of its own, sharing
with the gateway only what two machines would share (the PostgreSQL store and the master
key, the bucket, the metadata server and the broker).

It reads the environment from the store and its DAGs from the bucket, starts a Celery
worker in its own sandbox, and reports it: the gateway's autoscaler counts it (MaxWorkers 1
reached, the gateway's own worker goes), so every task of a run runs on the second machine,
where it sees its own home and nothing of the gateway's, and reaches the environment's
API at the address the gateway advertises. Stopped, its report goes and the
gateway runs MinWorkers workers itself again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from airgate.auth.secrets import MASTER_KEY_VARIABLE
from airgate.environments.local import LocalRuntime
from airgate.server import local_runtime
from tests.e2e.processes import EnvironmentProcesses
from tests.e2e.test_celery import invoke, worker_mains
from tests.e2e.test_runtime import create_args, wait_for, wait_for_status
from tests.support import (
    POSTGRES_ADMIN_URL,
    RunningAirgate,
    labels,
    postgres_database,
    running_airgate,
    scrape_metrics,
)

pytestmark = [pytest.mark.e2e, pytest.mark.airflow, pytest.mark.postgres, pytest.mark.broker,
              pytest.mark.timeout(900)]

ENV = "Spread"
# The gateway's machine as the second reaches it: another loopback address, so that only a
# server listening beyond 127.0.0.1 answers there.
ADVERTISED = "127.0.0.2"
PARTS = 4


def where_dag(first_home: Path) -> str:
    return f'''
import os
import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG


def where():
    return "|".join([os.environ["AIRFLOW_HOME"], str(os.path.exists("{first_home}")),
                     os.environ["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]])


with DAG(dag_id="where", schedule=None, catchup=False, max_active_tasks={PARTS},
         start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    for n in range({PARTS}):
        PythonOperator(task_id=f"part_{{n}}", python_callable=where)
'''


def workers_metric(endpoint: str) -> float:
    return scrape_metrics(endpoint)["airgate_environment_workers"][labels(environment=ENV)]


def test_a_worker_on_another_machine_runs_the_environment_s_tasks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    master_key = Fernet.generate_key().decode()
    monkeypatch.setenv(MASTER_KEY_VARIABLE, master_key)
    buckets = tmp_path / "buckets"
    homes = {name: tmp_path / name for name in ("first", "second")}
    (buckets / "data-team" / "dags").mkdir(parents=True)
    (buckets / "data-team" / "dags" / "where.py").write_text(where_dag(homes["first"]))
    for home in homes.values():
        home.mkdir()
        (home / "buckets").symlink_to(buckets)
    on_second = EnvironmentProcesses(homes["second"] / "environments" / ENV)
    worker: subprocess.Popen[bytes] | None = None
    try:
        with postgres_database() as store, \
                running_airgate(homes["first"], store, runtime_factory=local_runtime,
                                airflow_database_url=POSTGRES_ADMIN_URL,
                                broker_url="redis://127.0.0.1:6379/0",
                                worker_quiet_seconds=5,
                                advertise_address=ADVERTISED) as server:
            mwaa = server.client()
            mwaa.create_environment(**create_args(ENV, EnvironmentClass="mw1.small",
                                                  MinWorkers=1, MaxWorkers=1))
            wait_for_status(mwaa, ENV, "AVAILABLE")
            runtime = server.airgate.runtime
            assert isinstance(runtime, LocalRuntime)
            assert list(worker_mains(runtime, ENV)) == ["worker-1"]
            api = mwaa_record(server)["Ports"]["api"]
            assert mwaa_record(server)["ApiUrl"] == f"http://{ADVERTISED}:{api}"
            assert httpx.get(f"http://{ADVERTISED}:{api}/api/v2/monitor/health",
                             timeout=10).status_code == 200

            errors = tmp_path / "worker.stderr"
            worker = subprocess.Popen(
                [sys.executable, "-m", "airgate.cli", "worker", "--environment", ENV],
                env={**os.environ, "AIRGATE_HOME": str(homes["second"]),
                     "AIRGATE_DATABASE_URL": store, MASTER_KEY_VARIABLE: master_key},
                stdout=subprocess.DEVNULL, stderr=errors.open("wb"))
            # Reported and counted: MaxWorkers is reached without the gateway's worker,
            # which goes; the one worker /metrics shows is the second machine's.
            wait_for(lambda: not worker_mains(runtime, ENV), 90,
                     "the gateway's own worker to go")
            assert workers_metric(server.endpoint_url) == 1.0
            assert on_second.find(), "no worker process on the second machine"
            assert worker.poll() is None

            wait_for(lambda: invoke(server, ENV, "GET", "/dags")["total_entries"] == 1, 120,
                     "the DAG to be parsed", interval=2)
            invoke(server, ENV, "PATCH", "/dags/where", Body={"is_paused": False})
            run = invoke(server, ENV, "POST", "/dags/where/dagRuns",
                         Body={"logical_date": None})
            path = f"/dags/where/dagRuns/{run['dag_run_id']}"

            def finished() -> str | None:
                state = invoke(server, ENV, "GET", path)["state"]
                return state if state in ("success", "failed") else None

            assert wait_for(finished, 300, "the run to finish", interval=2) == "success"
            second_home = str(homes["second"] / "environments" / ENV / "airflow")
            for n in range(PARTS):
                entry = invoke(server, ENV, "GET",
                               f"{path}/taskInstances/part_{n}/xcomEntries/return_value")
                assert xcom_text(entry["value"]) == \
                    f"{second_home}|False|http://{ADVERTISED}:{api}/execution/"

            # Stopped: its report is withdrawn, and the gateway runs MinWorkers again.
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=120)
            assert worker.returncode == 0, errors.read_text()
            wait_for(lambda: list(worker_mains(runtime, ENV)) == ["worker-1"], 60,
                     "the gateway to run its own worker again")
            wait_for(lambda: on_second.find() == [], 30,
                     "the second machine's workers to end")
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
        left = on_second.kill_all()
    assert not left, f"processes left running: {left}"


def xcom_text(value: Any) -> str:
    """A returned string as Airflow's API gives it (the string, or it as JSON)."""
    if isinstance(value, str) and value.startswith('"'):
        return str(json.loads(value))
    return str(value)


def mwaa_record(server: RunningAirgate) -> dict[str, Any]:
    """The environment's runtime facts, as the store holds them."""
    return dict(server.airgate.environments.get(ENV).runtime)
