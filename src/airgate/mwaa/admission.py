"""Admission control per environment, so that a burst of callers can't push an Airflow API
server into multi-second latencies or errors.

Two limits: calls in flight at once, and new calls per second (a token bucket whose size is
the burst allowed). A call over either limit is refused at once with ThrottlingException
(HTTP 429), which botocore's standard and adaptive retry modes retry with backoff, so the
excess is spread out by the callers instead of queueing inside the gateway. Used only from
the event loop, so no locking is needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from airgate.errors import ThrottlingException


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    in_flight: int = 0


@dataclass(slots=True)
class Admission:
    concurrency: int
    rate: float  # new calls per second, sustained
    burst: int  # new calls allowed at once after a quiet period
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    @contextmanager
    def admit(self, environment: str) -> Iterator[None]:
        """Hold one of the environment's slots for the block, or ThrottlingException."""
        now = self.clock()
        bucket = self._buckets.get(environment)
        if bucket is None:
            bucket = self._buckets[environment] = _Bucket(tokens=float(self.burst), updated=now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.in_flight >= self.concurrency or bucket.tokens < 1.0:
            raise ThrottlingException("Rate exceeded")
        bucket.tokens -= 1.0
        bucket.in_flight += 1
        try:
            yield
        finally:
            bucket.in_flight -= 1
