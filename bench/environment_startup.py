"""Seconds from CreateEnvironment to AVAILABLE, against starting the same Airflow directly,
and the memory of an idle environment, part by part.

    .venv/bin/python bench/environment_startup.py [--runs 3]

Both sides run in the same invocation, one after the other: airgate (boto3 CreateEnvironment,
polling GetEnvironment) and "direct" (airflow db migrate, then the four components started by
hand with the same configuration, polling Airflow's health endpoint). The ratio is what the
control plane costs, or saves; the machine's noise cancels out of it better than out of the
seconds. Every run is a new airgate home sharing one folder of migrated metadata templates
(environments/templates.py): a first, extra run makes the template (its time is printed on
its own), the runs after it start from copies, as every environment after a version's first
does.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import running_airgate

from airgate.airflow.major import Placement, Ports
from airgate.airflow.v3 import AIRFLOW_3
from airgate.environments import provision
from airgate.environments.airflow_config import airflow_environment
from airgate.environments.executors import LocalExecution
from airgate.environments.layout import EnvironmentLayout, free_port
from airgate.environments.local import LocalRuntime, health_url, is_healthy
from airgate.server import local_runtime

SPEC = {"ExecutionRoleArn": "arn:aws:iam::000000000000:role/airflow",
        "SourceBucketArn": "arn:aws:s3:::bench", "DagS3Path": "dags",
        "NetworkConfiguration": {}}


def through_airgate(home: Path, name: str, sandbox: str = "auto",
                    version: str | None = None,
                    templates: bool = True) -> tuple[float, dict[str, Any]]:
    (home / "buckets" / "bench" / "dags").mkdir(parents=True, exist_ok=True)
    TEMPLATES.mkdir(parents=True, exist_ok=True)
    (home / "templates").symlink_to(TEMPLATES)
    if version is not None:  # an installed runtime, shared by the runs (not timed here)
        (home / "runtimes").mkdir(parents=True, exist_ok=True)
        (home / "runtimes" / version).symlink_to(RUNTIMES / version)
    steps = StartSteps()
    logging.getLogger("airgate.runtime").addHandler(steps)
    logging.getLogger("airgate.runtime").setLevel(logging.INFO)
    with running_airgate(home, runtime_factory=local_runtime, sandbox=sandbox,
                         metadata_templates=templates) as server:
        mwaa = server.client()
        started = time.perf_counter()
        mwaa.create_environment(Name=name, **SPEC,
                                **({"AirflowVersion": version} if version else {}))
        while (status := mwaa.get_environment(Name=name)["Environment"]["Status"]) != "AVAILABLE":
            if status.endswith("FAILED"):
                raise RuntimeError(mwaa.get_environment(Name=name)["Environment"]["LastUpdate"])
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        time.sleep(20)  # let it settle into idle
        runtime = server.airgate.runtime
        assert isinstance(runtime, LocalRuntime)
        memory = tree_memory(runtime.pids(name))
    memory["steps"] = steps.seconds
    logging.getLogger("airgate.runtime").removeHandler(steps)
    return elapsed, memory


class StartSteps(logging.Handler):
    """The seconds of each step of an environment's start, as airgate logs them."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "environment started":
            self.seconds = dict(getattr(record, "fields", {}).get("seconds", {}))


# Airflow runtimes other than airgate's own, installed once for every benchmark run.
RUNTIMES = Path(tempfile.gettempdir()) / "airgate-bench-runtimes"
# Migrated metadata templates, made by this invocation's first run for the runs after it.
TEMPLATES = Path(tempfile.gettempdir()) / f"airgate-bench-templates-{os.getpid()}"


def install_runtime(version: str) -> float | None:
    """Install `version`'s runtime where the runs share it; the seconds it took, or None if
    it was there already."""
    from airgate.environments.versions import AirflowRuntimes
    from airgate.server import default_airflow_version

    runtimes = AirflowRuntimes(RUNTIMES.parent / "airgate-bench-home", default_airflow_version())
    if (RUNTIMES / version / "ready").exists():
        return None
    started = time.perf_counter()
    runtimes.interpreter(version)
    RUNTIMES.mkdir(parents=True, exist_ok=True)
    (runtimes.folder(version)).rename(RUNTIMES / version)
    return time.perf_counter() - started


def directly(root: Path) -> float:
    """The same configuration, started by hand: db migrate, four processes, health."""
    layout = EnvironmentLayout.of(root, "direct")
    layout.create()
    provision.keys(layout)
    dags = root / "dags"
    dags.mkdir()
    ports = Ports(free_port(), free_port(), free_port(), free_port())
    placement = Placement("direct", layout.airflow_home, layout.own_key, layout.jwks,
                          layout.support, layout.web_secret.read_text().strip(), ports, "http")
    env = airflow_environment(SPEC, layout, placement, AIRFLOW_3, str(dags),
                              layout.fernet_key.read_text().strip(), Path(sys.executable),
                              dict(os.environ),
                              AIRFLOW_3.database_options(None, layout.database),
                              LocalExecution().options("direct", SPEC))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True,
                   capture_output=True)
    processes = []
    for component in AIRFLOW_3.components:
        argv = [sys.executable, "-m", "airflow", *AIRFLOW_3.argv(component, ports)]
        processes.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True))
    try:
        with httpx.Client(timeout=5) as client:
            while True:
                try:
                    if is_healthy(client.get(health_url(ports.api)).json()):
                        return time.perf_counter() - started
                except (httpx.HTTPError, ValueError):
                    pass
                time.sleep(0.1)
    finally:
        for process in processes:
            os.killpg(process.pid, 15)
        for process in processes:
            process.wait(timeout=30)


