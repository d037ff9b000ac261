"""Authorisation can't be escalated: a table of principals and policies, every MWAA
operation airgate serves, two environments, and the outcome AWS's policy evaluation logic
gives for each (explicit Deny wins, then an Allow whose Action/NotAction, Resource/NotResource
and Condition all match, else the implicit deny). A second table does the same for every IAM
and STS operation airgate serves, on a user, a role and managed policies.

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

from airgate.auth.identities import Identities
from airgate.mwaa.provider import MwaaProvider
from airgate.services import service_model
from airgate.services.iam import RESOURCES
from airgate.services.sts.provider import StsProvider
from tests.e2e.aws_clients import client
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
    """A new operation must join a table before it can ship."""
    model = botocore.session.get_session().get_service_model("mwaa")
    served = {name for name in model.operation_names
              if callable(getattr(MwaaProvider, xform_name(name), None))}
    assert served == set(OPERATIONS)
    sts = {name for name in service_model("sts").operation_names
           if callable(getattr(StsProvider, xform_name(name), None))}
    assert sts | set(RESOURCES) == set(IAM_STS_OPERATIONS)


# --- IAM and STS ----------------------------------------------------------------------------

IAM_ARN = f"arn:aws:iam::{ACCOUNT}"
TARGET_ROLE = f"{IAM_ARN}:role/TargetRole"
TARGET_POLICY = f"{IAM_ARN}:policy/TargetPolicy"
SPARE_POLICY = f"{IAM_ARN}:policy/Spare"
TRUST_ACCOUNT = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": f"{IAM_ARN}:root"}, "Action": "sts:AssumeRole"}]})
INLINE = policy(allow("airflow:ListEnvironments"))

IAM_PRINCIPALS: dict[str, list[str]] = {
    "nobody": [],
    "iam-all": [policy(allow("iam:*"))],
    "iam-read": [policy(allow(["iam:Get*", "iam:List*"]))],
    "team-users": [policy(allow("iam:*", f"{IAM_ARN}:user/team/*"))],
    "deny-user-policy": [policy(allow(["iam:*", "sts:*"])), policy(deny("iam:*UserPolicy"))],
    "assume-target": [policy(allow("sts:AssumeRole", TARGET_ROLE))],
    "spare-only": [policy(allow(["iam:AttachUserPolicy", "iam:AttachRolePolicy"], Condition={
        "ArnEquals": {"iam:PolicyARN": SPARE_POLICY}}))],
    "not-delete": [policy({"Effect": "Allow", "NotAction": "iam:Delete*", "Resource": "*"})],
    "deny-all": [policy(deny("*"))],
}

# Each call is about the user `target` (path /team/), the role TargetRole, or the managed
# policy TargetPolicy (attached to both); new entities are created under those names' paths.
IAM_CALLS: dict[str, Callable[[Any, Any, Any], Any]] = {
    "CreateUser": lambda c, t, s: c["iam"].create_user(UserName="new-user", Path="/team/"),
    "GetUser": lambda c, t, s: c["iam"].get_user(UserName="target"),
    "ListUsers": lambda c, t, s: c["iam"].list_users(),
    "DeleteUser": lambda c, t, s: c["iam"].delete_user(UserName="target"),
    "CreateAccessKey": lambda c, t, s: c["iam"].create_access_key(UserName="target"),
    "ListAccessKeys": lambda c, t, s: c["iam"].list_access_keys(UserName="target"),
    "UpdateAccessKey": lambda c, t, s: c["iam"].update_access_key(
        UserName="target", AccessKeyId=t.target_key, Status="Inactive"),
    "DeleteAccessKey": lambda c, t, s: c["iam"].delete_access_key(
        UserName="target", AccessKeyId=t.target_key),
    "PutUserPolicy": lambda c, t, s: c["iam"].put_user_policy(
        UserName="target", PolicyName="added", PolicyDocument=INLINE),
    "GetUserPolicy": lambda c, t, s: c["iam"].get_user_policy(UserName="target",
                                                              PolicyName="inline"),
    "DeleteUserPolicy": lambda c, t, s: c["iam"].delete_user_policy(UserName="target",
                                                                    PolicyName="inline"),
    "ListUserPolicies": lambda c, t, s: c["iam"].list_user_policies(UserName="target"),
    "AttachUserPolicy": lambda c, t, s: c["iam"].attach_user_policy(UserName="target",
                                                                    PolicyArn=SPARE_POLICY),
    "DetachUserPolicy": lambda c, t, s: c["iam"].detach_user_policy(UserName="target",
                                                                    PolicyArn=TARGET_POLICY),
    "ListAttachedUserPolicies": lambda c, t, s: c["iam"].list_attached_user_policies(
        UserName="target"),
    "CreateRole": lambda c, t, s: c["iam"].create_role(
        RoleName="NewRole", AssumeRolePolicyDocument=TRUST_ACCOUNT),
    "GetRole": lambda c, t, s: c["iam"].get_role(RoleName="TargetRole"),
    "ListRoles": lambda c, t, s: c["iam"].list_roles(),
    "DeleteRole": lambda c, t, s: c["iam"].delete_role(RoleName="TargetRole"),
    "UpdateAssumeRolePolicy": lambda c, t, s: c["iam"].update_assume_role_policy(
        RoleName="TargetRole", PolicyDocument=TRUST_ACCOUNT.replace("AssumeRole", "Assume*")),
    "PutRolePolicy": lambda c, t, s: c["iam"].put_role_policy(
        RoleName="TargetRole", PolicyName="added", PolicyDocument=INLINE),
    "GetRolePolicy": lambda c, t, s: c["iam"].get_role_policy(RoleName="TargetRole",
                                                              PolicyName="inline"),
    "DeleteRolePolicy": lambda c, t, s: c["iam"].delete_role_policy(RoleName="TargetRole",
                                                                    PolicyName="inline"),
    "ListRolePolicies": lambda c, t, s: c["iam"].list_role_policies(RoleName="TargetRole"),
    "AttachRolePolicy": lambda c, t, s: c["iam"].attach_role_policy(RoleName="TargetRole",
                                                                    PolicyArn=SPARE_POLICY),
    "DetachRolePolicy": lambda c, t, s: c["iam"].detach_role_policy(RoleName="TargetRole",
                                                                    PolicyArn=TARGET_POLICY),
    "ListAttachedRolePolicies": lambda c, t, s: c["iam"].list_attached_role_policies(
        RoleName="TargetRole"),
    "CreatePolicy": lambda c, t, s: c["iam"].create_policy(PolicyName="NewPolicy",
                                                           PolicyDocument=INLINE),
    "GetPolicy": lambda c, t, s: c["iam"].get_policy(PolicyArn=TARGET_POLICY),
    "GetPolicyVersion": lambda c, t, s: c["iam"].get_policy_version(PolicyArn=TARGET_POLICY,
                                                                    VersionId="v1"),
    "ListPolicyVersions": lambda c, t, s: c["iam"].list_policy_versions(
        PolicyArn=TARGET_POLICY),
    "ListPolicies": lambda c, t, s: c["iam"].list_policies(),
    "DeletePolicy": lambda c, t, s: c["iam"].delete_policy(PolicyArn=TARGET_POLICY),
    "GetCallerIdentity": lambda c, t, s: c["sts"].get_caller_identity(),
    "GetSessionToken": lambda c, t, s: c["sts"].get_session_token(),
    "AssumeRole": lambda c, t, s: c["sts"].assume_role(RoleArn=TARGET_ROLE,
                                                       RoleSessionName="table"),
}
IAM_STS_OPERATIONS = list(IAM_CALLS)
_IAM = [name for name in IAM_STS_OPERATIONS if name in RESOURCES]
_USER_OPERATIONS = {"CreateUser", "GetUser", "DeleteUser", "CreateAccessKey",
                    "ListAccessKeys", "UpdateAccessKey", "DeleteAccessKey", "PutUserPolicy",
                    "GetUserPolicy", "DeleteUserPolicy", "ListUserPolicies",
                    "AttachUserPolicy", "DetachUserPolicy", "ListAttachedUserPolicies"}
_UNCONTROLLED = {"GetCallerIdentity", "GetSessionToken"}  # no policy can refuse these
IAM_ALLOWED: dict[str, set[str]] = {
    "nobody": _UNCONTROLLED,
    "iam-all": set(_IAM) | _UNCONTROLLED,
    "iam-read": {name for name in _IAM if name.startswith(("Get", "List"))} | _UNCONTROLLED,
    "team-users": _USER_OPERATIONS | _UNCONTROLLED,
    "deny-user-policy": set(IAM_STS_OPERATIONS) - {
        "PutUserPolicy", "GetUserPolicy", "DeleteUserPolicy", "AttachUserPolicy",
        "DetachUserPolicy"},
    "assume-target": {"AssumeRole"} | _UNCONTROLLED,
    "spare-only": {"AttachUserPolicy", "AttachRolePolicy"} | _UNCONTROLLED,
    # NotAction takes in every other service's actions too: sts:AssumeRole included.
    "not-delete": {name for name in IAM_STS_OPERATIONS if not name.startswith("Delete")},
    "deny-all": _UNCONTROLLED,
}
# What an allowed call may still answer (the entity in use; authorisation came first).
IAM_AFTER_AUTHORISATION = {"DeleteUser": "DeleteConflict", "DeleteRole": "DeleteConflict",
                           "DeletePolicy": "DeleteConflict"}


class IamTable:
    """The principals' clients and the entities the calls are about, put back as they were
    after every call that changed them."""

    def __init__(self, server: RunningAirgate) -> None:
        self.server = server
        self.identities: Identities = server.airgate.identities
        self.clients: dict[str, dict[str, Any]] = {}
        for name, documents in IAM_PRINCIPALS.items():
            self.identities.create_user(name)
            for index, document in enumerate(documents):
                self.identities.put_inline_policy("user", name, f"p{index}", document)
            key = self.identities.create_access_key(name)
            self.clients[name] = {service: client(server, service, key)
                                  for service in ("iam", "sts")}
        self.target_key = ""
        self.restore()
        self.baseline = self.state()

    def state(self) -> Any:
        """Every identity, long-term key, policy and attachment (not temporary keys)."""
        ids = self.identities
        users = ids.list_users()
        roles = ids.list_roles()
        return (
            [(u["UserName"], u["Path"]) for u in users],
            {u["UserName"]: ([(k["AccessKeyId"], k["Status"]) for k in ids.list_access_keys(
                u["UserName"])], [ids.inline_policy("user", u["UserName"], p)["PolicyDocument"]
                                  for p in ids.list_inline_policies("user", u["UserName"])],
                ids.list_attached_policies("user", u["UserName"])) for u in users},
            {r["RoleName"]: (r["AssumeRolePolicyDocument"],
                             ids.list_inline_policies("role", r["RoleName"]),
                             ids.list_attached_policies("role", r["RoleName"]))
             for r in roles},
            [(p["PolicyName"], p["AttachmentCount"]) for p in ids.list_policies()],
        )

    def restore(self) -> None:
        ids = self.identities
        for kind, names in (("user", [u["UserName"] for u in ids.list_users()]),
                            ("role", [r["RoleName"] for r in ids.list_roles()])):
            for name in names:
                if name in IAM_PRINCIPALS:
                    continue
                for attached in ids.list_attached_policies(kind, name):  # type: ignore[arg-type]
                    ids.detach_policy(kind, name, attached["PolicyArn"])  # type: ignore[arg-type]
                for inline in ids.list_inline_policies(kind, name):  # type: ignore[arg-type]
                    ids.delete_inline_policy(kind, name, inline)  # type: ignore[arg-type]
                if kind == "user":
                    for key in ids.list_access_keys(name):
                        ids.delete_access_key(name, key["AccessKeyId"])
                    ids.delete_user(name)
                else:
                    ids.delete_role(name)
        for existing in ids.list_policies():
            ids.delete_policy(existing["Arn"])
        ids.create_policy("TargetPolicy", INLINE)
        ids.create_policy("Spare", INLINE)
        ids.create_user("target", path="/team/")
        self.target_key = ids.create_access_key("target")["AccessKeyId"]
        ids.create_role("TargetRole", TRUST_ACCOUNT)
        for kind, name in (("user", "target"), ("role", "TargetRole")):
            ids.put_inline_policy(kind, name, "inline", INLINE)  # type: ignore[arg-type]
            ids.attach_policy(kind, name, TARGET_POLICY)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def iam_table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IamTable]:
    home: Path = tmp_path_factory.mktemp("iam-table") / "home"
    with running_airgate(home) as server:
        yield IamTable(server)


IAM_CASES = [(principal, operation) for principal in IAM_PRINCIPALS
             for operation in IAM_STS_OPERATIONS]


@pytest.mark.parametrize(("principal", "operation"), IAM_CASES,
                         ids=[f"{p}-{o}" for p, o in IAM_CASES])
def test_every_iam_and_sts_operation(iam_table: IamTable, principal: str,
                                     operation: str) -> None:
    expected = operation in IAM_ALLOWED[principal]
    try:
        IAM_CALLS[operation](iam_table.clients[principal], iam_table, iam_table.server)
        outcome = "allowed"
    except botocore.exceptions.ClientError as error:
        code = error.response["Error"]["Code"]
        if code == "AccessDenied":
            outcome = "denied"
            assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        else:
            assert code == IAM_AFTER_AUTHORISATION.get(operation), error.response["Error"]
            outcome = "allowed"
    after = iam_table.state()
    try:
        assert outcome == ("allowed" if expected else "denied")
        if outcome == "denied":  # a refusal changes nothing
            assert after == iam_table.baseline
    finally:
        if after != iam_table.baseline:
            iam_table.restore()
            iam_table.baseline = iam_table.state()
