"""Counters and histograms of the calls airgate serves, updated as each call ends.

Environment names become label values only once the environment is known to exist (the
caller can't grow the series with made-up names); the other labels come from the service
models and HTTP, so every label is bounded.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

# Latencies of a gateway call, from a fraction of a millisecond (answered from memory) to
# the InvokeRestApi timeout.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0, 60.0)
UNKNOWN = "unknown"  # a request that never named a service's operation


RECENT_MINUTES = 15  # what the console calls recent


@dataclass(slots=True)
class Traffic:
    """InvokeRestApi calls to one environment over the recent minutes, by outcome."""

    calls: int = 0
    client_errors: int = 0  # Airflow's 4xx
    server_errors: int = 0  # Airflow's 5xx, or Airflow not reached
    throttled: int = 0


class RecentCalls:
    """Per environment, a count per minute for the last RECENT_MINUTES (the console's
    "recent InvokeRestApi traffic"; Prometheus keeps the long view)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._minutes: dict[str, collections.deque[tuple[int, Traffic]]] = {}

    def add(self, environment: str, status: str) -> None:
        minute = int(self._clock() // 60)
        with self._lock:
            minutes = self._minutes.setdefault(
                environment, collections.deque(maxlen=RECENT_MINUTES))
            if not minutes or minutes[-1][0] != minute:
                minutes.append((minute, Traffic()))
            traffic = minutes[-1][1]
            traffic.calls += 1
            if status == "ThrottlingException":
                traffic.throttled += 1
            elif status.startswith("4"):
                traffic.client_errors += 1
            elif status[:1] not in ("2", "3"):
                traffic.server_errors += 1

    def of(self, environment: str) -> Traffic:
        since = int(self._clock() // 60) - RECENT_MINUTES
        total = Traffic()
        with self._lock:
            for minute, traffic in self._minutes.get(environment, ()):
                if minute > since:
                    total.calls += traffic.calls
                    total.client_errors += traffic.client_errors
                    total.server_errors += traffic.server_errors
                    total.throttled += traffic.throttled
        return total


class CallMetrics:
    """The call families, registered in `registry`, and the recent traffic per
    environment."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.recent = RecentCalls()
        self.requests = Counter(
            "airgate_requests", "API calls airgate answered, by service, operation and HTTP "
            "status", ["service", "operation", "status"], registry=registry)
        self.request_duration = Histogram(
            "airgate_request_duration_seconds", "Time from a request's arrival to its "
            "answer", ["service", "operation"], buckets=_BUCKETS, registry=registry)
        self.rest_api_calls = Counter(
            "airgate_rest_api_calls", "InvokeRestApi calls, by environment, method and "
            "outcome: Airflow's HTTP status, or airgate's error code when Airflow was not "
            "reached (ThrottlingException, RestApiServerException, ...)",
            ["environment", "method", "status"], registry=registry)
        self.rest_api_upstream_duration = Histogram(
            "airgate_rest_api_upstream_duration_seconds", "Time Airflow's REST API took to "
            "answer an InvokeRestApi call", ["environment"], buckets=_BUCKETS,
            registry=registry)
        self.throttled = Counter(
            "airgate_throttled_requests", "InvokeRestApi calls refused with "
            "ThrottlingException to protect the environment", ["environment"],
            registry=registry)

    def request(self, service: str | None, operation: str | None, status: int,
                seconds: float) -> None:
        service, operation = service or UNKNOWN, operation or UNKNOWN
        self.requests.labels(service, operation, str(status)).inc()
        self.request_duration.labels(service, operation).observe(seconds)

    def rest_api_call(self, environment: str, method: str, status: str,
                      upstream_seconds: float | None) -> None:
        """One InvokeRestApi call to an existing environment; `upstream_seconds` when
        Airflow was called."""
        self.rest_api_calls.labels(environment, method, status).inc()
        self.recent.add(environment, status)
        if upstream_seconds is not None:
            self.rest_api_upstream_duration.labels(environment).observe(upstream_seconds)

    def throttled_call(self, environment: str) -> None:
        self.throttled.labels(environment).inc()