def tree_memory(components: dict[str, int]) -> dict[str, Any]:
    """Resident (RSS) and proportional (PSS, shared pages split) MiB over each component's
    process tree (the sandbox's own small processes included), and PSS per process."""
    rss = pss = 0.0
    parts: dict[str, float] = {}
    for component, pid in components.items():
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            try:
                info = process.memory_full_info()
                # Without what differs between runs (ports, scratch folders), so that the
                # runs' figures for one process line up.
                title = re.sub(r"\d{4,}|/tmp/tmp\w+", "*",
                               " ".join(process.cmdline()[:3]))[:60]
            except psutil.NoSuchProcess:
                continue
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
            key = f"{component}: {title}"
            parts[key] = parts.get(key, 0.0) + getattr(info, "pss", info.rss) / 2**20
    return {"rss_mib": rss / 2**20, "pss_mib": pss / 2**20, "pss_by_process_mib": parts}


def statistics_by_key(runs: list[dict[str, float]]) -> dict[str, float]:
    """The median of each key over the runs (0 in a run that lacked it)."""
    keys = list(dict.fromkeys(key for run in runs for key in run))
    return {key: statistics.median(run.get(key, 0.0) for run in runs) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--sandbox", choices=["auto", "off"], default="auto",
                        help="environment isolation for the airgate side (off: to measure "
                        "what the sandbox costs)")
    parser.add_argument("--no-templates", action="store_true",
                        help="every environment migrates an empty database (to measure what "
                        "the metadata templates save)")
    parser.add_argument("--airflow-version", help="another Airflow version than airgate's "
                        "own (e.g. 2.10.3): its runtime is installed once, first, and the "
                        "comparison with Airflow started directly is left out")
    args = parser.parse_args()
    version = args.airflow_version
    install_seconds = install_runtime(version) if version else None
    airgate_times, direct_times, memories = [], [], []
    with tempfile.TemporaryDirectory() as scratch:  # makes the template; timed apart
        first, _ = through_airgate(Path(scratch) / "home", "bench-first", args.sandbox, version,
                                   not args.no_templates)
    print(f"first environment of its version (template made): {first:.1f} s", flush=True)
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as scratch:
            seconds, memory = through_airgate(Path(scratch) / "home", f"bench-{run}",
                                              args.sandbox, version, not args.no_templates)
            airgate_times.append(seconds)
            memories.append(memory)
        if version is None:
            with tempfile.TemporaryDirectory() as scratch:
                direct_times.append(directly(Path(scratch)))
        print(f"run {run + 1}: airgate {airgate_times[-1]:.1f} s"
              + (f", direct {direct_times[-1]:.1f} s" if direct_times else ""), flush=True)

    a = statistics.median(airgate_times)
    d = statistics.median(direct_times) if direct_times else float("nan")
    rss = statistics.median(m["rss_mib"] for m in memories)
    pss = statistics.median(m["pss_mib"] for m in memories)
    print()
    print(f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; "
          f"median of {args.runs} runs")
    print(f"| {'measure':<44} | {'value':>10} |")
    print(f"| {'-' * 44} | {'-' * 10}:|")
    print(f"| {'CreateEnvironment -> AVAILABLE (airgate), s':<44} | {a:>10.1f} |")
    if direct_times:
        print(f"| {'migrate + start + healthy (direct), s':<44} | {d:>10.1f} |")
        print(f"| {'ratio airgate / direct':<44} | {a / d:>10.2f} |")
    if install_seconds is not None:
        print(f"| {f'Airflow {version} runtime install (first use), s':<44} | "
              f"{install_seconds:>10.1f} |")
    print(f"| {'idle environment RSS, MiB (shared counted)':<44} | {rss:>10.0f} |")
    print(f"| {'idle environment PSS, MiB (shared split)':<44} | {pss:>10.0f} |")
    print(f"| {'first environment of a version, s':<44} | {first:>10.1f} |")
    steps = statistics_by_key([m["steps"] for m in memories])
    for step, seconds in steps.items():
        print(f"| {'  step ' + step + ', s':<44} | {seconds:>10.2f} |")
    parts = statistics_by_key([m["pss_by_process_mib"] for m in memories])
    for part, mib in sorted(parts.items(), key=lambda item: -item[1]):
        print(f"| {'  PSS ' + part:<44} | {mib:>10.0f} |")
    print(f"| {'target: AVAILABLE under 20 s':<44} | {'met' if a < 20 else 'NOT MET':>10} |")
    if args.json:
        args.json.write_text(json.dumps({
            "airflow_version": version or "default", "runtime_install_seconds": install_seconds,
            "airgate_seconds": a, "direct_seconds": d if direct_times else None,
            "ratio": a / d if direct_times else None,
            "environment_rss_mib": rss, "environment_pss_mib": pss,
            "pss_by_process_mib": parts, "first_environment_seconds": first,
            "steps": steps,
            "runs": {"airgate": airgate_times, "direct": direct_times}}, indent=2))


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(TEMPLATES, ignore_errors=True)
