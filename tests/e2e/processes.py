"""An environment's processes as the tests find them: without airgate's own code
(src/airgate/environments/leftovers.py), so that a process the product misses is still
found, reported and ended by the test.

A process belongs to the environment whose folder is `root` if any of these holds:
- it runs under the environment's own uid (the owner airgate gives its AIRFLOW_HOME when
  the sandbox has a uid per environment, as when the tests run as root: from 2,000,000,000);
- it is a bubblewrap process whose command line binds one of the environment's folders, or
  a descendant of one (every component, task, pip, startup script and migration runs
  inside one);
- its command line or its working directory names the environment's folder (setup commands,
  and every process when environments are not sandboxed).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import psutil

SANDBOX_UID_BASE = 2_000_000_000


class EnvironmentProcesses:
    """The processes of the environment in `root` (`$AIRGATE_HOME/environments/NAME`).
    Its uid is remembered once seen, so that its processes are still found after airgate
    has removed its folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uid: int | None = None

    def _learn_uid(self) -> None:
        if self.uid is None:
            with contextlib.suppress(OSError):
                owner = (self.root / "airflow").stat().st_uid
                if owner >= SANDBOX_UID_BASE:
                    self.uid = owner

    def _inside(self, path: str) -> bool:
        return any(path == folder or path.startswith(folder + "/")
                   for folder in {str(self.root), str(self.root.resolve())})

    def find(self) -> list[psutil.Process]:
        """Every live (non-zombie) process of the environment, this test process excluded."""
        self._learn_uid()
        found: dict[int, psutil.Process] = {}
        sandboxes: list[psutil.Process] = []
        for process in psutil.process_iter():
            try:
                if process.pid == os.getpid():
                    continue
                if process.status() == psutil.STATUS_ZOMBIE:
                    continue
                if self.uid is not None and self.uid in process.uids():
                    found[process.pid] = process
                elif any(self._inside(argument) for argument in process.cmdline()):
                    found[process.pid] = process
                    if process.name() == "bwrap":
                        sandboxes.append(process)
                elif self._inside(process.cwd().removesuffix(" (deleted)")):
                    found[process.pid] = process
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        for sandbox in sandboxes:
            with contextlib.suppress(psutil.NoSuchProcess):
                for child in sandbox.children(recursive=True):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        if child.status() != psutil.STATUS_ZOMBIE:
                            found[child.pid] = child
        return sorted(found.values(), key=lambda process: process.pid)

    def describe(self, processes: list[psutil.Process]) -> list[str]:
        """`pid uid command` for an assertion message."""
        lines = []
        for process in processes:
            with contextlib.suppress(psutil.Error):
                lines.append(f"{process.pid} uid={process.uids().real} "
                             f"{' '.join(process.cmdline())[:160]}")
        return lines

    def not_descended_from(self, pid: int) -> list[psutil.Process]:
        """The environment's processes that `pid` (an airgate) did not start."""
        strays = []
        for process in self.find():
            with contextlib.suppress(psutil.NoSuchProcess):
                if pid not in [parent.pid for parent in process.parents()]:
                    strays.append(process)
        return strays

    def kill_all(self) -> list[str]:
        """SIGKILL every process of the environment; what was killed, described."""
        found = self.find()
        described = self.describe(found)
        for process in found:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(found, timeout=10)
        return described
