"""`airgate up` with its options, as a real process: `--region`, `--account-id` and `--host`
reach ARNs, the SigV4 scope, the listener and every environment's front; `--dags DIR` is
the default environment's DAG folder, edited live; `airgate logs` prints its logs."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import pytest

from tests.e2e.processes import EnvironmentProcesses
from tests.e2e.test_cli import AIRGATE, airgate, shellenv
from tests.e2e.test_runtime import DAG, wait_for, wait_for_status
from tests.support import free_port, mwaa_client

# The fixture's bounded waits (airgate answering, the default environment AVAILABLE) count
# toward the first test's time, with that test's own wait: more than the default 300 s.
pytestmark = [pytest.mark.e2e, pytest.mark.airflow, pytest.mark.timeout(600)]

REGION = "eu-west-2"
ACCOUNT = "123456789012"
HOST = "127.0.0.2"  # loopback, but not the default 127.0.0.1
DAG_PICKUP = 90  # seconds: a generous bound for the documented "parsed within 30 s"


@dataclass
class Up:
    home: Path
    dags: Path
    port: int
    process: subprocess.Popen[str]

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def client(self) -> Any:
        variables = shellenv(self.home)
        return mwaa_client(variables["AWS_ENDPOINT_URL_MWAA"],
                           {"AccessKeyId": variables["AWS_ACCESS_KEY_ID"],
                            "SecretAccessKey": variables["AWS_SECRET_ACCESS_KEY"]},
                           variables["AWS_DEFAULT_REGION"])


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    base = tmp_path_factory.mktemp("up-options")
    home, dags = base / "home", base / "my-dags"
    dags.mkdir()
    (dags / "hello_airgate.py").write_text(DAG)
    port = free_port()
    process = subprocess.Popen(
        [*AIRGATE, "up", "--home", str(home), "--port", str(port), "--host", HOST,
         "--region", REGION, "--account-id", ACCOUNT, "--dags", str(dags)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    running = Up(home, dags, port, process)
    processes = EnvironmentProcesses(home / "environments" / "default")
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == f"airgate listening on {running.endpoint}"

        def answering() -> bool:
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(running.endpoint, timeout=5).status_code > 0
            return False

        wait_for(answering, 60, "airgate up to answer")
        wait_for_status(running.client(), "default", "AVAILABLE")
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        left = processes.kill_all()
    assert left == [], f"processes left after airgate up stopped: {left}"


def test_arns_carry_the_account_and_the_region(up: Up) -> None:
    variables = shellenv(up.home)
    assert (variables["AWS_ENDPOINT_URL_MWAA"], variables["AWS_DEFAULT_REGION"]) == (
        up.endpoint, REGION)
    mwaa = up.client()
    environment = mwaa.get_environment(Name="default")["Environment"]
    arn = f"arn:aws:airflow:{REGION}:{ACCOUNT}:environment/default"
    assert environment["Arn"] == arn
    assert environment["ExecutionRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/airgate-default"
    mwaa.tag_resource(ResourceArn=arn, Tags={"team": "data"})
    assert mwaa.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"team": "data"}
    # Another region's or account's ARN names nothing here.
    for other in (arn.replace(REGION, "us-east-1"), arn.replace(ACCOUNT, "000000000000")):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            mwaa.list_tags_for_resource(ResourceArn=other)
        assert refused.value.response["Error"] == {
            "Code": "ResourceNotFoundException", "Message": f"Resource {other} was not found."}


def test_requests_are_signed_for_the_region(up: Up) -> None:
    variables = shellenv(up.home)
    elsewhere = mwaa_client(up.endpoint, {"AccessKeyId": variables["AWS_ACCESS_KEY_ID"],
                                          "SecretAccessKey": variables["AWS_SECRET_ACCESS_KEY"]},
                            "us-east-1")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        elsewhere.list_environments()
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert refused.value.response["Error"]["Message"] == \
        "Credential should be scoped to a valid region. "


def test_the_listener_and_the_fronts_bind_the_host(up: Up) -> None:
    unsigned = httpx.get(up.endpoint, timeout=10)  # airgate answers there
    assert (unsigned.status_code, unsigned.headers["x-amzn-errortype"]) == (
        403, "MissingAuthenticationTokenException")
    with pytest.raises(httpx.ConnectError) as refused:
        httpx.get(f"http://127.0.0.1:{up.port}", timeout=10)
    assert "Connection refused" in str(refused.value)

    mwaa = up.client()
    hostname = mwaa.create_cli_token(Name="default")["WebServerHostname"]
    host, _, front_port = hostname.partition(":")
    assert host == HOST
    assert mwaa.get_environment(Name="default")["Environment"]["WebserverUrl"] == \
        f"http://{hostname}"
    assert httpx.get(f"http://{hostname}/", follow_redirects=True, timeout=30).status_code == 200
    with pytest.raises(httpx.ConnectError) as front_refused:
        httpx.get(f"http://127.0.0.1:{front_port}/", timeout=10)
    assert "Connection refused" in str(front_refused.value)


def test_a_dag_added_to_the_dags_folder_is_parsed(up: Up) -> None:
    mwaa = up.client()

    def dag(dag_id: str) -> int:
        try:
            answer = mwaa.invoke_rest_api(Name="default", Method="GET", Path=f"/dags/{dag_id}")
        except mwaa.exceptions.RestApiClientException as error:
            return int(error.response["RestApiStatusCode"])
        return int(answer["RestApiStatusCode"])

    wait_for(lambda: dag("hello_airgate") == 200, DAG_PICKUP, "the first DAG to be parsed")
    assert dag("added_later") == 404
    (up.dags / "added_later.py").write_text(DAG.replace("hello_airgate", "added_later"))
    wait_for(lambda: dag("added_later") == 200, DAG_PICKUP, "the added DAG to be parsed", 2)


def test_airgate_logs_prints_one_component_or_all(up: Up) -> None:
    logs = up.home / "environments" / "default" / "logs"
    one = airgate(up.home, "logs", "default", "scheduler", "-n", "5").stdout.splitlines()
    assert len(one) == 5
    scheduler_lines = (logs / "scheduler.log").read_text().splitlines()
    assert all(line in scheduler_lines for line in one), one
    assert "Starting the scheduler" in airgate(up.home, "logs", "default", "scheduler", "-n",
                                               "100000").stdout

    everything = airgate(up.home, "logs", "default", "-n", "100000").stdout.splitlines()
    headers = [line for line in everything if line.startswith("==> ")]
    assert headers == [f"==> {component} ({logs / f'{component}.log'}) <=="
                       for component in ("setup", "api-server", "scheduler", "dag-processor",
                                         "triggerer")]
    sections: dict[str, list[str]] = {}
    for line in everything:
        if line.startswith("==> "):
            current = sections.setdefault(line.split()[1], [])
        else:
            current.append(line)
    assert any(line.endswith("-m airflow db migrate") and line.startswith("$ ")
               for line in sections["setup"])
    assert any("Starting the scheduler" in line for line in sections["scheduler"])
    assert not any("Starting the scheduler" in line for line in sections["api-server"])

    missing = airgate(up.home, "logs", "no-such-environment", check=False)
    assert (missing.returncode, missing.stdout, missing.stderr) == (
        1, "", "airgate: no environment named no-such-environment\n")
