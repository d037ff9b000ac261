"""The Amazon provider's own hooks against airgate's STS, in a separate process configured
only by Airflow connections in the environment: `StsHook().conn.assume_role(...)` as the
provider's system tests call it, and a connection with `role_arn`, whose hook assumes the
role itself; the temporary credentials then call MWAA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.aws_clients import ACCOUNT, policy, role_arn, trust, user_arn
from tests.support import RunningAirgate

pytestmark = pytest.mark.e2e

CLIENT = r"""
import json, sys
import boto3, botocore.config
from airflow.providers.amazon.aws.hooks.mwaa import MwaaHook
from airflow.providers.amazon.aws.hooks.sts import StsHook

endpoint, role = sys.argv[1], sys.argv[2]
found = {}
sts = StsHook()  # aws_default
found["caller"] = sts.conn.get_caller_identity()["Arn"]
answer = sts.conn.assume_role(RoleArn=role, RoleSessionName="system-test")
credentials = answer["Credentials"]
found["assumed"] = answer["AssumedRoleUser"]["Arn"]
mwaa = boto3.client(
    "mwaa", endpoint_url=endpoint, region_name="us-east-1",
    aws_access_key_id=credentials["AccessKeyId"],
    aws_secret_access_key=credentials["SecretAccessKey"],
    aws_session_token=credentials["SessionToken"],
    config=botocore.config.Config(inject_host_prefix=False))
found["environments"] = mwaa.list_environments()["Environments"]
try:
    mwaa.get_environment(Name="data-team")
except mwaa.exceptions.ClientError as error:
    found["get_environment"] = error.response["Error"]["Code"]
# A connection naming the role: the hook assumes it through STS by itself.
found["role_caller"] = StsHook(aws_conn_id="aws_role").conn.get_caller_identity()["Arn"]
found["role_environments"] = MwaaHook(aws_conn_id="aws_role").conn.list_environments()[
    "Environments"]
print(json.dumps(found))
"""


def test_sts_hook_assume_role_then_mwaa(airgate_server: RunningAirgate, tmp_path: Path) -> None:
    server = airgate_server
    identities = server.airgate.identities
    identities.create_user("airflow")
    identities.put_inline_policy("user", "airflow", "assume", policy(
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn("Pipelines")}))
    key = identities.create_access_key("airflow")
    identities.create_role("Pipelines", trust({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}))
    identities.put_inline_policy("role", "Pipelines", "list", policy(
        {"Effect": "Allow", "Action": "airflow:ListEnvironments", "Resource": "*"}))
    server.client().create_environment(
        Name="data-team", ExecutionRoleArn=role_arn("Pipelines"),
        SourceBucketArn="arn:aws:s3:::data-team", DagS3Path="dags", NetworkConfiguration={})

    extra = {"endpoint_url": server.endpoint_url, "region_name": "us-east-1",
             "config_kwargs": {"inject_host_prefix": False}}
    login = {"conn_type": "aws", "login": key["AccessKeyId"],
             "password": key["SecretAccessKey"]}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW"))}
    env.update(
        AIRFLOW_HOME=str(tmp_path), AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AIRFLOW_CONN_AWS_DEFAULT=json.dumps({**login, "extra": extra}),
        AIRFLOW_CONN_AWS_ROLE=json.dumps({**login, "extra": {
            **extra, "role_arn": role_arn("Pipelines")}}),
        # The provider never sends assume-role to a connection's endpoint_url: STS's own
        # endpoint comes from the standard variable, as `airgate shellenv` exports it.
        AWS_ENDPOINT_URL_STS=server.endpoint_url)
    done = subprocess.run([sys.executable, "-c", CLIENT, server.endpoint_url,
                           role_arn("Pipelines")], env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {
        "caller": user_arn("airflow"),
        "assumed": f"arn:aws:sts::{ACCOUNT}:assumed-role/Pipelines/system-test",
        "environments": ["data-team"],
        "get_environment": "AccessDeniedException",
        "role_caller": f"arn:aws:sts::{ACCOUNT}:assumed-role/Pipelines/airflow_aws_role",
        "role_environments": ["data-team"],
    }
