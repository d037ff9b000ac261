"""airgate killed with SIGKILL in the middle of CreateEnvironment, UpdateEnvironment,
DeleteEnvironment and under InvokeRestApi load, then started again on the same home and
state store (SQLite, then PostgreSQL): each interrupted change is finished, no Airflow
process is left that the new airgate does not own, and no environment, identity, policy,
tag or DAG run is lost."""

from __future__ import annotations

import concurrent.futures
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
import psutil
import pytest

from airgate.environments.leftovers import processes_with_home
from tests.e2e.test_cli import shellenv
from tests.e2e.test_runtime import create_args, wait_for, wait_for_status
from tests.support import free_port, mwaa_client, postgres_database

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ENV = "crashy"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "dags"


class Airgate:
    """`airgate up` in its own process, which the test may kill at any moment."""

    def __init__(self, home: Path, database_url: str | None) -> None:
        self.home, self.port = home, free_port()
        self.env = {**os.environ, "AIRGATE_HOME": str(home)}
        if database_url:
            self.env["AIRGATE_DATABASE_URL"] = database_url
        self.process: subprocess.Popen[bytes] | None = None
        self._admin: dict[str, str] | None = None

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
        return mwaa_client(f"http://127.0.0.1:{self.port}", credentials, "us-east-1",
                           connect_timeout=2, read_timeout=30)

    def iam(self, *args: str) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-m", "airgate.cli", "iam", *args],
                              env=self.env, capture_output=True, text=True, timeout=60,
                              check=True)
        return json.loads(done.stdout) if done.stdout.strip() else {}

    @property
    def airflow_home(self) -> Path:
        return self.home / "environments" / ENV / "airflow"

    def orphans(self) -> list[int]:
        """Processes of the environment that this airgate did not start."""
        assert self.process is not None
        owned = []
        for process in processes_with_home(self.airflow_home):
            with contextlib.suppress(psutil.NoSuchProcess):
                if self.process.pid not in [p.pid for p in process.parents()]:
                    owned.append(process.pid)
        return owned


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def airgate(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Airgate]:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres_database()) if request.param == "postgresql" \
            else None
        home = tmp_path / "home"
        (home / "buckets" / "data-team").mkdir(parents=True)
        (home / "buckets" / "data-team" / "dags").symlink_to(EXAMPLES)
        server = Airgate(home, url)
        stack.callback(lambda: [p.kill() for p in processes_with_home(server.airflow_home)])
        stack.callback(server.stop)
        yield server


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
    wait_for(lambda: processes_with_home(airgate.airflow_home), 120, "provisioning to start")
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
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        def call(_: int) -> str:
            started = time.monotonic()
            try:
                airgate.client(survivor).invoke_rest_api(Name=ENV, Method="GET",
                                                         Path="/version")
                return "ok"
            except botocore.exceptions.BotoCoreError as error:
                assert time.monotonic() - started < 35, "a caller hung"
                return type(error).__name__
            except botocore.exceptions.ClientError as error:
                return str(error.response["Error"]["Code"])
        calls = pool.map(call, range(200))
        time.sleep(0.5)
        restart(airgate)
        outcomes = list(calls)
    assert "ok" in outcomes
    wait_for_status(airgate.client(), ENV, "AVAILABLE")
    assert airgate.orphans() == []
    runs = airgate.client(survivor).invoke_rest_api(
        Name=ENV, Method="GET", Path="/dags/any_bash_command/dagRuns")["RestApiResponse"]
    assert set(accepted) <= {run["dag_run_id"] for run in runs["dag_runs"]}

    # 3. Killed during UpdateEnvironment: the recorded change is applied on restart.
    airgate.client().update_environment(Name=ENV, AirflowConfigurationOptions={
        "core.default_task_retries": "2"})
    wait_for(lambda: airgate.client().get_environment(Name=ENV)["Environment"]["Status"]
             == "UPDATING", 10, "the update to start")
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
    wait_for(lambda: not processes_with_home(airgate.airflow_home), 30,
             "the environment's processes to end")
    assert not (airgate.home / "environments" / ENV).exists()
    # Identities and policies survived every crash.
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        airgate.client(survivor).get_environment(Name=ENV)
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert airgate.iam("list-user-policies", "--user-name", "survivor") == {
        "PolicyNames": ["read"]}
