"""InvokeRestApi as the clients people already run call it, with real boto3 against a
running airgate whose environment's REST API is a recording stand-in: paths longer than the
model's 64 characters (Airflow's Amazon provider sends them), a query string inside Path,
and Airflow answers nested too deep to return."""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_runtime import wait_for
from tests.support import (
    RunningAirgate,
    TrivialUpstream,
    UpstreamRuntime,
    _UpstreamHandler,
    create_environment_args,
    running_airgate,
    trivial_upstream,
)

pytestmark = pytest.mark.e2e

ENV = "dropin"
MAX_PATH = 2048
MAX_DEPTH = 500
TOO_DEEP = (f"Airflow's response nests JSON arrays and objects more than {MAX_DEPTH} levels "
            "deep, more than InvokeRestApi returns")


class _NestingHandler(_UpstreamHandler):
    """The stand-in, but /api/v2/nested/N?status=S answers S with N nested arrays, and
    /api/v2/nested-objects/N with N nested objects."""

    def _answer(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        kind, _, depth = url.path.removeprefix("/api/v2/").partition("/")
        if kind not in ("nested", "nested-objects"):
            super()._answer()
            return
        self.server.received.append((self.command, self.path, dict(self.headers.items())))
        levels = int(depth)
        body = (b"[" * levels + b"]" * levels if kind == "nested"
                else b'{"a":' * (levels - 1) + b"{}" + b"}" * (levels - 1))
        self.send_response(int(urllib.parse.parse_qs(url.query).get("status", ["200"])[0]))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


class Served:
    def __init__(self, server: RunningAirgate, upstream: TrivialUpstream) -> None:
        self.server = server
        self.upstream = upstream
        self.client = server.client()

    def invoke(self, path: str, **more: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self.client.invoke_rest_api(Name=ENV, Method="GET",
                                                              Path=path, **more)
        return answer

    def refused(self, path: str, **more: Any) -> str:
        """The ValidationException's message; nothing reached the environment."""
        sent = self.upstream.requests
        with pytest.raises(self.client.exceptions.ValidationException) as excinfo:
            self.invoke(path, **more)
        assert self.upstream.requests == sent
        return str(excinfo.value.response["Error"]["Message"])

    def last_target(self) -> str:
        return self.upstream.received[-1][1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home: Path = tmp_path_factory.mktemp("dropin") / "home"
    with trivial_upstream() as upstream, running_airgate(
            home, runtime_factory=UpstreamRuntime.factory(upstream.port)) as server:
        upstream.RequestHandlerClass = _NestingHandler
        server.client().create_environment(**create_environment_args(ENV))
        yield Served(server, upstream)


# --- long paths -------------------------------------------------------------------------------

def long_path(length: int) -> str:
    """A task instance path with a default run id (':' and '+' in it), padded to `length`."""
    base = "/dags/nightly/dagRuns/manual__2026-12-02T10:00:00.123456+00:00/taskInstances/"
    return base + "t" * (length - len(base))


def test_a_300_character_path_reaches_airflow_as_sent(served: Served) -> None:
    path = long_path(300)
    assert len(path) == 300
    sent = served.upstream.requests
    answer = served.invoke(path)
    answer.pop("ResponseMetadata")
    assert answer == {"RestApiStatusCode": 200, "RestApiResponse": {}}
    assert served.upstream.requests == sent + 1
    assert served.last_target() == f"/api/v2{path}"


def test_a_2048_character_path_is_the_longest(served: Served) -> None:
    path = long_path(MAX_PATH)
    assert served.invoke(path)["RestApiStatusCode"] == 200
    assert served.last_target() == f"/api/v2{path}"


def test_a_2049_character_path_is_refused(served: Served) -> None:
    assert served.refused(long_path(MAX_PATH + 1)) == (
        "1 validation error detected: Value at 'path' failed to satisfy constraint: Member "
        f"must have length less than or equal to {MAX_PATH}")


@pytest.mark.parametrize("escape", ["/..", "/%2e%2e", "%2f", "\\", "%0d%0a", "#x"])
def test_escapes_in_long_paths_are_still_refused(served: Served, escape: str) -> None:
    assert served.refused(long_path(1000) + escape + "/logs/1").startswith("Invalid Path: it ")


def test_the_access_log_names_the_whole_path_without_its_query(
        served: Served, caplog: pytest.LogCaptureFixture) -> None:
    path = long_path(300)
    with caplog.at_level(logging.INFO, logger="airgate.access"):
        served.invoke(f"{path}?full_content=true&secret_looking=x")
        wait_for(lambda: any(r.name == "airgate.access" for r in caplog.records), 5,
                 "the access-log line")
    fields = next(r for r in caplog.records if r.name == "airgate.access").fields  # type: ignore[attr-defined]
    assert fields["path"] == path


# --- a query string in Path ---------------------------------------------------------------------

def test_path_query_and_query_parameters_reach_airflow_together(served: Served) -> None:
    answer = served.invoke("/dags/x/dagRuns?order_by=-start_date&limit=10",
                           QueryParameters={"offset": 5})
    assert answer["RestApiStatusCode"] == 200
    assert served.last_target() == "/api/v2/dags/x/dagRuns?order_by=-start_date&limit=10&offset=5"


@pytest.mark.parametrize(
    ("path", "target"),
    [("/dags?", "/api/v2/dags"),
     ("/dagRuns?state=running&state=queued", "/api/v2/dagRuns?state=running&state=queued"),
     ("/assets?uri_pattern=s3://lake/a+b%2Bc",
      "/api/v2/assets?uri_pattern=s3%3A%2F%2Flake%2Fa+b%2Bc"),
     ("/variables?note=a%26b%3Dc%23d", "/api/v2/variables?note=a%26b%3Dc%23d"),
     ("/x?twice=%252e%252e", "/api/v2/x?twice=%252e%252e")],
    ids=["empty", "repeated", "encoded-plus", "encoded-separators", "no-double-decoding"])
def test_path_query_is_decoded_once_and_encoded_once(served: Served, path: str,
                                                     target: str) -> None:
    assert served.invoke(path)["RestApiStatusCode"] == 200
    assert served.last_target() == target


def test_a_parameter_in_both_places_is_refused(served: Served) -> None:
    assert served.refused("/dags/x/dagRuns?order_by=-start_date&limit=10",
                          QueryParameters={"limit": 5, "offset": 5}) == (
        "QueryParameters and Path's query string both give limit: give each parameter in "
        "one place")


@pytest.mark.parametrize(
    ("path", "problem"),
    [("/dags?limit=1#frag", "its query string must not contain '#'"),
     ("/dags#frag?limit=1", "it must not contain '#'"),
     ("/dags?x=%0d%0aX-Injected:%201",
      "its query string must not contain percent-encoded control characters"),
     ("/dags?x=1\r\nX-Injected: 1", "its query string must not contain spaces or control "
                                    "characters"),
     ("/dags?x=%zz", "its query string must not contain a '%' that is not followed by two "
                     "hexadecimal digits"),
     ("/dags?x=%ff", "its query string must be UTF-8 once percent-decoded"),
     ("/../monitor/health?x=1", "it must not contain '.' or '..' segments or encoded '.', "
                                "'/' or '\\'")],
    ids=["fragment", "fragment-before-query", "encoded-crlf", "crlf", "broken-escape",
         "not-utf-8", "traversal-before-query"])
def test_bad_query_strings_are_refused(served: Served, path: str, problem: str) -> None:
    assert served.refused(path) == f"Invalid Path: {problem}"


# --- Airflow's answer nested too deep -----------------------------------------------------------

def test_the_deepest_answer_allowed_comes_back_whole(served: Served) -> None:
    answer = served.invoke(f"/nested/{MAX_DEPTH}")["RestApiResponse"]
    assert json.dumps(answer, separators=(",", ":")) == "[" * MAX_DEPTH + "]" * MAX_DEPTH


@pytest.mark.parametrize("path", [f"/nested/{MAX_DEPTH + 1}", f"/nested-objects/{MAX_DEPTH + 1}",
                                  "/nested/1000", "/nested/100000",
                                  "/nested/100000?status=404", "/nested/5000?status=500"],
                         ids=["arrays-501", "objects-501", "arrays-1000", "arrays-100000",
                              "client-error-100000", "server-error-5000"])
def test_an_answer_nested_too_deep_is_a_modeled_server_error(served: Served, path: str) -> None:
    with pytest.raises(served.client.exceptions.RestApiServerException) as excinfo:
        served.invoke(path)
    response = excinfo.value.response
    assert response["Error"]["Message"] == TOO_DEEP
    assert response["RestApiStatusCode"] == 502
    assert response["RestApiResponse"] == {"detail": TOO_DEEP}
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
