"""Which credentials a request to one environment's front may carry on to that environment's
Airflow, and which cookies Airflow's answer may set in the browser.

Browsers send a host's cookies to every port of it, so each front receives the cookies of
every other environment's front on the same host, and whatever reaches an environment's
Airflow can be read by the tenant code (plugins) running there. So nothing is passed on by
default:

- airgate's own cookies (`airgate.*`, among them each environment's session cookie), a
  `session` cookie (MWAA's name for an Airflow 2 web session: at airgate, the same airgate
  session as `airgate.session.<ENV>`) and sessions sent as `Authorization: Bearer` never
  reach Airflow; the front checks this environment's session and puts what the environment's
  Airflow accepts in its place (airgate/web/signin.py);
- a `_token` cookie or Bearer token reaches Airflow only if it is a JWT that this
  environment's Airflow issued for itself (its own sign-in page, or its /auth/token);
- airgate's cookie names, `session` and `_token` values in Airflow's answers never reach the
  browser; `_token` being cleared (Airflow 3's sign-out) is passed on, and which of Airflow's
  own cookies were cleared is reported, to end the session.

Cookies are read as Starlette (Airflow's framework) reads them: `;`-separated `name=value`
pairs, names and values stripped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookies import _unquote  # what Starlette (so Airflow) unquotes values with

import jwt

from airgate.airflow.tokens import audience
from airgate.airflow.v3 import OWN_KEY_ID
from airgate.web.tokens import session_token_environment

AIRFLOW_COOKIE = "_token"  # where Airflow 3's UI and API look for the signed-in user's JWT
# Airflow 2's Flask session cookie, and where MWAA's Airflow 2 clients read a web login.
FLASK_SESSION_COOKIE = "session"
AIRGATE_COOKIE_PREFIX = "airgate."


def session_cookie(environment: str) -> str:
    """The cookie holding a browser's session for one environment (one per environment, so
    that a browser can be signed in to several at once)."""
    return f"{AIRGATE_COOKIE_PREFIX}session.{environment}"


@dataclass
class Presented:
    """A request's headers with every credential taken out, and what was taken."""

    headers: list[tuple[bytes, bytes]] = field(default_factory=list)  # except Cookie
    cookies: list[str] = field(default_factory=list)  # `name=value` pairs to pass on
    # This environment's sessions: from its own cookie first, then from `session`.
    session_cookies: list[str] = field(default_factory=list)
    bearer_session: str | None = None  # an airgate session as `Authorization: Bearer`

    def upstream(self, bearer: str | None = None, cookies: Mapping[str, str] | None = None,
                 ) -> list[tuple[str, str]]:
        """The headers to send Airflow, with `bearer` as `Authorization: Bearer` and
        `cookies` (name: value) replacing any cookie of the same name passed on."""
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.headers]
        if bearer is not None:
            headers = [(k, v) for k, v in headers if k != "authorization"]
            headers.append(("authorization", f"Bearer {bearer}"))
        passed = self.cookies
        if cookies:
            passed = [c for c in passed if _cookie_name(c) not in cookies]
            passed += [f"{name}={value}" for name, value in cookies.items()]
        if passed:
            headers.append(("cookie", "; ".join(passed)))
        return headers


def take_credentials(headers: list[tuple[bytes, bytes]], environment: str) -> Presented:
    presented = Presented()
    shared: list[str] = []  # sessions for this environment found under `session`
    for name, value in headers:
        if name == b"cookie":
            _take_cookies(value.decode("latin-1"), environment, presented, shared)
        elif name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer":
                presented.headers.append((name, value))
            elif session_token_environment(token) is not None:
                presented.bearer_session = presented.bearer_session or token
            elif issued_by_airflow_of(token, environment):
                presented.headers.append((name, value))
        else:
            presented.headers.append((name, value))
    presented.session_cookies += shared
    return presented


def _take_cookies(header: str, environment: str, presented: Presented,
                  shared: list[str]) -> None:
    own_session = session_cookie(environment)
    for pair in header.split(";"):
        name = _cookie_name(pair)
        value = _unquote(pair.partition("=")[2].strip()) if "=" in pair else ""
        if name == own_session:
            presented.session_cookies.append(value)
        elif name.startswith(AIRGATE_COOKIE_PREFIX):
            continue
        elif name == FLASK_SESSION_COOKIE:
            # Another environment's session, or a raw Flask session (which no front ever
            # hands out): never passed on.
            if session_token_environment(value) == environment:
                shared.append(value)
        elif name == AIRFLOW_COOKIE:
            if issued_by_airflow_of(value, environment):
                presented.cookies.append(pair.strip())
        elif pair.strip():
            presented.cookies.append(pair.strip())


def issued_by_airflow_of(token: str, environment: str) -> bool:
    """Whether `token` is a JWT this environment's Airflow issued for itself, signed with
    its own key rather than airgate's (checked unverified: Airflow verifies it)."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return False
    own = audience(environment)
    return header.get("kid") == OWN_KEY_ID and claims.get("aud") in (own, [own])


def _cookie_name(pair: str) -> str:
    return pair.partition("=")[0].strip() if "=" in pair else ""


@dataclass(frozen=True, slots=True)
class AnswerCookies:
    """The Set-Cookie headers of Airflow's answer that may reach the browser, and which of
    Airflow's own sign-in cookies (`_token`, `session`) it cleared: signed the user out, or
    refused what it was sent."""

    passed: list[bytes]
    cleared: frozenset[str]


def answer_cookies(set_cookies: list[bytes]) -> AnswerCookies:
    passed: list[bytes] = []
    cleared: set[str] = set()
    for header in set_cookies:
        text = header.decode("latin-1")
        pair, _, attributes = text.partition(";")
        name = _cookie_name(pair)
        if name.startswith(AIRGATE_COOKIE_PREFIX):
            continue
        if name in (AIRFLOW_COOKIE, FLASK_SESSION_COOKIE):
            clears = _clears(pair, attributes)
            if clears:
                cleared.add(name)
            # A JWT, or a Flask session (kept inside airgate's session): never in the
            # browser. Clearing `_token` is passed on; the browser's `session` is airgate's.
            if name == FLASK_SESSION_COOKIE or not clears:
                continue
        passed.append(header)
    return AnswerCookies(passed, frozenset(cleared))


def _clears(pair: str, attributes: str) -> bool:
    """Whether a Set-Cookie deletes its cookie: no value, `Max-Age=0`, or an expiry in
    1970 (how Flask deletes one)."""
    value = pair.partition("=")[2].strip()
    named = [a.strip().partition("=") for a in attributes.split(";")]
    max_age = [v.strip() for k, _, v in named if k.strip().lower() == "max-age"]
    expires = [v.strip() for k, _, v in named if k.strip().lower() == "expires"]
    return (value in ("", '""') or "0" in max_age
            or any("1970" in date for date in expires))


def set_cookie(name: str, value: str, path: str, secure: bool, clear: bool = False) -> bytes:
    """A Set-Cookie header for one of the front's own cookies: HttpOnly, SameSite=Lax."""
    attributes = [f"{name}={value}", f"Path={path}", "HttpOnly", "SameSite=Lax"]
    if clear:
        attributes.append("Max-Age=0")
    if secure:
        attributes.append("Secure")
    return "; ".join(attributes).encode("latin-1")
