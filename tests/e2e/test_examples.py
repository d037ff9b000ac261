"""The examples in examples/, run as their users run them (separate processes configured only
by the standard AWS variables) against airgate and a real Airflow environment that serves
examples/dags."""

from __future__ import annotations

import base64
import json
import logging
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from airgate.server import local_runtime
from tests.browser import headless_chromium, screenshot
from tests.e2e.aws_clients import ACCOUNT, role_arn, trust, user_arn
from tests.e2e.serving import EXAMPLES, standard_aws_variables
from tests.e2e.test_invoke_rest_api import ROLE_ARN, role_policy
from tests.e2e.test_runtime import create_args, wait_for, wait_for_status
from tests.prometheus import prometheus_scraping, query
from tests.storm import asset_event_storm
from tests.support import (
    POSTGRES_ADMIN_URL,
    RunningAirgate,
    Samples,
    free_port,
    labels,
    running_airgate,
    scrape_metrics,
)

pytestmark = [pytest.mark.e2e, pytest.mark.airflow, pytest.mark.postgres]

ENV = "examples"
LAKE = "s3://airgate-example-lake/datalake"
CALLERS = {"op-caller": "Op", "viewer-caller": "Viewer"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningAirgate,
                                                                      dict[str, Any]]]:
    home = tmp_path_factory.mktemp("examples") / "home"
    shutil.copytree(EXAMPLES / "dags", home / "buckets" / "data-team" / "dags")
    # PostgreSQL metadata, as on MWAA: SQLite's single writer turns an event storm into
    # "database is locked" errors inside Airflow.
    with running_airgate(home, runtime_factory=local_runtime,
                         airflow_database_url=POSTGRES_ADMIN_URL) as server:
        credentials = {"admin": server.admin}
        for name, role in CALLERS.items():
            server.airgate.identities.create_user(name)
            server.airgate.identities.put_inline_policy("user", name, "invoke", role_policy(
                {"Effect": "Allow", "Action": "airflow:InvokeRestApi",
                 "Resource": ROLE_ARN.format(env=ENV, role=role)}))
            credentials[name] = server.airgate.identities.create_access_key(name)
        admin = server.client()
        admin.create_environment(**create_args(ENV))
        wait_for_status(admin, ENV, "AVAILABLE")
        wait_for(lambda: admin.invoke_rest_api(Name=ENV, Method="GET", Path="/dags")[
            "RestApiResponse"]["total_entries"] == 2, 90, "the example DAGs to be parsed")
        yield server, credentials


def run_example(served: tuple[RunningAirgate, dict[str, Any]], caller: str, scratch: Path,
                script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    server, credentials = served
    variables = standard_aws_variables(server, credentials[caller], scratch)
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args],
                          env={**variables, **env}, capture_output=True, text=True,
                          timeout=300)


def invoke(server: RunningAirgate, method: str, path: str, **more: Any) -> Any:
    return server.client().invoke_rest_api(Name=ENV, Method=method, Path=path,
                                           **more)["RestApiResponse"]


def assert_not_found(server: RunningAirgate, path: str) -> None:
    """Airflow answers `path` with 404, passed on as RestApiClientException."""
    client = server.client()
    with pytest.raises(client.exceptions.RestApiClientException) as missing:
        client.invoke_rest_api(Name=ENV, Method="GET", Path=path)
    assert missing.value.response["RestApiStatusCode"] == 404


# --- administration: variables ------------------------------------------------------------

def test_variables_client_round_trip(served: tuple[RunningAirgate, dict[str, Any]],
                                     tmp_path: Path) -> None:
    done = run_example(served, "admin", tmp_path, "clients/mwaa_variables_client.py", ENV,
                       "--key", "example_admin", "--value", "v1")
    assert done.returncode == 0, done.stderr
    steps = [line.split()[0] for line in done.stdout.splitlines()]
    assert steps == ["create", "read", "list", "update", "delete"]
    assert "RestApiStatusCode=201" in done.stdout.splitlines()[0]
    assert '"updated by the example"' in done.stdout
    assert '"example_admin"' in done.stdout.splitlines()[2]  # listed
    assert_not_found(served[0], "/variables/example_admin")  # deleted


