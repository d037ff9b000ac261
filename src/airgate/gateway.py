"""One request path, one direction: authenticate -> route -> parse -> authorize -> dispatch
-> serialize, for whichever service the request is for. Each step is its own module and
each service says what it is (`airgate.services`); this file only chains them and records
what the access log needs.
"""

from __future__ import annotations

import datetime
import inspect
from dataclasses import dataclass
from typing import Any

from botocore.model import OperationModel
from starlette.concurrency import run_in_threadpool

from airgate.auth import sigv4
from airgate.auth.authorize import RequestFacts
from airgate.auth.identities import Credential, Identities
from airgate.aws.wire import Response
from airgate.call import Call, CallRecord
from airgate.errors import ServiceError, UnknownOperationException
from airgate.services import Handler, Service, Services
from airgate.store.generations import NotCached


@dataclass(frozen=True, slots=True)
class _Prepared:
    operation: OperationModel
    handler: Handler
    params: dict[str, Any]
    call: Call


class Gateway:
    def __init__(self, identities: Identities, services: Services) -> None:
        self._identities = identities
        self._services = services

    async def handle(self, request: sigv4.SignedRequest, source_ip: str, secure: bool,
                     record: CallRecord, now: datetime.datetime | None = None) -> Response:
        """The response to one request.

        Everything up to the operation is prepared on the event loop when the caller's
        credential (and whatever the service authorises from) is in memory (nearly always
        for MWAA), and in a worker thread when the synchronous store must be read; an async
        operation then runs on the event loop, a synchronous one in a worker thread.
        """
        now = now or datetime.datetime.now(datetime.UTC)
        try:
            claims: sigv4.Claims | ServiceError = sigv4.read_claims(request)
        except ServiceError as error:
            claims = error
        signed_for = claims.service if isinstance(claims, sigv4.Claims) else None
        service = self._services.for_request(request, signed_for)
        record.service = service.model.service_name
        try:
            if isinstance(claims, ServiceError):
                raise claims
            try:
                prepared = self._prepare(service, request, claims, source_ip, secure, record,
                                         now, memory_only=True)
            except NotCached:
                prepared = await run_in_threadpool(self._prepare, service, request, claims,
                                                   source_ip, secure, record, now)
            if inspect.iscoroutinefunction(prepared.handler):
                result = await prepared.handler(prepared.params, prepared.call)
            else:
                result = await run_in_threadpool(prepared.handler, prepared.params,
                                                 prepared.call)
            return service.wire.write(prepared.operation, result, record.request_id)
        except ServiceError as error:
            return self.error_response(service, error, record)

    def error_response(self, service: Service | sigv4.SignedRequest, error: ServiceError,
                       record: CallRecord) -> Response:
        """`error` in the words of `service` (or of the service `request` is for)."""
        if isinstance(service, sigv4.SignedRequest):
            service = self._service_of(service)
        record.service = record.service or service.model.service_name
        response = service.wire.write_error(error, record.request_id)
        record.error_code = response.error_code
        return response

    def _service_of(self, request: sigv4.SignedRequest) -> Service:
        try:
            signed_for: str | None = sigv4.read_claims(request).service
        except ServiceError:
            signed_for = None
        return self._services.for_request(request, signed_for)

    def _prepare(self, service: Service, request: sigv4.SignedRequest, claims: sigv4.Claims,
                 source_ip: str, secure: bool, record: CallRecord, now: datetime.datetime,
                 memory_only: bool = False) -> _Prepared:
        """authenticate -> route -> parse -> authorize; NotCached if `memory_only` and the
        store would have to be read."""
        credential = self._authenticate(service, request, claims, now, memory_only)
        principal = credential.principal
        record.principal = principal.arn

        operation, params = service.wire.read(request, claims.query)
        record.operation = operation.name
        handler = service.handler(operation.name)
        if handler is None:
            raise UnknownOperationException(f"airgate does not serve {operation.name} yet")

        authorized = service.authorize(operation.name, params, principal,
                                       RequestFacts(source_ip, secure, now), memory_only)
        authorization = authorized.authorization
        record.resource = authorization.resource
        record.airflow_role = authorization.airflow_role
        call = Call(record.request_id, now, principal, authorization, record,
                    authorized.environment)
        return _Prepared(operation, handler, params, call)

    def _authenticate(self, service: Service, request: sigv4.SignedRequest,
                      claims: sigv4.Claims, now: datetime.datetime,
                      memory_only: bool) -> Credential:
        return authenticate(self._identities, request, claims, service.signing_regions,
                            service.signing_name, now, memory_only)


def authenticate(identities: Identities, request: sigv4.SignedRequest, claims: sigv4.Claims,
                 regions: frozenset[str], signing_name: str, now: datetime.datetime,
                 memory_only: bool = False) -> Credential:
    """Verify the signature, then the session; the credential is looked up once."""
    found: list[Credential] = []

    def secret_for(access_key_id: str) -> str | None:
        credential = identities.credential(access_key_id, memory_only)
        if credential is None:
            return None
        found.append(credential)
        return credential.secret_access_key

    verified = sigv4.verify(request, region=regions, service=signing_name,
                            secret_for=secret_for, now=now, claims=claims)
    credential = found[0]
    credential.check_session(verified.session_token, now)
    return credential
