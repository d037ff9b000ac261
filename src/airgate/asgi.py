"""ASGI plumbing shared by airgate's two apps (the MWAA API and each environment's front):
reading a bounded request body, and the lifespan protocol."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import Receive, Scope, Send

from airgate.auth.sigv4 import SignedRequest

MAX_BODY_BYTES = 8 * 1024 * 1024


class BodyTooLarge(Exception):
    """The body is over the limit: answered with RequestEntityTooLargeException (413)."""


async def read_body(scope: Scope, receive: Receive, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole request body; BodyTooLarge as soon as it is known to exceed `limit`."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def serve_lifespan(receive: Receive, send: Send,
                         on_shutdown: Callable[[], Awaitable[None]] | None) -> None:
    """Answer the server's startup and shutdown messages; `on_shutdown` closes what lives
    on the serving event loop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if on_shutdown is not None:
                await on_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


def headers_of(scope: Scope) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]


def signed_request(scope: Scope, body: bytes) -> SignedRequest:
    """The request as it was sent, for SigV4 verification."""
    raw_path = scope.get("raw_path") or scope["path"].encode()
    # Decoded so that sigv4 can recover every byte: see its module docstring.
    return SignedRequest(
        method=scope["method"],
        raw_path=raw_path.decode("utf-8", "surrogateescape"),
        raw_query=scope.get("query_string", b"").decode("utf-8", "surrogateescape"),
        headers=headers_of(scope),
        body=body,
    )
