"""The ASGI application: reads each request off the wire as it was sent, hands it to the
gateway, answers, and then writes one access-log line.

Plain ASGI rather than a framework's request and response objects: routing is the service
model's job, and this is the hot path of every call.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from airgate.asgi import (
    MAX_BODY_BYTES,
    BodyTooLarge,
    headers_of,
    read_body,
    serve_lifespan,
    signed_request,
)
from airgate.auth.sigv4 import SignedRequest
from airgate.aws.wire import Response
from airgate.call import CallRecord
from airgate.environments.execution_role import ROUTE as EXECUTION_ROLE_ROUTE
from airgate.environments.execution_role import ExecutionRoles, Refusal
from airgate.errors import (
    InternalServerException,
    RequestEntityTooLargeException,
    ServiceError,
)
from airgate.gateway import Gateway
from airgate.logs import ACCESS_LOGGER, log_fields
from airgate.metrics.calls import CallMetrics
from airgate.metrics.endpoint import PATH as METRICS_PATH
from airgate.metrics.endpoint import MetricsEndpoint
from airgate.store.failures import storage_failure
from airgate.web.console import PREFIX as CONSOLE_PREFIX
from airgate.web.console import Console

_access_log = logging.getLogger(ACCESS_LOGGER)


def create_app(gateway: Gateway,
               on_shutdown: Callable[[], Awaitable[None]] | None = None,
               execution_roles: ExecutionRoles | None = None,
               metrics: MetricsEndpoint | None = None,
               calls: CallMetrics | None = None,
               console: Console | None = None) -> ASGIApp:
    """An ASGI app that sends every HTTP request, whatever its method and path, to
    `gateway`, but environments' fetches of their execution role's credentials (under
    EXECUTION_ROLE_ROUTE, when `execution_roles` is given), scrapes of `metrics` (at its
    PATH) and the `console`'s pages (under its PREFIX). Each answered call is counted in
    `calls`. `on_shutdown` runs on the serving event loop as the server stops (to close
    what lives on that loop)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send, on_shutdown)
        elif scope["type"] == "http":
            await http(scope, receive, send)

    async def http(scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        record = CallRecord(request_id=str(uuid.uuid4()))
        client = scope.get("client")
        source_ip = client[0] if client else "127.0.0.1"
        scraped = metrics is not None and scope["path"] == METRICS_PATH
        if execution_roles is not None and scope["path"].startswith(EXECUTION_ROLE_ROUTE):
            response = await _execution_role_credentials(execution_roles, scope, record)
        elif scraped:
            assert metrics is not None
            record.operation = "Metrics"
            response = await metrics.respond(scope["method"], headers_of(scope))
        elif console is not None and _under(scope["path"], CONSOLE_PREFIX):
            response = await _console_page(console, scope, receive, source_ip, record)
        else:
            response = await respond(scope, receive, source_ip, record)
        headers = [(b"x-amzn-requestid", record.request_id.encode())]
        headers += [(k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in response.headers.items()]
        headers.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status,
                    "headers": headers})
        await send({"type": "http.response.body", "body": response.body})
        latency = time.perf_counter() - started
        if calls is not None and not scraped:
            calls.request(record.service, record.operation, response.status, latency)
        # Logged after answering: the caller does not wait for the log line.
        log_fields(
            _access_log, "request",
            request_id=record.request_id, principal=record.principal,
            operation=record.operation, resource=record.resource,
            airflow_role=record.airflow_role, status=response.status,
            error=record.error_code, source_ip=source_ip,
            latency_ms=round(latency * 1000, 3),
            **record.extra,
        )

    async def respond(scope: Scope, receive: Receive, source_ip: str,
                      record: CallRecord) -> Response:
        signed: SignedRequest | None = None
        try:
            body = await read_body(scope, receive)
            signed = signed_request(scope, body)
            secure = scope.get("scheme") == "https"
            return await gateway.handle(signed, source_ip, secure, record)
        except BodyTooLarge:
            error: ServiceError = RequestEntityTooLargeException(
                f"Request body is larger than {MAX_BODY_BYTES} bytes")
        except Exception as failure:
            logging.getLogger("airgate").exception(
                "internal error", extra={"fields": {"request_id": record.request_id}})
            reason = storage_failure(failure)
            error = InternalServerException(
                f"An internal error occurred (request id {record.request_id})." if reason is None
                else f"airgate could not save its state: {reason}. The change was not made; "
                     f"retry when storage is writable again (request id {record.request_id}).")
        # In the words of the service the request is for (its signature's scope says which).
        return gateway.error_response(signed or signed_request(scope, b""), error, record)

    return app


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


async def _console_page(console: Console, scope: Scope, receive: Receive, source_ip: str,
                        record: CallRecord) -> Response:
    try:
        body = await read_body(scope, receive)
    except BodyTooLarge:
        return Response(413, b"Request body too large\n", {"content-type": "text/plain"})
    return await console.respond(scope, body, source_ip, record)


async def _execution_role_credentials(roles: ExecutionRoles, scope: Scope,
                                      record: CallRecord) -> Response:
    """GET EXECUTION_ROLE_ROUTE<environment>, as AWS SDKs' container credentials provider
    asks it, with the environment's token as Authorization."""
    name = scope["path"][len(EXECUTION_ROLE_ROUTE):]
    record.service = "airgate"
    record.operation, record.resource = "ExecutionRoleCredentials", name
    authorization = [value.decode("latin-1") for key, value in scope["headers"]
                     if key.lower() == b"authorization"]
    try:
        if scope["method"] != "GET" or len(authorization) > 1:
            raise Refusal(400, "InvalidRequest", "GET with at most one Authorization header")
        answer = await run_in_threadpool(roles.credentials, name,
                                         authorization[0] if authorization else None)
    except Refusal as refusal:
        record.error_code = refusal.code
        return Response(refusal.status, json.dumps(
            {"code": refusal.code, "message": refusal.message}).encode(),
            {"content-type": "application/json"}, refusal.code)
    return Response(200, json.dumps(answer).encode(), {"content-type": "application/json"})
