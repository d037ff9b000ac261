"""Where an environment's files come from: MWAA names S3 objects, airgate maps them.

By default a bucket `arn:aws:s3:::NAME` is the folder `buckets/NAME` under the airgate home,
and an object key is a path inside it. When the operator configures S3 (AIRGATE_S3=1, or
AWS_ENDPOINT_URL_S3 pointing at an S3-compatible server), objects are fetched with boto3
instead, into the environment's own folders.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airgate.errors import ValidationException


def bucket_name(bucket_arn: str) -> str:
    return bucket_arn.rsplit(":", 1)[-1]


def uses_s3(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return env.get("AIRGATE_S3", "") in ("1", "true") or bool(env.get("AWS_ENDPOINT_URL_S3"))


class BucketFolders:
    """Buckets as folders under `root` (the default)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, bucket_arn: str, key: str) -> Path:
        """The file or folder for `key`, which can never be outside the bucket's folder."""
        # Checked lexically: the operator may link a bucket's folder to one elsewhere
        # (`airgate up --dags DIR`), but a key can't climb out with `..`.
        bucket = Path(os.path.normpath(self.root / bucket_name(bucket_arn)))
        target = Path(os.path.normpath(bucket / key.strip("/")))
        if target != bucket and bucket not in target.parents:
            raise ValidationException(f"{key} is not inside the bucket")
        return target

    def fetch(self, bucket_arn: str, key: str, version: str | None, destination: Path) -> None:
        """Copy an object to `destination`; a missing object is a clear error."""
        source = self.path(bucket_arn, key)
        if not source.is_file():
            raise FileNotFoundError(f"s3://{bucket_name(bucket_arn)}/{key} does not exist "
                                    f"(looked in {source})")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)

    def dags_folder(self, bucket_arn: str, key: str) -> Path:
        """The folder Airflow reads DAGs from: the bucket folder itself, so edits are live."""
        folder = self.path(bucket_arn, key)
        folder.mkdir(parents=True, exist_ok=True)
        return folder


class S3Objects:
    """Buckets in S3 (or an S3-compatible server), read with boto3."""

    def __init__(self, client: Any = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("s3")
        self._s3 = client

    def fetch(self, bucket_arn: str, key: str, version: str | None, destination: Path) -> None:
        arguments = {"Bucket": bucket_name(bucket_arn), "Key": key.strip("/")}
        if version:
            arguments["VersionId"] = version
        try:
            body = self._s3.get_object(**arguments)["Body"].read()
        except self._s3.exceptions.NoSuchKey:
            raise FileNotFoundError(f"s3://{arguments['Bucket']}/{arguments['Key']} does not "
                                    "exist") from None
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(body)

    def sync(self, bucket_arn: str, prefix: str, destination: Path) -> bool:
        """Mirror every object under `prefix` into `destination`; True if anything changed."""
        bucket = bucket_name(bucket_arn)
        prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        wanted: dict[Path, str] = {}
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                relative = item["Key"][len(prefix):]
                if relative and not relative.endswith("/") and ".." not in relative.split("/"):
                    wanted[destination / relative] = item["Key"]
        changed = False
        for path, key in wanted.items():
            body = self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            if not path.is_file() or path.read_bytes() != body:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(body)
                changed = True
        for path in [p for p in destination.rglob("*") if p.is_file()]:
            if path not in wanted:
                path.unlink()
                changed = True
        return changed
