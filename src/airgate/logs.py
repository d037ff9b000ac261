"""Structured logging: one JSON object per line, to stderr and to the airgate log file.

Only fields that are safe to keep are ever passed in: request bodies, RestApiResponses,
secrets and tokens are never handed to a logger, so no filter is needed to strip them.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
import traceback
from pathlib import Path
from typing import Any

ACCESS_LOGGER = "airgate.access"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC)
            .isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            # Type and frames only: an exception's text can carry request data.
            line["exception"] = record.exc_info[0].__name__
            line["traceback"] = "".join(traceback.format_tb(record.exc_info[2]))
        return json.dumps(line, default=str)


def configure(log_dir: Path | None, level: int = logging.INFO) -> None:
    """Send airgate's logs to stderr and, if given, to `log_dir/airgate.log`."""
    formatter = JsonFormatter()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_dir / "airgate.log"))
    root = logging.getLogger("airgate")
    root.handlers.clear()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def log_fields(logger: logging.Logger, message: str, level: int = logging.INFO,
               **fields: Any) -> None:
    logger.log(level, message, extra={"fields": fields})
