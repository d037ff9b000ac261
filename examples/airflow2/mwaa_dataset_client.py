"""Announces a new file in the data lake to an Airflow 2 environment: creates a dataset
event on the data-lake dataset, with the file's location in `extra`, through MWAA's
InvokeRestApi.

    python examples/airflow2/mwaa_dataset_client.py ENVIRONMENT s3://bucket/datalake/f.csv \
        [--dataset-uri s3://airgate-example-lake/datalake]

Airflow 2's API (2.9 and later) names the dataset by its URI: POST /datasets/events with
`dataset_uri`. Runs unchanged against Amazon MWAA or airgate (standard AWS variables; for
airgate: `eval "$(airgate shellenv)"`). Exits 1, saying why, if the dataset is unknown or a
call is refused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

DEFAULT_DATASET_URI = os.environ.get("DATALAKE_URI", "s3://airgate-example-lake/datalake")


class StepFailed(Exception):
    """A call Airflow or MWAA refused (a dataset no DAG uses is Airflow's 404)."""


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


def announce(mwaa: Any, environment: str, dataset_uri: str, location: str) -> dict[str, Any]:
    """Create the dataset event for one new file; Airflow's record of it."""
    event: dict[str, Any] = invoke(
        mwaa, environment, "POST", "/datasets/events",
        Body={"dataset_uri": dataset_uri, "extra": {"location": location}})
    return event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("environment", help="the MWAA environment's name")
    parser.add_argument("location", help="where the new file is, e.g. s3://bucket/key")
    parser.add_argument("--dataset-uri", default=DEFAULT_DATASET_URI)
    args = parser.parse_args(argv)
    try:
        event = announce(boto3.client("mwaa"), args.environment, args.dataset_uri,
                         args.location)
    except StepFailed as failure:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    print(f"dataset event {event['id']} on {event['dataset_uri']} at {event['timestamp']}: "
          f"{json.dumps(event['extra'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
