"""botocore's own client serializer and parser held against ours, for every operation.

Inputs are generated from the model's shapes (hypothesis), encoded by botocore exactly as a
client would send them, parsed by airgate, and must come back unchanged; outputs go the
other way through botocore's rest-json response parser.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.model import OperationModel, Shape
from botocore.parsers import create_parser
from botocore.serialize import create_serializer
from botocore.utils import percent_encode_sequence
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from airgate.auth.sigv4 import query_parameters
from airgate.aws.protocol import parse_input, serialize_error, serialize_output
from airgate.aws.spec import router, service_model
from airgate.errors import (
    AccessDeniedException,
    RestApiClientException,
    ServiceError,
    ValidationException,
)

MODEL = service_model()
OPERATIONS = sorted(MODEL.operation_names)
# `regex` classes that hypothesis' generator (Python `re`) does not know.
_PATTERN_REWRITES = {r"\p{L}": "a-zA-Z", r"\p{Z}": " ", r"\p{N}": "0-9"}


def _pattern(pattern: str) -> str:
    for old, new in _PATTERN_REWRITES.items():
        pattern = pattern.replace(old, new)
    return pattern


def values_for(shape: Shape, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values that satisfy `shape`'s constraints."""
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure":
        if meta.get("document"):
            scalars = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000),
                                st.text(max_size=10))
            documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                                     | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                                     max_leaves=6)
            # A null document is the member left out, which botocore would not send.
            return documents.filter(lambda value: value is not None)
        required = {n: values_for(m, depth + 1) for n, m in shape.members.items()  # type: ignore[attr-defined]
                    if n in shape.required_members}  # type: ignore[attr-defined]
        optional = {n: values_for(m, depth + 1) for n, m in shape.members.items()  # type: ignore[attr-defined]
                    if n not in shape.required_members and depth < 3}  # type: ignore[attr-defined]
        return st.fixed_dictionaries(required, optional=optional)
    if kind == "list":
        return st.lists(values_for(shape.member, depth + 1),  # type: ignore[attr-defined]
                        min_size=meta.get("min", 0), max_size=min(meta.get("max", 3), 3))
    if kind == "map":
        return st.dictionaries(values_for(shape.key, depth + 1),  # type: ignore[attr-defined]
                               values_for(shape.value, depth + 1),  # type: ignore[attr-defined]
                               min_size=max(meta.get("min", 0), 0), max_size=3)
    if kind == "string":
        low, high = meta.get("min", 0), meta.get("max", 40)
        if "enum" in meta:
            return st.sampled_from(meta["enum"])
        one_class = re.fullmatch(r"(\[[^\]]*\])[+*]", meta.get("pattern", ""))
        if one_class:  # `[...]+`: the length drawn directly rather than filtered for
            character = st.from_regex(re.compile(_pattern(one_class.group(1)), re.ASCII),
                                      fullmatch=True)
            return st.text(character, min_size=max(low, 1 if meta["pattern"][-1] == "+"
                                                   else 0), max_size=min(high, 200))
        if "pattern" in meta:
            text = st.from_regex(re.compile(_pattern(meta["pattern"]), re.ASCII),
                                 fullmatch=True)
        else:
            return st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)),
                           min_size=low, max_size=min(high, 200))
        return text.filter(lambda s: low <= len(s) <= min(high, 200))
    if kind in ("integer", "long"):
        return st.integers(meta.get("min", -(2**31)), meta.get("max", 2**31 - 1))
    if kind in ("double", "float"):
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    if kind == "boolean":
        return st.booleans()
    if kind == "timestamp":
        return st.datetimes(min_value=datetime.datetime(2000, 1, 1),
                            max_value=datetime.datetime(2100, 1, 1),
                            timezones=st.just(datetime.UTC)).map(
            lambda d: d.replace(microsecond=0))
    raise AssertionError(f"no generator for {kind}")


