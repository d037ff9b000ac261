"""An environment's Celery workers on this machine, as many as its autoscaler says
(less those `airgate worker` runs for it on other machines).

Workers are components of the environment's process group (worker-1, worker-2, ...),
supervised like the scheduler. More start when queued and running tasks need them; when
fewer would do, the idlest go (those with no task in hand first, the newest among equals)
by Celery's warm shutdown: SIGTERM to the worker's own process only, which stops taking
tasks, finishes the ones it has and exits. Its task processes never see a signal.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from airgate.environments.autoscaler import WorkerScaler
from airgate.environments.executors import WORKER_PREFIX
from airgate.environments.supervisor import ComponentSpec, ProcessGroup

__all__ = ["WARM_STOP_TIMEOUT", "TaskCounts", "WorkerPool", "tasks_in_hand", "warm_stop"]

_log = logging.getLogger("airgate.workers")

# How long a retiring worker may take to finish its tasks before it is killed.
WARM_STOP_TIMEOUT = 12 * 3600.0


@dataclass(frozen=True, slots=True)
class TaskCounts:
    """The environment's task instances a worker has or will have."""

    queued: int
    running: int


class WorkerPool:
    def __init__(self, environment: str, group: ProcessGroup,
                 spec_of: Callable[[str], ComponentSpec], scaler: WorkerScaler,
                 count_tasks: Callable[[], TaskCounts],
                 count_remote: Callable[[], int] = lambda: 0) -> None:
        self._environment = environment
        self._group = group
        self._spec_of = spec_of
        self._scaler = scaler
        self._count_tasks = count_tasks
        # Workers `airgate worker` runs for the environment on other machines
        # (environments/remote.py): the scaler plans for all, this machine runs the rest.
        self._count_remote = count_remote
        self._lock = threading.Lock()
        self.tasks = TaskCounts(0, 0)  # as last counted
        self.remote = 0  # as last counted

    def workers(self) -> list[str]:
        """The workers running or being restarted (not those retiring)."""
        return sorted((name for name in self._group.alive()
                       if name.startswith(WORKER_PREFIX)), key=_number)

    def running(self) -> int:
        """Workers whose process runs now, here and (as last reported) elsewhere."""
        return self.remote + sum(1 for name, up in self._group.alive().items()
                                 if up and name.startswith(WORKER_PREFIX))

    def bound(self, minimum: int, maximum: int) -> None:
        with self._lock:
            self._scaler.bound(minimum, maximum)

    def tend(self, now: float | None = None) -> None:
        """Count the tasks, and start or retire workers to match."""
        try:
            tasks = self._count_tasks()
            remote = self._count_remote()
        except Exception as error:  # a server is away: try again next time
            _log.warning("could not count tasks", extra={"fields": {
                "environment": self._environment, "error": str(error)}})
            return
        with self._lock:
            self.tasks, self.remote = tasks, remote
            workers = self.workers()
            total = self._scaler.target(len(workers) + remote, tasks.queued + tasks.running,
                                        time.monotonic() if now is None else now)
            target = max(0, total - remote)
            if target > len(workers):
                self._start(target - len(workers), workers)
            elif target < len(workers):
                self._retire(len(workers) - target, workers)

    def _start(self, count: int, workers: list[str]) -> None:
        taken = {*workers, *self._group.retiring()}
        names = [name for name in (f"{WORKER_PREFIX}{n}" for n in range(1, 1000))
                 if name not in taken][:count]
        for name in names:
            self._group.add(self._spec_of(name))
        _log.info("workers started", extra={"fields": {
            "environment": self._environment, "workers": names}})

    def _retire(self, count: int, workers: list[str]) -> None:
        def in_hand(name: str) -> int:
            process = self._group.process(name)
            return tasks_in_hand(process) if process is not None else 0

        idlest = sorted(workers, key=lambda name: (in_hand(name), -_number(name)))[:count]
        for name in idlest:
            self._group.retire(name, warm_stop)
        _log.info("workers retiring (warm shutdown)", extra={"fields": {
            "environment": self._environment, "workers": idlest}})


def _number(name: str) -> int:
    return int(name.removeprefix(WORKER_PREFIX))


def _worker_main(process: subprocess.Popen[bytes]) -> psutil.Process | None:
    """The worker's own (Python) process: the launched one, or in a sandbox the first
    Python process under bubblewrap and its helpers."""
    try:
        found = psutil.Process(process.pid)
        while "python" not in os.path.basename(found.exe()):
            children = found.children()
            if not children:
                return None
            found = children[0]
        return found
    except psutil.Error:
        return None


def tasks_in_hand(process: subprocess.Popen[bytes]) -> int:
    """Tasks a worker is running: its pool processes with a task process under them."""
    main = _worker_main(process)
    if main is None:
        return 0
    try:
        return sum(1 for child in main.children() if child.children())
    except psutil.Error:
        return 0


def warm_stop(process: subprocess.Popen[bytes], timeout: float = WARM_STOP_TIMEOUT) -> None:
    """Celery's warm shutdown: SIGTERM to the worker's own process, then wait for it to
    finish its tasks and exit."""
    main = _worker_main(process)
    if main is None:
        return  # not running any more: nothing to finish
    try:
        main.send_signal(signal.SIGTERM)
    except psutil.Error:
        return
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _log.warning("worker still busy after its warm shutdown's time; killing it",
                     extra={"fields": {"pid": process.pid}})
