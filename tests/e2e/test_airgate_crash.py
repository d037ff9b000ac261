"""airgate killed with SIGKILL in the middle of CreateEnvironment, UpdateEnvironment,
DeleteEnvironment and under InvokeRestApi load, then started again on the same home and
state store (SQLite, then PostgreSQL): each interrupted change is finished, no Airflow
process is left that the new airgate does not own, calls succeed again after the restart,
and no environment, identity, policy, tag or DAG run is lost.

The environment's processes are found by the test itself (tests/e2e/processes.py: the
environment's uid, its sandboxes, its folder), never by airgate's own leftovers code, so a
process airgate misses is reported and ended here."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from tests.e2e.load import OK, Load
from tests.e2e.processes import EnvironmentProcesses
from tests.e2e.test_cli import shellenv
from tests.e2e.test_runtime import create_args, wait_for, wait_for_status
from tests.support import free_port, mwaa_client, postgres_database

pytestmark = [pytest.mark.e2e, pytest.mark.airflow]

ENV = "crashy"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "dags"
CALLER_READ_TIMEOUT = 30.0  # a call hanging longer is a ReadTimeoutError outcome: a failure
REST_API_TIMEOUT = 10.0  # airgate's default: the promise a call's duration is held to


class Airgate:
    """`airgate up` in its own process, which the test may kill at any moment."""

    def __init__(self, home: Path, database_url: str | None) -> None:
        self.home, self.port = home, free_port()
        self.env = {**os.environ, "AIRGATE_HOME": str(home)}
        if database_url:
            self.env["AIRGATE_DATABASE_URL"] = database_url
        self.process: subprocess.Popen[bytes] | None = None
        self._admin: dict[str, str] | None = None
        self.processes = EnvironmentProcesses(home / "environments" / ENV)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "airgate.cli", "up", "--port", str(self.port),
             "--no-default-environment"], env=self.env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        wait_for(self._answers, 30, "airgate to answer")

    def _answers(self) -> bool:
        try:
            self.client().list_environments()
        except (botocore.exceptions.EndpointConnectionError,
                botocore.exceptions.ConnectionClosedError,
                subprocess.CalledProcessError):  # no administrator's keys written yet
            return False
        return True

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=90)

    def client(self, credentials: dict[str, str] | None = None) -> Any:
        if credentials is None:
            if self._admin is None:
                exported = shellenv(self.home)
                self._admin = {"AccessKeyId": exported["AWS_ACCESS_KEY_ID"],
                               "SecretAccessKey": exported["AWS_SECRET_ACCESS_KEY"]}
            credentials = self._admin
        # One attempt per call (mwaa_client's default): every outcome is recorded as it is.
        return mwaa_client(f"http://127.0.0.1:{self.port}", credentials, "us-east-1",
                           connect_timeout=2, read_timeout=CALLER_READ_TIMEOUT)

    def iam(self, *args: str) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-m", "airgate.cli", "iam", *args],
                              env=self.env, capture_output=True, text=True, timeout=60,
                              check=True)
        return json.loads(done.stdout) if done.stdout.strip() else {}

    def orphans(self) -> list[str]:
        """Processes of the environment that this airgate did not start, described."""
        assert self.process is not None
        return self.processes.describe(self.processes.not_descended_from(self.process.pid))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def airgate(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Airgate]:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres_database()) if request.param == "postgresql" \
            else None
        home = tmp_path / "home"
        (home / "buckets" / "data-team").mkdir(parents=True)
        (home / "buckets" / "data-team" / "dags").symlink_to(EXAMPLES)
        server = Airgate(home, url)
        stack.callback(no_process_left, server)
        stack.callback(server.stop)
        yield server


def no_process_left(airgate: Airgate) -> None:
    """After airgate stopped: none of the environment's processes may be running. Any that
    is gets killed, and named in the failure."""
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not airgate.processes.find(), 30, "the environment's processes to end")
    left = airgate.processes.kill_all()
    assert not left, f"processes left running after airgate stopped: {left}"


def restart(airgate: Airgate) -> None:
    airgate.kill()
    airgate.start()


# Four kills, four starts of a real environment and a deletion: each wait below has its own
# bound, and together they need more than pytest's default 300 s on a loaded 2-core machine.
@pytest.mark.timeout(1200)
def test_killed_at_any_step_comes_back_consistent(airgate: Airgate) -> None:
    airgate.start()
    admin = airgate.client()
    # Identities, policies and tags that must survive every crash.
    airgate.iam("create-user", "--user-name", "survivor")
    key = airgate.iam("create-access-key", "--user-name", "survivor")["AccessKey"]
    airgate.iam("put-user-policy", "--user-name", "survivor", "--policy-name", "read",
                "--policy-document", json.dumps({"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": ["airflow:GetEnvironment",
                                                   "airflow:InvokeRestApi"],
                     "Resource": "*"}]}))
    survivor = {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}

    # 1. Killed during CreateEnvironment, once Airflow is being provisioned.
    admin.create_environment(**create_args(ENV, Tags={"team": "data"}))
    wait_for(airgate.processes.find, 120, "provisioning to start")
    restart(airgate)
    environment = wait_for_status(airgate.client(survivor), ENV, "AVAILABLE")
    assert environment["Tags"] == {"team": "data"}
    assert airgate.orphans() == []
    wait_for(lambda: airgate.client(survivor).invoke_rest_api(
        Name=ENV, Method="GET", Path="/dags")["RestApiResponse"]["total_entries"] == 2, 90,
        "the DAGs to be parsed")

    # 2. Killed under InvokeRestApi load, with DAG runs accepted just before.
    accepted = [airgate.client().invoke_rest_api(
        Name=ENV, Method="POST", Path="/dags/any_bash_command/dagRuns",
        Body={"dag_run_id": f"before-crash-{i}", "logical_date": None,
              "conf": {"command": "true"}})["RestApiResponse"]["dag_run_id"] for i in range(3)]
    load = Load(lambda: airgate.client(survivor), [("read", lambda client: client.invoke_rest_api(
        Name=ENV, Method="GET", Path="/version"))])
    with load.running(threads=4, join_timeout=CALLER_READ_TIMEOUT + 10):
        wait_for(load.successes, 60, "calls to succeed before the kill")
        airgate.kill()
        airgate.start()
        restarted = time.monotonic()
        wait_for_status(airgate.client(), ENV, "AVAILABLE")
        # Recovery: calls that started after the restart succeed, not only earlier ones.
        wait_for(lambda: len(load.successes(since=restarted)) >= 10, 90,
                 "calls to succeed after the restart")
    assert airgate.orphans() == []
    # While airgate was down: refused or cut connections. While Airflow came back (the
    # environment UNAVAILABLE, where calls are still tried): the proxy's 502 while nothing
    # listens, its 504 when the starting api-server takes longer than the REST API timeout
    # (10 s), and throttling of callers retrying that fast. Never a hang (ReadTimeoutError,
    # or a call slower than twice the REST API timeout), never another error.
    results = load.results()
    assert set(results) <= {OK, "EndpointConnectionError", "ConnectionClosedError",
                            "RestApiServerException(502)", "RestApiServerException(504)",
                            "ThrottlingException"}, results
    assert load.slowest().seconds <= 2 * REST_API_TIMEOUT, load.slowest()
    runs = airgate.client(survivor).invoke_rest_api(
        Name=ENV, Method="GET", Path="/dags/any_bash_command/dagRuns")["RestApiResponse"]
    assert set(accepted) <= {run["dag_run_id"] for run in runs["dag_runs"]}

    # 3. Killed during UpdateEnvironment: the recorded change is applied on restart.
    airgate.client().update_environment(Name=ENV, AirflowConfigurationOptions={
        "core.default_task_retries": "2"})
    wait_for(lambda: airgate.client().get_environment(Name=ENV)["Environment"]["Status"]
             == "UPDATING", 30, "the update to start")
    restart(airgate)
    environment = wait_for_status(airgate.client(), ENV, "AVAILABLE")
    assert environment["AirflowConfigurationOptions"] == {"core.default_task_retries": "2"}
    assert environment["Tags"] == {"team": "data"}
    assert airgate.orphans() == []

    # 4. Killed during DeleteEnvironment: the deletion is finished, nothing is left running.
    airgate.client().delete_environment(Name=ENV)
    restart(airgate)
    wait_for(lambda: ENV not in airgate.client().list_environments()["Environments"], 120,
             "the deletion to finish")
    wait_for(lambda: not airgate.processes.find(), 30, "the environment's processes to end")
    assert not (airgate.home / "environments" / ENV).exists()
    # Identities and policies survived every crash.
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        airgate.client(survivor).get_environment(Name=ENV)
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert airgate.iam("list-user-policies", "--user-name", "survivor") == {
        "PolicyNames": ["read"]}
