"""Environments as real Apache Airflow on this machine: one process group each.

Each lifecycle step (create, update, delete) runs in its own thread and reports every status
change through the store, so the API answers at once and GetEnvironment shows the truth:
CREATING until Airflow's health check passes, then AVAILABLE; UNAVAILABLE while a component
is down; CREATE_FAILED / UPDATE_FAILED with LastUpdate.Error saying why.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from airgate.airflow.major import EVERY_ADDRESS, LOOPBACK, AirflowMajor, Placement, major_of
from airgate.airflow.tokens import SigningKey
from airgate.airflow.v3 import AIRFLOW_3
from airgate.auth.secrets import SecretBox, write_private
from airgate.environments import provision
from airgate.environments import sandbox as sandboxed
from airgate.environments.airflow_config import (
    Ports,
    airflow_environment,
    check_options,
    components,
    option_variables,
)
from airgate.environments.autoscaler import DEFAULT_QUIET_SECONDS, WorkerScaler
from airgate.environments.brokers import BrokerError
from airgate.environments.execution_role import ExecutionRoles
from airgate.environments.executors import (
    Execution,
    LocalExecution,
    tasks_per_worker,
    worker_bounds,
)
from airgate.environments.layout import EnvironmentLayout, free_port, port_is_free
from airgate.environments.leftovers import end_processes_with_home
from airgate.environments.metadata import MetadataDatabases, Snapshot
from airgate.environments.provision import ProvisionError
from airgate.environments.reach import MACHINE, reachable, this_machine
from airgate.environments.remote import KIT, WorkerKit
from airgate.environments.sandbox import Sandbox
from airgate.environments.sources import BucketFolders, S3Objects
from airgate.environments.store import EnvironmentRecord, EnvironmentStore
from airgate.environments.supervisor import ComponentSpec, ComponentState, ProcessGroup
from airgate.environments.takeover import (
    LEASE,
    ORIGIN,
    RENEW_SECONDS,
    RUNNER,
    abandoned,
    lease_until,
    movable,
    origin_of,
)
from airgate.environments.templates import MetadataTemplates
from airgate.environments.versions import AirflowRuntimes, runs_celery, runtime_folders
from airgate.environments.worker_reports import WorkerReports
from airgate.environments.workers import TaskCounts, WorkerPool
from airgate.errors import (
    ResourceNotFoundException,
    ServiceUnavailableException,
    ValidationException,
)
from airgate.metrics.statsd import StatsdMetrics

_log = logging.getLogger("airgate.runtime")

HEALTH_TIMEOUT = 240.0  # seconds for a new environment to pass its health check
MONITOR_INTERVAL = 2.0
RECOVERY_GRACE = 10.0
DAG_SYNC_INTERVAL = 10.0  # with DAG_REFRESH_SECONDS, S3 changes run within 30 s
_STOP_TIMEOUT = 20.0


# The environment's files whose secrets the store keeps too (runtime field by layout
# attribute): what a gateway taking the environment over, or minting its tokens, needs.
KEPT_SECRETS = {"fernet_key": "FernetKey", "airgate_key": "AirgateKey"}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def health_url(port: int) -> str:
    """Airflow 3's health report (kept for the benchmarks, which start Airflow 3 directly)."""
    return AIRFLOW_3.health_url(port)


def is_healthy(report: Mapping[str, Any]) -> bool:
    return AIRFLOW_3.is_healthy(report)


class _Steps:
    """How long each step of an environment's start took, for the log (what to speed up)
    and, as each ends, for the record (what `airgate status --watch` follows)."""

    def __init__(self, on_step: Callable[[dict[str, float]], None]) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.monotonic()
        self._on_step = on_step
        on_step({})

    def done(self, step: str) -> None:
        now = time.monotonic()
        self.seconds[step] = round(now - self._last, 2)
        self._last = now
        self._on_step(dict(self.seconds))


