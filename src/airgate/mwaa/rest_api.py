"""InvokeRestApi: one SigV4-signed call becomes one call to the environment's Airflow REST
API, made as the caller (a JWT airgate mints with the caller's identity and Airflow role).

Path is the REST API path without its version prefix; it is checked so that nothing can
reach outside the REST API of that environment (/api/v2 on Airflow 3, /api/v1 on Airflow 2,
as MWAA routes it). It may carry a query string after `?`, as clients
of real MWAA send it (`/dags/x/dagRuns?order_by=-start_date&limit=10`): that is parsed and
sent along with QueryParameters. Airflow's answer comes back as MWAA returns it: 2xx as
RestApiStatusCode/RestApiResponse, 4xx as RestApiClientException, 5xx (and airgate's own
502/504 when Airflow can't be reached in time, or when its answer can't be returned) as
RestApiServerException.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, unquote, urlencode

import aiohttp
from yarl import URL

from airgate.airflow.major import major_of
from airgate.airflow.tokens import SigningKey
from airgate.aws.protocol import nested_deeper_than
from airgate.environments.store import EnvironmentRecord
from airgate.errors import (
    RestApiClientException,
    RestApiServerException,
    ValidationException,
)

MAX_RESPONSE_BYTES = 6 * 1024 * 1024  # MWAA's limit on RestApiResponse
# Airflow's answers nest a few levels; a tenant's XCom or plugin output could nest up to
# about 1,000 (Python's own limit, on Airflow's side). Deeper than this is refused, far below
# the depth at which decoding or re-serialising RestApiResponse would exhaust the stack.
MAX_RESPONSE_DEPTH = 500
TOKEN_TTL = 300.0
TOKEN_REFRESH_MARGIN = 60.0  # a cached token is replaced this long before it expires
KEY_RECHECK = 1.0  # seconds an environment's signing key is used before it is read again
# Airflow role names as SimpleAuthManager reads them from the token's `role` claim. Public
# has no Airflow role: such calls go without a token, as an anonymous user's would.
TOKEN_ROLES = {"Admin": "ADMIN", "Op": "OP", "User": "USER", "Viewer": "VIEWER"}
_SAFE_PATH = re.compile(r"/[A-Za-z0-9._~\-/:@!$&'()*+,;=%]*")
_ENCODED_SEPARATORS = re.compile(r"%(2e|2f|5c|00)", re.IGNORECASE)
_BROKEN_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")  # '%' not followed by two hex digits


@runtime_checkable
class Endpoints(Protocol):
    """What InvokeRestApi needs of the runtime: where an environment's API is (from the
    record the call already holds: no store read), and the key its Airflow trusts for
    airgate's tokens."""

    def api_url(self, environment: EnvironmentRecord) -> str | None: ...

    def signing_key(self, name: str) -> SigningKey: ...


def request_target(path: str, parameters: Any) -> tuple[str, list[tuple[str, str]]]:
    """What InvokeRestApi's Path and QueryParameters ask for: the REST API path, checked, and
    the query to send.

    Path may end in a query string (`/dags/x/dagRuns?order_by=-start_date&limit=10`), as
    clients written for MWAA send it. Its parameters come first, then QueryParameters'. A
    parameter named in both places is refused rather than sent twice: for a single-valued
    Airflow parameter such as `limit`, Airflow would silently use one of the two, and the
    caller could not tell which. (A parameter repeated within either place is kept: that is
    how a list is sent.)
    """
    path, _, query = path.partition("?")
    checked = check_path(path)
    in_path = _path_query(query)
    given = query_pairs(parameters)
    both = sorted({key for key, _ in in_path} & {key for key, _ in given})
    if both:
        raise ValidationException(
            f"QueryParameters and Path's query string both give {', '.join(both)}: give each "
            "parameter in one place")
    return checked, in_path + given


def _path_query(query: str) -> list[tuple[str, str]]:
    """The parameters of the query string in a Path, decoded once: they are encoded again
    when sent, so an encoded '&', '=' or '#' stays part of its value."""
    problems = []
    if "#" in query:
        problems.append("must not contain '#'")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in query):
        problems.append("must not contain spaces or control characters")
    if _BROKEN_ESCAPE.search(query):
        problems.append("must not contain a '%' that is not followed by two hexadecimal "
                        "digits")
    pairs: list[tuple[str, str]] = []
    if not problems:
        try:
            pairs = parse_qsl(query, keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            problems.append("must be UTF-8 once percent-decoded")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for pair in pairs for c in pair[0] + pair[1]):
        problems.append("must not contain percent-encoded control characters")
    if problems:
        raise ValidationException("Invalid Path: its query string " + "; ".join(problems))
    return pairs


