"""Which gateway runs an environment, and when another one takes it over.

With several gateways on one store, each environment runs under one of them, its runner
(recorded in the store). The runner renews a lease on it every RENEW_SECONDS; a runner
that stops renewing (SIGKILL, a lost host) loses its environments once the lease has run
out, and the first other gateway to claim one (under the store's row lock) starts it on
its own machine. Only environments whose metadata is on the PostgreSQL server can move:
the new runner migrates nothing and loses nothing, since DAG runs, task states and asset
events live there, not on the lost host; the environment's Fernet key travels in the store
(encrypted under the master key), so its connections and variables stay readable.

A runner that finds it has lost an environment (its lease ran out while it was stuck)
stops running it, so that it never runs in two places for long.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from airgate.environments.store import EnvironmentRecord

__all__ = ["LEASE", "LEASE_SECONDS", "ORIGIN", "RENEW_SECONDS", "RUNNER", "abandoned",
           "lease_until", "movable", "origin_of"]

RUNNER = "Runner"  # in an environment's runtime record: the installation that runs it
ORIGIN = "Origin"  # the installation that created it: what its database and logins are named by
LEASE = "LeaseUntil"  # until when (Unix time) the runner's lease holds
LEASE_SECONDS = 30.0
RENEW_SECONDS = 10.0
# Statuses in which an environment runs or is being worked on, and so can be taken over.
MOVABLE = frozenset({"AVAILABLE", "UNAVAILABLE", "CREATING", "UPDATING", "UPDATE_FAILED",
                     "DELETING"})


def lease_until(now: float | None = None) -> float:
    return (time.time() if now is None else now) + LEASE_SECONDS


def origin_of(runtime: Mapping[str, Any], default: str) -> str:
    """The installation the environment's database, broker login and names belong to: the
    one that created it (before origins were recorded, its runner)."""
    return str(runtime.get(ORIGIN) or runtime.get(RUNNER) or default)


def abandoned(runtime: Mapping[str, Any], installation: str, now: float | None = None) -> bool:
    """Whether another installation's lease on the environment has run out, and its
    metadata is where any gateway can reach it."""
    until = runtime.get(LEASE)
    return (runtime.get(RUNNER) not in (None, installation)
            and runtime.get("MetadataOnServer") is True
            and isinstance(until, (int, float))
            and until < (time.time() if now is None else now))


def movable(record: EnvironmentRecord, installation: str) -> bool:
    return record.status in MOVABLE and abandoned(record.runtime, installation)
