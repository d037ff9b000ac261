"""Admission control: a token bucket per environment plus a bound on calls in flight."""

from __future__ import annotations

import pytest

from airgate.errors import ThrottlingException
from airgate.mwaa.admission import Admission


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def admitted(admission: Admission, environment: str = "a") -> bool:
    try:
        with admission.admit(environment):
            return True
    except ThrottlingException:
        return False


def test_a_burst_is_admitted_then_the_rate_applies() -> None:
    clock = Clock()
    admission = Admission(adaptive=False, max_concurrency=100, rate=10.0, burst=5, clock=clock)
    assert [admitted(admission) for _ in range(7)] == [True] * 5 + [False] * 2
    clock.now += 0.15  # one call's worth at 10/s, and half of the next
    assert [admitted(admission) for _ in range(2)] == [True, False]
    clock.now += 60  # refills only up to the burst
    assert sum(admitted(admission) for _ in range(10)) == 5


def test_calls_in_flight_are_bounded_and_released() -> None:
    admission = Admission(adaptive=False, max_concurrency=2, rate=1000.0, burst=1000, clock=Clock())
    with admission.admit("a"), admission.admit("a"):
        assert not admitted(admission)
        assert admitted(admission, "b")  # another environment has its own slots
    assert admitted(admission)


def test_a_failing_call_gives_its_slot_back() -> None:
    admission = Admission(adaptive=False, max_concurrency=1, rate=1000.0, burst=1000, clock=Clock())
    with pytest.raises(RuntimeError), admission.admit("a"):
        raise RuntimeError("Airflow went away")
    assert admitted(admission)


def test_the_refusal_is_a_throttling_error_with_http_429() -> None:
    admission = Admission(adaptive=False, max_concurrency=1, rate=1.0, burst=1, clock=Clock())
    admitted(admission)
    with pytest.raises(ThrottlingException) as refused, admission.admit("a"):
        pass
    assert refused.value.status == 429
    assert refused.value.code == "ThrottlingException"
