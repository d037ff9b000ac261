"""An environment's worker pool on real processes: started as the autoscaler asks, the
idlest retired first, and retired by a warm shutdown that never signals a task.

The "workers" are small Python programs shaped like a Celery prefork worker: a main process
with a pool process, which runs a task process while busy. On SIGTERM the main process
waits for its task to end, then exits, as Celery's warm shutdown does.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from airgate.environments.autoscaler import WorkerScaler
from airgate.environments.supervisor import ComponentSpec, ProcessGroup
from airgate.environments.workers import TaskCounts, WorkerPool, tasks_in_hand, warm_stop

WORKER = r'''
import os, signal, sys, time
busy, done = sys.argv[1] == "busy", sys.argv[2]
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
pool = os.fork()
if pool == 0:  # the pool process: runs a task process while busy
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if busy:
        task = os.fork()
        if task == 0:
            signal.signal(signal.SIGTERM, lambda *_: os._exit(9))  # a killed task says so
            while not os.path.exists(done + ".release"):  # the test says when it ends
                time.sleep(0.05)
            open(done, "w").write("task finished")
            os._exit(0)
        os.waitpid(task, 0)
    while True:
        time.sleep(0.1)
while not stopping:
    time.sleep(0.05)
while busy and not os.path.exists(done):  # warm shutdown: the task first
    time.sleep(0.05)
os.kill(pool, signal.SIGKILL)
'''


def wait_until(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_the_pool_grows_then_retires_the_idlest_by_warm_shutdown(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    busy = {"worker-2"}

    def spec_of(name: str) -> ComponentSpec:
        mode = "busy" if name in busy else "idle"
        return ComponentSpec(name, [sys.executable, str(script), mode,
                                    str(tmp_path / f"{name}.done")], {},
                             tmp_path / f"{name}.log", tmp_path)

    tasks = TaskCounts(queued=0, running=0)
    group = ProcessGroup([spec_of("worker-1")])
    pool = WorkerPool("env", group, spec_of,
                      WorkerScaler(minimum=1, maximum=3, per_worker=2, quiet_seconds=5),
                      lambda: tasks)
    group.start()
    try:
        tasks = TaskCounts(queued=5, running=1)  # 6 tasks: 3 workers of 2
        pool.tend(now=0)
        assert pool.workers() == ["worker-1", "worker-2", "worker-3"]
        assert pool.tasks == tasks
        wait_until(lambda: pool.running() == 3, 10)
        worker_2 = group.process("worker-2")
        assert worker_2 is not None
        wait_until(lambda: tasks_in_hand(worker_2) == 1, 10)

        tasks = TaskCounts(queued=0, running=1)
        pool.tend(now=1)  # fewer would do, but not for the quiet period yet
        assert pool.workers() == ["worker-1", "worker-2", "worker-3"]
        pool.tend(now=6)  # quiet for 5 s: down to 1, the busy worker kept
        assert pool.workers() == ["worker-2"]
        assert sorted(group.retiring()) in (["worker-1", "worker-3"], [])
        wait_until(lambda: not group.retiring(), 10)

        # A busy worker's warm shutdown: SIGTERM to its own process only; it waits for
        # its task, which no signal reaches, and exits when the task is done.
        group.retire("worker-2", warm_stop)
        assert pool.workers() == []
        time.sleep(1.0)
        assert group.retiring() == ["worker-2"]  # still finishing its task
        assert worker_2.poll() is None
        (tmp_path / "worker-2.done.release").write_text("")
        wait_until(lambda: not group.retiring(), 10)
        assert (tmp_path / "worker-2.done").read_text() == "task finished"
        assert worker_2.returncode == 0  # it exited on its own, after its task
    finally:
        group.stop(5)


def test_workers_on_other_machines_count_toward_the_bounds_and_the_need(
        tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)

    def spec_of(name: str) -> ComponentSpec:
        return ComponentSpec(name, [sys.executable, str(script), "idle",
                                    str(tmp_path / f"{name}.done")], {},
                             tmp_path / f"{name}.log", tmp_path)

    tasks, remote = TaskCounts(queued=6, running=0), 2
    group = ProcessGroup([spec_of("worker-1")])
    pool = WorkerPool("env", group, spec_of,
                      WorkerScaler(minimum=1, maximum=4, per_worker=2, quiet_seconds=5),
                      lambda: tasks, lambda: remote)
    group.start()
    try:
        pool.tend(now=0)  # 6 tasks: 3 workers, 2 of them elsewhere
        assert pool.workers() == ["worker-1"]
        assert pool.remote == 2
        wait_until(lambda: pool.running() == 3, 10)  # reported as 1 here + 2 elsewhere
        tasks = TaskCounts(queued=12, running=0)  # 6 would do; MaxWorkers is 4
        pool.tend(now=1)
        assert pool.workers() == ["worker-1", "worker-2"]
        remote = 4  # the other machine alone fills MaxWorkers: this one's go at once
        pool.tend(now=2)
        assert pool.workers() == []
        assert pool.remote == 4
        wait_until(lambda: not group.retiring(), 10)
        remote = 0  # that machine is lost (its report ran out): the need is met here
        pool.tend(now=3)
        assert pool.workers() == ["worker-1", "worker-2", "worker-3", "worker-4"]
    finally:
        group.stop(5)