def check_path(path: str) -> str:
    """The path (without a query string), if it can only name something under the REST API
    prefix."""
    problems = []
    if not path.startswith("/") or path.startswith("//"):
        problems.append("must start with a single '/'")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in path):
        problems.append("must not contain spaces or control characters")
    elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in unquote(path)):
        problems.append("must not contain percent-encoded control characters")
    if "\\" in path:
        problems.append("must not contain backslashes")
    if "#" in path:
        problems.append("must not contain '#'")
    if "?" in path:
        problems.append("must not contain '?' but to start a query string")
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
    """Minted tokens, reused per (environment, signing key, identity, role) until shortly
    before they expire.

    Keyed by the environment's signing key as well as its name: an environment deleted and
    created again under the same name has a new key, and a token minted with the old one is
    never handed out for it. Reading the key costs as much as minting, so it is read at most
    once per KEY_RECHECK seconds per environment; a re-created environment takes far longer
    than that to become callable (provisioning, migrations, health checks), so its new key
    is always read before it is first called. A 401 from Airflow to a token also drops the
    key, so that a key replaced in any other way is read again on the next call.
    """

    def __init__(self, endpoints: Endpoints,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._endpoints = endpoints
        self._clock = clock
        self._keys: dict[str, tuple[SigningKey, str, float]] = {}  # key, its id, read at
        self._tokens: dict[tuple[str, str, str, str], tuple[str, float]] = {}

    def token(self, environment: str, identity: str, role: str) -> str:
        now = self._clock()
        key, key_id = self._key(environment, now)
        cache_key = (environment, key_id, identity, role)
        cached = self._tokens.get(cache_key)
        if cached is not None and cached[1] - now > TOKEN_REFRESH_MARGIN:
            return cached[0]
        token = key.mint(subject=identity, role=role, environment=environment, ttl=TOKEN_TTL)
        self._tokens[cache_key] = (token, now + TOKEN_TTL)
        return token

    def refused(self, environment: str) -> None:
        """Airflow refused a token: read the environment's key again before the next."""
        self._keys.pop(environment, None)

    def _key(self, environment: str, now: float) -> tuple[SigningKey, str]:
        known = self._keys.get(environment)
        if known is not None and now - known[2] < KEY_RECHECK:
            return known[0], known[1]
        key = self._endpoints.signing_key(environment)
        key_id = str(key.public_jwk()["x"])  # the public key: changes with the key
        self._keys[environment] = (key, key_id, now)
        for stale in [k for k in self._tokens if k[0] == environment and k[1] != key_id]:
            del self._tokens[stale]  # minted with a key the environment no longer has
        return key, key_id


@dataclass(frozen=True, slots=True)
class Invocation:
    environment: str
    api_url: str | None  # where the environment's REST API answers, if it runs
    method: str
    path: str
    query: list[tuple[str, str]]
    body: Any
    identity: str
    airflow_role: str


class RestApiProxy:
    """Sends invocations to Airflow over pooled keep-alive connections, bounded in time and
    size. aiohttp rather than httpx on this path: its client costs a fraction of httpx's per
    request, which is most of what the gateway adds to a call."""

    def __init__(self, endpoints: Endpoints, timeout: float = 10.0,
                 max_connections: int = 200) -> None:
        self._endpoints = endpoints
        self._tokens = TokenCache(endpoints)
        self._timeout = timeout
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def api_url(self, environment: EnvironmentRecord) -> str | None:
        """The environment's REST API root: its web server and its Airflow major version's
        prefix (/api/v1 on Airflow 2, /api/v2 on Airflow 3), as MWAA routes it."""
        base = self._endpoints.api_url(environment)
        version = str(environment.spec.get("AirflowVersion") or "3")
        return None if base is None else base + major_of(version).rest_prefix

    def _client(self) -> aiohttp.ClientSession:
        """The session, made on first use: it belongs to the event loop serving requests."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections,
                                               keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                # Asked uncompressed: on this local hop gzip would only cost CPU on both
                # sides (a compressed answer would still be decoded).
                skip_auto_headers=("User-Agent", "Accept-Encoding"))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, call: Invocation) -> dict[str, Any]:
        if call.api_url is None:
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
        url = f"{call.api_url}{call.path}"
        if call.query:
            url += "?" + urlencode(call.query)
        try:
            # encoded=True: the path was checked as it is and must reach Airflow as it is.
            async with self._client().request(call.method, URL(url, encoded=True),
                                              headers=headers, data=content,
                                              allow_redirects=False) as response:
                body = await _read_limited(response)
                if response.status == 401 and "Authorization" in headers:
                    self._tokens.refused(call.environment)
                return _result(response.status, body)
        except TimeoutError:
            raise _server_error(504, f"Airflow did not answer within {self._timeout:g} s") \
                from None
        except aiohttp.ClientError:
            raise _server_error(502, "The environment's Airflow API server can't be reached") \
                from None


async def _read_limited(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):  # decoded: the limit is
        size += len(chunk)                                        # on the document
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
    """Airflow's JSON as it is; anything else as a JSON string. JSON nested more than
    MAX_RESPONSE_DEPTH levels is RestApiServerException 502: it could not be returned."""
    if not body:
        return {}
    try:
        document = json.loads(body)
    except RecursionError:  # deeper than Python's decoder can go, so deeper than ours
        raise _too_deep() from None
    except ValueError:
        return body.decode(errors="replace")
    # Each level needs an opening bracket: a body with fewer can't be too deep (cheap, and
    # true of nearly every answer), so the walk is only for the few that might be.
    if body.count(b"[") + body.count(b"{") > MAX_RESPONSE_DEPTH \
            and nested_deeper_than(document, MAX_RESPONSE_DEPTH):
        raise _too_deep()
    return document


def _too_deep() -> RestApiServerException:
    return _server_error(502, f"Airflow's response nests JSON arrays and objects more than "
                              f"{MAX_RESPONSE_DEPTH} levels deep, more than InvokeRestApi "
                              "returns")


def _server_error(status: int, detail: str) -> RestApiServerException:
    return RestApiServerException(detail, RestApiStatusCode=status,
                                  RestApiResponse={"detail": detail})
