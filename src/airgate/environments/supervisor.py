"""Supervision of an environment's processes, modelled on uvicorn's supervisors.

Each component (api-server, scheduler, ...) runs in its own process group with its output
in a log file. A watcher restarts a component that dies, with exponential backoff. Stopping
is terminate -> wait -> kill, for the whole group, so no grandchild (a task's subprocess, a
LocalExecutor worker) outlives it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from airgate.environments.sandbox import UNCONFINED, Confinement

_log = logging.getLogger("airgate.supervisor")

BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 30.0
# A component that stayed up this long is healthy again: its backoff starts over.
STABLE_AFTER = 60.0
WATCH_INTERVAL = 0.5


@dataclass(frozen=True, slots=True)
class ComponentSpec:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_file: Path
    cwd: Path
    sandbox: Confinement = UNCONFINED  # where it runs (environments/sandbox.py)


@dataclass(frozen=True, slots=True)
class ComponentState:
    """What metrics and `airgate status` say of a component."""

    up: bool
    restarts: int


@dataclass(slots=True)
class _Component:
    spec: ComponentSpec
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = BACKOFF_INITIAL
    next_start: float = 0.0
    exits: list[int] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class ProcessGroup:
    """The supervised processes of one environment."""

    def __init__(self, specs: Sequence[ComponentSpec]) -> None:
        self._components = {spec.name: _Component(spec) for spec in specs}
        # Components taken out of supervision and ending on their own terms (retire).
        self._retiring: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            for component in self._components.values():
                self._spawn(component)
        self._watcher = threading.Thread(target=self._watch, daemon=True,
                                         name=f"supervisor-{id(self):x}")
        self._watcher.start()

    def add(self, spec: ComponentSpec) -> None:
        """One more component (a worker the autoscaler asked for), started and supervised
        from now on."""
        with self._lock:
            if self._stopping.is_set() or spec.name in self._components:
                return
            component = self._components[spec.name] = _Component(spec)
            self._spawn(component)

    def retire(self, name: str, end: Callable[[subprocess.Popen[bytes]], None]) -> None:
        """Take `name` out of supervision and let `end` stop its process in its own way
        (a Celery worker's warm shutdown: it finishes its tasks first), in a thread of its
        own; whatever of its process group is left after that is killed. `stop` ends it
        at once, should the whole group stop meanwhile."""
        with self._lock:
            component = self._components.pop(name, None)
            if component is None or component.process is None:
                return
            process = self._retiring[name] = component.process

        def run() -> None:
            try:
                end(process)
            except Exception:
                _log.exception("component did not retire cleanly",
                               extra={"fields": {"component": name}})
            finally:
                _signal_group(process, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
                with self._lock:
                    self._retiring.pop(name, None)

        threading.Thread(target=run, daemon=True, name=f"retire-{name}").start()

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate every component's process group, wait, then kill what is left."""
        self._stopping.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=5)
        with self._lock:
            live = [c for c in self._components.values() if c.process is not None]
            live += [_Component(ComponentSpec(name, (), {}, Path(), Path()), process)
                     for name, process in self._retiring.items()]
            for component in live:
                _signal_group(component.process, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for component in live:
                assert component.process is not None
                remaining = max(0.1, deadline - time.monotonic())
                try:
                    component.process.wait(timeout=remaining)
                except subprocess.TimeoutExpired:
                    _log.warning("component did not stop in time; killing it",
                                 extra={"fields": {"component": component.spec.name}})
                # Children the component left behind die with its group.
                _signal_group(component.process, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    component.process.wait(timeout=5)

    # --- observation -----------------------------------------------------------------

    def alive(self) -> dict[str, bool]:
        with self._lock:
            return {name: c.alive for name, c in self._components.items()}

    def pids(self) -> dict[str, int]:
        with self._lock:
            return {name: c.process.pid for name, c in self._components.items()
                    if c.process is not None and c.alive}

    def retiring(self) -> list[str]:
        """Components retired and still ending (a worker finishing its tasks)."""
        with self._lock:
            return sorted(self._retiring)

    def process(self, name: str) -> subprocess.Popen[bytes] | None:
        """The process a supervised component runs as now, if it runs."""
        with self._lock:
            component = self._components.get(name)
            return component.process if component is not None and component.alive else None

    def restarts(self) -> dict[str, int]:
        with self._lock:
            return {name: c.restarts for name, c in self._components.items()}

    # --- internals -------------------------------------------------------------------

    def _spawn(self, component: _Component) -> None:
        spec = component.spec
        spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(spec.log_file, "ab") as log, spec.sandbox.launch(spec.argv,
                                                                    spec.env) as launch:
            component.process = subprocess.Popen(
                launch.args, env=launch.env, pass_fds=launch.pass_fds, cwd=spec.cwd,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        component.started_at = time.monotonic()

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_INTERVAL):
            with self._lock:
                if self._stopping.is_set():
                    return
                now = time.monotonic()
                for component in self._components.values():
                    self._tend(component, now)

    def _tend(self, component: _Component, now: float) -> None:
        process = component.process
        if process is None or process.poll() is None:
            if process is not None and now - component.started_at > STABLE_AFTER:
                component.backoff = BACKOFF_INITIAL
            if process is None and now >= component.next_start:
                self._spawn(component)
            return
        # It exited: reap it (and its group), then schedule a restart with backoff.
        component.exits.append(process.returncode)
        _signal_group(process, signal.SIGKILL)
        component.process = None
        component.restarts += 1
        component.next_start = now + component.backoff
        _log.warning("component exited; restarting", extra={"fields": {
            "component": component.spec.name, "returncode": process.returncode,
            "restart_in_s": component.backoff}})
        component.backoff = min(component.backoff * 2, BACKOFF_MAX)


def _signal_group(process: subprocess.Popen[bytes] | None, signum: int) -> None:
    if process is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)
