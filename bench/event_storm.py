"""An asset-event storm through InvokeRestApi: 1,000 events from 50 concurrent boto3 clients
(standard retry mode) against a real environment running examples/dags, with airgate's
admission control in front of it, beside Airflow's own peak for the same call.

    .venv/bin/python bench/event_storm.py [--events 1000] [--callers 50]

First, in the same run and on the same environment, the same `POST /assets/events` is made
directly to Airflow's api-server (a pre-minted token, the cheap raw-socket load generator of
bench/support.py) by 1, 2, 4, 8 and 16 concurrent callers: the best of those rates is what
Airflow takes at its peak. Then the storm, through airgate. Prints wall time, events per
second and their ratio to the direct peak, how many calls admission control throttled, how
many failed after botocore's retries, Airflow's 5xx answers, and how many runs of the
data-aware pipeline the scheduler made of the events. The environment's metadata is in
PostgreSQL (127.0.0.1:5432), as on MWAA; the pipeline is unpaused for both parts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.storm import asset_event_storm
from tests.support import POSTGRES_ADMIN_URL, free_port, mwaa_client

from airgate.airflow.tokens import SigningKey
from airgate.environments.layout import EnvironmentLayout
from bench.invoke_rest_api import EXAMPLE_DAGS, environment_port, start_airgate
from bench.support import percentile, print_table, throughput

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


def api_server(home: Path) -> psutil.Process:
    """The environment's api-server: the process listening on its port (and its children,
    through cpu_seconds)."""
    port = environment_port(home, ENV)
    for connection in psutil.net_connections("tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port \
                and connection.pid:
            return psutil.Process(connection.pid)
    raise RuntimeError("the environment's api-server is not listening")


def cpu_seconds(process: psutil.Process) -> float:
    """CPU time of `process` and its children so far."""
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        try:
            times = each.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent on anything but idling, so far."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def direct_token(home: Path) -> str:
    """A token the environment's Airflow takes, minted as airgate would."""
    return SigningKey.load_or_create(EnvironmentLayout.of(home, ENV).airgate_key,
                                     "airgate").mint(subject="user/bench", role="ADMIN",
                                                     environment=ENV, ttl=3600)


class LightProbe:
    """A light request (`GET /api/v2/version`) straight to Airflow every 50 ms, as the UI's
    small calls: its latency while the probe runs, in ms."""

    def __init__(self, home: Path) -> None:
        self._url = f"http://127.0.0.1:{environment_port(home, ENV)}/api/v2/version"
        self._headers = {"Authorization": f"Bearer {direct_token(home)}"}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.samples: list[float] = []
        self.failures: list[str] = []

    def __enter__(self) -> LightProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(headers=self._headers, timeout=30) as client:
            while not self._stop.is_set():
                began = time.perf_counter()
                try:
                    status = client.get(self._url).status_code
                except httpx.HTTPError as error:
                    self.failures.append(type(error).__name__)
                else:
                    if status != 200:
                        self.failures.append(f"HTTP {status}")
                    self.samples.append((time.perf_counter() - began) * 1000)
                self._stop.wait(0.05)


