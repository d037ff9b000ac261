"""Every benchmark in bench/, one table and one JSON file.

    .venv/bin/python bench/run.py [--runs 3] [--json bench/latest.json]     (or: make bench)
    .venv/bin/python bench/run.py --table-only      (the table again, from the JSON)

Each benchmark runs in its own process, --runs times (the startup and throughput benchmarks
take --runs themselves); each figure is the median over the runs. Comparisons (airgate
against Airflow called directly, or against a trivial upstream) are made inside each run,
so the machine's noise falls out of the differences and ratios better than out of the raw
figures. Failures (5xx, events lost) are the worst run's, not the median. The table names the
machine and says where a target is not met; the JSON keeps every run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
AIRFLOW_2 = "2.10.3"  # the Airflow 2 measured beside airgate's own Airflow 3


def run_benchmark(script: str, *args: str) -> dict[str, Any]:
    """One benchmark in its own process; its figures, as it wrote them."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "figures.json"
        started = time.monotonic()
        subprocess.run([sys.executable, str(BENCH / script), *args, "--json", str(out)],
                       check=True, cwd=BENCH.parent)
        print(f"[bench/run] {script} {' '.join(args)}: {time.monotonic() - started:.0f} s",
              file=sys.stderr, flush=True)
        figures: dict[str, Any] = json.loads(out.read_text())
        return figures


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each number over the runs (nested dicts too); other values from the
    last run."""
    merged: dict[str, Any] = dict(runs[-1])
    for key, value in runs[-1].items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            # A count some run never saw (an HTTP status, say) was zero in that run.
            merged[key] = statistics.median(run.get(key, 0) for run in runs)
        elif isinstance(value, dict) and all(isinstance(run.get(key), dict) for run in runs):
            merged[key] = medians([run[key] for run in runs])
    return merged


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    return {"cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30),
            "cpu": model, "python": platform.python_version(),
            "date": datetime.date.today().isoformat()}


Row = tuple[str, str, str]  # measure, value, target


def target(met: bool, text: str) -> str:
    return f"{text}: met" if met else f"{text}: **NOT MET**"


def table(figures: dict[str, Any]) -> list[Row]:
    invoke, gateway = figures["invoke_rest_api"], figures["gateway_throughput"]
    storm, startup = figures["event_storm"], figures["environment_startup"]
    burst = invoke["burst"]
    # Any 5xx in any run counts: a median would hide one bad run.
    burst_5xx = max(sum(n for status, n in run["burst"]["statuses"].items()
                        if int(status) >= 500) for run in invoke.get("each", [invoke]))
    trivial = invoke["trivial_upstream"]
    storms = storm.get("each", [storm])
    storm_failed = max(r["failed_after_retries"] for r in storms)
    storm_5xx = max(r["airflow_5xx"] for r in storms)
    return [
        ("InvokeRestApi p50, Airflow direct / through airgate, ms",
         f"{invoke['direct_p50']:.2f} / {invoke['gateway_p50']:.2f}", ""),
        ("InvokeRestApi p99, Airflow direct / through airgate, ms",
         f"{invoke['direct_p99']:.2f} / {invoke['gateway_p99']:.2f}", ""),
        ("added p50 with Airflow on the same cores, ms", f"{invoke['added_p50']:.2f}",
         target(invoke["added_p50"] < 0.5, "< 0.5")),
        ("added p50, sporadic callers (50 ms apart), ms",
         f"{invoke['sporadic_added_p50']:.2f}", ""),
        ("added p50 against a trivial upstream, airgate on one core, ms",
         f"{gateway['added_p50']:.3f}", target(gateway["added_p50"] < 0.5, "< 0.5")),
        ("signed requests/s per core (trivial upstream)", f"{gateway['per_second']:.0f}",
         target(gateway["per_second"] >= 2000, ">= 2000")),
        ("airgate CPU per request, ms", f"{gateway['cpu_ms_per_request']:.3f}", ""),
        (f"10x burst ({burst.get('offered', 0):.0f}/s offered): 200 / 429 / 5xx",
         f"{burst['statuses'].get('200', 0):.0f} / {burst['statuses'].get('429', 0):.0f} / "
         f"{burst_5xx:.0f}", target(burst_5xx == 0, "0 x 5xx")),
        ("Airflow p50 / p99 during the burst, ms",
         f"{burst['probe_p50']:.1f} / {burst['probe_p99']:.1f}", ""),
        ("POST /assets/events, Airflow direct, best of 1 to 16 callers: events/s",
         f"{storm['direct_peak']:.1f}", ""),
        (f"{storm['events']:.0f}-event storm through airgate: seconds / events per second",
         f"{storm['seconds']:.1f} / {storm['events_per_second']:.1f}", ""),
        ("storm events/s / Airflow's direct peak (same run)", f"{storm['ratio']:.2f}",
         target(storm["ratio"] >= 0.8, ">= 0.8")),
        ("cores in the storm: api-server / airgate / boto3 clients / whole machine",
         f"{storm['api_server_cores']:.2f} / {storm['airgate_cores']:.2f} / "
         f"{storm['client_cores']:.2f} / {storm['machine_cores']:.2f}", ""),
        ("Airflow's own GET /version p99, unloaded -> during the storm, ms",
         f"{storm['light_p99_unloaded']:.1f} -> {storm['light_p99_storm']:.1f}",
         target(storm["light_p99_storm"] <= 2 * storm["light_p99_unloaded"], "<= 2x")),
        ("storm: recorded / failed after retries / Airflow 5xx (worst run)",
         f"{min(r['recorded'] for r in storms):.0f} / {storm_failed:.0f} / {storm_5xx:.0f}",
         target(storm_failed == 0 and storm_5xx == 0
                and all(r["recorded"] == r["events"] for r in storms),
                "all recorded, 0 failed")),
        ("CreateEnvironment -> AVAILABLE, s (Airflow direct: migrate, start, healthy)",
         f"{startup['airgate_seconds']:.1f} ({startup['direct_seconds']:.1f})",
         target(startup["airgate_seconds"] < 20, "< 20 s")),
        ("CreateEnvironment -> AVAILABLE / Airflow direct", f"{startup['ratio']:.2f}",
         target(startup["ratio"] <= 0.5, "<= 0.5")),
        ("first environment of an Airflow version (metadata template made), s",
         f"{startup['first_environment_seconds']:.1f}", ""),
        ("airgate's start by step: migrate (from the template) / components healthy / "
         "warm-up after healthy, s",
         " / ".join(f"{startup['steps'].get(step, 0.0):.1f}"
                    for step in ("migrate", "healthy", "warm_up")), ""),
        ("airgate RSS idle / under load, MiB",
         f"{gateway['airgate_idle_rss_mib']:.0f} / {gateway['airgate_load_rss_mib']:.0f}", ""),
        ("one idle environment RSS / PSS, MiB",
         f"{startup['environment_rss_mib']:.0f} / {startup['environment_pss_mib']:.0f}",
         target(startup["environment_pss_mib"] <= 500, "PSS <= 500")),
        *airflow_2_rows(figures.get("environment_startup_airflow2")),
        *celery_rows(figures.get("celery_scaling")),
        ("trivial upstream inside the InvokeRestApi run: added p50, ms / req/s",
         f"{trivial['added_p50']:.3f} / {trivial['per_second']:.0f}", ""),
    ]


def airflow_2_rows(startup: dict[str, Any] | None) -> list[Row]:
    """An Airflow 2 environment beside the Airflow 3 one (its runtime installed first)."""
    if startup is None:
        return []
    rows: list[Row] = [
        (f"Airflow {AIRFLOW_2}: CreateEnvironment -> AVAILABLE, s",
         f"{startup['airgate_seconds']:.1f}", ""),
        (f"Airflow {AIRFLOW_2}: one idle environment RSS / PSS, MiB",
         f"{startup['environment_rss_mib']:.0f} / {startup['environment_pss_mib']:.0f}", "")]
    if startup.get("runtime_install_seconds") is not None:
        rows.append((f"Airflow {AIRFLOW_2}: runtime install on first use, s",
                     f"{startup['runtime_install_seconds']:.0f}", ""))
    return rows


def celery_rows(scaling: dict[str, Any] | None) -> list[Row]:
    """A Celery environment's burst with one worker and with MaxWorkers (Redis broker)."""
    if scaling is None:
        return []
    one, many = scaling["one_worker"], scaling["max"]
    return [
        (f"Celery: {scaling['tasks']:.0f} short tasks, tasks/min with 1 worker / with "
         f"{scaling['max_workers']:.0f}", f"{one['tasks_per_minute']:.1f} / "
         f"{many['tasks_per_minute']:.1f}", ""),
        (f"Celery: {scaling['max_workers']:.0f} workers / 1 worker (same run)",
         f"{scaling['ratio']:.2f}", ""),
        (f"Celery: scale up to {scaling['max_workers']:.0f} workers / back to 1 (20 s quiet "
         "period included), s",
         f"{many['scale_up_seconds']:.1f} / {many['scale_down_seconds']:.1f}", ""),
    ]


