"""The short-lived tokens CreateCliToken and CreateWebLoginToken hand out.

Each names its purpose, its environment, the caller's IAM identity and (for web login) the
Airflow role chosen for them, and is valid for 60 seconds, as on MWAA. They are HMAC-signed
JWTs under a secret kept in airgate's home: never a key any environment trusts, so a CLI or
login token can't be used as an Airflow API token, and a token for one environment or one
purpose is refused for another. Web login tokens work once.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jwt

from airgate.auth.secrets import write_private

TOKEN_TTL = 60
ISSUER = "airgate"
ALGORITHM = "HS256"
Purpose = Literal["cli", "web-login"]


class TokenRefused(Exception):
    """A token that is forged, expired, used up, or for another environment or purpose.
    The message is safe to show the caller."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    environment: str
    identity: str  # the caller's IAM identity, e.g. user/alice
    airflow_role: str | None  # web login: the Airflow role chosen when the token was made
    expires_at: float


class EnvironmentTokens:
    """Mints and checks CLI and web-login tokens for every environment of one airgate."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._used: dict[str, float] = {}  # one-use token ids, until they expire anyway
        self._lock = threading.Lock()

    @classmethod
    def load_or_create(cls, path: Path) -> EnvironmentTokens:
        if not path.exists():
            write_private(path, secrets.token_bytes(32))
        return cls(path.read_bytes())

    def mint(self, purpose: Purpose, environment: str, identity: str,
             airflow_role: str | None = None, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        claims = {"iss": ISSUER, "aud": _audience(purpose, environment), "sub": identity,
                  "iat": issued, "exp": issued + TOKEN_TTL, "jti": uuid.uuid4().hex}
        if airflow_role is not None:
            claims["role"] = airflow_role
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def check(self, token: str, purpose: Purpose, environment: str,
              now: float | None = None) -> TokenClaims:
        """The token's claims if it is valid for this purpose and environment now; web-login
        tokens are used up by a successful check."""
        at = time.time() if now is None else now
        try:
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM], issuer=ISSUER,
                                audience=_audience(purpose, environment),
                                # Times are checked below, against `now`.
                                options={"require": ["exp", "iat", "sub", "jti"],
                                         "verify_exp": False, "verify_iat": False})
        except jwt.InvalidAudienceError:
            raise TokenRefused(f"The token is not a {purpose} token for environment "
                               f"{environment}") from None
        except jwt.PyJWTError:
            raise TokenRefused("The token is not valid") from None
        if claims["iat"] > at + 5:
            raise TokenRefused("The token is not valid yet")
        if at >= claims["exp"]:
            raise TokenRefused("The token has expired: tokens are valid for "
                               f"{TOKEN_TTL} seconds")
        if purpose == "web-login":
            self._use_once(claims["jti"], claims["exp"], at)
        return TokenClaims(environment, claims["sub"], claims.get("role"), claims["exp"])

    def _use_once(self, token_id: str, expires_at: float, now: float) -> None:
        with self._lock:
            for stale in [k for k, exp in self._used.items() if exp <= now]:
                del self._used[stale]
            if token_id in self._used:
                raise TokenRefused("The token has already been used")
            self._used[token_id] = expires_at


def _audience(purpose: Purpose, environment: str) -> str:
    return f"urn:airgate:{purpose}:{environment}"
