"""The Amazon provider's own MWAA flows, end to end, from a DAG in one real environment
against another, configured only through the first environment's `aws_default` connection
(an IAM user's key, airgate's endpoint_url, `inject_host_prefix: false`):

- `MwaaTriggerDagRunOperator` waiting with `wait_for_completion=True` (botocore's waiter
  polling `/dags/{id}/dagRuns/{run}`, a path over the model's 64 characters) and with
  `deferrable=True` (the waiter run by the triggerer with aiobotocore);
- `MwaaDagRunSensor` and `MwaaTaskSensor`, poking and deferrable, on a run that succeeds and
  on one that fails;
- a task that assumes a Viewer-only role with `StsHook` and calls `MwaaHook.invoke_rest_api`
  with the role's credentials, as the provider's own system test does.

The deferrable tasks are seen deferred (the triggerer holding them) while the other
environment's DAG is paused, so that its run can't finish before they are."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from airgate.server import local_runtime
from tests.e2e.aws_clients import ACCOUNT, policy, role_arn, trust, user_arn
from tests.e2e.serving import EXAMPLES, ThroughInvokeRestApi
from tests.e2e.test_invoke_rest_api import ROLE_ARN
from tests.e2e.test_runtime import create_args, wait_for, wait_for_status
from tests.support import POSTGRES_ADMIN_URL, running_airgate

# Each test waits for real runs in two environments (the first also for both environments to
# start): minutes on a loaded 2-core machine, more than the suite's default 300 s.
pytestmark = [pytest.mark.e2e, pytest.mark.airflow, pytest.mark.postgres, pytest.mark.timeout(900)]

A, B = "team-a", "team-b"  # the DAGs below run in A and call B
RUNNER, VIEWER_ROLE = "team-a-runner", "team-b-viewer"
REMOTE_DAG = "any_bash_command"
FINISHED = ("success", "failed")
ENDED = ("success", "failed", "skipped", "upstream_failed", "removed")

DAGS = """
import boto3
import pendulum
from airflow.providers.amazon.aws.hooks.mwaa import MwaaHook
from airflow.providers.amazon.aws.hooks.sts import StsHook
from airflow.providers.amazon.aws.operators.mwaa import MwaaTriggerDagRunOperator
from airflow.providers.amazon.aws.sensors.mwaa import MwaaDagRunSensor, MwaaTaskSensor
from airflow.sdk import DAG, task

OTHER = "__OTHER__"
START = pendulum.datetime(2024, 1, 1, tz="UTC")
RUN = "{{ dag_run.conf['run'] }}"

for dag_id, waiting in (("trigger_and_wait", {"wait_for_completion": True}),
                        ("trigger_deferrable", {"deferrable": True})):
    with DAG(dag_id=dag_id, schedule=None, catchup=False, start_date=START):
        MwaaTriggerDagRunOperator(
            task_id="trigger", env_name=OTHER, trigger_dag_id="any_bash_command",
            trigger_run_id=RUN,
            # Airflow 3 wants a logical date, and the provider leaves out what is None.
            logical_date="{{ dag_run.run_after.isoformat() }}",
            conf={"command": "{{ dag_run.conf['command'] }}"},
            waiter_delay=2, waiter_max_attempts=150, **waiting)

with DAG(dag_id="wait_elsewhere", schedule=None, catchup=False, start_date=START):
    remote = {"external_env_name": OTHER, "external_dag_id": "any_bash_command",
              "external_dag_run_id": RUN, "poke_interval": 2, "max_retries": 150,
              "timeout": 600}
    MwaaDagRunSensor(task_id="dag_run_poking", **remote)
    MwaaDagRunSensor(task_id="dag_run_deferred", deferrable=True, **remote)
    MwaaTaskSensor(task_id="task_poking", external_task_id="trigger_bash_command", **remote)
    MwaaTaskSensor(task_id="task_deferred", external_task_id="trigger_bash_command",
                   deferrable=True, **remote)

