"""SigV4 at the edge: every authentication error as AWS returns it, to real clients."""

from __future__ import annotations

import datetime
import json
from typing import Any
from unittest import mock

import botocore.auth
import botocore.credentials
import httpx
import pytest
from botocore.awsrequest import AWSRequest

from tests.support import RunningAirgate

pytestmark = pytest.mark.e2e


def sign(method: str, url: str, credentials: dict[str, str], *, region: str = "us-east-1",
         service: str = "airflow", body: bytes = b"", headers: dict[str, str] | None = None,
         at: datetime.datetime | None = None, presign: bool = False) -> AWSRequest:
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    creds = botocore.credentials.Credentials(credentials["AccessKeyId"],
                                             credentials["SecretAccessKey"],
                                             credentials.get("SessionToken"))
    signer = (botocore.auth.SigV4QueryAuth(creds, service, region, expires=60) if presign
              else botocore.auth.SigV4Auth(creds, service, region))
    if at is None:
        signer.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=at):
            signer.add_auth(request)
    return request


def send(server: RunningAirgate, request: AWSRequest) -> httpx.Response:
    """Send a prepared request to the server, keeping its Host header as signed."""
    prepared = request.prepare()
    url = httpx.URL(prepared.url)
    target = url.copy_with(host="127.0.0.1", port=httpx.URL(server.endpoint_url).port)
    headers = {"Host": url.netloc.decode(), **dict(prepared.headers)}
    return httpx.request(prepared.method, target, headers=headers, content=prepared.body or b"")


def error(response: httpx.Response) -> tuple[int, str, str]:
    body: dict[str, Any] = response.json()
    return response.status_code, response.headers["x-amzn-errortype"], body["message"]


def test_signed_request_accepted(airgate_server: RunningAirgate) -> None:
    response = send(airgate_server, sign("GET", f"{airgate_server.endpoint_url}/environments",
                                         airgate_server.admin))
    assert response.status_code == 200
    assert response.json() == {"Environments": []}


@pytest.mark.parametrize("prefix", ["api.", "env."])
def test_host_prefix_accepted(airgate_server: RunningAirgate, prefix: str) -> None:
    """Clients that keep botocore's host prefix sign `api.HOST`; that must verify too."""
    port = httpx.URL(airgate_server.endpoint_url).port
    request = sign("GET", f"http://{prefix}localhost:{port}/environments", airgate_server.admin)
    assert send(airgate_server, request).status_code == 200


def test_presigned_request_accepted(airgate_server: RunningAirgate) -> None:
    request = sign("GET", f"{airgate_server.endpoint_url}/environments", airgate_server.admin,
                   presign=True)
    assert "Authorization" not in request.headers
    assert send(airgate_server, request).status_code == 200


def test_missing_authentication(airgate_server: RunningAirgate) -> None:
    response = httpx.get(f"{airgate_server.endpoint_url}/environments")
    assert error(response) == (403, "MissingAuthenticationTokenException",
                               "Missing Authentication Token")


def requires(*names: str) -> str:
    return " ".join(f"Authorization header requires '{name}' parameter." for name in names)


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        ("AWS4-HMAC-SHA256", requires("Credential", "Signature", "SignedHeaders")),
        ("AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20260101/us-east-1/airflow/aws4_request",
         requires("Signature", "SignedHeaders")),
        ("AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00", requires("Credential")),
        ("AWS4-HMAC-SHA256 Credential=broken, SignedHeaders=host;x-amz-date, Signature=00",
         "Credential must have exactly 5 slash-delimited elements, "
         "e.g. keyid/date/region/service/term, got 'broken'"),
        ("Bearer abc",
         "Unsupported AWS 'algorithm': only 'AWS4-HMAC-SHA256' is accepted."),
    ],
    ids=["bare", "no-signature", "no-credential", "bad-credential", "other-scheme"],
)
def test_malformed_authorization(airgate_server: RunningAirgate, authorization: str,
                                 message: str) -> None:
    response = httpx.get(f"{airgate_server.endpoint_url}/environments",
                         headers={"Authorization": authorization,
                                  "X-Amz-Date": "20260101T000000Z"})
    assert error(response) == (400, "IncompleteSignatureException", message)


def test_unknown_access_key(airgate_server: RunningAirgate) -> None:
    stranger = {"AccessKeyId": "AKIAAAAAAAAAAAAAAAAA", "SecretAccessKey": "x" * 40}
    response = send(airgate_server, sign("GET", f"{airgate_server.endpoint_url}/environments",
                                         stranger))
    assert error(response) == (403, "UnrecognizedClientException",
                               "The security token included in the request is invalid.")


def test_wrong_secret(airgate_server: RunningAirgate) -> None:
    forged = {**airgate_server.admin, "SecretAccessKey": "y" * 40}
    response = send(airgate_server, sign("GET", f"{airgate_server.endpoint_url}/environments",
                                         forged))
    status, code, message = error(response)
    assert (status, code) == (403, "InvalidSignatureException")
    assert message.startswith("The request signature we calculated does not match the "
                              "signature you provided.")


def test_tampered_body(airgate_server: RunningAirgate) -> None:
    body = json.dumps({"Tags": {"a": "b"}}).encode()
    url = (f"{airgate_server.endpoint_url}/tags/"
           "arn%3Aaws%3Aairflow%3Aus-east-1%3A000000000000%3Aenvironment%2Fx")
    request = sign("POST", url, airgate_server.admin, body=body,
                   headers={"Content-Type": "application/json"})
    request.data = json.dumps({"Tags": {"a": "c"}}).encode()
    status, code, _ = error(send(airgate_server, request))
    assert (status, code) == (403, "InvalidSignatureException")


