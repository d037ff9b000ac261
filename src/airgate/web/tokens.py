"""The tokens of an environment's front: the short-lived ones CreateCliToken and
CreateWebLoginToken hand out, and the web session a web login starts.

Each names its purpose, its environment, the caller's IAM identity and (for web login and
sessions) the Airflow role chosen for them. CLI and web-login tokens are valid for 60
seconds, as on MWAA, and web-login tokens work once; a session lasts 12 hours unless it is
ended sooner (signed out, or its identity no longer allowed). All are HMAC-signed JWTs under
a secret every gateway on the store shares (kept there under the master key, so a token one
gateway mints works at the front of any; used tokens are kept there too): never a key any
environment trusts, so none can be used as an Airflow token, and a token for one environment
or purpose is refused for another.

A session with Airflow 2 also carries the Flask session airgate's sign-in got from the
environment's web server (`fsid`), encrypted (AES-GCM under a key derived from the same
secret, bound to the session's audience and id): the browser holds it without being able to
read it, so nothing but this environment's front can ever present it to Airflow.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from airgate.auth.secrets import load_or_create_key

TOKEN_TTL = 60
SESSION_TTL = 12 * 3600  # how long a web login keeps a browser or client signed in
ISSUER = "airgate"
ALGORITHM = "HS256"
Purpose = Literal["cli", "web-login", "session"]
_LIFETIMES: dict[str, int] = {"cli": TOKEN_TTL, "web-login": TOKEN_TTL, "session": SESSION_TTL}


class TokenRefused(Exception):
    """A token that is forged, expired, used up, or for another environment or purpose.
    The message is safe to show the caller."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    environment: str
    identity: str  # the caller's IAM identity, e.g. user/alice
    airflow_role: str | None  # web login, session: the Airflow role chosen for the caller
    expires_at: float
    token_id: str = ""
    issued_at: float = 0.0
    principal_id: str | None = None  # session: the IAM user's or role's id when signed in
    airflow_session: str | None = None  # session, Airflow 2: its web server's Flask session


class SpentTokens(Protocol):
    """Ids of used web-login tokens and ended sessions, until they expire anyway."""

    def spend(self, token_id: str, expires_at: float, now: float, once: bool) -> bool:
        """Record the token as spent; False if `once` and it already was."""
        ...

    def is_spent(self, token_id: str, now: float) -> bool: ...


class SpentInMemory:
    """Spent tokens of one gateway alone (airgate/store/shared.py keeps them for all)."""

    def __init__(self) -> None:
        self._spent: dict[str, float] = {}
        self._lock = threading.Lock()

    def spend(self, token_id: str, expires_at: float, now: float, once: bool) -> bool:
        with self._lock:
            for stale in [k for k, exp in self._spent.items() if exp <= now]:
                del self._spent[stale]
            if once and token_id in self._spent:
                return False
            self._spent[token_id] = max(expires_at, self._spent.get(token_id, 0))
            return True

    def is_spent(self, token_id: str, now: float) -> bool:
        with self._lock:
            return self._spent.get(token_id, 0) > now


class EnvironmentTokens:
    """Mints and checks CLI and web-login tokens for every environment of one airgate."""

    def __init__(self, secret: bytes, spent: SpentTokens | None = None) -> None:
        self._secret = secret
        self._sealer = AESGCM(HKDF(hashes.SHA256(), 32, salt=None,
                                   info=b"airgate web session: airflow session").derive(secret))
        # Used web-login tokens and ended sessions: in the store when gateways share one.
        self._spent = spent or SpentInMemory()

    @classmethod
    def load_or_create(cls, path: Path) -> EnvironmentTokens:
        return cls(load_or_create_key(path))

    def mint(self, purpose: Purpose, environment: str, identity: str,
             airflow_role: str | None = None, now: float | None = None,
             principal_id: str | None = None, airflow_session: str | None = None,
             expires_at: float | None = None) -> str:
        """A token; `expires_at` (a session signed in to Airflow again) keeps the end of the
        session it replaces instead of starting a new lifetime."""
        issued = int(time.time() if now is None else now)
        expires = issued + _LIFETIMES[purpose] if expires_at is None else int(expires_at)
        claims: dict[str, Any] = {"iss": ISSUER, "aud": _audience(purpose, environment),
                                  "sub": identity, "iat": issued, "exp": expires,
                                  "jti": uuid.uuid4().hex}
        if airflow_role is not None:
            claims["role"] = airflow_role
        if principal_id is not None:
            claims["pid"] = principal_id
        if airflow_session is not None:
            claims["fsid"] = self._seal(airflow_session, claims)
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
            raise TokenRefused("The session has expired: sign in again" if purpose == "session"
                               else f"The token has expired: tokens are valid for {TOKEN_TTL} "
                                    "seconds")
        if purpose == "web-login":
            self._spend(claims["jti"], claims["exp"], at)
        elif purpose == "session" and self._is_spent(claims["jti"], at):
            raise TokenRefused("The session has ended: sign in again")
        sealed = claims.get("fsid")
        return TokenClaims(environment, claims["sub"], claims.get("role"), claims["exp"],
                           claims["jti"], claims["iat"], claims.get("pid"),
                           None if sealed is None else self._open(sealed, claims))

    def end(self, session: TokenClaims) -> None:
        """End a session before it expires (signed out, or no longer allowed)."""
        self._spend(session.token_id, session.expires_at, time.time(), once=False)

    def _spend(self, token_id: str, expires_at: float, now: float, once: bool = True) -> None:
        if not self._spent.spend(token_id, expires_at, now, once):
            raise TokenRefused("The token has already been used")

    def _is_spent(self, token_id: str, now: float) -> bool:
        return self._spent.is_spent(token_id, now)

    def _seal(self, value: str, claims: dict[str, Any]) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._sealer.encrypt(nonce, value.encode(), _bound_to(claims))
        return base64.urlsafe_b64encode(nonce + sealed).decode()

    def _open(self, sealed: Any, claims: dict[str, Any]) -> str:
        try:
            raw = base64.urlsafe_b64decode(str(sealed))
            return self._sealer.decrypt(raw[:12], raw[12:], _bound_to(claims)).decode()
        except (binascii.Error, ValueError, InvalidTag):
            raise TokenRefused("The token is not valid") from None


def _bound_to(claims: dict[str, Any]) -> bytes:
    """What a sealed value belongs to: one session of one environment."""
    return f"{claims['aud']} {claims['jti']}".encode()


def session_token_environment(token: str) -> str | None:
    """The environment an airgate session token names, without checking it: how a front
    tells a session it must never pass on (whatever environment's) from other tokens."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    audience = claims.get("aud") if isinstance(claims, dict) else None
    prefix = _audience("session", "")
    if isinstance(audience, str) and audience.startswith(prefix):
        return audience[len(prefix):]
    return None


def _audience(purpose: Purpose, environment: str) -> str:
    return f"urn:airgate:{purpose}:{environment}"
