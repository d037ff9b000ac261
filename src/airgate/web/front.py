"""What airgate serves at one environment's WebServerHostname: MWAA's CLI endpoint
(`POST /aws_mwaa/cli`), its web login (`/aws_mwaa/aws-console-sso`, `/aws_mwaa/login`,
`/pluginsv2/aws_mwaa/login`), and the environment's Airflow UI and REST API behind them, so
that all share one origin as they do on MWAA.

The CLI endpoint takes a CLI token from CreateCliToken as `Authorization: Bearer`, and an
Airflow CLI command line as the body; it answers `{"stdout": <base64>, "stderr": <base64>}`
from running that command in the environment. Refusals are JSON `{"error": ...}` with 401
(token), 400 (command), 429 (too many CLI commands running) or 504 (took too long).

A web login starts a session (airgate/web/sessions.py): an opaque value, never an Airflow
token or session, set as this environment's session cookie and where the Amazon provider's
MwaaHook and MWAA's other clients read it (`_token` on the login path for Airflow 3,
`session` for Airflow 2). Everything else is passed through to the environment's Airflow,
with the credentials airgate/web/credentials.py allows; a request with a session for this
environment gets, in its place, what that environment's Airflow accepts. What differs
between Airflow 2 and 3 (signing in to Airflow, what a request carries, sign-out, Airflow's
own password page) is asked of one object per major version (airgate/web/signin.py). A
session no longer valid or allowed ends with 401 and its cookies cleared.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send
from yarl import URL

from airgate.asgi import MAX_BODY_BYTES, BodyTooLarge, read_body, serve_lifespan
from airgate.web.cli_commands import CommandRefused, parse_command_line
from airgate.web.credentials import Presented, answer_cookies, take_credentials
from airgate.web.origin import from_own_page, header
from airgate.web.sessions import SessionRefused, SignedIn, WebSessions
from airgate.web.signin import (
    AIRFLOW_3_SIGN_IN,
    Airflow,
    AirflowSignIn,
    AirflowTokenMinter,
    Credentials,
    SignInFailed,
)
from airgate.web.tokens import EnvironmentTokens, TokenClaims, TokenRefused

CLI_PATH = "/aws_mwaa/cli"
SSO_PATH = "/aws_mwaa/aws-console-sso"
LOGIN_PATHS = ("/aws_mwaa/login", "/pluginsv2/aws_mwaa/login")  # Airflow 2's, Airflow 3's
# airgate's own routes inside environments (Airflow 2's sign-in): never passed on.
RESERVED_PREFIX = "airgate"
CLI_TIMEOUT = 60.0
CLI_CONCURRENCY = 2
# Hop-by-hop headers (RFC 9110 7.6.1) and the ones the proxy sets itself.
_NOT_FORWARDED = frozenset({b"connection", b"keep-alive", b"proxy-authenticate",
                            b"proxy-authorization", b"te", b"trailer", b"transfer-encoding",
                            b"upgrade", b"host", b"content-length"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_log = logging.getLogger("airgate.web")

# (argv, timeout, the caller's IAM identity) -> the command's output
CliRunner = Callable[[list[str], float, str], subprocess.CompletedProcess[bytes]]


class CliNotRun(Exception):
    """A CLI runner's refusal, passed on as it is (the front of a gateway that doesn't run
    the environment forwards commands to the runner's: web/cli_forward.py)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

_SIGNED_IN_PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="0; url=/">
<title>Signed in to Apache Airflow</title></head>
<body><p>Signed in. <a href="/">Continue to Airflow</a>.</p></body></html>
"""
# The page the console opens: it posts the token from the address's fragment to
# {action}, this Airflow version's sign-in path.
_SSO_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Signing in to Apache Airflow</title></head>
<body>
<form id="login" method="post" action="{action}">
<input type="hidden" name="token" id="token"></form>
<p id="message">Signing in&hellip;</p>
<noscript>Signing in needs JavaScript.</noscript>
<script>
const token = decodeURIComponent(window.location.hash.slice(1));
history.replaceState(null, "", window.location.pathname);
if (token) {{
  document.getElementById("token").value = token;
  document.getElementById("login").submit();
}} else {{
  document.getElementById("message").textContent = "No login token in the address. " +
    "Sign in from the Amazon MWAA console (Open Airflow UI), or open " +
    "/aws_mwaa/aws-console-sso?login=true#<WebToken> with a token from " +
    "CreateWebLoginToken.";
}}
</script>
</body></html>
"""


