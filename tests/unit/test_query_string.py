"""One reading of the query string for the signature and for the operation's input.

SigV4 signs the canonical query: pairs sorted, every byte but the unreserved ones
percent-encoded. Whatever a query string can be changed into without changing that form
(repeated keys reordered, '%2B' sent as '+', 'a' sent as '%61', '%2b' for '%2B') keeps a
valid signature, so the parser must read it the same way or refuse it. Requests are signed
by botocore and taken apart as a server receives them (tests.unit.test_sigv4).
"""

from __future__ import annotations

import dataclasses
import re
import string
from typing import Any

import pytest
from botocore.serialize import create_serializer
from botocore.utils import percent_encode_sequence
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airgate.auth.sigv4 import QueryParameter, SignedRequest, query_parameters
from airgate.aws.protocol import parse_input
from airgate.aws.spec import router, service_model
from airgate.errors import ValidationException
from tests.unit.test_sigv4 import ARN_PATH, botocore_sign, check

MODEL = service_model()
ARN = "arn:aws:airflow:us-east-1:000000000000:environment/x"


def parse(request: SignedRequest) -> dict[str, Any]:
    """The operation input airgate reads from `request`, as the gateway reads it."""
    match = router().match(request.method, request.raw_path)
    assert match is not None
    headers = {name.lower(): value for name, value in request.headers}
    return parse_input(match.operation, match.uri_params, query_parameters(request.raw_query),
                       headers, request.body)


def with_query(request: SignedRequest, raw_query: str) -> SignedRequest:
    return dataclasses.replace(request, raw_query=raw_query)


# --- the reading itself -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_query", "expected"),
    [
        ("", []),
        ("b=2&a=1", [(b"a", b"1", False), (b"b", b"2", False)]),
        ("k=a+b", [(b"k", b"a+b", True)]),
        ("k=a%2Bb&k=a%20b", [(b"k", b"a b", False), (b"k", b"a+b", False)]),
        ("%6B=%61", [(b"k", b"a", False)]),
        ("k=%C3%A4", [(b"k", "ä".encode(), False)]),
        ("flag&&k=", [(b"flag", b"", False), (b"k", b"", False)]),
        ("k=b=c", [(b"k", b"b=c", False)]),
        # Sorted as the canonical query sorts: by encoded key, then encoded value.
        ("k=%C3%A4&k=~&k=%25", [(b"k", b"%", False), (b"k", "ä".encode(), False),
                                (b"k", b"~", False)]),
    ],
)
def test_query_parameters(raw_query: str, expected: list[tuple[bytes, bytes, bool]]) -> None:
    assert query_parameters(raw_query) == [QueryParameter(*triple) for triple in expected]


# --- the attacks: one signature, two query strings ----------------------------------------


def test_plus_for_percent_2b_keeps_the_signature_and_is_refused() -> None:
    """Untagging 'a+b' must not become untagging 'a b' on the way."""
    signed = botocore_sign("DELETE", ARN_PATH, "tagKeys=a%2Bb").request
    assert parse(signed)["tagKeys"] == ["a+b"]
    altered = with_query(signed, "tagKeys=a+b")
    check(altered)  # the signature does not see it: '+' is signed as '%2B', as AWS does
    with pytest.raises(ValidationException) as refused:
        parse(altered)
    assert refused.value.message == (
        "Query parameter 'tagKeys' contains a bare '+', which may mean a space or a plus: "
        "percent-encode it, as '%20' for a space or '%2B' for a plus")


@pytest.mark.parametrize("raw_query", ["MaxResults=1&MaxResults=25",
                                       "MaxResults=25&MaxResults=1"])
def test_a_repeated_single_valued_parameter_is_refused(raw_query: str) -> None:
    """Both orders carry one signature, so neither may choose a value."""
    signed = botocore_sign("GET", "/environments", "MaxResults=1&MaxResults=25").request
    check(with_query(signed, raw_query))
    with pytest.raises(ValidationException) as refused:
        parse(with_query(signed, raw_query))
    assert refused.value.message == (
        "Query parameter 'MaxResults' must not repeat: it takes one value")


def test_a_key_spelt_two_ways_is_one_key() -> None:
    signed = botocore_sign("GET", "/environments", "MaxResults=1&%4DaxResults=25").request
    with pytest.raises(ValidationException, match="'MaxResults' must not repeat"):
        parse(signed)


