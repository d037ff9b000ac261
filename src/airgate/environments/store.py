"""Environment records in the state store, with the transitions the MWAA lifecycle allows."""

from __future__ import annotations

import copy
import datetime
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from airgate.errors import ResourceNotFoundException, ValidationException
from airgate.store.db import Database
from airgate.store.generations import Generations, NotCached, bump
from airgate.store.schema import Environment, EnvironmentTag


@dataclass(frozen=True, slots=True)
class EnvironmentRecord:
    """A snapshot of one environment, detached from the database."""

    name: str
    status: str
    created_at: datetime.datetime
    spec: dict[str, Any]
    last_update: dict[str, Any] | None
    runtime: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)


def _snapshot(row: Environment) -> EnvironmentRecord:
    return EnvironmentRecord(
        name=row.name, status=row.status, created_at=row.created_at,
        spec=copy.deepcopy(row.spec), last_update=copy.deepcopy(row.last_update),
        runtime=copy.deepcopy(row.runtime or {}), tags={t.key: t.value for t in row.tags},
    )


def _not_found(name: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(f"Environment {name} was not found.")


_GENERATION = "environments"


class EnvironmentStore:
    def __init__(self, db: Database, generations: Generations | None = None) -> None:
        self._db = db
        self._generations = generations or Generations(db, max_age=0.0)
        self._cache: dict[str, EnvironmentRecord | None] = {}
        self._cached_version: tuple[int, int] | None = None

    @contextmanager
    def _changing(self) -> Iterator[Session]:
        """A write transaction that also tells every cache (in any process) to drop."""
        with self._db.transaction() as session:
            yield session
            bump(session, _GENERATION)
        self._generations.changed_locally()

    def cached(self, name: str, memory_only: bool = False) -> EnvironmentRecord | None:
        """`find` from memory while no environment has changed: for the request path,
        which reads an environment on every call. Snapshots are never modified. With
        `memory_only`, NotCached instead of reading the store."""
        version = self._generations.version(_GENERATION, memory_only)
        if version != self._cached_version:
            self._cache, self._cached_version = {}, version
        cache = self._cache  # a read that races a change lands in the dict being dropped
        if name not in cache:
            if memory_only:
                raise NotCached
            cache[name] = self.find(name)
        return cache[name]

    def create(self, name: str, spec: Mapping[str, Any], tags: Mapping[str, str],
               now: datetime.datetime, source: str) -> EnvironmentRecord:
        """A new record in CREATING; ValidationException if the name is taken or two tag
        keys differ only in case."""
        check_tag_keys(tags)
        row = Environment(
            name=name, status="CREATING", created_at=now, spec=dict(spec), runtime={},
            last_update={"Status": "PENDING", "CreatedAt": now.isoformat(), "Source": source},
            tags=[EnvironmentTag(key=k, value=v) for k, v in tags.items()],
        )
        try:
            with self._changing() as session:
                if session.get(Environment, name) is not None:
                    raise _already_exists(name)
                session.add(row)
                session.flush()
                return _snapshot(row)
        except IntegrityError:
            raise _already_exists(name) from None

    def get(self, name: str) -> EnvironmentRecord:
        with self._db.reading() as session:
            return _snapshot(self._row(session, name))

    def find(self, name: str) -> EnvironmentRecord | None:
        with self._db.reading() as session:
            row = session.get(Environment, name)
            return None if row is None else _snapshot(row)

    def names(self, after: str | None, limit: int) -> list[str]:
        """Names in order, starting after `after`, at most `limit` of them."""
        query = select(Environment.name).order_by(Environment.name).limit(limit)
        if after is not None:
            query = query.where(Environment.name > after)
        with self._db.reading() as session:
            return list(session.scalars(query))

    def all(self) -> list[EnvironmentRecord]:
        with self._db.reading() as session:
            rows = session.scalars(select(Environment).order_by(Environment.name))
            return [_snapshot(row) for row in rows]

    def transition(self, name: str, *, allowed_from: frozenset[str] | None, status: str,
                   spec: Mapping[str, Any] | None = None,
                   last_update: Mapping[str, Any] | None = None,
                   runtime: Mapping[str, Any] | None = None) -> EnvironmentRecord:
        """Move to `status` (and set the given fields) if the current status allows it."""
        with self._changing() as session:
            row = self._row(session, name)
            if allowed_from is not None and row.status not in allowed_from:
                raise ValidationException(
                    f"Environment {name} is in status {row.status}; this change needs one of: "
                    + ", ".join(sorted(allowed_from)))
            row.status = status
            if spec is not None:
                row.spec = dict(spec)
            if last_update is not None:
                row.last_update = dict(last_update)
            if runtime is not None:
                row.runtime = dict(runtime)
            session.flush()
            return _snapshot(row)

    def set_runtime(self, name: str, runtime: Mapping[str, Any]) -> None:
        """Record facts about the running environment (ports, URL), leaving its status."""
        with self._changing() as session:
            self._row(session, name).runtime = dict(runtime)

    def note_runtime(self, name: str, **facts: Any) -> None:
        """Add facts about the environment's runtime (its start's progress), keeping the
        others; nothing if it is gone. Under the row's lock: facts written at once by
        several threads or gateways (a lease renewed while a start is noted) all stay."""
        with self._changing() as session:
            row = session.get(Environment, name, with_for_update=True)
            if row is not None:
                row.runtime = {**(row.runtime or {}), **facts}

    def claim_runtime(self, name: str, claimable: Callable[[Mapping[str, Any]], bool],
                      facts: Mapping[str, Any],
                      statuses: Mapping[str, str] | None = None) -> bool:
        """Add `facts` to the environment's runtime if `claimable(runtime)` holds, deciding
        under the row's lock, so that of several gateways claiming at once one wins; and
        move its status as `statuses` says (from: to), in the same transaction."""
        with self._changing() as session:
            row = session.get(Environment, name, with_for_update=True)
            if row is None or not claimable(dict(row.runtime or {})):
                return False
            row.runtime = {**(row.runtime or {}), **facts}
            row.status = (statuses or {}).get(row.status, row.status)
            return True

    def remove(self, name: str) -> None:
        with self._changing() as session:
            row = session.get(Environment, name)
            if row is not None:
                session.delete(row)

    def tag(self, name: str, tags: Mapping[str, str]) -> None:
        """Add or update tags; ValidationException, and no change, if a new key differs only
        in case from another one (the row is locked, so two requests can't race past that)."""
        with self._changing() as session:
            row = self._row(session, name, lock=True)
            check_tag_keys(tags, existing=[t.key for t in row.tags])
            existing = {t.key: t for t in row.tags}
            for key, value in tags.items():
                if key in existing:
                    existing[key].value = value
                else:
                    row.tags.append(EnvironmentTag(key=key, value=value))

    def untag(self, name: str, keys: list[str]) -> None:
        with self._changing() as session:
            row = self._row(session, name)
            row.tags = [t for t in row.tags if t.key not in set(keys)]

    @staticmethod
    def _row(session: Session, name: str, lock: bool = False) -> Environment:
        row = session.get(Environment, name, with_for_update=lock)
        if row is None:
            raise _not_found(name)
        return row


def check_tag_keys(keys: Iterable[str], existing: Iterable[str] = ()) -> None:
    """ValidationException if one of `keys` equals another, or one of `existing`, ignoring
    case; re-tagging an existing key in the same case is an update and passes.

    IAM condition keys ignore case (`airgate.auth.policy` lower-cases them), so `Env` and
    `env` would be one `aws:ResourceTag/Env` or `aws:RequestTag/Env` to a policy but two
    tags here, and a caller could slip a value past a policy about the other.
    """
    present = set(existing)
    taken = {key.lower(): key for key in present}
    for key in keys:
        if key in present:
            continue
        other = taken.setdefault(key.lower(), key)
        if other != key:
            raise ValidationException(f"Tag key {key!r} differs only in case from tag key "
                                      f"{other!r}: tag keys must be unique ignoring case.")


def _already_exists(name: str) -> ValidationException:
    return ValidationException(f"Unable to create environment {name}: an environment with "
                               "this name already exists.")
