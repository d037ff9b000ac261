"""Signed but malformed requests get a modeled 4xx, never a 500, and change nothing."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_authentication import send, sign
from tests.support import RunningAirgate

pytestmark = pytest.mark.e2e

VALID = {"ExecutionRoleArn": "arn:aws:iam::000000000000:role/r",
         "SourceBucketArn": "arn:aws:s3:::b", "DagS3Path": "dags", "NetworkConfiguration": {}}


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        (b"{not json", "ValidationException", "not valid JSON"),
        (b"\xff\xfe\x00", "ValidationException", "UTF-8"),
        (b"[1, 2]", "ValidationException", "JSON object"),
        (b'"text"', "ValidationException", "JSON object"),
        (json.dumps({**VALID, "MaxWorkers": "ten"}).encode(), "ValidationException",
         "Member must be an integer"),
        (json.dumps({**VALID, "Tags": ["a"]}).encode(), "ValidationException",
         "Member must be a map"),
        (json.dumps({**VALID, "NetworkConfiguration": {"SubnetIds": "subnet-1"}}).encode(),
         "ValidationException", "Member must be a list"),
        (json.dumps({**VALID, "MaxWorkers": 10**30}).encode(), "ValidationException",
         "maxWorkers"),
        (b"x" * (8 * 1024 * 1024 + 1), "RequestEntityTooLargeException", "larger than"),
    ],
    ids=["broken-json", "not-utf8", "array", "string", "int-as-string", "map-as-list",
         "list-as-string", "huge-int", "too-large"],
)
def test_bad_bodies(airgate_server: RunningAirgate, body: bytes, code: str, words: str) -> None:
    request = sign("PUT", f"{airgate_server.endpoint_url}/environments/target",
                   airgate_server.admin, body=body,
                   headers={"Content-Type": "application/json"})
    response = send(airgate_server, request)
    assert 400 <= response.status_code < 500
    assert response.headers["x-amzn-errortype"] == code
    assert words in response.json()["message"]
    assert airgate_server.client().list_environments()["Environments"] == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/environments/%ff%fe"), ("GET", "/environments/a%2F..%2F..%2Fb"),
     ("GET", "/environments/" + "a" * 5000), ("DELETE", "/environments"),
     ("GET", "/tags/not-an-arn"), ("GET", "/environments?MaxResults=abc")],
    ids=["bad-utf8", "encoded-traversal", "long-name", "wrong-method", "tag-arn",
         "non-numeric-query"],
)
def test_bad_paths(airgate_server: RunningAirgate, method: str, path: str) -> None:
    request = sign(method, f"{airgate_server.endpoint_url}{path}", airgate_server.admin)
    response = send(airgate_server, request)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["x-amzn-errortype"] in ("ValidationException",
                                                    "UnknownOperationException")
