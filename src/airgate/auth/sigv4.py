"""AWS Signature Version 4, server side: recompute the client's signature and compare.

Clients (botocore, the AWS CLI, other SDKs) sign every call with the access key's secret.
We rebuild the canonical request from the request exactly as it arrived, derive the same
signing key from the secret we hold, and accept the call only if both signatures are equal.
Both forms are handled: the `Authorization` header and presigned query parameters.
`query_parameters` is the one reading of the query string: the request parser takes the
operation's input from it as well, so that what is signed and what is done cannot differ.
`read_claims` reads what a request says of its signature (its credential scope names the
service it is for) without trusting it; `verify` then checks it.

`SignedRequest` carries text, not bytes, so the caller must decode the wire bytes in a way
this module can undo: header values as latin-1 (what HTTP clients encode them with), the path
and query as UTF-8 with `surrogateescape` (so that any byte sequence survives).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_to_bytes

from airgate.errors import (
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
# AWS refuses presigned URLs that claim to stay valid for longer than a week.
MAX_PRESIGNED_EXPIRES = 604_800

_TERMINATOR = "aws4_request"
_SIGNATURE_PARAM = b"X-Amz-Signature"
_ALGORITHM_PARAM = b"X-Amz-Algorithm"
_HEADER_PARAMS = ("Credential", "Signature", "SignedHeaders")
_PRESIGNED_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)
# Only ASCII whitespace: header values are latin-1, and \xa0 or \x85 are data, not spacing.
_WHITESPACE_RUN = re.compile(r"[ \t\r\n\v\f]+")
_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_MESSAGE_EXCERPT = 64

_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
_PAYLOAD_MISMATCH = "The provided 'x-amz-content-sha256' header does not match what was computed."
_HOST_NOT_SIGNED = "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
_UNSUPPORTED_ALGORITHM = "Unsupported AWS 'algorithm': only 'AWS4-HMAC-SHA256' is accepted."


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request as received on the wire, before any framework decoding."""

    method: str
    raw_path: str  # the path exactly as received (percent-encoded as sent), no query
    raw_query: str  # the query string exactly as received, without '?', may be ""
    # header (name, value) pairs as received, in order; duplicates kept; names in any case
    headers: Sequence[tuple[str, str]]
    body: bytes


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """Who signed the request; the caller still has to check the session token, if any."""

    access_key_id: str
    session_token: str | None  # X-Amz-Security-Token from the header or the presigned query
    signed_at: datetime  # aware, UTC
    presigned: bool


@dataclass(frozen=True, slots=True)
class QueryParameter:
    """One `key=value` of a raw query string, percent-decoded as RFC 3986 reads it."""

    key: bytes
    value: bytes
    # A '+' sent as is: literal here, as AWS signs it, but a space to an HTML-form reader.
    # botocore and the AWS SDKs always send '%2B' or '%20', so a bare '+' is never theirs.
    bare_plus: bool

    def canonical(self) -> tuple[str, str]:
        """Key and value as the canonical query writes them (what the signature covers)."""
        return quote(self.key, safe=""), quote(self.value, safe="")


