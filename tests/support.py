"""Shared test machinery: an airgate server on a free port, boto3 clients for it, and a
PostgreSQL database per test run."""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import uvicorn

from airgate import config
from airgate.airflow.tokens import SigningKey
from airgate.listen import uvicorn_config
from airgate.server import (
    Airgate,
    RuntimeFactory,
    build,
    ensure_bootstrap_admin,
    record_only_runtime,
)

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    import psycopg

    name = f"airgate_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class RunningAirgate:
    airgate: Airgate
    endpoint_url: str
    admin: dict[str, str]

    @property
    def settings(self) -> config.Settings:
        return self.airgate.settings

    def client(self, credentials: dict[str, str] | None = None, **config_args: Any) -> Any:
        """A real boto3 MWAA client for this server, as the administrator by default."""
        tls = self.airgate.tls
        return mwaa_client(self.endpoint_url, credentials or self.admin,
                           self.settings.region,
                           verify=str(tls.ca_bundle) if tls else None, **config_args)


def users_with_policies(server: RunningAirgate, users: dict[str, list[str]]) -> dict[str, Any]:
    """An IAM user per entry, with those inline policy documents and an access key; a boto3
    MWAA client for each, by user name."""
    identities = server.airgate.identities
    clients = {}
    for name, documents in users.items():
        identities.create_user(name)
        for index, document in enumerate(documents):
            identities.put_inline_policy("user", name, f"p{index}", document)
        clients[name] = server.client(identities.create_access_key(name))
    return clients


SINGLE_ATTEMPT = {"total_max_attempts": 1, "mode": "standard"}


def mwaa_client(endpoint_url: str, credentials: dict[str, str], region: str,
                **config_args: Any) -> Any:
    session = boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials.get("SessionToken"),
        region_name=region,
    )
    # One attempt: a test sees every answer as airgate gave it, never a retry's (botocore's
    # "max_attempts" counts retries, "total_max_attempts" attempts).
    retries = config_args.pop("retries", SINGLE_ATTEMPT)
    verify = config_args.pop("verify", None)
    return session.client(
        "mwaa", endpoint_url=endpoint_url, verify=verify,
        config=botocore.config.Config(inject_host_prefix=False, retries=retries,
                                      **config_args),
    )


@contextlib.contextmanager
def running_airgate(home: Path, database_url: str | None = None,
                    runtime_factory: RuntimeFactory | None = None,
                    **settings_overrides: Any) -> Iterator[RunningAirgate]:
    """airgate serving on a free port in this process, until the block ends."""
    settings = config.Settings(home=home, port=free_port(), database_url=database_url,
                               **settings_overrides)
    airgate = build(settings, runtime_factory or record_only_runtime)
    admin = ensure_bootstrap_admin(settings, airgate.identities)
    airgate.start()
    app = ErrorResponseRecorder(airgate.app, home / "logs" / "error-responses.log")
    server = uvicorn.Server(uvicorn_config(app, settings.host, settings.port, airgate.tls))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("airgate did not start")
        time.sleep(0.01)
    try:
        yield RunningAirgate(airgate, settings.endpoint_url, admin)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        airgate.close()


class ErrorResponseRecorder:
    """Keeps every error response the server sends, one JSON line each, for the secret scan
    at the end of the run (tests.leak_scan)."""

    def __init__(self, app: Any, path: Path) -> None:
        self.app, self.path = app, path
        self._lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0
        body: list[bytes] = []

        async def recording(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status >= 400:
                body.append(message.get("body", b""))
                if not message.get("more_body"):
                    self._write(scope, status, b"".join(body))
            await send(message)

        await self.app(scope, receive, recording)

    def _write(self, scope: Any, status: int, body: bytes) -> None:
        line = json.dumps({"method": scope["method"], "path": scope["path"], "status": status,
                           "body": body.decode("utf-8", "replace")})
        with self._lock, contextlib.suppress(OSError):  # e.g. the disk-full tests' disk
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as file:
                file.write(line + "\n")


class UpstreamRuntime:
    """Environments that are AVAILABLE as soon as they are created, their REST API being
    whatever listens on `upstream_port`: for testing and measuring the gateway without
    Airflow's own time in the way."""

    def __init__(self, store: Any, home: Path, upstream_port: int) -> None:
        self._store = store
        self._key = SigningKey.load_or_create(home / "upstream-signing.pem", "airgate")
        self._upstream_port = upstream_port

    @classmethod
    def factory(cls, upstream_port: int) -> RuntimeFactory:
        return lambda settings, store: cls(store, settings.home, upstream_port)

    @property
    def supported_versions(self) -> tuple[str, ...]:
        return ("3.3.2",)

    def check_spec(self, spec: dict[str, Any]) -> None:
        return None

    def begin_create(self, environment: Any) -> None:
        self._store.transition(environment.name, allowed_from=None, status="AVAILABLE",
                               runtime={"Ports": {"api": self._upstream_port}})

    def begin_update(self, environment: Any, previous_spec: dict[str, Any]) -> None:
        last_update = {**(environment.last_update or {}), "Status": "SUCCESS"}
        self._store.transition(environment.name, allowed_from=None, status="AVAILABLE",
                               last_update=last_update)

    def begin_delete(self, environment: Any) -> None:
        self._store.remove(environment.name)

    def webserver_url(self, environment: Any) -> str | None:
        return None

    def api_url(self, environment: Any) -> str | None:
        return f"http://127.0.0.1:{environment.runtime['Ports']['api']}"

    def signing_key(self, name: str) -> SigningKey:
        return self._key


def create_environment_args(name: str) -> dict[str, Any]:
    """The fewest CreateEnvironment arguments MWAA accepts (a bucket named after the
    environment, as S3 allows bucket names: lowercase, no underscores)."""
    bucket = "bucket-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return {"Name": name, "ExecutionRoleArn": "arn:aws:iam::000000000000:role/airgate",
            "SourceBucketArn": f"arn:aws:s3:::{bucket[:63].rstrip('-')}", "DagS3Path": "dags",
            "NetworkConfiguration": {}}


