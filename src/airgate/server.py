"""Assembles airgate from its settings, bootstraps a new installation, and serves it."""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import json
import logging
import os
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from airgate import logs
from airgate.app import create_app
from airgate.auth.identities import IamError, Identities
from airgate.auth.secrets import SecretBox, load_or_create_key, write_private
from airgate.config import ConfigError, Settings, ensure_writable_home
from airgate.environments.brokers import brokers_for
from airgate.environments.execution_role import ExecutionRoles
from airgate.environments.executors import CeleryExecution, Execution, LocalExecution
from airgate.environments.layout import EnvironmentLayout
from airgate.environments.local import LocalRuntime
from airgate.environments.metadata import MetadataDatabases
from airgate.environments.runtime import RecordOnlyRuntime, Runtime
from airgate.environments.sandbox import SandboxUnavailable
from airgate.environments.sandbox import detect as detect_sandbox
from airgate.environments.sources import BucketFolders, S3Objects, uses_s3
from airgate.environments.store import EnvironmentStore
from airgate.environments.templates import MetadataTemplates
from airgate.environments.versions import AirflowRuntimes
from airgate.environments.worker_reports import WorkerReports
from airgate.gateway import Gateway
from airgate.listen import uvicorn_config
from airgate.metrics.calls import CallMetrics
from airgate.metrics.endpoint import MetricsEndpoint
from airgate.metrics.state import EnvironmentState
from airgate.metrics.statsd import StatsdMetrics
from airgate.mwaa.admission import Admission
from airgate.mwaa.provider import MwaaProvider
from airgate.mwaa.rest_api import Endpoints, RestApiProxy
from airgate.mwaa.service import MwaaAuthorizer, MwaaService
from airgate.services import Services
from airgate.services.iam import IamService
from airgate.services.sts import StsService
from airgate.store.db import Database
from airgate.store.generations import Generations
from airgate.store.shared import SharedKeys, StoredSpentTokens
from airgate.tls import TlsFiles, ensure_certificates
from airgate.web.console import Console
from airgate.web.fronts import WebFronts
from airgate.web.review import IamReview
from airgate.web.tokens import EnvironmentTokens

BOOTSTRAP_USER = "admin"
BOOTSTRAP_POLICY_NAME = "AdministratorAccess"
ADMINISTRATOR_POLICY = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
})
_log = logging.getLogger("airgate.server")


def default_airflow_version() -> str:
    return importlib.metadata.version("apache-airflow")


@dataclass
class Airgate:
    """Everything one airgate process holds."""

    settings: Settings
    db: Database
    identities: Identities
    environments: EnvironmentStore
    runtime: Runtime
    provider: MwaaProvider
    app: ASGIApp
    generations: Generations
    fronts: WebFronts | None = None  # each environment's WebServerHostname
    tls: TlsFiles | None = None
    metrics: MetricsEndpoint | None = None
    statsd: StatsdMetrics | None = None  # environments' own metrics, received

    def start(self) -> None:
        """Keep the request path's caches fresh, and bring back the environments that were
        running when airgate last stopped."""
        self.generations.keep_fresh()
        if self.statsd is not None:
            self.statsd.start()
        if isinstance(self.runtime, LocalRuntime):
            self.runtime.recover()
        if self.fronts is not None:
            self.fronts.start()

    def close(self) -> None:
        if self.fronts is not None:
            self.fronts.close()
        if isinstance(self.runtime, LocalRuntime):
            self.runtime.close()
        if self.statsd is not None:
            self.statsd.close()
        self.generations.stop()
        self.db.close()


# How stale a gateway's caches may be for changes made by other processes.
CACHE_MAX_AGE = 0.1


def open_state(settings: Settings,
               cache_max_age: float = 0.0) -> tuple[Database, Identities, Generations]:
    """The store and the identities in it: what the CLI's `iam` commands need."""
    settings.home.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.home, 0o700)
    db = Database(settings.effective_database_url)
    generations = Generations(db, max_age=cache_max_age)
    box = SecretBox.open(settings.master_key_file)
    return db, Identities(db, box, settings.account_id, generations), generations


