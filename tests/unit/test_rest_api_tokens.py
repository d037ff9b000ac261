"""InvokeRestApi's token cache: a token is reused while it is fresh, and never one minted
with a key the environment no longer has (an environment deleted and created again under the
same name has a new key)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import jwt
import pytest
from jwt.algorithms import OKPAlgorithm

from airgate.airflow.tokens import SigningKey, audience
from airgate.errors import RestApiClientException
from airgate.mwaa.rest_api import KEY_RECHECK, TOKEN_TTL, Invocation, RestApiProxy, TokenCache
from tests.support import trivial_upstream


class Keys:
    """The runtime's side: the key each environment's Airflow trusts now, from a file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.reads = 0

    def signing_key(self, name: str) -> SigningKey:
        self.reads += 1
        return SigningKey.load_or_create(self.folder / f"{name}.pem", "airgate")

    def api_url(self, environment: object) -> str | None:
        return None

    def replace(self, name: str) -> None:
        """What delete then create under the same name does to the key file."""
        (self.folder / f"{name}.pem").unlink()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def verify(token: str, key: SigningKey, environment: str) -> dict[str, object]:
    public = OKPAlgorithm.from_jwk(key.public_jwk())
    return dict(jwt.decode(token, public, algorithms=["EdDSA"],  # type: ignore[arg-type]
                           audience=audience(environment)))


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path)


def test_a_fresh_token_is_reused_and_the_key_read_once_per_recheck(keys: Keys) -> None:
    clock = Clock()
    cache = TokenCache(keys, clock)
    first = cache.token("prod", "user/alice", "ADMIN")
    clock.now += KEY_RECHECK / 2
    assert cache.token("prod", "user/alice", "ADMIN") == first
    assert keys.reads == 1
    clock.now += KEY_RECHECK
    assert cache.token("prod", "user/alice", "ADMIN") == first  # same key: same token
    assert keys.reads == 2
    assert cache.token("prod", "user/alice", "VIEWER") != first


def test_a_recreated_environment_gets_tokens_of_its_new_key(keys: Keys) -> None:
    clock = Clock()
    cache = TokenCache(keys, clock)
    old_key = keys.signing_key("prod")
    old = cache.token("prod", "user/alice", "ADMIN")
    verify(old, old_key, "prod")

    keys.replace("prod")  # deleted and created again: a new key, the old token still fresh
    new_key = keys.signing_key("prod")
    clock.now += KEY_RECHECK
    assert clock.now < 1000.0 + TOKEN_TTL / 2
    token = cache.token("prod", "user/alice", "ADMIN")
    assert verify(token, new_key, "prod")["sub"] == "user/alice"
    with pytest.raises(jwt.InvalidSignatureError):
        verify(token, old_key, "prod")


def test_a_refused_token_makes_the_next_call_read_the_key_again(keys: Keys) -> None:
    clock = Clock()
    cache = TokenCache(keys, clock)
    cache.token("prod", "user/alice", "ADMIN")
    keys.replace("prod")
    new_key = keys.signing_key("prod")
    cache.refused("prod")  # Airflow answered 401 within KEY_RECHECK
    verify(cache.token("prod", "user/alice", "ADMIN"), new_key, "prod")


def test_a_401_from_airflow_to_a_token_drops_the_key(keys: Keys) -> None:
    async def call(proxy: RestApiProxy, port: int, path: str) -> None:
        await proxy.send(Invocation("prod", f"http://127.0.0.1:{port}/api/v2", "GET", path, [],
                                    None, "user/alice", "Admin"))

    async def scenario(port: int) -> None:
        proxy = RestApiProxy(keys)
        try:
            await call(proxy, port, "/dags")
            await call(proxy, port, "/dags")
            assert keys.reads == 1  # within KEY_RECHECK: the key read once
            with pytest.raises(RestApiClientException):
                await call(proxy, port, "/status/401")
            await call(proxy, port, "/dags")
            assert keys.reads == 2
        finally:
            await proxy.close()

    with trivial_upstream() as upstream:
        asyncio.run(scenario(upstream.port))
