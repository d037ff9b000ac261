"""Web sessions at environments' fronts, against a recording stand-in for Airflow (the real
Airflow and a real browser are in test_environment_front.py, and for Airflow 2 in
test_airflow2_login.py). Environments blue and green run Airflow 3, red Airflow 2:

- a web login sets an opaque session, never an Airflow token, and Airflow gets a fresh
  short-lived token for the session on each request;
- what one environment's front receives of another environment's session, cookie or token
  (browsers send every port of a host the same cookies) never reaches its Airflow, and
  Airflow can neither plant airgate's cookies nor hand the browser a JWT;
- signing out in Airflow ends the session;
- with Airflow 2, the front signs the user in to Airflow and keeps Airflow's Flask session
  inside airgate's: the browser (and MWAA's clients, under `session`) hold only airgate's;
- a session whose identity is deleted or no longer allowed ends at its next check;
- the login form is refused when posted from another site's page (login CSRF);
- forwarded headers decide the source address only from a named proxy.
"""

from __future__ import annotations

import datetime
import http.server
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from jwt.algorithms import OKPAlgorithm

from airgate import config
from airgate.airflow.tokens import SigningKey, audience
from airgate.airflow.v3 import OWN_KEY_ID
from airgate.auth.identities import Identities
from airgate.environments.store import EnvironmentStore
from airgate.mwaa.service import MwaaAuthorizer as Authorizer
from airgate.server import open_state
from airgate.web.fronts import WebFronts
from airgate.web.review import IamReview
from airgate.web.tokens import EnvironmentTokens
from tests.e2e.test_runtime import wait_for
from tests.support import free_port

pytestmark = pytest.mark.e2e

LOGIN = "/pluginsv2/aws_mwaa/login"
ROLE_ARN = "arn:aws:airflow:us-east-1:000000000000:role/{env}/{role}"
SIGNED_OUT = '_token=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Max-Age=0; Path=/; ' \
             'SameSite=lax'