with DAG(dag_id="as_viewer", schedule=None, catchup=False, start_date=START):

    @task
    def as_viewer(dag_run=None):
        # As the provider's system test (example_mwaa.py) does it: StsHook on aws_default,
        # then MwaaHook with a client made from the role's credentials.
        answer = StsHook().conn.assume_role(RoleArn=dag_run.conf["role"],
                                            RoleSessionName="provider-flows")
        credentials = answer["Credentials"]
        session = boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"])
        hook = MwaaHook()
        where = {"endpoint_url": hook.conn_config.endpoint_url,
                 "region_name": hook.region_name, "config": hook.config}
        hook.conn = session.client("mwaa", **where)
        found = {"assumed": answer["AssumedRoleUser"]["Arn"],
                 "caller": session.client("sts", **where).get_caller_identity()["Arn"]}
        dags = hook.invoke_rest_api(env_name=OTHER, path="/dags", method="GET")
        found["dags"] = sorted(dag["dag_id"] for dag in dags["RestApiResponse"]["dags"])
        # Writes a Viewer may not make: a variable (Op's), a DAG run (User's).
        for write, path, body in (
                ("variable", "/variables", {"key": "written_as_viewer", "value": "no"}),
                ("dag_run", "/dags/any_bash_command/dagRuns",
                 # The provider drops None values, and Airflow 3 requires logical_date.
                 {"dag_run_id": dag_run.conf["run"],
                  "logical_date": dag_run.run_after.isoformat()})):
            try:
                hook.invoke_rest_api(env_name=OTHER, path=path, method="POST", body=body)
            except hook.conn.exceptions.RestApiClientException as error:
                found[write] = [error.response["Error"]["Code"],
                                error.response["RestApiStatusCode"]]
        return found

    as_viewer()
"""


class Flows(ThroughInvokeRestApi):
    """airgate with environments A (the DAGs above) and B (examples/dags)."""

    def pause(self, env: str, dag_id: str, paused: bool) -> None:
        self.invoke(env, "PATCH", f"/dags/{dag_id}", Body={"is_paused": paused})

    def trigger(self, env: str, dag_id: str, run_id: str, conf: dict[str, Any]) -> None:
        self.invoke(env, "POST", f"/dags/{dag_id}/dagRuns",
                    Body={"dag_run_id": run_id, "logical_date": None, "conf": conf})

    def run(self, env: str, dag_id: str, run_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.invoke(env, "GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        return answer

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return self.states_in(A, dag_id, run_id)

    def log(self, dag_id: str, run_id: str, task_id: str) -> str:
        return self.log_in(A, dag_id, run_id, task_id)

    def finished_in_a(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """A's run once it has finished: the state of each of its tasks."""
        wait_for(lambda: self.run(A, dag_id, run_id)["state"] in FINISHED, 420,
                 f"{dag_id} {run_id} in {A} to finish", interval=1)
        return self.task_states(dag_id, run_id)

    def logs(self, dag_id: str, run_id: str) -> str:
        """Every task's log of A's run, to say why it failed."""
        def tail(task: str) -> str:
            try:
                return self.log(dag_id, run_id, task)[-3000:]
            except Exception as error:  # a diagnosis, not the outcome
                return f"(no log: {error})"
        return "\n".join(f"--- {task}\n{tail(task)}"
                          for task in self.task_states(dag_id, run_id))

    def wait_for_states(self, dag_id: str, run_id: str, wanted: dict[str, str]) -> None:
        """Until A's run's tasks are in the `wanted` (unfinished) states; a task that ends
        first fails the test at once, with the logs."""
        def reached() -> bool:
            states = self.task_states(dag_id, run_id)
            ended = {task: state for task, state in states.items() if state in ENDED}
            assert not ended, f"{states} while waiting for {wanted}\n" + self.logs(
                dag_id, run_id)
            return states == wanted
        wait_for(reached, 240, f"{dag_id} {run_id} in {A} to be {wanted}", interval=1)


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flows]:
    home = tmp_path_factory.mktemp("provider-flows") / "home"
    shutil.copytree(EXAMPLES / "dags", home / "buckets" / B / "dags")
    (home / "buckets" / A / "dags").mkdir(parents=True)
    (home / "buckets" / A / "dags" / "provider_flows.py").write_text(
        DAGS.replace("__OTHER__", B))
    with running_airgate(home, runtime_factory=local_runtime,
                         airflow_database_url=POSTGRES_ADMIN_URL) as server:
        identities = server.airgate.identities
        # The user whose key is A's aws_default: the User role on B, and the Viewer role.
        identities.create_user(RUNNER)
        identities.put_inline_policy("user", RUNNER, "team-b", policy(
            {"Effect": "Allow", "Action": "airflow:InvokeRestApi",
             "Resource": ROLE_ARN.format(env=B, role="User")},
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn(VIEWER_ROLE)}))
        key = identities.create_access_key(RUNNER)
        identities.create_role(VIEWER_ROLE, trust({"AWS": user_arn(RUNNER)}))
        identities.put_inline_policy("role", VIEWER_ROLE, "view", policy(
            {"Effect": "Allow", "Action": "airflow:InvokeRestApi",
             "Resource": ROLE_ARN.format(env=B, role="Viewer")}))

        flows = Flows(server)
        for name in (A, B):
            flows.mwaa.create_environment(**create_args(
                name, SourceBucketArn=f"arn:aws:s3:::{name}"))
        for name in (A, B):
            wait_for_status(flows.mwaa, name, "AVAILABLE")
        flows.invoke(A, "POST", "/connections", Body={
            "connection_id": "aws_default", "conn_type": "aws",
            "login": key["AccessKeyId"], "password": key["SecretAccessKey"],
            "extra": json.dumps({"region_name": "us-east-1",
                                 "endpoint_url": server.endpoint_url,
                                 "config_kwargs": {"inject_host_prefix": False}})})
        for name, count in ((A, 4), (B, 2)):
            wait_for(lambda env=name, n=count: flows.invoke(env, "GET", "/dags")[
                "total_entries"] == n, 120, f"the DAGs of {name} to be parsed")
        for dag_id in ("trigger_and_wait", "trigger_deferrable", "wait_elsewhere",
                       "as_viewer"):
            flows.pause(A, dag_id, False)
        flows.pause(B, REMOTE_DAG, False)
        yield flows


