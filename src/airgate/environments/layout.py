"""Where each environment's files live under the airgate home, and which port it listens on.

    AIRGATE_HOME/
      environments/NAME/
        airflow/              AIRFLOW_HOME: metadata database (SQLite), task logs
        home/, tmp/           HOME and /tmp of the environment's processes
        sandbox/              the account files its sandbox shows (environments/sandbox.py)
        dags/                 DAGs synced from S3 (with a bucket folder, DAGs are read in place)
        plugins/              plugins.zip, unpacked
        site-packages/        requirements.txt, installed for this environment only
        logs/COMPONENT.log    api-server, scheduler, dag-processor, triggerer, worker-N, setup
        keys/airflow.pem      the environment's own token key (0600)
        support/              airgate's code inside Airflow 2 (its API auth backend)
        jwks.json             public keys the environment trusts
      keys/environments/NAME.pem   airgate's key for minting this environment's tokens
      buckets/BUCKET/              the default place of `arn:aws:s3:::BUCKET`
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

# Every component any Airflow major version runs (each environment runs its version's).
MAX_SCHEDULERS = 5  # MWAA's bound on Schedulers
MAX_WORKERS = 25  # MWAA's default ceiling on MaxWorkers (Celery environments)
# Every component an environment may run; schedulers past the first are scheduler-2, ...,
# Celery workers worker-1, worker-2, ...
COMPONENTS = ("api-server", "webserver", "scheduler",
              *(f"scheduler-{n}" for n in range(2, MAX_SCHEDULERS + 1)), "dag-processor",
              "triggerer", *(f"worker-{n}" for n in range(1, MAX_WORKERS + 1)))


@dataclass(frozen=True, slots=True)
class EnvironmentLayout:
    root: Path
    airgate_key: Path

    @classmethod
    def of(cls, airgate_home: Path, name: str) -> EnvironmentLayout:
        return cls(root=airgate_home / "environments" / name,
                   airgate_key=airgate_home / "keys" / "environments" / f"{name}.pem")

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    @property
    def home(self) -> Path:
        """HOME of the environment's processes (pip's cache, for one)."""
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        """/tmp of the environment's processes, when they run in a sandbox."""
        return self.root / "tmp"

    @property
    def dags(self) -> Path:
        return self.root / "dags"

    @property
    def plugins(self) -> Path:
        return self.root / "plugins"

    @property
    def site_packages(self) -> Path:
        return self.root / "site-packages"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def own_key(self) -> Path:
        return self.root / "keys" / "airflow.pem"

    @property
    def jwks(self) -> Path:
        return self.root / "jwks.json"

    @property
    def database(self) -> Path:
        return self.airflow_home / "airflow.db"

    @property
    def airflow_cfg(self) -> Path:
        """The configuration file Airflow writes on its first start (airgate configures it
        with variables; a file left by another Airflow version would confuse this one)."""
        return self.airflow_home / "airflow.cfg"

    @property
    def fernet_key(self) -> Path:
        return self.root / "keys" / "fernet.key"

    @property
    def web_secret(self) -> Path:
        """The web server's session secret (Airflow 2's `[webserver] secret_key`)."""
        return self.root / "keys" / "web-secret"

    @property
    def support(self) -> Path:
        """airgate's code for the environment's Airflow major version (read-only to it)."""
        return self.root / "support"

    def log_file(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def create(self) -> None:
        for folder in (self.airflow_home, self.home, self.tmp, self.dags, self.plugins,
                       self.site_packages, self.logs, self.own_key.parent):
            folder.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True
