"""Callers in threads for the fault tests: every call's outcome is recorded, whatever it is
(success, an AWS error code, a read timeout, a reset connection), with when it started and
ended, so that a test can check what callers were told, how long any call took, and that
calls succeed again after the fault, not only before it."""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import botocore.exceptions

OK = "ok"


@dataclass(frozen=True)
class Outcome:
    kind: str
    started: float  # time.monotonic()
    ended: float
    # OK; a ClientError's code, with the RestApiStatusCode of RestApiClientException and
    # RestApiServerException ("RestApiServerException(502)"); or any other exception's type.
    result: str

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class Load:
    """Threads each making `calls` in turn with a client of their own, until stopped.

    A call is a function of the thread's client; it returns normally on success (and may
    remember what was accepted). Nothing a call raises ends a thread: it is the call's
    outcome. Anything else that escapes a thread is kept in `crashes` (and re-raised, so
    pytest sees it too)."""

    make_client: Callable[[], Any]
    calls: Sequence[tuple[str, Callable[[Any], object]]]
    pause: float = 0.05
    outcomes: list[Outcome] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self, stop: threading.Event) -> None:
        try:
            client = self.make_client()
            while not stop.is_set():
                for kind, call in self.calls:
                    started = time.monotonic()
                    try:
                        call(client)
                        result = OK
                    except botocore.exceptions.ClientError as error:
                        result = str(error.response["Error"]["Code"])
                        status = error.response.get("RestApiStatusCode")
                        if status is not None:  # Airflow's (or the proxy's) own status
                            result += f"({status})"
                    except Exception as error:  # a timeout, a reset: the caller's outcome
                        result = type(error).__name__
                    with self._lock:
                        self.outcomes.append(Outcome(kind, started, time.monotonic(), result))
                    stop.wait(self.pause)
        except BaseException as error:
            with self._lock:
                self.crashes.append(repr(error))
            raise

    @contextlib.contextmanager
    def running(self, threads: int, join_timeout: float) -> Iterator[Load]:
        """The callers run while the block runs; afterwards every thread must have ended
        within `join_timeout` (a thread still running is a caller that hung)."""
        stop = threading.Event()
        workers = [threading.Thread(target=self._run, args=(stop,), name=f"load-{i}")
                   for i in range(threads)]
        for worker in workers:
            worker.start()
        try:
            yield self
        finally:
            stop.set()
            deadline = time.monotonic() + join_timeout
            for worker in workers:
                worker.join(timeout=max(0.0, deadline - time.monotonic()))
            hung = [worker.name for worker in workers if worker.is_alive()]
        assert not hung, f"callers still in a call {join_timeout:.0f} s after the end: {hung}"
        assert not self.crashes, self.crashes

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def successes(self, since: float = 0.0, kind: str | None = None) -> list[Outcome]:
        """Successful calls that started at or after `since` (time.monotonic())."""
        return [o for o in self.snapshot() if o.result == OK and o.started >= since
                and (kind is None or o.kind == kind)]

    def results(self) -> collections.Counter[str]:
        return collections.Counter(o.result for o in self.snapshot())

    def slowest(self) -> Outcome:
        return max(self.snapshot(), key=lambda outcome: outcome.seconds)
