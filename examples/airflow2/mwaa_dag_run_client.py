"""Triggers the `any_bash_command` DAG of an Airflow 2 environment with a bash command
through MWAA's InvokeRestApi, waits for the run to finish and prints its state, what the
task ran and the task's log.

    python examples/airflow2/mwaa_dag_run_client.py ENVIRONMENT 'echo hello' [--timeout 300]

Airflow 2's REST API (/api/v1, where MWAA sends the calls) takes a run with its conf alone:
no logical date. Runs unchanged against Amazon MWAA or airgate: boto3 takes its endpoint,
region and credentials from the standard AWS variables (for airgate:
`eval "$(airgate shellenv)"`). Exits 0 if the run succeeded, 1 if it failed, was refused or
timed out.

The run id is Airflow's own (`manual__2026-12-02T10:00:00.123456+00:00`), so the paths about
the run, such as the task log's
(/dags/any_bash_command/dagRuns/RUN/taskInstances/trigger_bash_command/logs/1), are longer than
the 64 characters botocore's model gives Path: MWAA and airgate take them, as Airflow's own
Amazon provider relies on.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

DAG_ID = "any_bash_command"
TASK_ID = "trigger_bash_command"
FINISHED = ("success", "failed")


class StepFailed(Exception):
    """A call Airflow or MWAA refused; the message says which and why."""


def invoke(mwaa: Any, environment: str, method: str, path: str,
           body: Any = None, query: dict[str, Any] | None = None) -> Any:
    """Airflow's answer to one REST API call; refusals become StepFailed."""
    request: dict[str, Any] = {"Name": environment, "Method": method, "Path": path}
    if body is not None:
        request["Body"] = body
    if query is not None:
        request["QueryParameters"] = query
    try:
        return mwaa.invoke_rest_api(**request)["RestApiResponse"]
    except (mwaa.exceptions.RestApiClientException,
            mwaa.exceptions.RestApiServerException) as error:
        raise StepFailed(f"{method} {path}: Airflow answered "
                         f"{error.response.get('RestApiStatusCode')}: "
                         f"{json.dumps(error.response.get('RestApiResponse'))}") from None
    except ClientError as error:
        raise StepFailed(f"{method} {path}: {error.response['Error']['Code']}: "
                         f"{error.response['Error'].get('Message', '')}") from None
    except BotoCoreError as error:
        raise StepFailed(f"{method} {path}: {error}") from None


def run_command(mwaa: Any, environment: str, command: str, timeout: float,
                poll: float) -> str:
    """Trigger the DAG with `command`, wait for the run to finish; its final state."""
    dag = invoke(mwaa, environment, "GET", f"/dags/{DAG_ID}")
    if dag["is_paused"]:
        invoke(mwaa, environment, "PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
        print(f"unpaused {DAG_ID}")
    run_id = invoke(mwaa, environment, "POST", f"/dags/{DAG_ID}/dagRuns",
                    {"conf": {"command": command}})["dag_run_id"]
    print(f"triggered {DAG_ID} run {run_id} with command {command!r}")

    deadline = time.monotonic() + timeout
    while True:
        run = invoke(mwaa, environment, "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
        if run["state"] in FINISHED:
            break
        if time.monotonic() > deadline:
            raise StepFailed(f"run {run_id} is still {run['state']} after {timeout:g} s")
        time.sleep(poll)
    print(f"run {run_id}: {run['state']} ({run['run_type']}, from {run['start_date']} "
          f"to {run['end_date']})")

    tasks = invoke(mwaa, environment, "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
    for task in tasks["task_instances"]:
        rendered = (task.get("rendered_fields") or {}).get("bash_command")
        print(f"task {task['task_id']}: {task['state']}, try {task['try_number']}, "
              f"ran {rendered!r}")
        print_log(mwaa, environment, run_id, task["task_id"], task["try_number"])
    return str(run["state"])


def log_lines(content: str) -> list[str]:
    """The lines of an Airflow 2 task log. Its REST API answers JSON whose `content` is
    text: the Python form of a list of (host, log) pairs, "[('host', '*** Found...\\n...')]",
    read here as the literal it is (never evaluated as code). Other text is taken as it is."""
    try:
        parts = ast.literal_eval(content)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return content.splitlines()
    if not isinstance(parts, list):
        return content.splitlines()
    lines: list[str] = []
    for part in parts:
        text = part[1] if isinstance(part, tuple) and len(part) == 2 else part
        lines.extend(str(text).splitlines())
    return lines


def print_log(mwaa: Any, environment: str, run_id: str, task_id: str, try_number: int) -> None:
    """The task try's whole log, line by line."""
    log = invoke(mwaa, environment, "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/"
                 f"{task_id}/logs/{try_number}", query={"full_content": True})
    print(f"log of {task_id}, try {try_number}:")
    for line in log_lines(str(log.get("content", ""))):
        print(f"  {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("environment", help="the MWAA environment's name")
    parser.add_argument("command", help="the bash command for the task to run")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")
    parser.add_argument("--poll", type=float, default=2.0, help="seconds between checks")
    args = parser.parse_args(argv)
    try:
        state = run_command(boto3.client("mwaa"), args.environment, args.command,
                            args.timeout, args.poll)
    except StepFailed as failure:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    return 0 if state == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
