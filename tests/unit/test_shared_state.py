"""What gateways on one store share: the front tokens' secret (made once, the same for
every gateway, unreadable without the master key) and the used one-use tokens (a web-login
token used at one gateway is refused at every other, even when both try at once)."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from airgate.auth.secrets import SecretBox
from airgate.store.db import Database
from airgate.store.schema import SharedKey, SpentToken
from airgate.store.shared import SharedKeys, StoredSpentTokens
from airgate.web.tokens import EnvironmentTokens, TokenRefused

MASTER_KEY = Fernet.generate_key()


@pytest.fixture
def stores(tmp_path: Path, database_url: str | None) -> Iterator[tuple[Database, Database]]:
    """Two gateways' own connections to one store."""
    url = database_url or f"sqlite:///{tmp_path / 'state.db'}"
    first, second = Database(url), Database(url)
    yield first, second
    first.close()
    second.close()


def gateway(db: Database) -> EnvironmentTokens:
    secret = SharedKeys(db, SecretBox(MASTER_KEY)).key("web-tokens")
    return EnvironmentTokens(secret, StoredSpentTokens(db))


def test_every_gateway_gets_the_same_key_sealed_in_the_store(
        stores: tuple[Database, Database]) -> None:
    first, second = stores
    offered = b"k" * 32
    key = SharedKeys(first, SecretBox(MASTER_KEY)).key("web-tokens", lambda: offered)
    assert key == offered
    # The second gateway's offer is not taken: the first's key stays.
    assert SharedKeys(second, SecretBox(MASTER_KEY)).key("web-tokens",
                                                         lambda: b"x" * 32) == offered
    with first.reading() as session:
        sealed = session.get(SharedKey, "web-tokens")
        assert sealed is not None and offered.hex() not in sealed.sealed
    with pytest.raises(RuntimeError, match="master key"):
        SharedKeys(second, SecretBox(Fernet.generate_key())).key("web-tokens")


def test_a_token_from_one_gateway_works_at_another_once(
        stores: tuple[Database, Database]) -> None:
    one, other = (gateway(db) for db in stores)
    cli = one.mint("cli", "prod", "user/a")
    assert other.check(cli, "cli", "prod").identity == "user/a"
    login = one.mint("web-login", "prod", "user/a", "Op")
    assert other.check(login, "web-login", "prod").airflow_role == "Op"
    with pytest.raises(TokenRefused, match="already been used"):
        one.check(login, "web-login", "prod")
    with pytest.raises(TokenRefused, match="already been used"):
        other.check(login, "web-login", "prod")


def test_a_session_ended_at_one_gateway_is_refused_at_another(
        stores: tuple[Database, Database]) -> None:
    one, other = (gateway(db) for db in stores)
    session = one.mint("session", "prod", "user/a", "Op")
    claims = other.check(session, "session", "prod")
    one.end(claims)
    with pytest.raises(TokenRefused, match="session has ended"):
        other.check(session, "session", "prod")


def test_two_gateways_using_one_token_at_once_admit_exactly_one(
        stores: tuple[Database, Database]) -> None:
    gateways = [gateway(db) for db in stores]
    for _ in range(10):
        login = gateways[0].mint("web-login", "prod", "user/a", "Op")
        barrier = threading.Barrier(2)

        def use(tokens: EnvironmentTokens, login: str = login,
                barrier: threading.Barrier = barrier) -> str:
            barrier.wait()
            try:
                tokens.check(login, "web-login", "prod")
                return "admitted"
            except TokenRefused as refused:
                return str(refused)
            except Exception as error:  # every outcome recorded, not lost in the thread
                return repr(error)

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            outcomes = sorted(pool.map(use, gateways))
        assert outcomes == ["The token has already been used", "admitted"]


def test_expired_spent_tokens_are_purged(stores: tuple[Database, Database],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    first, _ = stores
    monkeypatch.setattr("airgate.store.shared.PURGE_EVERY", 3)
    spent = StoredSpentTokens(first)
    now = time.time()
    assert spent.spend("old", now - 1, now - 100, once=True)
    assert spent.spend("new", now + 60, now, once=True)
    assert kept(first) == ["new", "old"]
    assert spent.spend("third", now + 60, now, once=True)  # the third spend purges
    assert kept(first) == ["new", "third"]
    assert not spent.spend("new", now + 60, now, once=True)


def kept(db: Database) -> list[str]:
    with db.reading() as session:
        return sorted(session.scalars(select(SpentToken.token_id)))
