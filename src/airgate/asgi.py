"""ASGI plumbing shared by airgate's two apps (the MWAA API and each environment's front):
reading a bounded request body, and the lifespan protocol."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import Receive, Scope, Send

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
