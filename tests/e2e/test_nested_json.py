"""Deeply nested JSON in a signed request body: a ValidationException naming the nesting
limit (arrays and objects at most 100 levels deep, the whole request body counted), never a
500, and nothing changed, whether the nesting is past airgate's limit or past what Python's
own JSON decoder can take."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_authentication import sign
from tests.support import (
    RunningAirgate,
    TrivialUpstream,
    UpstreamRuntime,
    create_environment_args,
    running_airgate,
    trivial_upstream,
)

pytestmark = pytest.mark.e2e

ENV = "target"
ARN = f"arn:aws:airflow:us-east-1:000000000000:environment/{ENV}"
LIMIT = 100
TOO_DEEP = f"Request body nests JSON arrays and objects more than {LIMIT} levels deep"

# Each operation's body with a member's value left open (`%s`), and how many levels of
# arrays and objects already surround that value.
OPERATIONS = {
    "InvokeRestApi": ("POST", f"/restapi/{ENV}",
                      b'{"Method": "POST", "Path": "/variables", "Body": %s}', 1),
    "UpdateEnvironment": ("PATCH", f"/environments/{ENV}",
                          b'{"AirflowConfigurationOptions": {"core.x": %s}}', 2),
    "TagResource": ("POST", f"/tags/{urllib.parse.quote(ARN, safe='')}",
                    b'{"Tags": {"owner": %s}}', 2),
}


class Target:
    def __init__(self, server: RunningAirgate, upstream: TrivialUpstream) -> None:
        self.server = server
        self.upstream = upstream

    def send(self, operation: str, value: bytes) -> httpx.Response:
        """The operation, signed as the administrator, with `value` in its open member."""
        method, path, template, _ = OPERATIONS[operation]
        request = sign(method, f"{self.server.endpoint_url}{path}", self.server.admin,
                       body=template % value,
                       headers={"Content-Type": "application/json"}).prepare()
        return httpx.request(method, request.url, headers=dict(request.headers),
                             content=request.body, timeout=60)

    def state(self) -> Any:
        """What a refused call must leave alone: every environment, its spec and tags, and
        what reached the environment's REST API."""
        records = sorted((r.name, r.status, json.dumps(r.spec, sort_keys=True, default=str),
                          sorted(r.tags.items()))
                         for r in self.server.airgate.environments.all())
        return records, self.upstream.requests


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    home: Path = tmp_path_factory.mktemp("nested") / "home"
    with trivial_upstream() as upstream, running_airgate(
            home, runtime_factory=UpstreamRuntime.factory(upstream.port)) as server:
        server.client().create_environment(**create_environment_args(ENV),
                                           Tags={"owner": "me"})
        yield Target(server, upstream)


def arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def objects(depth: int) -> bytes:
    return b'{"a":' * depth + b"{}" + b"}" * depth  # the innermost {} is one level more


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize(
    "value",
    [lambda wrap: arrays(LIMIT - wrap + 1),  # one level past the limit
     lambda wrap: objects(LIMIT - wrap),
     lambda wrap: arrays(5_000),  # past what Python's JSON decoder can nest
     lambda wrap: objects(5_000),
     lambda wrap: arrays(3_000_000)],  # 6 MB, within the 8 MB a body may have
    ids=["arrays-101", "objects-101", "arrays-5000", "objects-5000", "arrays-3000000"])
def test_too_deep_is_refused_and_changes_nothing(target: Target, operation: str,
                                                 value: Any) -> None:
    before = target.state()
    answer = target.send(operation, value(OPERATIONS[operation][3]))
    assert (answer.status_code, answer.headers.get("x-amzn-errortype")) == \
        (400, "ValidationException"), answer.text
    assert answer.json() == {"message": TOO_DEEP}
    assert target.state() == before


def test_the_deepest_body_allowed_reaches_airflow(target: Target) -> None:
    sent = target.upstream.requests
    answer = target.send("InvokeRestApi", arrays(LIMIT - 1))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"RestApiStatusCode": 200, "RestApiResponse": {}}
    assert target.upstream.requests == sent + 1


@pytest.mark.parametrize("operation", ["UpdateEnvironment", "TagResource"])
def test_the_deepest_body_allowed_gets_the_models_answer(target: Target,
                                                         operation: str) -> None:
    """A string member holding 100 levels is an ordinary type error, not a nesting one."""
    before = target.state()
    answer = target.send(operation, arrays(LIMIT - OPERATIONS[operation][3]))
    assert (answer.status_code, answer.headers.get("x-amzn-errortype")) == \
        (400, "ValidationException"), answer.text
    assert answer.json()["message"].endswith("failed to satisfy constraint: "
                                             "Member must be a string")
    assert target.state() == before
