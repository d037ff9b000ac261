"""IAM names as AWS has them: the characters and lengths of botocore's iam and sts models
(ASCII only), and "not distinguished by case" (no two users, roles or managed policies whose
names differ only in case; a name in another case finds the entity)."""

from __future__ import annotations

import datetime
import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.loaders
import pytest

from airgate.auth.identities import IamError, Identities
from airgate.auth.secrets import SecretBox
from airgate.store.db import Database
from airgate.store.schema import InlinePolicy, User

ALLOW_ALL = json.dumps({"Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
LIST_ONLY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "airflow:ListEnvironments", "Resource": "*"}]})
ACCOUNT = "123456789012"


@pytest.fixture
def identities(tmp_path: Path, database_url: str | None) -> Identities:
    db = Database(database_url or f"sqlite:///{tmp_path / 'state.db'}")
    return Identities(db, SecretBox.open(tmp_path / "master.key", env={}), ACCOUNT)


def iam_error(action: Callable[[], object]) -> tuple[str, str]:
    with pytest.raises(IamError) as excinfo:
        action()
    return excinfo.value.code, excinfo.value.message


# --- characters and lengths, from botocore's models ---------------------------------------

_LOADER = botocore.loaders.Loader()


def shape(service: str, name: str) -> dict[str, Any]:
    shapes: dict[str, Any] = _LOADER.load_service_model(service, "service-2")["shapes"]
    return dict(shapes[name])


def _user(i: Identities, name: str) -> object:
    return i.create_user(name)


def _role(i: Identities, name: str) -> object:
    return i.create_role(name)


def _policy(i: Identities, name: str) -> object:
    return i.create_policy(name, ALLOW_ALL)


def _inline(i: Identities, name: str) -> object:
    return i.put_inline_policy("user", "alice", name, ALLOW_ALL)


def _session(i: Identities, name: str) -> object:
    return i.assume_role("r", name)


NAMED = {  # what names a thing, the model shape its name follows, AWS's member name
    "user": (_user, ("iam", "userNameType"), "userName"),
    "role": (_role, ("iam", "roleNameType"), "roleName"),
    "managed-policy": (_policy, ("iam", "policyNameType"), "policyName"),
    "inline-policy": (_inline, ("iam", "policyNameType"), "policyName"),
    "role-session": (_session, ("sts", "roleSessionNameType"), "roleSessionName"),
}
# Word characters outside ASCII: Python's \w takes them, the model's (Java's) \w does not.
NOT_ASCII = ["élise", "\uff41\uff44\uff4d\uff49\uff4e",  # fullwidth "admin"
             "用户", "\u212aelvin", "team\u0661", "ß-team", "naïve"]  # Kelvin sign, Arabic 1
NOT_NAME_CHARACTERS = ["a b", "a/b", "a*b", "a:b", "a\tb", "a\nb", "a#b"]


@pytest.fixture
def named(tmp_path: Path) -> Identities:
    """Validation comes before the store is read, so SQLite alone is enough here."""
    identities = Identities(Database(f"sqlite:///{tmp_path / 'state.db'}"),
                            SecretBox.open(tmp_path / "master.key", env={}), ACCOUNT)
    identities.create_user("alice")
    identities.create_role("r")
    return identities


@pytest.mark.parametrize("kind", NAMED)
def test_lengths_are_the_models(named: Identities, kind: str) -> None:
    create, (service, shape_name), member = NAMED[kind]
    model = shape(service, shape_name)
    create(named, "a" * model["max"])
    create(named, "b" * model["min"])
    code, message = iam_error(lambda: create(named, "c" * (model["max"] + 1)))
    assert code == "ValidationError"
    assert message == (f"1 validation error detected: Value '{'c' * (model['max'] + 1)}' at "
                       f"'{member}' failed to satisfy constraint: Member must have length "
                       f"less than or equal to {model['max']}")
    code, message = iam_error(lambda: create(named, "d" * (model["min"] - 1)))
    assert code == "ValidationError"
    assert f"Member must have length greater than or equal to {model['min']}" in message


@pytest.mark.parametrize("kind", NAMED)
def test_every_character_the_model_names_is_taken(named: Identities, kind: str) -> None:
    create = NAMED[kind][0]
    create(named, "Az09_+=,.@-")


