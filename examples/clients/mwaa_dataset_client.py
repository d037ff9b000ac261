"""Announces a new file in the data lake: creates an asset event on the data-lake asset,
with the file's location in `extra`, through MWAA's InvokeRestApi.

    python examples/clients/mwaa_dataset_client.py ENVIRONMENT s3://bucket/datalake/f.csv \
        [--asset-uri s3://airgate-example-lake/datalake]

Airflow 3's API takes the asset's id, so the id is first looked up from the asset's URI.
Runs unchanged against Amazon MWAA or airgate (standard AWS variables; for airgate:
`eval "$(airgate shellenv)"`). Exits 1, saying why, if the asset is unknown or a call is
refused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

DEFAULT_ASSET_URI = os.environ.get("DATALAKE_URI", "s3://airgate-example-lake/datalake")


class StepFailed(Exception):
    """A call Airflow or MWAA refused, or an asset that does not exist."""


def invoke(mwaa: Any, environment: str, method: str, path: str, **more: Any) -> Any:
    try:
        return mwaa.invoke_rest_api(Name=environment, Method=method, Path=path,
                                    **more)["RestApiResponse"]
    except (mwaa.exceptions.RestApiClientException,
            mwaa.exceptions.RestApiServerException) as error:
        raise StepFailed(f"{method} {path}: Airflow answered "
                         f"{error.response.get('RestApiStatusCode')}: "
                         f"{json.dumps(error.response.get('RestApiResponse'))}") from None
    except ClientError as error:
        raise StepFailed(f"{method} {path}: {error.response['Error']['Code']}: "
                         f"{error.response['Error'].get('Message', '')}") from None
    except BotoCoreError as error:
        raise StepFailed(f"{method} {path}: {error}") from None


def asset_id(mwaa: Any, environment: str, uri: str) -> int:
    """The id Airflow gave the asset with this URI (a DAG must schedule on it or produce it)."""
    found = invoke(mwaa, environment, "GET", "/assets",
                   QueryParameters={"uri_pattern": uri, "limit": 100})
    for asset in found["assets"]:
        if asset["uri"] == uri:
            return int(asset["id"])
    raise StepFailed(f"Airflow has no asset {uri}: is a DAG that uses it deployed?")


def announce(mwaa: Any, environment: str, asset_uri: str, location: str) -> dict[str, Any]:
    """Create the asset event for one new file; Airflow's record of it."""
    event: dict[str, Any] = invoke(
        mwaa, environment, "POST", "/assets/events",
        Body={"asset_id": asset_id(mwaa, environment, asset_uri),
              "extra": {"location": location}})
    return event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("environment", help="the MWAA environment's name")
    parser.add_argument("location", help="where the new file is, e.g. s3://bucket/key")
    parser.add_argument("--asset-uri", default=DEFAULT_ASSET_URI)
    args = parser.parse_args(argv)
    try:
        event = announce(boto3.client("mwaa"), args.environment, args.asset_uri,
                         args.location)
    except StepFailed as failure:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    print(f"asset event {event['id']} on {event['uri']} at {event['timestamp']}: "
          f"{json.dumps(event['extra'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
