"""Secret access keys at rest, and the owner-only files that hold secrets.

SigV4 verification needs each secret access key itself (it is the HMAC key), so secrets can't
be stored as hashes. They are encrypted with Fernet (AES-128-CBC plus HMAC-SHA256, from
`cryptography`) under a master key that never enters the database: taken from
AIRGATE_MASTER_KEY when the operator supplies one (e.g. several gateways on one PostgreSQL),
otherwise generated once into `master.key` in the airgate home, mode 0600. A stolen database
alone reveals no secret.
"""

from __future__ import annotations

import functools
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

MASTER_KEY_VARIABLE = "AIRGATE_MASTER_KEY"


def load_or_create_key(path: Path) -> bytes:
    """A random 32-byte key kept in `path` (0600), made the first time it is asked for."""
    if not path.exists():
        write_private(path, secrets.token_bytes(32))
    return path.read_bytes()


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that only the owner can ever read it (0600 from creation)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


class SecretBox:
    """Encrypts and decrypts secrets under the master key."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)
        self.decrypt = functools.lru_cache(maxsize=4096)(self._decrypt)

    @classmethod
    def open(cls, key_file: Path, env: dict[str, str] | None = None) -> SecretBox:
        """The box for this installation: the operator's key, or the key file (made once)."""
        supplied = (os.environ if env is None else env).get(MASTER_KEY_VARIABLE)
        if supplied:
            return cls(supplied.encode())
        if not key_file.exists():
            write_private(key_file, Fernet.generate_key())
        return cls(key_file.read_bytes().strip())

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def _decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise RuntimeError(
                "a stored secret cannot be decrypted: the master key is not the one it was "
                f"encrypted with (check {MASTER_KEY_VARIABLE} or master.key)"
            ) from None
