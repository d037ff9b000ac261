"""An asset-event storm through InvokeRestApi: 1,000 events from 50 concurrent boto3 clients
(standard retry mode) against a real environment running examples/dags, with airgate's
admission control in front of it.

    .venv/bin/python bench/event_storm.py [--events 1000] [--callers 50]

Prints wall time, events per second, how many calls admission control throttled, how many
failed after botocore's retries, Airflow's 5xx answers, and how many runs of the data-aware
pipeline the scheduler made of the events. The environment's metadata is in PostgreSQL
(127.0.0.1:5432), as on MWAA.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.storm import asset_event_storm
from tests.support import POSTGRES_ADMIN_URL, free_port, mwaa_client

from bench.invoke_rest_api import EXAMPLE_DAGS, start_airgate
from bench.support import print_table

ENV = "storm-bench"
LAKE = "s3://airgate-example-lake/datalake"
PIPELINE = "/dags/data_aware_pipeline"


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(1)


def access_log(home: Path) -> list[dict[str, Any]]:
    lines = (home / "logs" / "airgate.log").read_text().splitlines()
    return [entry for entry in map(json.loads, lines) if entry.get("message") == "request"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--callers", type=int, default=50)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        shutil.copytree(EXAMPLE_DAGS, home / "buckets" / "storm" / "dags")
        port = free_port()
        server = start_airgate(home, port, "--airflow-database-url", POSTGRES_ADMIN_URL)
        try:
            admin = json.loads((home / "credentials.json").read_text())
            endpoint = f"http://127.0.0.1:{port}"
            mwaa = mwaa_client(endpoint, admin, "us-east-1")

            def invoke(method: str, path: str, **more: Any) -> Any:
                return mwaa.invoke_rest_api(Name=ENV, Method=method, Path=path,
                                            **more)["RestApiResponse"]

            def lake() -> dict[str, Any] | None:
                return next((asset for asset in invoke("GET", "/assets")["assets"]
                             if asset["uri"] == LAKE), None)

            def runs() -> list[dict[str, Any]]:
                found: list[dict[str, Any]] = invoke("GET", f"{PIPELINE}/dagRuns",
                                                     QueryParameters={"limit": 1000})["dag_runs"]
                return found

            mwaa.create_environment(Name=ENV, ExecutionRoleArn="arn:aws:iam::000000000000:"
                                    "role/r", SourceBucketArn="arn:aws:s3:::storm",
                                    DagS3Path="dags", NetworkConfiguration={})
            wait_until(lambda: mwaa.get_environment(Name=ENV)["Environment"]["Status"]
                       == "AVAILABLE", 300, "the environment")
            wait_until(lambda: lake() is not None, 120, "the data-lake asset")
            asset = lake()
            assert asset is not None
            invoke("PATCH", PIPELINE, Body={"is_paused": False})
            logged_before = len(access_log(home))

            storm = asset_event_storm(endpoint, admin, ENV, asset["id"], events=args.events,
                                      callers=args.callers, location=f"{LAKE}/storm")
            recorded = invoke("GET", "/assets/events", QueryParameters={
                "asset_id": asset["id"], "limit": 1})["total_entries"]
            wait_until(lambda: all(run["state"] in ("success", "failed") for run in runs()),
                       600, "the runs to finish")
            made = runs()
            calls = [entry for entry in access_log(home)[logged_before:]
                     if entry.get("operation") == "InvokeRestApi"]
        finally:
            server.terminate()
            server.wait(timeout=120)

    figures = {
        "events": args.events, "callers": args.callers,
        "seconds": storm.seconds, "events_per_second": storm.per_second,
        "recorded": recorded, "failed_after_retries": len(storm.failures),
        "throttled": sum(1 for c in calls if c.get("error") == "ThrottlingException"),
        "airflow_5xx": sum(1 for c in calls if (c.get("rest_api_status") or 0) >= 500),
        "runs": len(made), "runs_failed": sum(1 for run in made if run["state"] != "success"),
    }
    print(f"machine: {os.cpu_count()} cores; {args.events} asset events from {args.callers} "
          "boto3 clients (standard retries, 10 attempts); admission defaults")
    rows = [
        ("wall time, s", f"{figures['seconds']:.1f}"),
        ("events per second", f"{figures['events_per_second']:.1f}"),
        ("events recorded by Airflow", str(figures["recorded"])),
        ("calls throttled (429) and retried by botocore", str(figures["throttled"])),
        ("calls failed after retries (target 0)", str(figures["failed_after_retries"])),
        ("Airflow 5xx answers (target 0)", str(figures["airflow_5xx"])),
        ("DAG runs created by the scheduler", f"{figures['runs']} "
                                              f"({figures['runs_failed']} not successful)"),
    ]
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
