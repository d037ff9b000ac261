"""How a front signs a web session in to its environment's Airflow: one object per Airflow
major version, chosen by the environment's AirflowVersion (`sign_in_for`, through
airgate.airflow.major.major_of). Everything else a front does is the same for both: the
SSO page, the one-time web-login token, login CSRF, the IAM checks, the session cookie
`airgate.session.<ENV>`, and taking every other environment's credentials out.

- Airflow 3 trusts airgate's JWTs: nothing more to do at sign-in. The session is also set
  as `_token` on the login path, where MwaaHook reads it. Each request gets a fresh
  2-minute JWT as `_token` (as `Authorization: Bearer` for a session sent that way).
  Airflow clearing `_token` is a sign-out.
- Airflow 2's UI knows only its Flask session. At sign-in its web server signs the user in
  (`POST /airgate/login`, a 30-second assertion signed with airgate's key for the
  environment, checked by airgate_airflow2.api_auth) and answers with Flask's `session`
  cookie, which the airgate session keeps, sealed. The session is also set as `session`,
  where MWAA's Airflow 2 clients read it and MwaaHook's cookie jar sends it back. Each
  request gets `Cookie: session=<the Flask session>` (a session sent as Bearer gets a
  JWT, which the API auth backend takes for /api/v1). A redirect from `/logout/` is a
  sign-out. Flask-AppBuilder's password page, `/login/`, is never shown: no user has a
  password.

The browser never holds what Airflow accepts: cookies ignore ports, so every front of the
host (and every environment's Airflow behind it, where tenant code runs) would see it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
from starlette.concurrency import run_in_threadpool

from airgate.airflow.major import major_of
from airgate.web.credentials import (
    AIRFLOW_COOKIE,
    FLASK_SESSION_COOKIE,
    session_cookie,
    set_cookie,
)
from airgate.web.tokens import TokenClaims

# (IAM identity, Airflow role, seconds valid, purpose) -> a JWT signed with airgate's key
# for the environment, which its Airflow accepts (purpose None: for its API); None for the
# Public role, which has no Airflow user.
AirflowTokenMinter = Callable[[str, str, float, str | None], str | None]

API_TOKEN_TTL = 120  # what a front sends Airflow in a session's place, fresh each time
ASSERTION_TTL = 30  # Airflow 2's sign-in assertion, used at once
SIGN_IN_PURPOSE = "web-login"  # airgate_airflow2.api_auth.LOGIN_PURPOSE
SIGN_IN_TIMEOUT = 30.0
# Airflow 2's sign-in route (airgate_airflow2.api_auth): for airgate only, on the web
# server's own port; no front ever passes a request for it on.
AIRFLOW_2_SIGN_IN_PATH = "/airgate/login"


@dataclass(frozen=True, slots=True)
class Airflow:
    """One environment's Airflow, as its front reaches it."""

    environment: str
    base: str | None  # its web server (http://127.0.0.1:PORT); None when it isn't running
    client: aiohttp.ClientSession
    mint: AirflowTokenMinter

    async def token(self, identity: str, airflow_role: str, ttl: float,
                    purpose: str | None = None) -> str | None:
        """Raises OSError when the environment's key is gone (it is being deleted)."""
        return await run_in_threadpool(self.mint, identity, airflow_role, ttl, purpose)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What Airflow gets in place of a session: a Bearer token, and cookies that replace any
    of the same name."""

    bearer: str | None = None
    cookies: dict[str, str] = field(default_factory=dict)


class SignInFailed(Exception):
    """Airflow could not sign a session in; the message is safe to show the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class AirflowSignIn(Protocol):
    @property
    def login_path(self) -> str:
        """Where this version's SSO page posts the web-login token (MWAA's path)."""

    @property
    def password_pages(self) -> frozenset[str]:
        """Paths of Airflow's own password sign-in, which the front answers itself."""

    async def sign_in(self, airflow: Airflow, identity: str, airflow_role: str) -> str | None:
        """Sign a new session in to Airflow: what the session keeps of it (Airflow 2's Flask
        session), or None. SignInFailed if Airflow can't or won't; OSError if the
        environment's key is gone."""

    def cookies(self, environment: str, session: str, login_path: str,
                secure: bool) -> list[bytes]:
        """The Set-Cookie headers that give the browser a new session."""

    def cleared_cookies(self, environment: str, secure: bool) -> list[bytes]:
        """The Set-Cookie headers that take an ended session from the browser."""

    async def credentials(self, airflow: Airflow, session: TokenClaims,
                          from_bearer: bool) -> Credentials:
        """What Airflow gets for a request of `session`; OSError if the environment's key is
        gone."""

    def signed_out(self, method: str, path: str, status: int,
                   cleared: frozenset[str]) -> bool:
        """Whether Airflow's answer (its status, and which of its sign-in cookies it
        cleared) signs the user out."""


