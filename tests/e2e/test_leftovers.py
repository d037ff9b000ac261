"""How airgate finds the processes an earlier airgate left (environments/leftovers.py): by
AIRFLOW_HOME in the process environment, by working directory (setproctitle, which Airflow's
components call, overwrites /proc/PID/environ), and by the environment's own uid. Each way
is tested alone, with real processes, checked from outside with psutil."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from airgate.environments.leftovers import end_processes_with_home, processes_with_home

pytestmark = pytest.mark.e2e

# Like an Airflow component: setproctitle with the title Airflow gives, then wait.
RETITLED = """
import sys, time, setproctitle
setproctitle.setproctitle("airflow scheduler -- " + "x" * 40)
print("ready", flush=True)
time.sleep(120)
"""


def started(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


@pytest.fixture
def airflow_home(tmp_path: Path) -> Path:
    home = tmp_path / "environments" / "env" / "airflow"
    home.mkdir(parents=True)
    return home


def test_a_process_whose_environment_setproctitle_blanked_is_found_by_its_folder(
        airflow_home: Path, tmp_path: Path, spawned: list[subprocess.Popen[str]]) -> None:
    retitled = started([sys.executable, "-c", RETITLED], airflow_home,
                       {"AIRFLOW_HOME": str(airflow_home), "PATH": "/usr/bin:/bin"})
    spawned.append(retitled)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    bystander = started([sys.executable, "-c", RETITLED], elsewhere, {"PATH": "/usr/bin:/bin"})
    spawned.append(bystander)
    # The premise: the variable is gone from what /proc shows, as for Airflow's components.
    assert "AIRFLOW_HOME" not in psutil.Process(retitled.pid).environ()
    assert psutil.Process(retitled.pid).cmdline()[0].startswith("airflow scheduler")

    assert [p.pid for p in processes_with_home(airflow_home)] == [retitled.pid]
    # Also once the folder is deleted ("<path> (deleted)"), as after a half-done delete.
    shutil.rmtree(airflow_home)
    assert [p.pid for p in processes_with_home(airflow_home)] == [retitled.pid]

    assert end_processes_with_home(airflow_home, grace=5) == [retitled.pid]
    assert retitled.wait(timeout=10) is not None
    assert bystander.poll() is None  # not the environment's: left alone


def test_a_process_with_only_airflow_home_in_its_environment_is_found(
        airflow_home: Path, tmp_path: Path, spawned: list[subprocess.Popen[str]]) -> None:
    """A task subprocess that changed directory still has the variable."""
    child = started([sys.executable, "-c", "import time; print('ready', flush=True); "
                     "time.sleep(120)"], tmp_path, {"AIRFLOW_HOME": str(airflow_home)})
    spawned.append(child)
    assert psutil.Process(child.pid).cwd() == str(tmp_path)
    assert [p.pid for p in processes_with_home(airflow_home)] == [child.pid]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="running a process under another uid needs root and setpriv")
def test_a_process_with_only_the_environments_uid_is_found(
        airflow_home: Path, tmp_path: Path, spawned: list[subprocess.Popen[str]]) -> None:
    """A process of the environment that kept neither its folder nor the variable (a task
    that changed directory and cleared its environment) is still the environment's uid."""
    # Above the range environments' uids are drawn from (sandbox.UID_BASE + UID_SPAN), so
    # that no real environment on this machine shares it.
    uid = 3_000_000_000 + (1 << 24) + 1 + os.getpid()
    tmp_path.chmod(0o755)
    foreign = started(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--",
                       sys.executable, "-c", RETITLED], Path("/"), {"PATH": "/usr/bin:/bin"})
    spawned.append(foreign)
    process = psutil.Process(foreign.pid)
    assert process.uids().real == uid
    assert process.cwd() == "/" and "AIRFLOW_HOME" not in process.environ()

    assert processes_with_home(airflow_home) == []  # nothing else marks it
    assert [p.pid for p in processes_with_home(airflow_home, uid)] == [foreign.pid]
    assert end_processes_with_home(airflow_home, uid, grace=5) == [foreign.pid]
    assert foreign.wait(timeout=10) is not None
