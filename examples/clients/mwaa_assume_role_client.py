"""Calls MWAA's InvokeRestApi as an assumed IAM role: assumes the role with STS, prints who
it is then (sts get-caller-identity) and the environment's DAGs, and tries a write (creating
a variable), which Airflow refuses when the role is allowed only Airflow's Viewer role.

    python examples/clients/mwaa_assume_role_client.py ENVIRONMENT ROLE_ARN [--session-name NAME]

Runs unchanged against Amazon MWAA or airgate: boto3 takes the STS and MWAA endpoints, the
region and the caller's credentials from the standard AWS variables (for airgate:
`eval "$(airgate shellenv)"`, which exports AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL_MWAA).
Exits 0 once the DAGs are listed, whether the write is allowed (the variable is deleted
again) or refused by Airflow; 1, saying why, when STS or MWAA refuse a call or Airflow
refuses the read.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

VARIABLE = "assume_role_example"


class StepFailed(Exception):
    """A call STS, MWAA or Airflow refused; the message says which and why."""


def assume(role_arn: str, session_name: str) -> tuple[boto3.session.Session, dict[str, Any]]:
    """A boto3 session signing with the role's temporary credentials, and STS's answer."""
    try:
        answer: dict[str, Any] = boto3.client("sts").assume_role(
            RoleArn=role_arn, RoleSessionName=session_name)
    except ClientError as error:
        raise StepFailed(f"sts assume-role {role_arn}: {error.response['Error']['Code']}: "
                         f"{error.response['Error'].get('Message', '')}") from None
    except BotoCoreError as error:
        raise StepFailed(f"sts assume-role {role_arn}: {error}") from None
    credentials = answer["Credentials"]
    session = boto3.session.Session(aws_access_key_id=credentials["AccessKeyId"],
                                    aws_secret_access_key=credentials["SecretAccessKey"],
                                    aws_session_token=credentials["SessionToken"])
    return session, answer


def invoke(mwaa: Any, environment: str, method: str, path: str,
           body: Any = None) -> dict[str, Any]:
    """One Airflow REST API call; MWAA's refusals become StepFailed, Airflow's are raised
    as botocore raises them (RestApiClientException, RestApiServerException)."""
    request: dict[str, Any] = {"Name": environment, "Method": method, "Path": path}
    if body is not None:
        request["Body"] = body
    try:
        response: dict[str, Any] = mwaa.invoke_rest_api(**request)
        return response
    except (mwaa.exceptions.RestApiClientException, mwaa.exceptions.RestApiServerException):
        raise
    except ClientError as error:  # MWAA itself: access denied, no such environment, ...
        raise StepFailed(f"{method} {path}: {error.response['Error']['Code']}: "
                         f"{error.response['Error'].get('Message', '')}") from None
    except BotoCoreError as error:
        raise StepFailed(f"{method} {path}: {error}") from None


def airflow_refusal(error: ClientError) -> str:
    return (f"HTTP {error.response.get('RestApiStatusCode')}: "
            f"{json.dumps(error.response.get('RestApiResponse'))}")


def as_role(environment: str, role_arn: str, session_name: str) -> None:
    session, assumed = assume(role_arn, session_name)
    print(f"assumed: {assumed['AssumedRoleUser']['Arn']} "
          f"(until {assumed['Credentials']['Expiration']})")
    try:
        caller = session.client("sts").get_caller_identity()["Arn"]
    except (ClientError, BotoCoreError) as error:
        raise StepFailed(f"sts get-caller-identity: {error}") from None
    print(f"caller:  {caller}")

    mwaa = session.client("mwaa")
    try:
        dags = invoke(mwaa, environment, "GET", "/dags")["RestApiResponse"]
    except (mwaa.exceptions.RestApiClientException,
            mwaa.exceptions.RestApiServerException) as error:
        raise StepFailed(f"GET /dags: Airflow answered {airflow_refusal(error)}") from None
    names = [dag["dag_id"] for dag in dags["dags"]]
    print(f"dags:    {dags['total_entries']}: {', '.join(names)}")

    try:
        written = invoke(mwaa, environment, "POST", "/variables",
                         {"key": VARIABLE, "value": "written as the assumed role"})
    except mwaa.exceptions.RestApiClientException as error:
        print(f"write:   POST /variables refused by Airflow with {airflow_refusal(error)}")
        return
    except mwaa.exceptions.RestApiServerException as error:
        raise StepFailed(f"POST /variables: Airflow failed with {airflow_refusal(error)}") \
            from None
    print(f"write:   POST /variables allowed (RestApiStatusCode="
          f"{written['RestApiStatusCode']}); deleting {VARIABLE} again")
    invoke(mwaa, environment, "DELETE", f"/variables/{VARIABLE}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("environment", help="the MWAA environment's name")
    parser.add_argument("role_arn", help="the IAM role to assume, e.g. a Viewer-only role")
    parser.add_argument("--session-name", default="mwaa-assume-role-example")
    args = parser.parse_args(argv)
    try:
        as_role(args.environment, args.role_arn, args.session_name)
    except StepFailed as failure:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
