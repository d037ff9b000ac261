"""InvokeRestApi against a real Airflow environment with real boto3 clients: the Airflow
role each caller gets, Airflow's own answers, path escapes, and a stalled api-server."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest

from airgate.environments.local import LocalRuntime
from airgate.server import local_runtime
from tests.e2e.serving import standard_aws_variables
from tests.e2e.test_runtime import create_args, wait_for, wait_for_status
from tests.support import RunningAirgate, running_airgate

pytestmark = [pytest.mark.e2e, pytest.mark.airflow]

ENV = "invoke"
ROLE_ARN = "arn:aws:airflow:us-east-1:000000000000:role/{env}/{role}"
DAGS = {
    "runnable.py": '''
import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(dag_id="runnable", schedule=None, catchup=False,
         start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    BashOperator(task_id="run", bash_command="echo ran")
''',
    "lake_consumer.py": '''
import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset

with DAG(dag_id="lake_consumer", schedule=[Asset("s3://lake/datalake")], catchup=False,
         start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    EmptyOperator(task_id="consume")
''',
}


def role_policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow_roles(*roles: str, env: str = ENV) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": "airflow:InvokeRestApi",
            "Resource": [ROLE_ARN.format(env=env, role=role) for role in roles]}


PRINCIPALS = {
    "admin-caller": role_policy(allow_roles("Admin")),
    "op-caller": role_policy(allow_roles("Op")),
    "user-caller": role_policy(allow_roles("User")),
    "viewer-caller": role_policy(allow_roles("Viewer")),
    # Allowed every role, but Admin is denied: the next one, Op, is used.
    "no-admin": role_policy(
        {"Effect": "Allow", "Action": "airflow:InvokeRestApi",
         "Resource": "arn:aws:airflow:us-east-1:000000000000:role/*/*"},
        {"Effect": "Deny", "Action": "airflow:InvokeRestApi",
         "Resource": ROLE_ARN.format(env="*", role="Admin")}),
    "other-env-only": role_policy(allow_roles("Admin", env="other")),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningAirgate,
                                                                      dict[str, Any]]]:
    home = tmp_path_factory.mktemp("invoke") / "home"
    dags = home / "buckets" / "data-team" / "dags"
    dags.mkdir(parents=True)
    for name, text in DAGS.items():
        (dags / name).write_text(text)
    with running_airgate(home, runtime_factory=local_runtime, rest_api_timeout=3.0) as server:
        identities = server.airgate.identities
        clients = {}
        for name, document in PRINCIPALS.items():
            identities.create_user(name)
            identities.put_inline_policy("user", name, "invoke", document)
            clients[name] = server.client(identities.create_access_key(name))
        admin = server.client()
        admin.create_environment(**create_args(ENV))
        wait_for_status(admin, ENV, "AVAILABLE")
        wait_for(lambda: invoke(admin, "GET", "/dags")["RestApiResponse"]["total_entries"] == 2,
                 60, "both DAGs to be parsed")
        yield server, clients


def invoke(client: Any, method: str, path: str, **more: Any) -> dict[str, Any]:
    response: dict[str, Any] = client.invoke_rest_api(Name=ENV, Method=method, Path=path, **more)
    return response


def outcome(client: Any, method: str, path: str, **more: Any) -> int:
    """Airflow's status code for the call, whichever way it came back."""
    try:
        return int(invoke(client, method, path, **more)["RestApiStatusCode"])
    except client.exceptions.RestApiClientException as error:
        return int(error.response["RestApiStatusCode"])


def test_admin_lists_dags(served: tuple[RunningAirgate, dict[str, Any]]) -> None:
    server, _ = served
    response = invoke(server.client(), "GET", "/dags", QueryParameters={"limit": 1,
                                                                         "order_by": "dag_id"})
    assert response["RestApiStatusCode"] == 200
    assert [d["dag_id"] for d in response["RestApiResponse"]["dags"]] == ["lake_consumer"]


ROLE_MATRIX = [
    # caller, method, path, body, Airflow's status
    ("admin-caller", "POST", "/variables", {"key": "from-admin", "value": "1"}, 201),
    ("op-caller", "POST", "/variables", {"key": "from-op", "value": "1"}, 201),
    ("no-admin", "POST", "/variables", {"key": "from-no-admin", "value": "1"}, 201),
    ("user-caller", "POST", "/variables", {"key": "from-user", "value": "1"}, 403),
    ("viewer-caller", "POST", "/variables", {"key": "from-viewer", "value": "1"}, 403),
    ("viewer-caller", "GET", "/dags", None, 200),
    ("user-caller", "POST", "/dags/runnable/dagRuns", {"logical_date": None}, 200),
    ("viewer-caller", "POST", "/dags/runnable/dagRuns", {"logical_date": None}, 403),
]


@pytest.mark.parametrize(("caller", "method", "path", "body", "status"), ROLE_MATRIX,
                         ids=[f"{c}-{m}-{p}" for c, m, p, _, _ in ROLE_MATRIX])
