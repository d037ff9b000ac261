"""Airflow processes that outlived the airgate that started them.

Components run in process groups of their own, so they survive airgate being killed with
SIGKILL (or by the OOM killer); the next airgate must end them before it starts the
environment again, or they would hold its ports and its metadata database. They are found
by what every process of an environment has and nothing else has: its AIRFLOW_HOME,
inherited by every descendant (task subprocesses, executor workers, `airflow db migrate`,
pip), even one that started a session of its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import psutil

_log = logging.getLogger("airgate.leftovers")


def processes_with_home(airflow_home: Path, uid: int | None = None) -> list[psutil.Process]:
    """The processes whose AIRFLOW_HOME is airflow_home, that run in that folder, or that
    run under the environment's own uid (when its sandbox gives it one)."""
    wanted = str(airflow_home)
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if uid is not None and uid in process.uids():
                found.append(process)
                continue
            # A deleted folder still shows as "<path> (deleted)".
            cwd = process.cwd().removesuffix(" (deleted)")
            if cwd == wanted or process.environ().get("AIRFLOW_HOME") == wanted:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def end_processes_with_home(airflow_home: Path, uid: int | None = None,
                            grace: float = 10.0) -> list[int]:
    """Terminate, then after `grace` seconds kill, every process of that environment.
    Returns the PIDs that were found."""
    found = processes_with_home(airflow_home, uid)
    if not found:
        return []
    pids = [process.pid for process in found]
    _log.warning("ending Airflow processes left by an earlier airgate", extra={"fields": {
        "airflow_home": str(airflow_home), "pids": pids}})
    for process in found:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            process.terminate()
    _, remaining = psutil.wait_procs(found, timeout=grace)
    for process in remaining:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            process.kill()
    psutil.wait_procs(remaining, timeout=grace)
    return pids
