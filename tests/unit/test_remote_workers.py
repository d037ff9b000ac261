"""`airgate worker`'s loop on a real store and real processes (the environment's
preparation, which needs Airflow, is replaced by small Python "workers"): it refuses what
can't take workers, reports its workers, starts them again with each new kit the runner
seals, and when the environment is deleted stops them and withdraws its report."""

from __future__ import annotations

import datetime
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from cryptography.fernet import Fernet

from airgate.auth.secrets import SecretBox
from airgate.environments import remote
from airgate.environments.remote import KIT, RemoteWorkerError, RemoteWorkers, WorkerKit
from airgate.environments.store import EnvironmentRecord, EnvironmentStore
from airgate.environments.supervisor import ComponentSpec
from airgate.environments.worker_reports import WorkerReports
from airgate.store.db import Database

BOX = SecretBox(Fernet.generate_key())
WORKER = "import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n" \
         "while True:\n    time.sleep(0.05)\n"


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EnvironmentStore]:
    db = Database(f"sqlite:///{tmp_path / 'state.db'}")
    yield EnvironmentStore(db)
    db.close()


def environment(store: EnvironmentStore, name: str, executor: str) -> None:
    store.create(name, {"AirflowVersion": "3.2.1"}, {}, datetime.datetime.now(datetime.UTC),
                 "test")
    store.transition(name, allowed_from=None, status="AVAILABLE")
    store.note_runtime(name, Executor=executor)


def agent(tmp_path: Path, store: EnvironmentStore, name: str,
          prepared: list[WorkerKit]) -> RemoteWorkers:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = RemoteWorkers(tmp_path / "second", name, store, WorkerReports(store._db), BOX,
                            sources=None, runtimes=None, sandbox=None,  # type: ignore[arg-type]
                            workers=2, node="n1")

    def prepare(record: EnvironmentRecord, kit: WorkerKit) -> list[ComponentSpec]:
        prepared.append(kit)
        return [ComponentSpec(f"remote-n1-{n}", [sys.executable, str(script)], {},
                              tmp_path / f"w{n}.log", tmp_path) for n in (1, 2)]

    workers._prepare = prepare  # type: ignore[method-assign]
    return workers


def test_only_a_celery_environment_in_the_store_takes_workers(
        tmp_path: Path, store: EnvironmentStore) -> None:
    with pytest.raises(RemoteWorkerError, match="not in this state store"):
        agent(tmp_path, store, "missing", []).check()
    environment(store, "local", "LocalExecutor")
    with pytest.raises(RemoteWorkerError, match="runs the LocalExecutor"):
        agent(tmp_path, store, "local", []).check()


def test_workers_follow_the_runner_s_kit_and_end_with_the_environment(
        tmp_path: Path, store: EnvironmentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote, "LOOK_SECONDS", 0.1)
    environment(store, "spread", "CeleryExecutor")
    reports = WorkerReports(store._db)
    prepared: list[WorkerKit] = []
    workers = agent(tmp_path, store, "spread", prepared)
    stop = threading.Event()
    thread = threading.Thread(target=workers.run, args=(stop,), daemon=True)
    thread.start()
    try:
        time.sleep(0.5)  # no kit yet (the runner is still starting): nothing runs
        assert prepared == [] and workers.running() == 0
        first = WorkerKit({"database.sql_alchemy_conn": "postgresql://a"}, {}, {})
        store.note_runtime("spread", **{KIT: first.seal(BOX)})
        wait_until(lambda: reports.remote_workers("spread", time.time()) == 2, 10,
                   "two workers reported")
        assert prepared == [first]
        group = workers._group
        assert group is not None
        before = set(group.pids().values())

        second = WorkerKit({"database.sql_alchemy_conn": "postgresql://b"}, {}, {})
        store.note_runtime("spread", **{KIT: second.seal(BOX)})  # the runner started again
        wait_until(lambda: prepared == [first, second], 10, "the new kit to be taken")
        wait_until(lambda: workers._group is not None and len(workers._group.pids()) == 2,
                   10, "the new workers")
        assert workers._group is not None
        after = set(workers._group.pids().values())
        assert not before & after
        assert not [pid for pid in before if psutil.pid_exists(pid)
                    and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]

        store.remove("spread")
        thread.join(timeout=20)
        assert not thread.is_alive()
        assert reports.remote_workers("spread", time.time()) == 0
        assert workers.running() == 0
        assert not [pid for pid in after if psutil.pid_exists(pid)
                    and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    finally:
        stop.set()
        thread.join(timeout=20)
