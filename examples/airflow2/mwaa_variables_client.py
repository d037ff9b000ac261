"""Automates Airflow variables through MWAA's InvokeRestApi on an Airflow 2 environment:
create, read, list, update (the description) and delete one variable, printing each step's
RestApiStatusCode.

    python examples/airflow2/mwaa_variables_client.py ENVIRONMENT [--key KEY] [--value VALUE]

MWAA sends each call to Airflow 2's REST API, /api/v1: the update is a PATCH with
`update_mask`, so only the description changes. Runs unchanged against Amazon MWAA or
airgate: boto3 takes its endpoint, region and credentials from the standard AWS variables
(for airgate: `eval "$(airgate shellenv)"`). Exits with status 1, and says why, when Airflow
or MWAA refuses a step.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError


class StepFailed(Exception):
    """A step Airflow or MWAA refused; the message says which and why."""


def invoke(mwaa: Any, environment: str, method: str, path: str, body: Any = None,
           query: dict[str, Any] | None = None) -> dict[str, Any]:
    """One Airflow REST API call; Airflow's and MWAA's refusals become StepFailed."""
    request: dict[str, Any] = {"Name": environment, "Method": method, "Path": path}
    if body is not None:
        request["Body"] = body
    if query:
        request["QueryParameters"] = query
    try:
        response: dict[str, Any] = mwaa.invoke_rest_api(**request)
        return response
    except (mwaa.exceptions.RestApiClientException,
            mwaa.exceptions.RestApiServerException) as error:
        status = error.response.get("RestApiStatusCode")
        detail = error.response.get("RestApiResponse")
        side = "Airflow refused" if status is not None and status < 500 else "Airflow failed"
        raise StepFailed(f"{method} {path}: {side} it with HTTP {status}: "
                         f"{json.dumps(detail)}") from None
    except ClientError as error:  # MWAA itself: access denied, throttled after retries, ...
        raise StepFailed(f"{method} {path}: {error.response['Error']['Code']}: "
                         f"{error.response['Error'].get('Message', '')}") from None
    except BotoCoreError as error:  # no credentials, endpoint unreachable, ...
        raise StepFailed(f"{method} {path}: {error}") from None


def show(step: str, response: dict[str, Any], result: Any) -> None:
    print(f"{step:<7} RestApiStatusCode={response['RestApiStatusCode']} {json.dumps(result)}")


def round_trip(mwaa: Any, environment: str, key: str, value: str) -> None:
    created = invoke(mwaa, environment, "POST", "/variables",
                     {"key": key, "value": value, "description": "created by the example"})
    show("create", created, created["RestApiResponse"])

    read = invoke(mwaa, environment, "GET", f"/variables/{key}")
    show("read", read, {"key": read["RestApiResponse"]["key"],
                        "value": read["RestApiResponse"]["value"]})

    listed = invoke(mwaa, environment, "GET", "/variables", query={"limit": 100})
    keys = [variable["key"] for variable in listed["RestApiResponse"]["variables"]]
    show("list", listed, {"total_entries": listed["RestApiResponse"]["total_entries"],
                          "keys": keys})

    # Airflow 2 wants the whole variable in the body (the key must match the path's);
    # update_mask says which fields to change.
    updated = invoke(mwaa, environment, "PATCH", f"/variables/{key}",
                     {"key": key, "value": value, "description": "updated by the example"},
                     query={"update_mask": ["description"]})
    show("update", updated, {"description": updated["RestApiResponse"]["description"]})

    deleted = invoke(mwaa, environment, "DELETE", f"/variables/{key}")
    show("delete", deleted, {"deleted": key})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("environment", help="the MWAA environment's name")
    parser.add_argument("--key", default="example_variable")
    parser.add_argument("--value", default="example value")
    args = parser.parse_args(argv)
    try:
        round_trip(boto3.client("mwaa"), args.environment, args.key, args.value)
    except StepFailed as failure:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
