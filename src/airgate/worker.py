"""`airgate worker --environment NAME`: run a Celery environment's workers on this machine
for the gateways that share this machine's state store (environments/remote.py)."""

from __future__ import annotations

import signal
import threading

from airgate import logs
from airgate.config import ConfigError, Settings, ensure_writable_home
from airgate.environments.remote import RemoteWorkerError, RemoteWorkers
from airgate.environments.sandbox import SandboxUnavailable
from airgate.environments.sandbox import detect as detect_sandbox
from airgate.environments.sources import BucketFolders, S3Objects, uses_s3
from airgate.environments.store import EnvironmentStore
from airgate.environments.versions import AirflowRuntimes
from airgate.environments.worker_reports import WorkerReports
from airgate.server import default_airflow_version, installation_id, open_state


def serve_workers(settings: Settings, environment: str, workers: int) -> None:
    """Run `workers` workers of `environment` until SIGTERM or SIGINT, or until the
    environment is deleted; ConfigError if it can't take workers from here."""
    if workers < 1:
        raise ConfigError("--workers must be 1 or more")
    ensure_writable_home(settings.home)
    logs.configure(settings.log_dir)
    db, identities, _ = open_state(settings)
    node = installation_id(settings.home)
    try:
        sandbox = detect_sandbox(settings.sandbox, node)
    except SandboxUnavailable as error:
        raise ConfigError(str(error)) from None
    agent = RemoteWorkers(
        settings.home, environment, EnvironmentStore(db), WorkerReports(db), identities.box,
        S3Objects() if uses_s3() else BucketFolders(settings.buckets_dir),
        AirflowRuntimes(settings.home, default_airflow_version(),
                        settings.extra_airflow_versions),
        sandbox, workers, node)
    try:
        agent.check()
    except RemoteWorkerError as error:
        raise ConfigError(str(error)) from None
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"airgate worker: {workers} Celery workers of environment {environment} "
          f"(this machine: {node}; {sandbox.description})", flush=True)
    try:
        agent.run(stop)
    finally:
        db.close()
