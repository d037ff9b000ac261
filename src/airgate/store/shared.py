"""What the gateways sharing one store share beyond identities and environments: keys made
once for all of them, and the one-use tokens already used.

Several gateways on one PostgreSQL (behind a load balancer) must each accept a token
another minted, and none may accept a one-use token another has already taken.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from airgate.auth.secrets import SecretBox
from airgate.store.db import Database
from airgate.store.schema import SharedKey, SpentToken

PURGE_EVERY = 256  # spends between two deletions of expired rows


class SharedKeys:
    """Keys kept in the store encrypted under the master key, made by whichever gateway
    asks first."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self._box = box

    def key(self, name: str, first: Callable[[], bytes] = lambda: secrets.token_bytes(32)
            ) -> bytes:
        """The key called `name`; `first` makes it if no gateway has (a gateway may offer
        the key it kept in its home before keys were shared, so that what it issued stays
        valid)."""
        with self._db.reading() as session:
            sealed = session.scalar(select(SharedKey.sealed).where(SharedKey.name == name))
        if sealed is None:
            # Another gateway making it at the same moment wins: its key is read below.
            with contextlib.suppress(IntegrityError), self._db.transaction() as session:
                session.add(SharedKey(name=name, sealed=self._box.encrypt(first().hex())))
            with self._db.reading() as session:
                sealed = session.scalar(select(SharedKey.sealed).where(SharedKey.name == name))
        if sealed is None:
            raise RuntimeError(f"the shared key {name} could not be kept in the store")
        return bytes.fromhex(self._box.decrypt(sealed))


class StoredSpentTokens:
    """Used one-use tokens and ended sessions, in the store (airgate/web/tokens.py)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._spends = 0

    def spend(self, token_id: str, expires_at: float, now: float, once: bool) -> bool:
        """Record the token as spent; False if `once` and it already was."""
        self._spends += 1
        if self._spends % PURGE_EVERY == 0:
            with self._db.transaction() as session:
                session.execute(delete(SpentToken).where(SpentToken.expires_at <= now))
        try:
            with self._db.transaction() as session:
                row = session.get(SpentToken, token_id)
                if row is not None:
                    if once and row.expires_at > now:
                        return False
                    row.expires_at = max(row.expires_at, expires_at)
                else:
                    session.add(SpentToken(token_id=token_id, expires_at=expires_at))
        except IntegrityError:  # another gateway spent it at the same moment
            return not once
        return True

    def is_spent(self, token_id: str, now: float) -> bool:
        with self._db.reading() as session:
            expires_at = session.scalar(select(SpentToken.expires_at)
                                        .where(SpentToken.token_id == token_id))
        return expires_at is not None and expires_at > now