def long_run_id(what: str) -> str:
    """A run id long enough that the waiter's and sensors' paths are over 64 characters."""
    run_id = f"{what}__{uuid.uuid4()}"
    assert len(f"/dags/{REMOTE_DAG}/dagRuns/{run_id}") > 64
    return run_id


def test_trigger_and_wait_for_completion(flows: Flows) -> None:
    """The operator triggers B's DAG as the IAM user, and botocore's waiter polls the run
    (a path over 64 characters) until it succeeds."""
    remote, token = long_run_id("waited_for"), uuid.uuid4().hex
    flows.trigger(A, "trigger_and_wait", "wait-1", {"run": remote, "command": f"echo {token}"})
    states = flows.finished_in_a("trigger_and_wait", "wait-1")
    assert states == {"trigger": "success"}, flows.logs("trigger_and_wait", "wait-1")
    triggered = flows.run(B, REMOTE_DAG, remote)
    assert (triggered["state"], triggered["triggering_user_name"], triggered["conf"]) == (
        "success", f"user/{RUNNER}", {"command": f"echo {token}"})
    # The operator waited: it ended after B's run did.
    log = flows.log("trigger_and_wait", "wait-1", "trigger")
    assert f"Waiting for Dag run {remote} of Dag {REMOTE_DAG} to complete" in log


