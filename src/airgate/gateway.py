"""One request path, one direction: authenticate -> route -> parse -> authorize -> dispatch
-> serialize. Each step is its own module; this file only chains them and records what the
access log needs.
"""

from __future__ import annotations

import datetime
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore import xform_name
from botocore.model import OperationModel
from starlette.concurrency import run_in_threadpool

from airgate.auth import sigv4
from airgate.auth.authorize import Authorizer, RequestFacts
from airgate.auth.identities import Credential, Identities
from airgate.aws.protocol import Response, parse_input, serialize_error, serialize_output
from airgate.aws.spec import router
from airgate.call import Call, CallRecord
from airgate.environments.store import EnvironmentStore
from airgate.errors import ServiceError, UnknownOperationException
from airgate.store.generations import NotCached

SIGNING_NAME = "airflow"


Handler = Callable[[dict[str, Any], Call], Any]


@dataclass(frozen=True, slots=True)
class _Prepared:
    operation: OperationModel
    handler: Handler
    params: dict[str, Any]
    call: Call


class Gateway:
    def __init__(self, region: str, identities: Identities, authorizer: Authorizer,
                 environments: EnvironmentStore, provider: object) -> None:
        self._region = region
        self._identities = identities
        self._authorizer = authorizer
        self._environments = environments
        self._provider = provider

    async def handle(self, request: sigv4.SignedRequest, source_ip: str, secure: bool,
                     record: CallRecord, now: datetime.datetime | None = None) -> Response:
        """The response to one request.

        Everything up to the operation is prepared on the event loop when the caller's
        credential and the environment are in memory (nearly always), and in a worker
        thread when the synchronous store must be read; an async operation then runs on the
        event loop, a synchronous one in a worker thread.
        """
        now = now or datetime.datetime.now(datetime.UTC)
        try:
            try:
                prepared = self._prepare(request, source_ip, secure, record, now,
                                         memory_only=True)
            except NotCached:
                prepared = await run_in_threadpool(self._prepare, request, source_ip, secure,
                                                   record, now)
            if inspect.iscoroutinefunction(prepared.handler):
                result = await prepared.handler(prepared.params, prepared.call)
            else:
                result = await run_in_threadpool(prepared.handler, prepared.params,
                                                 prepared.call)
            return serialize_output(prepared.operation, result)
        except ServiceError as error:
            record.error_code = error.code
            return serialize_error(error)

    def _prepare(self, request: sigv4.SignedRequest, source_ip: str, secure: bool,
                 record: CallRecord, now: datetime.datetime,
                 memory_only: bool = False) -> _Prepared:
        """authenticate -> route -> parse -> authorize; NotCached if `memory_only` and the
        store would have to be read."""
        credential = self._authenticate(request, now, memory_only)
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
        query = sigv4.query_parameters(request.raw_query)  # as the signature read it
        params = parse_input(operation, match.uri_params, query, headers, request.body)

        # The environment is read once per call: for its tags here, and for the operation.
        name = self._authorizer.environment_of(params)
        environment = self._environments.cached(name, memory_only) if name else None
        authorization = self._authorizer.authorize(
            operation.name, params, principal, RequestFacts(source_ip, secure, now),
            environment.tags if environment else None)
        record.resource = authorization.resource
        record.airflow_role = authorization.airflow_role
        call = Call(record.request_id, now, principal, authorization, record, environment)
        return _Prepared(operation, handler, params, call)

    def _authenticate(self, request: sigv4.SignedRequest, now: datetime.datetime,
                      memory_only: bool) -> Credential:
        """Verify the signature, then the session; the credential is looked up once."""
        found: list[Credential] = []

        def secret_for(access_key_id: str) -> str | None:
            credential = self._identities.credential(access_key_id, memory_only)
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