def installation_id(home: Path) -> str:
    """A random id for this airgate installation, made once and kept in its home: what
    tells its resources apart from another installation's on a shared server."""
    path = home / "installation-id"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError), open(path, "x") as file:
            file.write(secrets.token_hex(8))
    return path.read_text().strip()


RuntimeFactory = Callable[[Settings, EnvironmentStore], Runtime]


def record_only_runtime(settings: Settings, store: EnvironmentStore) -> Runtime:
    """Environments as records only: for testing the API without running Airflow."""
    return RecordOnlyRuntime(store, (default_airflow_version(),))


def local_runtime(settings: Settings, store: EnvironmentStore) -> LocalRuntime:
    """Every environment a real Airflow on this machine (the default), each in its sandbox."""
    sources = S3Objects() if uses_s3() else BucketFolders(settings.buckets_dir)
    runtimes = AirflowRuntimes(settings.home, default_airflow_version(),
                               settings.extra_airflow_versions)
    installation = installation_id(settings.home)
    try:
        sandbox = detect_sandbox(settings.sandbox, installation)
    except SandboxUnavailable as error:
        raise ConfigError(str(error)) from None
    databases = MetadataDatabases(settings.airflow_database_url, installation)
    templates = (MetadataTemplates(settings.home / "templates", databases)
                 if settings.metadata_templates else None)
    execution: Execution = LocalExecution()
    if settings.broker_url:
        execution = CeleryExecution(brokers_for(settings.broker_url, installation,
                                                settings.broker_management_url))
    return LocalRuntime(settings.home, store, sources=sources, runtimes=runtimes,
                        databases=databases, templates=templates,
                        web_scheme=settings.scheme, installation=installation,
                        sandbox=sandbox, web_host=settings.reachable_host, execution=execution,
                        worker_quiet_seconds=settings.worker_quiet_seconds,
                        advertise_address=settings.advertise_address)


def build(settings: Settings, runtime_factory: RuntimeFactory = local_runtime) -> Airgate:
    db, identities, generations = open_state(settings, CACHE_MAX_AGE)
    environments = EnvironmentStore(db, generations)
    runtime = runtime_factory(settings, environments)
    rest_api = (RestApiProxy(runtime, timeout=settings.rest_api_timeout)
                if isinstance(runtime, Endpoints) else None)
    admission = Admission(settings.rest_api_concurrency, settings.rest_api_rate,
                          settings.rest_api_burst, adaptive=settings.rest_api_adaptive)
    tls = ensure_certificates(settings.tls_dir, settings.reachable_host) if settings.tls \
        else None
    fronts = None
    if isinstance(runtime, LocalRuntime):
        tokens = front_tokens(settings, db, identities)
        # Web sessions are checked against IAM again while they last (airgate/web/review.py).
        review = IamReview(identities, MwaaAuthorizer(settings.region, settings.account_id),
                           environments, settings.region)
        fronts = WebFronts(environments, tokens, runtime.web_port, runtime.api_url,
                           runtime.run_airflow_cli, runtime.signing_key, review,
                           host=settings.host, public_host=settings.reachable_host, tls=tls,
                           forwarded_allow_ips=settings.forwarded_allow_ips,
                           runs_here=runtime.runs)
    registry = CollectorRegistry()
    calls = CallMetrics(registry)
    statsd = None
    if isinstance(runtime, LocalRuntime):
        statsd = StatsdMetrics(load_or_create_key(settings.home / "keys" / "statsd.key"),
                               port=settings.statsd_port)
        runtime.statsd = statsd
        registry.register(statsd)
    registry.register(EnvironmentState(
        environments, runtime.component_states if isinstance(runtime, LocalRuntime) else None,
        admission, runtime.worker_counts if isinstance(runtime, LocalRuntime) else None))
    provider = MwaaProvider(settings.region, settings.account_id, environments, runtime,
                            rest_api, admission, fronts, calls)

    mwaa = MwaaService(settings.region, settings.account_id, environments, provider)
    services = Services([mwaa, StsService(settings.region, identities),
                         IamService(settings.region, identities)], default=mwaa)
    gateway = Gateway(identities, services)
    execution_roles = None
    if isinstance(runtime, LocalRuntime):
        execution_roles = ExecutionRoles(
            identities, environments, settings.region, settings.account_id,
            shared_key(settings, db, identities, "execution-roles"),
            _reachable_endpoint(settings), tls.ca_bundle if tls else None,
            settings.execution_role_session_seconds)
        runtime.execution_roles = execution_roles
        runtime.secrets = identities.box
        runtime.reports = WorkerReports(db)
    metrics = MetricsEndpoint(registry, settings.metrics_token)
    console = Console(identities, environments, provider,
                      MwaaAuthorizer(settings.region, settings.account_id), calls.recent,
                      shared_key(settings, db, identities, "console"),
                      settings.region, settings.scheme)
    app = create_app(gateway, on_shutdown=rest_api.close if rest_api is not None else None,
                     execution_roles=execution_roles, metrics=metrics, calls=calls,
                     console=console)
    return Airgate(settings, db, identities, environments, runtime, provider, app, generations,
                   fronts, tls, metrics, statsd)


