"""Each of an environment's Airflow components killed with SIGKILL in turn, under
InvokeRestApi load: callers get fast, typed errors while it is down (never a hang beyond
the REST API timeout), the supervisor restarts it, the status goes UNAVAILABLE and back to
AVAILABLE, calls made after the recovery succeed again, and no asset event or DAG run that
was accepted is lost.

Every call's outcome is recorded (tests/e2e/load.py): a read timeout or a reset connection
is an outcome like any other, and fails the test as one callers may not get."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.load import OK, Load
from tests.e2e.serving import examples_environment
from tests.e2e.test_runtime import status_of, wait_for
from tests.support import POSTGRES_ADMIN_URL, SINGLE_ATTEMPT, RunningAirgate

# A test's bounded waits (load flowing, UNAVAILABLE, AVAILABLE, calls succeeding again) add
# up to 360 s, and the first test also starts the environment: more than the default 300 s.
pytestmark = [pytest.mark.e2e, pytest.mark.airflow, pytest.mark.postgres, pytest.mark.timeout(900)]

ENV = "faults"
LAKE = "s3://airgate-example-lake/datalake"
REST_API_TIMEOUT = 10.0
# The promise: no InvokeRestApi call outlasts the REST API timeout (then 504). The bound
# is generous (this machine is loaded); the callers' own read timeout is longer still, so a
# hang shows as a ReadTimeoutError outcome.
SLOWEST_ALLOWED = 2 * REST_API_TIMEOUT
CALLER_READ_TIMEOUT = REST_API_TIMEOUT + 20
# What a caller may be told while a component is down, besides success: with the
# api-server down, the proxy's 502 while nothing listens and its 504 while the restarted
# api-server takes longer than the REST API timeout (the environment is UNAVAILABLE, where
# calls are still tried); with any other component down, nothing (the api-server answers).
OUTAGE_ERRORS = {"api-server": {"RestApiServerException(502)", "RestApiServerException(504)"},
                 "scheduler": set(), "dag-processor": set(), "triggerer": set()}
KINDS = ("event", "run", "read")


class Accepted:
    """Asset events and DAG runs Airflow accepted, to be found afterwards."""

    def __init__(self, asset_id: int) -> None:
        self.asset_id = asset_id
        self.events: list[str] = []
        self.runs: list[str] = []

    def calls(self) -> list[tuple[str, Any]]:
        def event(client: Any) -> None:
            location = f"s3://f/{uuid.uuid4().hex[:12]}"
            client.invoke_rest_api(Name=ENV, Method="POST", Path="/assets/events", Body={
                "asset_id": self.asset_id, "extra": {"location": location}})
            self.events.append(location)

        def run(client: Any) -> None:
            run_id = f"load-{uuid.uuid4().hex[:12]}"
            client.invoke_rest_api(Name=ENV, Method="POST",
                                   Path="/dags/any_bash_command/dagRuns",
                                   Body={"dag_run_id": run_id, "logical_date": None,
                                         "conf": {"command": "true"}})
            self.runs.append(run_id)

        def read(client: Any) -> None:
            client.invoke_rest_api(Name=ENV, Method="GET", Path="/version")

        return [("event", event), ("run", run), ("read", read)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAirgate]:
    home: Path = tmp_path_factory.mktemp("faults") / "home"
    with examples_environment(home, ENV, airflow_database_url=POSTGRES_ADMIN_URL,
                              rest_api_timeout=REST_API_TIMEOUT,
                              rest_api_rate=1000, rest_api_burst=1000) as running:
        yield running


def invoke(server: RunningAirgate, method: str, path: str, **more: Any) -> Any:
    return server.client().invoke_rest_api(Name=ENV, Method=method, Path=path,
                                           **more)["RestApiResponse"]


def every(server: RunningAirgate, path: str, member: str, **query: Any) -> list[Any]:
    """All pages of a list: Airflow answers at most [api] maximum_page_limit (100) a page."""
    found: list[Any] = []
    while True:
        page = invoke(server, "GET", path, QueryParameters={
            **query, "limit": 100, "offset": len(found)})
        found += page[member]
        if not page[member] or len(found) >= page["total_entries"]:
            return found


@pytest.mark.parametrize("component", ["api-server", "scheduler", "dag-processor",
                                       "triggerer"])
def test_a_killed_component_comes_back_and_nothing_accepted_is_lost(
        server: RunningAirgate, component: str) -> None:
    runtime: Any = server.airgate.runtime
    lake = next(a for a in invoke(server, "GET", "/assets")["assets"] if a["uri"] == LAKE)
    accepted = Accepted(lake["id"])
    load = Load(lambda: server.client(read_timeout=CALLER_READ_TIMEOUT, connect_timeout=5,
                                      retries=SINGLE_ATTEMPT), accepted.calls())
    with load.running(threads=2, join_timeout=CALLER_READ_TIMEOUT + 10):
        wait_for(lambda: all(load.successes(kind=kind) for kind in KINDS), 60,
                 "every kind of call to succeed before the fault")
        victim = runtime.pids(ENV)[component]
        os.killpg(victim, signal.SIGKILL)
        wait_for(lambda: status_of(server.client(), ENV) == "UNAVAILABLE", 30,
                 f"UNAVAILABLE after the {component} died")
        wait_for(lambda: status_of(server.client(), ENV) == "AVAILABLE", 180,
                 f"AVAILABLE after the {component} came back")
        recovered = time.monotonic()
        assert runtime.pids(ENV)[component] != victim
        # Recovery: every kind of call, started after AVAILABLE, succeeds again.
        wait_for(lambda: all(len(load.successes(since=recovered, kind=kind)) >= 3
                             for kind in KINDS), 90,
                 f"calls to succeed again after the {component} came back")

    results = load.results()
    assert set(results) <= {OK, *OUTAGE_ERRORS[component]}, results
    slowest = load.slowest()
    assert slowest.seconds <= SLOWEST_ALLOWED, slowest
    recorded = {event["extra"].get("location") for event in every(
        server, "/assets/events", "asset_events", asset_id=lake["id"], order_by="timestamp")}
    assert set(accepted.events) <= recorded
    runs = {run["dag_run_id"] for run in every(server, "/dags/any_bash_command/dagRuns",
                                               "dag_runs", order_by="id")}
    assert set(accepted.runs) <= runs
