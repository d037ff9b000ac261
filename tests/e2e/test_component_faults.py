"""Each of an environment's Airflow components killed with SIGKILL in turn, under
InvokeRestApi load: callers get fast, typed errors while it is down (never a hang beyond
the REST API timeout), the supervisor restarts it, the status goes UNAVAILABLE and back to
AVAILABLE, and no asset event or DAG run that was accepted is lost."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from tests.e2e.serving import examples_environment
from tests.e2e.test_runtime import status_of, wait_for
from tests.support import POSTGRES_ADMIN_URL, RunningAirgate

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres]

ENV = "faults"
LAKE = "s3://airgate-example-lake/datalake"
REST_API_TIMEOUT = 10.0
# What a caller may be told while a component is down: all modeled, all fast.
OUTAGE_ERRORS = {"RestApiServerException", "ThrottlingException", "ValidationException"}


@dataclass
class Load:
    """Callers posting asset events and triggering DAG runs through InvokeRestApi, and
    reading, until stopped; what Airflow accepted is remembered, to be found afterwards."""

    server: RunningAirgate
    asset_id: int
    accepted_events: list[str] = field(default_factory=list)
    accepted_runs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    slowest: float = 0.0
    calls: int = 0

    def run(self, stop: threading.Event) -> None:
        client = self.server.client(read_timeout=REST_API_TIMEOUT + 20, connect_timeout=5)
        while not stop.is_set():
            token = uuid.uuid4().hex[:12]
            for kind, call in (
                    ("event", {"Method": "POST", "Path": "/assets/events", "Body": {
                        "asset_id": self.asset_id, "extra": {"location": f"s3://f/{token}"}}}),
                    ("run", {"Method": "POST", "Path": "/dags/any_bash_command/dagRuns",
                             "Body": {"dag_run_id": f"load-{token}", "logical_date": None,
                                      "conf": {"command": "true"}}}),
                    ("read", {"Method": "GET", "Path": "/version"})):
                started = time.monotonic()
                try:
                    client.invoke_rest_api(Name=ENV, **call)
                    if kind == "event":
                        self.accepted_events.append(f"s3://f/{token}")
                    elif kind == "run":
                        self.accepted_runs.append(f"load-{token}")
                except botocore.exceptions.ClientError as error:
                    self.errors.append(str(error.response["Error"]["Code"]))
                self.calls += 1
                self.slowest = max(self.slowest, time.monotonic() - started)
                time.sleep(0.05)


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
    load = Load(server, lake["id"])
    stop = threading.Event()
    callers = [threading.Thread(target=load.run, args=(stop,)) for _ in range(2)]
    for caller in callers:
        caller.start()
    try:
        wait_for(lambda: load.accepted_events and load.accepted_runs, 30, "load to flow")
        victim = runtime.pids(ENV)[component]
        os.killpg(victim, signal.SIGKILL)
        wait_for(lambda: status_of(server.client(), ENV) == "UNAVAILABLE", 30,
                 f"UNAVAILABLE after the {component} died")
        wait_for(lambda: status_of(server.client(), ENV) == "AVAILABLE", 180,
                 f"AVAILABLE after the {component} came back")
        assert runtime.pids(ENV)[component] != victim
        calls_before = load.calls
        wait_for(lambda: load.calls > calls_before + 6, 60, "load to flow again")
    finally:
        stop.set()
        for caller in callers:
            caller.join(timeout=REST_API_TIMEOUT + 30)

    assert set(load.errors) <= OUTAGE_ERRORS, load.errors
    assert load.slowest < REST_API_TIMEOUT + 5, f"a call took {load.slowest:.1f} s"
    recorded = {event["extra"].get("location") for event in every(
        server, "/assets/events", "asset_events", asset_id=lake["id"], order_by="timestamp")}
    assert set(load.accepted_events) <= recorded
    runs = {run["dag_run_id"] for run in every(server, "/dags/any_bash_command/dagRuns",
                                               "dag_runs", order_by="id")}
    assert set(load.accepted_runs) <= runs
