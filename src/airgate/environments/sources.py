"""Where an environment's files come from: MWAA names S3 objects, airgate maps them.

By default a bucket `arn:aws:s3:::NAME` is the folder `buckets/NAME` under the airgate home,
and an object key is a path inside it. When the operator configures S3 (AIRGATE_S3=1, or
AWS_ENDPOINT_URL_S3 pointing at an S3-compatible server), objects are fetched with boto3
instead, into the environment's own folders.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airgate.errors import ValidationException

_log = logging.getLogger("airgate.sources")


_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")


def bucket_name(bucket_arn: str) -> str:
    return bucket_arn.rsplit(":", 1)[-1]


def valid_bucket_name(name: str) -> bool:
    """S3's rules for general purpose bucket names: what makes `.` and `..` (which would
    map a bucket onto airgate's own folders) impossible."""
    return (bool(_BUCKET_NAME.fullmatch(name)) and ".." not in name
            and ".-" not in name and "-." not in name
            and not _IP_ADDRESS.fullmatch(name)
            and not name.startswith(("xn--", "sthree-", "amzn-s3-demo-"))
            and not name.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3")))


def object_parts(key: str) -> list[str] | None:
    """The path segments of an object key, or None if the key can't be a file inside a
    folder: absolute, empty segments (`//`), `.` or `..`, a backslash or a NUL."""
    parts = key.split("/")
    if any(part in ("", ".", "..") or "\\" in part or "\0" in part for part in parts):
        return None
    return parts


def uses_s3(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return env.get("AIRGATE_S3", "") in ("1", "true") or bool(env.get("AWS_ENDPOINT_URL_S3"))


class BucketFolders:
    """Buckets as folders under `root` (the default)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, bucket_arn: str, key: str) -> Path:
        """The file or folder for `key`, which can never be outside the bucket's folder."""
        # Checked lexically: the operator may link a folder in a bucket to one elsewhere
        # (`airgate up --dags DIR`), but neither a bucket name nor a key can climb out.
        name = bucket_name(bucket_arn)
        parts = object_parts(key.strip("/")) if key.strip("/") else []
        if not valid_bucket_name(name) or parts is None:
            raise ValidationException(f"s3://{name}/{key} can't be a file in a bucket")
        return self.root.joinpath(name, *parts)

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
                if not relative or relative.endswith("/"):
                    continue  # the prefix itself, or a "folder" object
                parts = object_parts(relative)
                if parts is None:  # `dags//etc/x`, `dags/../x`: never outside the folder
                    _log.warning("S3 object skipped: its key is not a path inside the DAG "
                                 "folder", extra={"fields": {"bucket": bucket}})
                    continue
                wanted[destination.joinpath(*parts)] = item["Key"]
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
