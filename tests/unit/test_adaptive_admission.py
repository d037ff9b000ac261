"""The adaptive in-flight limit: it rises while Airflow's latency holds, falls when latency
climbs or Airflow fails, and stays within its bounds. Fake clock, no timing."""

from __future__ import annotations

import pytest

from airgate.errors import RestApiClientException, RestApiServerException, ThrottlingException
from airgate.mwaa.admission import INITIAL_LIMIT, MAX_LIMIT, AdaptiveLimit, Admission


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def calls(admission: Admission, clock: Clock, seconds: float, count: int,
          concurrent: int, error: Exception | None = None) -> int:
    """`count` rounds of `concurrent` overlapping calls that each take `seconds`; the
    number the admission refused."""
    refused = 0
    for _ in range(count):
        held = []
        for _ in range(concurrent):
            slot = admission.admit("env")
            try:
                slot.__enter__()
            except ThrottlingException:
                refused += 1
                continue
            held.append(slot)
        clock.now += seconds
        for slot in held:
            # The call's outcome, as the block ends; a failure is never swallowed.
            assert not slot.__exit__(type(error) if error else None, error, None)
    return refused


def test_the_limit_rises_while_latency_holds() -> None:
    clock = Clock()
    admission = Admission(clock=clock)
    assert admission.limit_of("env") == INITIAL_LIMIT
    calls(admission, clock, 0.010, 40, concurrent=64)  # more callers than the limit, fast
    assert admission.limit_of("env") == MAX_LIMIT


def test_the_limit_falls_when_latency_climbs() -> None:
    clock = Clock()
    admission = Admission(clock=clock)
    calls(admission, clock, 0.010, 40, concurrent=64)
    high = admission.limit_of("env")
    calls(admission, clock, 0.100, 40, concurrent=64)  # Airflow queues: 10x the latency
    assert admission.limit_of("env") < high / 4
    assert admission.limit_of("env") >= 1


def test_a_failure_lowers_the_limit_at_once() -> None:
    clock = Clock()
    admission = Admission(clock=clock)
    calls(admission, clock, 0.010, 20, concurrent=32)
    before = admission.limit_of("env")
    calls(admission, clock, 0.010, 1, concurrent=1,
          error=RestApiServerException("Airflow answered 503", RestApiStatusCode=503))
    assert admission.limit_of("env") == pytest.approx(before * 0.75)


def test_airflow_refusing_a_caller_is_not_overload() -> None:
    clock = Clock()
    admission = Admission(clock=clock)
    calls(admission, clock, 0.010, 20, concurrent=32)
    before = admission.limit_of("env")
    calls(admission, clock, 0.010, 1, concurrent=1,
          error=RestApiClientException("403", RestApiStatusCode=403))
    assert admission.limit_of("env") == before


def test_an_api_server_that_is_down_is_not_overload() -> None:
    clock = Clock()
    admission = Admission(clock=clock)
    calls(admission, clock, 0.010, 20, concurrent=32)
    before = admission.limit_of("env")
    # Refused connections fail in a millisecond: neither a cut nor a latency sample.
    calls(admission, clock, 0.001, 50, concurrent=2,
          error=RestApiServerException("not running", RestApiStatusCode=502))
    assert admission.limit_of("env") == before
    calls(admission, clock, 0.010, 5, concurrent=int(before))
    assert admission.limit_of("env") >= before  # 10 ms still reads as nothing queued


def test_an_idle_environment_keeps_its_limit() -> None:
    """Few callers say nothing about capacity: the limit neither rises nor falls."""
    limit = AdaptiveLimit()
    for _ in range(100):
        limit.record(0.010, in_flight=1, failed=False)
    assert limit.limit == INITIAL_LIMIT


def test_excess_calls_are_refused_with_429_at_the_limit() -> None:
    clock = Clock()
    admission = Admission(clock=clock)
    refused = calls(admission, clock, 0.010, 1, concurrent=10)
    assert refused == 10 - INITIAL_LIMIT
    assert admission.in_flight("env") == 0


def test_the_operator_s_ceilings_hold() -> None:
    clock = Clock()
    admission = Admission(max_concurrency=8, clock=clock)
    calls(admission, clock, 0.010, 40, concurrent=64)
    assert admission.limit_of("env") == 8
    fixed = Admission(max_concurrency=3, adaptive=False, clock=clock)
    calls(fixed, clock, 0.010, 40, concurrent=64)
    calls(fixed, clock, 1.0, 40, concurrent=64)
    assert fixed.limit_of("env") == 3


def test_the_lowest_latency_is_learned_again() -> None:
    """Airflow's cost per call changes (its database grows): an old, lower latency does
    not hold the limit down for ever."""
    limit = AdaptiveLimit(limit=16)
    limit.record(0.001, in_flight=16, failed=False)  # one lucky call, long ago
    for _ in range(2000):
        limit.record(0.020, in_flight=int(limit.limit), failed=False)
    assert limit.lowest == pytest.approx(0.020)
    assert limit.limit == MAX_LIMIT
