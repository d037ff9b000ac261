"""Tag keys that differ only in case are refused: IAM condition keys such as
`aws:ResourceTag/Env` and `aws:RequestTag/Env` ignore case, so two such tags would be one key
to a policy and two to the store, and a caller could slip a value past a policy.

Real boto3 clients against a running airgate, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import botocore.exceptions
import pytest

from tests.e2e.test_mwaa_api import create_args
from tests.support import RunningAirgate, users_with_policies

pytestmark = pytest.mark.e2e

ARN = "arn:aws:airflow:us-east-1:000000000000:environment/{}"


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


TAG_ANYTHING = {"Effect": "Allow", "Resource": "*",
                "Action": ["airflow:TagResource", "airflow:ListTagsForResource"]}
# "Any tag except Env", as a policy writer would say it: values of aws:TagKeys compare with
# case, so this Deny alone does not stop `env`.
DENY_ENV_KEY = {"Effect": "Deny", "Action": "airflow:TagResource", "Resource": "*",
                "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": ["Env"]}}}
# The same through aws:RequestTag/Env, whose key name (not value) ignores case.
DENY_ENV_REQUEST_TAG = {"Effect": "Deny", "Action": "airflow:TagResource", "Resource": "*",
                        "Condition": {"Null": {"aws:RequestTag/Env": "false"}}}
# May create environments tagged Env=dev only.
CREATE_DEV_ONLY = {"Effect": "Allow", "Action": "airflow:CreateEnvironment", "Resource": "*",
                   "Condition": {"StringEquals": {"aws:RequestTag/Env": "dev"}}}


def error_of(excinfo: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, int]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def tags_of(server: RunningAirgate, name: str) -> dict[str, str]:
    tags: dict[str, str] = server.client().list_tags_for_resource(
        ResourceArn=ARN.format(name))["Tags"]
    return tags


@pytest.fixture
def prod(airgate_server: RunningAirgate) -> str:
    """An environment tagged Env=prod, made by the administrator."""
    airgate_server.client().create_environment(**create_args("prod", Tags={"Env": "prod"}))
    return ARN.format("prod")


@pytest.mark.parametrize(
    ("deny", "expected"),
    [(DENY_ENV_KEY, ("ValidationException", 400)),
     (DENY_ENV_REQUEST_TAG, ("AccessDeniedException", 403))],
    ids=["deny-tag-keys", "deny-request-tag"],
)
def test_tagging_env_over_Env_is_refused(airgate_server: RunningAirgate, prod: str,
                                         deny: dict[str, Any],
                                         expected: tuple[str, int]) -> None:
    tagger = users_with_policies(airgate_server,
                                 {"tagger": [policy(TAG_ANYTHING, deny)]})["tagger"]
    tagger.tag_resource(ResourceArn=prod, Tags={"team": "data"})  # any other tag is allowed

    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        tagger.tag_resource(ResourceArn=prod, Tags={"env": "dev"})
    assert error_of(excinfo) == expected
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        tagger.tag_resource(ResourceArn=prod, Tags={"owner": "me", "env": "dev"})
    assert error_of(excinfo) == expected
    assert tags_of(airgate_server, "prod") == {"Env": "prod", "team": "data"}


def test_colliding_key_is_named_in_the_message(airgate_server: RunningAirgate,
                                               prod: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        airgate_server.client().tag_resource(ResourceArn=prod, Tags={"ENV": "dev"})
    assert error_of(excinfo) == ("ValidationException", 400)
    message = excinfo.value.response["Error"]["Message"]
    assert "ENV" in message and "Env" in message, message
    assert tags_of(airgate_server, "prod") == {"Env": "prod"}


def test_same_key_same_case_is_an_update(airgate_server: RunningAirgate, prod: str) -> None:
    airgate_server.client().tag_resource(ResourceArn=prod, Tags={"Env": "staging"})
    assert tags_of(airgate_server, "prod") == {"Env": "staging"}


def test_keys_colliding_within_one_create_are_refused(airgate_server: RunningAirgate) -> None:
    creator = users_with_policies(airgate_server,
                                  {"creator": [policy(CREATE_DEV_ONLY)]})["creator"]
    creator.create_environment(**create_args("dev", Tags={"Env": "dev"}))  # the allowed case

    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        creator.create_environment(**create_args("sneaky", Tags={"Env": "prod", "env": "dev"}))
    assert error_of(excinfo) == ("ValidationException", 400)
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        airgate_server.client().create_environment(
            **create_args("sneaky", Tags={"Team": "a", "TEAM": "b"}))
    assert error_of(excinfo) == ("ValidationException", 400)
    assert airgate_server.client().list_environments()["Environments"] == ["dev"]


def test_keys_colliding_within_one_tag_request_are_refused(airgate_server: RunningAirgate,
                                                           prod: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        airgate_server.client().tag_resource(ResourceArn=prod,
                                             Tags={"team": "a", "Team": "b"})
    assert error_of(excinfo) == ("ValidationException", 400)
    assert tags_of(airgate_server, "prod") == {"Env": "prod"}


def test_colliding_request_tags_are_refused_before_authorisation(
        airgate_server: RunningAirgate, prod: str) -> None:
    """Like input that breaks the model, whoever sends it: no policy ever sees a context in
    which two request tags became one condition key."""
    nobody = users_with_policies(airgate_server, {"nobody": []})["nobody"]
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        nobody.create_environment(**create_args("sneaky", Tags={"Env": "prod", "env": "dev"}))
    assert error_of(excinfo) == ("ValidationException", 400)
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        nobody.tag_resource(ResourceArn=prod, Tags={"team": "a", "Team": "b"})
    assert error_of(excinfo) == ("ValidationException", 400)
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:  # existing keys: after
        nobody.tag_resource(ResourceArn=prod, Tags={"env": "dev"})
    assert error_of(excinfo) == ("AccessDeniedException", 403)
    assert tags_of(airgate_server, "prod") == {"Env": "prod"}
    assert airgate_server.client().list_environments()["Environments"] == ["prod"]
