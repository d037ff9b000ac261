"""rest-json: turn a raw request into operation input, and results or errors into responses.

Every member's location (uri, querystring, header, body) and wire name comes from the model,
so one parser and one serializer serve every operation. This is the inverse of what botocore's
rest-json serializer and parser do on the client side; tests hold the two against each other.
`RestJsonProtocol` is this protocol as the gateway's `WireProtocol` for one service.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from typing import Any

from botocore.model import OperationModel, ServiceModel, Shape, StructureShape

from airgate.auth.sigv4 import QueryParameter, SignedRequest
from airgate.aws.spec import Router, service_model
from airgate.aws.validate import validate
from airgate.aws.wire import Response
from airgate.errors import ServiceError, UnknownOperationException, ValidationException

__all__ = [
    "Response",
    "RestJsonProtocol",
    "parse_input",
    "serialize_error",
    "serialize_output",
]

JSON_CONTENT_TYPE = "application/json"
# Request bodies whose arrays and objects nest deeper than this are refused, so that every
# recursive step after decoding (conversion, validation, re-serialising the InvokeRestApi
# Body) stays far from Python's recursion limit. MWAA's own members nest a few levels;
# Airflow's API (FastAPI, Python's json) would take up to about 1,000, but no DAG-run conf
# or other Airflow body a client sends needs anything near 100.
MAX_JSON_DEPTH = 100


class RestJsonProtocol:
    """rest-json for one service: routes from its model's requestUris."""

    def __init__(self, model: ServiceModel, router: Router) -> None:
        self._model = model
        self._router = router
        self._name = model.metadata.get("serviceId", model.service_name)

    def read(self, request: SignedRequest, query: Sequence[QueryParameter]
             ) -> tuple[OperationModel, dict[str, Any]]:
        match = self._router.match(request.method, request.raw_path)
        if match is None:
            raise UnknownOperationException(
                f"No {self._name} operation is served at {request.method} "
                f"{request.raw_path[:200]}")
        headers = {name.lower(): value for name, value in request.headers}
        params = parse_input(match.operation, match.uri_params, query, headers, request.body)
        return match.operation, params

    def write(self, operation: OperationModel, result: Mapping[str, Any],
              request_id: str) -> Response:
        return serialize_output(operation, result)

    def write_error(self, error: ServiceError, request_id: str) -> Response:
        return serialize_error(error, self._model)

    def recognizes(self, request: SignedRequest) -> bool:
        return False  # the default service: what is not another's is this one's


# --- parsing ---------------------------------------------------------------------------


def parse_input(
    operation: OperationModel,
    uri_params: Mapping[str, str],
    query: Sequence[QueryParameter],
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, Any]:
    """Operation input from the request's parts, validated against the model.

    `query` is the query string as `sigv4.query_parameters` reads it for the signature;
    `headers` must have lower-case names. Raises ValidationException on anything malformed.
    """
    shape = operation.input_shape
    if shape is None:
        return {}
    params: dict[str, Any] = {}
    body_members: dict[str, tuple[str, Shape]] = {}
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "uri":
            if wire in uri_params:
                params[name] = _scalar_from_text(member, uri_params[wire], name)
        elif location == "querystring":
            values = _query_values(query, wire, repeatable=member.type_name == "list")
            if values:
                params[name] = (
                    [_scalar_from_text(member.member, v, name) for v in values]
                    if member.type_name == "list"
                    else _scalar_from_text(member, values[0], name)
                )
        elif location == "header":
            if wire.lower() in headers:
                params[name] = _scalar_from_text(member, headers[wire.lower()], name)
        else:
            body_members[name] = (wire, member)
    if body_members:
        document = _json_object(body)
        for name, (wire, member) in body_members.items():
            if document.get(wire) is not None:
                params[name] = _from_json(member, document[wire])
    validate(shape, params)
    return params


def _query_values(query: Sequence[QueryParameter], wire: str, *, repeatable: bool
                  ) -> list[str]:
    """A query member's values, in canonical order; refused where the signature, which
    covers only the canonical query, would not pin down one reading of them."""
    found = [parameter for parameter in query if parameter.key == wire.encode()]
    if len(found) > 1 and not repeatable:
        raise ValidationException(f"Query parameter '{wire}' must not repeat: it takes one "
                                  "value")
    if any(parameter.bare_plus for parameter in found):
        raise ValidationException(
            f"Query parameter '{wire}' contains a bare '+', which may mean a space or a "
            "plus: percent-encode it, as '%20' for a space or '%2B' for a plus")
    try:
        return [parameter.value.decode() for parameter in found]
    except UnicodeDecodeError:
        raise ValidationException(f"Query parameter '{wire}' is not valid UTF-8 once "
                                  "percent-decoded") from None


