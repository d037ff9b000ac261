"""What several end-to-end modules share: airgate with a real environment serving
examples/dags, the standard AWS variables a separate client process gets, and Airflow's REST
API in several environments through InvokeRestApi."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airgate.server import local_runtime
from tests.e2e.test_runtime import create_args, wait_for, wait_for_status
from tests.support import RunningAirgate, running_airgate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@contextlib.contextmanager
def examples_environment(home: Path, name: str, **settings: Any) -> Iterator[RunningAirgate]:
    """airgate serving one AVAILABLE environment `name` whose DAGs (examples/dags) are
    parsed."""
    shutil.copytree(EXAMPLES / "dags", home / "buckets" / "data-team" / "dags")
    with running_airgate(home, runtime_factory=local_runtime, **settings) as server:
        admin = server.client()
        admin.create_environment(**create_args(name))
        wait_for_status(admin, name, "AVAILABLE")
        wait_for(lambda: admin.invoke_rest_api(Name=name, Method="GET", Path="/dags")[
            "RestApiResponse"]["total_entries"] == 2, 90, "the example DAGs to be parsed")
        yield server


def standard_aws_variables(server: RunningAirgate, credentials: dict[str, str],
                           scratch: Path) -> dict[str, str]:
    """The process environment of a client configured only by the standard AWS variables
    (and Airflow's, for the Amazon provider): nothing from this test process leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW"))}
    env.update(AWS_ENDPOINT_URL_MWAA=server.endpoint_url,
               # STS and IAM at the same endpoint, as `airgate shellenv` exports them.
               AWS_ENDPOINT_URL_STS=server.endpoint_url,
               AWS_ENDPOINT_URL_IAM=server.endpoint_url,
               AWS_DISABLE_HOST_PREFIX_INJECTION="true", AWS_DEFAULT_REGION="us-east-1",
               AWS_ACCESS_KEY_ID=credentials["AccessKeyId"],
               AWS_SECRET_ACCESS_KEY=credentials["SecretAccessKey"],
               AWS_CONFIG_FILE=str(scratch / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(scratch / "none"),
               AIRFLOW_HOME=str(scratch), AIRFLOW_CONN_AWS_DEFAULT="aws://")
    tls = server.airgate.tls
    if tls is not None:
        env.update(AWS_CA_BUNDLE=str(tls.ca_bundle), REQUESTS_CA_BUNDLE=str(tls.ca_bundle))
    return env


class ThroughInvokeRestApi:
    """Airflow's REST API in any of the server's environments, as its administrator."""

    def __init__(self, server: RunningAirgate) -> None:
        self.server = server
        self.mwaa = server.client()

    def invoke(self, env: str, method: str, path: str, **more: Any) -> Any:
        return self.mwaa.invoke_rest_api(Name=env, Method=method, Path=path,
                                         **more)["RestApiResponse"]

    def states_in(self, env: str, dag_id: str, run_id: str) -> dict[str, str | None]:
        """The state of each task of a run."""
        answer = self.invoke(env, "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in answer["task_instances"]}

    def log_in(self, env: str, dag_id: str, run_id: str, task_id: str) -> str:
        """A task's first try's log, whole entries (an exception's message is not in the
        entry's "event")."""
        answer = self.invoke(env, "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/"
                             f"{task_id}/logs/1", QueryParameters={"full_content": True})
        return "\n".join(json.dumps(line) for line in answer["content"])