@pytest.mark.parametrize(("minutes", "words"), [(-6, "Signature expired"),
                                                (6, "Signature not yet current")])
def test_clock_skew(airgate_server: RunningAirgate, minutes: int, words: str) -> None:
    at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=minutes)
    request = sign("GET", f"{airgate_server.endpoint_url}/environments", airgate_server.admin,
                   at=at)
    status, code, message = error(send(airgate_server, request))
    assert (status, code) == (403, "InvalidSignatureException")
    assert message.startswith(words)


def test_small_skew_accepted(airgate_server: RunningAirgate) -> None:
    at = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=4)
    request = sign("GET", f"{airgate_server.endpoint_url}/environments", airgate_server.admin,
                   at=at)
    assert send(airgate_server, request).status_code == 200


@pytest.mark.parametrize(("region", "service"), [("eu-west-1", "airflow"),
                                                 ("us-east-1", "s3")])
def test_wrong_scope(airgate_server: RunningAirgate, region: str, service: str) -> None:
    request = sign("GET", f"{airgate_server.endpoint_url}/environments", airgate_server.admin,
                   region=region, service=service)
    status, code, _ = error(send(airgate_server, request))
    assert status == 403 or code == "IncompleteSignatureException"
    assert code in ("InvalidSignatureException", "IncompleteSignatureException")


def test_unknown_operation_after_authentication(airgate_server: RunningAirgate) -> None:
    response = send(airgate_server, sign("GET", f"{airgate_server.endpoint_url}/nothing-here",
                                         airgate_server.admin))
    assert error(response)[:2] == (404, "UnknownOperationException")
    anonymous = httpx.get(f"{airgate_server.endpoint_url}/nothing-here")
    assert error(anonymous)[1] == "MissingAuthenticationTokenException"


# --- keys and sessions ---------------------------------------------------------------------


def test_deleted_and_inactive_keys(airgate_server: RunningAirgate) -> None:
    identities = airgate_server.airgate.identities
    identities.create_user("carol")
    identities.put_inline_policy("user", "carol", "all", json.dumps(
        {"Version": "2012-10-17",
         "Statement": [{"Effect": "Allow", "Action": "airflow:*", "Resource": "*"}]}))
    key = identities.create_access_key("carol")
    mwaa = airgate_server.client(key)
    assert mwaa.list_environments()["Environments"] == []

    identities.update_access_key("carol", key["AccessKeyId"], "Inactive")
    with pytest.raises(mwaa.exceptions.ClientError) as excinfo:
        mwaa.list_environments()
    assert excinfo.value.response["Error"]["Code"] == "UnrecognizedClientException"

    identities.update_access_key("carol", key["AccessKeyId"], "Active")
    assert mwaa.list_environments()["Environments"] == []
    identities.delete_access_key("carol", key["AccessKeyId"])
    with pytest.raises(mwaa.exceptions.ClientError) as excinfo:
        mwaa.list_environments()
    assert excinfo.value.response["Error"]["Code"] == "UnrecognizedClientException"


def _session(airgate_server: RunningAirgate, duration: int = 900) -> dict[str, str]:
    identities = airgate_server.airgate.identities
    identities.create_role("reporting")
    identities.put_inline_policy("role", "reporting", "read", json.dumps(
        {"Version": "2012-10-17",
         "Statement": [{"Effect": "Allow", "Action": "airflow:List*", "Resource": "*"}]}))
    credentials: dict[str, str] = identities.assume_role("reporting", "session-1",
                                                         duration)["Credentials"]
    return credentials


def test_temporary_credentials(airgate_server: RunningAirgate) -> None:
    credentials = _session(airgate_server)
    assert credentials["AccessKeyId"].startswith("ASIA")
    mwaa = airgate_server.client(credentials)
    assert mwaa.list_environments()["Environments"] == []
    with pytest.raises(mwaa.exceptions.AccessDeniedException) as excinfo:
        mwaa.get_environment(Name="x")
    assert ("arn:aws:sts::000000000000:assumed-role/reporting/session-1"
            in excinfo.value.response["Error"]["Message"])


@pytest.mark.parametrize("token", [None, "forged-token"], ids=["no-token", "wrong-token"])
def test_temporary_credentials_need_their_token(airgate_server: RunningAirgate,
                                                token: str | None) -> None:
    credentials = dict(_session(airgate_server))
    credentials.pop("SessionToken")
    if token is not None:
        credentials["SessionToken"] = token
    mwaa = airgate_server.client(credentials)
    with pytest.raises(mwaa.exceptions.ClientError) as excinfo:
        mwaa.list_environments()
    assert excinfo.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_long_term_key_with_a_token_is_refused(airgate_server: RunningAirgate) -> None:
    mwaa = airgate_server.client({**airgate_server.admin, "SessionToken": "anything"})
    with pytest.raises(mwaa.exceptions.ClientError) as excinfo:
        mwaa.list_environments()
    assert excinfo.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_expired_temporary_credentials(airgate_server: RunningAirgate) -> None:
    credentials = _session(airgate_server, duration=900)
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=901)
    # The request is signed "now" as the client sees it, 901 s on; the server's clock
    # moves with it, so only the credentials' expiry can refuse it.
    with mock.patch("airgate.gateway.datetime") as clock:
        clock.datetime.now.return_value = later
        clock.UTC = datetime.UTC
        request = sign("GET", f"{airgate_server.endpoint_url}/environments", credentials,
                       at=later)
        status, code, message = error(send(airgate_server, request))
    assert (status, code) == (403, "ExpiredTokenException")
    assert "expired" in message
