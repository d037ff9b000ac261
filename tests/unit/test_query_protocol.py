"""The query protocol held against botocore's own: for every STS and IAM operation airgate
serves, inputs generated from the model are encoded by botocore's QuerySerializer (as a
form-encoded body, and as a presigned query string) and must come back unchanged from
airgate's reader; outputs and errors written by airgate must come back unchanged from
botocore's QueryParser."""

from __future__ import annotations

import datetime
import re
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore.model import OperationModel
from botocore.parsers import create_parser
from botocore.serialize import create_serializer
from botocore.utils import percent_encode_sequence
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from airgate.auth.identities import IamError
from airgate.auth.sigv4 import SignedRequest, query_parameters
from airgate.aws.query import COMMON_ERRORS, QueryProtocol
from airgate.errors import (
    AccessDeniedException,
    InternalServerException,
    MissingActionException,
    MissingAuthenticationTokenException,
    ServiceError,
    UnknownOperationException,
    UnrecognizedClientException,
    ValidationException,
)
from airgate.services import service_model
from airgate.services.iam import RESOURCES
from tests.unit.test_protocol import values_for

STS, IAM = service_model("sts"), service_model("iam")
SERVED = [("sts", name) for name in ("AssumeRole", "GetCallerIdentity", "GetSessionToken")] + \
    [("iam", name) for name in sorted(RESOURCES)]
PROTOCOLS = {"sts": QueryProtocol(STS), "iam": QueryProtocol(IAM)}
MODELS = {"sts": STS, "iam": IAM}
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _operation(service: str, name: str) -> OperationModel:
    return MODELS[service].operation_model(name)


def _sendable(value: Any) -> bool:
    """What botocore's query serializer can carry: a structure in a list with no member
    set puts nothing on the wire."""
    if isinstance(value, dict):
        return all(_sendable(v) for v in value.values())
    if isinstance(value, list):
        return all(v != {} and _sendable(v) for v in value)
    return True


