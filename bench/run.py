"""Every benchmark in bench/, one table and one JSON file.

    .venv/bin/python bench/run.py [--runs 3] [--json bench/latest.json]     (or: make bench)

Each benchmark runs in its own process, --runs times (the startup and throughput benchmarks
take --runs themselves); each figure is the median over the runs. Comparisons (airgate
against Airflow called directly, or against a trivial upstream) are made inside each run,
so the machine's noise falls out of the differences and ratios better than out of the raw
figures. The table names the machine and says where a target is not met.
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
    burst_5xx = sum(n for status, n in burst["statuses"].items() if int(status) >= 500)
    trivial = invoke["trivial_upstream"]
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
        (f"10x burst ({10 * invoke['admission']['rate']:g}/s offered): 200 / 429 / 5xx",
         f"{burst['statuses'].get('200', 0):.0f} / {burst['statuses'].get('429', 0):.0f} / "
         f"{burst_5xx:.0f}", target(burst_5xx == 0, "0 x 5xx")),
        ("Airflow p50 / p99 during the burst, ms",
         f"{burst['probe_p50']:.1f} / {burst['probe_p99']:.1f}", ""),
        (f"{storm['events']:.0f}-event storm: seconds / events per second",
         f"{storm['seconds']:.1f} / {storm['events_per_second']:.1f}", ""),
        ("storm: recorded / failed after retries / Airflow 5xx",
         f"{storm['recorded']:.0f} / {storm['failed_after_retries']:.0f} / "
         f"{storm['airflow_5xx']:.0f}",
         target(storm["failed_after_retries"] == 0 and storm["airflow_5xx"] == 0,
                "all recorded, 0 failed")),
        ("CreateEnvironment -> AVAILABLE, s (Airflow direct)",
         f"{startup['airgate_seconds']:.1f} ({startup['direct_seconds']:.1f})",
         target(startup["airgate_seconds"] < 20, "< 20 s")),
        ("airgate RSS idle / under load, MiB",
         f"{gateway['airgate_idle_rss_mib']:.0f} / {gateway['airgate_load_rss_mib']:.0f}", ""),
        ("one idle environment RSS / PSS, MiB",
         f"{startup['environment_rss_mib']:.0f} / {startup['environment_pss_mib']:.0f}", ""),
        ("trivial upstream inside the InvokeRestApi run: added p50, ms / req/s",
         f"{trivial['added_p50']:.3f} / {trivial['per_second']:.0f}", ""),
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
    args = parser.parse_args()
    runs = str(args.runs)

    def repeated(script: str) -> dict[str, Any]:
        return medians([run_benchmark(script) for _ in range(args.runs)])

    figures: dict[str, Any] = {
        "machine": machine(),
        "runs": args.runs,
        "gateway_throughput": run_benchmark("gateway_throughput.py", "--runs", runs),
        "invoke_rest_api": repeated("invoke_rest_api.py"),
        "event_storm": repeated("event_storm.py"),
        "environment_startup": run_benchmark("environment_startup.py", "--runs", runs),
    }
    args.json.write_text(json.dumps(figures, indent=2))  # kept even if the table fails
    rows = table(figures)
    figures["table"] = [{"measure": m, "value": v, "target": t} for m, v, t in rows]
    info = figures["machine"]
    print(f"\n{info['date']}: {info['cores']} cores ({info['cpu']}), {info['memory_gib']} GiB, "
          f"Python {info['python']}; each figure the median of {args.runs} runs")
    print_rows(rows)
    args.json.write_text(json.dumps(figures, indent=2))
    print(f"\nfigures: {args.json}")


if __name__ == "__main__":
    main()
