"""A gateway SIGKILLed while it runs an environment: another gateway on the same store takes
the environment over within 60 s, ends what the dead one left running on this machine, and
runs it on its own, with nothing accepted lost: the DAG run triggered and the asset event
posted just before the kill, and a variable (readable only with the environment's Fernet
key, which travels in the store under the master key).

Both gateways are `airgate up` processes with homes of their own, sharing the PostgreSQL
store, the master key, the metadata server and the buckets (as gateways behind a load
balancer would share S3). The environment's processes are found by the test itself
(tests/e2e/processes.py), never by airgate's leftovers code.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from airgate.auth.secrets import MASTER_KEY_VARIABLE
from tests.e2e.processes import EnvironmentProcesses
from tests.e2e.test_airgate_crash import Airgate
from tests.e2e.test_runtime import create_args, wait_for, wait_for_status
from tests.support import POSTGRES_ADMIN_URL, postgres_database

pytestmark = [pytest.mark.e2e, pytest.mark.airflow, pytest.mark.postgres,
              pytest.mark.timeout(900)]

ENV = "moving"
ASSET = "s3://lake/orders"
DAGS = {
    "manual_run": '''
import datetime
import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(dag_id="manual_run", schedule=None, catchup=False,
         start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
         default_args={"retries": 3, "retry_delay": datetime.timedelta(seconds=2)}):
    BashOperator(task_id="work", bash_command="sleep 3; echo done")
''',
    "on_orders": f'''
import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Asset

with DAG(dag_id="on_orders", schedule=[Asset("{ASSET}")], catchup=False,
         start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    BashOperator(task_id="consume", bash_command="echo consumed")
''',
}


def invoke(gateway: Airgate, method: str, path: str, **more: Any) -> Any:
    return gateway.client().invoke_rest_api(Name=ENV, Method=method, Path=path,
                                            **more)["RestApiResponse"]


def runner_of(gateway: Airgate) -> str:
    """The installation the store says runs the environment (as an operator reads it)."""
    import psycopg

    with psycopg.connect(gateway.env["AIRGATE_DATABASE_URL"]) as connection:
        row = connection.execute("SELECT runtime FROM environments WHERE name = %s",
                                 (ENV,)).fetchone()
    assert row is not None
    runtime = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    return str(runtime.get("Runner"))


def test_another_gateway_takes_over_a_killed_gateway_s_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MASTER_KEY_VARIABLE, Fernet.generate_key().decode())
    monkeypatch.setenv("AIRGATE_AIRFLOW_DATABASE_URL", POSTGRES_ADMIN_URL)
    buckets = tmp_path / "buckets"
    (buckets / "data-team" / "dags").mkdir(parents=True)
    for name, text in DAGS.items():
        (buckets / "data-team" / "dags" / f"{name}.py").write_text(text)
    homes = {name: tmp_path / name for name in ("a", "b")}
    for home in homes.values():
        home.mkdir()
        (home / "buckets").symlink_to(buckets)
    in_a = EnvironmentProcesses(homes["a"] / "environments" / ENV)
    in_b = EnvironmentProcesses(homes["b"] / "environments" / ENV)
    with postgres_database() as url:
        first, second = Airgate(homes["a"], url), Airgate(homes["b"], url)
        try:
            first.start()
            second.start()
            first.client().create_environment(**create_args(ENV))
            wait_for_status(first.client(), ENV, "AVAILABLE")
            installation_a = (homes["a"] / "installation-id").read_text().strip()
            installation_b = (homes["b"] / "installation-id").read_text().strip()
            assert runner_of(first) == installation_a
            wait_for(lambda: invoke(first, "GET", "/dags")["total_entries"] == 2, 120,
                     "both DAGs parsed", interval=2)

            # Accepted just before the kill: a variable, an asset event, a DAG run.
            invoke(first, "POST", "/variables", Body={"key": "kept", "value": "secret-ish"})
            for dag in DAGS:
                invoke(first, "PATCH", f"/dags/{dag}", Body={"is_paused": False})
            asset = next(a for a in invoke(first, "GET", "/assets")["assets"]
                         if a["uri"] == ASSET)
            event = invoke(first, "POST", "/assets/events", Body={"asset_id": asset["id"]})
            run = invoke(first, "POST", "/dags/manual_run/dagRuns",
                         Body={"logical_date": None})
            assert in_a.find()
            first.kill()
            killed = time.monotonic()

            # Within 60 s the second gateway runs it, then serves it.
            wait_for(lambda: runner_of(second) == installation_b, 60,
                     "the second gateway to take the environment over", interval=1)
            claimed = time.monotonic() - killed
            assert claimed <= 60
            # Not AVAILABLE from the moment it is claimed until it runs again.
            assert second.client().get_environment(Name=ENV)["Environment"]["Status"] == \
                "UNAVAILABLE"
            wait_for_status(second.client(), ENV, "AVAILABLE", timeout=240)
            # The first's processes were ended; the environment runs from the second's home.
            assert in_a.find() == [], in_a.describe(in_a.find())
            assert in_b.find()
            web = second.client().get_environment(Name=ENV)["Environment"]
            assert web["Status"] == "AVAILABLE"

            # Nothing accepted was lost.
            assert invoke(second, "GET", "/variables/kept")["value"] == "secret-ish"
            path = f"/dags/manual_run/dagRuns/{run['dag_run_id']}"
            wait_for(lambda: invoke(second, "GET", path)["state"] == "success", 180,
                     "the run triggered before the kill to succeed", interval=2)
            events = invoke(second, "GET", "/assets/events",
                            QueryParameters={"asset_id": str(asset["id"])})["asset_events"]
            assert event["id"] in [e["id"] for e in events]
            wait_for(lambda: [r for r in invoke(second, "GET", "/dags/on_orders/dagRuns")[
                "dag_runs"] if r["state"] == "success"], 180,
                "the asset event's run to succeed", interval=2)
        finally:
            second.stop()
            left = in_a.kill_all() + in_b.kill_all()
    assert not left, f"processes left running: {left}"
