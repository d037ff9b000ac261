"""Starts and stops each environment's front (airgate/web/front.py) on the environment's
own port, following the environments as they come and go.

Each front is a uvicorn server in its own thread and event loop: environments are created
and deleted while airgate runs, and a thread per front keeps them independent of the MWAA
API's server and of each other.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import uvicorn

from airgate.airflow.tokens import SigningKey
from airgate.environments.reach import reachable
from airgate.environments.store import EnvironmentRecord, EnvironmentStore
from airgate.errors import ServiceError
from airgate.listen import uvicorn_config
from airgate.mwaa.rest_api import TOKEN_ROLES
from airgate.tls import TlsFiles
from airgate.web.cli_forward import forward_cli
from airgate.web.front import EnvironmentFront
from airgate.web.sessions import REVIEW_INTERVAL, WebSessions
from airgate.web.signin import AirflowSignIn, sign_in_for
from airgate.web.tokens import EnvironmentTokens

# Statuses in which an environment's Airflow may be running, so its front should be up.
SERVED_STATUSES = frozenset({"AVAILABLE", "UNAVAILABLE", "UPDATING", "UPDATE_FAILED"})
STARTUP_TIMEOUT = 5.0
RETRY_FAILED_FRONT = 60.0  # seconds before a front that could not listen tries again
# (environment, IAM identity, Airflow role, source address, https) -> the identity's
# principal id if it may still be signed in (airgate/web/review.py's IamReview), else None.
Review = Callable[[str, str, str, str, bool], str | None]
_log = logging.getLogger("airgate.web")


@dataclass
class _Running:
    port: int
    front: EnvironmentFront
    server: uvicorn.Server
    thread: threading.Thread


class WebFronts:
    def __init__(self, store: EnvironmentStore, tokens: EnvironmentTokens,
                 port_of: Callable[[EnvironmentRecord], int | None],
                 upstream_of: Callable[[EnvironmentRecord], str | None],
                 run_cli: Callable[[str, list[str], float],
                                   subprocess.CompletedProcess[bytes]],
                 signing_key_of: Callable[[str], SigningKey], review: Review,
                 host: str = "127.0.0.1", public_host: str | None = None,
                 interval: float = 1.0,
                 review_interval: float = REVIEW_INTERVAL,
                 tls: TlsFiles | None = None,
                 forwarded_allow_ips: Sequence[str] = (),
                 runs_here: Callable[[EnvironmentRecord], bool] = lambda record: True
                 ) -> None:
        self._tls = tls
        # Whether this gateway runs the environment; the fronts of those another runs
        # send CLI commands there (web/cli_forward.py).
        self._runs_here = runs_here
        self._forwarded_allow_ips = tuple(forwarded_allow_ips)
        self._store = store
        self.tokens = tokens
        self._port_of = port_of
        self._upstream_of = upstream_of
        self._run_cli = run_cli
        self._signing_key_of = signing_key_of
        self._review = review
        self._review_interval = review_interval
        self._host = host  # where fronts listen
        self._public_host = public_host or host  # where users and other gateways reach them
        self._interval = interval
        self._running: dict[str, _Running] = {}
        # Fronts that could not listen on their port: when to try again.
        self._failed: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()  # the follower thread and callers of hostname()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, daemon=True,
                                        name="airgate-web-fronts")
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            for name in list(self._running):
                self._stop_front(name)

    def front(self, name: str) -> EnvironmentFront | None:
        """The environment's front, if it is serving."""
        with self._lock:
            running = self._running.get(name)
        return running.front if running is not None else None

    def hostname(self, record: EnvironmentRecord) -> str | None:
        """The environment's WebServerHostname, its front answering there by the time this
        returns (the follower may not have started it yet); for an environment another
        gateway runs, the front that gateway serves; None if it has no front."""
        port = self._served_port(record)
        if port is None:
            return served_elsewhere(record) if record.status in SERVED_STATUSES else None
        with self._lock:
            started = record.name in self._running or self._start_front(record.name, port)
        if not started and not self._runs_here(record):
            return served_elsewhere(record)  # the port is taken here: the runner's front
        return f"{self._public_host}:{port}"

    def _follow(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.sync()
            except Exception:  # the store may be briefly unreachable: try again next round
                _log.warning("could not follow the environments", exc_info=True)

    def sync(self) -> None:
        """One round: a front for every environment that may be running, none for others."""
        wanted = {record.name: port for record in self._store.all()
                  if (port := self._served_port(record)) is not None}
        with self._lock:
            for name in list(self._running):
                if self._running[name].port != wanted.get(name):
                    self._stop_front(name)
            now = time.monotonic()
            for name, port in wanted.items():
                if name not in self._running and self._failed.get((name, port), 0) <= now:
                    self._start_front(name, port)

    def _served_port(self, record: EnvironmentRecord) -> int | None:
        """The port this gateway serves the environment's front on, if it does: every
        environment that may be running, but not one whose runner serves its front at this
        gateway's own address (another gateway on this machine: the port is that one's)."""
        port = self._port_of(record)
        if port is None or record.status not in SERVED_STATUSES:
            return None
        if not self._runs_here(record):
            # Its runner's front must be usable from here (web/cli_forward.py), and not
            # at this gateway's own address (another gateway on this machine: the port is
            # that one's).
            runner = reachable(record.runtime, "WebserverUrl")
            if runner is None or urlsplit(runner).hostname in (self._host, self._public_host):
                return None
        return port

    def _start_front(self, name: str, port: int) -> bool:
        """Start the front; False if it could not listen on the port."""
        def upstream() -> str | None:
            record = self._store.cached(name)
            try:
                return self._upstream_of(record) if record is not None else None
            except ServiceError:  # its runner's Airflow can't be reached from here
                return None

        def run_cli(argv: list[str], timeout: float,
                    identity: str) -> subprocess.CompletedProcess[bytes]:
            """Here if this gateway runs the environment, else at its runner's front."""
            record = self._store.cached(name)
            if record is None or self._runs_here(record):
                return self._run_cli(name, argv, timeout)
            url = reachable(record.runtime, "WebserverUrl")
            if url is None:
                raise LookupError(name)
            return forward_cli(url, self.tokens.mint("cli", name, identity), argv,
                               timeout, verify=str(self._tls.ca_bundle) if self._tls else True)

        def mint_airflow_token(identity: str, airflow_role: str, ttl: float,
                               purpose: str | None) -> str | None:
            role = TOKEN_ROLES.get(airflow_role)
            if role is None:  # Public: no Airflow user to sign in as
                return None
            return self._signing_key_of(name).mint(
                subject=identity, role=role, environment=name, ttl=ttl,
                extra={"purpose": purpose} if purpose is not None else None)

        def sign_in() -> AirflowSignIn:
            """How sessions sign in to the environment's Airflow as it runs now (an update
            may change its version)."""
            record = self._store.cached(name)
            version = record.spec.get("AirflowVersion") if record is not None else None
            return sign_in_for(str(version or "3"))

        def review(identity: str, airflow_role: str, source_ip: str,
                   secure: bool) -> str | None:
            return self._review(name, identity, airflow_role, source_ip, secure)

        sessions = WebSessions(name, self.tokens, review, self._review_interval)
        front = EnvironmentFront(name, upstream, self.tokens, run_cli, mint_airflow_token,
                                 sessions, sign_in=sign_in)
        server = uvicorn.Server(uvicorn_config(front, self._host, port, self._tls,
                                               self._forwarded_allow_ips))
        thread = threading.Thread(target=server.run, daemon=True, name=f"airgate-web-{name}")
        thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if server.started:
            self._running[name] = _Running(port, front, server, thread)
            self._failed.pop((name, port), None)
            return True
        # The port is taken on this machine (chosen free on the runner's): tried again
        # later, not every round.
        server.should_exit = True
        thread.join(timeout=10)
        self._failed[(name, port)] = time.monotonic() + RETRY_FAILED_FRONT
        _log.warning("the front of %s did not start on port %d", name, port)
        return False

    def _stop_front(self, name: str) -> None:
        running = self._running.pop(name)
        running.server.should_exit = True
        running.thread.join(timeout=10)



def served_elsewhere(record: EnvironmentRecord) -> str | None:
    """The WebServerHostname of an environment whose front another gateway serves, as that
    gateway recorded it (its WebserverUrl without the scheme), if usable from here."""
    url = reachable(record.runtime, "WebserverUrl")
    return urlsplit(url).netloc or None if url else None
