"""Identities in the store: AWS-format ids, secrets encrypted at rest, IAM's errors."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from airgate.auth.identities import IamError, Identities
from airgate.auth.secrets import SecretBox
from airgate.store.db import Database

ALLOW_ALL = json.dumps({"Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


@pytest.fixture
def identities(tmp_path: Path, database_url: str | None) -> Identities:
    db = Database(database_url or f"sqlite:///{tmp_path / 'state.db'}")
    return Identities(db, SecretBox.open(tmp_path / "master.key", env={}), "123456789012")


def test_ids_and_arns_have_aws_formats(identities: Identities) -> None:
    user = identities.create_user("alice", path="/team/")
    assert re.fullmatch(r"AIDA[A-Z2-7]{16}", user["UserId"])
    assert user["Arn"] == "arn:aws:iam::123456789012:user/team/alice"
    key = identities.create_access_key("alice")
    assert re.fullmatch(r"AKIA[A-Z2-7]{16}", key["AccessKeyId"])
    assert re.fullmatch(r"[A-Za-z0-9+/]{40}", key["SecretAccessKey"])
    role = identities.create_role("Reporting")
    assert re.fullmatch(r"AROA[A-Z2-7]{16}", role["RoleId"])
    session = identities.assume_role("Reporting", "s1")
    assert re.fullmatch(r"ASIA[A-Z2-7]{16}", session["Credentials"]["AccessKeyId"])
    assert session["AssumedRoleUser"]["AssumedRoleId"] == f"{role['RoleId']}:s1"


def test_secrets_are_encrypted_at_rest(tmp_path: Path) -> None:
    db_path = tmp_path / "state.db"
    identities = Identities(Database(f"sqlite:///{db_path}"),
                            SecretBox.open(tmp_path / "master.key", env={}), "123456789012")
    identities.create_user("alice")
    secret = identities.create_access_key("alice")["SecretAccessKey"]
    identities.create_role("r")
    token = identities.assume_role("r", "s1")["Credentials"]["SessionToken"]
    with sqlite3.connect(db_path) as connection:
        dump = "\n".join(connection.iterdump())
    assert secret not in dump and token not in dump

    other_key = SecretBox.open(tmp_path / "other.key", env={})
    stranger = Identities(Database(f"sqlite:///{db_path}"), other_key, "123456789012")
    key_id = identities.list_access_keys("alice")[0]["AccessKeyId"]
    with pytest.raises(RuntimeError, match="master key"):
        stranger.credential(key_id)


def test_operator_supplied_master_key(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    box = SecretBox.open(tmp_path / "master.key", env={"AIRGATE_MASTER_KEY": key})
    assert not (tmp_path / "master.key").exists()
    assert SecretBox(key.encode()).decrypt(box.encrypt("s")) == "s"


def test_credential_resolution(identities: Identities) -> None:
    identities.create_user("alice")
    identities.put_inline_policy("user", "alice", "all", ALLOW_ALL)
    key = identities.create_access_key("alice")
    credential = identities.credential(key["AccessKeyId"])
    assert credential is not None
    assert credential.secret_access_key == key["SecretAccessKey"]
    assert credential.principal.airflow_identity == "user/alice"
    assert credential.principal.username == "alice"
    assert len(credential.principal.policies) == 1
    assert identities.credential("AKIAAAAAAAAAAAAAAAAA") is None

    identities.create_role("Reporting")
    session = identities.assume_role("Reporting", "session-1")["Credentials"]
    temporary = identities.credential(session["AccessKeyId"])
    assert temporary is not None
    assert temporary.principal.airflow_identity == "assumed-role/Reporting/session-1"
    assert temporary.principal.principal_arn == "arn:aws:iam::123456789012:role/Reporting"
    assert temporary.principal.kind == "AssumedRole"


@pytest.mark.parametrize(
    ("action", "code"),
    [
        (lambda i: i.create_user("alice"), "EntityAlreadyExists"),
        (lambda i: i.create_user("bad name!"), "ValidationError"),
        (lambda i: i.get_user("nobody"), "NoSuchEntity"),
        (lambda i: i.delete_user("alice"), "DeleteConflict"),
        (lambda i: [i.create_access_key("alice") for _ in range(2)], "LimitExceeded"),
        (lambda i: i.put_inline_policy("user", "alice", "p", "{not json"),
         "MalformedPolicyDocument"),
        (lambda i: i.assume_role("nobody", "s1"), "NoSuchEntity"),
        (lambda i: i.assume_role("r", "s"), "ValidationError"),
        (lambda i: i.assume_role("r", "s1", duration_seconds=7200), "ValidationError"),
        (lambda i: i.delete_policy("arn:aws:iam::123456789012:policy/none"), "NoSuchEntity"),
        (lambda i: i.create_role("r"), "EntityAlreadyExists"),
    ],
    ids=["user-exists", "user-name", "no-user", "delete-conflict", "key-limit",
         "malformed-policy", "no-role", "session-name", "duration", "no-policy", "role-exists"],
)
def test_iam_errors(identities: Identities, action: object, code: str) -> None:
    identities.create_user("alice")
    identities.create_access_key("alice")
    identities.create_role("r")
    with pytest.raises(IamError) as excinfo:
        action(identities)  # type: ignore[operator]
    assert excinfo.value.code == code


def test_managed_policies(identities: Identities) -> None:
    identities.create_user("alice")
    policy = identities.create_policy("All", ALLOW_ALL, path="/ops/")
    assert policy["Arn"] == "arn:aws:iam::123456789012:policy/ops/All"
    identities.attach_policy("user", "alice", policy["Arn"])
    assert identities.list_attached_policies("user", "alice") == [
        {"PolicyName": "All", "PolicyArn": policy["Arn"]}]
    with pytest.raises(IamError, match="attached"):
        identities.delete_policy(policy["Arn"])
    identities.detach_policy("user", "alice", policy["Arn"])
    identities.delete_policy(policy["Arn"])
    assert identities.list_policies() == []
