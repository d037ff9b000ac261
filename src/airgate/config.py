"""Settings, from one source: command-line flags over AIRGATE_* environment variables over
defaults. Everything else reads a `Settings`, never the environment.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

DEFAULT_PORT = 8420
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "000000000000"
DEFAULT_REST_API_TIMEOUT = 10.0
DEFAULT_REST_API_BURST = 50


class ConfigError(ValueError):
    """A setting that can't be used; the message says which and why."""


def ensure_writable_home(home: Path) -> None:
    """Make the airgate home if needed and prove it can be written, so that a read-only or
    full disk is one clear sentence at start-up rather than a traceback later."""
    probe = home / ".airgate-write-check"
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"the airgate home {home} can't be written: "
                          f"{error.strerror or error}") from None


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT_ID
    database_url: str | None = None  # None: SQLite in `home`
    # A PostgreSQL server for the environments' Airflow metadata (one database each);
    # None: SQLite in each environment's AIRFLOW_HOME.
    airflow_database_url: str | None = None
    # InvokeRestApi: how long Airflow may take, and admission per environment
    # (mwaa/admission.py): an in-flight limit learned from Airflow's latency, under the
    # operator's optional ceilings (calls in flight, new calls per second with a burst);
    # `rest_api_adaptive=False` fixes the limit at `rest_api_concurrency` instead.
    rest_api_timeout: float = DEFAULT_REST_API_TIMEOUT
    rest_api_concurrency: int | None = None
    rest_api_rate: float | None = None
    rest_api_burst: int = DEFAULT_REST_API_BURST
    rest_api_adaptive: bool = True
    # Airflow 3 versions offered besides the one installed with airgate (own virtualenvs).
    extra_airflow_versions: tuple[str, ...] = ()
    # HTTPS for the API and every environment's front, from a local CA (airgate.tls).
    tls: bool = False
    # Reverse proxies (addresses or networks) whose X-Forwarded-For/-Proto are believed;
    # none by default, so aws:SourceIp and aws:SecureTransport are the connection's own.
    forwarded_allow_ips: tuple[str, ...] = ()
    # How environments are isolated (environments/sandbox.py): auto (the best this machine
    # allows, said plainly at start), required (refuse to start without isolation), off.
    sandbox: str = "auto"
    # How long the sessions environments get of their execution role last (900 to 43200 s,
    # as STS allows; AWS SDKs fetch a new one before the end).
    execution_role_session_seconds: int = 3600
    # New environments start from a copy of metadata migrated once per Airflow version
    # (environments/templates.py); False: each migrates an empty database.
    metadata_templates: bool = True
    # A bearer token scrapes of /metrics must present; None: /metrics is open, as
    # exporters are (it holds no secret).
    metrics_token: str | None = None
    # The local UDP port environments send their StatsD metrics to (0: any free port).
    statsd_port: int = 0
    # A Redis or RabbitMQ broker (administrator's URL): environments run Airflow's
    # CeleryExecutor with autoscaled workers, each on its own login and namespace there
    # (environments/brokers.py). Needs `airflow_database_url`. None: the LocalExecutor.
    broker_url: str | None = None
    # RabbitMQ's management API, if not on the broker's host at port 15672.
    broker_management_url: str | None = None
    # How long fewer Celery workers must do before the extra ones are stopped.
    worker_quiet_seconds: float = 120.0
    # The address other machines reach this one at (other gateways' InvokeRestApi and
    # `airgate worker` machines, reaching the environments this gateway runs); None: only
    # this machine reaches its environments, which listen on loopback.
    advertise_address: str | None = None

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'airgate.db'}"

    @property
    def credentials_file(self) -> Path:
        """The bootstrap administrator's credentials (0600)."""
        return self.home / "credentials.json"

    @property
    def master_key_file(self) -> Path:
        """The key that encrypts secret access keys at rest (0600), unless supplied."""
        return self.home / "master.key"

    @property
    def server_file(self) -> Path:
        """Where a running `airgate up` records its address, for `airgate shellenv`."""
        return self.home / "server.json"

    @property
    def buckets_dir(self) -> Path:
        """Where `arn:aws:s3:::NAME` lives unless S3 is configured: `buckets/NAME`."""
        return self.home / "buckets"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def tls_dir(self) -> Path:
        """The local CA and the server certificate (`ca.pem` is what clients trust)."""
        return self.home / "tls"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def reachable_host(self) -> str:
        """This machine's address as environments and other machines reach airgate's
        listeners: the listening address, unless that is a wildcard (then the advertised
        address, or loopback)."""
        if self.host in ("0.0.0.0", "", "::"):
            return self.advertise_address or "127.0.0.1"
        return self.host

    @property
    def endpoint_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def validate(self) -> Settings:
        if not re.fullmatch(r"\d{12}", self.account_id):
            raise ConfigError(f"account id must be 12 digits, got {self.account_id!r}")
        if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", self.region):
            raise ConfigError(f"not a region name: {self.region!r}")
        for version in self.extra_airflow_versions:
            if not re.fullmatch(r"3\.\d+\.\d+", version):
                raise ConfigError(f"AIRGATE_AIRFLOW_VERSIONS: {version!r} is not an Airflow 3 "
                                  "release such as 3.2.1")
        if self.sandbox not in ("auto", "required", "off"):
            raise ConfigError(f"sandbox must be auto, required or off, got {self.sandbox!r}")
        if not 900 <= self.execution_role_session_seconds <= 43200:
            raise ConfigError("AIRGATE_EXECUTION_ROLE_SESSION_SECONDS must be 900 to 43200, "
                              f"got {self.execution_role_session_seconds}")
        if self.broker_url is not None:
            scheme = self.broker_url.partition("://")[0]
            if scheme not in ("redis", "rediss", "amqp", "amqps", "pyamqp"):
                raise ConfigError("broker URL must be redis://, rediss:// or amqp:// "
                                  f"(got {scheme or 'no'} scheme)")
            if self.airflow_database_url is None:
                raise ConfigError(
                    "Celery environments (a broker URL) need PostgreSQL metadata: Celery "
                    "workers and several schedulers share it, which SQLite can't do; give "
                    "--airflow-database-url (AIRGATE_AIRFLOW_DATABASE_URL) too")
        if self.advertise_address is not None and (
                self.advertise_address in ("0.0.0.0", "::", "")
                or not re.fullmatch(r"[A-Za-z0-9.\-]+", self.advertise_address)):
            raise ConfigError("advertise address must be this machine's IPv4 address or name "
                              "as other machines reach it (not a wildcard), got "
                              f"{self.advertise_address!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port out of range: {self.port}")
        for address in self.forwarded_allow_ips:
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError:
                raise ConfigError(f"forwarded-allow-ips: {address!r} is not an IP address or "
                                  "network; name the reverse proxy's addresses") from None
        return self


