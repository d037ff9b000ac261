"""InvokeRestApi's Path as real clients send it: long paths (Airflow's Amazon provider's
sensors and waiter), a query string inside Path merged with QueryParameters, and every
traversal and encoding check still in force; Airflow's answers nested too deep to return."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest

from airgate.errors import RestApiServerException, ValidationException
from airgate.mwaa.rest_api import (
    MAX_RESPONSE_DEPTH,
    _result,
    check_path,
    request_target,
)

RUN_ID = "manual__2026-12-02T10:00:00.123456+00:00"  # a default run id: 40 characters
SENSOR_PATH = f"/dags/a_dag_with_a_descriptive_name/dagRuns/{RUN_ID}"
TASK_LOG_PATH = f"{SENSOR_PATH}/taskInstances/a_task_with_a_descriptive_name/logs/1"


def refusal(path: str, parameters: Any = None) -> str:
    with pytest.raises(ValidationException) as excinfo:
        request_target(path, parameters)
    return excinfo.value.message


# --- long paths -----------------------------------------------------------------------------

@pytest.mark.parametrize("path", [SENSOR_PATH, TASK_LOG_PATH, "/dags/" + "d" * 2042],
                         ids=["dag-run-sensor", "task-log", "2048"])
def test_long_paths_are_accepted_as_they_are(path: str) -> None:
    assert len(path) > 64
    assert check_path(path) == path
    assert request_target(path, None) == (path, [])


@pytest.mark.parametrize(
    ("escape", "problem"),
    [("/..", "'.' or '..' segments"), ("/.", "'.' or '..' segments"),
     ("/%2e%2e", "encoded '.', '/' or '\\'"), ("/%2E%2e", "encoded '.', '/' or '\\'"),
     ("%2f..", "encoded '.', '/' or '\\'"), ("%5c", "encoded '.', '/' or '\\'"),
     ("\\..", "backslashes"), ("%00", "percent-encoded control characters"),
     ("%0d%0aX-Injected:%201", "percent-encoded control characters"),
     ("\r\nX-Injected: 1", "spaces or control characters"),
     ("#fragment", "must not contain '#'"), ("/http://evil.example", "scheme or host"),
     ("/\u2025", "not allowed in a URL path")],
    ids=["dotdot", "dot", "encoded-dots", "encoded-dots-mixed-case", "encoded-slash",
         "encoded-backslash", "backslash", "nul", "encoded-crlf", "crlf", "fragment",
         "scheme", "non-ascii"])
def test_escapes_deep_inside_long_paths_are_refused(escape: str, problem: str) -> None:
    path = f"{TASK_LOG_PATH}/{'x' * 1500}{escape}/logs"
    assert len(path) > 1500
    message = refusal(path)
    assert message.startswith("Invalid Path: it ") and problem in message, message
    with pytest.raises(ValidationException):
        check_path(path)


def test_a_path_must_start_with_one_slash_however_long() -> None:
    one_slash = "Invalid Path: it must start with a single '/'"
    assert refusal("//evil.example" + SENSOR_PATH) == one_slash
    assert refusal("dags" + SENSOR_PATH) == one_slash


# --- a query string in Path -------------------------------------------------------------------

def test_a_query_string_in_path_is_parsed() -> None:
    assert request_target("/dags/x/dagRuns?order_by=-start_date&limit=10", None) == (
        "/dags/x/dagRuns", [("order_by", "-start_date"), ("limit", "10")])


def test_path_query_comes_first_then_query_parameters() -> None:
    assert request_target("/dags/x/dagRuns?order_by=-start_date&limit=10",
                          {"offset": 5, "state": ["running", "queued"]}) == (
        "/dags/x/dagRuns", [("order_by", "-start_date"), ("limit", "10"), ("offset", "5"),
                            ("state", "running"), ("state", "queued")])


def test_a_key_repeated_within_path_query_is_kept() -> None:
    assert request_target("/dagRuns?state=running&state=queued", None)[1] == [
        ("state", "running"), ("state", "queued")]


@pytest.mark.parametrize("parameters", [{"limit": 5}, {"limit": [5, 6]}, {"limit": "10"}])
def test_a_key_in_both_places_is_refused(parameters: dict[str, Any]) -> None:
    assert refusal("/dags?order_by=dag_id&limit=10", parameters) == (
        "QueryParameters and Path's query string both give limit: give each parameter in "
        "one place")


def test_a_null_query_parameter_is_not_a_conflict() -> None:
    assert request_target("/dags?limit=10", {"limit": None}) == ("/dags", [("limit", "10")])


@pytest.mark.parametrize(
    ("query", "pairs"),
    [("", []), ("limit=1&", [("limit", "1")]), ("flag", [("flag", "")]),
     ("a=1&b=", [("a", "1"), ("b", "")]),
     # Decoded once: an encoded '&', '=', '#', '%' or '+' stays inside its value.
     ("note=a%26b%3Dc%23d", [("note", "a&b=c#d")]), ("p=100%25", [("p", "100%")]),
     ("plus=a%2Bb", [("plus", "a+b")]), ("space=a+b", [("space", "a b")]),
     ("twice=%252e%252e", [("twice", "%2e%2e")]),
     ("uri_pattern=s3://lake/data?x", [("uri_pattern", "s3://lake/data?x")]),
     ("e=%C3%A9t%C3%A9", [("e", "été")]),
     # Traversal-looking text after '?' is a value: it can't change the path.
     ("x=/../../admin&%2e%2e=%2f..%2f", [("x", "/../../admin"), ("..", "/../")])],
    ids=["empty", "trailing-ampersand", "no-value", "blank-value", "encoded-separators",
         "encoded-percent", "encoded-plus", "plus-is-space", "double-encoded", "uri",
         "utf-8", "traversal-looking"])
def test_path_query_decoding(query: str, pairs: list[tuple[str, str]]) -> None:
    assert request_target(f"/assets?{query}", None) == ("/assets", pairs)


@pytest.mark.parametrize(
    ("query", "problem"),
    [("a=1#frag", "must not contain '#'"), ("#", "must not contain '#'"),
     ("a=1\r\nX-Injected: 1", "must not contain spaces or control characters"),
     ("a=b c", "must not contain spaces or control characters"),
     ("a=\x00", "must not contain spaces or control characters"),
     ("a=%0d%0aX-Injected:%201", "must not contain percent-encoded control characters"),
     ("a=%00", "must not contain percent-encoded control characters"),
     ("%0a=1", "must not contain percent-encoded control characters"),
     ("a=%7f", "must not contain percent-encoded control characters"),
     ("a=%zz", "must not contain a '%' that is not followed by two hexadecimal digits"),
     ("a=100%", "must not contain a '%' that is not followed by two hexadecimal digits"),
     ("a=%ff", "must be UTF-8 once percent-decoded"),
     ("a=%c0%ae%c0%ae", "must be UTF-8 once percent-decoded")],
    ids=["fragment", "bare-hash", "crlf", "space", "nul", "encoded-crlf", "encoded-nul",
         "encoded-lf-in-key", "encoded-del", "broken-escape", "trailing-percent",
         "not-utf-8", "overlong-dots"])
def test_path_query_encoding_tricks_are_refused(query: str, problem: str) -> None:
    assert refusal(f"/dags?{query}") == f"Invalid Path: its query string {problem}"


@pytest.mark.parametrize(
    "path",
    ["/../monitor/health?limit=1", "/dags/%2e%2e/x?limit=1", "/dags%2f..?x=1",
     "\\dags?x=1", "//evil.example/?x=1", "/dags#x?y=1", "/./dags?x=1"],
    ids=["dotdot", "encoded-dots", "encoded-slash", "backslash", "network-path",
         "fragment-before-query", "dot"])
def test_the_path_before_a_query_string_is_checked_as_before(path: str) -> None:
    assert refusal(path).startswith("Invalid Path: it ")


def test_what_is_sent_is_encoded_once() -> None:
    """The proxy urlencodes the pairs: what Airflow decodes is what the caller meant."""
    query = "order_by=-start_date&note=a%26b%3Dc%23d&space=a+b&plus=a%2Bb&twice=%252e"
    _, pairs = request_target(f"/dagRuns?{query}", {"offset": 5})
    sent = urlencode(pairs)
    assert sent == ("order_by=-start_date&note=a%26b%3Dc%23d&space=a+b&plus=a%2Bb"
                    "&twice=%252e&offset=5")
    assert parse_qsl(sent) == pairs


# --- Airflow's answer nested too deep ---------------------------------------------------------

def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_the_deepest_answer_allowed_is_returned() -> None:
    result = _result(200, nested(MAX_RESPONSE_DEPTH))
    assert result["RestApiStatusCode"] == 200
    assert json.dumps(result["RestApiResponse"]) == "[" * MAX_RESPONSE_DEPTH + "]" * \
        MAX_RESPONSE_DEPTH


@pytest.mark.parametrize("status", [200, 404, 500])
@pytest.mark.parametrize(
    "body",
    [nested(MAX_RESPONSE_DEPTH + 1), b'{"a":' * MAX_RESPONSE_DEPTH + b"[]" + b"}" *
     MAX_RESPONSE_DEPTH, nested(1_000), nested(100_000)],
    ids=["arrays-501", "objects-501", "arrays-1000", "arrays-100000"])
def test_an_answer_nested_too_deep_is_a_server_error(body: bytes, status: int) -> None:
    with pytest.raises(RestApiServerException) as excinfo:
        _result(status, body)
    detail = (f"Airflow's response nests JSON arrays and objects more than "
              f"{MAX_RESPONSE_DEPTH} levels deep, more than InvokeRestApi returns")
    assert excinfo.value.message == detail
    assert excinfo.value.fields == {"RestApiStatusCode": 502,
                                    "RestApiResponse": {"detail": detail}}


def test_many_brackets_that_do_not_nest_are_fine() -> None:
    body = json.dumps({"rows": [[i] for i in range(2000)], "text": "[[[{{{" * 200}).encode()
    assert _result(200, body)["RestApiResponse"]["rows"][1999] == [1999]