@dataclass(frozen=True, slots=True)
class _Scope:
    access_key_id: str
    date: str
    region: str
    service: str

    def __str__(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{_TERMINATOR}"


@dataclass(frozen=True, slots=True)
class _Auth:
    """Everything the client claims about its signature, parsed but not yet trusted."""

    scope: _Scope
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str  # the request time as it goes into the string to sign
    signed_at: datetime
    expires: int | None  # seconds a presigned URL stays valid; None for the header form
    session_token: str | None
    declared_payload_hash: str | None  # x-amz-content-sha256, if the client sent one


_Headers = Mapping[str, list[str]]


@dataclass(frozen=True, slots=True)
class Claims:
    """What a request says about its signature, parsed but not yet trusted."""

    auth: _Auth
    headers: _Headers
    query: list[QueryParameter]  # the query string, as `query_parameters` reads it

    @property
    def service(self) -> str:
        """The service the credential scope names (`airflow`, `sts`, `iam`, ...)."""
        return self.auth.scope.service


def read_claims(request: SignedRequest) -> Claims:
    """The request's signature claims: MissingAuthenticationTokenException or
    IncompleteSignatureException if it has none or a malformed one."""
    headers = _header_map(request.headers)
    query = query_parameters(request.raw_query)
    return Claims(_parse_auth(headers, query), headers, query)


def verify(
    request: SignedRequest,
    *,
    region: str | Collection[str],
    service: str,
    secret_for: Callable[[str], str | None],
    now: datetime,
    max_skew: timedelta = timedelta(minutes=5),
    claims: Claims | None = None,
) -> VerifiedSignature:
    """Accept `request` only if it carries a valid, current SigV4 signature for our scope:
    `service`, and `region` or one of several (global services such as IAM are signed for
    us-east-1). `claims` are the request's, if `read_claims` read them already.

    Checks run in AWS's order (parse, scope, key, time, signature) so that a client sees
    the same error AWS would give it; every failure raises one of the SigV4 ServiceErrors.
    """
    claims = claims or read_claims(request)
    auth = claims.auth
    header_block = _canonical_headers(claims.headers, auth.signed_headers)
    _check_scope(auth, regions=(region,) if isinstance(region, str) else region,
                 service=service)
    secret = secret_for(auth.scope.access_key_id)
    if secret is None:
        raise UnrecognizedClientException("The security token included in the request is invalid.")
    _check_time(auth, now=now, max_skew=max_skew)
    presigned = auth.expires is not None
    creq = _join_canonical(
        request.method,
        _canonical_uri(request.raw_path),
        _canonical_query(claims.query, presigned=presigned),
        header_block,
        auth.signed_headers,
        _payload_hash(request.body, auth.declared_payload_hash),
    )
    sts = string_to_sign(creq, auth.amz_date, str(auth.scope))
    key = _signing_key(secret, auth.scope.date, auth.scope.region, service)
    expected = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest().encode("ascii")
    if not hmac.compare_digest(expected, auth.signature.encode("utf-8", "surrogatepass")):
        raise InvalidSignatureException(_SIGNATURE_MISMATCH)
    return VerifiedSignature(
        access_key_id=auth.scope.access_key_id,
        session_token=auth.session_token,
        signed_at=auth.signed_at,
        presigned=presigned,
    )


def canonical_request(
    request: SignedRequest,
    signed_headers: Sequence[str],
    payload_hash: str,
    *,
    presigned: bool,
) -> str:
    """The SigV4 canonical request (task 1) for `request`, as the client should have built it.

    `signed_headers` are lower-case names in the order the client listed them; each must be
    present in the request.
    """
    return _join_canonical(
        request.method,
        _canonical_uri(request.raw_path),
        _canonical_query(query_parameters(request.raw_query), presigned=presigned),
        _canonical_headers(_header_map(request.headers), tuple(signed_headers)),
        tuple(signed_headers),
        payload_hash,
    )


def string_to_sign(canonical: str, amz_date: str, credential_scope: str) -> str:
    """The SigV4 string to sign (task 2): what the signing key's HMAC is computed over."""
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{credential_scope}\n{digest}"


def query_parameters(raw_query: str) -> list[QueryParameter]:
    """The one reading of a raw query string, in the canonical query's (sorted) order.

    The verifier signs exactly this and the request parser reads operation input from it,
    so nothing the signature does not see (the order of repeated keys, '%2B' sent as '+',
    '%41' sent as 'A') can give the parser another reading than the one that was signed.
    """
    parameters = []
    for piece in _wire_bytes(raw_query).split(b"&"):
        if piece:
            key, _, value = piece.partition(b"=")
            parameters.append(QueryParameter(unquote_to_bytes(key), unquote_to_bytes(value),
                                             bare_plus=b"+" in piece))
    return sorted(parameters, key=QueryParameter.canonical)


# --- parsing what the client claims ---------------------------------------------------------


def _parse_auth(headers: _Headers, query: Sequence[QueryParameter]) -> _Auth:
    """Pick the header or presigned form; refuse requests that use neither or both."""
    authorization = _single_header(headers, "authorization")
    presigned = any(parameter.key == _ALGORITHM_PARAM for parameter in query)
    if authorization is None and not presigned:
        raise MissingAuthenticationTokenException("Missing Authentication Token")
    if authorization is not None and presigned:
        raise IncompleteSignatureException(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter "
            "or the Authorization header should be specified."
        )
    if authorization is not None:
        return _parse_header_form(authorization, headers)
    return _parse_presigned_form(headers, _query_params(query))


def _parse_header_form(authorization: str, headers: _Headers) -> _Auth:
    params = _authorization_params(authorization)
    problems = [
        f"Authorization header requires '{name}' parameter."
        for name in _HEADER_PARAMS
        if not params.get(name)
    ]
    if "x-amz-date" not in headers and "date" not in headers:
        problems.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    if problems:
        raise IncompleteSignatureException(" ".join(problems))
    scope = _parse_credential(params["Credential"])
    amz_date, signed_at = _header_date(headers)
    return _Auth(
        scope=scope,
        signed_headers=_parse_signed_headers(params["SignedHeaders"]),
        signature=params["Signature"],
        amz_date=amz_date,
        signed_at=signed_at,
        expires=None,
        session_token=_single_header(headers, "x-amz-security-token"),
        declared_payload_hash=_single_header(headers, "x-amz-content-sha256"),
    )


def _authorization_params(authorization: str) -> dict[str, str]:
    """Split `ALGORITHM k=v, k=v, ...`; never echo the header, it may hold someone's secret."""
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignatureException(_UNSUPPORTED_ALGORITHM)
    params: dict[str, str] = {}
    for piece in rest.split(","):
        name, equals, value = (part.strip() for part in piece.partition("="))
        if not name and not equals:
            continue
        if not equals:
            raise IncompleteSignatureException(
                "Invalid key=value pair (missing equal-sign) in Authorization header "
                f"(hashed with SHA-256 and encoded with Base64): '{_fingerprint(authorization)}'."
            )
        if name in params:
            raise IncompleteSignatureException(
                "Authorization header contains a repeated parameter."
            )
        params[name] = value
    return params


def _parse_presigned_form(headers: _Headers, params: Mapping[str, list[str]]) -> _Auth:
    given = {name: _single_param(params, name) for name in _PRESIGNED_PARAMS}
    values = {name: value for name, value in given.items() if value}
    missing = [name for name in _PRESIGNED_PARAMS if name not in values]
    if missing:
        raise IncompleteSignatureException(
            " ".join(
                f"AWS query-string parameters must include '{name}'. "
                "Re-examine the query-string parameters."
                for name in missing
            )
        )
    if values["X-Amz-Algorithm"] != ALGORITHM:
        raise IncompleteSignatureException(_UNSUPPORTED_ALGORITHM)
    token = _single_param(params, "X-Amz-Security-Token")
    if token is None:
        token = _single_header(headers, "x-amz-security-token")
    declared = _single_header(headers, "x-amz-content-sha256")
    if declared is None:
        declared = _single_param(params, "X-Amz-Content-Sha256")
    return _Auth(
        scope=_parse_credential(values["X-Amz-Credential"]),
        signed_headers=_parse_signed_headers(values["X-Amz-SignedHeaders"]),
        signature=values["X-Amz-Signature"],
        amz_date=values["X-Amz-Date"],
        signed_at=_parse_amz_date(values["X-Amz-Date"]),
        expires=_parse_expires(values["X-Amz-Expires"]),
        session_token=token,
        declared_payload_hash=declared,
    )


def _parse_credential(credential: str) -> _Scope:
    parts = credential.split("/")
    if len(parts) != 5:
        raise IncompleteSignatureException(
            "Credential must have exactly 5 slash-delimited elements, "
            f"e.g. keyid/date/region/service/term, got '{_excerpt(credential)}'"
        )
    access_key_id, date, region, service, terminator = parts
    if terminator != _TERMINATOR:
        raise IncompleteSignatureException(
            f"Credential should be scoped with a valid terminator: '{_TERMINATOR}', "
            f"not '{_excerpt(terminator)}'. "
        )
    return _Scope(access_key_id, date, region, service)


def _parse_signed_headers(value: str) -> tuple[str, ...]:
    """Lower-case the names but keep the client's order: the signature covers that order."""
    names = tuple(name.strip().lower() for name in value.split(";"))
    if not all(names):
        raise IncompleteSignatureException("SignedHeaders must not contain an empty header name.")
    if "host" not in names:
        raise IncompleteSignatureException(_HOST_NOT_SIGNED)
    return names


def _header_date(headers: _Headers) -> tuple[str, datetime]:
    """The request time: X-Amz-Date, else the HTTP Date header (RFC 1123)."""
    amz_date = _single_header(headers, "x-amz-date")
    if amz_date is not None:
        return amz_date, _parse_amz_date(amz_date)
    http_date = _single_header(headers, "date") or ""
    try:
        parsed = parsedate_to_datetime(http_date)
        # A naive result means "-0000": UTC, with no zone information to convert from.
        signed_at = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (TypeError, ValueError, OverflowError):
        raise IncompleteSignatureException(
            f"Date header must be in RFC 1123 format. Got '{_excerpt(http_date)}'."
        ) from None
    return _amz(signed_at), signed_at


def _parse_amz_date(value: str) -> datetime:
    """Strict YYYYMMDDTHHMMSSZ; strptime would also take single digits and be slower."""
    digits = value[:8] + value[9:15]
    if len(value) == 16 and value[8] == "T" and value[15] == "Z" and _ascii_digits(digits):
        try:
            return datetime(
                int(value[0:4]),
                int(value[4:6]),
                int(value[6:8]),
                int(value[9:11]),
                int(value[11:13]),
                int(value[13:15]),
                tzinfo=UTC,
            )
        except ValueError:
            pass
    raise IncompleteSignatureException(
        f"Date must be in ISO-8601 'basic format'. Got '{_excerpt(value)}'. "
        "See http://en.wikipedia.org/wiki/ISO_8601"
    )


def _parse_expires(value: str) -> int:
    if not (len(value) <= 10 and _ascii_digits(value)):
        raise IncompleteSignatureException("X-Amz-Expires should be a number")
    expires = int(value)
    if expires < 1:
        raise IncompleteSignatureException("X-Amz-Expires must be at least 1 second")
    if expires > MAX_PRESIGNED_EXPIRES:
        raise IncompleteSignatureException(
            f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGNED_EXPIRES}"
        )
    return expires


