"""`airgate iam` goes through the IAM and STS providers the API uses, and prints what the
AWS CLI prints: documents decoded, every page, the service's error words."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airgate.cli import IAM_COMMANDS, main
from airgate.services import service_model
from airgate.services.iam import RESOURCES

DOCUMENT = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "airflow:ListEnvironments", "Resource": "*"}]}


@pytest.fixture
def iam(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*args: str) -> tuple[int, Any, str]:
        status = main(["iam", *args, "--home", str(tmp_path / "home")])
        out, err = capsys.readouterr()
        return status, json.loads(out) if out.strip() else None, err
    return run


def test_the_commands_are_the_served_operations() -> None:
    iam = service_model("iam")
    assert {c.operation for c in IAM_COMMANDS if c.service == "iam"} == set(RESOURCES)
    assert [c.name for c in IAM_COMMANDS if c.service == "sts"] == ["assume-role"]
    create_user = next(c for c in IAM_COMMANDS if c.operation == "CreateUser")
    assert [o.flag for o in create_user.options] == ["--path", "--user-name",
                                                     "--permissions-boundary", "--tags"]
    assert iam.operation_model("ListUsers").input_shape is not None
    list_users = next(c for c in IAM_COMMANDS if c.operation == "ListUsers")
    assert [o.flag for o in list_users.options] == ["--path-prefix"]  # it pages by itself


def test_documents_printed_decoded(iam: Any, tmp_path: Path) -> None:
    path = tmp_path / "read.json"
    path.write_text(json.dumps(DOCUMENT, indent=2))
    assert iam("create-user", "--user-name", "alice")[0] == 0
    assert iam("put-user-policy", "--user-name", "alice", "--policy-name", "read",
               "--policy-document", f"file://{path}") == (0, None, "")
    status, policy, _ = iam("get-user-policy", "--user-name", "alice", "--policy-name", "read")
    assert (status, policy) == (0, {"UserName": "alice", "PolicyName": "read",
                                    "PolicyDocument": DOCUMENT})
    status, created, _ = iam("create-policy", "--policy-name", "Read", "--policy-document",
                             json.dumps(DOCUMENT))
    arn = created["Policy"]["Arn"]
    status, version, _ = iam("get-policy-version", "--policy-arn", arn, "--version-id", "v1")
    assert version["PolicyVersion"]["Document"] == DOCUMENT
    status, role, _ = iam("create-role", "--role-name", "Reporting")  # trusts the account
    assert role["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "AWS": "arn:aws:iam::000000000000:root"}


def test_every_page_and_no_paging_members(iam: Any) -> None:
    for index in range(105):
        assert iam("create-user", "--user-name", f"user-{index:03d}")[0] == 0
    status, listed, _ = iam("list-users")
    assert status == 0 and set(listed) == {"Users"}
    assert [u["UserName"] for u in listed["Users"]] == [f"user-{i:03d}" for i in range(105)]


def test_errors_in_the_services_words(iam: Any) -> None:
    status, _, err = iam("get-user", "--user-name", "bad name")
    assert status == 254
    assert err.startswith("An error occurred (ValidationError) when calling the GetUser "
                          "operation: 1 validation error detected: Value 'bad name' at "
                          "'userName'")
    status, _, err = iam("assume-role", "--role-name", "Missing", "--role-session-name", "s1")
    assert (status, err.strip()) == (254, "An error occurred (NoSuchEntity) when calling the "
                                     "AssumeRole operation: The role with name Missing "
                                     "cannot be found.")
    assert iam("create-role", "--role-name", "R")[0] == 0
    status, _, err = iam("assume-role", "--role-name", "R", "--role-session-name", "s",
                         "--duration-seconds", "600")
    assert status == 254 and "(ValidationError)" in err and "'roleSessionName'" in err \
        and "'durationSeconds'" in err
    status, session, _ = iam("assume-role", "--role-name", "R", "--role-session-name", "s1")
    assert session["AssumedRoleUser"]["Arn"] == \
        "arn:aws:sts::000000000000:assumed-role/R/s1"