def from_environment(env: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from AIRGATE_* variables, then `overrides` (flags) where not None."""
    env = dict(os.environ if env is None else env)
    settings = Settings(
        home=Path(env.get("AIRGATE_HOME") or Path.home() / ".airgate").expanduser(),
        host=env.get("AIRGATE_HOST", "127.0.0.1"),
        port=_port(env.get("AIRGATE_PORT", str(DEFAULT_PORT))),
        region=env.get("AIRGATE_REGION", DEFAULT_REGION),
        account_id=env.get("AIRGATE_ACCOUNT_ID", DEFAULT_ACCOUNT_ID),
        database_url=env.get("AIRGATE_DATABASE_URL") or None,
        airflow_database_url=env.get("AIRGATE_AIRFLOW_DATABASE_URL") or None,
        rest_api_timeout=_number(env, "AIRGATE_REST_API_TIMEOUT", DEFAULT_REST_API_TIMEOUT)
        or DEFAULT_REST_API_TIMEOUT,
        rest_api_concurrency=_optional_whole(env, "AIRGATE_REST_API_CONCURRENCY"),
        rest_api_rate=_number(env, "AIRGATE_REST_API_RATE", None),
        rest_api_burst=int(_number(env, "AIRGATE_REST_API_BURST", DEFAULT_REST_API_BURST)
                           or DEFAULT_REST_API_BURST),
        rest_api_adaptive=env.get("AIRGATE_REST_API_ADAPTIVE", "1").lower()
        not in ("0", "false", "no"),
        extra_airflow_versions=tuple(
            v.strip() for v in env.get("AIRGATE_AIRFLOW_VERSIONS", "").split(",") if v.strip()),
        tls=env.get("AIRGATE_TLS", "").lower() in ("1", "true", "yes"),
        sandbox=env.get("AIRGATE_SANDBOX", "auto"),
        forwarded_allow_ips=address_list(env.get("AIRGATE_FORWARDED_ALLOW_IPS", "")),
        execution_role_session_seconds=int(_number(
            env, "AIRGATE_EXECUTION_ROLE_SESSION_SECONDS", 3600) or 3600),
        metadata_templates=env.get("AIRGATE_METADATA_TEMPLATES", "1").lower()
        not in ("0", "false", "no"),
        metrics_token=env.get("AIRGATE_METRICS_TOKEN") or None,
        statsd_port=int(_number(env, "AIRGATE_STATSD_PORT", 0) or 0),
        broker_url=env.get("AIRGATE_BROKER_URL") or None,
        broker_management_url=env.get("AIRGATE_BROKER_MANAGEMENT_URL") or None,
        worker_quiet_seconds=_number(env, "AIRGATE_WORKER_QUIET_SECONDS", 120.0) or 120.0,
        advertise_address=env.get("AIRGATE_ADVERTISE_ADDRESS") or None,
    )
    given = {k: v for k, v in overrides.items() if v is not None}
    if "home" in given:
        given["home"] = Path(str(given["home"])).expanduser()
    return replace(settings, **given).validate()  # type: ignore[arg-type]


def address_list(text: str) -> tuple[str, ...]:
    """`10.0.0.1, 10.1.0.0/16` as its items (checked by Settings.validate)."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _port(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"AIRGATE_PORT must be a number, got {text!r}") from None


def _optional_whole(env: dict[str, str], name: str) -> int | None:
    value = _number(env, name, None)
    return None if value is None else int(value)


def _number(env: dict[str, str], name: str, default: float | None) -> float | None:
    text = env.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {text!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {text!r}")
    return value