def print_rows(rows: list[Row]) -> None:
    print("| measure | value | target |")
    print("| --- | ---: | --- |")
    for measure, value, goal in rows:
        print(f"| {measure} | {value} | {goal} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, default=BENCH / "latest.json")
    parser.add_argument("--table-only", action="store_true",
                        help="print the table of the figures already in --json; run nothing")
    args = parser.parse_args()
    if args.table_only:
        report(json.loads(args.json.read_text()))
        return
    runs = str(args.runs)

    def repeated(script: str) -> dict[str, Any]:
        each = [run_benchmark(script) for _ in range(args.runs)]
        return {**medians(each), "each": each}

    figures: dict[str, Any] = {"machine": machine(), "runs": args.runs}
    steps = {
        "gateway_throughput": lambda: run_benchmark("gateway_throughput.py", "--runs", runs),
        "invoke_rest_api": lambda: repeated("invoke_rest_api.py"),
        "event_storm": lambda: repeated("event_storm.py"),
        "environment_startup": lambda: run_benchmark("environment_startup.py", "--runs", runs),
        "environment_startup_airflow2": lambda: run_benchmark(
            "environment_startup.py", "--runs", runs, "--airflow-version", AIRFLOW_2),
        "celery_scaling": lambda: run_benchmark("celery_scaling.py"),
    }
    for name, step in steps.items():
        figures[name] = step()
        args.json.write_text(json.dumps(figures, indent=2))  # what is done is kept
    figures["table"] = report(figures)
    args.json.write_text(json.dumps(figures, indent=2))
    print(f"\nfigures: {args.json}")


def report(figures: dict[str, Any]) -> list[dict[str, str]]:
    rows = table(figures)
    info = figures["machine"]
    print(f"\n{info['date']}: {info['cores']} cores ({info['cpu']}), {info['memory_gib']} GiB, "
          f"Python {info['python']}; each figure the median of {figures['runs']} runs")
    print_rows(rows)
    return [{"measure": m, "value": v, "target": t} for m, v, t in rows]


if __name__ == "__main__":
    main()
