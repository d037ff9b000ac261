"""Execution roles end to end: DAGs in environment A, with no connection and no key
configured, act as A's ExecutionRoleArn, as on MWAA. The Amazon provider's
MwaaTriggerDagRunOperator and MwaaDagRunSensor (poking in a task, and deferrable in the
triggerer with aiobotocore) reach environment B through airgate with the role's temporary
credentials, fetched by botocore's own container credentials provider; B's run names A's
role session as its triggering user; taking the permission from the role makes the same
task fail with AccessDenied; the credentials are temporary and refreshed without a restart;
A can't get B's credentials, nor find B's token. B's own execution role is not in airgate's
IAM: B gets nothing, and its setup log says so."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from airgate.server import local_runtime
from tests.e2e.aws_clients import ACCOUNT, policy, role_arn
from tests.e2e.serving import EXAMPLES, ThroughInvokeRestApi
from tests.e2e.test_invoke_rest_api import ROLE_ARN
from tests.e2e.test_runtime import create_args, wait_for, wait_for_status
from tests.support import POSTGRES_ADMIN_URL, running_airgate

# Two environments start, then real runs in both: minutes on a loaded 2-core machine.
pytestmark = [pytest.mark.e2e, pytest.mark.airflow, pytest.mark.postgres,
              pytest.mark.timeout(900)]

A, B = "role-a", "role-b"
EXECUTION_ROLE = "role-a-execution"
SESSION = f"assumed-role/{EXECUTION_ROLE}/{A}"  # how Airflow in B names A's tasks
REMOTE_DAG = "any_bash_command"
MWAA_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "sts:AssumeRole",
    "Principal": {"Service": ["airflow.amazonaws.com", "airflow-env.amazonaws.com"]},
    "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}}}]})
MAY_TRIGGER_B = policy({"Effect": "Allow", "Action": "airflow:InvokeRestApi",
                        "Resource": ROLE_ARN.format(env=B, role="User")})

# Nothing here names an endpoint, a region or a key: the environment provides them.
DAGS = """
import glob
import os

import boto3
import botocore.session
import pendulum
import urllib.request
from airflow.providers.amazon.aws.operators.mwaa import MwaaTriggerDagRunOperator
from airflow.providers.amazon.aws.sensors.mwaa import MwaaDagRunSensor
from airflow.sdk import DAG, task

OTHER = "__OTHER__"
START = pendulum.datetime(2024, 1, 1, tz="UTC")
RUN = "{{ dag_run.conf['run'] }}"

with DAG(dag_id="trigger_and_sense", schedule=None, catchup=False, start_date=START):
    remote = {"external_env_name": OTHER, "external_dag_id": "any_bash_command",
              "external_dag_run_id": RUN, "poke_interval": 2, "max_retries": 150}
    MwaaTriggerDagRunOperator(
        task_id="trigger", env_name=OTHER, trigger_dag_id="any_bash_command",
        trigger_run_id=RUN, logical_date="{{ dag_run.run_after.isoformat() }}",
        conf={"command": "echo from A"}, wait_for_completion=False
    ) >> [MwaaDagRunSensor(task_id="sense", deferrable=True, **remote),
          MwaaDagRunSensor(task_id="poke", timeout=600, **remote)]

with DAG(dag_id="trigger_only", schedule=None, catchup=False, start_date=START):
    MwaaTriggerDagRunOperator(
        task_id="trigger", env_name=OTHER, trigger_dag_id="any_bash_command",
        trigger_run_id=RUN, logical_date="{{ dag_run.run_after.isoformat() }}",
        retries=0)

with DAG(dag_id="credentials_probe", schedule=None, catchup=False, start_date=START):

    @task
    def probe():
        found = {}
        credentials = botocore.session.get_session().get_credentials()
        found["method"] = credentials.method
        first = credentials.get_frozen_credentials()
        second = credentials.get_frozen_credentials()  # near its end: fetched again
        found["keys"] = [first.access_key, second.access_key]
        found["tokens"] = [bool(first.token), bool(second.token)]
        found["caller"] = boto3.client("sts").get_caller_identity()["Arn"]
        # B's credentials with A's token: refused.
        url = os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"].rsplit("/", 1)[0] + "/" + "__B__"
        request = urllib.request.Request(url, headers={
            "Authorization": os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]})
        try:
            urllib.request.urlopen(request, timeout=10)
            found["other"] = 200
        except urllib.error.HTTPError as error:
            found["other"] = error.code
        # Any other token in a process environment this task can read: none.
        own = os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
        others = set()
        for path in glob.glob("/proc/[0-9]*/environ"):
            try:
                text = open(path, "rb").read().decode(errors="replace")
            except OSError:
                continue
            for item in text.split("\\0"):
                if item.startswith("AWS_CONTAINER_AUTHORIZATION_TOKEN="):
                    value = item.partition("=")[2]
                    if value != own:
                        others.add(value[:8])
        found["foreign_tokens"] = sorted(others)
        return found

    probe()
