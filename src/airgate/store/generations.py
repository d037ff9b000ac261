"""Change counters for cached state, shared through the store.

Every write to a kind of state ("identities", "environments") bumps its counter in the same
transaction. A process that caches that state drops its cache when the counter moves: at
once for its own writes, and within `max_age` seconds for writes made by other processes
(the `airgate iam` CLI, other gateways on one PostgreSQL store), without a store round trip
on every request.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from airgate.store.db import Database
from airgate.store.schema import Generation

_log = logging.getLogger("airgate.store")


class NotCached(Exception):
    """A memory-only lookup (`memory_only=True`) whose answer would need the store: the
    caller retries where blocking is allowed."""


def bump(session: Session, name: str) -> None:
    """Count one change to `name`, inside the caller's transaction."""
    bumped = session.execute(update(Generation).where(Generation.name == name)
                             .values(value=Generation.value + 1))
    if bumped.rowcount == 0:  # type: ignore[attr-defined]
        session.add(Generation(name=name, value=1))


class Generations:
    """This process's view of the counters, refreshed at most every `max_age` seconds."""

    def __init__(self, db: Database, max_age: float = 0.1) -> None:
        self._db = db
        self._max_age = max_age
        self._values: dict[str, int] = {}
        self._read_at = float("-inf")
        self._local = 0  # bumped by this process's own writes: caches drop at once
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    def keep_fresh(self) -> None:
        """Re-read the counters in a background thread twice per `max_age`, so that
        request-path readers (`memory_only`) never have to wait for the store."""
        if self._refresher is None and self._max_age > 0:
            self._refresher = threading.Thread(target=self._refresh_loop, daemon=True,
                                               name="airgate-generations")
            self._refresher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=5)
            self._refresher = None

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self._max_age / 2):
            try:
                self._refresh()
            except Exception:  # the store may be briefly unreachable; readers fall back
                _log.warning("could not read the change counters", exc_info=True)

    def _refresh(self) -> None:
        now = time.monotonic()
        with self._db.reading() as session:
            values = dict(session.execute(select(Generation.name, Generation.value)).all())
        with self._lock:
            self._values, self._read_at = values, now

    def changed_locally(self) -> None:
        with self._lock:
            self._local += 1

    def version(self, name: str, memory_only: bool = False) -> tuple[int, int]:
        """A value that changes whenever `name` may have changed."""
        now = time.monotonic()
        if now - self._read_at > self._max_age:
            if memory_only:
                raise NotCached
            self._refresh()
        return self._values.get(name, 0), self._local
