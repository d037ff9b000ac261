"""AWS Lambda handler for S3 PUT notifications: one dataset event per new object on the
data-lake dataset of an MWAA environment running Airflow 2 (2.9 or later), with the
object's s3:// location in `extra`.

Deployable as it is (Python 3.11+ runtime; boto3 is in the runtime). Configure with:
  MWAA_ENVIRONMENT  the environment's name (required)
  DATALAKE_URI      the dataset's URI (default s3://airgate-example-lake/datalake)
The function's role needs airflow:InvokeRestApi on
arn:aws:airflow:REGION:ACCOUNT:role/ENVIRONMENT/User (or Op/Admin). Against airgate, set the
standard variables AWS_ENDPOINT_URL_MWAA and AWS_DISABLE_HOST_PREFIX_INJECTION=true.

Throttling and transient errors are retried by botocore (standard mode, 10 attempts); any
failure left is raised, so that Lambda's own retry and dead-letter handling take over.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

import boto3
from botocore.config import Config

# Created once per container and reused by every invocation it serves.
mwaa = boto3.client("mwaa", config=Config(retries={"mode": "standard", "max_attempts": 10}))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    uri = os.environ.get("DATALAKE_URI", "s3://airgate-example-lake/datalake")
    created = []
    for record in event.get("Records", []):
        if not record.get("eventName", "").startswith("ObjectCreated:"):
            continue
        bucket = record["s3"]["bucket"]["name"]
        key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])  # S3 sends it encoded
        location = f"s3://{bucket}/{key}"
        # Airflow 2's API names the dataset by its URI (Airflow 3's asks for the asset's id).
        answer = mwaa.invoke_rest_api(
            Name=os.environ["MWAA_ENVIRONMENT"], Method="POST", Path="/datasets/events",
            Body={"dataset_uri": uri, "extra": {"location": location}})["RestApiResponse"]
        created.append({"id": answer["id"], "location": location})
    return {"dataset_events": created}