# --- checks ----------------------------------------------------------------------------------


def _check_scope(auth: _Auth, *, regions: Collection[str], service: str) -> None:
    """A signature for another region, service or day must not be replayable here."""
    scope = auth.scope
    if scope.region not in regions:
        raise InvalidSignatureException("Credential should be scoped to a valid region. ")
    if scope.service != service:
        raise InvalidSignatureException(
            f"Credential should be scoped to correct service: '{service}'. "
        )
    if scope.date != auth.amz_date[:8]:
        raise InvalidSignatureException(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{_excerpt(scope.date)}' != '{auth.amz_date[:8]}', "
            f"from '{auth.amz_date}'."
        )


def _check_time(auth: _Auth, *, now: datetime, max_skew: timedelta) -> None:
    """Bound replay: header signatures live `max_skew` either side, presigned ones `expires`."""
    if auth.signed_at - now > max_skew:
        raise InvalidSignatureException(
            f"Signature not yet current: {auth.amz_date} is still later than "
            f"{_amz(now + max_skew)} ({_amz(now)} + {_span(max_skew)})"
        )
    window = max_skew if auth.expires is None else timedelta(seconds=auth.expires)
    if now - auth.signed_at > window:
        raise InvalidSignatureException(
            f"Signature expired: {auth.amz_date} is now earlier than "
            f"{_amz(now - window)} ({_amz(now)} - {_span(window)})"
        )


