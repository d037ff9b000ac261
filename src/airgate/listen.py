"""How airgate listens: one uvicorn configuration for the MWAA API and every environment's
front, plain or TLS, with an HTTP protocol that bounds the request head and answers
malformed HTTP with an error AWS clients can parse."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httptools
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from airgate.tls import TlsFiles

# The request line and headers together; AWS's front ends refuse far smaller heads, and
# without a bound the HTTP parser would buffer any amount.
MAX_REQUEST_HEAD_BYTES = 64 * 1024


class RequestHeadTooLarge(Exception):
    """Raised inside the parser's callbacks, which turns it into a 400 for the client."""


class MalformedRequestTarget(Exception):
    """A request target that is no path (`GET * HTTP/1.1`): a 400, like the above."""


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, but a request head over MAX_REQUEST_HEAD_BYTES or a
    request target that is not a path is refused, and any request the parser can't read
    gets a JSON `ValidationException` (what botocore and the other SDKs parse) instead of
    a plain-text 400 (or a 500 from an app handed no path)."""

    _head_bytes = 0
    _refusal = "The request is not valid HTTP/1.1."

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        # Only a path (origin-form, or absolute-form with a path) names something served:
        # `*`, or `http://host` without a path, would reach the app with no usable path.
        try:
            path = httptools.parse_url(self.url).path
        except httptools.HttpParserInvalidURLError:
            path = None
        if not path or not path.startswith(b"/"):
            self._refusal = "The request target must be a path starting with '/'."
            raise MalformedRequestTarget(self._refusal)
        super().on_headers_complete()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_REQUEST_HEAD_BYTES:
            self._refusal = (f"The request line and headers are larger than "
                             f"{MAX_REQUEST_HEAD_BYTES} bytes.")
            raise RequestHeadTooLarge(self._refusal)

    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"message": self._refusal}).encode()
        self.transport.write(b"".join([
            b"HTTP/1.1 400 Bad Request\r\n",
            b"content-type: application/json\r\n",
            b"x-amzn-errortype: ValidationException\r\n",
            b"content-length: ", str(len(body)).encode(), b"\r\n",
            b"connection: close\r\n\r\n", body]))
        self.transport.close()


def uvicorn_config(app: ASGIApp, host: str, port: int, tls: TlsFiles | None = None,
                   forwarded_allow_ips: Sequence[str] = ()) -> Any:
    """How airgate serves HTTP(S): uvloop when present, the bounded httptools protocol, no
    access log of uvicorn's own (airgate writes one line per call itself).

    X-Forwarded-For and X-Forwarded-Proto are ignored unless `forwarded_allow_ips` names
    the reverse proxies that may set them: they decide `aws:SourceIp` and
    `aws:SecureTransport`, and uvicorn would otherwise believe them from any local process
    (its default trusts 127.0.0.1, or $FORWARDED_ALLOW_IPS)."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                          server_header=False, lifespan="on", http=BoundedHttpProtocol,
                          proxy_headers=bool(forwarded_allow_ips),
                          forwarded_allow_ips=list(forwarded_allow_ips),
                          ssl_certfile=str(tls.certificate) if tls else None,
                          ssl_keyfile=str(tls.private_key) if tls else None)