def test_reordered_list_values_read_the_same() -> None:
    signed = botocore_sign("DELETE", ARN_PATH, "tagKeys=b&tagKeys=a&tagKeys=c").request
    reordered = with_query(signed, "tagKeys=c&tagKeys=a&tagKeys=b")
    check(reordered)
    assert parse(reordered) == parse(signed) == {"ResourceArn": ARN,
                                                 "tagKeys": ["a", "b", "c"]}


def test_percent_encoded_unreserved_characters_read_the_same() -> None:
    signed = botocore_sign("GET", "/environments", "MaxResults=7&NextToken=abc").request
    respelt = with_query(signed, "N%65xtToken=%61bc&MaxResults=%37")
    check(respelt)
    assert parse(respelt) == {"MaxResults": 7, "NextToken": "abc"}


def test_a_value_that_is_not_utf8_is_refused() -> None:
    signed = botocore_sign("GET", "/environments", "NextToken=%FF").request
    with pytest.raises(ValidationException) as refused:
        parse(signed)
    assert refused.value.message == (
        "Query parameter 'NextToken' is not valid UTF-8 once percent-decoded")


def test_a_bare_plus_outside_the_operations_parameters_is_left_alone() -> None:
    """Only what the operation reads can change meaning; other keys are signed and unused."""
    signed = botocore_sign("GET", "/environments", "MaxResults=2&note=a%2Bb").request
    altered = with_query(signed, "MaxResults=2&note=a+b")
    check(altered)
    assert parse(altered) == {"MaxResults": 2}


# --- every respelling the signature cannot see: same input, or refused ---------------------

TAG_KEY = st.text(alphabet="ab +=:/@-_.é", min_size=1, max_size=6)


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    if draw(st.booleans()):
        return "UntagResource", {"ResourceArn": ARN,
                                 "tagKeys": draw(st.lists(TAG_KEY, min_size=1, max_size=4))}
    params: dict[str, Any] = {"MaxResults": draw(st.integers(1, 25))}
    if draw(st.booleans()):
        params["NextToken"] = draw(st.text(alphabet="ab +/=%&é", min_size=1, max_size=8))
    return "ListEnvironments", params


_TOKEN = re.compile(r"%[0-9A-Fa-f]{2}|.", re.DOTALL)
_UNRESERVED = string.ascii_letters + string.digits + "-._~"


@st.composite
def respellings(draw: st.DrawFn, raw_query: str) -> str:
    """`raw_query` changed only in ways its canonical form does not show: pairs reordered,
    unreserved characters percent-encoded, hex digits in either case, '%2B' sent as '+'."""
    pieces = draw(st.permutations(raw_query.split("&")))
    return "&".join("".join(draw(respelt(token)) for token in _TOKEN.findall(piece))
                    for piece in pieces)


def respelt(token: str) -> st.SearchStrategy[str]:
    if token.upper() == "%2B":
        return st.sampled_from(["%2B", "%2b", "+"])
    if token.startswith("%"):
        return st.sampled_from([token.upper(), token.lower()])
    if token in _UNRESERVED:
        return st.sampled_from([token, f"%{ord(token):02X}", f"%{ord(token):02x}"])
    return st.just(token)


def unordered_lists(params: dict[str, Any]) -> dict[str, Any]:
    return {name: sorted(value) if isinstance(value, list) else value
            for name, value in params.items()}


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(call=calls(), data=st.data())
def test_respelt_queries_read_as_signed_or_are_refused(call: tuple[str, dict[str, Any]],
                                                       data: st.DataObject) -> None:
    name, params = call
    operation = MODEL.operation_model(name)
    wire = create_serializer("rest-json").serialize_to_request(params, operation)
    signed = botocore_sign(operation.http["method"], wire["url_path"],
                           percent_encode_sequence(wire["query_string"])).request
    respelt = with_query(signed, data.draw(respellings(signed.raw_query)))
    check(respelt)  # the signature cannot tell the two apart
    if "+" in respelt.raw_query:
        with pytest.raises(ValidationException, match="contains a bare '\\+'"):
            parse(respelt)
    else:
        assert unordered_lists(parse(respelt)) == unordered_lists(params)
        assert parse(respelt) == parse(signed)