class EnvironmentFront:
    """The ASGI app for one environment's WebServerHostname."""

    def __init__(self, environment: str, upstream: Callable[[], str | None],
                 tokens: EnvironmentTokens, run_cli: CliRunner,
                 mint_airflow_token: AirflowTokenMinter, sessions: WebSessions,
                 cli_timeout: float = CLI_TIMEOUT,
                 cli_concurrency: int = CLI_CONCURRENCY,
                 sign_in: Callable[[], AirflowSignIn] = lambda: AIRFLOW_3_SIGN_IN) -> None:
        """`sign_in` answers, for each request, how a session signs in to the environment's
        Airflow as it runs now (its major version)."""
        self.environment = environment
        self.sessions = sessions
        self._mint_airflow_token = mint_airflow_token
        self._sign_in = sign_in
        self._upstream = upstream
        self._tokens = tokens
        self._run_cli = run_cli
        self._cli_timeout = cli_timeout
        self._cli_concurrency = cli_concurrency
        self._cli_running = 0
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send, self._close)
        elif scope["type"] == "http":
            sign_in = self._sign_in()
            if scope["path"] in (CLI_PATH, CLI_PATH + "/"):  # clients send either
                status, document = await self._cli(scope, receive)
                await _send_json(send, status, document)
            elif scope["path"] == SSO_PATH and scope["method"] == "GET":
                page = _SSO_PAGE.format(action=sign_in.login_path).encode()
                await _send(send, 200, page, b"text/html; charset=utf-8")
            elif scope["path"] in LOGIN_PATHS and scope["method"] == "POST":
                await self._login(scope, receive, send, sign_in)
            elif _reserved(scope["path"]):
                await _send_json(send, 404, {"error": "Not found"})
            elif scope["path"] in sign_in.password_pages:
                await self._password_page(scope, send, sign_in)
            else:
                await self._proxy(scope, receive, send, sign_in)

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()

    # --- the CLI endpoint ------------------------------------------------------------------

    async def _cli(self, scope: Scope, receive: Receive) -> tuple[int, dict[str, Any]]:
        if scope["method"] != "POST":
            return 405, {"error": f"{CLI_PATH} takes POST"}
        authorization = header(scope, b"authorization")
        if not authorization.lower().startswith("bearer "):
            return 401, {"error": "Send the CLI token from CreateCliToken as "
                                  "'Authorization: Bearer <token>'"}
        try:
            claims = self._tokens.check(authorization[7:].strip(), "cli", self.environment)
        except TokenRefused as refused:
            return 401, {"error": str(refused)}
        try:
            body = await read_body(scope, receive)
        except BodyTooLarge:
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
            done = await run_in_threadpool(self._run_cli, argv, self._cli_timeout,
                                           claims.identity)
        except subprocess.TimeoutExpired:
            return 504, {"error": f"The command did not finish within {self._cli_timeout:g} s"}
        except LookupError:
            return 503, {"error": f"Environment {self.environment} is not running"}
        except CliNotRun as refused:
            return refused.status, {"error": refused.message}
        finally:
            self._cli_running -= 1
        _log.info("cli command", extra={"fields": {
            "environment": self.environment, "principal": claims.identity,
            "command": " ".join(argv[:2]), "exit_code": done.returncode}})
        return 200, {"stdout": base64.b64encode(done.stdout).decode(),
                     "stderr": base64.b64encode(done.stderr).decode()}

    # --- web login -----------------------------------------------------------------------

    async def _login(self, scope: Scope, receive: Receive, send: Send,
                     sign_in: AirflowSignIn) -> None:
        """A web-login token from CreateWebLoginToken, posted as the form field `token`,
        starts a session for the caller's identity and Airflow role, signed in to the
        environment's Airflow, on a page that goes on to the UI."""
        if not from_own_page(scope):
            # Login CSRF: another site's page must not sign a browser in as someone else.
            await _send_json(send, 403, {"error": "Can't sign in: the sign-in form was not "
                                                  "posted from this environment's own page"})
            return
        try:
            body = await read_body(scope, receive)
        except BodyTooLarge:
            await _send_json(send, 413, {"error": "Request body too large"})
            return
        fields = parse_qs(body.decode("latin-1"))
        token = (fields.get("token") or [""])[0]
        try:
            # Off the event loop: the token is spent in the store, for every gateway.
            claims = await run_in_threadpool(self._tokens.check, token, "web-login",
                                             self.environment)
        except TokenRefused as refused:
            await _send_json(send, 401, {"error": f"Can't sign in: {refused}"})
            return
        except Exception:  # the store: the token was not spent, so it may be tried again
            _log.warning("could not check a web-login token", exc_info=True,
                         extra={"fields": {"environment": self.environment}})
            await _send_json(send, 503, {"error": "Can't sign in now: try again"})
            return
        role = claims.airflow_role or "Public"
        # 200 with the cookies and a page that moves on to the UI, rather than a redirect:
        # clients that follow redirects (the Amazon provider's MwaaHook, with requests)
        # read `_token` or `session` from the final response.
        headers = [(b"content-type", b"text/html; charset=utf-8"),
                   (b"content-length", str(len(_SIGNED_IN_PAGE)).encode()),
                   (b"cache-control", b"no-store")]
        if role != "Public":  # Public has no Airflow user: nothing to sign in as
            airflow = self._airflow()

            async def sign_in_to_airflow(identity: str, airflow_role: str) -> str | None:
                return await sign_in.sign_in(airflow, identity, airflow_role)

            try:
                session = await self.sessions.start(claims, *_facts(scope),
                                                    sign_in_to_airflow)
            except SessionRefused as refused:
                await _send_json(send, 401, {"error": f"Can't sign in: {refused}"})
                return
            except SignInFailed as failed:
                await _send_json(send, failed.status, {"error": f"Can't sign in: {failed}"})
                return
            except OSError:  # its key is gone: the environment is being deleted
                await _send_json(send, 503, {"error": f"Environment {self.environment} is "
                                                      "not running"})
                return
            except Exception:  # the store, to check the identity
                _log.warning("could not check a web login", exc_info=True,
                             extra={"fields": {"environment": self.environment}})
                await _send_json(send, 503, {"error": "Can't sign in now: the identity "
                                                      "could not be checked; try again"})
                return
            headers += [(b"set-cookie", cookie) for cookie in sign_in.cookies(
                self.environment, session, scope["path"], _secure(scope))]
        _log.info("web login", extra={"fields": {
            "environment": self.environment, "principal": claims.identity,
            "airflow_role": claims.airflow_role}})
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": _SIGNED_IN_PAGE})

    async def _password_page(self, scope: Scope, send: Send, sign_in: AirflowSignIn) -> None:
        """Airflow's own password sign-in, which no one can use here: a browser that isn't
        signed in is sent to the SSO page, which says how to sign in. A signed-in browser
        that Airflow sent here has a Flask session Airflow no longer knows (expired, or
        deleted): its session is signed in to Airflow again, and goes on where it was."""
        presented, signed_in = await self._signed_in(scope, send, sign_in, respond=False)
        if presented is None:
            return
        secure = _secure(scope)
        if signed_in is None or signed_in.session is None or signed_in.from_bearer:
            clear = [] if signed_in is not None else sign_in.cleared_cookies(
                self.environment, secure)
            await _redirect(send, SSO_PATH, clear)
            return
        session = signed_in.session
        try:
            airflow_session = await sign_in.sign_in(self._airflow(), session.identity,
                                                    session.airflow_role or "Public")
        except SignInFailed as failed:
            await _send_json(send, failed.status, {"error": f"Can't sign in: {failed}"})
            return
        except OSError:
            await _send_json(send, 503, {"error": f"Environment {self.environment} is not "
                                                  "running"})
            return
        renewed = self.sessions.renew(session, airflow_session)
        target = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("next")
        await _redirect(send, _local_path(target[0] if target else "/"), sign_in.cookies(
            self.environment, renewed, sign_in.login_path, secure))

    # --- everything else: the environment's Airflow ----------------------------------------

    async def _signed_in(self, scope: Scope, send: Send, sign_in: AirflowSignIn,
                         respond: bool = True) -> tuple[Presented | None, SignedIn | None]:
        """The request's credentials and the session they carry for this environment.
        A session no longer valid: with `respond`, answered (401, its cookies cleared) and
        (None, None) returned; else (credentials, None). (None, None) if it could not be
        checked, answered with 503."""
        presented = take_credentials([(k, v) for k, v in scope["headers"]
                                      if k not in _NOT_FORWARDED], self.environment)
        try:
            return presented, await self.sessions.signed_in(presented, *_facts(scope))
        except SessionRefused as refused:
            if not respond:
                return presented, None
            clear = [] if presented.bearer_session else sign_in.cleared_cookies(
                self.environment, _secure(scope))
            await _send_json(send, 401, {"error": str(refused)},
                             [(b"set-cookie", cookie) for cookie in clear])
        except Exception:  # the store, to review the identity: try again on the next request
            _log.warning("could not check a web session", exc_info=True,
                         extra={"fields": {"environment": self.environment}})
            await _send_json(send, 503, {"error": "The session could not be checked now; "
                                                  "try again"})
        return None, None

    async def _proxy(self, scope: Scope, receive: Receive, send: Send,
                     sign_in: AirflowSignIn) -> None:
        base = self._upstream()
        if base is None:
            await _send_json(send, 503, {"error": f"Environment {self.environment} is not "
                                                  "running"})
            return
        presented, signed_in = await self._signed_in(scope, send, sign_in)
        if presented is None or signed_in is None:
            return
        if (signed_in.session is not None and not signed_in.from_bearer
                and scope["method"] not in _SAFE_METHODS and not from_own_page(scope)):
            # CSRF: browsers send the session cookie with requests from every page of the
            # same host (any port, so any other environment's UI), not only from this one.
            await _send_json(send, 403, {"error": "Refused: a change made with this "
                                                  "environment's session cookie must come "
                                                  "from this environment's own pages"})
            return
        try:
            body = await read_body(scope, receive)
        except BodyTooLarge:
            await _send_json(send, 413, {"error": "Request body too large"})
            return
        credentials = Credentials()
        if signed_in.session is not None:
            try:
                credentials = await sign_in.credentials(self._airflow(base),
                                                        signed_in.session,
                                                        signed_in.from_bearer)
            except OSError:  # its key is gone: the environment is being deleted
                await _send_json(send, 503, {"error": f"Environment {self.environment} is "
                                                      "not running"})
                return
        headers = presented.upstream(credentials.bearer, credentials.cookies)
        target = base + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        try:
            url = URL(target, encoded=True)
        except ValueError:
            await _send_json(send, 400, {"error": "The request target is not a valid path"})
            return
        try:
            async with self._client().request(scope["method"], url, headers=headers,
                                              data=body or None,
                                              allow_redirects=False) as answer:
                await self._answer(answer, base, signed_in.session, sign_in, scope, send)
        except (aiohttp.ClientError, TimeoutError):
            await _send_json(send, 502, {"error": "The environment's Airflow can't be "
                                                  "reached"})

    async def _answer(self, answer: aiohttp.ClientResponse, base: str,
                      session: TokenClaims | None, sign_in: AirflowSignIn, scope: Scope,
                      send: Send) -> None:
        """Airflow's answer as it is, but for the cookies it may not set and redirects to
        its own address (Airflow 2 makes some absolute from the Host it was sent), which
        stay on the front; Airflow signing the user out ends the session."""
        headers = [(k.lower(), _on_front(v, base) if k.lower() == b"location" else v)
                   for k, v in answer.raw_headers
                   if k.lower() not in _NOT_FORWARDED - {b"content-length"}]
        cookies = answer_cookies([v for k, v in headers if k == b"set-cookie"])
        headers = [(k, v) for k, v in headers if k != b"set-cookie"]
        headers += [(b"set-cookie", cookie) for cookie in cookies.passed]
        if sign_in.signed_out(scope["method"], scope["path"], answer.status, cookies.cleared):
            headers += [(b"set-cookie", cookie) for cookie in sign_in.cleared_cookies(
                self.environment, _secure(scope))]
            if session is not None:
                try:
                    await run_in_threadpool(self.sessions.end, session)
                except Exception:  # the store: its cookies are cleared all the same
                    _log.warning("could not record a session's end", exc_info=True,
                                 extra={"fields": {"environment": self.environment}})
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": headers})
        async for chunk in answer.content.iter_chunked(64 * 1024):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    def _airflow(self, base: str | None = None) -> Airflow:
        return Airflow(self.environment, base or self._upstream(), self._client(),
                       self._mint_airflow_token)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Passed through as Airflow sent it: no decompression, no added headers, and no
            # cookie kept from one answer for the next request (someone else's).
            self._session = aiohttp.ClientSession(
                auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding"),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300))
        return self._session


def _facts(scope: Scope) -> tuple[str, bool]:
    """The request's source address and whether it came over TLS, for IAM conditions."""
    client = scope.get("client")
    return (client[0] if client else "127.0.0.1"), _secure(scope)


def _secure(scope: Scope) -> bool:
    return bool(scope.get("scheme") == "https")


def _reserved(path: str) -> bool:
    """Whether `path` (decoded) names airgate's own routes inside environments, however
    its slashes and dot segments are written."""
    segments = [segment for segment in path.split("/") if segment not in ("", ".")]
    return bool(segments) and segments[0].lower() == RESERVED_PREFIX


def _on_front(location: bytes, base: str) -> bytes:
    """A redirect to Airflow's own address (`base`, which browsers can't use: it has no
    session) made relative, so that it stays on the front."""
    own = base.encode("latin-1")
    if location == own or location.startswith(own + b"/"):
        return location[len(own):] or b"/"
    return location


def _local_path(url: str) -> str:
    """The path and query of `url` (Airflow's `next`), to redirect to on this front's own
    origin: never another host, also not one written as `//host` or `/\\host`."""
    if not all(0x20 < ord(c) < 0x7F and c != "\\" for c in url):  # also what urlsplit drops
        return "/"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "/"
    if not parts.path.startswith("/") or parts.path.startswith("//"):
        return "/"
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def _redirect(send: Send, location: str,
                    cookies: list[bytes] | None = None) -> None:
    await send({"type": "http.response.start", "status": 302,
                "headers": [(b"location", location.encode("latin-1")),
                            (b"content-length", b"0"), (b"cache-control", b"no-store"),
                            *((b"set-cookie", cookie) for cookie in cookies or [])]})
    await send({"type": "http.response.body", "body": b""})


async def _send_json(send: Send, status: int, document: dict[str, Any],
                     extra: list[tuple[bytes, bytes]] | None = None) -> None:
    await _send(send, status, json.dumps(document).encode(), b"application/json", extra)


async def _send(send: Send, status: int, body: bytes, content_type: bytes,
                extra: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode()), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})

