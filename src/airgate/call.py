"""One call through the gateway: what the operation may know of it, and what the access log
records of it."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from airgate.auth.authorize import Authorization
from airgate.auth.identities import Principal
from airgate.environments.store import EnvironmentRecord


@dataclass(slots=True)
class CallRecord:
    """What one call did, for the access log: never a body, a secret or a token."""

    request_id: str
    service: str | None = None  # mwaa, sts, iam
    operation: str | None = None
    principal: str | None = None
    resource: str | None = None
    airflow_role: str | None = None
    error_code: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Call:
    """Who is calling and what they were authorised for, handed to every operation."""

    request_id: str
    now: datetime.datetime
    principal: Principal
    authorization: Authorization
    record: CallRecord
    environment: EnvironmentRecord | None = None  # as read when the call was authorised
