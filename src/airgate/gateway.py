"""One request path, one direction: authenticate -> route -> parse -> authorize -> dispatch
-> serialize. Each step is its own module; this file only chains them and records what the
access log needs.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from botocore import xform_name

from airgate.auth import sigv4
from airgate.auth.authorize import Authorization, Authorizer, RequestFacts
from airgate.auth.identities import Credential, Identities
from airgate.aws.protocol import Response, parse_input, serialize_error, serialize_output
from airgate.aws.spec import router
from airgate.errors import ServiceError, UnknownOperationException

SIGNING_NAME = "airflow"


@dataclass(slots=True)
class CallRecord:
    """What one call did, for the access log: never a body, a secret or a token."""

    request_id: str
    operation: str | None = None
    principal: str | None = None
    resource: str | None = None
    airflow_role: str | None = None
    error_code: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[dict[str, Any], datetime.datetime], dict[str, Any]]


class Gateway:
    def __init__(self, region: str, identities: Identities, authorizer: Authorizer,
                 provider: object) -> None:
        self._region = region
        self._identities = identities
        self._authorizer = authorizer
        self._provider = provider

    def handle(self, request: sigv4.SignedRequest, source_ip: str, secure: bool,
               record: CallRecord, now: datetime.datetime | None = None) -> Response:
        now = now or datetime.datetime.now(datetime.UTC)
        try:
            return self._handle(request, source_ip, secure, record, now)
        except ServiceError as error:
            record.error_code = error.code
            return serialize_error(error)

    def _handle(self, request: sigv4.SignedRequest, source_ip: str, secure: bool,
                record: CallRecord, now: datetime.datetime) -> Response:
        credential = self._authenticate(request, now)
        principal = credential.principal
        record.principal = principal.arn

        match = router().match(request.method, request.raw_path)
        if match is None:
            raise UnknownOperationException(
                f"No MWAA operation is served at {request.method} {request.raw_path[:200]}")
        operation = match.operation
        record.operation = operation.name
        handler = self._handler(operation.name)

        headers = {name.lower(): value for name, value in request.headers}
        query = parse_qsl(request.raw_query, keep_blank_values=True)
        params = parse_input(operation, match.uri_params, query, headers, request.body)

        authorization: Authorization = self._authorizer.authorize(
            operation.name, params, principal, RequestFacts(source_ip, secure, now))
        record.resource = authorization.resource
        record.airflow_role = authorization.airflow_role

        return serialize_output(operation, handler(params, now))

    def _authenticate(self, request: sigv4.SignedRequest,
                      now: datetime.datetime) -> Credential:
        """Verify the signature, then the session; the credential is looked up once."""
        found: list[Credential] = []

        def secret_for(access_key_id: str) -> str | None:
            credential = self._identities.credential(access_key_id)
            if credential is None:
                return None
            found.append(credential)
            return credential.secret_access_key

        verified = sigv4.verify(request, region=self._region, service=SIGNING_NAME,
                                secret_for=secret_for, now=now)
        credential = found[0]
        credential.check_session(verified.session_token, now)
        return credential

    def _handler(self, operation: str) -> Handler:
        method = getattr(self._provider, xform_name(operation), None)
        if method is None:
            raise UnknownOperationException(f"airgate does not serve {operation} yet")
        return method  # type: ignore[no-any-return]

