"""The Airflow 2 examples in examples/airflow2/, run as their users run them (separate
processes configured only by the standard AWS variables) against airgate and a real Airflow
2.10.3 environment serving that folder, its metadata in PostgreSQL and its tasks on Celery
workers (a Redis broker) as on MWAA; Airflow's
Amazon provider in another environment triggering and sensing runs there; and the CLI
endpoint (CreateCliToken) on Airflow 2.

The environment's runtime is installed on first use (uv, from PyPI), so the module's first
test also waits for that install."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import pytest

from airgate.environments.versions import INSTALL_TIMEOUT
from airgate.server import local_runtime
from tests.e2e.serving import EXAMPLES, standard_aws_variables
from tests.e2e.test_examples import run_example
from tests.e2e.test_invoke_rest_api import ROLE_ARN, role_policy
from tests.e2e.test_runtime import create_args, wait_for, wait_for_status
from tests.support import (
    POSTGRES_ADMIN_URL,
    RunningAirgate,
    Samples,
    labels,
    running_airgate,
    scrape_metrics,
)

ENV = "examples2"
VERSION = "2.10.3"
LAKE = "s3://airgate-example-lake/datalake"
CALLERS = {"op-caller": "Op", "viewer-caller": "Viewer", "lambda-caller": "User"}
# Bounds, not expectations (the install takes 20-60 s with PyPI at hand, the start 30-60 s):
# the runtime install is cut at INSTALL_TIMEOUT, then migrating and starting Airflow 2.
READY_TIMEOUT = INSTALL_TIMEOUT + 240
# Whichever test runs first also waits for the environment; each test's own waits (runs of a
# few tasks, CLI commands of about 10 s each) take less than 600 s.
pytestmark = [pytest.mark.e2e,
              pytest.mark.airflow,
              pytest.mark.postgres,
              pytest.mark.broker,
              pytest.mark.timeout(READY_TIMEOUT + 600)]

Served = tuple[RunningAirgate, dict[str, Any]]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("examples2") / "home"
    # The folder as it is: its .airflowignore keeps the clients and the Lambda handler out of
    # Airflow's DAG parsing.
    shutil.copytree(EXAMPLES / "airflow2", home / "buckets" / "data-team" / "dags")
    with running_airgate(home, runtime_factory=local_runtime,
                         airflow_database_url=POSTGRES_ADMIN_URL,
                         broker_url="redis://127.0.0.1:6379/0") as server:
        credentials = {"admin": server.admin}
        for name, role in CALLERS.items():
            server.airgate.identities.create_user(name)
            server.airgate.identities.put_inline_policy("user", name, "invoke", role_policy(
                {"Effect": "Allow", "Action": "airflow:InvokeRestApi",
                 "Resource": ROLE_ARN.format(env=ENV, role=role)}))
            credentials[name] = server.airgate.identities.create_access_key(name)
        admin = server.client()
        admin.create_environment(**create_args(ENV, AirflowVersion=VERSION, Schedulers=2))
        wait_for_status(admin, ENV, "AVAILABLE", timeout=READY_TIMEOUT)
        wait_for(lambda: admin.invoke_rest_api(Name=ENV, Method="GET", Path="/dags")[
            "RestApiResponse"]["total_entries"] == 2, 120, "the example DAGs to be parsed")
        yield server, credentials
        admin.delete_environment(Name=ENV)  # its PostgreSQL database and role with it
        wait_for(lambda: ENV not in admin.list_environments()["Environments"], 120,
                 f"{ENV} to be deleted")


def invoke(server: RunningAirgate, method: str, path: str, env: str = ENV,
           **more: Any) -> Any:
    return server.client().invoke_rest_api(Name=env, Method=method, Path=path,
                                           **more)["RestApiResponse"]


def refusal(server: RunningAirgate, method: str, path: str, credentials: dict[str, str],
            **more: Any) -> dict[str, Any]:
    """The RestApiClientException InvokeRestApi raises for this call, as botocore parses
    it."""
    client = server.client(credentials)
    with pytest.raises(client.exceptions.RestApiClientException) as refused:
        client.invoke_rest_api(Name=ENV, Method=method, Path=path, **more)
    response: dict[str, Any] = refused.value.response
    return response


def test_the_folder_is_served_by_airflow_2(served: Served) -> None:
    """The environment runs Airflow 2.10.3 on /api/v1, and it parsed the two DAGs and
    nothing else of the folder (no import errors from the clients or the Lambda handler)."""
    server, _ = served
    assert invoke(server, "GET", "/version")["version"] == VERSION
    dags = invoke(server, "GET", "/dags")["dags"]
    assert sorted(dag["dag_id"] for dag in dags) == ["any_bash_command", "data_aware_pipeline"]
    assert invoke(server, "GET", "/importErrors")["total_entries"] == 0


# --- administration: variables ------------------------------------------------------------

def test_variables_client_round_trip(served: Served, tmp_path: Path) -> None:
    done = run_example(served, "admin", tmp_path, "airflow2/mwaa_variables_client.py", ENV,
                       "--key", "example_admin", "--value", "v1")
    assert done.returncode == 0, done.stderr
    steps = [line.split(maxsplit=2) for line in done.stdout.splitlines()]
    # Airflow 2 answers a created variable with 200 (Airflow 3: 201), a deletion with 204.
    assert [(step, status) for step, status, _ in steps] == [
        ("create", "RestApiStatusCode=200"), ("read", "RestApiStatusCode=200"),
        ("list", "RestApiStatusCode=200"), ("update", "RestApiStatusCode=200"),
        ("delete", "RestApiStatusCode=204")]
    printed = [json.loads(result) for _, _, result in steps]
    assert printed[0] == {"key": "example_admin", "value": "v1",
                          "description": "created by the example"}
    assert printed[1] == {"key": "example_admin", "value": "v1"}
    assert "example_admin" in printed[2]["keys"]
    assert printed[3] == {"description": "updated by the example"}
    server, _ = served
    assert refusal(server, "GET", "/variables/example_admin",
                   server.admin)["RestApiStatusCode"] == 404  # deleted


def test_op_may_manage_variables_but_viewer_is_refused_by_airflow(
        served: Served, tmp_path: Path) -> None:
    server, credentials = served
    op = run_example(served, "op-caller", tmp_path, "airflow2/mwaa_variables_client.py", ENV,
                     "--key", "example_op")
    assert op.returncode == 0, op.stderr
    viewer = run_example(served, "viewer-caller", tmp_path,
                         "airflow2/mwaa_variables_client.py", ENV, "--key", "example_viewer")
    assert viewer.returncode == 1
    assert viewer.stderr.startswith("error: POST /variables: Airflow refused it with HTTP 403")
    assert "Traceback" not in viewer.stderr
    # What the client turned into that message: Airflow's own 403, inside
    # RestApiClientException.
    refused = refusal(server, "POST", "/variables", credentials["viewer-caller"],
                      Body={"key": "example_viewer", "value": "v"})
    assert refused["Error"]["Code"] == "RestApiClientException"
    assert refused["RestApiStatusCode"] == 403
    assert refused["RestApiResponse"]["title"] == "Forbidden"
    assert refusal(server, "GET", "/variables/example_viewer",
                   server.admin)["RestApiStatusCode"] == 404  # nothing was made


# --- a parameterised trigger ----------------------------------------------------------------

def test_dag_run_client_runs_the_given_command(served: Served, tmp_path: Path) -> None:
    server, _ = served
    token = f"airgate-{uuid.uuid4().hex}"
    done = run_example(served, "op-caller", tmp_path, "airflow2/mwaa_dag_run_client.py", ENV,
                       f"echo {token}", "--poll", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = done.stdout.split(" run ", 1)[1].split()[0]
    assert run_id.startswith("manual__")  # Airflow's default: paths past 64 characters
    assert f"run {run_id}: success (manual, " in done.stdout
    assert f"task trigger_bash_command: success, try 1, ran 'echo {token}'" in done.stdout
    # The task's log, printed by the client through InvokeRestApi, line by line: the
    # command's output is a line of it (BashOperator's "... INFO - <output>").
    printed_log = done.stdout.split("log of trigger_bash_command, try 1:\n", 1)[1]
    assert [line for line in printed_log.splitlines() if line.endswith(f" INFO - {token}")], \
        done.stdout
    # Airflow 2 answers the log as text inside JSON: the Python form of (host, log) pairs.
    path = f"/dags/any_bash_command/dagRuns/{run_id}/taskInstances/trigger_bash_command/logs/1"
    assert len(path) > 64
    log = invoke(server, "GET", path, QueryParameters={"full_content": True})
    assert isinstance(log["content"], str) and log["content"].startswith("[(")
    assert f"INFO - {token}\\n" in log["content"]
    # Airflow saw the caller as itself: its audit log names the IAM identity.
    events = invoke(server, "GET", "/eventLogs", QueryParameters={
        "event": "api.post_dag_run", "dag_id": "any_bash_command", "limit": 100})["event_logs"]
    assert [event["owner"] for event in events if token in (event["extra"] or "")] == [
        "user/op-caller"]


# --- data-aware batching --------------------------------------------------------------------

def pipeline_runs(server: RunningAirgate) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = invoke(server, "GET", "/dags/data_aware_pipeline/dagRuns",
                                        QueryParameters={"order_by": "execution_date"})[
        "dag_runs"]
    return runs


def upstream_files(server: RunningAirgate, run_id: str) -> list[str]:
    """The locations of the dataset events behind a run, as Airflow records them, oldest
    first."""
    answer = invoke(server, "GET",
                    f"/dags/data_aware_pipeline/dagRuns/{run_id}/upstreamDatasetEvents")
    events = sorted(answer["dataset_events"], key=lambda event: event["timestamp"])
    assert answer["total_entries"] == len(events)
    assert {event["dataset_uri"] for event in events} == {LAKE}
    assert all(run_id in [made["dag_run_id"] for made in event["created_dagruns"]]
               for event in events)
    return [event["extra"]["location"] for event in events]


def extract_log(server: RunningAirgate, run_id: str) -> str:
    log = invoke(server, "GET", f"/dags/data_aware_pipeline/dagRuns/{run_id}/taskInstances/"
                 "extract/logs/1", QueryParameters={"full_content": True})
    return str(log["content"])


def lambda_invocations(served: Served, scratch: Path, *keys: str) -> list[dict[str, Any]]:
    """The Lambda handler in its own process, as an identity allowed only Airflow's User
    role, one invocation per S3 PUT notification (the container, and so its boto3 client,
    reused between them as Lambda does); what each invocation returned."""
    script = ("import json, sys\n"
              f"sys.path.insert(0, {str(EXAMPLES / 'airflow2')!r})\n"
              "import dataset_event_lambda as function\n"
              "for key in sys.argv[1:]:\n"
              "    event = {'Records': [{'eventSource': 'aws:s3', 'eventName':"
              " 'ObjectCreated:Put', 's3': {'bucket': {'name': 'airgate-example-lake'},"
              " 'object': {'key': key, 'size': 10}}}]}\n"
              "    print(json.dumps(function.handler(event, None)))\n")
    server, credentials = served
    done = subprocess.run([sys.executable, "-c", script, *keys], capture_output=True,
                          text=True, timeout=120,
                          env={**standard_aws_variables(server, credentials["lambda-caller"],
                                                        scratch),
                               "MWAA_ENVIRONMENT": ENV})
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_dataset_events_are_batched_into_one_run(served: Served, tmp_path: Path) -> None:
    """The blog's pipeline: three dataset events, from the Lambda handler and the dataset
    client, batched by the scheduler into one run of the data-aware pipeline.

    Since Airflow 2.9 events for a paused DAG are recorded but don't queue it, so the first
    two come while the DAG is paused (as created), and the third after unpausing starts the
    run that takes all three. (Unlike Airflow 3, whose first asset-triggered run only takes
    events from after the DAG began scheduling on the asset, Airflow 2's first run takes
    every event on the dataset.) A fourth event later gets a run of its own.
    """
    server, _ = served

    def announce(location: str) -> None:
        done = run_example(served, "op-caller", tmp_path, "airflow2/mwaa_dataset_client.py",
                           ENV, location)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("dataset event ") and f" on {LAKE} at " in done.stdout

    def states() -> list[str]:
        return [run["state"] for run in pipeline_runs(server)]

    assert invoke(server, "GET", "/dags/data_aware_pipeline")["is_paused"] is True
    created = lambda_invocations(served, tmp_path, "datalake/one.csv", "datalake/two%2Bplus.csv")
    assert [answer["dataset_events"][0]["location"] for answer in created] == [
        f"{LAKE}/one.csv", f"{LAKE}/two+plus.csv"]
    queued = refusal(server, "GET", "/dags/data_aware_pipeline/datasets/queuedEvent",
                     server.admin)
    assert queued["RestApiStatusCode"] == 404  # recorded, but nothing queued while paused
    invoke(server, "PATCH", "/dags/data_aware_pipeline", Body={"is_paused": False})
    assert states() == []  # unpausing alone starts nothing
    announce(f"{LAKE}/three.csv")
    wait_for(lambda: states() == ["success"], 240, "one run for the three events")
    first = pipeline_runs(server)[0]["dag_run_id"]
    assert first.startswith("dataset_triggered__")
    three = [f"{LAKE}/one.csv", f"{LAKE}/two+plus.csv", f"{LAKE}/three.csv"]
    assert upstream_files(server, first) == three
    log = extract_log(server, first)
    assert f"batched 3 dataset events: {', '.join(three)}" in log

    announce(f"{LAKE}/four.csv")
    wait_for(lambda: states() == ["success"] * 2, 240, "a run for the fourth event")
    second = pipeline_runs(server)[1]["dag_run_id"]
    assert upstream_files(server, second) == [f"{LAKE}/four.csv"]
    assert f"batched 1 dataset events: {LAKE}/four.csv" in extract_log(server, second)


# --- the Amazon provider, in another environment --------------------------------------------

PROVIDER_DAGS = """
import pendulum
from airflow.providers.amazon.aws.operators.mwaa import MwaaTriggerDagRunOperator
from airflow.providers.amazon.aws.sensors.mwaa import MwaaDagRunSensor, MwaaTaskSensor
from airflow.sdk import DAG