def test_role_matrix(served: tuple[RunningAirgate, dict[str, Any]], caller: str, method: str,
                     path: str, body: Any, status: int) -> None:
    _, clients = served
    extra = {"Body": body} if body is not None else {}
    assert outcome(clients[caller], method, path, **extra) == status


def test_asset_events_need_op(served: tuple[RunningAirgate, dict[str, Any]]) -> None:
    server, clients = served
    assets = invoke(server.client(), "GET", "/assets",
                    QueryParameters={"uri_pattern": "s3://lake/datalake"})["RestApiResponse"]
    asset_id = assets["assets"][0]["id"]
    event = {"asset_id": asset_id, "extra": {"file": "s3://lake/datalake/part-1.csv"}}
    assert outcome(clients["op-caller"], "POST", "/assets/events", Body=event) == 200
    assert outcome(clients["viewer-caller"], "POST", "/assets/events", Body=event) == 403


def test_no_allowed_role_is_access_denied(served: tuple[RunningAirgate,
                                                        dict[str, Any]]) -> None:
    _, clients = served
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        invoke(clients["other-env-only"], "GET", "/dags")
    error = excinfo.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert "Airflow role" in error["Message"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [("GET", "/dags/no-such-dag", None, 404),
     ("POST", "/variables", {"key": "duplicate", "value": "x"}, 409),
     ("POST", "/dags/runnable/dagRuns", {"logical_date": "not a date"}, 422)],
    ids=["404", "409", "422"],
)
def test_airflow_errors_surface_with_airflows_body(
        served: tuple[RunningAirgate, dict[str, Any]], method: str, path: str, body: Any,
        status: int) -> None:
    server, _ = served
    admin = server.client()
    if status == 409:
        invoke(admin, "POST", "/variables", Body=body)
    with pytest.raises(admin.exceptions.RestApiClientException) as excinfo:
        invoke(admin, method, path, **({"Body": body} if body is not None else {}))
    response = excinfo.value.response
    assert response["RestApiStatusCode"] == status
    assert "detail" in response["RestApiResponse"]
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.parametrize(
    "path",
    ["/../monitor/health", "/dags/../../api/v1", "/%2e%2e/monitor", "/dags%2f..%2fx",
     "\\dags", "//evil.example/dags", "http://evil.example/x", "/dags#limit=1",
     "/dags?limit=1#x", "/dags?x=%0d%0aX-Injected:%201", "/../dags?limit=1",
     "/dags\r\nX-Injected: 1", "dags", "/dags/%00", "/./dags"],
    ids=["dotdot", "dotdot-deep", "encoded-dots", "encoded-slash", "backslash",
         "network-path", "absolute-url", "fragment", "fragment-after-query",
         "encoded-crlf-in-query", "dotdot-before-query", "crlf", "relative", "nul", "dot"],
)
def test_path_escapes_are_refused(served: tuple[RunningAirgate, dict[str, Any]],
                                  path: str) -> None:
    server, _ = served
    admin = server.client()
    with pytest.raises(admin.exceptions.ValidationException) as excinfo:
        invoke(admin, "GET", path)
    assert "Invalid Path" in excinfo.value.response["Error"]["Message"]


def test_a_query_string_in_path(served: tuple[RunningAirgate, dict[str, Any]]) -> None:
    """As OpenMetadata's MWAA connector sends it; merged with QueryParameters."""
    server, _ = served
    response = invoke(server.client(), "GET", "/dags?order_by=dag_id&limit=1",
                      QueryParameters={"offset": 1})
    assert [d["dag_id"] for d in response["RestApiResponse"]["dags"]] == ["runnable"]
    assert response["RestApiResponse"]["total_entries"] == 2


def test_amazon_providers_sensors_with_a_default_run_id(
        served: tuple[RunningAirgate, dict[str, Any]], tmp_path: Any) -> None:
    """MwaaDagRunSensor and MwaaTaskSensor, unchanged, on a run with the run id Airflow
    makes by default: their paths are longer than the model's 64 characters."""
    server, _ = served
    admin = server.client()
    run_id = invoke(admin, "POST", "/dags/runnable/dagRuns",
                    Body={"logical_date": None})["RestApiResponse"]["dag_run_id"]
    assert run_id.startswith("manual__")
    assert len(f"/dags/runnable/dagRuns/{run_id}/taskInstances/run") > 64
    # Marked successful rather than run (the DAG stays paused): a task run would load the
    # machine while later tests time Airflow's answers.
    task = invoke(admin, "PATCH", f"/dags/runnable/dagRuns/{run_id}/taskInstances/run",
                  Body={"new_state": "success"})["RestApiResponse"]
    assert [ti["state"] for ti in task["task_instances"]] == ["success"]
    run = invoke(admin, "PATCH", f"/dags/runnable/dagRuns/{run_id}",
                 Body={"state": "success"})["RestApiResponse"]
    assert run["state"] == "success"
    script = ("from airflow.providers.amazon.aws.sensors.mwaa import MwaaDagRunSensor, "
              "MwaaTaskSensor\n"
              f"run = {run_id!r}\n"
              f"print('poked', MwaaDagRunSensor(task_id='r', external_env_name={ENV!r}, "
              "external_dag_id='runnable', external_dag_run_id=run, "
              "airflow_version=3).poke({}))\n"
              f"print('poked', MwaaTaskSensor(task_id='t', external_env_name={ENV!r}, "
              "external_dag_id='runnable', external_dag_run_id=run, external_task_id='run', "
              "airflow_version=3).poke({}))\n")
    env = standard_aws_variables(server, server.admin, tmp_path)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    poked = [line for line in result.stdout.splitlines() if line.startswith("poked ")]
    assert poked == ["poked True", "poked True"], result.stdout[-3000:]


