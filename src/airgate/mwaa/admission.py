"""Admission control per environment: let through what its Airflow can take, no more.

Each environment's in-flight limit is learned from what its api-server answers, in the
manner of TCP Vegas (and Netflix's concurrency-limits): the lowest latency seen recently is
what a call costs with nothing queued; from each call's latency the limiter estimates how
many calls were queued inside Airflow (limit x (1 - lowest / latency)) and raises the limit
while that queue stays short, lowers it when it grows, and lowers it at once when Airflow
fails (a 5xx, no answer in time). A call that finds every slot taken may wait for one in a
short line (at most one waiting call per slot, each for at most two calls' latency): without
it, slots stay empty between one admitted caller's calls while the refused ones back off,
and Airflow idles under a storm (bench/event_storm.py measured its api-server at 0.58 of the
cores it uses at its peak). Calls beyond the line are refused at once with
ThrottlingException (HTTP 429), which botocore's standard and adaptive retry modes retry with
backoff, so the excess waits with the callers, not inside Airflow, and Airflow's own latency
(its UI, its scheduler's calls) stays near what it is unloaded.

The operator may add fixed ceilings: calls in flight (AIRGATE_REST_API_CONCURRENCY) and new
calls per second (AIRGATE_REST_API_RATE, a token bucket with AIRGATE_REST_API_BURST). Used
only from the event loop, so no locking is needed.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from airgate.errors import RestApiServerException, ThrottlingException

INITIAL_LIMIT = 4.0  # one api-server here peaks at 2 to 4 callers (bench/invoke_rest_api.py)
MIN_LIMIT = 1.0
MAX_LIMIT = 64.0
# Calls queued inside Airflow that the limiter aims between (a short queue keeps Airflow
# busy without making every call, the UI's included, wait behind others).
QUEUE_LOW = 1.0
QUEUE_HIGH = 3.0
# How often the lowest latency is forgotten and learned again (Airflow's cost per call
# changes as its database grows), in calls.
RELEARN_EVERY = 500
SMOOTHING = 0.2  # how much one call's latency moves the running estimate
# The failures that mean Airflow is overloaded: its own 500 and 503 (a database pool or
# worker exhausted), and no answer in time (504). A 502 (its api-server not running or
# refusing connections, an answer too large or too deep to return) says nothing about its
# load: a dead api-server fails calls in a millisecond, and cutting the limit for that would
# throttle the callers still waiting for it to come back.
OVERLOAD_STATUSES = frozenset({500, 503, 504})
# The line for a slot: how long a call may wait in it, in calls' latencies (the smoothed
# latency; DEFAULT_LATENCY before there is one), and never longer than MAX_WAIT seconds.
WAIT_LATENCIES = 2.0
DEFAULT_LATENCY = 0.1
MAX_WAIT = 1.0


@dataclass(slots=True)
class AdaptiveLimit:
    """One environment's in-flight limit, learned from latency and failures."""

    limit: float = INITIAL_LIMIT
    floor: float = MIN_LIMIT
    ceiling: float = MAX_LIMIT
    lowest: float | None = None  # seconds: a call's latency with nothing queued
    latency: float | None = None  # seconds: recent calls' latency, smoothed
    samples: int = 0

    def record(self, seconds: float, in_flight: int, failed: bool) -> None:
        """One finished call: how long it took, how many were in flight when it started
        (itself included), and whether Airflow failed it."""
        self.samples += 1
        if failed:
            self.limit = max(self.floor, self.limit * 0.75)
            return
        if self.lowest is None or seconds < self.lowest or self.samples % RELEARN_EVERY == 0:
            self.lowest = seconds
        self.latency = seconds if self.latency is None else (
            (1 - SMOOTHING) * self.latency + SMOOTHING * seconds)
        if in_flight < self.limit / 2:
            return  # the limit isn't what holds callers back: no evidence either way
        queued = self.limit * (1 - self.lowest / self.latency) if self.latency > 0 else 0.0
        step = max(1.0, math.log10(self.limit))
        if queued < QUEUE_LOW:
            self.limit = min(self.ceiling, self.limit + step)
        elif queued > QUEUE_HIGH:
            self.limit = max(self.floor, self.limit - step)


@dataclass(slots=True)
class _Environment:
    limit: AdaptiveLimit
    in_flight: int = 0
    tokens: float = 0.0
    updated: float = 0.0
    # Calls waiting for a slot, first come first served, and slots freed for a woken
    # waiter that hasn't taken its slot yet (no newcomer may take those).
    waiting: collections.deque[asyncio.Future[None]] = field(
        default_factory=collections.deque)
    reserved: int = 0

    def slots(self) -> int:
        return max(1, int(self.limit.limit))

    def has_free_slot(self) -> bool:
        return self.in_flight + self.reserved < self.slots()