@pytest.mark.parametrize("name", NOT_ASCII + NOT_NAME_CHARACTERS)
@pytest.mark.parametrize("kind", NAMED)
def test_other_characters_are_refused(named: Identities, kind: str, name: str) -> None:
    create, _, member = NAMED[kind]
    code, message = iam_error(lambda: create(named, name))
    assert code == "ValidationError"
    assert message == (f"1 validation error detected: Value '{name}' at '{member}' failed to "
                       r"satisfy constraint: Member must satisfy regular expression pattern: "
                       r"[\w+=,.@-]+")


def test_model_patterns_are_ascii_word_characters() -> None:
    """What the tests above take as the model's rule, checked against the model itself."""
    for (service, shape_name) in {entry[1] for entry in NAMED.values()}:
        assert shape(service, shape_name)["pattern"] in (r"[\w+=,.@-]+", r"[\w+=,.@-]*")
    role_name = _LOADER.load_service_model("iam", "service-2")["shapes"]["CreateRoleRequest"][
        "members"]["RoleName"]["documentation"]
    assert "upper and lowercase alphanumeric characters with no spaces" in role_name
    assert "Names are not distinguished by case" in role_name


@pytest.mark.parametrize(
    ("path", "valid"),
    [("/", True), ("/a/", True), ("///", True), ("/a~b!/", True), ("//", False),
     ("a/", False), ("/a", False), ("/é/", False), ("/a b/", False),
     ("/" + "x" * 510 + "/", True), ("/" + "x" * 511 + "/", False)],
)
def test_user_and_role_paths_are_the_models(named: Identities, path: str,
                                            valid: bool) -> None:
    model = shape("iam", "pathType")
    pattern = re.compile(model["pattern"].replace(r"\u002F", "/").replace(r"\u0021", "!")
                         .replace(r"\u007E", "~"))
    assert valid == (bool(pattern.fullmatch(path)) and len(path) <= model["max"])
    for create in (named.create_user, named.create_role):
        if valid:
            create(f"n{len(path)}", path=path)
            continue
        code, _ = iam_error(lambda: create("n", path=path))  # noqa: B023
        assert code == "ValidationError"


@pytest.mark.parametrize(
    ("path", "valid"),
    [("/", True), ("/ops/", True), ("/a.b,c+d@e=f_g-h/i/", True), ("/a*b/", False),
     ("/a~b/", False), ("//", False), ("/ops", False), ("/" + "x" * 510 + "/", True),
     ("/" + "x" * 511 + "/", False)],
)
def test_policy_paths_are_the_models(named: Identities, path: str, valid: bool) -> None:
    model = shape("iam", "policyPathType")
    assert valid == (bool(re.fullmatch(model["pattern"], path)) and len(path) <= model["max"])
    if valid:
        assert named.create_policy("p", ALLOW_ALL, path=path)["Path"] == path
    else:
        code, _ = iam_error(lambda: named.create_policy("p", ALLOW_ALL, path=path))
        assert code == "ValidationError"


# --- names are not distinguished by case --------------------------------------------------

POLICY_ARN = f"arn:aws:iam::{ACCOUNT}:policy{{}}"

CREATE = {
    "user": lambda i, name: i.create_user(name),
    "role": lambda i, name: i.create_role(name),
    "managed-policy": lambda i, name: i.create_policy(name, ALLOW_ALL),
}
EXISTS = {
    "user": "User with name {} already exists.",
    "role": "Role with name {} already exists.",
    "managed-policy": "A policy called {} already exists. Duplicate names are not allowed.",
}
LIST = {
    "user": lambda i: [u["UserName"] for u in i.list_users()],
    "role": lambda i: [r["RoleName"] for r in i.list_roles()],
    "managed-policy": lambda i: [p["PolicyName"] for p in i.list_policies()],
}


@pytest.mark.parametrize("kind", CREATE)
def test_a_name_differing_only_in_case_is_taken(identities: Identities, kind: str) -> None:
    CREATE[kind](identities, "admin")
    for name in ("Admin", "ADMIN", "aDmIn"):
        code, message = iam_error(lambda: CREATE[kind](identities, name))  # noqa: B023
        assert (code, message) == (
            "EntityAlreadyExists",
            EXISTS[kind].format(name)
            + " Existing name: admin (IAM names are not distinguished by case).")
    assert iam_error(lambda: CREATE[kind](identities, "admin")) == (
        "EntityAlreadyExists", EXISTS[kind].format("admin"))
    assert LIST[kind](identities) == ["admin"]


