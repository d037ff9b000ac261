"""What a front passes on to an environment's Airflow, read as Airflow reads it (Starlette's
cookie parser and `Authorization` header): never an airgate session or cookie, never a
`_token` or Bearer token but one that environment's Airflow issued itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.requests import cookie_parser

from airgate.airflow.tokens import SigningKey
from airgate.airflow.v3 import OWN_KEY_ID
from airgate.web.credentials import AnswerCookies, answer_cookies, take_credentials
from airgate.web.tokens import EnvironmentTokens


@pytest.fixture
def tokens(tmp_path: Path) -> dict[str, str]:
    sessions = EnvironmentTokens.load_or_create(tmp_path / "web.key")
    own = SigningKey.load_or_create(tmp_path / "own.pem", OWN_KEY_ID)
    airgate = SigningKey.load_or_create(tmp_path / "airgate.pem", "airgate")
    return {
        "blue-session": sessions.mint("session", "blue", "user/a", "Op"),
        "green-session": sessions.mint("session", "green", "user/a", "Op"),
        "green-own": own.mint(subject="admin", role="ADMIN", environment="green", ttl=60),
        "blue-own": own.mint(subject="admin", role="ADMIN", environment="blue", ttl=60),
        "airgate-minted": airgate.mint(subject="user/a", role="OP", environment="green",
                                       ttl=60),
    }


def airflow_view(headers: list[tuple[str, str]]) -> tuple[dict[str, str], str | None]:
    """The cookies and Authorization header as Airflow (Starlette) reads them; every
    cookie pair is checked too, since plugins may read the raw header."""
    cookies = [v for k, v in headers if k == "cookie"]
    assert len(cookies) <= 1
    pairs = [pair.strip() for pair in (cookies or [""])[0].split(";") if pair.strip()]
    parsed = cookie_parser(cookies[0]) if cookies else {}
    assert len(pairs) == len(parsed), f"a cookie name sent twice: {pairs}"
    authorization = [v for k, v in headers if k == "authorization"]
    assert len(authorization) <= 1
    return parsed, (authorization or [None])[0]


@pytest.mark.parametrize("layout", [
    "{n}={v}", " {n} = {v} ", '{n}="{v}"', "{n}={v};", ";{n}={v}"])
def test_only_the_environments_own_tokens_reach_it(tokens: dict[str, str],
                                                   layout: str) -> None:
    pairs = [("airgate.session.green", tokens["green-session"]),
             ("airgate.session.blue", tokens["blue-session"]),
             ("airgate.anything", "x"), ("_token", tokens["blue-own"]),
             ("_token", tokens["airgate-minted"]), ("_token", tokens["blue-session"]),
             ("theme", "dark")]
    header = ";".join(layout.format(n=name, v=value) for name, value in pairs)
    presented = take_credentials([(b"host", b"h"), (b"cookie", header.encode()),
                                  (b"cookie", f"_token={tokens['green-own']}".encode())],
                                 "green")
    assert presented.session_cookies == [tokens["green-session"]]
    cookies, authorization = airflow_view(presented.upstream())
    assert cookies == {"theme": "dark", "_token": tokens["green-own"]}
    assert authorization is None


@pytest.mark.parametrize(("scheme", "token", "passed"), [
    ("Bearer", "green-own", True), ("bearer", "green-own", True),
    ("Bearer", "blue-own", False), ("Bearer", "airgate-minted", False),
    ("Bearer", "blue-session", False), ("Bearer", "green-session", False),
])
def test_only_the_environments_own_bearer_tokens_reach_it(tokens: dict[str, str],
                                                          scheme: str, token: str,
                                                          passed: bool) -> None:
    value = f"{scheme} {tokens[token]}".encode()
    presented = take_credentials([(b"authorization", value)], "green")
    _, authorization = airflow_view(presented.upstream())
    assert authorization == (value.decode() if passed else None)
    assert presented.bearer_session == (tokens[token] if token.endswith("session") else None)


def test_the_fresh_token_replaces_whatever_was_passed_on(tokens: dict[str, str]) -> None:
    presented = take_credentials([(b"cookie", f"_token={tokens['green-own']}; a=1".encode()),
                                  (b"authorization",
                                   f"Bearer {tokens['green-own']}".encode())], "green")
    cookies, authorization = airflow_view(presented.upstream(bearer="fresh",
                                                             cookies={"_token": "fresh"}))
    assert cookies == {"a": "1", "_token": "fresh"}
    assert authorization == "Bearer fresh"


def test_airflow_may_clear_its_token_but_not_set_one_or_airgates_cookies() -> None:
    cleared = b'_token=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/'
    answer = answer_cookies([b"_token=eyJx.eyJy.z; Path=/; HttpOnly",
                             b"airgate.session.green=planted; Path=/", b"theme=dark",
                             cleared])
    assert (answer.passed, answer.cleared) == ([b"theme=dark", cleared], {"_token"})
    assert answer_cookies([b"theme=dark"]).cleared == frozenset()


def test_a_session_cookie_is_this_environments_session_or_nothing(
        tokens: dict[str, str]) -> None:
    """`session` is where MWAA's Airflow 2 clients keep a web login: at a front it counts
    only as this environment's airgate session (after its own cookie), and never reaches
    Airflow as it came, whatever it holds."""
    raw_flask = "0b5e2ad0-5a4c-4a83-9a57-5f0c1b1ad6b2.Zx1y2z3w4v5u6t7s8r9q0p"
    header = (f"session={tokens['blue-session']}; session={raw_flask}; "
              f"session={tokens['green-session']}; theme=dark; "
              f"airgate.session.green={tokens['green-session']}x")
    presented = take_credentials([(b"cookie", header.encode())], "green")
    assert presented.session_cookies == [tokens["green-session"] + "x",
                                         tokens["green-session"]]
    cookies, _ = airflow_view(presented.upstream())
    assert cookies == {"theme": "dark"}
    cookies, _ = airflow_view(presented.upstream(cookies={"session": "flask-sid.sig"}))
    assert cookies == {"theme": "dark", "session": "flask-sid.sig"}


def test_airflow_2s_session_cookie_never_reaches_the_browser() -> None:
    issued = (b"session=0b5e2ad0.Zx1y; Expires=Wed, 02 Dec 2026 20:00:00 GMT; HttpOnly; "
              b"Path=/; SameSite=Lax")
    deleted = b"session=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/"
    flask_deleted = b"session=; Expires=Thu, 01-Jan-1970 00:00:00 GMT; Path=/"
    assert answer_cookies([issued, b"theme=dark"]) == AnswerCookies([b"theme=dark"],
                                                                      frozenset())
    for clearing in (deleted, flask_deleted):
        assert answer_cookies([issued, clearing]) == AnswerCookies([], frozenset({"session"}))
