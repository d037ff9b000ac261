"""Which credentials a request to one environment's front may carry on to that environment's
Airflow, and which cookies Airflow's answer may set in the browser.

Browsers send a host's cookies to every port of it, so each front receives the cookies of
every other environment's front on the same host, and whatever reaches an environment's
Airflow can be read by the tenant code (plugins) running there. So nothing is passed on by
default:

- airgate's own cookies (`airgate.*`, among them each environment's session cookie) and
  sessions sent as `Authorization: Bearer` never reach Airflow; the front checks this
  environment's session and puts a short-lived Airflow token in their place;
- a `_token` cookie or Bearer token reaches Airflow only if it is a JWT that this
  environment's Airflow issued for itself (its own sign-in page, or its /auth/token);
- airgate's cookie names and `_token` values in Airflow's answers never reach the browser;
  `_token` being cleared (Airflow's sign-out) is passed on and reported, to end the session.

Cookies are read as Starlette (Airflow's framework) reads them: `;`-separated `name=value`
pairs, names and values stripped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http.cookies import _unquote  # what Starlette (so Airflow) unquotes values with

import jwt

from airgate.airflow.tokens import audience
from airgate.airflow.v3 import OWN_KEY_ID
from airgate.web.tokens import session_token_environment

AIRFLOW_COOKIE = "_token"  # where Airflow 3's UI and API look for the signed-in user's JWT
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
    session_cookies: list[str] = field(default_factory=list)  # this environment's
    bearer_session: str | None = None  # an airgate session as `Authorization: Bearer`

    def upstream(self, bearer: str | None = None, cookie: str | None = None,
                 ) -> list[tuple[str, str]]:
        """The headers to send Airflow, with `bearer` as `Authorization: Bearer` and
        `cookie` as the `_token` cookie (replacing any passed on) if given."""
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.headers]
        if bearer is not None:
            headers = [(k, v) for k, v in headers if k != "authorization"]
            headers.append(("authorization", f"Bearer {bearer}"))
        cookies = self.cookies
        if cookie is not None:
            cookies = [c for c in cookies if _cookie_name(c) != AIRFLOW_COOKIE]
            cookies.append(f"{AIRFLOW_COOKIE}={cookie}")
        if cookies:
            headers.append(("cookie", "; ".join(cookies)))
        return headers


def take_credentials(headers: list[tuple[bytes, bytes]], environment: str) -> Presented:
    presented = Presented()
    for name, value in headers:
        if name == b"cookie":
            _take_cookies(value.decode("latin-1"), environment, presented)
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
    return presented


def _take_cookies(header: str, environment: str, presented: Presented) -> None:
    own_session = session_cookie(environment)
    for pair in header.split(";"):
        name = _cookie_name(pair)
        value = _unquote(pair.partition("=")[2].strip()) if "=" in pair else ""
        if name == own_session:
            presented.session_cookies.append(value)
        elif name.startswith(AIRGATE_COOKIE_PREFIX):
            continue
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
    """The Set-Cookie headers of Airflow's answer that may reach the browser, and whether
    Airflow cleared its `_token` (signed the user out, or refused their token)."""

    passed: list[bytes]
    signed_out: bool


def answer_cookies(set_cookies: list[bytes]) -> AnswerCookies:
    passed: list[bytes] = []
    signed_out = False
    for header in set_cookies:
        text = header.decode("latin-1")
        pair, _, attributes = text.partition(";")
        name = _cookie_name(pair)
        if name.startswith(AIRGATE_COOKIE_PREFIX):
            continue
        if name == AIRFLOW_COOKIE:
            if not _clears(pair, attributes):
                continue  # a JWT: never in the browser
            signed_out = True
        passed.append(header)
    return AnswerCookies(passed, signed_out)


def _clears(pair: str, attributes: str) -> bool:
    value = pair.partition("=")[2].strip()
    max_age = [a.partition("=")[2].strip() for a in attributes.split(";")
               if a.strip().lower().startswith("max-age")]
    return value in ("", '""') or "0" in max_age


def set_cookie(name: str, value: str, path: str, secure: bool, clear: bool = False) -> bytes:
    """A Set-Cookie header for one of the front's own cookies: HttpOnly, SameSite=Lax."""
    attributes = [f"{name}={value}", f"Path={path}", "HttpOnly", "SameSite=Lax"]
    if clear:
        attributes.append("Max-Age=0")
    if secure:
        attributes.append("Secure")
    return "; ".join(attributes).encode("latin-1")
