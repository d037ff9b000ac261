"""The examples in examples/, run as their users run them (separate processes configured only
by the standard AWS variables) against airgate and a real Airflow environment that serves
examples/dags."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airgate.server import local_runtime
from tests.e2e.test_invoke_rest_api import ROLE_ARN, role_policy
from tests.e2e.test_runtime import api_url, create_args, wait_for, wait_for_status
from tests.support import RunningAirgate, running_airgate

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ENV = "examples"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LAKE = "s3://airgate-example-lake/datalake"
CALLERS = {"op-caller": "Op", "viewer-caller": "Viewer"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningAirgate,
                                                                      dict[str, Any]]]:
    home = tmp_path_factory.mktemp("examples") / "home"
    shutil.copytree(EXAMPLES / "dags", home / "buckets" / "data-team" / "dags")
    with running_airgate(home, runtime_factory=local_runtime) as server:
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


def aws_environment(server: RunningAirgate, credentials: dict[str, str],
                    scratch: Path) -> dict[str, str]:
    """What a user of the examples sets: the standard AWS variables, nothing else."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW"))}
    env.update(AWS_ENDPOINT_URL_MWAA=server.endpoint_url,
               AWS_DISABLE_HOST_PREFIX_INJECTION="true", AWS_DEFAULT_REGION="us-east-1",
               AWS_ACCESS_KEY_ID=credentials["AccessKeyId"],
               AWS_SECRET_ACCESS_KEY=credentials["SecretAccessKey"],
               AWS_CONFIG_FILE=str(scratch / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(scratch / "none"))
    return env


def run_example(served: tuple[RunningAirgate, dict[str, Any]], caller: str, scratch: Path,
                script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    server, credentials = served
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args],
                          env={**aws_environment(server, credentials[caller], scratch), **env},
                          capture_output=True, text=True, timeout=300)


def airflow(server: RunningAirgate) -> httpx.Client:
    """Airflow's REST API directly, for what InvokeRestApi's 64-character Path can't name."""
    runtime = server.airgate.runtime
    token = runtime.signing_key(ENV).mint(  # type: ignore[attr-defined]
        subject="user/test", role="ADMIN", environment=ENV, ttl=600)
    return httpx.Client(base_url=f"{api_url(server, ENV)}/api/v2", timeout=30,
                        headers={"Authorization": f"Bearer {token}"})


def invoke(server: RunningAirgate, method: str, path: str, **more: Any) -> Any:
    return server.client().invoke_rest_api(Name=ENV, Method=method, Path=path,
                                           **more)["RestApiResponse"]


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
    with pytest.raises(Exception, match="404"):  # deleted
        invoke(served[0], "GET", "/variables/example_admin")


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
    run_id = done.stdout.split(" run ", 1)[1].split()[0]
    with airflow(server) as api:
        log = api.get(f"/dags/any_bash_command/dagRuns/{run_id}/taskInstances/"
                      "trigger_bash_command/logs/1", params={"full_content": "true"},
                      headers={"Accept": "application/json"})
    assert log.status_code == 200
    assert token in json.dumps(log.json()["content"])


# --- data-aware batching --------------------------------------------------------------------

def pipeline_runs(server: RunningAirgate) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = invoke(server, "GET", "/dags/data_aware_pipeline/dagRuns",
                                        QueryParameters={"order_by": "run_after"})["dag_runs"]
    return runs


def batched_files(server: RunningAirgate, run_id: str) -> tuple[list[str], str]:
    """What the run's get_resources collected, and its extract task's log."""
    with airflow(server) as api:
        base = f"/dags/data_aware_pipeline/dagRuns/{run_id}/taskInstances"
        xcom = api.get(f"{base}/get_resources/xcomEntries/return_value")
        log = api.get(f"{base}/extract/logs/1", params={"full_content": "true"},
                      headers={"Accept": "application/json"})
    assert xcom.status_code == 200 and log.status_code == 200
    return list(xcom.json()["value"]), json.dumps(log.json()["content"])


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
                          env={**aws_environment(server, credentials["op-caller"], scratch),
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