def _wire(operation: OperationModel, params: dict[str, Any]) -> tuple[str, str,
                                                                      dict[str, str], bytes]:
    """What botocore puts on the wire for these params: raw path, raw query, headers, body."""
    request = create_serializer("rest-json").serialize_to_request(params, operation)
    body = request["body"]
    body = body.encode() if isinstance(body, str) else body
    query = request["query_string"]
    raw_query = percent_encode_sequence(query) if isinstance(query, dict) else query
    headers = {k.lower(): v for k, v in request["headers"].items()}
    return urlsplit(request["url_path"]).path, raw_query, headers, body


def _query_lists_unordered(operation: OperationModel, params: dict[str, Any]) -> dict[str, Any]:
    """Repeated query keys carry no order the signature covers: compare them as multisets."""
    return {name: sorted(value) if operation.input_shape.members[name].serialization.get(
                "location") == "querystring" and isinstance(value, list) else value
            for name, value in params.items()}


@pytest.mark.parametrize("name", OPERATIONS)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_request_round_trip(name: str, data: st.DataObject) -> None:
    operation = MODEL.operation_model(name)
    params = data.draw(values_for(operation.input_shape))
    # An empty list in the query string is no parameter at all on the wire.
    assume(all(value != [] for value in params.values()))
    raw_path, query, headers, body = _wire(operation, params)

    match = router().match(operation.http["method"], raw_path)
    assert match is not None and match.operation.name == name
    parsed = parse_input(operation, match.uri_params, query_parameters(query), headers, body)
    assert _query_lists_unordered(operation, parsed) == _query_lists_unordered(operation, params)


@pytest.mark.parametrize("name", OPERATIONS)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_response_round_trip(name: str, data: st.DataObject) -> None:
    operation = MODEL.operation_model(name)
    if operation.output_shape is None:
        return
    result = data.draw(values_for(operation.output_shape))
    response = serialize_output(operation, result)
    parsed = create_parser("rest-json").parse(
        {"status_code": response.status, "headers": response.headers, "body": response.body},
        operation.output_shape)
    parsed.pop("ResponseMetadata", None)
    assert _normalise(parsed) == _normalise(result)


def _normalise(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


@pytest.mark.parametrize(
    ("error", "body"),
    [
        (ValidationException("bad"), {"message": "bad"}),
        (AccessDeniedException("no"), {"Message": "no"}),
        (RestApiClientException("x", RestApiStatusCode=404, RestApiResponse={"detail": "gone"}),
         {"message": "x", "RestApiStatusCode": 404, "RestApiResponse": {"detail": "gone"}}),
    ],
    ids=["validation", "access-denied", "rest-api-client"],
)
def test_error_round_trip(error: ServiceError, body: dict[str, Any]) -> None:
    response = serialize_error(error)
    assert json.loads(response.body) == body
    assert response.headers["x-amzn-errortype"] == error.code
    operation = MODEL.operation_model("InvokeRestApi")
    parsed = create_parser("rest-json").parse(
        {"status_code": response.status, "headers": response.headers, "body": response.body},
        operation.output_shape)
    assert parsed["Error"]["Code"] == error.code
    assert parsed["Error"]["Message"] == error.message


def test_every_route_is_unique() -> None:
    seen = {(MODEL.operation_model(n).http["method"], MODEL.operation_model(n).http["requestUri"])
            for n in OPERATIONS}
    assert len(seen) == len(OPERATIONS)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/"), ("GET", "/environments/a/b"), ("PUT", "/environments"),
     ("GET", "/restapi/x"), ("POST", "/tags/"), ("GET", "/environments//")],
)
def test_unknown_routes_do_not_match(method: str, path: str) -> None:
    assert router().match(method, path) is None


def test_encoded_slash_stays_inside_a_label() -> None:
    arn = "arn%3Aaws%3Aairflow%3Aus-east-1%3A000000000000%3Aenvironment%2Fmy-env"
    match = router().match("GET", f"/tags/{arn}")
    assert match is not None
    assert match.uri_params == {
        "ResourceArn": "arn:aws:airflow:us-east-1:000000000000:environment/my-env"}
