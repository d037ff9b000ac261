"""JWTs that an environment's Airflow accepts as coming from airgate.

Each environment trusts a JWKS file holding two public keys: its own (Airflow signs its UI
and task tokens with the matching private key, kept in the environment) and airgate's key
for that environment, whose private half stays in airgate's home and is never written into
the environment. Tokens name the environment as their audience, so a token minted for one
environment is refused by every other (different key and different audience).

Asymmetric keys rather than a per-environment `jwt_secret`: with a shared secret the
environment could mint tokens that look like airgate's, and the secret would have to sit in
the environment's configuration.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from airgate.auth.secrets import write_private

ISSUER = "airgate"
ALGORITHM = "EdDSA"


def audience(environment: str) -> str:
    return f"urn:airgate:environment:{environment}"


class SigningKey:
    """An Ed25519 key pair stored as PEM in a 0600 file, created on first use."""

    def __init__(self, private_key: Ed25519PrivateKey, kid: str) -> None:
        self._private_key = private_key
        self.kid = kid

    @classmethod
    def load_or_create(cls, path: Path, kid: str) -> SigningKey:
        if not path.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption())
            write_private(path, pem)
        try:
            return cls.from_pem(path.read_bytes(), kid)
        except ValueError:
            raise ValueError(f"{path} does not hold an Ed25519 private key") from None

    @classmethod
    def from_pem(cls, pem: bytes, kid: str) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("not an Ed25519 private key")
        return cls(key, kid)

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(self._private_key.public_key()))
        return {**jwk, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}

    def mint(self, *, subject: str, role: str, environment: str, ttl: float,
             extra: dict[str, Any] | None = None) -> str:
        """A token Airflow's auth manager reads as `subject` with `role`."""
        now = int(time.time())
        claims = {**(extra or {}), "sub": subject, "role": role, "iss": ISSUER,
                  "aud": audience(environment), "iat": now, "nbf": now,
                  "exp": int(now + ttl), "jti": uuid.uuid4().hex}
        return jwt.encode(claims, self._private_key, algorithm=ALGORITHM,
                          headers={"kid": self.kid})


def write_jwks(path: Path, *keys: SigningKey) -> None:
    """The key set an environment trusts (public keys only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"keys": [key.public_jwk() for key in keys]}, indent=2))
