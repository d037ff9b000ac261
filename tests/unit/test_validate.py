"""Validation messages in the form AWS services use, for the shapes of the MWAA model."""

from __future__ import annotations

from typing import Any

import pytest

from airgate.aws.spec import service_model
from airgate.aws.validate import validate
from airgate.errors import ValidationException

CREATE = service_model().operation_model("CreateEnvironment").input_shape
VALID: dict[str, Any] = {
    "Name": "env", "ExecutionRoleArn": "arn:aws:iam::123456789012:role/r",
    "SourceBucketArn": "arn:aws:s3:::bucket", "DagS3Path": "dags", "NetworkConfiguration": {},
}


def message(changes: dict[str, Any]) -> str:
    with pytest.raises(ValidationException) as excinfo:
        validate(CREATE, {**VALID, **changes})
    return excinfo.value.message


def test_valid_input_passes() -> None:
    validate(CREATE, VALID)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"Name": None}, "1 validation error detected: Value null at 'name' failed to satisfy "
                         "constraint: Member must not be null"),
        ({"Name": "9x"}, "Value '9x' at 'name' failed to satisfy constraint: Member must "
                         "satisfy regular expression pattern: [a-zA-Z][0-9a-zA-Z-_]*"),
        ({"MaxWorkers": "ten"}, "Value 'ten' at 'maxWorkers' failed to satisfy constraint: "
                                "Member must be an integer"),
        ({"MaxWorkers": True}, "Member must be an integer"),
        ({"Schedulers": 9}, "Member must have value less than or equal to 5"),
        ({"WebserverAccessMode": "X"}, "Member must satisfy enum value set: [PRIVATE_ONLY, "
                                       "PUBLIC_ONLY, PUBLIC_AND_PRIVATE]"),
        ({"NetworkConfiguration": {"SubnetIds": ["subnet-1"] * 3}},
         "at 'networkConfiguration.subnetIds' failed to satisfy constraint: Member must have "
         "length less than or equal to 2"),
        ({"NetworkConfiguration": {"SubnetIds": ["x", "subnet-2"]}},
         "at 'networkConfiguration.subnetIds.1.member'"),
        ({"NetworkConfiguration": []}, "Member must be a structure"),
        ({"Tags": {"k": 5}}, "at 'tags.value' failed to satisfy constraint: Member must be a "
                             "string"),
        ({"LoggingConfiguration": {"TaskLogs": {"Enabled": "yes", "LogLevel": "INFO"}}},
         "at 'loggingConfiguration.taskLogs.enabled' failed to satisfy constraint: Member must "
         "be a boolean"),
    ],
    ids=["null", "pattern", "int-type", "bool-is-not-int", "range", "enum", "list-length",
         "list-member", "structure-type", "map-value-type", "nested-bool"],
)
def test_messages(changes: dict[str, Any], expected: str) -> None:
    assert expected in message(changes)


def test_errors_are_counted_and_joined() -> None:
    text = message({"Name": "9x", "DagS3Path": None})
    assert text.startswith("2 validation errors detected: ")
    assert "; " in text


def test_sensitive_and_long_values_are_not_echoed() -> None:
    secret = "s" * 70000
    text = message({"AirflowConfigurationOptions": {"core.fernet_key": secret}})
    assert secret[:50] not in text
    long_name = "a" * 200
    assert long_name not in message({"Name": long_name})


def test_unicode_letters_in_tags_but_ascii_only_word_characters() -> None:
    validate(CREATE, {**VALID, "Tags": {"équipe": "données"}})
    assert "name" in message({"Name": "a²"})
