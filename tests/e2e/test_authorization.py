"""IAM policies decide every call: allow/deny matrices over real boto3 clients, Deny winning."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from tests.e2e.test_mwaa_api import create_args
from tests.support import RunningAirgate, running_airgate, users_with_policies

pytestmark = pytest.mark.e2e

ARN = "arn:aws:airflow:us-east-1:000000000000:environment/{}"


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: str | list[str], resource: str | list[str] = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: str | list[str], resource: str | list[str] = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


# Each principal: its inline policies. Names are user names.
PRINCIPALS: dict[str, list[str]] = {
    "nobody": [],
    "reader": [policy(allow(["airflow:GetEnvironment", "airflow:ListEnvironments",
                             "airflow:ListTagsForResource"]))],
    "team-a": [policy(allow("airflow:*", ARN.format("team-a-*")),
                      allow("airflow:ListEnvironments"))],
    "no-delete": [policy(allow("airflow:*")), policy(deny("airflow:DeleteEnvironment"))],
    "not-action": [policy(allow("*"),
                          {"Effect": "Deny", "NotAction": "airflow:Get*", "Resource": "*"})],
    "not-resource": [policy({"Effect": "Allow", "Action": "airflow:*",
                             "NotResource": ARN.format("team-b")})],
    "tag-owner": [policy(allow("airflow:GetEnvironment", "*", Condition={
        "StringEquals": {"aws:ResourceTag/owner": "${aws:username}"}}))],
    "own-prefix": [policy(allow("airflow:*", ARN.format("${aws:username}-*")))],
    "wildcard-case": [policy(allow("AIRFLOW:get*"))],
    "tag-on-create": [policy(allow("airflow:CreateEnvironment", "*", Condition={
        "StringEquals": {"aws:RequestTag/cost-center": "42"},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["cost-center", "owner"]}}))],
    "source-ip": [policy(allow("airflow:ListEnvironments", "*", Condition={
        "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})),
                  policy(allow("airflow:GetEnvironment", "*", Condition={
                      "IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}))],
    "wrong-region": [policy(allow("airflow:*", "arn:aws:airflow:eu-west-1:*:environment/*"))],
    "http-only": [policy(allow("airflow:*"), deny("airflow:*", "*", Condition={
        "Bool": {"aws:SecureTransport": "false"}}))],
}

# (principal, call, environment) -> allowed?
MATRIX: list[tuple[str, str, str, bool]] = [
    ("nobody", "get", "team-a-1", False),
    ("nobody", "list", "", False),
    ("reader", "get", "team-a-1", True),
    ("reader", "list", "", True),
    ("reader", "list_tags", "team-a-1", True),
    ("reader", "tag", "team-a-1", False),
    ("reader", "delete", "team-a-1", False),
    ("reader", "create", "new-env", False),
    ("team-a", "get", "team-a-1", True),
    ("team-a", "tag", "team-a-1", True),
    ("team-a", "delete", "team-a-1", True),
    ("team-a", "get", "team-b", False),
    ("team-a", "delete", "team-b", False),
    ("team-a", "list", "", True),
    ("team-a", "create", "team-a-new", True),
    ("team-a", "create", "team-b-new", False),
    ("no-delete", "get", "team-b", True),
    ("no-delete", "tag", "team-b", True),
    ("no-delete", "delete", "team-b", False),
    ("not-action", "get", "team-b", True),
    ("not-action", "list", "", False),
    ("not-action", "delete", "team-b", False),
    ("not-resource", "get", "team-a-1", True),
    ("not-resource", "get", "team-b", False),
    ("not-resource", "list", "", True),
    ("tag-owner", "get", "team-b", True),     # team-b is tagged owner=tag-owner
    ("tag-owner", "get", "team-a-1", False),  # team-a-1 is tagged owner=someone-else
    ("own-prefix", "get", "own-prefix-env", True),
    ("own-prefix", "get", "team-b", False),
    ("wildcard-case", "get", "team-b", True),
    ("wildcard-case", "list", "", False),
    ("tag-on-create", "create-tagged", "cc-env", True),
    ("tag-on-create", "create", "cc-env", False),
    ("tag-on-create", "create-extra-tag", "cc-env", False),
    ("source-ip", "list", "", False),
    ("source-ip", "get", "team-b", True),
    ("wrong-region", "get", "team-b", False),
    ("http-only", "get", "team-b", False),
]


def call(mwaa: Any, action: str, environment: str) -> None:
    arn = ARN.format(environment)
    if action == "get":
        mwaa.get_environment(Name=environment)
    elif action == "list":
        mwaa.list_environments()
    elif action == "list_tags":
        mwaa.list_tags_for_resource(ResourceArn=arn)
    elif action == "tag":
        mwaa.tag_resource(ResourceArn=arn, Tags={"touched": "yes"})
    elif action == "delete":
        mwaa.delete_environment(Name=environment)
    elif action == "create":
        mwaa.create_environment(**create_args(environment))
    elif action == "create-tagged":
        mwaa.create_environment(**create_args(environment, Tags={"cost-center": "42"}))
    elif action == "create-extra-tag":
        mwaa.create_environment(**create_args(environment, Tags={"cost-center": "42",
                                                                 "secret": "x"}))
    else:
        raise AssertionError(action)


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningAirgate,
                                                                         dict[str, Any]]]:
    """One server with every principal and a few environments (SQLite; the store is
    exercised on PostgreSQL by the other suites)."""
    home: Path = tmp_path_factory.mktemp("authz") / "home"
    with running_airgate(home) as server:
        clients = users_with_policies(server, PRINCIPALS)
        admin = server.client()
        admin.create_environment(**create_args("team-a-1", Tags={"owner": "someone-else"}))
        admin.create_environment(**create_args("team-b", Tags={"owner": "tag-owner"}))
        admin.create_environment(**create_args("own-prefix-env"))
        yield server, clients


@pytest.mark.parametrize(("principal", "action", "environment", "allowed"), MATRIX,
                         ids=[f"{p}-{a}-{e or 'all'}" for p, a, e, _ in MATRIX])
def test_matrix(populated: tuple[RunningAirgate, dict[str, Any]], principal: str, action: str,
                environment: str, allowed: bool) -> None:
    server, clients = populated
    admin = server.client()
    try:
        call(clients[principal], action, environment)
        outcome = True
    except botocore.exceptions.ClientError as error:
        assert error.response["Error"]["Code"] == "AccessDeniedException", error.response
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        message = error.response["Error"]["Message"]
        assert f"arn:aws:iam::000000000000:user/{principal}" in message
        assert f"airflow:{_operation(action)}" in message
        outcome = False
    finally:
        _restore(admin, action, environment)
    assert outcome is allowed


def _operation(action: str) -> str:
    return {"get": "GetEnvironment", "list": "ListEnvironments",
            "list_tags": "ListTagsForResource", "tag": "TagResource",
            "delete": "DeleteEnvironment"}.get(action, "CreateEnvironment")


def _restore(admin: Any, action: str, environment: str) -> None:
    """Undo what an allowed call changed, so the matrix rows stay independent."""
    names = admin.list_environments()["Environments"]
    if action == "delete" and environment not in names:
        tags = {"owner": "tag-owner"} if environment == "team-b" else {"owner": "someone-else"}
        admin.create_environment(**create_args(environment, Tags=tags))
    if action.startswith("create") and environment in names:
        admin.delete_environment(Name=environment)
    if action == "tag" and environment in names:
        admin.untag_resource(ResourceArn=ARN.format(environment), tagKeys=["touched"])


def test_denial_changes_nothing(populated: tuple[RunningAirgate, dict[str, Any]]) -> None:
    server, clients = populated
    before = server.client().get_environment(Name="team-b")["Environment"]
    with pytest.raises(botocore.exceptions.ClientError) as tagging:
        clients["reader"].tag_resource(ResourceArn=ARN.format("team-b"), Tags={"x": "y"})
    with pytest.raises(botocore.exceptions.ClientError) as deleting:
        clients["no-delete"].delete_environment(Name="team-b")
    for refused in (tagging, deleting):
        assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    after = server.client().get_environment(Name="team-b")["Environment"]
    assert after == before


def test_managed_policy_and_assumed_role(populated: tuple[RunningAirgate,
                                                          dict[str, Any]]) -> None:
    server, _ = populated
    identities = server.airgate.identities
    managed = identities.create_policy("ReadTeamB", policy(
        allow("airflow:GetEnvironment", ARN.format("team-b"))))
    identities.create_user("managed-user")
    identities.attach_policy("user", "managed-user", managed["Arn"])
    user = server.client(identities.create_access_key("managed-user"))
    assert user.get_environment(Name="team-b")["Environment"]["Name"] == "team-b"
    with pytest.raises(user.exceptions.AccessDeniedException):
        user.get_environment(Name="team-a-1")

    identities.create_role("ops")
    identities.attach_policy("role", "ops", managed["Arn"])
    identities.put_inline_policy("role", "ops", "no-b", policy(
        deny("airflow:GetEnvironment", ARN.format("team-b"), Condition={
            "StringLike": {"aws:userid": "*:night-shift"}})))
    day = server.client(identities.assume_role("ops", "day-shift")["Credentials"])
    night = server.client(identities.assume_role("ops", "night-shift")["Credentials"])
    assert day.get_environment(Name="team-b")["Environment"]["Name"] == "team-b"
    with pytest.raises(night.exceptions.AccessDeniedException) as excinfo:
        night.get_environment(Name="team-b")
    assert "assumed-role/ops/night-shift" in excinfo.value.response["Error"]["Message"]

    identities.detach_policy("user", "managed-user", managed["Arn"])
    with pytest.raises(user.exceptions.AccessDeniedException):
        user.get_environment(Name="team-b")
