"""A Celery environment's throughput with one worker and with MaxWorkers, and how long its
autoscaler takes to scale up and back down.

    .venv/bin/python bench/celery_scaling.py [--tasks 40] [--max-workers 3]
        [--broker-url redis://127.0.0.1:6379/0] [--json figures.json]

One environment (PostgreSQL metadata, the broker given, mw1.small: 5 tasks per worker),
one DAG of --tasks parallel short tasks. The same burst runs twice in the same airgate:
with MaxWorkers=1, then (raised live by UpdateEnvironment) with --max-workers. Tasks per
minute is the burst's size over its DAG run's duration as Airflow records it; the ratio of
the two runs is the figure to compare, the machine's noise falling out of it. Scale-up is
from the trigger to /metrics showing --max-workers worker processes; scale-down from the
run's end (as the benchmark sees it) to one worker again, the quiet period airgate waits
on purpose (20 s here, 120 s by default) included: the quiet period starts when the need
drops, which is before the run's last task ends.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import (
    POSTGRES_ADMIN_URL,
    RunningAirgate,
    labels,
    running_airgate,
    scrape_metrics,
)

from airgate.environments.local import LocalRuntime
from airgate.server import local_runtime
from bench.support import print_table

NAME = "scaling"
QUIET_SECONDS = 20.0
GIVE_UP = 600.0
DAG = '''
import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(dag_id="burst", schedule=None, catchup=False, max_active_tasks={tasks},
         start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    for n in range({tasks}):
        BashOperator(task_id=f"t{{n}}", bash_command="sleep 2")
'''
SPEC = {"ExecutionRoleArn": "arn:aws:iam::000000000000:role/airflow",
        "SourceBucketArn": "arn:aws:s3:::bench", "DagS3Path": "dags",
        "NetworkConfiguration": {}, "EnvironmentClass": "mw1.small"}


def until(predicate: Any, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + GIVE_UP
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"gave up waiting for {what}")


def workers(server: RunningAirgate) -> float:
    return scrape_metrics(server.endpoint_url)["airgate_environment_workers"][
        labels(environment=NAME)]


def invoke(server: RunningAirgate, method: str, path: str, **more: Any) -> Any:
    return server.client().invoke_rest_api(Name=NAME, Method=method, Path=path,
                                           **more)["RestApiResponse"]


def burst(server: RunningAirgate, tasks: int, scaled_to: int | None) -> dict[str, float]:
    """One run of the DAG: its tasks per minute, and (if `scaled_to`) the seconds until
    that many workers ran."""
    triggered = time.monotonic()
    run = invoke(server, "POST", "/dags/burst/dagRuns", Body={"logical_date": None})
    path = f"/dags/burst/dagRuns/{run['dag_run_id']}"
    scale_up = None
    while True:
        if scale_up is None and scaled_to is not None and workers(server) >= scaled_to:
            scale_up = time.monotonic() - triggered
        state = invoke(server, "GET", path)
        if state["state"] in ("success", "failed"):
            break
        if time.monotonic() - triggered > GIVE_UP:
            raise RuntimeError("the burst did not finish")
        time.sleep(0.5)
    if state["state"] != "success":
        raise RuntimeError(f"the burst's run ended {state['state']}")
    seconds = (datetime.datetime.fromisoformat(state["end_date"])
               - datetime.datetime.fromisoformat(state["start_date"])).total_seconds()
    figures = {"seconds": seconds, "tasks_per_minute": tasks * 60 / seconds}
    if scaled_to is not None:
        figures["scale_up_seconds"] = scale_up if scale_up is not None else float("nan")
        ended = time.monotonic()
        until(lambda: workers(server) == 1, "the workers to scale back down")
        figures["scale_down_seconds"] = time.monotonic() - ended
    return figures


def tree_pss_mib(pid: int) -> float:
    """Proportional set size of a process and everything under it (a worker: its main
    process and its pool), MiB."""
    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += process.memory_full_info().pss
    return total / 2**20


def measure(tasks: int, max_workers: int, broker_url: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        folder = home / "buckets" / "bench" / "dags"
        folder.mkdir(parents=True)
        (folder / "burst.py").write_text(DAG.format(tasks=tasks))
        with running_airgate(home, runtime_factory=local_runtime,
                             airflow_database_url=POSTGRES_ADMIN_URL, broker_url=broker_url,
                             worker_quiet_seconds=QUIET_SECONDS) as server:
            mwaa = server.client()
            mwaa.create_environment(Name=NAME, MinWorkers=1, MaxWorkers=1, **SPEC)
            until(lambda: mwaa.get_environment(Name=NAME)["Environment"]["Status"]
                  == "AVAILABLE", "the environment to be AVAILABLE")
            until(lambda: invoke(server, "GET", "/dags")["total_entries"] > 0,
                  "the DAG to be parsed", 1.0)
            invoke(server, "PATCH", "/dags/burst", Body={"is_paused": False})
            runtime = server.airgate.runtime
            assert isinstance(runtime, LocalRuntime)
            worker_pss = tree_pss_mib(runtime.pids(NAME)["worker-1"])
            one = burst(server, tasks, None)
            mwaa.update_environment(Name=NAME, MaxWorkers=max_workers)
            until(lambda: mwaa.get_environment(Name=NAME)["Environment"]["Status"]
                  == "AVAILABLE", "the update")
            many = burst(server, tasks, max_workers)
            mwaa.delete_environment(Name=NAME)
            until(lambda: NAME not in mwaa.list_environments()["Environments"],
                  "the environment to go")
    return {"tasks": tasks, "max_workers": max_workers, "broker": broker_url.split(":")[0],
            "idle_worker_pss_mib": worker_pss,
            "one_worker": one, "max": many,
            "ratio": many["tasks_per_minute"] / one["tasks_per_minute"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--max-workers", type=int, default=3)
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures = measure(args.tasks, args.max_workers, args.broker_url)
    one, many = figures["one_worker"], figures["max"]
    print_table([
        (f"{args.tasks} tasks (sleep 2), 1 worker: tasks/min (run seconds)",
         f"{one['tasks_per_minute']:.1f} ({one['seconds']:.1f})"),
        (f"same, up to {args.max_workers} workers: tasks/min (run seconds)",
         f"{many['tasks_per_minute']:.1f} ({many['seconds']:.1f})"),
        (f"{args.max_workers} workers / 1 worker (same run)", f"{figures['ratio']:.2f}"),
        ("one idle worker (main process and its pool of 5): PSS, MiB",
         f"{figures['idle_worker_pss_mib']:.0f}"),
        (f"trigger -> {args.max_workers} worker processes running, s",
         f"{many['scale_up_seconds']:.1f}"),
        (f"run's end -> 1 worker (the {QUIET_SECONDS:.0f} s quiet period included), s",
         f"{many['scale_down_seconds']:.1f}"),
    ])
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