class Airflow3SignIn:
    login_path = "/pluginsv2/aws_mwaa/login"
    password_pages: frozenset[str] = frozenset()

    async def sign_in(self, airflow: Airflow, identity: str, airflow_role: str) -> str | None:
        return None

    def cookies(self, environment: str, session: str, login_path: str,
                secure: bool) -> list[bytes]:
        return [set_cookie(session_cookie(environment), session, "/", secure),
                # Where MwaaHook looks; sent back by browsers only to this path.
                set_cookie(AIRFLOW_COOKIE, session, login_path, secure)]

    def cleared_cookies(self, environment: str, secure: bool) -> list[bytes]:
        return [set_cookie(session_cookie(environment), "", "/", secure, clear=True)]

    async def credentials(self, airflow: Airflow, session: TokenClaims,
                          from_bearer: bool) -> Credentials:
        token = await airflow.token(session.identity, session.airflow_role or "Public",
                                    API_TOKEN_TTL)
        if token is None:
            return Credentials()
        return Credentials(bearer=token) if from_bearer else Credentials(
            cookies={AIRFLOW_COOKIE: token})

    def signed_out(self, method: str, path: str, status: int,
                   cleared: frozenset[str]) -> bool:
        return AIRFLOW_COOKIE in cleared


class Airflow2SignIn:
    login_path = "/aws_mwaa/login"
    password_pages = frozenset({"/login", "/login/"})
    logout_paths = frozenset({"/logout", "/logout/"})

    async def sign_in(self, airflow: Airflow, identity: str, airflow_role: str) -> str | None:
        assertion = await airflow.token(identity, airflow_role, ASSERTION_TTL,
                                        SIGN_IN_PURPOSE)
        if assertion is None:
            return None
        if airflow.base is None:
            raise SignInFailed(503, f"environment {airflow.environment} is not running")
        try:
            # No cookies in (the front's client keeps none), Flask's session cookie out.
            async with airflow.client.post(
                    airflow.base + AIRFLOW_2_SIGN_IN_PATH, data={"assertion": assertion},
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=SIGN_IN_TIMEOUT)) as answer:
                await answer.read()
                status = answer.status
                morsel = answer.cookies.get(FLASK_SESSION_COOKIE)
        except (aiohttp.ClientError, TimeoutError):
            raise SignInFailed(502, "the environment's Airflow can't be reached") from None
        if status == 401:  # why is in Airflow's log (e.g. the user deactivated there)
            raise SignInFailed(401, f"the environment's Airflow refused to sign {identity} "
                                    "in")
        if not 200 <= status < 400 or morsel is None or not morsel.value:
            raise SignInFailed(502, f"the environment's Airflow answered the sign-in with "
                                    f"{status} and no session")
        return morsel.value

    def cookies(self, environment: str, session: str, login_path: str,
                secure: bool) -> list[bytes]:
        return [set_cookie(session_cookie(environment), session, "/", secure),
                set_cookie(FLASK_SESSION_COOKIE, session, "/", secure)]

    def cleared_cookies(self, environment: str, secure: bool) -> list[bytes]:
        return [set_cookie(session_cookie(environment), "", "/", secure, clear=True),
                set_cookie(FLASK_SESSION_COOKIE, "", "/", secure, clear=True)]

    async def credentials(self, airflow: Airflow, session: TokenClaims,
                          from_bearer: bool) -> Credentials:
        if from_bearer:  # not a browser: the API with a token, as InvokeRestApi calls it
            return Credentials(bearer=await airflow.token(
                session.identity, session.airflow_role or "Public", API_TOKEN_TTL))
        if session.airflow_session is None:
            # A session from before the environment ran Airflow 2: Airflow sends the
            # browser to /login/, where the front signs it in to Airflow again.
            return Credentials()
        return Credentials(cookies={FLASK_SESSION_COOKIE: session.airflow_session})

    def signed_out(self, method: str, path: str, status: int,
                   cleared: frozenset[str]) -> bool:
        # Flask-AppBuilder's sign-out keeps the Flask session (without its user) and
        # redirects; Flask deletes the cookie only when the session is emptied.
        return (path in self.logout_paths and 300 <= status < 400) or (
            FLASK_SESSION_COOKIE in cleared)


AIRFLOW_3_SIGN_IN = Airflow3SignIn()
AIRFLOW_2_SIGN_IN = Airflow2SignIn()
_SIGN_INS: dict[int, AirflowSignIn] = {2: AIRFLOW_2_SIGN_IN, 3: AIRFLOW_3_SIGN_IN}


def sign_in_for(airflow_version: str) -> AirflowSignIn:
    """How a session signs in to an environment running Airflow `airflow_version`."""
    return _SIGN_INS[major_of(airflow_version).number]
