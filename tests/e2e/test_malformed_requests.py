"""Signed but malformed requests get a modeled 4xx, never a 500, and change nothing."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest
from botocore.awsrequest import AWSRequest

from tests.e2e.test_authentication import send, sign
from tests.support import RunningAirgate, create_environment_args

pytestmark = pytest.mark.e2e

VALID = {"ExecutionRoleArn": "arn:aws:iam::000000000000:role/r",
         "SourceBucketArn": "arn:aws:s3:::bucket-b", "DagS3Path": "dags",
         "NetworkConfiguration": {}}


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


# --- one signature, two query strings --------------------------------------------------------


def send_with_query(server: RunningAirgate, request: AWSRequest, raw_query: str
                    ) -> httpx.Response:
    """`request` as signed, but with its query string swapped for `raw_query` on the way."""
    prepared = request.prepare()
    url = httpx.URL(prepared.url)
    raw_path = url.raw_path.decode().partition("?")[0]
    target = f"{server.endpoint_url}{raw_path}?{raw_query}"
    headers = {"Host": url.netloc.decode(), **dict(prepared.headers)}
    return httpx.request(prepared.method, target, headers=headers)


def test_plus_sent_for_2b_does_not_untag_another_key(airgate_server: RunningAirgate) -> None:
    """'a%2Bb' and 'a+b' have one canonical query, so one signature: a form-decoding reader
    would untag 'a b' with a signature made for 'a+b'."""
    client = airgate_server.client()
    arn = client.create_environment(**create_environment_args("target"))["Arn"]
    tags = {"a+b": "plus", "a b": "space"}
    client.tag_resource(ResourceArn=arn, Tags=tags)
    request = sign("DELETE", f"{airgate_server.endpoint_url}/tags/{quote(arn, safe='')}"
                   "?tagKeys=a%2Bb", airgate_server.admin)

    altered = send_with_query(airgate_server, request, "tagKeys=a+b")
    assert (altered.status_code, altered.headers.get("x-amzn-errortype")) == \
        (400, "ValidationException"), altered.text
    assert "contains a bare '+'" in altered.json()["message"]
    assert client.list_tags_for_resource(ResourceArn=arn)["Tags"] == tags

    as_signed = send(airgate_server, request)
    assert as_signed.status_code == 200, as_signed.text
    assert client.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"a b": "space"}


@pytest.mark.parametrize("raw_query", ["MaxResults=1&MaxResults=25",
                                       "MaxResults=25&MaxResults=1"])
def test_repeated_single_valued_parameter_is_refused(airgate_server: RunningAirgate,
                                                     raw_query: str) -> None:
    """Both orders carry one signature: neither may pick the page size."""
    client = airgate_server.client()
    for name in ("first", "second"):
        client.create_environment(**create_environment_args(name))
    request = sign("GET", f"{airgate_server.endpoint_url}/environments"
                   "?MaxResults=1&MaxResults=25", airgate_server.admin)
    answer = send_with_query(airgate_server, request, raw_query)
    assert (answer.status_code, answer.headers.get("x-amzn-errortype")) == \
        (400, "ValidationException"), answer.text
    assert answer.json()["message"] == \
        "Query parameter 'MaxResults' must not repeat: it takes one value"
