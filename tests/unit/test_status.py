"""`airgate status`: the table a person reads, and the lines `--watch` prints as an
environment's start moves on."""

from __future__ import annotations

import datetime
import io
from typing import Any

from airgate.environments.store import EnvironmentRecord
from airgate.environments.supervisor import ComponentState
from airgate.status import describe, describe_all, table, watch

CREATED = datetime.datetime(2026, 12, 3, 8, 0, tzinfo=datetime.UTC)


def record(name: str, status: str, steps: dict[str, float] | None = None,
           last_update: dict[str, Any] | None = None, **spec: Any) -> EnvironmentRecord:
    return EnvironmentRecord(name, status, CREATED, {"AirflowVersion": "3.3.2", **spec},
                             last_update, {"Steps": steps or {},
                                           "WebserverUrl": f"http://127.0.0.1:1/{name}"})


def test_the_table_says_status_step_components_and_the_last_error() -> None:
    failed = {"Status": "FAILED", "CreatedAt": "2026-12-03T08:01:02+00:00",
              "Error": {"ErrorCode": "STARTUP_SCRIPT_FAILED", "ErrorMessage": "exit 3"}}
    views = describe_all(
        [record("a", "AVAILABLE", {"runtime": 0.5}, MaxWorkers=6),
         record("b", "CREATING", {"runtime": 0.5, "metadata": 1.0}),
         record("c", "UPDATE_FAILED", last_update=failed)],
        {"a": {"scheduler": ComponentState(True, 2), "triggerer": ComponentState(False, 0)}})
    lines = table(views).splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "AIRFLOW", "EXECUTOR", "COMPONENTS", "WEB",
                                "UI", "LAST", "UPDATE"]
    assert lines[1].split() == ["a", "AVAILABLE", "3.3.2", "LocalExecutor", "x6", "1/2", "up",
                                "(triggerer", "down),", "2", "restarts",
                                "http://127.0.0.1:1/a", "-"]
    assert lines[2].split()[:4] == ["b", "CREATING", "(metadata", "done)"]
    assert lines[3].endswith("FAILED 2026-12-03 08:01:02: STARTUP_SCRIPT_FAILED: exit 3")
    assert describe(record("d", "AVAILABLE"), None)["Components"] is None
    assert "?" in table([describe(record("d", "AVAILABLE"), None)]).splitlines()[1].split()


def test_watch_prints_each_step_once_and_stops_when_the_environment_is_settled() -> None:
    looks = iter([
        [record("w", "CREATING")],
        [record("w", "CREATING", {"runtime": 0.4})],
        [record("w", "CREATING", {"runtime": 0.4})],
        [record("w", "CREATING", {"runtime": 0.4, "metadata": 1.25})],
        # The last step and the end, seen in one look: the step first.
        [record("w", "AVAILABLE", {"runtime": 0.4, "metadata": 1.25, "migrate": 7.0},
                {"Status": "SUCCESS", "CreatedAt": "2026-12-03T08:00:00+00:00"})],
        [],  # never looked at: AVAILABLE is settled
    ])
    out = io.StringIO()
    watch(lambda: describe_all(next(looks), None), ["w"], out, sleep=lambda _: None)
    said = [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]
    assert said == ["w: CREATING", "w: runtime done (0.4 s)", "w: metadata done (1.2 s)",
                    "w: migrate done (7.0 s)", "w: AVAILABLE",
                    "w: last update SUCCESS 2026-12-03 08:00:00"]
    assert next(looks) == []