def test_trigger_deferrable(flows: Flows) -> None:
    """deferrable=True: the task defers, the triggerer polls B with aiobotocore, and the
    task resumes (execute_complete) when B's run has succeeded."""
    remote = long_run_id("deferred_for")
    flows.pause(B, REMOTE_DAG, True)  # B's run stays queued until the task has deferred
    try:
        flows.trigger(A, "trigger_deferrable", "defer-1",
                      {"run": remote, "command": "echo deferred"})
        flows.wait_for_states("trigger_deferrable", "defer-1", {"trigger": "deferred"})
        assert flows.run(B, REMOTE_DAG, remote)["state"] == "queued"
    finally:
        flows.pause(B, REMOTE_DAG, False)
    states = flows.finished_in_a("trigger_deferrable", "defer-1")
    assert states == {"trigger": "success"}, flows.logs("trigger_deferrable", "defer-1")
    triggered = flows.run(B, REMOTE_DAG, remote)
    assert (triggered["state"], triggered["triggering_user_name"]) == (
        "success", f"user/{RUNNER}")
    log = flows.log("trigger_deferrable", "defer-1", "trigger")
    assert f"Deferring for Dag run {remote} of Dag {REMOTE_DAG} to complete" in log
    # Only the trigger's success event resumes the task in execute_complete.
    assert f"Dag run {remote} of Dag {REMOTE_DAG} completed" in log


SENSORS = ("dag_run_poking", "dag_run_deferred", "task_poking", "task_deferred")


def sense(flows: Flows, a_run: str, command: str) -> dict[str, str | None]:
    """B's run of `command`, held queued (B's DAG paused) until A's four sensors wait for it
    (the poking ones running, the deferrable ones deferred), then let go; the sensors'
    final states."""
    remote = long_run_id(a_run)
    flows.pause(B, REMOTE_DAG, True)
    try:
        flows.trigger(B, REMOTE_DAG, remote, {"command": command})
        flows.trigger(A, "wait_elsewhere", a_run, {"run": remote})
        waiting = {"dag_run_poking": "running", "dag_run_deferred": "deferred",
                   "task_poking": "running", "task_deferred": "deferred"}
        flows.wait_for_states("wait_elsewhere", a_run, waiting)
        assert flows.run(B, REMOTE_DAG, remote)["state"] == "queued"
    finally:
        flows.pause(B, REMOTE_DAG, False)
    return flows.finished_in_a("wait_elsewhere", a_run)


def test_sensors_poking_and_deferrable_see_a_run_succeed(flows: Flows) -> None:
    states = sense(flows, "sense-ok", "echo sensed")
    assert states == dict.fromkeys(SENSORS, "success"), flows.logs("wait_elsewhere",
                                                                   "sense-ok")


def test_sensors_poking_and_deferrable_fail_with_the_run(flows: Flows) -> None:
    states = sense(flows, "sense-failed", "exit 3")
    assert states == dict.fromkeys(SENSORS, "failed"), flows.logs("wait_elsewhere",
                                                                  "sense-failed")
    assert "failed with state: failed" in flows.log("wait_elsewhere", "sense-failed",
                                                    "dag_run_poking")
    assert "Error in MWAA task" in flows.log("wait_elsewhere", "sense-failed",
                                             "task_deferred")


def test_a_task_assumes_a_viewer_role_and_calls_mwaa_with_it(flows: Flows) -> None:
    """StsHook().conn.assume_role as the user, then MwaaHook with the role's credentials:
    it reads B's DAGs as Viewer, and Airflow refuses it writes (403 inside
    RestApiClientException): a variable, and a DAG run, which the User role could make."""
    remote = f"as_viewer__{uuid.uuid4()}"
    flows.trigger(A, "as_viewer", "view-1", {"role": role_arn(VIEWER_ROLE), "run": remote})
    states = flows.finished_in_a("as_viewer", "view-1")
    assert states == {"as_viewer": "success"}, flows.logs("as_viewer", "view-1")
    found = flows.invoke(A, "GET", "/dags/as_viewer/dagRuns/view-1/taskInstances/as_viewer/"
                         "xcomEntries/return_value")["value"]
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/{VIEWER_ROLE}/provider-flows"
    assert found == {"assumed": session, "caller": session,
                     "dags": ["any_bash_command", "data_aware_pipeline"],
                     "variable": ["RestApiClientException", 403],
                     "dag_run": ["RestApiClientException", 403]}
    for written in ("/variables/written_as_viewer", f"/dags/{REMOTE_DAG}/dagRuns/{remote}"):
        with pytest.raises(flows.mwaa.exceptions.RestApiClientException) as refused:
            flows.invoke(B, "GET", written)
        assert refused.value.response["RestApiStatusCode"] == 404
