"""Hostile input to STS and IAM (hypothesis): signed form bodies naming every served
operation with members of the wrong type, length, nesting or encoding, repeated or unknown
keys, raw bytes; unsigned ones too. Every answer is a success or a modeled error in XML,
never a 5xx or a traceback (an unsigned request that doesn't look like STS or IAM is
answered as the default service, MWAA, answers it)."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus

import botocore.auth
import botocore.credentials
import httpx
import pytest
from botocore.awsrequest import AWSRequest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airgate.services import service_model
from airgate.services.iam import RESOURCES
from tests.support import RunningAirgate, running_airgate

pytestmark = pytest.mark.e2e

SERVICES = {"sts": ("2011-06-15", ["AssumeRole", "GetCallerIdentity", "GetSessionToken"]),
            "iam": ("2010-05-08", sorted(RESOURCES))}


def _members(service: str, operations: list[str]) -> list[str]:
    model = service_model(service)
    names: set[str] = set()
    for name in operations:
        shape = model.operation_model(name).input_shape
        if shape is not None:
            for member, member_shape in shape.members.items():
                names.add(member)
                if member_shape.type_name == "list":
                    names.update({f"{member}.member.1", f"{member}.member.2",
                                  f"{member}.member.1.Key", f"{member}.member.1.arn"})
    return sorted(names)


VALUES = st.one_of(
    st.text(max_size=40), st.sampled_from(["", "0", "-1", "900", "43201", "true", "null",
                                           "arn:aws:iam::000000000000:role/x", "/", "//",
                                           "{}", '{"Statement": []}', "%ff", "\x00"]),
    st.integers(-(2**70), 2**70).map(str), st.text(min_size=100, max_size=3000))


@st.composite
def bodies(draw: st.DrawFn, service: str) -> bytes:
    version, operations = SERVICES[service]
    pairs: list[tuple[str, str]] = []
    if draw(st.integers(0, 9)):
        pairs.append(("Action", draw(st.sampled_from([*operations, "ListGroups", "", "x"]))))
    if draw(st.integers(0, 9)):
        pairs.append(("Version", draw(st.sampled_from([version, "2020-01-01", ""]))))
    keys = st.one_of(st.sampled_from(_members(service, operations)), st.text(max_size=20))
    pairs += draw(st.lists(st.tuples(keys, VALUES), max_size=6))
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    return "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAirgate]:
    home: Path = tmp_path_factory.mktemp("query-hostile") / "home"
    with running_airgate(home) as running:
        yield running


def _send(server: RunningAirgate, service: str, body: bytes, sign: bool) -> httpx.Response:
    request = AWSRequest(method="POST", url=server.endpoint_url + "/", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    if sign:
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(
            server.admin["AccessKeyId"], server.admin["SecretAccessKey"]), service,
            "us-east-1").add_auth(request)
    prepared = request.prepare()
    return httpx.post(prepared.url, headers=dict(prepared.headers), content=prepared.body,
                      timeout=30)


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    assert response.headers["content-type"] == "text/xml", response.text
    root = ElementTree.fromstring(response.content)
    if response.status_code >= 400:
        assert root.tag.endswith("ErrorResponse")
        code = root.find("{*}Error/{*}Code")
        assert code is not None and code.text
    else:
        assert root.tag.endswith("Response")


@pytest.mark.parametrize("service", ["sts", "iam"])
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_signed_hostile_bodies(server: RunningAirgate, service: str,
                               data: st.DataObject) -> None:
    _check(_send(server, service, data.draw(bodies(service)), sign=True))


@pytest.mark.parametrize("service", ["sts", "iam"])
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_unsigned_hostile_bodies(server: RunningAirgate, service: str,
                                 data: st.DataObject) -> None:
    response = _send(server, service, data.draw(bodies(service)), sign=False)
    assert response.status_code == 403
    if response.headers["content-type"] == "application/json":  # not recognisably STS/IAM:
        assert response.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    else:  # answered in the words of the service it looks like
        _check(response)
