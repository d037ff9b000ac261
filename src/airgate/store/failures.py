"""Storage that can't be written (a full disk, a read-only file system, a full PostgreSQL
volume), told apart from bugs so that callers get a sentence saying so."""

from __future__ import annotations

import errno
import os

from sqlalchemy.exc import OperationalError

_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES,
                             errno.EPERM, errno.EIO})
# What SQLite and PostgreSQL say when the disk under them refuses a write.
_DATABASE_PHRASES = {
    "database or disk is full": os.strerror(errno.ENOSPC),
    "no space left on device": os.strerror(errno.ENOSPC),
    "could not extend file": os.strerror(errno.ENOSPC),
    "attempt to write a readonly database": os.strerror(errno.EROFS),
    "disk i/o error": os.strerror(errno.EIO),
}


def storage_failure(error: BaseException) -> str | None:
    """Why storage refused a write, in words, if that is what `error` (or its cause) is."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _STORAGE_ERRNOS:
            return os.strerror(current.errno)
        if isinstance(current, OperationalError):
            text = str(current.orig).lower()
            for phrase, reason in _DATABASE_PHRASES.items():
                if phrase in text:
                    return f"{reason} ({phrase})"
        current = current.__cause__ or current.__context__
    return None