class Airflow(http.server.ThreadingHTTPServer):
    """Stands in for every environment's Airflow: records what reaches it; answers
    /api/v2/auth/logout as Airflow 3 does (clearing `_token`), /cookies with cookies that
    must not reach the browser, and as Airflow 2's web server does (Flask-Session's
    `session` cookie, set again on every answer) POST /airgate/login (a new Flask session
    for a valid assertion, as airgate_airflow2.api_auth does), /logout/ (a redirect, the
    session kept), /trigger (a redirect to its own address) and /flask-cleared (the
    session deleted); anything else with {}."""

    daemon_threads = True

    def __init__(self, own_key: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.own_key = own_key  # blue's Airflow's own signing key
        self.received: list[tuple[str, dict[str, str]]] = []
        self.keys: dict[str, SigningKey] = {}  # airgate's, that Airflow 2 checks assertions with
        self.assertions: list[dict[str, Any]] = []  # the claims of those it accepted
        self.flask_sessions: list[str] = []  # the Flask sessions it started, in order
        self.refuse_sign_in = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def last(self) -> dict[str, str]:
        return self.received[-1][1]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Airflow

    def do_GET(self) -> None:
        self.server.received.append((self.path, {k.lower(): v for k, v in
                                                 self.headers.items()}))
        if self.path in ("/airgate/login", "/logout/", "/flask-cleared", "/trigger") or (
                "session=" in self.headers.get("Cookie", "")):
            self._airflow_2()
            return
        if self.path == "/api/v2/auth/logout":
            self.send_response(307)
            self.send_header("Location", "/auth/login")
            self.send_header("Set-Cookie", SIGNED_OUT)
        else:
            self.send_response(200)
            if self.path == "/cookies":
                token = SigningKey.load_or_create(self.server.own_key, OWN_KEY_ID).mint(
                    subject="admin", role="ADMIN", environment="blue", ttl=60)
                self.send_header("Set-Cookie", f"_token={token}; HttpOnly; Path=/")
                self.send_header("Set-Cookie", "airgate.session.blue=planted; Path=/")
                self.send_header("Set-Cookie", "theme=dark; Path=/")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_POST(self) -> None:
        self.form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)
                                             ).decode())
        self.do_GET()

    def _airflow_2(self) -> None:
        cookie = self.headers.get("Cookie", "")
        sid = cookie.partition("session=")[2].partition(";")[0]
        if self.path == "/airgate/login":
            assertion = self.form.get("assertion", [""])[0]
            environment = jwt.decode(assertion, options={"verify_signature": False})[
                "aud"].rsplit(":", 1)[-1]
            claims = verify(assertion, self.server.keys[environment], environment)
            if self.server.refuse_sign_in or claims.get("purpose") != "web-login":
                self._answer(401)
                return
            self.server.assertions.append(claims)
            sid = f"{uuid.uuid4()}.flask-signature"
            self.server.flask_sessions.append(sid)
            self._answer(302, Location="/home", **{"Set-Cookie": _flask_cookie(sid)})
        elif self.path == "/logout/":
            self._answer(302, Location="/", **{"Set-Cookie": _flask_cookie(sid)})
        elif self.path == "/trigger":  # Airflow 2 makes it absolute from the Host it got
            self._answer(302, Location=f"{self.server.url}/dags/x/grid?run=1",
                         **{"Set-Cookie": _flask_cookie(sid)})
        elif self.path == "/flask-cleared":
            self._answer(200, **{"Set-Cookie": "session=; Expires=Thu, 01 Jan 1970 "
                                               "00:00:00 GMT; Max-Age=0; Path=/"})
        else:
            self._answer(200, **{"Set-Cookie": _flask_cookie(sid)})

    def _answer(self, status: int, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        return None


@dataclass
class World:
    home: Path
    identities: Identities
    tokens: EnvironmentTokens
    fronts: WebFronts
    airflow: Airflow
    hostnames: dict[str, str]
    keys: dict[str, SigningKey]  # airgate's key for each environment
    reviews: list[str] = field(default_factory=list)  # identities reviewed, in order

    def url(self, environment: str, path: str) -> str:
        return f"http://{self.hostnames[environment]}{path}"

    def user(self, name: str, *statements: dict[str, Any]) -> str:
        self.identities.create_user(name)
        self.allow(name, *statements)
        return f"user/{name}"

    def allow(self, name: str, *statements: dict[str, Any]) -> None:
        self.identities.put_inline_policy("user", name, "web", json.dumps(
            {"Version": "2012-10-17", "Statement": list(statements)}))

    def sign_in(self, environment: str, identity: str, role: str, path: str = LOGIN,
                **headers: str) -> httpx.Response:
        token = self.tokens.mint("web-login", environment, identity, role)
        return httpx.post(self.url(environment, path), data={"token": token},
                          headers=headers)

    def session(self, environment: str, identity: str, role: str) -> str:
        answer = self.sign_in(environment, identity, role)
        assert answer.status_code == 200, answer.text
        return answer.cookies[f"airgate.session.{environment}"]

    def get(self, environment: str, path: str, **headers: str) -> httpx.Response:
        return httpx.get(self.url(environment, path), headers=headers)


def web_login(env: str, role: str, **condition: Any) -> dict[str, Any]:
    statement = {"Effect": "Allow", "Action": "airflow:CreateWebLoginToken",
                 "Resource": ROLE_ARN.format(env=env, role=role)}
    if condition:
        statement["Condition"] = condition
    return statement


def verify(token: str, key: SigningKey, environment: str) -> dict[str, Any]:
    public = OKPAlgorithm.from_jwk(key.public_jwk())
    return dict(jwt.decode(token, public, algorithms=["EdDSA"],  # type: ignore[arg-type]
                           audience=audience(environment)))


def set_cookies(answer: httpx.Response) -> list[str]:
    return answer.headers.get_list("set-cookie")


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    worlds: list[tuple[WebFronts, Airflow, Any]] = []

    def make(review_interval: float = 300.0, forwarded_allow_ips: tuple[str, ...] = ()
             ) -> World:
        home = tmp_path / f"home{len(worlds)}"
        settings = config.Settings(home=home)
        db, identities, generations = open_state(settings)
        environments = EnvironmentStore(db, generations)
        airflow = Airflow(home / "blue-own.pem")
        threading.Thread(target=airflow.serve_forever, daemon=True).start()
        specs: dict[str, dict[str, str]] = {"blue": {}, "green": {},  # the default: 3.x
                                            "red": {"AirflowVersion": "2.10.3"}}
        keys = {env: SigningKey.load_or_create(home / f"{env}.pem", "airgate")
                for env in specs}
        airflow.keys = keys
        ports = {env: free_port() for env in keys}
        now = datetime.datetime.now(datetime.UTC)
        for env, spec in specs.items():
            environments.create(env, spec, {}, now, "test")
            environments.transition(env, allowed_from=None, status="AVAILABLE")
        tokens = EnvironmentTokens.load_or_create(home / "web-tokens.key")
        reviews: list[str] = []
        review = IamReview(identities, Authorizer("us-east-1", "000000000000"), environments,
                           "us-east-1")

        def counted(environment: str, identity: str, *rest: Any) -> str | None:
            reviews.append(identity)
            return review(environment, identity, *rest)

        fronts = WebFronts(environments, tokens, lambda record: ports[record.name],
                           lambda record: airflow.url, _no_cli, keys.__getitem__, counted,
                           review_interval=review_interval,
                           forwarded_allow_ips=forwarded_allow_ips)
        hostnames = {}
        for env in keys:
            hostname = fronts.hostname(environments.get(env))
            assert hostname is not None
            hostnames[env] = hostname
        worlds.append((fronts, airflow, db))
        return World(home, identities, tokens, fronts, airflow, hostnames, keys, reviews)

    yield make
    for fronts, airflow, db in worlds:
        fronts.close()
        airflow.shutdown()
        db.close()


def _flask_cookie(sid: str) -> str:
    return (f"session={sid}; Expires=Thu, 03 Dec 2026 08:00:00 GMT; HttpOnly; Path=/; "
            "SameSite=Lax")


def _no_cli(name: str, argv: list[str], timeout: float, identity: str) -> Any:
    raise LookupError(name)


# --- what a login sets, and what reaches Airflow -------------------------------------------

def test_a_login_sets_an_opaque_session_and_airflow_gets_a_fresh_token(
        make_world: Callable[..., World]) -> None:
    world = make_world()
    op = world.user("op", web_login("blue", "Op"))
    answer = world.sign_in("blue", op, "Op")
    assert answer.status_code == 200, answer.text
    session = answer.cookies["airgate.session.blue"]
    assert set_cookies(answer) == [
        f"airgate.session.blue={session}; Path=/; HttpOnly; SameSite=Lax",
        f"_token={session}; Path={LOGIN}; HttpOnly; SameSite=Lax"]
    claims = jwt.decode(session, options={"verify_signature": False})
    assert (claims["aud"], claims["sub"], claims["role"], claims["exp"] - claims["iat"]) == (
        "urn:airgate:session:blue", "user/op", "Op", 12 * 3600)
    with pytest.raises(jwt.InvalidTokenError):  # not something Airflow would accept
        verify(session, world.keys["blue"], "blue")

    # The browser: its session cookie, among others, becomes a fresh `_token` for Airflow.
    page = world.get("blue", "/api/v2/dags", Cookie=f"theme=dark; airgate.session.blue="
                                                    f"{session}; lang=en")
    assert page.status_code == 200
    received = world.airflow.last()
    assert received["host"] == world.airflow.url.removeprefix("http://")  # not the front's
    assert "authorization" not in received
    theme, lang, token = received["cookie"].split("; ")
    assert (theme, lang) == ("theme=dark", "lang=en") and token.startswith("_token=")
    fresh = verify(token.removeprefix("_token="), world.keys["blue"], "blue")
    assert (fresh["sub"], fresh["role"], fresh["exp"] - fresh["iat"]) == ("user/op", "OP", 120)

    # MwaaHook: the login answer's `_token` sent back as a Bearer token.
    assert world.get("blue", "/api/v2/dags", Authorization=f"Bearer {session}"
                     ).status_code == 200
    received = world.airflow.last()
    assert "cookie" not in received
    bearer = received["authorization"].removeprefix("Bearer ")
    assert verify(bearer, world.keys["blue"], "blue")["sub"] == "user/op"


def test_another_environments_credentials_never_reach_airflow(
        make_world: Callable[..., World]) -> None:
    world = make_world()
    op = world.user("op", web_login("blue", "Op"), web_login("green", "Op"))
    blue = world.session("blue", op, "Op")
    green = world.session("green", op, "Op")
    blue_own = SigningKey.load_or_create(world.home / "blue-own.pem", OWN_KEY_ID)
    green_own = SigningKey.load_or_create(world.home / "green-own.pem", OWN_KEY_ID)
    old_style = world.keys["blue"].mint(subject="user/op", role="OP", environment="blue",
                                        ttl=3600)  # what airgate used to put in `_token`
    blue_password = blue_own.mint(subject="admin", role="ADMIN", environment="blue", ttl=60)
    green_password = green_own.mint(subject="admin", role="ADMIN", environment="green",
                                    ttl=60)

    # A browser signed in to both sends green's front all of blue's cookies as well.
    answer = world.get("green", "/api/v2/dags", Cookie=(
        f"airgate.session.blue={blue}; _token={blue_password}; _token={old_style}; "
        f"airgate.session.green={green}; a=1"))
    assert answer.status_code == 200
    cookie = world.airflow.last()["cookie"]
    assert cookie.startswith("a=1; _token=")
    assert verify(cookie.removeprefix("a=1; _token="), world.keys["green"], "green")["sub"] \
        == "user/op"

    # Not signed in to green: blue's session and tokens are taken out, nothing put in.
    world.get("green", "/api/v2/dags", Cookie=f"airgate.session.blue={blue}; _token="
                                             f"{old_style}; _token={blue_password}; a=1")
    assert world.airflow.last().get("cookie") == "a=1"
    # Green's own Airflow sign-in (its password page sets `_token` itself) goes through.
    world.get("green", "/api/v2/dags", Cookie=f"_token={green_password}; _token={blue}")
    assert world.airflow.last().get("cookie") == f"_token={green_password}"
    # Bearer tokens: green's own reaches it; airgate's or blue's never do.
    for bearer in (old_style, blue_password, "not-a-token"):
        world.get("green", "/api/v2/dags", Authorization=f"Bearer {bearer}")
        assert "authorization" not in world.airflow.last()
    world.get("green", "/api/v2/dags", Authorization=f"Bearer {green_password}")
    assert world.airflow.last()["authorization"] == f"Bearer {green_password}"
    # Blue's session as a Bearer token at green: refused, and nothing reaches green.
    seen = len(world.airflow.received)
    refused = world.get("green", "/api/v2/dags", Authorization=f"Bearer {blue}")
    assert (refused.status_code, refused.json()) == (401, {
        "error": "Not signed in to environment green: The token is not a session token for "
                 "environment green"})
    assert len(world.airflow.received) == seen


def test_airflow_can_neither_plant_airgate_cookies_nor_give_the_browser_a_jwt(
        make_world: Callable[..., World]) -> None:
    world = make_world()
    answer = world.get("blue", "/cookies")
    assert answer.status_code == 200
    assert set_cookies(answer) == ["theme=dark; Path=/"]


def test_signing_out_in_airflow_ends_the_session(make_world: Callable[..., World]) -> None:
    world = make_world()
    op = world.user("op", web_login("blue", "Op"))
    session = world.session("blue", op, "Op")
    out = world.get("blue", "/api/v2/auth/logout", Cookie=f"airgate.session.blue={session}")
    assert out.status_code == 307
    assert set_cookies(out) == [
        SIGNED_OUT, "airgate.session.blue=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"]
    for again in ({"Cookie": f"airgate.session.blue={session}"},
                  {"Authorization": f"Bearer {session}"}):
        refused = world.get("blue", "/api/v2/dags", **again)
        assert (refused.status_code, refused.json()) == (401, {
            "error": "Not signed in to environment blue: The session has ended: sign in "
                     "again"})


# --- sessions end when IAM no longer allows them --------------------------------------------

def ended(world: World, identity: str, role: str) -> dict[str, str]:
    return {"error": f"The session has ended: {identity} may no longer sign in to "
                     f"environment blue as {role}; sign in again"}


@pytest.mark.parametrize("change", ["policy-removed", "user-deleted", "role-narrowed",
                                    "user-recreated"])
def test_a_session_ends_when_its_identity_may_no_longer_sign_in(
        make_world: Callable[..., World], change: str) -> None:
    world = make_world(review_interval=0.2)
    op = world.user("op", web_login("blue", "Op"))
    session = world.session("blue", op, "Op")
    browser = {"Cookie": f"airgate.session.blue={session}"}
    assert world.get("blue", "/api/v2/dags", **browser).status_code == 200
    reviews = len(world.reviews)

    if change == "role-narrowed":  # still allowed to sign in, but only as a Viewer
        world.allow("op", web_login("blue", "Viewer"))
    else:
        world.identities.delete_inline_policy("user", "op", "web")
        if change in ("user-deleted", "user-recreated"):
            world.identities.delete_user("op")
        if change == "user-recreated":  # the same name, allowed again: another identity
            world.user("op", web_login("blue", "Op"))

    refused = wait_for(lambda: (answer := world.get("blue", "/api/v2/dags", **browser)
                                ).status_code != 200 and answer, 30, "the session to end", 0.05)
    assert (refused.status_code, refused.json()) == (401, ended(world, op, "Op"))
    assert set_cookies(refused) == [
        "airgate.session.blue=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"]
    assert len(world.reviews) - reviews == 1  # ended at the first check after the change
    mwaa_hook = world.get("blue", "/api/v2/dags", Authorization=f"Bearer {session}")
    assert mwaa_hook.status_code == 401


def test_a_session_still_allowed_goes_on_checked_once_per_interval(
        make_world: Callable[..., World]) -> None:
    world = make_world()  # the default interval: 5 minutes
    op = world.user("op", web_login("blue", "Op"))
    session = world.session("blue", op, "Op")
    assert world.reviews == [op]  # at sign-in
    for _ in range(3):
        assert world.get("blue", "/api/v2/dags",
                         Cookie=f"airgate.session.blue={session}").status_code == 200
    assert world.reviews == [op]
    front = world.fronts.front("blue")
    assert front is not None
    front.sessions.review_interval = 0.0
    world.allow("op", web_login("blue", "Op"), web_login("blue", "Admin"))  # more: fine
    assert world.get("blue", "/api/v2/dags",
                     Cookie=f"airgate.session.blue={session}").status_code == 200
    assert world.reviews == [op, op]


def test_signing_in_needs_the_identity_to_be_allowed_still(
        make_world: Callable[..., World]) -> None:
    world = make_world()
    op = world.user("op", web_login("blue", "Op"))
    token = world.tokens.mint("web-login", "blue", op, "Op")
    world.identities.delete_inline_policy("user", "op", "web")
    refused = httpx.post(world.url("blue", LOGIN), data={"token": token})
    assert (refused.status_code, refused.json()) == (401, {
        "error": "Can't sign in: user/op may no longer sign in to environment blue as Op"})
    assert set_cookies(refused) == []


# --- login CSRF -----------------------------------------------------------------------------

@pytest.mark.parametrize(("header", "value"), [
    ("Origin", "http://evil.example.com"),
    ("Origin", "null"),
    ("Origin", "http://127.0.0.1:1"),  # another port of the same host: another front
    ("Referer", "http://evil.example.com/page"),
])
def test_a_login_posted_from_another_page_is_refused_and_the_token_kept(
        make_world: Callable[..., World], header: str, value: str) -> None:
    world = make_world()
    op = world.user("op", web_login("blue", "Op"))
    token = world.tokens.mint("web-login", "blue", op, "Op")
    refused = httpx.post(world.url("blue", LOGIN), data={"token": token},
                         headers={header: value})
    assert (refused.status_code, refused.json()) == (403, {
        "error": "Can't sign in: the sign-in form was not posted from this environment's "
                 "own page"})
    assert set_cookies(refused) == []
    own = f"http://{world.hostnames['blue']}"
    signed_in = httpx.post(world.url("blue", LOGIN), data={"token": token},
                           headers={header: own + ("/aws_mwaa/aws-console-sso?login=true"
                                                   if header == "Referer" else "")})
    assert signed_in.status_code == 200, signed_in.text  # the same token: not used up


def test_a_change_with_the_session_cookie_must_come_from_the_environments_own_pages(
        make_world: Callable[..., World]) -> None:
    """Browsers send the cookie from every page of the host, another environment's UI on
    another port included: such a page must not make changes as the signed-in user."""
    world = make_world()
    op = world.user("op", web_login("blue", "Op"))
    session = world.session("blue", op, "Op")
    trigger = world.url("blue", "/api/v2/dags/x/dagRuns")
    cookie = {"Cookie": f"airgate.session.blue={session}"}
    seen = len(world.airflow.received)
    for elsewhere in ({"Origin": f"http://{world.hostnames['green']}"},
                      {"Referer": f"http://{world.hostnames['green']}/dags"},
                      {"Origin": "null"}):
        refused = httpx.post(trigger, json={}, headers={**cookie, **elsewhere})
        assert (refused.status_code, refused.json()) == (403, {
            "error": "Refused: a change made with this environment's session cookie must "
                     "come from this environment's own pages"})
    assert len(world.airflow.received) == seen
    own = f"http://{world.hostnames['blue']}"
    for allowed in ({**cookie, "Origin": own}, cookie,  # its own page; not a browser
                    {"Authorization": f"Bearer {session}",
                     "Origin": f"http://{world.hostnames['green']}"}):  # not ambient
        assert httpx.post(trigger, json={}, headers=allowed).status_code == 200
    assert len(world.airflow.received) == seen + 3
    # Reading is not a change: a page elsewhere can't read the answer (same-origin policy).
    assert world.get("blue", "/api/v2/dags", **cookie,
                     Origin=f"http://{world.hostnames['green']}").status_code == 200


# --- forwarded headers at the fronts ----------------------------------------------------------

@pytest.mark.parametrize("trusted", [False, True])
def test_a_front_believes_forwarded_headers_only_from_a_named_proxy(
        make_world: Callable[..., World], trusted: bool) -> None:
    world = make_world(forwarded_allow_ips=("127.0.0.1",) if trusted else ())
    vpn = world.user("vpn", web_login("blue", "Op", IpAddress={"aws:SourceIp": "10.9.9.9"}))
    tls = world.user("tls", web_login("blue", "Op", Bool={"aws:SecureTransport": "true"}))
    for identity in (vpn, tls):
        answer = world.sign_in("blue", identity, "Op", **{"X-Forwarded-For": "10.9.9.9",
                                                         "X-Forwarded-Proto": "https"})
        if trusted:
            assert answer.status_code == 200, answer.text
        else:
            assert (answer.status_code, answer.json()) == (401, {
                "error": f"Can't sign in: {identity} may no longer sign in to environment "
                         "blue as Op"})


# --- Airflow 2: Airflow's Flask session, kept inside airgate's -------------------------------

AIRFLOW_2_LOGIN = "/aws_mwaa/login"


def red_session(world: World, name: str = "op", role: str = "Op") -> tuple[str, str]:
    """A web login to red (Airflow 2): airgate's session, and the Flask session Airflow
    started for it."""
    identity = world.user(name, web_login("red", role))
    answer = world.sign_in("red", identity, role, AIRFLOW_2_LOGIN)
    assert answer.status_code == 200, answer.text
    return answer.cookies["session"], world.airflow.flask_sessions[-1]


def test_an_airflow_2_login_signs_in_to_airflow_and_keeps_its_session_inside(
        make_world: Callable[..., World]) -> None:
    world = make_world()
    op = world.user("op", web_login("red", "Op"))
    answer = world.sign_in("red", op, "Op", AIRFLOW_2_LOGIN)
    assert answer.status_code == 200, answer.text
    session = answer.cookies["session"]
    # Where MWAA's clients read it (`session`), and the environment's own cookie: the same
    # airgate session, never Airflow's.
    assert set_cookies(answer) == [f"airgate.session.red={session}; Path=/; HttpOnly; "
                                   "SameSite=Lax",
                                   f"session={session}; Path=/; HttpOnly; SameSite=Lax"]
    flask_session = world.airflow.flask_sessions[-1]
    assert session != flask_session and flask_session.split(".")[0] not in str(
        jwt.decode(session, options={"verify_signature": False}))
    # Airflow signed the user in from a 30-second assertion, airgate's, for red only.
    (claims,) = world.airflow.assertions
    assert (claims["sub"], claims["role"], claims["purpose"], claims["exp"] - claims["iat"]
            ) == ("user/op", "OP", "web-login", 30)
    login_request = next(h for path, h in world.airflow.received if path == "/airgate/login")
    assert "cookie" not in login_request and "authorization" not in login_request

    # Each request carries Airflow's Flask session, from either cookie; Airflow setting it
    # again never reaches the browser.
    for cookie in (f"theme=dark; session={session}", f"theme=dark; airgate.session.red="
                                                     f"{session}"):
        page = world.get("red", "/home", Cookie=cookie)
        assert (page.status_code, set_cookies(page)) == (200, [])
        assert world.airflow.last()["cookie"] == f"theme=dark; session={flask_session}"
    # A session sent as Bearer (not a browser) gets an API token, as InvokeRestApi's.
    world.get("red", "/api/v1/dags", Authorization=f"Bearer {session}")
    received = world.airflow.last()
    assert "cookie" not in received
    bearer = verify(received["authorization"].removeprefix("Bearer "), world.keys["red"],
                    "red")
    assert (bearer["sub"], bearer["role"], bearer.get("purpose")) == ("user/op", "OP", None)


def test_the_sso_page_posts_to_the_versions_own_login_path(
        make_world: Callable[..., World]) -> None:
    world = make_world()
    for environment, action in (("red", AIRFLOW_2_LOGIN), ("blue", LOGIN)):
        page = world.get(environment, "/aws_mwaa/aws-console-sso?login=true")
        assert page.status_code == 200 and f'action="{action}"' in page.text


def test_airflow_2s_sign_in_route_is_never_reached_through_a_front(
        make_world: Callable[..., World]) -> None:
    world = make_world()
    session, _ = red_session(world)
    seen = len(world.airflow.received)
    for environment in ("red", "blue"):
        for path in ("/airgate/login", "//airgate/login", "/airgate/%6Cogin",
                     "/./airgate/login/"):
            answer = httpx.post(world.url(environment, path), data={"assertion": "x"},
                                headers={"Cookie": f"session={session}"})
            assert (answer.status_code, answer.json()) == (404, {"error": "Not found"})
    assert len(world.airflow.received) == seen


def test_airflow_2_and_3_fronts_strip_each_others_sessions(
        make_world: Callable[..., World]) -> None:
    world = make_world()
    op = world.user("op", web_login("red", "Op"), web_login("blue", "Op"))
    red = world.sign_in("red", op, "Op", AIRFLOW_2_LOGIN).cookies["session"]
    flask_session = world.airflow.flask_sessions[-1]
    blue = world.session("blue", op, "Op")

    # A browser signed in to both: blue (3.x) gets its own token, nothing of red's.
    world.get("blue", "/api/v2/dags", Cookie=(
        f"session={red}; airgate.session.red={red}; session={flask_session}; "
        f"airgate.session.blue={blue}; a=1"))
    cookie = world.airflow.last()["cookie"]
    assert cookie.startswith("a=1; _token=") and "session" not in cookie
    # Red (2.x) gets its Flask session, nothing of blue's (nor a raw Flask session).
    world.get("red", "/home", Cookie=(
        f"airgate.session.blue={blue}; _token={blue}; session={flask_session}; "
        f"session={red}; a=1"))
    assert world.airflow.last()["cookie"] == f"a=1; session={flask_session}"
    # Not signed in to red: the raw Flask session, as a browser would never have it, and
    # blue's session under `session` are taken out; nothing put in.
    world.get("red", "/home", Cookie=f"session={flask_session}; session={blue}; a=1")
    assert world.airflow.last()["cookie"] == "a=1"
    # Green's front (3.x, not signed in) passes on neither.
    world.get("green", "/api/v2/dags", Cookie=f"session={red}; session={flask_session}; a=1")
    assert world.airflow.last()["cookie"] == "a=1"


@pytest.mark.parametrize("how", ["logout", "flask-cleared"])
def test_signing_out_of_airflow_2_ends_the_session(make_world: Callable[..., World],
                                                   how: str) -> None:
    world = make_world()
    session, _ = red_session(world)
    if how == "logout":  # Flask-AppBuilder: a redirect, the Flask session kept
        out = httpx.post(world.url("red", "/logout/"), data={"csrf_token": "t"},
                         headers={"Cookie": f"session={session}"})
        assert (out.status_code, out.headers.get("location")) == (302, "/")
    else:
        out = world.get("red", "/flask-cleared", Cookie=f"session={session}")
        assert out.status_code == 200
    assert set_cookies(out) == [
        "airgate.session.red=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0",
        "session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"]
    seen = len(world.airflow.received)
    for again in ({"Cookie": f"session={session}"},
                  {"Cookie": f"airgate.session.red={session}"},
                  {"Authorization": f"Bearer {session}"}):
        refused = world.get("red", "/home", **again)
        assert (refused.status_code, refused.json()) == (401, {
            "error": "Not signed in to environment red: The session has ended: sign in "
                     "again"})
    assert len(world.airflow.received) == seen


def test_airflow_2s_password_page_is_never_shown(make_world: Callable[..., World]) -> None:
    world = make_world()
    seen = len(world.airflow.received)
    for path in ("/login/", "/login/?next=%2Fhome", "/login"):
        answer = world.get("red", path)
        assert (answer.status_code, answer.headers.get("location")) == (
            302, "/aws_mwaa/aws-console-sso")
    posted = httpx.post(world.url("red", "/login/"), data={"username": "admin",
                                                          "password": "admin"})
    assert (posted.status_code, posted.headers.get("location")) == (
        302, "/aws_mwaa/aws-console-sso")
    assert len(world.airflow.received) == seen
    # On Airflow 3 the front has no such page of its own.
    assert world.get("blue", "/login/").status_code == 200
    assert world.airflow.received[-1][0] == "/login/"


def test_a_signed_in_browser_sent_to_login_is_signed_in_to_airflow_again(
        make_world: Callable[..., World]) -> None:
    """Airflow sends a browser to /login/ when it no longer knows its Flask session
    (expired, deleted): the same airgate session gets a new one and goes on."""
    world = make_world()
    session, first = red_session(world)
    claims = world.tokens.check(session, "session", "red")
    again = world.get("red", "/login/?next=http%3A%2F%2F127.0.0.1%3A1%2Fdags%2Fx%2Fgrid"
                             "%3Ftab%3Dgraph", Cookie=f"session={session}")
    assert (again.status_code, again.headers.get("location")) == (302, "/dags/x/grid?tab=graph")
    renewed = again.cookies["session"]
    assert set_cookies(again) == [
        f"airgate.session.red={renewed}; Path=/; HttpOnly; SameSite=Lax",
        f"session={renewed}; Path=/; HttpOnly; SameSite=Lax"]
    second = world.airflow.flask_sessions[-1]
    assert second != first
    renewed_claims = world.tokens.check(renewed, "session", "red")
    assert (renewed_claims.identity, renewed_claims.airflow_role, renewed_claims.expires_at,
            renewed_claims.airflow_session) == (claims.identity, claims.airflow_role,
                                                claims.expires_at, second)
    world.get("red", "/home", Cookie=f"session={renewed}")
    assert world.airflow.last()["cookie"] == f"session={second}"


def test_an_airflow_2_login_airflow_refuses_starts_no_session(
        make_world: Callable[..., World]) -> None:
    world = make_world()
    op = world.user("op", web_login("red", "Op"))
    world.airflow.refuse_sign_in = True
    refused = world.sign_in("red", op, "Op", AIRFLOW_2_LOGIN)
    assert (refused.status_code, refused.json()) == (401, {
        "error": "Can't sign in: the environment's Airflow refused to sign user/op in"})
    assert set_cookies(refused) == []


def test_airflow_2s_redirects_to_its_own_address_stay_on_the_front(
        make_world: Callable[..., World]) -> None:
    world = make_world()
    session, _ = red_session(world)
    answer = httpx.post(world.url("red", "/trigger"), headers={"Cookie": f"session={session}"})
    assert (answer.status_code, answer.headers.get("location")) == (302, "/dags/x/grid?run=1")


def test_an_airflow_2_session_ends_when_its_identity_may_no_longer_sign_in(
        make_world: Callable[..., World]) -> None:
    world = make_world(review_interval=0.2)
    session, _ = red_session(world)
    assert world.get("red", "/home", Cookie=f"session={session}").status_code == 200
    world.identities.delete_inline_policy("user", "op", "web")
    refused = wait_for(lambda: (answer := world.get("red", "/home", Cookie=f"session={session}")
                                ).status_code != 200 and answer, 30, "the session to end", 0.05)
    assert (refused.status_code, refused.json()) == (401, {
        "error": "The session has ended: user/op may no longer sign in to environment red as "
                 "Op; sign in again"})
    assert set_cookies(refused) == [
        "airgate.session.red=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0",
        "session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"]
