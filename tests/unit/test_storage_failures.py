"""Storage refusing a write is told apart from a bug, whatever layer raised it."""

from __future__ import annotations

import errno
import sqlite3

from sqlalchemy.exc import OperationalError

from airgate.store.failures import storage_failure


def wrapped(message: str) -> OperationalError:
    return OperationalError("COMMIT", {}, sqlite3.OperationalError(message))


def test_database_and_file_system_refusals() -> None:
    assert storage_failure(wrapped("database or disk is full")) == \
        "No space left on device (database or disk is full)"
    assert "Read-only" in (storage_failure(wrapped("attempt to write a readonly database"))
                           or "")
    assert storage_failure(OSError(errno.ENOSPC, "full")) == "No space left on device"
    assert storage_failure(PermissionError(errno.EACCES, "denied")) == "Permission denied"


def test_the_cause_is_followed() -> None:
    try:
        try:
            raise OSError(errno.EROFS, "read-only")
        except OSError as inner:
            raise RuntimeError("while saving") from inner
    except RuntimeError as outer:
        assert storage_failure(outer) == "Read-only file system"


def test_other_errors_are_not_storage() -> None:
    assert storage_failure(ValueError("bug")) is None
    assert storage_failure(wrapped("no such table: environments")) is None
    assert storage_failure(OSError(errno.ECONNREFUSED, "refused")) is None