def test_unknown_and_unready_environments(served: tuple[RunningAirgate, dict[str, Any]]) -> None:
    server, _ = served
    admin = server.client()
    with pytest.raises(admin.exceptions.ResourceNotFoundException):
        admin.invoke_rest_api(Name="nowhere", Method="GET", Path="/dags")
    admin.create_environment(**create_args("young"))
    with pytest.raises(admin.exceptions.ValidationException) as excinfo:
        admin.invoke_rest_api(Name="young", Method="GET", Path="/dags")
    assert "CREATING" in excinfo.value.response["Error"]["Message"]
    admin.delete_environment(Name="young")


def test_assumed_role_is_the_triggering_user(served: tuple[RunningAirgate,
                                                           dict[str, Any]]) -> None:
    server, _ = served
    identities = server.airgate.identities
    identities.create_role("ReportingRole")
    identities.put_inline_policy("role", "ReportingRole", "invoke",
                                 role_policy(allow_roles("User")))
    session = identities.assume_role("ReportingRole", "session-1")["Credentials"]
    reporting = server.client(session)
    run = invoke(reporting, "POST", "/dags/runnable/dagRuns", Body={"logical_date": None})
    assert run["RestApiResponse"]["triggering_user_name"] == \
        "assumed-role/ReportingRole/session-1"


def test_stalled_airflow_gives_a_fast_server_error(
        served: tuple[RunningAirgate, dict[str, Any]]) -> None:
    server, _ = served
    runtime = server.airgate.runtime
    assert isinstance(runtime, LocalRuntime)
    api_server = runtime.pids(ENV)["api-server"]
    os.killpg(api_server, signal.SIGSTOP)
    try:
        admin = server.client()
        started = time.monotonic()
        with pytest.raises(admin.exceptions.RestApiServerException) as excinfo:
            invoke(admin, "GET", "/dags")
        elapsed = time.monotonic() - started
        assert excinfo.value.response["RestApiStatusCode"] == 504
        assert "did not answer" in excinfo.value.response["RestApiResponse"]["detail"]
        assert elapsed < 3.0 + 5.0  # the configured timeout, plus a generous margin
    finally:
        os.killpg(api_server, signal.SIGCONT)
    assert invoke(server.client(), "GET", "/dags")["RestApiStatusCode"] == 200


def test_one_audit_line_without_bodies(served: tuple[RunningAirgate, dict[str, Any]],
                                       caplog: pytest.LogCaptureFixture) -> None:
    _, clients = served
    secret_value = "audit-must-not-see-this-value"
    with caplog.at_level(logging.INFO, logger="airgate.access"):
        invoke(clients["op-caller"], "POST", "/variables",
               Body={"key": "audited", "value": secret_value})
        # The line is written just after the answer is sent, so it may trail the response.
        wait_for(lambda: any(r.name == "airgate.access" for r in caplog.records), 5,
                 "the access-log line")
    lines = [r for r in caplog.records if r.name == "airgate.access"]
    assert len(lines) == 1
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["principal"] == "arn:aws:iam::000000000000:user/op-caller"
    assert fields["operation"] == "InvokeRestApi"
    assert fields["airflow_role"] == "Op"
    assert (fields["environment"], fields["method"], fields["path"]) == \
        (ENV, "POST", "/variables")
    assert fields["rest_api_status"] == 201
    assert fields["latency_ms"] > 0
    assert secret_value not in caplog.text and secret_value not in json.dumps(fields)


def test_amazon_providers_mwaa_hook(served: tuple[RunningAirgate, dict[str, Any]],
                                    tmp_path: Any) -> None:
    """Airflow's Amazon provider, unchanged, given only the standard AWS variables."""
    server, _ = served
    script = ("import json\n"
              "from airflow.providers.amazon.aws.hooks.mwaa import MwaaHook\n"
              f"answer = MwaaHook().invoke_rest_api(env_name={ENV!r}, path='/dags', "
              "method='GET', query_params={'limit': 5})\n"
              "print(json.dumps(answer))\n")
    env = standard_aws_variables(server, server.admin, tmp_path)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["RestApiStatusCode"] == 200
    assert answer["RestApiResponse"]["total_entries"] == 2
