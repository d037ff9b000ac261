"""IAM at airgate's endpoint, to real boto3 clients and the AWS CLI: every operation airgate
serves round trip, AWS's errors exactly, policy documents URL-encoded on the wire and decoded
by botocore, and every call authorised by IAM policy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import botocore.auth
import botocore.credentials
import httpx
import pytest
from botocore.awsrequest import AWSRequest

from tests.e2e.aws_clients import (
    ACCOUNT,
    allow,
    client,
    deny,
    failure,
    policy,
    role_arn,
    temporary,
    trust,
    user_arn,
)
from tests.support import RunningAirgate, running_airgate

pytestmark = pytest.mark.e2e

READ_ENVIRONMENTS = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["airflow:GetEnvironment", "airflow:ListEnvironments"],
     "Resource": "*"}]}
# As people write them: indented, over several lines, the text kept as given.
PRETTY = json.dumps(READ_ENVIRONMENTS, indent=2)
TRUST_ACCOUNT = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
     "Action": "sts:AssumeRole"}]}


def policy_arn(name: str, path: str = "/") -> str:
    return f"arn:aws:iam::{ACCOUNT}:policy{path}{name}"


def test_users_and_access_keys(airgate_server: RunningAirgate) -> None:
    iam = client(airgate_server, "iam")
    created = iam.create_user(UserName="alice", Path="/team/")["User"]
    assert created["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/team/alice"
    assert created["UserId"].startswith("AIDA") and created["Path"] == "/team/"
    assert iam.get_user(UserName="ALICE")["User"] == created  # names ignore case
    assert iam.get_user()["User"]["Arn"] == user_arn("admin")  # no name: the caller

    key = iam.create_access_key(UserName="alice")["AccessKey"]
    assert key["AccessKeyId"].startswith("AKIA") and len(key["SecretAccessKey"]) == 40
    assert key["Status"] == "Active" and key["UserName"] == "alice"
    listed = iam.list_access_keys(UserName="alice")["AccessKeyMetadata"]
    assert [(k["AccessKeyId"], k["Status"]) for k in listed] == [(key["AccessKeyId"], "Active")]
    assert "SecretAccessKey" not in listed[0]
    alice = {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}
    assert client(airgate_server, "sts", alice).get_caller_identity()["Arn"] == created["Arn"]

    iam.update_access_key(UserName="alice", AccessKeyId=key["AccessKeyId"], Status="Inactive")
    assert iam.list_access_keys(UserName="alice")["AccessKeyMetadata"][0]["Status"] == "Inactive"
    assert failure(lambda: client(airgate_server, "sts", alice).get_caller_identity())[:2] == (
        "InvalidClientTokenId", 403)
    iam.delete_access_key(UserName="alice", AccessKeyId=key["AccessKeyId"])
    assert iam.list_access_keys(UserName="alice")["AccessKeyMetadata"] == []

    for name in ("bob", "carol", "dave"):
        iam.create_user(UserName=name)
    pages = list(iam.get_paginator("list_users").paginate(PaginationConfig={"PageSize": 2}))
    assert [len(page["Users"]) for page in pages] == [2, 2, 1]
    assert [u["UserName"] for page in pages for u in page["Users"]] == [
        "admin", "alice", "bob", "carol", "dave"]
    assert [u["UserName"] for u in iam.list_users(PathPrefix="/team/")["Users"]] == ["alice"]
    iam.delete_user(UserName="alice")
    assert failure(lambda: iam.get_user(UserName="alice")) == (
        "NoSuchEntity", 404, "The user with name alice cannot be found.")


def test_roles_and_trust_policies(airgate_server: RunningAirgate) -> None:
    iam = client(airgate_server, "iam")
    created = iam.create_role(RoleName="Reporting", Path="/data/", MaxSessionDuration=7200,
                              AssumeRolePolicyDocument=json.dumps(TRUST_ACCOUNT))["Role"]
    assert created["Arn"] == f"arn:aws:iam::{ACCOUNT}:role/data/Reporting"
    assert created["AssumeRolePolicyDocument"] == TRUST_ACCOUNT  # decoded by botocore
    assert created["MaxSessionDuration"] == 7200 and created["RoleId"].startswith("AROA")
    assert iam.get_role(RoleName="reporting")["Role"] == created
    assert [r["RoleName"] for r in iam.list_roles(PathPrefix="/data/")["Roles"]] == [
        "Reporting"]

    vendor = {**TRUST_ACCOUNT, "Statement": [{**TRUST_ACCOUNT["Statement"][0], "Condition": {
        "StringEquals": {"sts:ExternalId": "x-1"}}}]}
    iam.update_assume_role_policy(RoleName="Reporting", PolicyDocument=json.dumps(vendor))
    assert iam.get_role(RoleName="Reporting")["Role"]["AssumeRolePolicyDocument"] == vendor
    sts = client(airgate_server, "sts")  # the administrator may assume it (account trust)
    assert failure(lambda: sts.assume_role(RoleArn=created["Arn"], RoleSessionName="s1"))[
        :2] == ("AccessDenied", 403)
    assert sts.assume_role(RoleArn=created["Arn"], RoleSessionName="s1", ExternalId="x-1")

    for bad, message in [
            ('{"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*",'
             ' "Principal": "*"}]}', "Has prohibited field Resource"),
            ('{"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole"}]}',
             "Missing required field Principal"),
            ('{"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": '
             '{"AWS": "arn:aws:iam::*:root"}}]}', "Invalid principal in policy")]:
        code, status, said = failure(lambda bad=bad: iam.update_assume_role_policy(
            RoleName="Reporting", PolicyDocument=bad))
        assert (code, status) == ("MalformedPolicyDocument", 400) and message in said
        assert failure(lambda bad=bad: iam.create_role(
            RoleName="Other", AssumeRolePolicyDocument=bad))[:2] == (
            "MalformedPolicyDocument", 400)
    assert iam.get_role(RoleName="Reporting")["Role"]["AssumeRolePolicyDocument"] == vendor
    iam.delete_role(RoleName="Reporting")
    assert failure(lambda: iam.get_role(RoleName="Reporting")) == (
        "NoSuchEntity", 404, "The role with name Reporting cannot be found.")


@pytest.mark.parametrize("kind", ["user", "role"])
def test_inline_policies(airgate_server: RunningAirgate, kind: str) -> None:
    iam = client(airgate_server, "iam")
    owner = {"UserName": "alice"} if kind == "user" else {"RoleName": "Ops"}
    if kind == "user":
        iam.create_user(UserName="alice")
    else:
        iam.create_role(RoleName="Ops", AssumeRolePolicyDocument=json.dumps(TRUST_ACCOUNT))
    put = getattr(iam, f"put_{kind}_policy")
    get = getattr(iam, f"get_{kind}_policy")
    put(**owner, PolicyName="read", PolicyDocument=PRETTY)
    answer = get(**owner, PolicyName="read")
    assert answer["PolicyDocument"] == READ_ENVIRONMENTS
    assert answer["PolicyName"] == "read" and answer[next(iter(owner))] == next(
        iter(owner.values()))
    assert getattr(iam, f"list_{kind}_policies")(**owner)["PolicyNames"] == ["read"]
    assert failure(lambda: put(**owner, PolicyName="bad", PolicyDocument='{"Statement": 1}'))[
        :2] == ("MalformedPolicyDocument", 400)
    assert failure(lambda: getattr(iam, f"delete_{kind}")(**owner))[:2] == (
        "DeleteConflict", 409)
    getattr(iam, f"delete_{kind}_policy")(**owner, PolicyName="read")
    assert failure(lambda: get(**owner, PolicyName="read"))[:2] == ("NoSuchEntity", 404)
    getattr(iam, f"delete_{kind}")(**owner)


def test_managed_policies(airgate_server: RunningAirgate) -> None:
    iam = client(airgate_server, "iam")
    iam.create_user(UserName="alice")
    iam.create_role(RoleName="Ops", AssumeRolePolicyDocument=json.dumps(TRUST_ACCOUNT))
    created = iam.create_policy(PolicyName="Read", Path="/ops/", PolicyDocument=PRETTY)["Policy"]
    assert created["Arn"] == policy_arn("Read", "/ops/")
    assert (created["DefaultVersionId"], created["AttachmentCount"], created["IsAttachable"]) \
        == ("v1", 0, True)
    version = iam.get_policy_version(PolicyArn=created["Arn"], VersionId="v1")["PolicyVersion"]
    assert version["Document"] == READ_ENVIRONMENTS  # as Terraform reads it
    assert (version["VersionId"], version["IsDefaultVersion"]) == ("v1", True)
    assert [v["VersionId"] for v in iam.list_policy_versions(PolicyArn=created["Arn"])[
        "Versions"]] == ["v1"]
    assert failure(lambda: iam.get_policy_version(PolicyArn=created["Arn"], VersionId="v2"))[
        :2] == ("NoSuchEntity", 404)

    iam.attach_user_policy(UserName="alice", PolicyArn=created["Arn"])
    iam.attach_role_policy(RoleName="Ops", PolicyArn=created["Arn"])
    attached = {"PolicyName": "Read", "PolicyArn": created["Arn"]}
    assert iam.list_attached_user_policies(UserName="alice")["AttachedPolicies"] == [attached]
    assert iam.list_attached_role_policies(RoleName="Ops")["AttachedPolicies"] == [attached]
    assert iam.get_policy(PolicyArn=created["Arn"])["Policy"]["AttachmentCount"] == 2
    assert [p["PolicyName"] for p in iam.list_policies(OnlyAttached=True)["Policies"]] == [
        "Read"]
    assert iam.list_policies(Scope="AWS")["Policies"] == []
    assert failure(lambda: iam.delete_policy(PolicyArn=created["Arn"])) == (
        "DeleteConflict", 409, "Cannot delete a policy attached to entities.")
    assert failure(lambda: iam.delete_user(UserName="alice")) == (
        "DeleteConflict", 409, "Cannot delete entity, must detach all policies first.")
    iam.detach_user_policy(UserName="alice", PolicyArn=created["Arn"])
    iam.detach_role_policy(RoleName="Ops", PolicyArn=created["Arn"])
    assert failure(lambda: iam.detach_role_policy(RoleName="Ops", PolicyArn=created["Arn"]))[
        :2] == ("NoSuchEntity", 404)
    iam.delete_policy(PolicyArn=created["Arn"])
    assert failure(lambda: iam.get_policy(PolicyArn=created["Arn"])) == (
        "NoSuchEntity", 404, f"Policy {created['Arn']} does not exist or is not attachable.")


def test_errors_as_aws_words_them(airgate_server: RunningAirgate) -> None:
    iam = client(airgate_server, "iam")
    unchecked = client(airgate_server, "iam", parameter_validation=False)
    iam.create_user(UserName="alice")
    assert failure(lambda: iam.create_user(UserName="Alice")) == (
        "EntityAlreadyExists", 409, "User with name Alice already exists. Existing name: alice "
        "(IAM names are not distinguished by case).")
    iam.create_role(RoleName="Ops", AssumeRolePolicyDocument=json.dumps(TRUST_ACCOUNT))
    assert failure(lambda: iam.create_role(
        RoleName="Ops", AssumeRolePolicyDocument=json.dumps(TRUST_ACCOUNT))) == (
        "EntityAlreadyExists", 409, "Role with name Ops already exists.")
    iam.create_policy(PolicyName="P", PolicyDocument=PRETTY)
    assert failure(lambda: iam.create_policy(PolicyName="P", PolicyDocument=PRETTY)) == (
        "EntityAlreadyExists", 409, "A policy called P already exists. Duplicate names are "
        "not allowed.")
    iam.create_access_key(UserName="alice")
    iam.create_access_key(UserName="alice")
    assert failure(lambda: iam.create_access_key(UserName="alice")) == (
        "LimitExceeded", 409, "Cannot exceed quota for AccessKeysPerUser: 2")
    assert failure(lambda: iam.delete_user(UserName="alice")) == (
        "DeleteConflict", 409, "Cannot delete entity, must delete access keys first.")
    for index in range(10):
        iam.create_policy(PolicyName=f"Q{index}", PolicyDocument=PRETTY)
        iam.attach_role_policy(RoleName="Ops", PolicyArn=policy_arn(f"Q{index}"))
    iam.attach_role_policy(RoleName="Ops", PolicyArn=policy_arn("Q0"))  # already: no change
    assert failure(lambda: iam.attach_role_policy(RoleName="Ops", PolicyArn=policy_arn("P"))) \
        == ("LimitExceeded", 409, "Cannot exceed quota for PoliciesPerRole: 10")
    assert failure(lambda: iam.delete_access_key(UserName="alice",
                                                 AccessKeyId="AKIAAAAAAAAAAAAAAAAA")) == (
        "NoSuchEntity", 404, "The Access Key with id AKIAAAAAAAAAAAAAAAAA cannot be found.")
    assert failure(lambda: unchecked.create_user(UserName="bad name")) == (
        "ValidationError", 400, "1 validation error detected: Value 'bad name' at 'userName' "
        r"failed to satisfy constraint: Member must satisfy regular expression pattern: "
        r"[\w+=,.@-]+")
    assert failure(lambda: unchecked.create_role(RoleName="R")) == (
        "ValidationError", 400, "1 validation error detected: Value null at "
        "'assumeRolePolicyDocument' failed to satisfy constraint: Member must not be null")
    assert failure(lambda: iam.create_user(
        UserName="bounded", PermissionsBoundary=policy_arn("P"))) == (
        "ValidationError", 400, "airgate does not support permissions boundaries "
        "(PermissionsBoundary)")
    assert failure(lambda: iam.list_groups()) == (
        "InvalidAction", 400, "airgate does not serve ListGroups yet")
    # Modeled errors reach boto3 as the model's exception classes.
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName="nobody")
    with pytest.raises(iam.exceptions.EntityAlreadyExistsException):
        iam.create_user(UserName="alice")
    # A role session has no user of its own to default to.
    session = temporary(client(airgate_server, "sts").assume_role(
        RoleArn=role_arn("Ops"), RoleSessionName="s1")["Credentials"])
    assert failure(lambda: client(airgate_server, "iam", session).get_user()) == (
        "ValidationError", 400, "Must specify userName when calling with non-User credentials")


def test_documents_are_url_encoded_on_the_wire(airgate_server: RunningAirgate) -> None:
    """IAM sends documents percent-encoded, as the text given; botocore decodes them."""
    iam = client(airgate_server, "iam")
    iam.create_user(UserName="alice")
    iam.put_user_policy(UserName="alice", PolicyName="read", PolicyDocument=PRETTY)
    body = "Action=GetUserPolicy&Version=2010-05-08&UserName=alice&PolicyName=read"
    response = signed_post(airgate_server, "iam", body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/xml"
    assert f"<PolicyDocument>{quote(PRETTY, safe='')}</PolicyDocument>" in response.text
    assert response.text.startswith(
        '<GetUserPolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        "<GetUserPolicyResult>")
    assert "<ResponseMetadata><RequestId>" in response.text
    assert iam.get_user_policy(UserName="alice", PolicyName="read")["PolicyDocument"] == \
        READ_ENVIRONMENTS


def signed_post(server: RunningAirgate, service: str, body: str,
                credentials: dict[str, str] | None = None, *,
                region: str = "us-east-1") -> httpx.Response:
    credentials = credentials or server.admin
    request = AWSRequest(method="POST", url=server.endpoint_url + "/", data=body.encode(),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(
        credentials["AccessKeyId"], credentials["SecretAccessKey"],
        credentials.get("SessionToken")), service, region).add_auth(request)
    prepared = request.prepare()
    return httpx.post(prepared.url, headers=dict(prepared.headers), content=prepared.body)


def test_authentication_errors_in_the_query_vocabulary(airgate_server: RunningAirgate) -> None:
    server = airgate_server
    url = server.endpoint_url + "/"
    body = "Action=GetCallerIdentity&Version=2011-06-15"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    unsigned = httpx.post(url, content=body, headers=form)
    assert unsigned.status_code == 403 and unsigned.headers["content-type"] == "text/xml"
    assert "<Code>MissingAuthenticationToken</Code><Message>Request is missing "\
        "Authentication Token</Message>" in unsigned.text
    assert unsigned.text.startswith(
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">')
    assert f"<RequestId>{unsigned.headers['x-amzn-requestid']}</RequestId>" in unsigned.text

    iam_unsigned = httpx.post(url, content="Action=ListUsers&Version=2010-05-08", headers=form)
    assert iam_unsigned.status_code == 403
    assert iam_unsigned.text.startswith(
        '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">')

    garbled = httpx.post(url, content=body, headers={
        **form, "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20260101/us-east-1/"
                                 "sts/aws4_request", "X-Amz-Date": "20260101T000000Z"})
    assert garbled.status_code == 400 and "<Code>IncompleteSignature</Code>" in garbled.text

    forged = {**server.admin, "SecretAccessKey": "y" * 40}
    answer = signed_post(server, "sts", body, forged)
    assert answer.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in answer.text
    stranger = {"AccessKeyId": "AKIAAAAAAAAAAAAAAAAA", "SecretAccessKey": "x" * 40}
    answer = signed_post(server, "iam", "Action=ListUsers&Version=2010-05-08", stranger)
    assert answer.status_code == 403 and "<Code>InvalidClientTokenId</Code>" in answer.text
    assert "<Type>Sender</Type>" in answer.text
    answer = signed_post(server, "sts", body, region="eu-west-3")
    assert answer.status_code == 403 and "Credential should be scoped to a valid region" in \
        answer.text
    # IAM is global: signed for us-east-1 whatever the client's region (here both are).
    assert signed_post(server, "iam", "Action=ListUsers&Version=2010-05-08").status_code == 200
    # The signature's scope names the service: an IAM action signed for STS is no STS action.
    answer = signed_post(server, "sts", "Action=ListUsers&Version=2010-05-08")
    assert answer.status_code == 400 and "<Code>InvalidAction</Code>" in answer.text
    assert "Could not find operation ListUsers for version 2010-05-08" in answer.text
    answer = signed_post(server, "sts", "Version=2011-06-15")
    assert answer.status_code == 400 and "<Code>MissingAction</Code>" in answer.text


def test_presigned_get_caller_identity(airgate_server: RunningAirgate) -> None:
    """A presigned GET, as tools that prove an AWS identity to a third party send it."""
    request = AWSRequest(method="GET", url=airgate_server.endpoint_url +
                         "/?Action=GetCallerIdentity&Version=2011-06-15")
    botocore.auth.SigV4QueryAuth(botocore.credentials.Credentials(
        airgate_server.admin["AccessKeyId"], airgate_server.admin["SecretAccessKey"]),
        "sts", "us-east-1", expires=60).add_auth(request)
    response = httpx.get(request.prepare().url)
    assert response.status_code == 200
    assert f"<Arn>{user_arn('admin')}</Arn>" in response.text


# --- authorisation ------------------------------------------------------------------------


def test_a_user_without_iam_permissions_changes_nothing(airgate_server: RunningAirgate) -> None:
    server = airgate_server
    identities = server.airgate.identities
    identities.create_user("mallory")
    identities.put_inline_policy("user", "mallory", "airflow", policy(allow("airflow:*")))
    mallory = client(server, "iam", identities.create_access_key("mallory"))
    before = snapshot(client(server, "iam"))
    denied = f"User: {user_arn('mallory')} is not authorized to perform: "
    attempts = {
        "iam:CreateUser": (lambda: mallory.create_user(UserName="sidekick"),
                           user_arn("sidekick")),
        "iam:PutUserPolicy": (lambda: mallory.put_user_policy(
            UserName="mallory", PolicyName="escalate", PolicyDocument=policy(allow("*"))),
            user_arn("mallory")),
        "iam:CreateAccessKey": (lambda: mallory.create_access_key(UserName="admin"),
                                user_arn("admin")),
        "iam:AttachUserPolicy": (lambda: mallory.attach_user_policy(
            UserName="mallory", PolicyArn=policy_arn("Anything")), user_arn("mallory")),
        "iam:ListUsers": (lambda: mallory.list_users(), "*"),
        "iam:GetUser": (lambda: mallory.get_user(), user_arn("mallory")),
        "iam:CreateRole": (lambda: mallory.create_role(
            RoleName="Escape", AssumeRolePolicyDocument=trust({"AWS": user_arn("mallory")})),
            role_arn("Escape")),
        "iam:CreatePolicy": (lambda: mallory.create_policy(
            PolicyName="All", Path="/x/", PolicyDocument=policy(allow("*"))),
            policy_arn("All", "/x/")),
    }
    for action, (call, resource) in attempts.items():
        assert failure(call) == ("AccessDenied", 403, f"{denied}{action} on resource: "
                                                      f"{resource}")
    assert snapshot(client(server, "iam")) == before


def test_resources_and_condition_keys_of_iam_calls(airgate_server: RunningAirgate) -> None:
    server = airgate_server
    identities = server.airgate.identities
    identities.create_policy("Allowed", json.dumps(READ_ENVIRONMENTS))
    identities.create_policy("Admin", policy(allow("*")))
    identities.create_user("lead")
    identities.put_inline_policy("user", "lead", "team", policy(
        allow("iam:*", f"arn:aws:iam::{ACCOUNT}:user/team/*"),
        deny("iam:AttachUserPolicy", "*", Condition={
            "ArnNotEquals": {"iam:PolicyARN": policy_arn("Allowed")}})))
    lead_key = identities.create_access_key("lead")
    lead = client(server, "iam", lead_key)
    lead.create_user(UserName="member", Path="/team/")
    assert failure(lambda: lead.create_user(UserName="outsider"))[:2] == ("AccessDenied", 403)
    lead.attach_user_policy(UserName="member", PolicyArn=policy_arn("Allowed"))
    code, status, message = failure(lambda: lead.attach_user_policy(
        UserName="member", PolicyArn=policy_arn("Admin")))
    assert (code, status) == ("AccessDenied", 403)
    assert message.endswith(f"iam:AttachUserPolicy on resource: {user_arn('team/member')}")
    # An existing user's ARN carries its path, whatever path the caller imagines.
    identities.create_user("admin-ish", path="/ops/")
    assert failure(lambda: lead.get_user(UserName="admin-ish"))[2].endswith(
        f"iam:GetUser on resource: {user_arn('ops/admin-ish')}")
    assert [p["PolicyName"] for p in client(server, "iam").list_attached_user_policies(
        UserName="member")["AttachedPolicies"]] == ["Allowed"]

    # sts:AssumeRole on one role only.
    for name in ("Mine", "Theirs"):
        identities.create_role(name)  # trusts the account: identity policies decide
    identities.put_inline_policy("user", "lead", "assume", policy(
        allow("sts:AssumeRole", role_arn("Mine"))))
    sts = client(server, "sts", lead_key)
    assert sts.assume_role(RoleArn=role_arn("Mine"), RoleSessionName="s1")
    assert failure(lambda: sts.assume_role(RoleArn=role_arn("Theirs"), RoleSessionName="s1"))[
        :2] == ("AccessDenied", 403)


def snapshot(iam: Any) -> Any:
    """Every identity, key, policy and attachment, as the administrator sees them."""
    users = iam.list_users()["Users"]
    roles = iam.list_roles()["Roles"]
    return {
        "users": users,
        "keys": {u["UserName"]: iam.list_access_keys(UserName=u["UserName"])[
            "AccessKeyMetadata"] for u in users},
        "user-policies": {u["UserName"]: iam.list_user_policies(UserName=u["UserName"])[
            "PolicyNames"] for u in users},
        "user-attached": {u["UserName"]: iam.list_attached_user_policies(
            UserName=u["UserName"])["AttachedPolicies"] for u in users},
        "roles": roles,
        "role-policies": {r["RoleName"]: iam.list_role_policies(RoleName=r["RoleName"])[
            "PolicyNames"] for r in roles},
        "policies": iam.list_policies()["Policies"],
    }


# --- the AWS CLI --------------------------------------------------------------------------


def aws(server: RunningAirgate, scratch: Path, *args: str,
        credentials: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The AWS CLI, configured as `airgate shellenv` configures it."""
    credentials = credentials or server.admin
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL_IAM=server.endpoint_url, AWS_ENDPOINT_URL_STS=server.endpoint_url,
               AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID=credentials["AccessKeyId"],
               AWS_SECRET_ACCESS_KEY=credentials["SecretAccessKey"],
               AWS_CONFIG_FILE=str(scratch / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(scratch / "none"))
    if "SessionToken" in credentials:
        env["AWS_SESSION_TOKEN"] = credentials["SessionToken"]
    return subprocess.run([sys.executable, "-m", "awscli", *args, "--output", "json"],
                          env=env, capture_output=True, text=True, timeout=120)