def _xml_text(value: Any) -> bool:
    """Strings XML can carry (AWS's own values never hold the rest)."""
    if isinstance(value, dict):
        return all(_xml_text(k) and _xml_text(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_xml_text(v) for v in value)
    return not isinstance(value, str) or _NOT_XML.search(value) is None


def _request(operation: OperationModel, params: dict[str, Any], form: str) -> SignedRequest:
    serialized = create_serializer("query").serialize_to_request(params, operation)
    body = serialized["body"]
    if form == "body":  # what botocore's AWSRequestPreparer sends
        encoded = urlencode(list(body.items()), doseq=True).encode()
        return SignedRequest("POST", "/", "", [], encoded)
    return SignedRequest("GET", "/", percent_encode_sequence(body), [], b"")  # presigned


@pytest.mark.parametrize("form", ["body", "query"])
@pytest.mark.parametrize(("service", "name"), SERVED, ids=[f"{s}-{n}" for s, n in SERVED])
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_request_round_trip(service: str, name: str, form: str, data: st.DataObject) -> None:
    operation = _operation(service, name)
    params: dict[str, Any] = {} if operation.input_shape is None else \
        data.draw(values_for(operation.input_shape))
    assume(_sendable(params))
    request = _request(operation, params, form)
    read, parsed = PROTOCOLS[service].read(request, query_parameters(request.raw_query))
    assert read.name == name
    assert parsed == params


@pytest.mark.parametrize(("service", "name"), SERVED, ids=[f"{s}-{n}" for s, n in SERVED])
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_response_round_trip(service: str, name: str, data: st.DataObject) -> None:
    operation = _operation(service, name)
    result: dict[str, Any] = {} if operation.output_shape is None else \
        data.draw(values_for(operation.output_shape))
    assume(_xml_text(result))
    response = PROTOCOLS[service].write(operation, result, "request-1")
    assert response.status == 200
    assert response.headers["content-type"] == "text/xml"
    parsed = create_parser("query").parse(
        {"status_code": 200, "headers": response.headers, "body": response.body},
        operation.output_shape)
    assert parsed.pop("ResponseMetadata")["RequestId"] == "request-1"
    assert _normalise(parsed) == _normalise(result)


def _normalise(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


@pytest.mark.parametrize(("error", "code", "status"), [
    (MissingAuthenticationTokenException("Missing Authentication Token"),
     "MissingAuthenticationToken", 403),
    (UnrecognizedClientException("The security token included in the request is invalid."),
     "InvalidClientTokenId", 403),
    (AccessDeniedException("User: x is not authorized"), "AccessDenied", 403),
    (ValidationException("1 validation error detected"), "ValidationError", 400),
    (UnknownOperationException("Could not find operation X for version 2010-05-08"),
     "InvalidAction", 400),
    (MissingActionException("Missing Action"), "MissingAction", 400),
    (InternalServerException("An internal error occurred."), "InternalFailure", 500),
    (IamError("NoSuchEntity", "The user with name x cannot be found."), "NoSuchEntity", 404),
    (IamError("EntityAlreadyExists", "exists"), "EntityAlreadyExists", 409),
    (IamError("DeleteConflict", "keys first"), "DeleteConflict", 409),
    (IamError("LimitExceeded", "quota"), "LimitExceeded", 409),
    (IamError("MalformedPolicyDocument", "bad <policy> & co"), "MalformedPolicyDocument", 400),
    (IamError("ValidationError", "bad"), "ValidationError", 400),
])
@pytest.mark.parametrize("service", ["iam", "sts"])
def test_error_round_trip(service: str, error: ServiceError, code: str, status: int) -> None:
    if service == "sts" and code in ("NoSuchEntity", "EntityAlreadyExists", "DeleteConflict",
                                     "LimitExceeded"):
        return  # IAM's own errors
    response = PROTOCOLS[service].write_error(error, "request-2")
    assert response.status == status
    assert response.error_code == code
    namespace = MODELS[service].metadata["xmlNamespace"]
    assert response.body.startswith(f'<ErrorResponse xmlns="{namespace}">'.encode())
    parsed = create_parser("query").parse(
        {"status_code": status, "headers": response.headers, "body": response.body},
        _operation(service, "GetCallerIdentity" if service == "sts" else "GetUser").output_shape)
    assert parsed["Error"]["Code"] == code
    expected = COMMON_ERRORS[type(error)].message if type(error) in COMMON_ERRORS else None
    assert parsed["Error"]["Message"] == (expected or error.message)
    assert parsed["Error"]["Type"] == ("Receiver" if status >= 500 else "Sender")
    assert parsed["ResponseMetadata"]["RequestId"] == "request-2"


def test_sts_words_for_a_missing_signature() -> None:
    response = PROTOCOLS["sts"].write_error(
        MissingAuthenticationTokenException("Missing Authentication Token"), "r")
    assert b"<Message>Request is missing Authentication Token</Message>" in response.body


def test_iam_returns_modeled_statuses_from_the_model() -> None:
    """Statuses come from the model's error traits, not from a table of ours."""
    traits = {shape.error_code: shape.metadata["error"]["httpStatusCode"]
              for shape in IAM.error_shapes if "error" in shape.metadata}
    for code, status in traits.items():
        assert PROTOCOLS["iam"].write_error(IamError(code, "m"), "r").status == status


@pytest.mark.parametrize(("body", "code", "message"), [
    (b"", MissingActionException, "Missing Action"),
    (b"Version=2011-06-15", MissingActionException, "Missing Action"),
    (b"Action=ListUsers&Version=2011-06-15", UnknownOperationException,
     "Could not find operation ListUsers for version 2011-06-15"),
    (b"Action=GetCallerIdentity", UnknownOperationException,
     "Could not find operation GetCallerIdentity for version NO_VERSION_SPECIFIED"),
    (b"Action=GetCallerIdentity&Version=2010-05-08", UnknownOperationException,
     "Could not find operation GetCallerIdentity for version 2010-05-08"),
    (b"Action=GetCallerIdentity&Version=2011-06-15&Action=GetCallerIdentity",
     ValidationException, "Parameter 'Action' must not repeat"),
    (b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A0%3Arole%2Fxyzxyzx"
     b"&RoleSessionName=s1&DurationSeconds=ten", ValidationException,
     "Value 'ten' at 'durationSeconds' failed to satisfy constraint"),
    (b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A0%3Arole%2Fxyzxyzx"
     b"&RoleSessionName=s&DurationSeconds=60", ValidationException,
     "2 validation errors detected: Value 's' at 'roleSessionName' failed to satisfy "
     "constraint: Member must have length greater than or equal to 2; Value '60' at "
     "'durationSeconds' failed to satisfy constraint: Member must have value greater than or "
     "equal to 900"),
    (b"Action=GetCallerIdentity&Version=2011-06-15&%FF=1", ValidationException,
     "not form-encoded UTF-8"),
])
def test_requests_that_can_not_be_read(body: bytes, code: type[ServiceError],
                                       message: str) -> None:
    with pytest.raises(code) as raised:
        PROTOCOLS["sts"].read(SignedRequest("POST", "/", "", [], body), [])
    assert message in raised.value.message


def test_a_bare_plus_in_the_query_string_is_refused() -> None:
    query = "Action=AssumeRole&Version=2011-06-15&RoleSessionName=a+b"
    with pytest.raises(ValidationException, match="bare"):
        PROTOCOLS["sts"].read(SignedRequest("GET", "/", query, [], b""),
                              query_parameters(query))


def test_presigning_parameters_are_not_input() -> None:
    query = ("Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256"
             "&X-Amz-Signature=00")
    operation, params = PROTOCOLS["sts"].read(SignedRequest("GET", "/", query, [], b""),
                                              query_parameters(query))
    assert (operation.name, params) == ("GetCallerIdentity", {})


@pytest.mark.parametrize(("service", "body", "expected"), [
    ("sts", b"Action=GetCallerIdentity&Version=2011-06-15", True),
    ("iam", b"Action=GetCallerIdentity&Version=2011-06-15", False),
    ("iam", b"Action=ListUsers&Version=2010-05-08", True),
    ("iam", b"Action=ListUsers", True),
    ("sts", b"Action=ListUsers", False),
    ("sts", b'{"Name": "x"}', False),
    ("sts", b"\xff", False),
])
def test_which_service_an_unsigned_request_is_for(service: str, body: bytes,
                                                  expected: bool) -> None:
    request = SignedRequest("POST", "/", "", [], body)
    assert PROTOCOLS[service].recognizes(request) is expected


def test_text_xml_can_not_carry_is_replaced_and_carriage_returns_kept() -> None:
    operation = _operation("sts", "GetCallerIdentity")
    response = PROTOCOLS["sts"].write(operation, {"Arn": "a\x01b\r\n<&>"}, "r")
    parsed = create_parser("query").parse(
        {"status_code": 200, "headers": {}, "body": response.body}, operation.output_shape)
    assert parsed["Arn"] == "a\ufffdb\r\n<&>"
