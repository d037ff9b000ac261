"""The MWAA control-plane operations, driven through a real HTTP server by real boto3 clients,
on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from tests.support import RunningAirgate, ScriptedRuntime, running_airgate

pytestmark = pytest.mark.e2e

ROLE_ARN = "arn:aws:iam::000000000000:role/airflow-execution"
BUCKET_ARN = "arn:aws:s3:::my-airflow-bucket"
NETWORK = {"SubnetIds": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-1"]}


def create_args(name: str, **more: Any) -> dict[str, Any]:
    return {"Name": name, "ExecutionRoleArn": ROLE_ARN, "SourceBucketArn": BUCKET_ARN,
            "DagS3Path": "dags", "NetworkConfiguration": NETWORK, **more}


def error_of(excinfo: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, str]:
    error = excinfo.value.response["Error"]
    return error["Code"], error["Message"]


@pytest.fixture
def scripted(tmp_path: Path, database_url: str | None) -> Iterator[tuple[RunningAirgate,
                                                                          ScriptedRuntime]]:
    runtimes: list[ScriptedRuntime] = []

    def factory(settings: Any, store: Any) -> ScriptedRuntime:
        runtimes.append(ScriptedRuntime(store))
        return runtimes[-1]

    with running_airgate(tmp_path / "home", database_url, factory) as server:
        yield server, runtimes[0]


# --- lifecycle -----------------------------------------------------------------------------


def test_create_get_list_delete(airgate_server: RunningAirgate) -> None:
    mwaa = airgate_server.client()
    arn = mwaa.create_environment(**create_args(
        "analytics", Tags={"team": "data"}, MaxWorkers=4, MinWorkers=2,
        AirflowConfigurationOptions={"core.default_timezone": "utc"},
        WebserverAccessMode="PUBLIC_ONLY"))["Arn"]
    assert arn == "arn:aws:airflow:us-east-1:000000000000:environment/analytics"

    environment = mwaa.get_environment(Name="analytics")["Environment"]
    assert environment["Name"] == "analytics"
    assert environment["Arn"] == arn
    assert environment["Status"] == "CREATING"
    assert environment["ExecutionRoleArn"] == ROLE_ARN
    assert environment["SourceBucketArn"] == BUCKET_ARN
    assert environment["DagS3Path"] == "dags"
    assert environment["NetworkConfiguration"] == NETWORK
    assert environment["MaxWorkers"] == 4 and environment["MinWorkers"] == 2
    assert environment["AirflowConfigurationOptions"] == {"core.default_timezone": "utc"}
    assert environment["WebserverAccessMode"] == "PUBLIC_ONLY"
    assert environment["Tags"] == {"team": "data"}
    assert environment["LastUpdate"]["Status"] == "PENDING"
    assert "WebserverUrl" not in environment  # nothing answers yet, so nothing is claimed
    import importlib.metadata
    assert environment["AirflowVersion"] == importlib.metadata.version("apache-airflow")

    assert mwaa.list_environments()["Environments"] == ["analytics"]
    mwaa.delete_environment(Name="analytics")
    with pytest.raises(mwaa.exceptions.ResourceNotFoundException):
        mwaa.get_environment(Name="analytics")
    assert mwaa.list_environments()["Environments"] == []


def test_name_taken(airgate_server: RunningAirgate) -> None:
    mwaa = airgate_server.client()
    mwaa.create_environment(**create_args("dup"))
    with pytest.raises(mwaa.exceptions.ValidationException) as excinfo:
        mwaa.create_environment(**create_args("dup", DagS3Path="other"))
    assert "already exists" in error_of(excinfo)[1]
    assert mwaa.get_environment(Name="dup")["Environment"]["DagS3Path"] == "dags"


def test_pagination(airgate_server: RunningAirgate) -> None:
    mwaa = airgate_server.client()
    names = [f"env-{i:02d}" for i in range(7)]
    for name in reversed(names):
        mwaa.create_environment(**create_args(name))

    first = mwaa.list_environments(MaxResults=3)
    assert first["Environments"] == names[:3]
    second = mwaa.list_environments(MaxResults=3, NextToken=first["NextToken"])
    assert second["Environments"] == names[3:6]
    third = mwaa.list_environments(MaxResults=3, NextToken=second["NextToken"])
    assert third["Environments"] == names[6:]
    assert "NextToken" not in third

    pages = mwaa.get_paginator("list_environments").paginate(PaginationConfig={"PageSize": 2})
    assert [n for page in pages for n in page["Environments"]] == names
    assert mwaa.list_environments()["Environments"] == names  # default page size 25


# --- validation: every error is modeled and changes nothing ------------------------------

INVALID_CREATES = {
    "name-pattern": ({"Name": "1-starts-with-digit"}, "regular expression pattern"),
    "name-too-long": ({"Name": "a" * 81}, "length less than or equal to 80"),
    "role-arn": ({"ExecutionRoleArn": "not-an-arn"}, "executionRoleArn"),
    "bucket-arn": ({"SourceBucketArn": "arn:aws:s3:::UPPER"}, "sourceBucketArn"),
    "access-mode-enum": ({"WebserverAccessMode": "EVERYONE"}, "enum value set"),
    "max-workers-min": ({"MaxWorkers": 0}, "greater than or equal to 1"),
    "schedulers-max": ({"Schedulers": 6}, "less than or equal to 5"),
    "tag-key-empty": ({"Tags": {"": "x"}}, "tags.key"),
    "too-many-tags": ({"Tags": {f"k{i}": "v" for i in range(51)}}, "length less than or equal"),
    "config-key": ({"AirflowConfigurationOptions": {"Bad Key": "x"}},
                   "airflowConfigurationOptions"),
    "version": ({"AirflowVersion": "1.10.12"}, "Supported versions"),
    "class": ({"EnvironmentClass": "mw9.huge"}, "EnvironmentClass"),
    "workers-order": ({"MinWorkers": 5, "MaxWorkers": 2}, "MinWorkers"),
    "dag-path-escape": ({"DagS3Path": "../../etc"}, "relative path"),
    "dag-path-absolute": ({"DagS3Path": "/etc/passwd"}, "relative path"),
    "maintenance-window": ({"WeeklyMaintenanceWindowStart": "XYZ:99:99"}, "pattern"),
}


@pytest.mark.parametrize("case", INVALID_CREATES, ids=list(INVALID_CREATES))
def test_invalid_create(airgate_server: RunningAirgate, case: str) -> None:
    changes, expected = INVALID_CREATES[case]
    mwaa = airgate_server.client(parameter_validation=False)
    with pytest.raises(mwaa.exceptions.ValidationException) as excinfo:
        mwaa.create_environment(**{**create_args("valid-name"), **changes})
    assert expected in error_of(excinfo)[1]
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert mwaa.list_environments()["Environments"] == []


def test_missing_required_members_listed(airgate_server: RunningAirgate) -> None:
    mwaa = airgate_server.client(parameter_validation=False)
    with pytest.raises(mwaa.exceptions.ValidationException) as excinfo:
        mwaa.create_environment(Name="x")
    message = error_of(excinfo)[1]
    assert message.startswith("4 validation errors detected")
    for member in ("executionRoleArn", "sourceBucketArn", "dagS3Path", "networkConfiguration"):
        assert f"Value null at '{member}' failed to satisfy constraint: Member must not be null" \
            in message


@pytest.mark.parametrize(
    ("call", "kwargs", "expected"),
    [
        ("list_environments", {"MaxResults": 26}, "less than or equal to 25"),
        ("list_environments", {"MaxResults": 0}, "greater than or equal to 1"),
        ("list_environments", {"NextToken": "garbage!"}, "NextToken"),
        ("untag_resource", {"ResourceArn": "arn:aws:s3:::bucket", "tagKeys": ["a"]},
         "resourceArn"),
        ("tag_resource", {"ResourceArn": "arn:aws:airflow:us-east-1:000000000000:environment/x",
                          "Tags": {"k": "v" * 257}}, "tags.value"),
        ("get_environment", {"Name": "bad name"}, "name"),
    ],
    ids=["max-results-high", "max-results-zero", "next-token", "untag-arn", "tag-value-long",
         "get-bad-name"],
)
def test_invalid_input(airgate_server: RunningAirgate, call: str, kwargs: dict[str, Any],
                       expected: str) -> None:
    mwaa = airgate_server.client(parameter_validation=False)
    with pytest.raises(mwaa.exceptions.ValidationException) as excinfo:
        getattr(mwaa, call)(**kwargs)
    assert expected in error_of(excinfo)[1]


@pytest.mark.parametrize(
    ("call", "kwargs"),
    [
        ("get_environment", {"Name": "ghost"}),
        ("delete_environment", {"Name": "ghost"}),
        ("update_environment", {"Name": "ghost", "MaxWorkers": 3}),
        ("list_tags_for_resource",
         {"ResourceArn": "arn:aws:airflow:us-east-1:000000000000:environment/ghost"}),
        ("tag_resource", {"ResourceArn": "arn:aws:airflow:us-east-1:000000000000:environment/ghost",
                          "Tags": {"a": "b"}}),
        ("untag_resource",
         {"ResourceArn": "arn:aws:airflow:us-east-1:000000000000:environment/ghost",
          "tagKeys": ["a"]}),
        ("list_tags_for_resource",  # another account's environment is not ours to find
         {"ResourceArn": "arn:aws:airflow:us-east-1:111111111111:environment/ghost"}),
    ],
    ids=["get", "delete", "update", "list-tags", "tag", "untag", "other-account"],
)
def test_not_found(airgate_server: RunningAirgate, call: str, kwargs: dict[str, Any]) -> None:
    mwaa = airgate_server.client()
    with pytest.raises(mwaa.exceptions.ResourceNotFoundException) as excinfo:
        getattr(mwaa, call)(**kwargs)
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


# --- tags ----------------------------------------------------------------------------------


def test_tags(airgate_server: RunningAirgate) -> None:
    mwaa = airgate_server.client()
    arn = mwaa.create_environment(**create_args("tagged", Tags={"a": "1"}))["Arn"]
    mwaa.tag_resource(ResourceArn=arn, Tags={"b": "2", "a": "one"})
    assert mwaa.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"a": "one", "b": "2"}
    mwaa.untag_resource(ResourceArn=arn, tagKeys=["a", "missing"])
    assert mwaa.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"b": "2"}
    assert mwaa.get_environment(Name="tagged")["Environment"]["Tags"] == {"b": "2"}


# --- updates and the lifecycle rules ------------------------------------------------------


def test_update_lifecycle(scripted: tuple[RunningAirgate, ScriptedRuntime]) -> None:
    server, runtime = scripted
    mwaa = server.client()
    mwaa.create_environment(**create_args("etl", MaxWorkers=2))
    assert runtime.calls == [("create", "etl")]

    with pytest.raises(mwaa.exceptions.ValidationException) as excinfo:
        mwaa.update_environment(Name="etl", MaxWorkers=5)
    assert "CREATING" in error_of(excinfo)[1]

    runtime.finish("etl")
    available = mwaa.get_environment(Name="etl")["Environment"]
    assert available["Status"] == "AVAILABLE"
    assert available["WebserverUrl"] == "http://127.0.0.1:1/etl"

    mwaa.update_environment(Name="etl", MaxWorkers=5,
                            AirflowConfigurationOptions={"core.parallelism": "8"},
                            NetworkConfiguration={"SecurityGroupIds": ["sg-2"]})
    updating = mwaa.get_environment(Name="etl")["Environment"]
    assert updating["Status"] == "UPDATING"
    assert updating["MaxWorkers"] == 5
    assert updating["AirflowConfigurationOptions"] == {"core.parallelism": "8"}
    assert updating["NetworkConfiguration"] == {"SubnetIds": ["subnet-1", "subnet-2"],
                                                "SecurityGroupIds": ["sg-2"]}
    assert updating["LastUpdate"]["Status"] == "PENDING"
    assert runtime.previous_specs["etl"]["MaxWorkers"] == 2

    with pytest.raises(mwaa.exceptions.ValidationException):
        mwaa.update_environment(Name="etl", MaxWorkers=6)  # still UPDATING
    runtime.finish("etl")
    with pytest.raises(mwaa.exceptions.ValidationException):
        mwaa.update_environment(Name="etl", AirflowVersion="0.0.1")
    assert mwaa.get_environment(Name="etl")["Environment"]["MaxWorkers"] == 5

    mwaa.delete_environment(Name="etl")
    assert runtime.calls[-1] == ("delete", "etl")
    assert mwaa.list_environments()["Environments"] == []