def test_the_aws_cli(airgate_server: RunningAirgate, tmp_path: Path) -> None:
    server = airgate_server

    def ok(*args: str, credentials: dict[str, str] | None = None) -> Any:
        done = aws(server, tmp_path, *args, credentials=credentials)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    assert ok("sts", "get-caller-identity")["Arn"] == user_arn("admin")
    assert ok("iam", "create-user", "--user-name", "alice")["User"]["Arn"] == user_arn("alice")
    document = tmp_path / "read.json"
    document.write_text(PRETTY)
    ok("iam", "put-user-policy", "--user-name", "alice", "--policy-name", "read",
       "--policy-document", f"file://{document}")
    assert ok("iam", "get-user-policy", "--user-name", "alice", "--policy-name", "read")[
        "PolicyDocument"] == READ_ENVIRONMENTS
    key = ok("iam", "create-access-key", "--user-name", "alice")["AccessKey"]
    alice = {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}
    assert ok("sts", "get-caller-identity", credentials=alice)["Arn"] == user_arn("alice")
    ok("iam", "create-role", "--role-name", "Reporting", "--assume-role-policy-document",
       trust({"AWS": user_arn("alice")}))
    assert [u["UserName"] for u in ok("iam", "list-users")["Users"]] == ["admin", "alice"]
    session = ok("sts", "assume-role", "--role-arn", role_arn("Reporting"),
                 "--role-session-name", "cli", credentials=alice)["Credentials"]
    assert ok("sts", "get-caller-identity", credentials=temporary(session))["Arn"] == \
        f"arn:aws:sts::{ACCOUNT}:assumed-role/Reporting/cli"

    missing = aws(server, tmp_path, "iam", "get-user", "--user-name", "nobody")
    assert missing.returncode == 255  # AWS CLI v1's status for a service error
    assert "An error occurred (NoSuchEntity) when calling the GetUser operation: The user " \
        "with name nobody cannot be found." in missing.stderr
    denied = aws(server, tmp_path, "iam", "list-users", credentials=alice)
    assert denied.returncode == 255 and "(AccessDenied)" in denied.stderr


def test_global_services_take_us_east_1_signatures(tmp_path: Path) -> None:
    """IAM (and STS's global endpoint) are signed for us-east-1 whatever airgate's region;
    a client given an endpoint URL signs for its own region, which must be airgate's."""
    with running_airgate(tmp_path / "home", region="eu-west-1") as server:
        for region in ("us-east-1", "eu-west-1"):
            assert client(server, "iam", region=region).list_users()["Users"]
            assert client(server, "sts", region=region).get_caller_identity()["Account"] == \
                ACCOUNT
        assert failure(lambda: client(server, "iam", region="eu-west-2").list_users()) == (
            "SignatureDoesNotMatch", 403, "Credential should be scoped to a valid region. ")
        assert client(server, "mwaa", region="eu-west-1").list_environments()
        assert failure(lambda: client(server, "mwaa", region="us-east-1").list_environments()
                       ) == ("InvalidSignatureException", 403,
                             "Credential should be scoped to a valid region. ")
