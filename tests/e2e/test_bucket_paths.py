"""Buckets and object keys can't leave their folders.

The review's attack: `SourceBucketArn=arn:aws:s3:::..` mapped the bucket onto airgate's home,
so `RequirementsS3Path=master.key` had pip echo the master key into LastUpdate.Error; `.`
mapped it onto `buckets/`. And in S3 mode a key like `dags//etc/x` was written to `/etc/x`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from airgate.environments.sources import BucketFolders, S3Objects
from airgate.errors import ValidationException
from tests.support import RunningAirgate, create_environment_args, free_port

pytestmark = pytest.mark.e2e


OURS = "SourceBucketArn must name a valid S3 bucket"  # what the model's pattern lets through
MODEL = "1 validation error detected: Value 'arn:aws:s3:::"  # what the model refuses


@pytest.mark.parametrize(("bucket", "message"), [
    (".", OURS), ("..", OURS), ("a..b", OURS), ("192.168.0.1", OURS), ("ab", OURS),
    ("-ab", OURS), ("ab-", OURS), ("xn--ab", OURS), ("bucket.-x", OURS),
    ("Upper", MODEL), ("a_b", MODEL)])
def test_invalid_bucket_names_are_refused(airgate_server: RunningAirgate, bucket: str,
                                          message: str) -> None:
    mwaa = airgate_server.client()
    arguments: dict[str, Any] = {**create_environment_args("victim"),
                                 "SourceBucketArn": f"arn:aws:s3:::{bucket}"}
    arguments["RequirementsS3Path"] = "master.key"
    with pytest.raises(mwaa.exceptions.ValidationException) as refused:
        mwaa.create_environment(**arguments)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert refused.value.response["Error"]["Message"].startswith(message)
    assert mwaa.list_environments()["Environments"] == []

    mwaa.create_environment(**create_environment_args("victim"))
    with pytest.raises(mwaa.exceptions.ValidationException):
        mwaa.update_environment(Name="victim", SourceBucketArn=f"arn:aws:s3:::{bucket}",
                                RequirementsS3Path="master.key")
    environment = mwaa.get_environment(Name="victim")["Environment"]
    assert environment["SourceBucketArn"] == create_environment_args("victim")[
        "SourceBucketArn"]
    assert "RequirementsS3Path" not in environment


def test_bucket_folders_never_map_outside_their_bucket(tmp_path: Path) -> None:
    buckets = BucketFolders(tmp_path / "buckets")
    assert buckets.path("arn:aws:s3:::data-team", "dags/x.py") == \
        tmp_path / "buckets" / "data-team" / "dags" / "x.py"
    for bucket, key in ((".", "master.key"), ("..", "master.key"), ("data-team", "../x"),
                        ("data-team", "a//b"), ("data-team", "a/./b"), ("data-team", "a\\b")):
        with pytest.raises(ValidationException):
            buckets.path(f"arn:aws:s3:::{bucket}", key)


def test_s3_sync_writes_only_inside_the_dag_folder(tmp_path: Path) -> None:
    from moto.server import ThreadedMotoServer

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    try:
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}",
                          region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
        s3.create_bucket(Bucket="lake")
        outside = tmp_path / "outside"
        escapes = [f"dags/{outside}/absolute.py",  # dags//tmp/...: an absolute path
                   "dags/../escaped.py", "dags/./dot.py", "dags/a/../../climbed.py"]
        for key in [*escapes, "dags/ok.py", "dags/sub/nested.py"]:
            s3.put_object(Bucket="lake", Key=key, Body=b"# dag\n")
        destination = tmp_path / "environment" / "dags"
        destination.mkdir(parents=True)
        S3Objects(s3).sync("arn:aws:s3:::lake", "dags", destination)
        written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
                         if p.is_file())
        assert written == ["environment/dags/ok.py", "environment/dags/sub/nested.py"]
    finally:
        moto.stop()