def test_managed_policy_names_are_one_per_account_whatever_the_path(
        identities: Identities) -> None:
    identities.create_policy("Ops", ALLOW_ALL, path="/team-a/")
    code, _ = iam_error(lambda: identities.create_policy("OPS", ALLOW_ALL, path="/team-b/"))
    assert code == "EntityAlreadyExists"


def test_a_name_in_another_case_finds_the_entity(identities: Identities) -> None:
    identities.create_user("alice")
    assert identities.get_user("ALICE")["UserName"] == "alice"
    key = identities.create_access_key("Alice")
    assert key["UserName"] == "alice"
    assert [k["AccessKeyId"] for k in identities.list_access_keys("aLiCe")] == [
        key["AccessKeyId"]]

    identities.create_role("Reporting")
    assert identities.get_role("REPORTING")["RoleName"] == "Reporting"
    session = identities.assume_role("reporting", "s1")
    assert session["AssumedRoleUser"]["Arn"] == (
        f"arn:aws:sts::{ACCOUNT}:assumed-role/Reporting/s1")

    policy = identities.create_policy("Ops", LIST_ONLY, path="/ops/")
    identities.attach_policy("user", "ALICE", POLICY_ARN.format("/ops/OPS"))
    assert identities.list_attached_policies("user", "alice") == [
        {"PolicyName": "Ops", "PolicyArn": policy["Arn"]}]
    assert identities.get_policy_document(POLICY_ARN.format("/ops/ops")) == json.loads(LIST_ONLY)
    code, _ = iam_error(lambda: identities.get_policy_document(POLICY_ARN.format("/OPS/Ops")))
    assert code == "NoSuchEntity"  # paths are compared with their case, as IAM does

    identities.detach_policy("user", "Alice", POLICY_ARN.format("/ops/oPs"))
    identities.delete_policy(POLICY_ARN.format("/ops/OPS"))
    identities.delete_access_key("ALICE", key["AccessKeyId"])
    identities.delete_user("Alice")
    identities.delete_role("REPORTING")
    assert (identities.list_users(), identities.list_roles(), identities.list_policies()) == (
        [], [], [])


@pytest.mark.parametrize(("kind", "principal"), [("user", "alice"), ("role", "Reporting")])
def test_put_inline_policy_in_another_case_updates_it(identities: Identities, kind: str,
                                                      principal: str) -> None:
    """PutUserPolicy / PutRolePolicy "adds or updates" and has no EntityAlreadyExists error:
    a name equal ignoring case is the same policy, whose document is replaced and whose name
    stays as first given."""
    identities.create_user("alice")
    identities.create_role("Reporting")
    identities.put_inline_policy(kind, principal, "Read", LIST_ONLY)  # type: ignore[arg-type]
    identities.put_inline_policy(kind, principal.upper(), "READ",  # type: ignore[arg-type]
                                 ALLOW_ALL)
    assert identities.list_inline_policies(kind, principal) == ["Read"]  # type: ignore[arg-type]
    assert identities.get_inline_policy(kind, principal, "read") == {  # type: ignore[arg-type]
        "PolicyName": "Read", "PolicyDocument": json.loads(ALLOW_ALL)}
    identities.delete_inline_policy(kind, principal, "rEAD")  # type: ignore[arg-type]
    assert identities.list_inline_policies(kind, principal) == []  # type: ignore[arg-type]


@pytest.fixture
def store_from_before(tmp_path: Path, database_url: str | None) -> Identities:
    """A store written before names were compared ignoring case: users `admin` and `Admin`,
    and inline policies `read` and `Read` of `admin`."""
    db = Database(database_url or f"sqlite:///{tmp_path / 'state.db'}")
    now = datetime.datetime.now(datetime.UTC)
    with db.transaction() as session:
        session.add_all([
            User(user_id=ADMIN_ID, name="admin", path="/", created_at=now),
            User(user_id=OTHER_ADMIN_ID, name="Admin", path="/", created_at=now),
            InlinePolicy(principal_kind="user", principal_id=ADMIN_ID, name="read",
                         document=LIST_ONLY),
            InlinePolicy(principal_kind="user", principal_id=ADMIN_ID, name="Read",
                         document=LIST_ONLY),
        ])
    return Identities(db, SecretBox.open(tmp_path / "master.key", env={}), ACCOUNT)


