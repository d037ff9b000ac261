"""InvokeRestApi: one SigV4-signed call becomes one call to the environment's Airflow REST
API, made as the caller (a JWT airgate mints with the caller's identity and Airflow role).

Path is the REST API path without its version prefix; it is checked so that nothing can
reach outside /api/v2 of that environment. Airflow's answer comes back as MWAA returns it:
2xx as RestApiStatusCode/RestApiResponse, 4xx as RestApiClientException, 5xx (and airgate's
own 502/504 when Airflow can't be reached in time) as RestApiServerException.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote

import httpx

from airgate.airflow.tokens import SigningKey
from airgate.errors import (
    RestApiClientException,
    RestApiServerException,
    ValidationException,
)

API_PREFIX = "/api/v2"
MAX_RESPONSE_BYTES = 6 * 1024 * 1024  # MWAA's limit on RestApiResponse
TOKEN_TTL = 300.0
TOKEN_REFRESH_MARGIN = 60.0  # a cached token is replaced this long before it expires
# Airflow role names as SimpleAuthManager reads them from the token's `role` claim. Public
# has no Airflow role: such calls go without a token, as an anonymous user's would.
TOKEN_ROLES = {"Admin": "ADMIN", "Op": "OP", "User": "USER", "Viewer": "VIEWER"}
_SAFE_PATH = re.compile(r"/[A-Za-z0-9._~\-/:@!$&'()*+,;=%]*")
_ENCODED_SEPARATORS = re.compile(r"%(2e|2f|5c|00)", re.IGNORECASE)


class Endpoints(Protocol):
    """What the proxy needs of the runtime: where an environment's API is, and the key its
    Airflow trusts for airgate's tokens."""

    def api_url(self, name: str) -> str | None: ...

    def signing_key(self, name: str) -> SigningKey: ...


def check_path(path: str) -> str:
    """The path, if it can only name something under the REST API prefix."""
    problems = []
    if not path.startswith("/") or path.startswith("//"):
        problems.append("must start with a single '/'")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in path):
        problems.append("must not contain spaces or control characters")
    if "\\" in path:
        problems.append("must not contain backslashes")
    if "?" in path or "#" in path:
        problems.append("must not contain '?' or '#' (use QueryParameters)")
    if "://" in path:
        problems.append("must not name a scheme or host")
    segments = unquote(path).split("/")
    if ".." in segments or "." in segments or _ENCODED_SEPARATORS.search(path):
        problems.append("must not contain '.' or '..' segments or encoded '.', '/' or '\\'")
    if not problems and not _SAFE_PATH.fullmatch(path):
        problems.append("contains characters that are not allowed in a URL path")
    if problems:
        raise ValidationException("Invalid Path: it " + "; ".join(problems))
    return path


def query_pairs(parameters: Any) -> list[tuple[str, str]]:
    """QueryParameters as Airflow expects them: lists as repeated keys, booleans as
    true/false, numbers as written."""
    if parameters is None:
        return []
    if not isinstance(parameters, Mapping):
        raise ValidationException("QueryParameters must be a JSON object")
    pairs: list[tuple[str, str]] = []
    for key, value in parameters.items():
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            if isinstance(item, (dict, list)):
                raise ValidationException(f"QueryParameters.{key} must be a string, number, "
                                          "boolean or a list of those")
            pairs.append((str(key), _query_text(item)))
    return pairs


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class TokenCache:
    """Minted tokens, reused per (environment, identity, role) until shortly before expiry."""

    def __init__(self, endpoints: Endpoints) -> None:
        self._endpoints = endpoints
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}

    def token(self, environment: str, identity: str, role: str) -> str:
        key = (environment, identity, role)
        cached = self._tokens.get(key)
        now = time.monotonic()
        if cached is not None and cached[1] - now > TOKEN_REFRESH_MARGIN:
            return cached[0]
        token = self._endpoints.signing_key(environment).mint(
            subject=identity, role=role, environment=environment, ttl=TOKEN_TTL)
        self._tokens[key] = (token, now + TOKEN_TTL)
        return token

    def forget(self, environment: str) -> None:
        """Drop an environment's tokens (its keys are gone with it)."""
        for key in [k for k in self._tokens if k[0] == environment]:
            del self._tokens[key]


@dataclass(frozen=True, slots=True)
class Invocation:
    environment: str
    method: str
    path: str
    query: list[tuple[str, str]]
    body: Any
    identity: str
    airflow_role: str


class RestApiProxy:
    """Sends invocations to Airflow over pooled connections, bounded in time and size."""

    def __init__(self, endpoints: Endpoints, timeout: float = 10.0) -> None:
        self._endpoints = endpoints
        self._tokens = TokenCache(endpoints)
        self._timeout = timeout
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout), follow_redirects=False,
                                         limits=httpx.Limits(max_connections=200,
                                                             max_keepalive_connections=50))

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, call: Invocation) -> dict[str, Any]:
        base = self._endpoints.api_url(call.environment)
        if base is None:
            raise _server_error(502, "The environment's Airflow API server is not running")
        headers = {"Accept": "application/json"}
        token_role = TOKEN_ROLES.get(call.airflow_role)
        if token_role is not None:
            token = self._tokens.token(call.environment, call.identity, token_role)
            headers["Authorization"] = f"Bearer {token}"
        content = None
        # Clients such as Airflow's MwaaHook send Body {} with every GET; Airflow wants none.
        if call.body is not None and not (call.body == {} and call.method in ("GET", "DELETE")):
            content = json.dumps(call.body).encode()
            headers["Content-Type"] = "application/json"
        request = self._client.build_request(call.method, f"{base}{API_PREFIX}{call.path}",
                                             params=tuple(call.query),
                                             headers=headers,
                                             content=content)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TimeoutException:
            raise _server_error(504, f"Airflow did not answer within {self._timeout:g} s") \
                from None
        except httpx.TransportError:
            raise _server_error(502, "The environment's Airflow API server can't be reached") \
                from None
        try:
            body = await _read_limited(response)
        except httpx.TimeoutException:
            raise _server_error(504, f"Airflow did not answer within {self._timeout:g} s") \
                from None
        finally:
            await response.aclose()
        return _result(response.status_code, body)


async def _read_limited(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():  # decoded: the limit is on the document
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise _server_error(
                502, f"Airflow's response is larger than the {MAX_RESPONSE_BYTES // 2**20} MB "
                "InvokeRestApi allows; narrow it with QueryParameters such as limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _result(status: int, body: bytes) -> dict[str, Any]:
    document = _document(body)
    if 200 <= status < 300:
        return {"RestApiStatusCode": status, "RestApiResponse": document}
    error = RestApiClientException if status < 500 else RestApiServerException
    raise error(f"Airflow answered {status}", RestApiStatusCode=status,
                RestApiResponse=document)


def _document(body: bytes) -> Any:
    """Airflow's JSON as it is; anything else as a JSON string."""
    if not body:
        return {}
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")


def _server_error(status: int, detail: str) -> RestApiServerException:
    return RestApiServerException(detail, RestApiStatusCode=status,
                                  RestApiResponse={"detail": detail})
