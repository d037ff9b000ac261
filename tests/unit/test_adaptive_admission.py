"""The adaptive in-flight limit: it rises while Airflow's latency holds, falls when latency
climbs or Airflow fails, and stays within its bounds. Fake clock, no timing."""

from __future__ import annotations

import asyncio

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


# --- the short line for a slot -------------------------------------------------------------

class Airflow:
    """Calls that hold their slot until the test lets them finish."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.outcomes: list[str] = []  # per call, in the order they ended
        self.release = asyncio.Event()

    async def call(self, name: str) -> None:
        await self.admission.wait_for_slot("env")
        try:
            with self.admission.admit("env"):
                self.outcomes.append(f"{name} admitted")
                await self.release.wait()
        except ThrottlingException:
            self.outcomes.append(f"{name} throttled")


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_a_call_waits_in_line_for_a_slot_first_come_first_served() -> None:
    async def scenario() -> list[str]:
        admission = Admission(max_concurrency=2, adaptive=False)
        airflow = Airflow(admission)
        holders = [asyncio.create_task(airflow.call(f"holder{i}")) for i in range(2)]
        await settle()
        line = [asyncio.create_task(airflow.call(f"waiter{i}")) for i in range(2)]
        await settle()
        assert len(admission._state("env").waiting) == 2  # both in line, none refused
        # A newcomer while others wait joins the line's end: the line is full (2 slots).
        late = asyncio.create_task(airflow.call("late"))
        await settle()
        airflow.release.set()  # the holders finish: the first two in line get their slots
        await asyncio.gather(*holders, *line, late)
        return airflow.outcomes

    outcomes = asyncio.run(scenario())
    assert outcomes[:3] == ["holder0 admitted", "holder1 admitted", "late throttled"]
    assert sorted(outcomes[3:]) == ["waiter0 admitted", "waiter1 admitted"]


def test_a_woken_caller_keeps_its_slot_against_newcomers() -> None:
    async def scenario() -> list[str]:
        admission = Admission(max_concurrency=1, adaptive=False)
        airflow = Airflow(admission)
        holder = asyncio.create_task(airflow.call("holder"))
        await settle()
        waiter = asyncio.create_task(airflow.call("waiter"))
        await settle()
        airflow.release.set()
        await holder  # the slot is freed and kept for the waiter...
        assert admission.in_flight("env") == 0
        airflow.release.clear()
        # ...not for a newcomer, who lines up behind the waiter.
        newcomer = asyncio.create_task(airflow.call("newcomer"))
        await settle()
        airflow.release.set()
        await asyncio.gather(waiter, newcomer)
        return airflow.outcomes

    assert asyncio.run(scenario()) == ["holder admitted", "waiter admitted",
                                       "newcomer admitted"]


def test_a_full_line_is_refused_at_once_and_a_wait_ends() -> None:
    """Beyond one waiting call per slot, ThrottlingException at once; a call that waited
    its patience out is refused too, and nothing is left in line or reserved."""
    async def scenario() -> tuple[list[str], int, int]:
        admission = Admission(max_concurrency=1, adaptive=False)
        airflow = Airflow(admission)
        holder = asyncio.create_task(airflow.call("holder"))
        await settle()
        waiter = asyncio.create_task(airflow.call("waiter"))
        await settle()
        await airflow.call("third")  # line full: no waiting
        await waiter  # waits its patience (DEFAULT_LATENCY x 2), then is refused
        airflow.release.set()
        await holder
        state = admission._state("env")
        return airflow.outcomes, len(state.waiting), state.reserved

    outcomes, waiting, reserved = asyncio.run(scenario())
    assert outcomes == ["holder admitted", "third throttled", "waiter throttled"]
    assert (waiting, reserved) == (0, 0)


def test_a_caller_that_leaves_the_line_passes_its_turn_on() -> None:
    """A caller gone (its client disconnected) after its turn came gives the slot kept for
    it to the next in line, while the other slot stays held."""
    async def scenario() -> list[str]:
        admission = Admission(max_concurrency=2, adaptive=False)
        airflow = Airflow(admission)
        held = [admission.admit("env"), admission.admit("env")]
        for slot in held:
            slot.__enter__()
        gone = asyncio.create_task(airflow.call("gone"))
        waiter = asyncio.create_task(airflow.call("waiter"))
        await settle()
        held[0].__exit__(None, None, None)  # a slot frees: kept for "gone", first in line
        gone.cancel()  # ...which leaves before taking it
        await settle()
        assert gone.cancelled()
        state = admission._state("env")
        # At once, not after the waiter's patience: it holds the slot, nobody is in line.
        assert (state.in_flight, len(state.waiting), state.reserved) == (2, 0, 0)
        airflow.release.set()
        await waiter
        held[1].__exit__(None, None, None)
        state = admission._state("env")
        assert (len(state.waiting), state.reserved, state.in_flight) == (0, 0, 0)
        return airflow.outcomes

    assert asyncio.run(scenario()) == ["waiter admitted"]
