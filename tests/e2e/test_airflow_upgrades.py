"""UpdateEnvironment with a newer AirflowVersion upgrades the environment in place, as on
MWAA: its metadata (variables, DAG runs) migrated and kept; an upgrade that fails leaves
UPDATE_FAILED with the previous version running again on its previous metadata; a downgrade
is refused. On PostgreSQL metadata, from Airflow 2.10.3 to 2.11.0 to 3.3.2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airgate.server import local_runtime
from tests.e2e.test_runtime import create_args, wait_for, wait_for_status
from tests.support import POSTGRES_ADMIN_URL, RunningAirgate, running_airgate

pytestmark = [pytest.mark.e2e, pytest.mark.airflow, pytest.mark.postgres]

ENV = "upgrading"
DAG = '''
import pendulum
from airflow import DAG
from airflow.operators.bash import BashOperator

with DAG(dag_id="kept_runs", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    BashOperator(task_id="say", bash_command="echo kept")
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAirgate]:
    home = tmp_path_factory.mktemp("upgrades") / "home"
    dags = home / "buckets" / "data-team" / "dags"
    dags.mkdir(parents=True)
    (dags / "kept_runs.py").write_text(DAG)
    with running_airgate(home, runtime_factory=local_runtime,
                         airflow_database_url=POSTGRES_ADMIN_URL) as running:
        mwaa = running.client()
        mwaa.create_environment(**create_args(ENV, AirflowVersion="2.10.3"))
        wait_for_status(mwaa, ENV, "AVAILABLE", timeout=900)
        yield running
        mwaa.delete_environment(Name=ENV)


def invoke(server: RunningAirgate, method: str, path: str, **more: Any) -> Any:
    return server.client().invoke_rest_api(Name=ENV, Method=method, Path=path, **more)


def environment(server: RunningAirgate) -> dict[str, Any]:
    return server.client().get_environment(Name=ENV)["Environment"]  # type: ignore[no-any-return]


def upgrade(server: RunningAirgate, version: str, **more: Any) -> dict[str, Any]:
    mwaa = server.client()
    mwaa.update_environment(Name=ENV, AirflowVersion=version, **more)
    assert environment(server)["Status"] == "UPDATING"
    return wait_for(lambda: (lambda e: e if e["Status"] in ("AVAILABLE", "UPDATE_FAILED")
                             else None)(environment(server)), 900, "the update to end")


def test_an_airflow_2_user_keeps_in_step_with_iam(server: RunningAirgate) -> None:
    """On Airflow 2 the caller is a Flask-AppBuilder user whose roles are exactly the one IAM
    allows now: narrowing the policy narrows what Airflow lets the same identity do."""
    identities = server.airgate.identities
    identities.create_user("stepper")

    def allow(role: str) -> None:
        identities.put_inline_policy("user", "stepper", "invoke", json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "airflow:InvokeRestApi",
                "Resource": f"arn:aws:airflow:us-east-1:000000000000:role/{ENV}/{role}"}]}))

    mwaa = server.client(identities.create_access_key("stepper"))
    allow("Op")
    created = mwaa.invoke_rest_api(Name=ENV, Method="POST", Path="/variables",
                                   Body={"key": "by-op", "value": "1"})
    assert created["RestApiStatusCode"] == 200
    allow("Viewer")
    with pytest.raises(mwaa.exceptions.RestApiClientException) as refused:
        mwaa.invoke_rest_api(Name=ENV, Method="POST", Path="/variables",
                             Body={"key": "by-viewer", "value": "1"})
    assert refused.value.response["RestApiStatusCode"] == 403
    users = invoke(server, "GET", "/users")["RestApiResponse"]["users"]
    assert [user["roles"] for user in users if user["username"] == "user/stepper"] == [
        [{"name": "Viewer"}]]
    invoke(server, "DELETE", "/variables/by-op")


@pytest.mark.timeout(3000)  # three real upgrades, each a runtime install and a migration
def test_upgrades_in_place_keep_the_metadata(server: RunningAirgate) -> None:
    assert invoke(server, "GET", "/version")["RestApiResponse"]["version"] == "2.10.3"
    invoke(server, "POST", "/variables", Body={"key": "kept", "value": "from 2.10.3"})
    wait_for(lambda: any(d["dag_id"] == "kept_runs" for d in invoke(
        server, "GET", "/dags")["RestApiResponse"]["dags"]), 120, "the DAG to be parsed")
    invoke(server, "POST", "/dags/kept_runs/dagRuns", Body={"dag_run_id": "before"})

    # A downgrade is refused, and nothing changes.
    mwaa = server.client()
    with pytest.raises(mwaa.exceptions.ValidationException) as refused:
        mwaa.update_environment(Name=ENV, AirflowVersion="2.9.2")
    assert refused.value.response["Error"]["Message"].startswith(
        "Airflow can't be downgraded in place from 2.10.3 to 2.9.2")
    assert (environment(server)["Status"], environment(server)["AirflowVersion"]) == (
        "AVAILABLE", "2.10.3")

    # An upgrade whose new Airflow can't run (its scheduler fails on a setting only it
    # reads) fails after the migration: the previous version runs again on its metadata.
    failed = upgrade(server, "3.3.2", AirflowConfigurationOptions={
        "scheduler.scheduler_heartbeat_sec": "not-a-number"})
    assert failed["Status"] == "UPDATE_FAILED"
    assert failed["AirflowVersion"] == "2.10.3"
    assert failed["LastUpdate"]["Error"]["ErrorCode"] == "COMPONENT_CRASHED"
    assert "AirflowConfigurationOptions" not in failed
    assert invoke(server, "GET", "/version")["RestApiResponse"]["version"] == "2.10.3"
    assert invoke(server, "GET", "/variables/kept")["RestApiResponse"]["value"] == \
        "from 2.10.3"

    # A minor upgrade, then to Airflow 3: the variable and the run are still there.
    assert upgrade(server, "2.11.0")["Status"] == "AVAILABLE"
    assert invoke(server, "GET", "/version")["RestApiResponse"]["version"] == "2.11.0"
    assert invoke(server, "GET", "/variables/kept")["RestApiResponse"]["value"] == \
        "from 2.10.3"
    upgraded = upgrade(server, "3.3.2")
    assert (upgraded["Status"], upgraded["AirflowVersion"]) == ("AVAILABLE", "3.3.2"), \
        upgraded.get("LastUpdate")
    assert invoke(server, "GET", "/version")["RestApiResponse"]["version"] == "3.3.2"
    assert invoke(server, "GET", "/variables/kept")["RestApiResponse"]["value"] == \
        "from 2.10.3"
    runs = invoke(server, "GET", "/dags/kept_runs/dagRuns")["RestApiResponse"]["dag_runs"]
    assert [run["dag_run_id"] for run in runs] == ["before"]


def test_nothing_is_left_of_the_snapshots(server: RunningAirgate) -> None:
    import psycopg

    from airgate.environments.metadata import database_name
    from airgate.server import installation_id

    database = database_name(ENV, installation_id(server.settings.home))
    with psycopg.connect(POSTGRES_ADMIN_URL) as connection:
        names = [row[0] for row in connection.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{database[:40]}%",))]
    assert names == [database]
    assert not list(Path(server.settings.home).rglob("*.before-upgrade"))