def test_op_may_manage_variables_but_viewer_is_refused_by_airflow(
        served: tuple[RunningAirgate, dict[str, Any]], tmp_path: Path) -> None:
    op = run_example(served, "op-caller", tmp_path, "clients/mwaa_variables_client.py", ENV,
                     "--key", "example_op")
    assert op.returncode == 0, op.stderr
    viewer = run_example(served, "viewer-caller", tmp_path,
                         "clients/mwaa_variables_client.py", ENV, "--key", "example_viewer")
    assert viewer.returncode == 1
    assert "Airflow refused it with HTTP 403" in viewer.stderr
    assert "Traceback" not in viewer.stderr


# --- a role assumed with STS -----------------------------------------------------------------

def test_assume_role_client_reads_as_viewer_and_is_refused_a_write(
        served: tuple[RunningAirgate, dict[str, Any]], tmp_path: Path) -> None:
    """The client assumes a role allowed only Airflow's Viewer role (its STS endpoint from
    AWS_ENDPOINT_URL_STS): it is that role's session, reads the DAGs, and Airflow refuses
    its write. A user the role's trust policy doesn't name is refused by STS."""
    server, credentials = served
    identities = server.airgate.identities
    identities.create_user("role-taker")
    identities.put_inline_policy("user", "role-taker", "assume", role_policy(
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn("examples-viewer")}))
    credentials["role-taker"] = identities.create_access_key("role-taker")
    identities.create_role("examples-viewer", trust({"AWS": user_arn("role-taker")}))
    identities.put_inline_policy("role", "examples-viewer", "view", role_policy(
        {"Effect": "Allow", "Action": "airflow:InvokeRestApi",
         "Resource": ROLE_ARN.format(env=ENV, role="Viewer")}))

    done = run_example(served, "role-taker", tmp_path, "clients/mwaa_assume_role_client.py",
                       ENV, role_arn("examples-viewer"), "--session-name", "example-run")
    assert done.returncode == 0, done.stderr
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/examples-viewer/example-run"
    lines = done.stdout.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["assumed", "caller", "dags", "write"]
    assert lines[0].startswith(f"assumed: {session} (until ")
    assert lines[1:3] == [f"caller:  {session}",
                          "dags:    2: any_bash_command, data_aware_pipeline"]
    assert lines[3].startswith("write:   POST /variables refused by Airflow with HTTP 403: ")
    assert_not_found(server, "/variables/assume_role_example")  # nothing was written

    refused = run_example(served, "viewer-caller", tmp_path,
                          "clients/mwaa_assume_role_client.py", ENV, role_arn("examples-viewer"))
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        f"error: sts assume-role {role_arn('examples-viewer')}: AccessDenied: "), refused.stderr
    assert "Traceback" not in refused.stderr


# --- a parameterised trigger ----------------------------------------------------------------

