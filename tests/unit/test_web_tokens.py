"""CLI and web-login tokens: 60 seconds, one environment, one purpose, web login once."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from airgate.web.tokens import (
    SESSION_TTL,
    TOKEN_TTL,
    EnvironmentTokens,
    TokenRefused,
    session_token_environment,
)

NOW = 1_800_000_000.0


@pytest.fixture
def tokens(tmp_path: Path) -> EnvironmentTokens:
    return EnvironmentTokens.load_or_create(tmp_path / "web-tokens.key")


def test_a_cli_token_names_the_caller_until_it_expires(tokens: EnvironmentTokens) -> None:
    token = tokens.mint("cli", "prod", "user/alice", now=NOW)
    for _ in range(2):  # CLI tokens may be used for several commands within their minute
        assert tokens.check(token, "cli", "prod", now=NOW + 59).identity == "user/alice"
    with pytest.raises(TokenRefused, match="expired"):
        tokens.check(token, "cli", "prod", now=NOW + TOKEN_TTL)


def test_a_web_login_token_works_once_and_carries_the_role(tokens: EnvironmentTokens) -> None:
    token = tokens.mint("web-login", "prod", "assumed-role/Ops/s1", "Op", now=NOW)
    claims = tokens.check(token, "web-login", "prod", now=NOW + 1)
    assert (claims.identity, claims.airflow_role) == ("assumed-role/Ops/s1", "Op")
    with pytest.raises(TokenRefused, match="already been used"):
        tokens.check(token, "web-login", "prod", now=NOW + 2)


@pytest.mark.parametrize(("purpose", "environment"), [("cli", "staging"),
                                                      ("web-login", "prod")])
def test_a_token_is_refused_for_another_environment_or_purpose(
        tokens: EnvironmentTokens, purpose: str, environment: str) -> None:
    token = tokens.mint("cli", "prod", "user/alice", now=NOW)
    with pytest.raises(TokenRefused, match="is not a"):
        tokens.check(token, purpose, environment, now=NOW)  # type: ignore[arg-type]


def test_forged_and_malformed_tokens_are_refused(tokens: EnvironmentTokens,
                                                 tmp_path: Path) -> None:
    other = EnvironmentTokens.load_or_create(tmp_path / "other.key")
    forged = [other.mint("cli", "prod", "user/alice", now=NOW), "not-a-token", "",
              jwt.encode({"sub": "user/alice", "aud": "urn:airgate:cli:prod", "iss": "airgate",
                          "iat": int(NOW), "exp": int(NOW) + 60, "jti": "x"},
                         None, algorithm="none")]
    for token in forged:
        with pytest.raises(TokenRefused, match="not valid"):
            tokens.check(token, "cli", "prod", now=NOW)


def test_the_secret_is_kept_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "web-tokens.key"
    token = EnvironmentTokens.load_or_create(path).mint("cli", "prod", "user/a", now=NOW)
    assert path.stat().st_mode & 0o777 == 0o600
    claims = EnvironmentTokens.load_or_create(path).check(token, "cli", "prod", now=NOW)
    assert (claims.environment, claims.identity, claims.expires_at) == (
        "prod", "user/a", NOW + TOKEN_TTL)


def test_a_session_lasts_twelve_hours_unless_ended(tokens: EnvironmentTokens) -> None:
    session = tokens.mint("session", "prod", "user/alice", "Op", now=NOW,
                          principal_id="AIDAEXAMPLE")
    claims = tokens.check(session, "session", "prod", now=NOW + SESSION_TTL - 1)
    assert (claims.identity, claims.airflow_role, claims.principal_id, claims.issued_at) == (
        "user/alice", "Op", "AIDAEXAMPLE", NOW)
    with pytest.raises(TokenRefused, match="The session has expired: sign in again"):
        tokens.check(session, "session", "prod", now=NOW + SESSION_TTL)
    with pytest.raises(TokenRefused, match="is not a session token for environment staging"):
        tokens.check(session, "session", "staging", now=NOW)

    current = tokens.mint("session", "prod", "user/alice", "Op")
    claims = tokens.check(current, "session", "prod")
    assert tokens.check(current, "session", "prod") == claims  # used again and again
    tokens.end(claims)
    with pytest.raises(TokenRefused, match="The session has ended: sign in again"):
        tokens.check(current, "session", "prod")


def test_sessions_are_told_from_other_tokens_unchecked(tokens: EnvironmentTokens,
                                                       tmp_path: Path) -> None:
    other = EnvironmentTokens.load_or_create(tmp_path / "other.key")
    assert session_token_environment(tokens.mint("session", "prod", "user/a", "Op")) == "prod"
    assert session_token_environment(other.mint("session", "blue", "user/a", "Op")) == "blue"
    for token in (tokens.mint("cli", "prod", "user/a"),
                  tokens.mint("web-login", "prod", "user/a", "Op"), "not-a-token", ""):
        assert session_token_environment(token) is None


FLASK_SESSION = "0b5e2ad0-5a4c-4a83-9a57-5f0c1b1ad6b2.Zx1y2z3w4v5u6t7s8r9q0p"


def test_a_session_keeps_airflow_2s_flask_session_sealed(tokens: EnvironmentTokens,
                                                         tmp_path: Path) -> None:
    session = tokens.mint("session", "prod", "user/alice", "Op", now=NOW,
                          airflow_session=FLASK_SESSION)
    assert tokens.check(session, "session", "prod", now=NOW).airflow_session == FLASK_SESSION
    # The browser holds it, but can't read it: not in the token, in any encoding.
    claims = jwt.decode(session, options={"verify_signature": False})
    assert FLASK_SESSION not in session and FLASK_SESSION not in str(claims)
    assert FLASK_SESSION.split(".")[0] not in str(claims)
    assert tokens.check(tokens.mint("session", "prod", "user/a", "Op"), "session",
                        "prod").airflow_session is None

    # Sealed to its own session: moved into another session (same secret), it is refused.
    other = tokens.mint("session", "prod", "user/alice", "Op", now=NOW)
    moved = jwt.encode({**jwt.decode(other, options={"verify_signature": False}),
                        "fsid": claims["fsid"]}, tokens._secret, algorithm="HS256")
    with pytest.raises(TokenRefused, match="not valid"):
        tokens.check(moved, "session", "prod", now=NOW)


def test_a_session_signed_in_again_keeps_its_end(tokens: EnvironmentTokens) -> None:
    first = tokens.check(tokens.mint("session", "prod", "user/a", "Op", now=NOW,
                                     principal_id="AIDA1"), "session", "prod", now=NOW)
    again = tokens.mint("session", "prod", "user/a", "Op", now=NOW + 3600,
                        principal_id="AIDA1", airflow_session="new",
                        expires_at=first.expires_at)
    renewed = tokens.check(again, "session", "prod", now=NOW + 3600)
    assert (renewed.expires_at, renewed.issued_at, renewed.airflow_session) == (
        NOW + SESSION_TTL, NOW + 3600, "new")
    assert renewed.token_id != first.token_id