TARGET = "examples2"  # runs Airflow 2: a run needs no logical date, None fields are left out
START = pendulum.datetime(2024, 1, 1, tz="UTC")

with DAG(dag_id="trigger_in_airflow2", schedule=None, catchup=False, start_date=START):
    MwaaTriggerDagRunOperator(
        task_id="trigger_any_bash_command", env_name=TARGET,
        trigger_dag_id="any_bash_command", trigger_run_id="{{ dag_run.conf['run'] }}",
        conf={"command": "echo triggered from another environment"},
        wait_for_completion=True, waiter_delay=2, waiter_max_attempts=150)

with DAG(dag_id="sense_in_airflow2", schedule=None, catchup=False, start_date=START):
    MwaaDagRunSensor(
        task_id="wait_for_run", external_env_name=TARGET, external_dag_id="any_bash_command",
        external_dag_run_id="{{ dag_run.conf['run'] }}", poke_interval=2, timeout=600)
    MwaaTaskSensor(
        task_id="wait_for_task", external_env_name=TARGET, external_dag_id="any_bash_command",
        external_dag_run_id="{{ dag_run.conf['run'] }}",
        external_task_id="trigger_bash_command", poke_interval=2, timeout=600)
"""


@pytest.mark.timeout(READY_TIMEOUT + 1200)  # also creates, runs in and deletes team-a
def test_the_amazon_provider_in_another_environment_triggers_and_senses_airflow2(
        served: Served) -> None:
    """Airflow's Amazon provider, unchanged, in an Airflow 3 environment calling the Airflow 2
    one through airgate as an IAM user allowed only the User role there, configured by
    nothing but its `aws_default` connection: MwaaTriggerDagRunOperator waits for the run it
    made; MwaaDagRunSensor and MwaaTaskSensor poke a run that can't start (its DAG paused)
    until it is let go, then see it succeed. (Sensors in mode="poke": Airflow 3.3's
    scheduler can fail a reschedule-mode sensor on a late executor event, apache/airflow
    issue 71172.)"""
    server, _ = served
    identities = server.airgate.identities
    identities.create_user("team-a-runner")
    identities.put_inline_policy("user", "team-a-runner", "trigger", role_policy(
        {"Effect": "Allow", "Action": "airflow:InvokeRestApi",
         "Resource": ROLE_ARN.format(env=ENV, role="User")}))
    key = identities.create_access_key("team-a-runner")
    dags = server.settings.buckets_dir / "team-a" / "dags"
    dags.mkdir(parents=True)
    (dags / "provider_to_airflow2.py").write_text(PROVIDER_DAGS)

    admin = server.client()
    admin.create_environment(**create_args("team-a", SourceBucketArn="arn:aws:s3:::team-a"))
    try:
        wait_for_status(admin, "team-a", "AVAILABLE")

        def in_a(method: str, path: str, **more: Any) -> Any:
            return invoke(server, method, path, env="team-a", **more)

        def finished(dag: str, run: str) -> str:
            wait_for(lambda: in_a("GET", f"/dags/{dag}/dagRuns/{run}")["state"]
                     in ("success", "failed"), 300, f"the run of {dag} in team-a")
            return str(in_a("GET", f"/dags/{dag}/dagRuns/{run}")["state"])

        def task_log(dag: str, run: str, task: str) -> list[str]:
            log = in_a("GET", f"/dags/{dag}/dagRuns/{run}/taskInstances/{task}/logs/1",
                       QueryParameters={"full_content": True})
            return [str(line.get("event")) for line in log["content"]]

        in_a("POST", "/connections", Body={
            "connection_id": "aws_default", "conn_type": "aws",
            "login": key["AccessKeyId"], "password": key["SecretAccessKey"],
            "extra": json.dumps({"region_name": "us-east-1",
                                 "endpoint_url": server.endpoint_url,
                                 "config_kwargs": {"inject_host_prefix": False}})})
        wait_for(lambda: in_a("GET", "/dags")["total_entries"] == 2, 120, "team-a's DAGs")
        for dag in ("trigger_in_airflow2", "sense_in_airflow2"):
            in_a("PATCH", f"/dags/{dag}", Body={"is_paused": False})

        # MwaaTriggerDagRunOperator, waiting for completion (mwaa_dag_run_complete waiter):
        # a long run id, so the waiter's path is past the model's 64 characters.
        invoke(server, "PATCH", "/dags/any_bash_command", Body={"is_paused": False})
        run = f"triggered_from_team_a__{uuid.uuid4()}"
        in_a("POST", "/dags/trigger_in_airflow2/dagRuns",
             Body={"dag_run_id": "a-1", "logical_date": None, "conf": {"run": run}})
        if finished("trigger_in_airflow2", "a-1") != "success":
            pytest.fail("the triggering run failed: " + " | ".join(task_log(
                "trigger_in_airflow2", "a-1", "trigger_any_bash_command"))[-3000:])
        triggered = invoke(server, "GET", f"/dags/any_bash_command/dagRuns/{run}")
        assert triggered["state"] == "success"
        assert triggered["conf"] == {"command": "echo triggered from another environment"}
        trigger_task = in_a("GET", "/dags/trigger_in_airflow2/dagRuns/a-1/taskInstances/"
                            "trigger_any_bash_command")
        # It waited for the end (both dates from this machine's clock).
        assert datetime.fromisoformat(trigger_task["end_date"]) \
            >= datetime.fromisoformat(triggered["end_date"])
        events = invoke(server, "GET", "/eventLogs", QueryParameters={
            "event": "api.post_dag_run", "owner": "user/team-a-runner", "limit": 100})
        assert [json.loads(event["extra"])["dag_run_id"] for event in events["event_logs"]] \
            == [run]  # Airflow 2 saw the IAM user, with the User role IAM allowed

        # MwaaDagRunSensor and MwaaTaskSensor on a run that waits in the queue until the
        # DAG is unpaused.
        invoke(server, "PATCH", "/dags/any_bash_command", Body={"is_paused": True})
        sensed = invoke(server, "POST", "/dags/any_bash_command/dagRuns",
                        Body={"conf": {"command": "echo sensed"}})["dag_run_id"]
        in_a("POST", "/dags/sense_in_airflow2/dagRuns",
             Body={"dag_run_id": "s-1", "logical_date": None, "conf": {"run": sensed}})

        def pokes(task: str) -> int:
            try:
                lines = task_log("sense_in_airflow2", "s-1", task)
            except botocore.exceptions.ClientError as error:
                if error.response.get("RestApiStatusCode") != 404:
                    raise
                return 0  # not started yet
            return sum(1 for line in lines if line.startswith("Poking for "))

        wait_for(lambda: pokes("wait_for_run") >= 2 and pokes("wait_for_task") >= 2, 240,
                 "both sensors to poke the queued run twice")
        assert invoke(server, "GET", f"/dags/any_bash_command/dagRuns/{sensed}")["state"] \
            == "queued"
        sensors = in_a("GET", "/dags/sense_in_airflow2/dagRuns/s-1/taskInstances")
        assert {task["task_id"]: task["state"] for task in sensors["task_instances"]} == {
            "wait_for_run": "running", "wait_for_task": "running"}
        invoke(server, "PATCH", "/dags/any_bash_command", Body={"is_paused": False})
        if finished("sense_in_airflow2", "s-1") != "success":
            pytest.fail("the sensing run failed: " + " | ".join(
                task_log("sense_in_airflow2", "s-1", "wait_for_run")
                + task_log("sense_in_airflow2", "s-1", "wait_for_task"))[-3000:])
        assert invoke(server, "GET", f"/dags/any_bash_command/dagRuns/{sensed}")["state"] \
            == "success"
        assert "Success criteria met. Exiting." in task_log("sense_in_airflow2", "s-1",
                                                            "wait_for_task")
    finally:
        admin.delete_environment(Name="team-a")
        wait_for(lambda: "team-a" not in admin.list_environments()["Environments"], 120,
                 "team-a to be deleted")


# --- the CLI endpoint (CreateCliToken) ------------------------------------------------------

def cli(token: dict[str, Any], command: str) -> httpx.Response:
    return httpx.post(f"http://{token['WebServerHostname']}/aws_mwaa/cli", content=command,
                      timeout=120, headers={"Authorization": f"Bearer {token['CliToken']}",
                                            "Content-Type": "text/plain"})


def output(answer: httpx.Response) -> tuple[str, str]:
    assert answer.status_code == 200, answer.text
    document = answer.json()
    return (base64.b64decode(document["stdout"]).decode(),
            base64.b64decode(document["stderr"]).decode())


def test_cli_commands_run_in_the_airflow_2_environment(served: Served) -> None:
    """`POST /aws_mwaa/cli` runs Airflow 2's own CLI in the environment: what it lists,
    sets and triggers is what its REST API then shows; commands outside MWAA's allow-list
    (among them Airflow 2's `users`) are refused before anything runs."""
    server, _ = served
    token = server.client().create_cli_token(Name=ENV)

    stdout, _ = output(cli(token, "dags list -o json"))
    listed = json.loads(stdout[stdout.index("[{"):])  # after any warnings Airflow prints
    assert sorted(dag["dag_id"] for dag in listed) == ["any_bash_command",
                                                       "data_aware_pipeline"]

    value = f"from-the-cli-{uuid.uuid4().hex[:8]}"
    stdout, _ = output(cli(token, f"variables set cli_variable {value}"))
    assert "Variable cli_variable created" in stdout
    stdout, _ = output(cli(token, "variables get cli_variable"))
    assert stdout.strip().splitlines()[-1] == value
    assert invoke(server, "GET", "/variables/cli_variable")["value"] == value

    output(cli(token, "dags trigger any_bash_command --run-id from-cli "
                      "-c '{\"command\": \"echo hi\"}'"))
    run = invoke(server, "GET", "/dags/any_bash_command/dagRuns/from-cli")
    assert (run["conf"], run["run_type"]) == ({"command": "echo hi"}, "manual")

    for command, reason in (("db reset -y", "'db' is not supported"),
                            ("users create -u x -r Admin", "'users' is not supported"),
                            ("dags backfill any_bash_command", "'dags backfill' is not supported"),
                            ("variables set x $(id)", "Shell syntax is not allowed")):
        refused = cli(token, command)
        assert refused.status_code == 400, refused.text
        assert reason in refused.json()["error"], refused.json()
    # Nothing ran: the variable and the database are still there.
    assert invoke(server, "GET", "/variables/cli_variable")["value"] == value


def test_airflow_2_s_metrics_arrive_with_the_environment_s_name(served: Served) -> None:
    """Airflow 2 sends StatsD as Airflow 3 does: re-exposed at /metrics with its name, its
    tags as labels; airgate's families cover its components."""
    server, _ = served
    here = {"environment": ENV}
    pool = labels(**here, pool_name="default_pool")

    def arrived() -> Samples | None:
        samples = scrape_metrics(server.endpoint_url)
        return samples if pool in samples.get("airflow_pool_open_slots", {}) and labels(
            **here) in samples.get("airflow_scheduler_heartbeat_total", {}) else None

    samples = wait_for(arrived, 90, "Airflow 2's StatsD metrics")
    assert samples["airflow_scheduler_heartbeat_total"][labels(**here)] >= 1
    up = {dict(key)["component"]: value for key, value in
          samples["airgate_environment_component_up"].items()
          if dict(key)["environment"] == ENV}
    # Schedulers=2 on PostgreSQL: Airflow 2's HA scheduling, both running, neither restarted;
    # MinWorkers (1) Celery worker.
    assert up == {"webserver": 1, "scheduler": 1, "scheduler-2": 1, "triggerer": 1,
                  "worker-1": 1}
    assert samples["airgate_environment_workers"][labels(**here)] == 1
    assert {value for key, value in samples["airgate_environment_component_restarts_total"]
            .items() if dict(key)["environment"] == ENV} == {0}
    assert samples["airgate_environment_status"][labels(**here, status="AVAILABLE")] == 1