def direct_peak(home: Path, asset_id: int, seconds: float) -> list[dict[str, Any]]:
    """`POST /api/v2/assets/events` straight to the environment's api-server, by more and
    more concurrent callers."""
    token = direct_token(home)
    port = environment_port(home, ENV)
    body = json.dumps({"asset_id": asset_id,
                       "extra": {"location": f"{LAKE}/direct/file.csv"}}).encode()
    request = (f"POST /api/v2/assets/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
               f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
               ).encode() + body
    rows = []
    server = api_server(home)
    for callers in (1, 2, 4, 8, 16):
        cpu, began = cpu_seconds(server), time.monotonic()
        result = asyncio.run(throughput(port, request, callers, seconds, warmup=0.5))
        # The api-server's share of a core over the whole step (warm-up included).
        busy = (cpu_seconds(server) - cpu) / (time.monotonic() - began)
        rows.append({"callers": callers, **result, "api_server_cores": busy})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--callers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="how long each number of direct callers is measured")
    parser.add_argument("--paused", action="store_true",
                        help="keep the pipeline paused (events are recorded, no runs made): "
                        "the pacing alone, without the runs' tasks competing for the cores")
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
            invoke("PATCH", PIPELINE, Body={"is_paused": args.paused})
            direct = direct_peak(home, asset["id"], args.seconds)
            # The runs the direct events made finish before the storm starts.
            wait_until(lambda: all(run["state"] in ("success", "failed") for run in runs()),
                       600, "the direct part's runs to finish")
            runs_before = {run["dag_run_id"] for run in runs()}
            recorded_before = invoke("GET", "/assets/events", QueryParameters={
                "asset_id": asset["id"], "limit": 1})["total_entries"]
            logged_before = len(access_log(home))

            with LightProbe(home) as unloaded:
                time.sleep(5)
            gateway = psutil.Process(server.pid)
            server_cpu, client_cpu = cpu_seconds(api_server(home)), time.process_time()
            gateway_cpu, machine_cpu = sum(gateway.cpu_times()[:2]), busy_seconds()
            with LightProbe(home) as loaded:
                storm = asset_event_storm(endpoint, admin, ENV, asset["id"],
                                          events=args.events, callers=args.callers,
                                          location=f"{LAKE}/storm")
            server_cpu = (cpu_seconds(api_server(home)) - server_cpu) / storm.seconds
            client_cpu = (time.process_time() - client_cpu) / storm.seconds
            gateway_cpu = (sum(gateway.cpu_times()[:2]) - gateway_cpu) / storm.seconds
            machine_cpu = (busy_seconds() - machine_cpu) / storm.seconds
            recorded = invoke("GET", "/assets/events", QueryParameters={
                "asset_id": asset["id"], "limit": 1})["total_entries"] - recorded_before
            wait_until(lambda: all(run["state"] in ("success", "failed") for run in runs()),
                       600, "the runs to finish")
            made = [run for run in runs() if run["dag_run_id"] not in runs_before]
            calls = [entry for entry in access_log(home)[logged_before:]
                     if entry.get("operation") == "InvokeRestApi"]
        finally:
            server.terminate()
            server.wait(timeout=120)

    peak = max(row["per_second"] for row in direct)
    figures = {
        "events": args.events, "callers": args.callers,
        "seconds": storm.seconds, "events_per_second": storm.per_second,
        "paused": args.paused, "direct": direct, "direct_peak": peak,
        "ratio": storm.per_second / peak,
        "api_server_cores": server_cpu, "client_cores": client_cpu,
        "airgate_cores": gateway_cpu, "machine_cores": machine_cpu,
        "light_p99_unloaded": percentile(unloaded.samples, 0.99),
        "light_p99_storm": percentile(loaded.samples, 0.99),
        "light_p50_unloaded": statistics.median(unloaded.samples),
        "light_p50_storm": statistics.median(loaded.samples),
        "light_failures": len(unloaded.failures) + len(loaded.failures),
        "recorded": recorded, "failed_after_retries": len(storm.failures),
        "throttled": sum(1 for c in calls if c.get("error") == "ThrottlingException"),
        "airflow_5xx": sum(1 for c in calls if (c.get("rest_api_status") or 0) >= 500),
        "runs": len(made), "runs_failed": sum(1 for run in made if run["state"] != "success"),
    }
    print(f"machine: {os.cpu_count()} cores; {args.events} asset events from {args.callers} "
          "boto3 clients (standard retries, 10 attempts); admission defaults; the pipeline "
          + ("paused" if args.paused else "unpaused"))
    rows = [
        *((f"direct, {row['callers']} callers: events/s (p50 / p99 ms; api-server cores)",
           f"{row['per_second']:.1f} ({row['p50']:.0f} / {row['p99']:.0f}; "
           f"{row['api_server_cores']:.2f})") for row in direct),
        ("wall time, s", f"{figures['seconds']:.1f}"),
        ("events per second", f"{figures['events_per_second']:.1f}"),
        ("storm / Airflow's direct peak (target >= 0.8)", f"{figures['ratio']:.2f}"),
        (f"cores busy in the storm: api-server / airgate / the {args.callers} boto3 clients "
         f"/ the whole machine (of {os.cpu_count()})",
         f"{server_cpu:.2f} / {gateway_cpu:.2f} / {client_cpu:.2f} / {machine_cpu:.2f}"),
        ("Airflow's own GET /version p50 / p99, unloaded -> during the storm, ms",
         f"{figures['light_p50_unloaded']:.1f} / {figures['light_p99_unloaded']:.1f} -> "
         f"{figures['light_p50_storm']:.1f} / {figures['light_p99_storm']:.1f}"),
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