def _payload_hash(body: bytes, declared: str | None) -> str:
    """The body's hash for the canonical request; a declared hash must be the true one."""
    if declared == UNSIGNED_PAYLOAD:
        return declared
    computed = hashlib.sha256(body).hexdigest()
    if declared is not None and declared != computed:
        raise InvalidSignatureException(_PAYLOAD_MISMATCH)
    return computed


@functools.lru_cache(maxsize=256)
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """Derive kSigning; cached because it costs four HMACs and changes once a day per key."""
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, _TERMINATOR):
        key = hmac.new(key, part.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
    return key


# --- canonical request pieces ----------------------------------------------------------------


def _join_canonical(
    method: str,
    uri: str,
    query: str,
    header_block: str,
    signed_headers: tuple[str, ...],
    payload_hash: str,
) -> str:
    return "\n".join((method, uri, query, header_block, ";".join(signed_headers), payload_hash))


def _canonical_uri(raw_path: str) -> str:
    """Normalize, then encode every byte but unreserved and '/' (so '%3A' becomes '%253A')."""
    return quote(_wire_bytes(_remove_dot_segments(raw_path)), safe="/")


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4, plus collapsing empty segments ('//') as AWS does outside S3."""
    if path.startswith("/") and "//" not in path and "/." not in path:
        return path
    segments = path.split("/")
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            if kept:
                kept.pop()
        elif segment not in ("", "."):
            kept.append(segment)
    # A trailing '/', '.' or '..' names a directory, so the result keeps its trailing slash.
    trailing = "/" if kept and segments[-1] in ("", ".", "..") else ""
    return "/" + "/".join(kept) + trailing


def _canonical_query(query: Sequence[QueryParameter], *, presigned: bool) -> str:
    """`query` is in canonical order already (see `query_parameters`)."""
    return "&".join(
        "=".join(parameter.canonical())
        for parameter in query
        if not (presigned and parameter.key == _SIGNATURE_PARAM)
    )


def _canonical_headers(headers: _Headers, signed_headers: tuple[str, ...]) -> str:
    """`name:value\\n` per signed header; repeated headers joined with ',' in received order."""
    lines = []
    for name in signed_headers:
        values = headers.get(name)
        if values is None:
            raise IncompleteSignatureException(
                f"Signed header '{_excerpt(name)}' is not present in the request."
            )
        lines.append(f"{name}:{','.join(_trim(value) for value in values)}\n")
    return "".join(lines)


def _trim(value: str) -> str:
    """Trimall: strip, and turn each whitespace run (folded lines included) into one space."""
    return _WHITESPACE_RUN.sub(" ", value).strip(" ")


# --- small helpers ---------------------------------------------------------------------------


def _header_map(headers: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    mapped: dict[str, list[str]] = {}
    for name, value in headers:
        mapped.setdefault(name.lower(), []).append(value)
    return mapped


def _single_header(headers: _Headers, name: str) -> str | None:
    """A header's value, stripped; repeats are refused since they would be ambiguous."""
    values = headers.get(name)
    if values is None:
        return None
    if len(values) > 1:
        raise IncompleteSignatureException(f"Only one '{name}' header is allowed.")
    return values[0].strip()


def _query_params(query: Sequence[QueryParameter]) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for parameter in query:
        params.setdefault(parameter.key.decode("utf-8", "replace"), []).append(
            parameter.value.decode("utf-8", "replace")
        )
    return params


def _single_param(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if values is None:
        return None
    if len(values) > 1:
        raise IncompleteSignatureException(f"Query-string parameter '{name}' must not repeat.")
    return values[0]


def _wire_bytes(text: str) -> bytes:
    """Undo the caller's UTF-8/surrogateescape decoding; never fails on odd surrogates."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _amz(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_AMZ_DATE_FORMAT)


def _span(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    return f"{seconds // 60} min." if seconds % 60 == 0 else f"{seconds} sec."


def _excerpt(text: str) -> str:
    """Client-supplied text for an error message, cut short so messages stay small."""
    return text if len(text) <= _MESSAGE_EXCERPT else text[:_MESSAGE_EXCERPT] + "..."


def _fingerprint(text: str) -> str:
    """Identify a header in a message without revealing it, the way AWS does."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return base64.b64encode(digest).decode("ascii")
