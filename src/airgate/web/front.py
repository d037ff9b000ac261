"""What airgate serves at one environment's WebServerHostname: MWAA's CLI endpoint
(`POST /aws_mwaa/cli`), and the environment's Airflow UI and REST API behind it, so that
both share one origin as they do on MWAA.

The CLI endpoint takes a CLI token from CreateCliToken as `Authorization: Bearer`, and an
Airflow CLI command line as the body; it answers `{"stdout": <base64>, "stderr": <base64>}`
from running that command in the environment. Refusals are JSON `{"error": ...}` with 401
(token), 400 (command), 429 (too many CLI commands running) or 504 (took too long).
Everything else is passed through to the environment's api-server unchanged.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
from collections.abc import Callable
from typing import Any

import aiohttp
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send
from yarl import URL

from airgate.web.cli_commands import CommandRefused, parse_command_line
from airgate.web.tokens import EnvironmentTokens, TokenRefused

CLI_PATH = "/aws_mwaa/cli"
CLI_TIMEOUT = 60.0
CLI_CONCURRENCY = 2
MAX_BODY_BYTES = 8 * 1024 * 1024
# Hop-by-hop headers (RFC 9110 7.6.1) and the ones the proxy sets itself.
_NOT_FORWARDED = frozenset({b"connection", b"keep-alive", b"proxy-authenticate",
                            b"proxy-authorization", b"te", b"trailer", b"transfer-encoding",
                            b"upgrade", b"host", b"content-length"})
_log = logging.getLogger("airgate.web")

CliRunner = Callable[[list[str], float], subprocess.CompletedProcess[bytes]]


class EnvironmentFront:
    """The ASGI app for one environment's WebServerHostname."""

    def __init__(self, environment: str, upstream: Callable[[], str | None],
                 tokens: EnvironmentTokens, run_cli: CliRunner,
                 cli_timeout: float = CLI_TIMEOUT,
                 cli_concurrency: int = CLI_CONCURRENCY) -> None:
        self.environment = environment
        self._upstream = upstream
        self._tokens = tokens
        self._run_cli = run_cli
        self._cli_timeout = cli_timeout
        self._cli_concurrency = cli_concurrency
        self._cli_running = 0
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            if scope["path"] == CLI_PATH:
                status, document = await self._cli(scope, receive)
                await _send_json(send, status, document)
            else:
                await self._proxy(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._session is not None:
                    await self._session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- the CLI endpoint ------------------------------------------------------------------

    async def _cli(self, scope: Scope, receive: Receive) -> tuple[int, dict[str, Any]]:
        if scope["method"] != "POST":
            return 405, {"error": f"{CLI_PATH} takes POST"}
        authorization = _header(scope, b"authorization")
        if not authorization.lower().startswith("bearer "):
            return 401, {"error": "Send the CLI token from CreateCliToken as "
                                  "'Authorization: Bearer <token>'"}
        try:
            claims = self._tokens.check(authorization[7:].strip(), "cli", self.environment)
        except TokenRefused as refused:
            return 401, {"error": str(refused)}
        body = await _read_body(receive)
        if body is None:
            return 413, {"error": f"Command line larger than {MAX_BODY_BYTES} bytes"}
        try:
            argv = parse_command_line(body.decode("utf-8"))
        except UnicodeDecodeError:
            return 400, {"error": "The command line must be UTF-8 text"}
        except CommandRefused as refused:
            return 400, {"error": str(refused)}
        if self._cli_running >= self._cli_concurrency:
            return 429, {"error": f"{self._cli_concurrency} CLI commands are already running "
                                  "in this environment; retry shortly"}
        self._cli_running += 1
        try:
            done = await run_in_threadpool(self._run_cli, argv, self._cli_timeout)
        except subprocess.TimeoutExpired:
            return 504, {"error": f"The command did not finish within {self._cli_timeout:g} s"}
        except LookupError:
            return 503, {"error": f"Environment {self.environment} is not running"}
        finally:
            self._cli_running -= 1
        _log.info("cli command", extra={"fields": {
            "environment": self.environment, "principal": claims.identity,
            "command": " ".join(argv[:2]), "exit_code": done.returncode}})
        return 200, {"stdout": base64.b64encode(done.stdout).decode(),
                     "stderr": base64.b64encode(done.stderr).decode()}

    # --- everything else: the environment's Airflow ----------------------------------------

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        base = self._upstream()
        if base is None:
            await _send_json(send, 503, {"error": f"Environment {self.environment} is not "
                                                  "running"})
            return
        body = await _read_body(receive)
        if body is None:
            await _send_json(send, 413, {"error": "Request body too large"})
            return
        target = base + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
                   if k not in _NOT_FORWARDED]
        try:
            async with self._client().request(scope["method"], URL(target, encoded=True),
                                              headers=headers, data=body or None,
                                              allow_redirects=False) as answer:
                await send({"type": "http.response.start", "status": answer.status,
                            "headers": [(k.lower(), v) for k, v in answer.raw_headers
                                        if k.lower() not in _NOT_FORWARDED - {
                                            b"content-length"}]})
                async for chunk in answer.content.iter_chunked(64 * 1024):
                    await send({"type": "http.response.body", "body": chunk,
                                "more_body": True})
                await send({"type": "http.response.body", "body": b""})
        except (aiohttp.ClientError, TimeoutError):
            await _send_json(send, 502, {"error": "The environment's Airflow can't be "
                                                  "reached"})

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Passed through as Airflow sent it: no decompression, no added headers.
            self._session = aiohttp.ClientSession(
                auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding"),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300))
        return self._session


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


async def _read_body(receive: Receive) -> bytes | None:
    """The request body, or None if it is over the limit."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send_json(send: Send, status: int, document: dict[str, Any]) -> None:
    body = json.dumps(document).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