ADMIN_ID, OTHER_ADMIN_ID = "AIDAAAAAAAAAAAAAAAA1", "AIDAAAAAAAAAAAAAAAA2"
AMBIGUOUS = "No entity is named exactly {}, and {} differ only in case: give one of those " \
    "names exactly."


def test_a_store_from_before_still_works(store_from_before: Identities) -> None:
    identities = store_from_before
    assert sorted(u["UserName"] for u in identities.list_users()) == ["Admin", "admin"]
    assert identities.get_user("admin")["UserId"] == ADMIN_ID
    assert identities.get_user("Admin")["UserId"] == OTHER_ADMIN_ID
    assert iam_error(lambda: identities.get_user("ADMIN")) == (
        "NoSuchEntity", AMBIGUOUS.format("ADMIN", "Admin, admin"))
    assert iam_error(lambda: identities.create_user("ADMIN"))[0] == "EntityAlreadyExists"

    key = identities.create_access_key("Admin")
    credential = identities.credential(key["AccessKeyId"])
    assert credential is not None and credential.principal.username == "Admin"
    assert credential.principal.user_id == OTHER_ADMIN_ID


def test_inline_policies_from_before_still_work(store_from_before: Identities) -> None:
    identities = store_from_before
    assert sorted(identities.list_inline_policies("user", "admin")) == ["Read", "read"]
    identities.put_inline_policy("user", "admin", "read", ALLOW_ALL)  # the exact name
    assert identities.get_inline_policy("user", "admin", "read")["PolicyDocument"] == (
        json.loads(ALLOW_ALL))
    assert identities.get_inline_policy("user", "admin", "Read")["PolicyDocument"] == (
        json.loads(LIST_ONLY))
    assert iam_error(lambda: identities.put_inline_policy("user", "admin", "READ", LIST_ONLY)) \
        == ("NoSuchEntity", AMBIGUOUS.format("READ", "Read, read"))
    assert sorted(identities.list_inline_policies("user", "admin")) == ["Read", "read"]
    identities.delete_inline_policy("user", "admin", "Read")
    identities.put_inline_policy("user", "admin", "READ", LIST_ONLY)  # no longer ambiguous
    assert identities.list_inline_policies("user", "admin") == ["read"]
    assert identities.get_inline_policy("user", "admin", "read")["PolicyDocument"] == (
        json.loads(LIST_ONLY))


def test_concurrent_creates_of_one_name_in_several_cases_make_one(
        identities: Identities) -> None:
    identities.create_user("admin")  # as in every store: its first write, made alone
    names = ["race", "Race", "RACE", "rAce", "raCe", "racE", "RAce", "raCE"]
    barrier = threading.Barrier(len(names))
    outcomes: dict[str, str] = {}

    def create(name: str) -> None:
        barrier.wait()
        try:
            identities.create_user(name)
            outcomes[name] = "created"
        except IamError as error:
            outcomes[name] = error.code

    threads = [threading.Thread(target=create, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["EntityAlreadyExists"] * (len(names) - 1) + [
        "created"]
    assert len(identities.list_users()) == 2


def test_through_airgate_iam(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    from airgate.cli import main

    for variable in ("AIRGATE_HOME", "AIRGATE_DATABASE_URL", "AIRGATE_MASTER_KEY"):
        monkeypatch.delenv(variable, raising=False)
    home = ["--home", str(tmp_path / "home")]
    assert main(["iam", "create-user", *home, "--user-name", "admin"]) == 0
    capsys.readouterr()
    assert main(["iam", "create-user", *home, "--user-name", "Admin"]) == 254
    assert capsys.readouterr().err == (
        "An error occurred (EntityAlreadyExists) when calling the CreateUser operation: User "
        "with name Admin already exists. Existing name: admin (IAM names are not distinguished "
        "by case).\n")
    assert main(["iam", "create-user", *home, "--user-name", "\u00e9lise"]) == 254
    assert capsys.readouterr().err == (
        "An error occurred (ValidationError) when calling the CreateUser operation: 1 "
        "validation error detected: Value '\u00e9lise' at 'userName' failed to satisfy "
        r"constraint: Member must satisfy regular expression pattern: [\w+=,.@-]+" "\n")
    assert main(["iam", "get-user", *home, "--user-name", "ADMIN"]) == 0
    assert json.loads(capsys.readouterr().out)["User"]["UserName"] == "admin"