class ScriptedRuntime:
    """A runtime whose progress the test decides, for testing the API's lifecycle rules
    without running Airflow (the process runtime has its own end-to-end tests).

    It records what the API asked of it; `finish` moves an environment on as a real
    runtime would when its work ends.
    """

    def __init__(self, store: Any, versions: tuple[str, ...] = ("3.3.2", "2.10.3")) -> None:
        self._store = store
        self._versions = versions
        self.calls: list[tuple[str, str]] = []
        self.previous_specs: dict[str, dict[str, Any]] = {}

    @property
    def supported_versions(self) -> tuple[str, ...]:
        return self._versions

    def check_spec(self, spec: dict[str, Any]) -> None:
        return None

    def begin_create(self, environment: Any) -> None:
        self.calls.append(("create", environment.name))

    def begin_update(self, environment: Any, previous_spec: dict[str, Any]) -> None:
        self.calls.append(("update", environment.name))
        self.previous_specs[environment.name] = previous_spec

    def begin_delete(self, environment: Any) -> None:
        self.calls.append(("delete", environment.name))
        self._store.remove(environment.name)

    def webserver_url(self, environment: Any) -> str | None:
        return environment.runtime.get("WebserverUrl")

    def finish(self, name: str, status: str = "AVAILABLE") -> None:
        record = self._store.get(name)
        last_update = dict(record.last_update or {})
        last_update["Status"] = "SUCCESS" if status == "AVAILABLE" else "FAILED"
        self._store.transition(name, allowed_from=None, status=status,
                               last_update=last_update,
                               runtime={"WebserverUrl": f"http://127.0.0.1:1/{name}"})


class TrivialUpstream(http.server.ThreadingHTTPServer):
    """An environment's REST API stand-in: answers every request with `{}` and records what
    reached it; requests to /api/v2/slow wait until `release` is set, and
    /api/v2/status/CODE?say=TEXT answers CODE with `{"detail": TEXT}`."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _UpstreamHandler)
        self.release = threading.Event()
        self.slow_started = threading.Event()
        self.received: list[tuple[str, str, dict[str, str]]] = []  # method, target, headers

    @property
    def requests(self) -> int:
        return len(self.received)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _UpstreamHandler(http.server.BaseHTTPRequestHandler):
    server: TrivialUpstream

    def _answer(self) -> None:
        self.server.received.append((self.command, self.path, dict(self.headers.items())))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path.startswith("/api/v2/slow"):
            self.server.slow_started.set()
            self.server.release.wait(timeout=30)
        status, body = 200, b"{}"
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/api/v2/status/"):
            status = int(url.path.rsplit("/", 1)[1])
            said = urllib.parse.parse_qs(url.query).get("say", [""])[0]
            body = json.dumps({"detail": said}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextlib.contextmanager
def trivial_upstream() -> Iterator[TrivialUpstream]:
    server = TrivialUpstream()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()


Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrape_metrics(endpoint_url: str, token: str | None = None, verify: Any = True) -> Samples:
    """airgate's /metrics as a Prometheus server reads it (Prometheus's own parser):
    {sample name: {sorted (label, value) pairs: value}}."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.get(f"{endpoint_url}/metrics", headers=headers, verify=verify, timeout=30)
    assert answer.status_code == 200, answer.text
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = \
                sample.value
    return samples


def labels(**pairs: str) -> tuple[tuple[str, str], ...]:
    """A series' labels as scrape_metrics keys them."""
    return tuple(sorted(pairs.items()))
