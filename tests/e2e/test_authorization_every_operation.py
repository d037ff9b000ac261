"""Authorisation can't be escalated: a table of principals and policies, every MWAA
operation airgate serves, two environments, and the outcome AWS's policy evaluation logic
gives for each (explicit Deny wins, then an Allow whose Action/NotAction, Resource/NotResource
and Condition all match, else the implicit deny).

Environments: `dev` (tags team=data) and `prod` (tags team=platform, tier=production). The
REST API behind them is a recording stand-in, so InvokeRestApi's chosen Airflow role can be
read off the token that reached it. CreateCliToken and CreateWebLoginToken answer
ValidationException after authorisation here (the stand-in has no web front); that they
work end to end is tested against real Airflow in test_environment_front.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import botocore.session
import jwt
import pytest
from botocore import xform_name

from airgate.mwaa.provider import MwaaProvider
from tests.support import (
    RunningAirgate,
    TrivialUpstream,
    UpstreamRuntime,
    create_environment_args,
    running_airgate,
    trivial_upstream,
    users_with_policies,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ACCOUNT = "000000000000"
ENVIRONMENTS = {"dev": {"team": "data"}, "prod": {"team": "platform", "tier": "production"}}


def env_arn(name: str) -> str:
    return f"arn:aws:airflow:us-east-1:{ACCOUNT}:environment/{name}"


def role_arn(environment: str, role: str) -> str:
    return f"arn:aws:airflow:us-east-1:{ACCOUNT}:role/{environment}/{role}"


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: Any = "airflow:*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any = "airflow:*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


PRINCIPALS: dict[str, list[str]] = {
    "nobody": [],
    "deny-prod": [policy(allow()), policy(deny("airflow:*", [
        env_arn("prod"), role_arn("prod", "*")]))],
    "viewer-on-dev": [policy(allow(["airflow:InvokeRestApi", "airflow:CreateWebLoginToken"],
                                   role_arn("dev", "Viewer")),
                             allow("airflow:CreateCliToken", env_arn("dev")))],
    "not-action": [policy({"Effect": "Allow", "NotAction": ["airflow:Delete*",
                                                            "airflow:Update*"],
                           "Resource": "*"})],
    # NotResource names only the environment ARN: the role ARNs of prod still match, so
    # InvokeRestApi on prod is allowed, exactly as at AWS.
    "not-resource": [policy({"Effect": "Allow", "Action": "airflow:*",
                             "NotResource": env_arn("prod")})],
    "from-loopback": [policy(allow(Condition={"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}))],
    "from-elsewhere": [policy(allow(Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))],
    "deny-outside-net": [policy(allow(), deny(Condition={
        "NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]}}))],
    "in-time-window": [policy(allow(Condition={
        "DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"},
        "DateLessThan": {"aws:CurrentTime": "2100-01-01T00:00:00Z"}}))],
    "expired-window": [policy(allow(Condition={
        "DateLessThan": {"aws:CurrentTime": "2021-01-01T00:00:00Z"}}))],
    "team-data-tag": [policy(allow(Condition={
        "StringEquals": {"aws:ResourceTag/team": "data"}}))],
    "deny-production-tag": [policy(allow(), deny(Condition={
        "StringEquals": {"aws:ResourceTag/tier": "production"}}))],
    "no-admin-role": [policy(allow(["airflow:InvokeRestApi", "airflow:CreateWebLoginToken"],
                                   role_arn("*", "*")),
                             deny(["airflow:InvokeRestApi", "airflow:CreateWebLoginToken"],
                                  role_arn("*", "Admin")))],
    "get-only-wildcard": [policy(allow("airflow:Get*"), allow("airflow:List*"))],
}

OPERATIONS = ["CreateEnvironment", "GetEnvironment", "ListEnvironments", "UpdateEnvironment",
              "DeleteEnvironment", "TagResource", "UntagResource", "ListTagsForResource",
              "InvokeRestApi", "CreateCliToken", "CreateWebLoginToken"]
ROLE_SCOPED = {"InvokeRestApi", "CreateWebLoginToken"}
ALL = {(op, env) for op in OPERATIONS for env in ENVIRONMENTS}


def ops(*names: str, envs: tuple[str, ...] = ("dev", "prod")) -> set[tuple[str, str]]:
    return {(op, env) for op in names for env in envs}


# principal -> the (operation, environment) pairs AWS's evaluation allows; all else denied.
# CreateEnvironment's resource is a new environment, `dev-new` or `prod-new`, untagged.
ALLOWED: dict[str, set[tuple[str, str]]] = {
    "nobody": set(),
    "deny-prod": ALL - ops(*OPERATIONS, envs=("prod",)) | ops("ListEnvironments",
                                                               "CreateEnvironment"),
    "viewer-on-dev": ops("InvokeRestApi", "CreateWebLoginToken", "CreateCliToken",
                         envs=("dev",)),
    "not-action": ALL - ops("DeleteEnvironment", "UpdateEnvironment"),
    "not-resource": ALL - ops("GetEnvironment", "UpdateEnvironment",
                              "DeleteEnvironment", "TagResource", "UntagResource",
                              "ListTagsForResource", "CreateCliToken", envs=("prod",)),
    "from-loopback": ALL,
    "from-elsewhere": set(),
    "deny-outside-net": set(),
    "in-time-window": ALL,
    "expired-window": set(),
    # Only calls about an existing environment carry aws:ResourceTag; ListEnvironments and
    # CreateEnvironment (a new environment) have none, so the condition fails for them.
    "team-data-tag": ALL - ops(*OPERATIONS, envs=("prod",)) - ops("ListEnvironments",
                                                                 "CreateEnvironment"),
    "deny-production-tag": ALL - (ops(*OPERATIONS, envs=("prod",))
                                  - ops("ListEnvironments", "CreateEnvironment")),
    "no-admin-role": ops("InvokeRestApi", "CreateWebLoginToken"),
    "get-only-wildcard": ops("GetEnvironment", "ListEnvironments", "ListTagsForResource"),
}

# For InvokeRestApi, the Airflow role a principal acts as (first allowed of Admin, Op,
# User, Viewer, Public): never more than its policies allow.
EXPECTED_AIRFLOW_ROLE = {"viewer-on-dev": "Viewer", "no-admin-role": "Op"}


class Table:
    def __init__(self, server: RunningAirgate, upstream: TrivialUpstream,
                 clients: dict[str, Any]) -> None:
        self.server, self.upstream, self.clients = server, upstream, clients

    def restore(self) -> None:
        """Put both environments back as they were, whatever an allowed call did."""
        admin = self.server.client()
        existing = set(admin.list_environments()["Environments"])
        for name, tags in ENVIRONMENTS.items():
            if name not in existing:
                admin.create_environment(**create_environment_args(name), Tags=tags)
            current = admin.list_tags_for_resource(ResourceArn=env_arn(name))["Tags"]
            extra = [key for key in current if key not in tags]
            if extra:
                admin.untag_resource(ResourceArn=env_arn(name), tagKeys=extra)
            admin.tag_resource(ResourceArn=env_arn(name), Tags=tags)
        for name in existing - set(ENVIRONMENTS):
            admin.delete_environment(Name=name)


CALLS: dict[str, Callable[[Any, str], Any]] = {
    "CreateEnvironment": lambda c, env: c.create_environment(
        **create_environment_args(f"{env}-new")),
    "GetEnvironment": lambda c, env: c.get_environment(Name=env),
    "ListEnvironments": lambda c, env: c.list_environments(),
    "UpdateEnvironment": lambda c, env: c.update_environment(Name=env, MaxWorkers=3),
    "DeleteEnvironment": lambda c, env: c.delete_environment(Name=env),
    "TagResource": lambda c, env: c.tag_resource(ResourceArn=env_arn(env),
                                                 Tags={"touched": "yes"}),
    "UntagResource": lambda c, env: c.untag_resource(ResourceArn=env_arn(env),
                                                     tagKeys=["team"]),
    "ListTagsForResource": lambda c, env: c.list_tags_for_resource(ResourceArn=env_arn(env)),
    "InvokeRestApi": lambda c, env: c.invoke_rest_api(Name=env, Method="GET",
                                                      Path="/version"),
    "CreateCliToken": lambda c, env: c.create_cli_token(Name=env),
    "CreateWebLoginToken": lambda c, env: c.create_web_login_token(Name=env),
}
# What an allowed call may still answer here (see the module's docstring).
AFTER_AUTHORISATION = {"CreateCliToken": "ValidationException",
                       "CreateWebLoginToken": "ValidationException"}


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Table]:
    home: Path = tmp_path_factory.mktemp("authz-table") / "home"
    with trivial_upstream() as upstream, running_airgate(
            home, runtime_factory=UpstreamRuntime.factory(upstream.port)) as server:
        clients = users_with_policies(server, PRINCIPALS)
        result = Table(server, upstream, clients)
        result.restore()
        yield result


CASES = [(principal, operation, env) for principal in PRINCIPALS for operation in OPERATIONS
         for env in ENVIRONMENTS]


@pytest.mark.parametrize(("principal", "operation", "env"), CASES,
                         ids=[f"{p}-{o}-{e}" for p, o, e in CASES])
def test_every_operation(table: Table, principal: str, operation: str, env: str) -> None:
    expected = (operation, env) in ALLOWED[principal]
    before = state(table.server)
    sent = table.upstream.requests
    try:
        CALLS[operation](table.clients[principal], env)
        outcome = "allowed"
    except botocore.exceptions.ClientError as error:
        code = error.response["Error"]["Code"]
        if code == "AccessDeniedException":
            outcome = "denied"
            assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        else:
            assert code == AFTER_AUTHORISATION.get(operation), error.response["Error"]
            outcome = "allowed"
    try:
        assert outcome == ("allowed" if expected else "denied")
        if outcome == "denied":  # a refusal changes nothing and reaches nothing
            assert state(table.server) == before
            assert table.upstream.requests == sent
        elif operation == "InvokeRestApi":
            token = table.upstream.received[-1][2]["Authorization"].removeprefix("Bearer ")
            role = jwt.decode(token, options={"verify_signature": False})["role"]
            assert role.lower() == EXPECTED_AIRFLOW_ROLE.get(principal, "Admin").lower()
    finally:
        table.restore()


def state(server: RunningAirgate) -> Any:
    return sorted((r.name, r.status, json.dumps(r.spec, sort_keys=True, default=str),
                   sorted(r.tags.items())) for r in server.airgate.environments.all())


def test_the_table_covers_every_served_operation() -> None:
    """A new operation must join the table before it can ship."""
    model = botocore.session.get_session().get_service_model("mwaa")
    served = {name for name in model.operation_names
              if callable(getattr(MwaaProvider, xform_name(name), None))}
    assert served == set(OPERATIONS)
