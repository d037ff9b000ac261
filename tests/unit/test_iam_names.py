"""IAM names as AWS has them: the characters and lengths of botocore's iam and sts models
(ASCII only), and "not distinguished by case" (no two users, roles or managed policies whose
names differ only in case; a name in another case finds the entity)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.loaders
import pytest

from airgate.auth.identities import IamError, Identities
from airgate.auth.secrets import SecretBox
from airgate.store.db import Database

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
