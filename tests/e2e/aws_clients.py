"""Real boto3 STS and IAM clients for a running airgate, and what their errors say."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from tests.support import SINGLE_ATTEMPT, RunningAirgate

ACCOUNT = "000000000000"


def client(server: RunningAirgate, service: str, credentials: dict[str, Any] | None = None,
           region: str = "us-east-1", **config: Any) -> Any:
    """A boto3 client of `service` (sts, iam, mwaa) at airgate's endpoint, as the
    administrator by default; `credentials` may be temporary (SessionToken)."""
    credentials = credentials or server.admin
    session = boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials.get("SessionToken"), region_name=region)
    return session.client(service, endpoint_url=server.endpoint_url, config=botocore.config.Config(
        inject_host_prefix=False, retries=SINGLE_ATTEMPT, **config))


def failure(call: Callable[[], Any]) -> tuple[str, int, str]:
    """The error code, HTTP status and message of a call that must fail."""
    try:
        call()
    except botocore.exceptions.ClientError as error:
        response = error.response
        return (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"],
                response["Error"]["Message"])
    raise AssertionError("the call succeeded")


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def trust(principal: Any, **extra: Any) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", **extra}]})


def user_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def temporary(credentials: dict[str, Any]) -> dict[str, str]:
    """The three parts of STS Credentials a client signs with."""
    return {key: credentials[key] for key in ("AccessKeyId", "SecretAccessKey",
                                              "SessionToken")}
