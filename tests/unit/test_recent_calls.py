"""The console's recent InvokeRestApi traffic: counted by outcome, per environment, over the
last RECENT_MINUTES minutes only."""

from __future__ import annotations

from airgate.metrics.calls import RECENT_MINUTES, RecentCalls, Traffic


def test_calls_are_counted_by_outcome_and_forgotten_after_the_window() -> None:
    now = [1_000_000.0]
    recent = RecentCalls(clock=lambda: now[0])
    for status in ("200", "204", "404", "500", "ThrottlingException", "RestApiServerException"):
        recent.add("a", status)
    recent.add("b", "200")
    assert recent.of("a") == Traffic(calls=6, client_errors=1, server_errors=2, throttled=1)
    now[0] += 60 * (RECENT_MINUTES - 1)
    recent.add("a", "200")
    assert recent.of("a").calls == 7  # the first minute is still inside the window
    now[0] += 60
    assert recent.of("a") == Traffic(calls=1)  # and now it is not
    assert recent.of("b") == Traffic()