def shared_key(settings: Settings, db: Database, identities: Identities, name: str) -> bytes:
    """A key every gateway on the store uses alike, so that what one issues (front tokens,
    execution role tokens, console sessions) the others accept: kept in the store under
    the master key; the first gateway to share it offers the one its home kept before."""
    kept = settings.home / "keys" / f"{name}.key"

    def first() -> bytes:
        return kept.read_bytes() if kept.exists() else secrets.token_bytes(32)

    return SharedKeys(db, identities.box).key(name, first)


def front_tokens(settings: Settings, db: Database, identities: Identities) -> EnvironmentTokens:
    """The tokens of environments' fronts, with used one-use tokens kept in the store."""
    return EnvironmentTokens(shared_key(settings, db, identities, "web-tokens"),
                             StoredSpentTokens(db))


def _reachable_endpoint(settings: Settings) -> str:
    """airgate's listener as processes on this machine reach it: a wildcard address is
    reached on loopback."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "", "::") else settings.host
    if ":" in host:
        host = f"[{host}]"
    return f"{settings.scheme}://{host}:{settings.port}"


def ensure_bootstrap_admin(settings: Settings, identities: Identities) -> dict[str, str]:
    """The administrator's credentials, created on first start and kept in a 0600 file.

    If the file is gone or names a key the store no longer has, the administrator's key in
    the store is written to it again: another airgate sharing this store (several gateways
    on one PostgreSQL, with one AIRGATE_MASTER_KEY) keeps working with the same key. Only
    when the store has none is a key made.
    """
    path = settings.credentials_file
    if path.exists():
        saved: dict[str, str] = json.loads(path.read_text())
        if identities.credential(saved["AccessKeyId"]) is not None:
            return saved
    with contextlib.suppress(IamError):
        identities.create_user(BOOTSTRAP_USER)
    # IAM names ignore case: an operator's `Admin` must not become the administrator.
    holder = identities.get_user(BOOTSTRAP_USER)["UserName"]
    if holder != BOOTSTRAP_USER:
        raise ConfigError(f"the IAM user {holder!r} takes the bootstrap administrator's name "
                          f"{BOOTSTRAP_USER!r} (names ignore case): rename or delete it")
    identities.put_inline_policy("user", BOOTSTRAP_USER, BOOTSTRAP_POLICY_NAME,
                                 ADMINISTRATOR_POLICY)
    existing = [identities.credential(key["AccessKeyId"])
                for key in identities.list_access_keys(BOOTSTRAP_USER)]
    current = next((credential for credential in existing if credential is not None), None)
    if current is not None:
        saved = {"UserName": BOOTSTRAP_USER, "AccessKeyId": current.access_key_id,
                 "SecretAccessKey": current.secret_access_key}
    else:
        key = identities.create_access_key(BOOTSTRAP_USER)
        saved = {"UserName": BOOTSTRAP_USER, "AccessKeyId": key["AccessKeyId"],
                 "SecretAccessKey": key["SecretAccessKey"]}
    write_private(path, json.dumps(saved, indent=2).encode())
    return saved


@contextlib.contextmanager
def server_record(settings: Settings) -> Iterator[None]:
    """Record the address of a running server for `airgate shellenv`, while it runs."""
    record: dict[str, Any] = {"endpoint_url": settings.endpoint_url, "pid": os.getpid(),
                              "region": settings.region}
    write_private(settings.server_file, json.dumps(record).encode())
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            settings.server_file.unlink()


DEFAULT_ENVIRONMENT = "default"
DEFAULT_BUCKET = "airgate-default"


def ensure_default_environment(airgate: Airgate, dags: Path | None) -> str:
    """The environment `airgate up` provides, serving `dags` (a folder wired in directly)."""
    settings = airgate.settings
    folder = settings.buckets_dir / DEFAULT_BUCKET / "dags"
    if dags is not None:
        folder.parent.mkdir(parents=True, exist_ok=True)
        if folder.is_symlink() or folder.is_file():
            folder.unlink()
        elif folder.is_dir():
            shutil.rmtree(folder)
        folder.symlink_to(dags.resolve(), target_is_directory=True)
    if airgate.environments.find(DEFAULT_ENVIRONMENT) is None:
        airgate.provider.create({
            "Name": DEFAULT_ENVIRONMENT,
            "ExecutionRoleArn": f"arn:aws:iam::{settings.account_id}:role/airgate-default",
            "SourceBucketArn": f"arn:aws:s3:::{DEFAULT_BUCKET}",
            "DagS3Path": "dags",
            "NetworkConfiguration": {},
        }, datetime.datetime.now(datetime.UTC))
    return str(folder.resolve())


def _announce_when_ready(airgate: Airgate, name: str, dags_folder: str) -> None:
    """Print the environment's addresses once it is up (or why it is not)."""
    def wait() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            record = airgate.environments.find(name)
            if record is None:
                return
            if record.status == "AVAILABLE":
                home = EnvironmentLayout.of(airgate.settings.home, name).airflow_home
                print(f"environment {name} is AVAILABLE\n"
                      f"  Airflow UI: {record.runtime.get('WebserverUrl')} (user admin, password"
                      f" in {home / 'simple_auth_manager_passwords.json.generated'})\n"
                      f"  DAGs folder: {dags_folder}\n"
                      f"  logs: airgate logs {name} [COMPONENT]", flush=True)
                return
            if record.status.endswith("FAILED"):
                print(f"environment {name} is {record.status}: "
                      f"{(record.last_update or {}).get('Error')}", flush=True)
                return
            time.sleep(1)

    threading.Thread(target=wait, daemon=True).start()


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def serve(settings: Settings, dags: Path | None = None, default_environment: bool = True) -> None:
    """Run airgate in the foreground until interrupted; environments stop with it."""
    import uvicorn

    ensure_writable_home(settings.home)
    logs.configure(settings.log_dir)
    airgate = build(settings)
    ensure_bootstrap_admin(settings, airgate.identities)
    print(f"airgate listening on {settings.endpoint_url}", flush=True)
    print(f"state directory: {settings.home}", flush=True)
    if airgate.tls is not None:
        print(f"TLS: clients trust {airgate.tls.ca_bundle} (AWS_CA_BUNDLE, "
              "REQUESTS_CA_BUNDLE; `airgate shellenv` sets them)", flush=True)
    print('credentials: eval "$(airgate shellenv)"', flush=True)
    if isinstance(airgate.runtime, LocalRuntime):
        isolation = airgate.runtime.sandbox
        print(f"{'isolation' if isolation.isolated else 'WARNING'}: {isolation.description}",
              flush=True)
    airgate.start()
    if default_environment:
        folder = ensure_default_environment(airgate, dags)
        _announce_when_ready(airgate, DEFAULT_ENVIRONMENT, folder)
    config = uvicorn_config(airgate.app, settings.host, settings.port, airgate.tls,
                            settings.forwarded_allow_ips)
    # uvicorn stops on SIGTERM, then raises the signal again; its default action would end
    # the process before the environments are stopped below, leaving Airflow running.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        with server_record(settings):
            uvicorn.Server(config).run()
    finally:
        airgate.close()