class LocalRuntime:
    """Runs each environment's Airflow components as supervised local processes."""

    def __init__(self, home: Path, store: EnvironmentStore, *,
                 sources: BucketFolders | S3Objects, runtimes: AirflowRuntimes,
                 environ: Mapping[str, str] | None = None,
                 databases: MetadataDatabases | None = None,
                 templates: MetadataTemplates | None = None,
                 web_scheme: str = "http", installation: str = "local",
                 sandbox: Sandbox | None = None, web_host: str = "127.0.0.1",
                 execution: Execution | None = None,
                 worker_quiet_seconds: float = DEFAULT_QUIET_SECONDS,
                 advertise_address: str | None = None) -> None:
        self._home = home
        # The address other gateways and `airgate worker` machines reach this one's
        # environments at; None: this machine alone reaches them (loopback).
        self._advertise = advertise_address
        # How environments run tasks (environments/executors.py): the LocalExecutor unless
        # the operator gave a broker.
        self._execution: Execution = execution or LocalExecution()
        self._worker_quiet_seconds = worker_quiet_seconds
        # Every process of every environment starts in its sandbox (environments/sandbox.py).
        self._sandbox = sandbox or sandboxed.detect("auto", installation)
        # Which airgate runs an environment: the one that created it. Other airgates on the
        # same store (several gateways on one PostgreSQL) leave its processes alone, and
        # their UpdateEnvironment and DeleteEnvironment calls are carried out by this one.
        self._installation = installation
        self._web_scheme = web_scheme  # how users reach the environment's front
        self._web_host = web_host  # where users reach the fronts (Settings.reachable_host)
        self._store = store
        self._sources = sources
        self._runtimes = runtimes
        self._environ = dict(os.environ if environ is None else environ)
        self._databases = databases or MetadataDatabases(None)
        self._templates = templates  # None: every environment migrates an empty database
        self._groups: dict[str, ProcessGroup] = {}
        self._cli_contexts: dict[str, ComponentSpec] = {}  # how to run `airflow` CLI commands
        self._pools: dict[str, WorkerPool] = {}  # Celery environments' workers
        # Monitor state, per process group: restarts already seen, and when a restarted
        # component has been up long enough to count again.
        self._restarts_seen: dict[ProcessGroup, int] = {}
        self._recovering_until: dict[ProcessGroup, float] = {}
        self._locks: dict[str, threading.Lock] = {}
        # Lifecycle steps under way or queued here, per environment.
        self._busy: collections.Counter[str] = collections.Counter()
        self._guard = threading.Lock()
        self._closing = threading.Event()
        # Set by the server when environments act as their execution roles.
        self.execution_roles: ExecutionRoles | None = None
        # Set by the server when environments send their StatsD metrics to airgate.
        self.statsd: StatsdMetrics | None = None
        # Set by the server: keeps each environment's Fernet key in the store under the
        # master key, so another gateway taking it over reads its connections and variables.
        self.secrets: SecretBox | None = None
        # Set by the server: the workers `airgate worker` runs on other machines, which
        # count toward each Celery environment's MinWorkers and MaxWorkers.
        self.reports: WorkerReports | None = None
        self._monitor = threading.Thread(target=self._watch, daemon=True, name="env-monitor")
        self._monitor.start()

    # --- the Runtime interface --------------------------------------------------------

    @property
    def supported_versions(self) -> tuple[str, ...]:
        return self._runtimes.versions

    @property
    def sandbox(self) -> Sandbox:
        """What isolates this runtime's environments from airgate and each other."""
        return self._sandbox

    def check_spec(self, spec: Mapping[str, Any]) -> None:
        check_options(spec.get("AirflowConfigurationOptions") or {},
                      major_of(spec["AirflowVersion"]))
        if self._execution.scales_workers and not runs_celery(spec["AirflowVersion"]):
            raise ValidationException(
                f"Airflow {spec['AirflowVersion']} can't run on Celery here (its runtime has "
                "no Celery provider); choose a later version")

    def begin_create(self, environment: EnvironmentRecord) -> None:
        self._store.set_runtime(environment.name, {RUNNER: self._installation,
                                                   ORIGIN: self._installation,
                                                   LEASE: lease_until()})
        self._in_background(environment.name, self._create)

    def begin_update(self, environment: EnvironmentRecord, previous_spec: dict[str, Any]) -> None:
        if self.runs(environment):  # else its runner picks the update up from the store
            self._in_background(environment.name,
                                lambda name: self._update(name, previous_spec))

    def begin_delete(self, environment: EnvironmentRecord) -> None:
        if self.runs(environment):
            self._in_background(environment.name, self._delete)

    def runs(self, environment: EnvironmentRecord) -> bool:
        """Whether this airgate runs the environment (environments from before runners were
        recorded belong to whichever airgate finds them)."""
        return environment.runtime.get(RUNNER) in (None, self._installation)

    def webserver_url(self, environment: EnvironmentRecord) -> str | None:
        url = environment.runtime.get("WebserverUrl")
        return str(url) if url and environment.status in ("AVAILABLE", "UNAVAILABLE",
                                                          "UPDATING", "UPDATE_FAILED") else None

    # --- what the rest of airgate asks of running environments ------------------------

    def _runner_elsewhere(self, environment: EnvironmentRecord) -> ServiceUnavailableException:
        return ServiceUnavailableException(
            f"Environment {environment.name} runs under another airgate on this state store "
            f"(installation {environment.runtime.get(RUNNER)}) that other machines can't "
            "reach: send this call to that airgate, or start it with --advertise-address")

    def signing_key(self, name: str) -> SigningKey:
        """airgate's key for minting this environment's tokens: from this machine if it runs
        the environment, else as its runner keeps it in the store (under the master key)."""
        record = self._store.cached(name)
        if record is not None and not self.runs(record):
            kept = record.runtime.get(KEPT_SECRETS["airgate_key"])
            if not kept or self.secrets is None:
                raise self._runner_elsewhere(record)
            return SigningKey.from_pem(self.secrets.decrypt(str(kept)).encode(),
                                       provision.AIRGATE_KEY_ID)
        return SigningKey.load_or_create(self._layout(name).airgate_key,
                                         provision.AIRGATE_KEY_ID)

    def api_url(self, environment: EnvironmentRecord) -> str | None:
        """Where the environment's Airflow API answers: on this machine if it runs here, else
        where its runner said (every gateway on the store serves every environment)."""
        if not self.runs(environment):
            url = reachable(environment.runtime, "ApiUrl")
            if url is None:
                raise self._runner_elsewhere(environment)
            return url
        port = (environment.runtime.get("Ports") or {}).get("api")
        return f"http://{LOOPBACK}:{port}" if port else None

    def web_port(self, environment: EnvironmentRecord) -> int | None:
        """The port of the environment's front (its WebServerHostname), on every gateway
        that serves it, once it has run."""
        port = (environment.runtime.get("Ports") or {}).get("web")
        return int(port) if port else None

    def run_airflow_cli(self, name: str, argv: list[str],
                        timeout: float) -> subprocess.CompletedProcess[bytes]:
        """`airflow *argv` as the environment's own components would run it (same Airflow,
        configuration and variables), without a shell; LookupError if it isn't running."""
        with self._guard:
            context = self._cli_contexts.get(name)
        if context is None:
            raise LookupError(name)
        return sandboxed.run(context.sandbox, [*context.argv, *argv], context.env, context.cwd,
                             timeout)

    def component_states(self) -> dict[str, dict[str, ComponentState]]:
        """Per environment run here, whether each component's process runs, and how often
        it was restarted since the environment started."""
        with self._guard:
            groups = list(self._groups.items())
        states = {}
        for name, group in groups:
            restarts = group.restarts()
            states[name] = {component: ComponentState(up, restarts.get(component, 0))
                            for component, up in group.alive().items()}
        return states

    def worker_counts(self) -> dict[str, tuple[int, int]]:
        """Per Celery environment run here: (workers running, tasks queued)."""
        with self._guard:
            pools = list(self._pools.items())
        return {name: (pool.running(), pool.tasks.queued) for name, pool in pools}

    @property
    def executor(self) -> str:
        """What environments started from now on run tasks with (Airflow's name)."""
        return self._execution.executor

    def pids(self, name: str) -> dict[str, int]:
        group = self._groups.get(name)
        return group.pids() if group else {}

    def log_file(self, name: str, component: str) -> Path:
        return self._layout(name).log_file(component)

    def recover(self) -> None:
        """Bring back what was running before airgate stopped, and finish what was under way.

        AVAILABLE environments are UNAVAILABLE until their processes answer again; CREATING
        provisions again (each step is repeatable); UPDATING applies the recorded spec;
        UPDATE_FAILED runs its previous settings again (it was rolled back and running);
        DELETING finishes the deletion.
        """
        for record in self._store.all():
            if not self.runs(record):
                continue
            if record.status == "AVAILABLE":
                with contextlib.suppress(ValidationException):
                    self._store.transition(record.name, allowed_from=frozenset({"AVAILABLE"}),
                                           status="UNAVAILABLE")
            if record.status in ("AVAILABLE", "UNAVAILABLE", "UPDATING", "CREATING",
                                 "UPDATE_FAILED"):
                self._in_background(record.name, self._restart)
            elif record.status == "DELETING":
                self._in_background(record.name, self._delete)

    def close(self) -> None:
        """Stop every environment's processes (they come back with `recover`)."""
        self._closing.set()
        if self._templates is not None:
            self._templates.close()
        with self._guard:
            groups = list(self._groups.items())
            self._groups.clear()
        threads = [threading.Thread(target=group.stop, args=(_STOP_TIMEOUT,))
                   for _, group in groups]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # --- lifecycle steps (each in its own thread, one at a time per environment) -------

    def _in_background(self, name: str, step: Callable[[str], None]) -> None:
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
            self._busy[name] += 1

        def run() -> None:
            try:
                with lock:
                    if self._closing.is_set():
                        return
                    step(name)
            except Exception:
                _log.exception("environment step failed unexpectedly",
                               extra={"fields": {"environment": name}})
            finally:
                with self._guard:
                    self._busy[name] -= 1
                    if not self._busy[name]:
                        del self._busy[name]

        threading.Thread(target=run, daemon=True, name=f"env-{name}").start()

    def _create(self, name: str) -> None:
        error = self._fresh_start(self._store.get(name))
        if self._cut_short(error):
            return  # still CREATING: the next start provisions again
        self._finish(name, "CREATING", "CREATE_FAILED" if error else "AVAILABLE", error)

    def _update(self, name: str, previous_spec: dict[str, Any]) -> None:
        record = self._store.get(name)
        with self._guard:
            pool = self._pools.get(name)
        if pool is not None and _only_worker_bounds_differ(record.spec, previous_spec):
            pool.bound(*worker_bounds(record.spec))  # live, as MWAA: nothing restarts
            self._finish(name, "UPDATING", "AVAILABLE")
            return
        snapshot = None
        if record.spec["AirflowVersion"] != previous_spec["AirflowVersion"]:
            snapshot = self._before_upgrade(name)
        error = self._fresh_start(record)
        if self._cut_short(error):
            return  # still UPDATING: the next start applies the recorded spec
        if error is not None:
            # Roll back: the previous settings (and metadata) run again; the error says why.
            with contextlib.suppress(ValidationException):
                self._store.transition(name, allowed_from=frozenset({"UPDATING"}),
                                       status="UPDATING", spec=previous_spec)
            if snapshot is not None:
                self._stop(name)
                self._end_leftovers(name)
                snapshot.restore()
                self._layout(name).airflow_cfg.unlink(missing_ok=True)
            self._fresh_start(self._store.get(name))
        elif snapshot is not None:
            snapshot.discard()
        self._finish(name, "UPDATING", "UPDATE_FAILED" if error else "AVAILABLE", error)

    def _before_upgrade(self, name: str) -> Snapshot:
        """Stop the environment and keep its metadata, before another Airflow version
        migrates it; its airflow.cfg (written by the old version) goes."""
        self._stop(name)
        self._end_leftovers(name)
        layout = self._layout(name)
        layout.airflow_cfg.unlink(missing_ok=True)
        return self._databases_of(self._store.get(name)).snapshot(name, layout.database)

    def _restart(self, name: str) -> None:
        record = self._store.get(name)
        error = self._fresh_start(record)
        if self._cut_short(error):
            return
        if record.status in ("CREATING", "UPDATING"):
            failed = "CREATE_FAILED" if record.status == "CREATING" else "UPDATE_FAILED"
            self._finish(name, record.status, failed if error else "AVAILABLE", error)
        elif error is not None:  # it stays UNAVAILABLE; LastUpdate is about updates
            _log.warning("environment did not come back", extra={"fields": {
                "environment": name, "error_code": error.code}})
        else:
            with contextlib.suppress(ValidationException):
                self._store.transition(name, allowed_from=frozenset({"UNAVAILABLE"}),
                                       status="AVAILABLE")

    def _cut_short(self, error: ProvisionError | None) -> bool:
        """Whether a step failed because airgate is stopping: that is not the environment's
        failure and is not recorded, so the next start takes the step up again, as after a
        crash (CREATE_FAILED or UPDATE_FAILED would end it for good)."""
        return error is not None and self._closing.is_set()

    def _fresh_start(self, record: EnvironmentRecord) -> ProvisionError | None:
        """(Re)start the environment's processes; after a failure none is left running."""
        self._stop(record.name)
        self._end_leftovers(record.name)
        try:
            self._start(record)
        except ProvisionError as error:
            self._stop(record.name)
            return error
        return None

    def _end_leftovers(self, name: str) -> None:
        end_processes_with_home(self._layout(name).airflow_home, self._sandbox.uid_of(name))

    def _delete(self, name: str) -> None:
        self._stop(name)
        record = self._store.find(name)
        origin = origin_of(record.runtime if record else {}, self._installation)
        try:
            self._execution.of(origin).forget(name)
        except BrokerError as error:  # its login stays; the next airgate can't tell
            _log.warning("could not remove the environment's broker login", extra={
                "fields": {"environment": name, "error": str(error)}})
        if self.execution_roles is not None:
            with contextlib.suppress(ResourceNotFoundException):
                self.execution_roles.forget(self._store.get(name))
        layout = self._layout(name)
        self._end_leftovers(name)
        shutil.rmtree(layout.root, ignore_errors=True)
        layout.airgate_key.unlink(missing_ok=True)
        if self.statsd is not None:
            self.statsd.forget(name)
        if self.reports is not None:
            self.reports.forget(name)
        self._databases.of(origin).drop(name)
        self._store.remove(name)

    # --- processes ---------------------------------------------------------------------

    def _start(self, record: EnvironmentRecord) -> None:
        """Provision, launch and wait until healthy; ProvisionError on any failure."""
        try:
            self._provision_and_launch(record)
        except ProvisionError:
            raise
        except Exception as error:  # a bug or the machine: still the environment's failure
            _log.exception("environment start failed", extra={"fields": {
                "environment": record.name}})
            raise ProvisionError("INTERNAL_ERROR", f"{type(error).__name__}: {error}") \
                from None

    def _provision_and_launch(self, record: EnvironmentRecord) -> None:
        name, spec = record.name, record.spec
        steps = _Steps(lambda seconds: self._store.note_runtime(name, Steps=seconds))
        layout = self._layout(name)
        major = major_of(spec["AirflowVersion"])
        shutil.rmtree(layout.tmp, ignore_errors=True)  # /tmp starts empty, as on a new host
        layout.create()
        setup_log = layout.log_file("setup")
        self._restore_secrets(record, layout)
        provision.keys(layout, trust_own=major.signs_own_tokens)
        self._keep_secrets(record, layout)
        ports = self._ports(record)
        version = spec["AirflowVersion"]
        interpreter = self._runtimes.interpreter(version, setup_log)
        steps.done("runtime")
        origin = origin_of(record.runtime, self._installation)
        databases, execution = self._databases.of(origin), self._execution.of(origin)
        # A copy of the template only for a database of this installation's naming (one
        # taken over from another gateway has its data already).
        if self._templates is not None and origin == self._installation and \
                self._templates.seed(name, version, interpreter, major, layout.database):
            with setup_log.open("a") as log:
                log.write(f"airgate: metadata copied from Airflow {version}'s migrated "
                          "template\n")
        url = databases.prepare(name)
        steps.done("metadata")
        database = major.database_options(url, layout.database)
        dags_folder = provision.dags_folder(self._sources, spec, layout)
        placement = Placement(name, layout.airflow_home, layout.own_key, layout.jwks,
                              layout.support, layout.web_secret.read_text().strip(), ports,
                              self._web_scheme)
        major.write_support(placement)
        sandbox = provision.confine(self._sandbox, name, layout, runtime_folders(interpreter),
                                    Path(dags_folder))
        try:
            executor = execution.options(name, spec)
        except BrokerError as error:
            raise ProvisionError("BROKER_UNAVAILABLE", str(error)) from None
        env = airflow_environment(
            spec, layout, placement, major, dags_folder,
            layout.fernet_key.read_text().strip(), interpreter, self._environ, database,
            executor, sandbox.user)

        if self.statsd is not None:  # after the caller's options: metrics go to airgate
            env.update(option_variables(self.statsd.airflow_options(name)))
        if self.execution_roles is not None:
            # Before the startup script, which may still set credentials of its own.
            variables, said = self.execution_roles.variables(record, layout.own_key.parent)
            env.update(variables)
            with setup_log.open("a") as log:
                log.write(f"airgate: {said}\n")

        steps.done("prepare")
        provision.tenant_code(self._sources, spec, layout, interpreter,
                              self._runtimes.folder(version) / "constraints.txt", env,
                              setup_log, sandbox)
        steps.done("plugins_requirements_startup_script")
        provision.migrate_database(
            interpreter, {**env, **option_variables(major.migration_options(
                url, layout.database))}, setup_log, sandbox)
        steps.done("migrate")

        processes = components(spec, major, ports, self._databases.on_server, execution)
        if self._execution.scales_workers:
            low, high = worker_bounds(spec)
            with setup_log.open("a") as log:
                log.write(f"airgate: {self._execution.executor}: {low} to {high} workers of "
                          f"{tasks_per_worker(spec)} tasks each, scaled with the tasks queued "
                          "and running\n")
        if (spec.get("Schedulers") or 1) > 1:
            with setup_log.open("a") as log:
                log.write(f"airgate: {spec['Schedulers']} schedulers (Airflow's HA scheduling)\n"
                          if self._databases.on_server else
                          f"airgate: one scheduler, not {spec['Schedulers']}: Airflow's HA "
                          "scheduling needs PostgreSQL metadata (airgate up "
                          "--airflow-database-url)\n")

        def spec_of(component: str, argv: list[str]) -> ComponentSpec:
            return ComponentSpec(component, [str(interpreter), "-m", "airflow", *argv],
                                 env, layout.log_file(component), layout.airflow_home, sandbox)

        group = ProcessGroup([spec_of(component, argv) for component, argv in processes])
        pool = None
        if execution.scales_workers:
            pool = WorkerPool(
                name, group, lambda worker: spec_of(worker, execution.worker_argv(worker)),
                WorkerScaler(*worker_bounds(spec), tasks_per_worker(spec),
                             self._worker_quiet_seconds),
                lambda: TaskCounts(*databases.task_counts(name)),
                lambda: self.reports.remote_workers(name, time.time()) if self.reports else 0)
        with self._guard:
            self._groups[name] = group
            if pool is not None:
                self._pools[name] = pool
            self._cli_contexts[name] = ComponentSpec("cli", [str(interpreter), "-m", "airflow"],
                                                     env, layout.log_file("cli"),
                                                     layout.airflow_home, sandbox)
        group.start()
        # The UI as users reach it: through airgate's front, its WebServerHostname.
        # Its runner was set when it was created or taken over (never here: a runner that
        # lost it while starting must not take it back); environments from before runners
        # were recorded get this one.
        ownership = {ORIGIN: origin, LEASE: lease_until()}
        if record.runtime.get(RUNNER) is None:
            ownership[RUNNER] = self._installation
        if execution.scales_workers and self.secrets is not None:
            # What `airgate worker` on another machine needs to run this start's workers.
            ownership[KIT] = WorkerKit(database, executor,
                                       major.worker_options(self._api_url(ports))
                                       ).seal(self.secrets)
        self._store.note_runtime(
            name, **ownership,
            Steps=dict(steps.seconds), Executor=execution.executor, Ports=ports.as_dict(),
            WebserverUrl=f"{self._web_scheme}://{self._web_host}:{ports.web}",
            ApiUrl=self._api_url(ports), **{MACHINE: this_machine()},
            # What another gateway needs to take the environment over, and to end what
            # this one leaves running should it die (takeover.py).
            MetadataOnServer=self._databases.on_server,
            AirflowHome=str(layout.airflow_home), SandboxUid=self._sandbox.uid_of(name))
        self._await_healthy(name, group, major, ports.api, steps)
        _log.info("environment started", extra={"fields": {
            "environment": name, "seconds": steps.seconds}})

    def _await_healthy(self, name: str, group: ProcessGroup, major: AirflowMajor,
                       port: int, steps: _Steps) -> None:
        """Until Airflow reports every component healthy and is warmed up. The warm-up
        starts as soon as the web server answers, while the other components are still
        starting (it took 5.7 s of a 30 s start when it waited for them)."""
        deadline = time.monotonic() + HEALTH_TIMEOUT
        warming: threading.Thread | None = None

        def warm_up() -> None:
            with httpx.Client(timeout=5.0) as own:
                major.warm_up(own, port)

        with httpx.Client(timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self._closing.is_set():
                    raise ProvisionError("INTERRUPTED", "airgate is shutting down")
                crashed = [c for c, n in group.restarts().items() if n >= 3]
                if crashed:
                    raise ProvisionError(
                        "COMPONENT_CRASHED", f"{', '.join(crashed)} kept exiting at start; see "
                        f"`airgate logs {name} {crashed[0]}`")
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    report = client.get(major.health_url(port)).json()
                    if warming is None:  # the web server answers: warm it up meanwhile
                        warming = threading.Thread(target=warm_up, daemon=True,
                                                   name=f"warm-up-{name}")
                        warming.start()
                    if major.is_healthy(report):
                        steps.done("healthy")
                        warming.join(max(0.0, deadline - time.monotonic()))
                        steps.done("warm_up")
                        return
                time.sleep(0.5)
        raise ProvisionError("HEALTH_CHECK_TIMEOUT",
                             f"Airflow did not report healthy within {HEALTH_TIMEOUT:.0f} s")

    def _stop(self, name: str) -> None:
        with self._guard:
            group = self._groups.pop(name, None)
            self._cli_contexts.pop(name, None)
            self._pools.pop(name, None)
        if group is not None:
            group.stop(_STOP_TIMEOUT)
            self._restarts_seen.pop(group, None)
            self._recovering_until.pop(group, None)

    def _finish(self, name: str, expected: str, status: str,
                error: ProvisionError | None = None) -> None:
        """Record the end of a lifecycle step, unless the environment moved on meanwhile."""
        with contextlib.suppress(ValidationException, ResourceNotFoundException):
            record = self._store.get(name)
            last_update = dict(record.last_update or {"CreatedAt": _now().isoformat(),
                                                      "Source": "SERVICE"})
            last_update["Status"] = "FAILED" if error else "SUCCESS"
            if error is not None:
                last_update["Error"] = {"ErrorCode": error.code, "ErrorMessage": error.message}
                _log.warning("environment step failed", extra={"fields": {
                    "environment": name, "status": status, "error_code": error.code}})
            else:
                last_update.pop("Error", None)
            self._store.transition(name, allowed_from=frozenset({expected}), status=status,
                                   last_update=last_update)

    def _watch(self) -> None:
        """AVAILABLE <-> UNAVAILABLE as components die and come back; DAGs kept in sync
        with S3 (bucket folders need no syncing: Airflow reads them in place)."""
        last_sync = last_renewal = time.monotonic()
        with httpx.Client(timeout=3.0) as client:
            while not self._closing.wait(MONITOR_INTERVAL):
                with self._guard:
                    groups = dict(self._groups)
                sync_now = time.monotonic() - last_sync >= DAG_SYNC_INTERVAL
                for name, group in groups.items():
                    lock = self._locks.get(name)
                    if lock is None or lock.locked():
                        continue  # a lifecycle step owns the status right now
                    self._check(client, name, group)
                    pool = self._pools.get(name)
                    if pool is not None:
                        pool.tend()
                    if sync_now:
                        self._sync_dags(name)
                if sync_now:
                    last_sync = time.monotonic()
                if time.monotonic() - last_renewal >= RENEW_SECONDS:
                    last_renewal = time.monotonic()
                    self._renew_leases()
                self._take_up_changes_made_elsewhere()

    def _take_up_changes_made_elsewhere(self) -> None:
        """What other airgates on the same store leave to this one: UpdateEnvironment or
        DeleteEnvironment they received for an environment this one runs, carried out
        here; environments whose runner stopped renewing its lease, taken over
        (takeover.py); environments another airgate took over from this one, stopped."""
        for record in self._store.all():
            with self._guard:
                if self._busy[record.name]:
                    continue
            if self._databases.on_server and movable(record, self._installation):
                self._take_over(record)
                continue
            if record.name in self._groups and not self.runs(record):
                # Another gateway took it over (this one's lease ran out): stop running it.
                _log.warning("environment taken over by another airgate; stopping it here",
                             extra={"fields": {"environment": record.name}})
                self._in_background(record.name, self._stop)
                continue
            if record.status not in ("UPDATING", "DELETING") or not self.runs(record):
                continue
            self._in_background(record.name, self._restart if record.status == "UPDATING"
                                else self._delete)

    def _renew_leases(self) -> None:
        """Every environment this airgate runs: its lease, renewed (takeover.py)."""
        for record in self._store.all():
            if record.runtime.get(RUNNER) == self._installation:
                self._store.note_runtime(record.name, **{LEASE: lease_until()})

    def _take_over(self, record: EnvironmentRecord) -> None:
        """Claim an environment whose runner's lease ran out, end what that runner left on
        this machine, and bring the environment up here (or finish its deletion)."""
        name, lost = record.name, record.runtime.get(RUNNER)
        if not self._store.claim_runtime(
                name, lambda runtime: runtime.get(RUNNER) == lost
                and abandoned(runtime, self._installation),
                {RUNNER: self._installation, LEASE: lease_until(), "TakenOverFrom": lost},
                # Nothing serves it until it runs here.
                statuses={"AVAILABLE": "UNAVAILABLE"}):
            return  # another gateway was quicker, or the runner came back
        _log.warning("taking over an environment whose airgate stopped renewing its lease",
                     extra={"fields": {"environment": name, "from": lost}})

        def take_over(name: str) -> None:
            home = record.runtime.get("AirflowHome")
            if home:  # its processes, where they run on this machine
                uid = record.runtime.get("SandboxUid")
                end_processes_with_home(Path(str(home)), uid if isinstance(uid, int) else None)
            if record.status == "DELETING":
                self._delete(name)
            else:
                self._restart(name)

        self._in_background(name, take_over)

    def _sync_dags(self, name: str) -> None:
        if not isinstance(self._sources, S3Objects):
            return
        record = self._store.find(name)
        if record is None:
            return
        try:
            self._sources.sync(record.spec["SourceBucketArn"], record.spec["DagS3Path"],
                               self._layout(name).dags)
        except Exception:
            _log.warning("DAG sync from S3 failed; will retry",
                         extra={"fields": {"environment": name}}, exc_info=True)

    def _check(self, client: httpx.Client, name: str, group: ProcessGroup) -> None:
        """A component that died counts as down until it has run RECOVERY_GRACE seconds
        again and Airflow's health check passes: right after a crash the health report still
        shows the dead process's last heartbeat, and the restart may come within a second."""
        record = self._store.find(name)
        if record is None or record.status not in ("AVAILABLE", "UNAVAILABLE") \
                or not self.runs(record):  # taken over: its status is the new runner's
            return
        restarts = sum(group.restarts().values())
        now = time.monotonic()
        if restarts != self._restarts_seen.get(group, 0):
            self._restarts_seen[group] = restarts
            self._recovering_until[group] = now + RECOVERY_GRACE
        port = (record.runtime.get("Ports") or {}).get("api")
        healthy = all(group.alive().values()) and now >= self._recovering_until.get(group, 0)
        if healthy and port:
            major = major_of(record.spec["AirflowVersion"])
            try:
                healthy = major.is_healthy(client.get(major.health_url(port)).json())
            except (httpx.HTTPError, ValueError):
                healthy = False
        wanted = "AVAILABLE" if healthy else "UNAVAILABLE"
        if wanted != record.status:
            with contextlib.suppress(ValidationException):
                self._store.transition(name, allowed_from=frozenset({record.status}),
                                       status=wanted)

    # --- helpers -----------------------------------------------------------------------

    def _databases_of(self, record: EnvironmentRecord) -> MetadataDatabases:
        return self._databases.of(origin_of(record.runtime, self._installation))

    def _restore_secrets(self, record: EnvironmentRecord, layout: EnvironmentLayout) -> None:
        """The environment's keys as the store keeps them, over whatever this machine has
        (a takeover; or files left from an earlier environment of the same name): the same
        Fernet key for its data, the same key for airgate's tokens. The store's copy wins."""
        if self.secrets is None:
            return
        for kind, field in KEPT_SECRETS.items():
            stored, path = record.runtime.get(field), getattr(layout, kind)
            if not stored:
                continue
            value = self.secrets.decrypt(str(stored))
            if not path.exists() or path.read_text().strip() != value:
                write_private(path, value.encode())

    def _keep_secrets(self, record: EnvironmentRecord, layout: EnvironmentLayout) -> None:
        """The environment's keys into the store, encrypted under the master key, the first
        time it starts: for the gateway that may take it over, and for every gateway
        minting its tokens. Never replaced afterwards (the store's copy is the one)."""
        if self.secrets is None:
            return
        kept = {field: self.secrets.encrypt(getattr(layout, kind).read_text().strip())
                for kind, field in KEPT_SECRETS.items() if not record.runtime.get(field)}
        if kept:
            self._store.note_runtime(record.name, **kept)

    def _layout(self, name: str) -> EnvironmentLayout:
        return EnvironmentLayout.of(self._home, name)

    def _ports(self, record: EnvironmentRecord) -> Ports:
        """The ports the environment had, where still free; new ones otherwise. Its web
        server listens on loopback, or on every address if other machines reach it."""
        known = record.runtime.get("Ports") or {}
        chosen = {}
        for role in ("api", "worker_logs", "trigger_logs", "web"):
            port = known.get(role)
            chosen[role] = port if port and port_is_free(port) else free_port()
        return Ports(**chosen, listen=LOOPBACK if self._advertise is None else EVERY_ADDRESS)

    def _api_url(self, ports: Ports) -> str:
        """Where other gateways and machines reach the environment's web server /
        api-server (this machine alone, unless an address is advertised)."""
        return f"http://{self._advertise or LOOPBACK}:{ports.api}"


def _only_worker_bounds_differ(spec: Mapping[str, Any], previous: Mapping[str, Any]) -> bool:
    """Whether an update changes MinWorkers or MaxWorkers and nothing else, which Celery
    environments take without a restart."""
    bounds = {"MinWorkers", "MaxWorkers"}
    changed = {key for key in {*spec, *previous} if spec.get(key) != previous.get(key)}
    return bool(changed) and changed <= bounds

