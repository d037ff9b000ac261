"""`airgate worker --environment NAME`: a Celery environment's workers on another machine.

The gateway that runs the environment keeps, at every start, a worker kit in the store,
encrypted under the master key: the metadata and broker logins of that start (both new at
every start), and where workers reach the environment's API. A machine given
the same store and master key reads it, prepares the environment as the runner does (its
runtime, its DAGs, plugins, requirements and startup script from the bucket, all tenant code
in the sandbox) in a home of its own, and starts Celery workers on the environment's queue.
It reports them to the store (environments/worker_reports.py), so the runner's autoscaler
counts them; when the runner starts the environment again (a new kit), the workers start
again with the new logins; when the environment is deleted, they stop.

Nothing of the runner's machine is read: only the store and the bucket. Tasks run here
don't act as the environment's execution role: the credentials endpoint that would make
them is airgate's listener on the runner's machine, over plain HTTP only on loopback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airgate.airflow.major import Placement, Ports, major_of
from airgate.auth.secrets import SecretBox, write_private
from airgate.environments import provision
from airgate.environments.airflow_config import airflow_environment, option_variables
from airgate.environments.executors import celery_worker_argv
from airgate.environments.layout import EnvironmentLayout
from airgate.environments.reach import reachable
from airgate.environments.sandbox import Sandbox
from airgate.environments.sources import S3Objects
from airgate.environments.store import EnvironmentRecord, EnvironmentStore
from airgate.environments.supervisor import ComponentSpec, ProcessGroup
from airgate.environments.takeover import RUNNER
from airgate.environments.versions import AirflowRuntimes, runtime_folders
from airgate.environments.worker_reports import REPORT_SECONDS, WorkerReports
from airgate.environments.workers import warm_stop

__all__ = ["KIT", "RemoteWorkerError", "RemoteWorkers", "WorkerKit"]

KIT = "WorkerKit"  # the runtime fact holding the sealed kit
LOOK_SECONDS = 2.0  # how often the store is read for a new kit or the environment's end
RETRY_SECONDS = 60.0  # after a failed start, before the same kit is tried again
DAG_SYNC_SECONDS = 30.0
_log = logging.getLogger("airgate.remote")


class RemoteWorkerError(Exception):
    """The environment can't take workers from this machine; the message says why."""


@dataclass(frozen=True, slots=True)
class WorkerKit:
    """What workers need beyond the environment's spec: secrets of the runner's start."""

    database: Mapping[str, str]  # Airflow's metadata options (its login of this start)
    executor: Mapping[str, str]  # the Celery options (the broker login of this start)
    options: Mapping[str, str]  # where workers reach the environment (AirflowMajor)

    def seal(self, box: SecretBox) -> str:
        return box.encrypt(json.dumps({
            "database": dict(self.database), "executor": dict(self.executor),
            "options": dict(self.options)}))

    @classmethod
    def open(cls, sealed: str, box: SecretBox) -> WorkerKit:
        document = json.loads(box.decrypt(sealed))
        return cls(document["database"], document["executor"], document["options"])