"""


class Roles(ThroughInvokeRestApi):
    """airgate with A (the DAGs above, acting as its execution role) and B (examples)."""

    def run_in_a(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Trigger `dag_id` in A and wait for its run to finish; its run id."""
        run_id = f"{dag_id}-{uuid.uuid4().hex[:8]}"
        self.invoke(A, "POST", f"/dags/{dag_id}/dagRuns",
                    Body={"dag_run_id": run_id, "logical_date": None, "conf": conf or {}})
        wait_for(lambda: self.invoke(A, "GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
                 in ("success", "failed"), 420, f"{dag_id} {run_id} in {A} to finish",
                 interval=1)
        return run_id

    def states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return self.states_in(A, dag_id, run_id)

    def log(self, dag_id: str, run_id: str, task_id: str) -> str:
        return self.log_in(A, dag_id, run_id, task_id)


@pytest.fixture(scope="module")
def roles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Roles]:
    home = tmp_path_factory.mktemp("execution-roles") / "home"
    shutil.copytree(EXAMPLES / "dags", home / "buckets" / B / "dags")
    (home / "buckets" / A / "dags").mkdir(parents=True)
    (home / "buckets" / A / "dags" / "role_dags.py").write_text(
        DAGS.replace("__OTHER__", B).replace("__B__", B))
    # Sessions of 15 minutes: SDKs fetch a new one whenever they look (the refresh test).
    with running_airgate(home, runtime_factory=local_runtime,
                         airflow_database_url=POSTGRES_ADMIN_URL,
                         execution_role_session_seconds=900) as server:
        identities = server.airgate.identities
        identities.create_role(EXECUTION_ROLE, MWAA_TRUST)
        identities.put_inline_policy("role", EXECUTION_ROLE, "trigger-b", MAY_TRIGGER_B)
        roles = Roles(server)
        roles.mwaa.create_environment(**create_args(
            A, SourceBucketArn=f"arn:aws:s3:::{A}", ExecutionRoleArn=role_arn(EXECUTION_ROLE)))
        roles.mwaa.create_environment(**create_args(
            B, SourceBucketArn=f"arn:aws:s3:::{B}",
            ExecutionRoleArn=role_arn("not-in-airgate")))
        for name in (A, B):
            wait_for_status(roles.mwaa, name, "AVAILABLE")
        for name, count in ((A, 3), (B, 2)):
            wait_for(lambda env=name, n=count: roles.invoke(env, "GET", "/dags")[
                "total_entries"] == n, 120, f"the DAGs of {name} to be parsed")
        for dag_id in ("trigger_and_sense", "trigger_only", "credentials_probe"):
            roles.invoke(A, "PATCH", f"/dags/{dag_id}", Body={"is_paused": False})
        roles.invoke(B, "PATCH", f"/dags/{REMOTE_DAG}", Body={"is_paused": False})
        yield roles


def test_a_dag_triggers_and_senses_another_environment_as_its_role(roles: Roles) -> None:
    remote = f"from_a__{uuid.uuid4()}"
    run_id = roles.run_in_a("trigger_and_sense", {"run": remote})
    states = roles.states("trigger_and_sense", run_id)
    assert states == {"trigger": "success", "sense": "success", "poke": "success"}, "\n".join(
        roles.log("trigger_and_sense", run_id, task) for task in states)
    triggered = roles.invoke(B, "GET", f"/dags/{REMOTE_DAG}/dagRuns/{remote}")
    assert (triggered["state"], triggered["triggering_user_name"]) == ("success", SESSION)
    # The sensor deferred: the triggerer (aiobotocore) polled B with the role's credentials.
    assert "Pausing task as DEFERRED" in roles.log("trigger_and_sense", run_id, "sense")


def test_the_task_s_credentials_are_the_role_s_temporary_ones(roles: Roles) -> None:
    run_id = roles.run_in_a("credentials_probe")
    assert roles.states("credentials_probe", run_id) == {"probe": "success"}, roles.log(
        "credentials_probe", run_id, "probe")
    found = roles.invoke(A, "GET", f"/dags/credentials_probe/dagRuns/{run_id}/taskInstances/"
                                   "probe/xcomEntries/return_value")["value"]
    found = found if isinstance(found, dict) else json.loads(found)
    assert found["method"] == "container-role"
    first, second = found["keys"]
    assert first.startswith("ASIA") and second.startswith("ASIA") and first != second
    assert found["tokens"] == [True, True]
    assert found["caller"] == f"arn:aws:sts::{ACCOUNT}:{SESSION}"
    assert found["other"] == 403
    assert found["foreign_tokens"] == []


def test_without_the_permission_the_same_task_is_refused(roles: Roles) -> None:
    identities = roles.server.airgate.identities
    identities.delete_inline_policy("role", EXECUTION_ROLE, "trigger-b")
    try:
        remote = f"refused__{uuid.uuid4()}"
        run_id = roles.run_in_a("trigger_only", {"run": remote})
        assert roles.states("trigger_only", run_id) == {"trigger": "failed"}
        assert "AccessDeniedException" in roles.log("trigger_only", run_id, "trigger")
        with pytest.raises(roles.mwaa.exceptions.RestApiClientException) as missing:
            roles.mwaa.invoke_rest_api(Name=B, Method="GET",
                                       Path=f"/dags/{REMOTE_DAG}/dagRuns/{remote}")
        assert missing.value.response["RestApiStatusCode"] == 404
    finally:
        identities.put_inline_policy("role", EXECUTION_ROLE, "trigger-b", MAY_TRIGGER_B)


def test_an_environment_whose_role_airgate_lacks_gets_nothing(roles: Roles) -> None:
    setup = roles.server.airgate.settings.home / "environments" / B / "logs" / "setup.log"
    missing = role_arn("not-in-airgate")
    assert (f"airgate: execution role {missing} not used: the role {missing} does not exist "
            "in airgate's IAM") in setup.read_text()