def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        document = json.loads(body)
    except UnicodeDecodeError:
        raise ValidationException("Request body is not valid UTF-8") from None
    except json.JSONDecodeError as error:
        raise ValidationException(f"Request body is not valid JSON: {error.msg}") from None
    except RecursionError:  # nested deeper than Python's stack allows, so deeper than ours
        raise _too_deep() from None
    if nested_deeper_than(document, MAX_JSON_DEPTH):
        raise _too_deep()
    if not isinstance(document, dict):
        raise ValidationException("Request body must be a JSON object")
    return document


def nested_deeper_than(document: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels; one level at a time, so
    that no depth can exhaust the stack here."""
    level = [document] if isinstance(document, (dict, list)) else []
    for _ in range(limit):
        level = [child for value in level
                 for child in (value.values() if isinstance(value, dict) else value)
                 if isinstance(child, (dict, list))]
        if not level:
            return False
    return True


def _too_deep() -> ValidationException:
    return ValidationException(f"Request body nests JSON arrays and objects more than "
                               f"{MAX_JSON_DEPTH} levels deep")


def _scalar_from_text(shape: Shape, text: str, name: str) -> Any:
    """A uri/querystring/header value, converted to the member's type."""
    kind = shape.type_name
    if kind in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            raise ValidationException(
                f"Value '{text[:100]}' at '{name}' failed to satisfy constraint: "
                "Member must be an integer"
            ) from None
    if kind == "boolean":
        if text in ("true", "false"):
            return text == "true"
        raise ValidationException(f"Value at '{name}' must be true or false")
    return text


def _from_json(shape: Shape, value: Any) -> Any:
    """Body values are JSON already, except timestamps, which arrive as epoch seconds.

    Values of the wrong JSON type are passed through for validation to report.
    """
    kind = shape.type_name
    if kind == "timestamp" and isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.datetime.fromtimestamp(value, tz=datetime.UTC)
        except (OverflowError, OSError, ValueError):
            return value
    if kind == "structure" and isinstance(value, dict) and not shape.metadata.get("document"):
        members = shape.members
        return {k: _from_json(members[k], v) if k in members else v for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [_from_json(shape.member, v) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _from_json(shape.value, v) for k, v in value.items()}
    return value


# --- serializing -----------------------------------------------------------------------


def serialize_output(operation: OperationModel, result: Mapping[str, Any]) -> Response:
    shape = operation.output_shape
    status = int(operation.http.get("responseCode", 200))
    headers = {"content-type": JSON_CONTENT_TYPE}
    document: dict[str, Any] = {}
    if shape is not None:
        for name, member in shape.members.items():
            value = result.get(name)
            if value is None:
                continue
            location = member.serialization.get("location")
            if location == "header":
                headers[member.serialization.get("name", name).lower()] = str(value)
            elif location == "statusCode":
                status = int(value)
            else:
                document[member.serialization.get("name", name)] = _to_json(member, value)
    return Response(status, json.dumps(document, separators=(",", ":")).encode(), headers)


def _to_json(shape: Shape, value: Any) -> Any:
    kind = shape.type_name
    if kind == "timestamp":
        assert isinstance(value, datetime.datetime)
        return value.timestamp()
    if kind == "structure" and not shape.metadata.get("document"):
        assert isinstance(shape, StructureShape)
        return {k: _to_json(shape.members[k], v) for k, v in value.items()
                if v is not None and k in shape.members}
    if kind == "list":
        return [_to_json(shape.member, v) for v in value]
    if kind == "map":
        return {k: _to_json(shape.value, v) for k, v in value.items()}
    return value


def serialize_error(error: ServiceError, model: ServiceModel | None = None) -> Response:
    """An error response botocore parses into ClientError with this code and message.

    Errors the model (MWAA's by default) defines use their shape's members (`message` or
    `Message`, plus e.g. RestApiStatusCode); the shared SigV4 errors use `message`.
    """
    document: dict[str, Any] = {}
    model = model or service_model()
    if error.code in model.shape_names:
        shape = model.shape_for(error.code)
        assert isinstance(shape, StructureShape)
        message_key = "Message" if "Message" in shape.members else "message"
        document[message_key] = error.message
        for name, value in error.fields.items():
            if name in shape.members and value is not None:
                document[name] = _to_json(shape.members[name], value)
    else:
        document["message"] = error.message
    headers = {"content-type": JSON_CONTENT_TYPE, "x-amzn-errortype": error.code}
    return Response(error.status, json.dumps(document, separators=(",", ":")).encode(), headers,
                    error_code=error.code)