def test_dag_run_client_runs_the_given_command(served: tuple[RunningAirgate, dict[str, Any]],
                                               tmp_path: Path) -> None:
    server, _ = served
    token = f"airgate-{uuid.uuid4().hex}"
    done = run_example(served, "op-caller", tmp_path, "clients/mwaa_dag_run_client.py", ENV,
                       f"echo {token}", "--poll", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert ": success (triggered by user/op-caller)" in done.stdout
    assert f"ran 'echo {token}'" in done.stdout
    # The task's log, printed by the client through InvokeRestApi (a path over 64
    # characters: the run id is Airflow's default): the command's output is a line of it.
    run_id = done.stdout.split(" run ", 1)[1].split()[0]
    assert run_id.startswith("manual__")
    printed_log = done.stdout.split("log of trigger_bash_command, try 1:\n", 1)[1]
    assert [line for line in printed_log.splitlines() if line.endswith(f" {token}")], \
        done.stdout
    log = invoke(server, "GET", f"/dags/any_bash_command/dagRuns/{run_id}/taskInstances/"
                 "trigger_bash_command/logs/1", QueryParameters={"full_content": True})
    assert token in [entry.get("event") for entry in log["content"]]


def run_a_dag(server: RunningAirgate) -> None:
    """A run of any_bash_command, to its success."""
    invoke(server, "PATCH", "/dags/any_bash_command", Body={"is_paused": False})
    run = invoke(server, "POST", "/dags/any_bash_command/dagRuns",
                 Body={"logical_date": None, "conf": {"command": "echo metrics"}})
    path = f"/dags/any_bash_command/dagRuns/{run['dag_run_id']}"
    wait_for(lambda: invoke(server, "GET", path)["state"] == "success", 120,
             "the DAG run to succeed")


def test_metrics_show_the_environment_its_components_and_airflow_s_own(
        served: tuple[RunningAirgate, dict[str, Any]]) -> None:
    """After a DAG run: airgate's families for the environment, and Airflow's StatsD
    metrics re-exposed with its name (statsd_exporter's names, Airflow's tags as labels)."""
    server, _ = served
    run_a_dag(server)
    here = {"environment": ENV}
    dag = {**here, "dag_id": "any_bash_command"}

    def arrived() -> Samples | None:
        samples = scrape_metrics(server.endpoint_url)
        wanted = ("airflow_ti_successes_total", "airflow_dagrun_duration_success_seconds_count")
        found = all(any(dict(key).items() >= dag.items() for key in samples.get(name, {}))
                    for name in wanted)
        return samples if found else None

    samples = wait_for(arrived, 60, "Airflow's StatsD metrics of the run")
    assert samples["airgate_environment_status"][labels(**here, status="AVAILABLE")] == 1
    components = {dict(key)["component"]: value for key, value in
                  samples["airgate_environment_component_up"].items()
                  if dict(key)["environment"] == ENV}
    assert components == {"api-server": 1, "scheduler": 1, "dag-processor": 1, "triggerer": 1}
    restarts = [value for key, value in
                samples["airgate_environment_component_restarts_total"].items()
                if dict(key)["environment"] == ENV]
    assert restarts == [0, 0, 0, 0]
    assert samples["airgate_rest_api_calls_total"][labels(**here, method="POST",
                                                          status="200")] >= 1
    assert samples["airflow_scheduler_heartbeat_total"][labels(**here)] >= 1
    successes = [value for key, value in samples["airflow_ti_successes_total"].items()
                 if dict(key).items() >= dag.items()]
    assert sum(successes) >= 1
    # Airflow's unbounded tags are switched off: no run, task or try ever becomes a label.
    every_label = {name for series in samples.values() for key in series for name, _ in key}
    assert not every_label & {"run_id", "task_id", "try_number", "job_id", "map_index"}


# --- the CLI endpoint, as clients in the wild call it ----------------------------------------

def test_the_cli_endpoint_answers_with_a_trailing_slash(
        served: tuple[RunningAirgate, dict[str, Any]]) -> None:
    """POST /aws_mwaa/cli/ is served as /aws_mwaa/cli is: the command runs in the
    environment, and a request without a token gets the same refusal."""
    server, _ = served
    token = server.client().create_cli_token(Name=ENV)
    listed, refusals = {}, {}
    for path in ("/aws_mwaa/cli", "/aws_mwaa/cli/"):
        url = f"http://{token['WebServerHostname']}{path}"
        answer = httpx.post(url, content="dags list -o json", timeout=120,
                            headers={"Authorization": f"Bearer {token['CliToken']}",
                                     "Content-Type": "text/plain"})
        assert answer.status_code == 200, answer.text
        stdout = base64.b64decode(answer.json()["stdout"]).decode()
        listed[path] = sorted(dag["dag_id"] for dag in json.loads(stdout[stdout.index("[{"):]))
        refused = httpx.post(url, content="dags list", timeout=30)
        refusals[path] = (refused.status_code, refused.json())
    assert listed["/aws_mwaa/cli/"] == listed["/aws_mwaa/cli"] == [
        "any_bash_command", "data_aware_pipeline"]
    assert refusals["/aws_mwaa/cli/"] == refusals["/aws_mwaa/cli"]
    assert refusals["/aws_mwaa/cli"][0] == 401


# --- data-aware batching --------------------------------------------------------------------

def pipeline_runs(server: RunningAirgate) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = invoke(server, "GET", "/dags/data_aware_pipeline/dagRuns",
                                        QueryParameters={"order_by": "run_after"})["dag_runs"]
    return runs


def batched_files(server: RunningAirgate, run_id: str) -> tuple[list[str], str]:
    """What the run's get_resources collected, and its extract task's log."""
    base = f"/dags/data_aware_pipeline/dagRuns/{run_id}/taskInstances"
    xcom = invoke(server, "GET", f"{base}/get_resources/xcomEntries/return_value")
    log = invoke(server, "GET", f"{base}/extract/logs/1",
                 QueryParameters={"full_content": True})
    return list(xcom["value"]), json.dumps(log["content"])


def lambda_invocations(served: tuple[RunningAirgate, dict[str, Any]], scratch: Path,
                       *keys: str) -> None:
    """The Lambda handler in its own process, one invocation per S3 PUT notification (the
    container, and so its boto3 client, reused between them as Lambda does)."""
    script = ("import json, sys\n"
              f"sys.path.insert(0, {str(EXAMPLES / 'lambda')!r})\n"
              "import dataset_event_lambda as function\n"
              "for key in sys.argv[1:]:\n"
              "    event = {'Records': [{'eventSource': 'aws:s3', 'eventName':"
              " 'ObjectCreated:Put', 's3': {'bucket': {'name': 'airgate-example-lake'},"
              " 'object': {'key': key, 'size': 10}}}]}\n"
              "    print(json.dumps(function.handler(event, None)))\n")
    server, credentials = served
    done = subprocess.run([sys.executable, "-c", script, *keys], capture_output=True,
                          text=True, timeout=120,
                          env={**standard_aws_variables(server, credentials["op-caller"], scratch),
                               "MWAA_ENVIRONMENT": ENV})
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == len(keys)


def test_asset_events_are_batched_into_runs(served: tuple[RunningAirgate, dict[str, Any]],
                                            tmp_path: Path) -> None:
    """Events recorded while the DAG is paused are all taken by the first run after it is
    unpaused; a later event gets a run of its own.

    Since Airflow 2.9 events for a paused DAG don't queue it, so unpausing alone starts
    nothing: the run comes with the next event and takes the earlier ones with it. Two
    events (the Lambda handler) therefore come while paused, the third (the dataset client)
    after unpausing. A first run comes before, because Airflow's first asset-triggered run
    of a DAG without catchup only takes events after the DAG began scheduling on the asset.
    """
    server, _ = served

    def announce(location: str) -> None:
        done = run_example(served, "op-caller", tmp_path, "clients/mwaa_dataset_client.py",
                           ENV, location)
        assert done.returncode == 0, done.stderr

    def states() -> list[str]:
        return [run["state"] for run in pipeline_runs(server)]

    invoke(server, "PATCH", "/dags/data_aware_pipeline", Body={"is_paused": False})
    announce(f"{LAKE}/zero.csv")
    wait_for(lambda: states() == ["success"], 180, "the first run")

    invoke(server, "PATCH", "/dags/data_aware_pipeline", Body={"is_paused": True})
    lambda_invocations(served, tmp_path, "datalake/one.csv", "datalake/two%2Bplus.csv")
    invoke(server, "PATCH", "/dags/data_aware_pipeline", Body={"is_paused": False})
    assert states() == ["success"]  # unpausing alone starts nothing
    announce(f"{LAKE}/three.csv")
    wait_for(lambda: states() == ["success"] * 2, 180, "one run for the three events")
    files, log = batched_files(server, pipeline_runs(server)[1]["dag_run_id"])
    three = [f"{LAKE}/one.csv", f"{LAKE}/two+plus.csv", f"{LAKE}/three.csv"]
    assert files == three
    assert "batched 3 asset events" in log and all(file in log for file in three)

    announce(f"{LAKE}/four.csv")
    wait_for(lambda: states() == ["success"] * 3, 180, "a run for the fourth event")
    assert batched_files(server, pipeline_runs(server)[2]["dag_run_id"])[0] == [
        f"{LAKE}/four.csv"]


# --- one environment triggering a DAG in another -----------------------------------------

TRIGGERING_DAG = """
import pendulum
from airflow.providers.amazon.aws.operators.mwaa import MwaaTriggerDagRunOperator
from airflow.sdk import DAG

with DAG(dag_id="trigger_elsewhere", schedule=None, catchup=False,
         start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    MwaaTriggerDagRunOperator(
        task_id="trigger_any_bash_command", env_name="examples",
        trigger_dag_id="any_bash_command", trigger_run_id="{{ dag_run.conf['run'] }}",
        # Airflow 3 wants a logical date, and the provider leaves out what is None.
        logical_date="{{ dag_run.run_after.isoformat() }}",
        conf={"command": "echo triggered from another environment"},
        wait_for_completion=True, waiter_delay=2, waiter_max_attempts=90)
"""


def test_a_dag_in_one_environment_triggers_a_dag_in_another(
        served: tuple[RunningAirgate, dict[str, Any]]) -> None:
    """Airflow's Amazon provider, unchanged, in one environment calling another through
    airgate as a least-privileged IAM user; only the AWS connection says where MWAA is."""
    server, _ = served
    identities = server.airgate.identities
    identities.create_user("team-a-runner")
    identities.put_inline_policy("user", "team-a-runner", "trigger", role_policy(
        {"Effect": "Allow", "Action": "airflow:InvokeRestApi",
         "Resource": ROLE_ARN.format(env=ENV, role="User")}))
    key = identities.create_access_key("team-a-runner")
    dags = server.settings.buckets_dir / "team-a" / "dags"
    dags.mkdir(parents=True)
    (dags / "trigger_elsewhere.py").write_text(TRIGGERING_DAG)

    admin = server.client()
    admin.create_environment(**create_args("team-a", SourceBucketArn="arn:aws:s3:::team-a"))
    try:
        wait_for_status(admin, "team-a", "AVAILABLE")

        def in_a(method: str, path: str, **more: Any) -> Any:
            return admin.invoke_rest_api(Name="team-a", Method=method, Path=path,
                                         **more)["RestApiResponse"]

        in_a("POST", "/connections", Body={
            "connection_id": "aws_default", "conn_type": "aws",
            "login": key["AccessKeyId"], "password": key["SecretAccessKey"],
            "extra": json.dumps({"region_name": "us-east-1",
                                 "endpoint_url": server.endpoint_url,
                                 "config_kwargs": {"inject_host_prefix": False}})})
        wait_for(lambda: in_a("GET", "/dags")["total_entries"] == 1, 90, "the DAG in team-a")
        in_a("PATCH", "/dags/trigger_elsewhere", Body={"is_paused": False})
        invoke(server, "PATCH", "/dags/any_bash_command", Body={"is_paused": False})
        # A long run id: the waiter's path is past the model's 64 characters, as with
        # Airflow's default run ids.
        run = f"triggered_from_team_a__{uuid.uuid4()}"
        in_a("POST", "/dags/trigger_elsewhere/dagRuns",
             Body={"dag_run_id": "a-1", "logical_date": None, "conf": {"run": run}})
        wait_for(lambda: in_a("GET", "/dags/trigger_elsewhere/dagRuns/a-1")["state"]
                 in ("success", "failed"), 240, "the triggering run")
        if in_a("GET", "/dags/trigger_elsewhere/dagRuns/a-1")["state"] != "success":
            log = in_a("GET", "/dags/trigger_elsewhere/dagRuns/a-1/taskInstances/"
                       "trigger_any_bash_command/logs/1", QueryParameters={"full_content": True})
            pytest.fail("the triggering run failed: " + " | ".join(
                str(line.get("event")) for line in log["content"])[-3000:])
        triggered = invoke(server, "GET", f"/dags/any_bash_command/dagRuns/{run}")
        assert triggered["state"] == "success"
        assert triggered["triggering_user_name"] == "user/team-a-runner"
    finally:
        admin.delete_environment(Name="team-a")
        wait_for(lambda: "team-a" not in admin.list_environments()["Environments"], 120,
                 "team-a to be deleted")


# --- an event storm -------------------------------------------------------------------------

def test_an_event_storm_is_admitted_recorded_and_batched(
        served: tuple[RunningAirgate, dict[str, Any]], caplog: pytest.LogCaptureFixture) -> None:
    """1,000 asset events from 50 concurrent boto3 clients: admission control throttles
    them, botocore's standard retries get every one through, Airflow records all of them
    without a single 5xx, and its scheduler turns them into far fewer runs."""
    server, credentials = served
    caplog.set_level(logging.INFO, logger="airgate.access")
    lake = next(asset for asset in invoke(server, "GET", "/assets")["assets"]
                if asset["uri"] == LAKE)
    invoke(server, "PATCH", "/dags/data_aware_pipeline", Body={"is_paused": False})

    def recorded() -> int:
        answer = invoke(server, "GET", "/assets/events",
                        QueryParameters={"asset_id": lake["id"], "limit": 1})
        return int(answer["total_entries"])

    events_before, runs_before = recorded(), len(pipeline_runs(server))
    storm = asset_event_storm(server.endpoint_url, credentials["op-caller"], ENV, lake["id"],
                              events=1000, callers=50, location=f"{LAKE}/storm")
    assert storm.failures == [], storm.failures[:5]
    assert storm.throttled > 0  # admission control did throttle the storm
    assert recorded() - events_before == 1000

    def settled() -> bool:
        """No event waiting to start a run, and no run in progress."""
        try:
            queued = invoke(server, "GET", "/dags/data_aware_pipeline/assets/queuedEvents")
        except server.client().exceptions.RestApiClientException as error:
            if error.response["RestApiStatusCode"] != 404:  # 404: nothing is queued
                raise
        else:
            if queued["total_entries"]:
                return False
        return all(run["state"] in ("success", "failed") for run in pipeline_runs(server))

    wait_for(settled, 300, "the storm's runs to finish")
    runs = pipeline_runs(server)[runs_before:]
    assert 1 <= len(runs) < 100
    assert all(run["state"] == "success" for run in runs)

    # Read last: each access-log line is written just after its answer is sent.
    invocations = [record for record in caplog.records
                   if getattr(record, "fields", {}).get("operation") == "InvokeRestApi"]
    statuses = [record.fields.get("rest_api_status") for record in invocations]  # type: ignore[attr-defined]
    assert statuses.count(200) >= 1000
    assert not [status for status in statuses if status is not None and status >= 500]
    throttled = [r for r in invocations
                 if r.fields.get("error") == "ThrottlingException"]  # type: ignore[attr-defined]
    assert len(throttled) == storm.throttled  # one access-log line per 429 callers saw



# --- the Grafana dashboard's queries, on a real Prometheus scraping this run -----------------

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "airgate.json"
# Panels with nothing to show until it happens (no call of this run need be throttled).
ONLY_WHEN_IT_HAPPENS = {"Throttled InvokeRestApi calls"}
PICTURED = ("InvokeRestApi calls by outcome", "Airflow's REST API latency",
            "Scheduler heartbeats", "All API calls by operation")


@pytest.mark.browser
def test_the_dashboard_s_queries_answer_from_a_real_scrape(
        served: tuple[RunningAirgate, dict[str, Any]], tmp_path: Path) -> None:
    server, _ = served
    panels = json.loads(DASHBOARD.read_text())["panels"]
    with prometheus_scraping(server.endpoint_url, tmp_path / "prometheus",
                             free_port()) as prometheus:
        run_a_dag(server)
        assert_not_found(server, "/dags/no-such-dag")
        # Traffic while Prometheus scrapes, so that rates have two samples to go on.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            invoke(server, "GET", "/dags")
            time.sleep(0.5)
        wait_for(lambda: query(prometheus, f'airflow_scheduler_heartbeat_total{{'
                                           f'environment="{ENV}"}}'), 30,
                 "Prometheus to hold the environment's Airflow metrics")
        empty = []
        for panel in panels:
            for target in panel["targets"]:
                expression = target["expr"].replace("$environment", ENV).replace(
                    "$__rate_interval", "1m")
                if not query(prometheus, expression):
                    empty.append(panel["title"])
        assert set(empty) <= ONLY_WHEN_IT_HAPPENS, empty

        # The dashboard's main panels on Prometheus's own graph page (Grafana is not
        # installable from this project's package sources), for the README.
        graphs = [target["expr"].replace("$environment", ".*").replace(
            "$__rate_interval", "1m") for panel in panels if panel["title"] in PICTURED
                  for target in panel["targets"][:1]]
        address = f"{prometheus}/graph?" + "&".join(
            f"g{index}.expr={quote(expression)}&g{index}.tab=0&g{index}.range_input=2m"
            for index, expression in enumerate(graphs))
        with headless_chromium("dashboard") as driver:
            driver.set_window_size(1400, 3300)
            driver.get(address)
            WebDriverWait(driver, 60).until(lambda d: len(d.find_elements(
                By.XPATH, "//div[contains(@class, 'eval_stats') and "
                          "contains(., 'Total time series')]")) == len(graphs))
            driver.execute_script("document.activeElement.blur(); window.scrollTo(0, 0)")
            screenshot(driver, "dashboard")