class RemoteWorkers:
    def __init__(self, home: Path, name: str, store: EnvironmentStore,
                 reports: WorkerReports, box: SecretBox, sources: Any,
                 runtimes: AirflowRuntimes, sandbox: Sandbox, workers: int, node: str,
                 environ: Mapping[str, str] | None = None) -> None:
        self._home = home
        self._name = name
        self._store = store
        self._reports = reports
        self._box = box
        self._sources = sources
        self._runtimes = runtimes
        self._sandbox = sandbox
        self._workers = workers
        self._node = node  # this machine's installation id: names its workers and report
        self._environ = dict(os.environ if environ is None else environ)
        self._group: ProcessGroup | None = None
        self._kit: str | None = None  # the sealed kit the workers run with
        self._retry_at = 0.0  # when to try a kit whose start failed again

    def check(self) -> EnvironmentRecord:
        """The environment, if it can take workers from this machine."""
        record = self._store.find(self._name)
        if record is None:
            raise RemoteWorkerError(
                f"environment {self._name} is not in this state store: give the gateways' "
                "store (--database-url or AIRGATE_DATABASE_URL) and master key "
                "(AIRGATE_MASTER_KEY)")
        runtime = record.runtime
        executor = runtime.get("Executor")
        if executor is not None and executor != "CeleryExecutor":
            raise RemoteWorkerError(
                f"environment {self._name} runs the {executor}: only Celery environments "
                "(airgate up --broker-url) take workers on other machines")
        if runtime.get(RUNNER) == self._node:
            raise RemoteWorkerError(
                f"this home runs environment {self._name} already: give airgate worker a "
                "home of its own (--home or AIRGATE_HOME)")
        if runtime.get("ApiUrl") and reachable(runtime, "ApiUrl") is None:
            raise RemoteWorkerError(
                f"environment {self._name} runs on a machine that only reaches it itself: "
                "start its gateway with --advertise-address")
        if runtime.get("FernetKey"):
            try:
                self._box.decrypt(str(runtime["FernetKey"]))
            except RuntimeError as error:  # says which master key to check
                raise RemoteWorkerError(str(error)) from None
        return record

    def run(self, stop: threading.Event) -> None:
        """Run the environment's workers until `stop` is set or the environment is gone.
        Reports go from a thread of their own, so that a long start (requirements) or a
        warm shutdown never lets them lapse."""
        reporting = threading.Event()
        reporter = threading.Thread(target=self._report, args=(reporting,), daemon=True,
                                    name="airgate-worker-reports")
        reporter.start()
        last_sync = 0.0
        try:
            while not stop.is_set():
                try:
                    record = self._store.find(self._name)
                    if record is None or record.status in ("DELETING", "CREATE_FAILED"):
                        _log.info("environment gone: workers stop", extra={"fields": {
                            "environment": self._name}})
                        return
                    sealed = record.runtime.get(KIT)
                    now = time.monotonic()
                    if sealed and (sealed != self._kit or
                                   (self._group is None and now >= self._retry_at)):
                        self._start(record, str(sealed))
                    if isinstance(self._sources, S3Objects) and self._group is not None \
                            and now - last_sync >= DAG_SYNC_SECONDS:
                        last_sync = now
                        self._sync_dags(record)
                except Exception:  # the store away for a moment, say: try again
                    _log.warning("worker machine round failed; will retry", extra={
                        "fields": {"environment": self._name}}, exc_info=True)
                stop.wait(LOOK_SECONDS)
        finally:
            reporting.set()
            reporter.join(timeout=10)
            self._stop_workers()
            with contextlib.suppress(Exception):  # its report runs out by itself anyway
                self._reports.withdraw(self._name, self._node)

    def running(self) -> int:
        group = self._group
        return sum(1 for up in group.alive().values() if up) if group is not None else 0

    def _report(self, done: threading.Event) -> None:
        while True:
            try:
                self._reports.report(self._name, self._node, self.running(), time.time())
            except Exception:
                _log.warning("could not report the workers; will retry", extra={
                    "fields": {"environment": self._name}}, exc_info=True)
            if done.wait(REPORT_SECONDS):
                return

    def _start(self, record: EnvironmentRecord, sealed: str) -> None:
        """Workers with the logins of the runner's latest start (the earlier ones no
        longer work): the old workers finish their tasks first. A start that fails is
        tried again after RETRY_SECONDS (a package index or S3 briefly away)."""
        self._stop_workers()
        self._kit = sealed
        try:
            specs = self._prepare(record, WorkerKit.open(sealed, self._box))
        except Exception as error:
            self._retry_at = time.monotonic() + RETRY_SECONDS
            code = error.code if isinstance(error, provision.ProvisionError) else \
                type(error).__name__
            _log.warning("could not prepare the environment's workers; will retry", extra={
                "fields": {"environment": self._name, "error_code": code,
                           "error": str(error)}})
            return
        group = ProcessGroup(specs)
        group.start()
        self._group = group
        _log.info("workers started", extra={"fields": {
            "environment": self._name, "workers": [spec.name for spec in specs]}})

    def _prepare(self, record: EnvironmentRecord, kit: WorkerKit) -> list[ComponentSpec]:
        name, spec = record.name, record.spec
        layout = EnvironmentLayout.of(self._home, name)
        layout.create()
        setup_log = layout.log_file("setup")
        fernet = self._box.decrypt(str(record.runtime["FernetKey"]))
        write_private(layout.fernet_key, fernet.encode())
        major = major_of(spec["AirflowVersion"])
        provision.keys(layout, trust_own=major.signs_own_tokens)  # files Placement names
        version = spec["AirflowVersion"]
        interpreter = self._runtimes.interpreter(version, setup_log)
        dags = provision.dags_folder(self._sources, spec, layout)
        placement = Placement(name, layout.airflow_home, layout.own_key, layout.jwks,
                              layout.support, layout.web_secret.read_text().strip(),
                              Ports(**record.runtime["Ports"]), "http")
        major.write_support(placement)
        sandbox = provision.confine(self._sandbox, name, layout, runtime_folders(interpreter),
                                    Path(dags))
        env = airflow_environment(spec, layout, placement, major, dags, fernet, interpreter,
                                  self._environ, kit.database, kit.executor, sandbox.user)
        env.update(option_variables(kit.options))
        provision.tenant_code(self._sources, spec, layout, interpreter,
                              self._runtimes.folder(version) / "constraints.txt", env,
                              setup_log, sandbox)
        with setup_log.open("a") as log:
            log.write(f"airgate worker: {self._workers} Celery workers of environment {name} "
                      "on this machine\n")
        names = [f"remote-{self._node}-{n}" for n in range(1, self._workers + 1)]
        return [ComponentSpec(worker, [str(interpreter), "-m", "airflow",
                                       *celery_worker_argv(worker)],
                              env, layout.log_file(worker), layout.airflow_home, sandbox)
                for worker in names]

    def _stop_workers(self) -> None:
        """Celery's warm shutdown for every worker: each finishes its tasks, then exits."""
        group, self._group = self._group, None
        if group is None:
            return
        for worker in list(group.alive()):
            group.retire(worker, warm_stop)
        deadline = time.monotonic() + 600
        while group.retiring() and time.monotonic() < deadline:
            time.sleep(0.5)
        group.stop()

    def _sync_dags(self, record: EnvironmentRecord) -> None:
        try:
            self._sources.sync(record.spec["SourceBucketArn"], record.spec["DagS3Path"],
                               EnvironmentLayout.of(self._home, self._name).dags)
        except Exception:
            _log.warning("DAG sync from S3 failed; will retry",
                         extra={"fields": {"environment": self._name}}, exc_info=True)