@dataclass(slots=True)
class Admission:
    """Per environment: an adaptive in-flight limit, and the operator's optional ceilings."""

    max_concurrency: int | None = None  # a ceiling on the learned limit
    rate: float | None = None  # new calls per second, sustained (None: no rate ceiling)
    burst: int = 50  # new calls allowed at once after a quiet period, with `rate`
    adaptive: bool = True  # False: the limit is max_concurrency (or the initial limit)
    clock: Callable[[], float] = time.monotonic
    _environments: dict[str, _Environment] = field(default_factory=dict)

    def limit_of(self, environment: str) -> float:
        """The environment's current in-flight limit (for metrics and tests)."""
        return self._state(environment).limit.limit

    def in_flight(self, environment: str) -> int:
        return self._state(environment).in_flight

    def environments(self) -> list[str]:
        """The environments called through admission so far."""
        return list(self._environments)

    async def wait_for_slot(self, environment: str) -> None:
        """Before `admit`: when every slot is taken, wait in the environment's line for one
        (if the line has room), for a short while. Returns either way; `admit` decides."""
        state = self._state(environment)
        if state.has_free_slot() and not state.waiting:
            return
        if len(state.waiting) >= state.slots():
            return  # the line is full: refused at once
        patience = min(MAX_WAIT, WAIT_LATENCIES * (state.limit.latency or DEFAULT_LATENCY))
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        state.waiting.append(turn)
        # Patience out: the turn is cancelled, which ends the wait below like a refusal.
        timer = loop.call_later(patience, lambda: turn.done() or turn.cancel())
        try:
            await turn
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # the caller went away: its turn
                self._leave_line(state, turn)            # (if it came) goes to the next
                self._wake(state)
                raise
        finally:
            timer.cancel()
        self._leave_line(state, turn)
        # Nothing may await between here and `admit`, so the slot is still free for it.

    @contextmanager
    def admit(self, environment: str) -> Iterator[None]:
        """Hold one of the environment's slots for the block, or ThrottlingException. The
        block's duration, and whether it failed with RestApiServerException for overload
        (OVERLOAD_STATUSES), teach the limit; other server failures teach it nothing."""
        state = self._state(environment)
        now = self.clock()
        if not state.has_free_slot() or not self._take_token(state, now):
            self._wake(state)  # a slot this call was woken for, refused by the rate ceiling
            raise ThrottlingException("Rate exceeded")
        state.in_flight += 1
        in_flight = state.in_flight
        outcome: bool | None = False  # failed; None: a failure that teaches nothing
        try:
            yield
        except RestApiServerException as error:
            outcome = error.fields.get("RestApiStatusCode") in OVERLOAD_STATUSES or None
            raise
        finally:
            state.in_flight -= 1
            if outcome is not None:
                state.limit.record(self.clock() - now, in_flight, outcome)
            self._wake(state)

    @staticmethod
    def _leave_line(state: _Environment, turn: asyncio.Future[None]) -> None:
        if turn.done() and not turn.cancelled():
            state.reserved -= 1  # woken: the slot kept for this call is its own now
        else:
            turn.cancel()
            if turn in state.waiting:
                state.waiting.remove(turn)

    @staticmethod
    def _wake(state: _Environment) -> None:
        """Give free slots to the calls first in line, keeping each slot for its call."""
        while state.waiting and state.has_free_slot():
            turn = state.waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                state.reserved += 1

    def _state(self, environment: str) -> _Environment:
        state = self._environments.get(environment)
        if state is None:
            ceiling = float(self.max_concurrency) if self.max_concurrency else MAX_LIMIT
            if self.adaptive:
                limit = AdaptiveLimit(limit=min(INITIAL_LIMIT, ceiling), ceiling=ceiling)
            else:
                fixed = float(self.max_concurrency or INITIAL_LIMIT)
                limit = AdaptiveLimit(limit=fixed, floor=fixed, ceiling=fixed)
            state = self._environments[environment] = _Environment(
                limit, tokens=float(self.burst), updated=self.clock())
        return state

    def _take_token(self, state: _Environment, now: float) -> bool:
        if self.rate is None:
            return True
        state.tokens = min(float(self.burst), state.tokens + (now - state.updated) * self.rate)
        state.updated = now
        if state.tokens < 1.0:
            return False
        state.tokens -= 1.0
        return True
