"""X-Forwarded-For and X-Forwarded-Proto decide aws:SourceIp and aws:SecureTransport only when
`airgate up --forwarded-allow-ips` names the proxy that sends them; by default any local
process could otherwise pass IP and TLS conditions by writing two headers."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from airgate import config
from airgate.server import open_state
from tests.e2e.test_authentication import sign
from tests.e2e.test_cli import AIRGATE
from tests.e2e.test_runtime import wait_for
from tests.support import free_port

pytestmark = pytest.mark.e2e

FAKED = {"X-Forwarded-For": "10.9.9.9", "X-Forwarded-Proto": "https"}
ONLY_FROM_FAKED_IP = {"IpAddress": {"aws:SourceIp": "10.9.9.9/32"}}
ONLY_OVER_TLS = {"Bool": {"aws:SecureTransport": "true"}}


@dataclass
class Served:
    home: Path
    endpoint_url: str
    keys: dict[str, dict[str, str]]  # user name -> access key

    def list_environments(self, user: str) -> httpx.Response:
        """A signed ListEnvironments from loopback, with the forwarded headers added as a
        proxy adds them (outside the signature)."""
        prepared = sign("GET", f"{self.endpoint_url}/environments", self.keys[user]).prepare()
        return httpx.get(prepared.url, headers={**dict(prepared.headers), **FAKED})

    def access_log(self, user: str) -> dict[str, Any]:
        """The access-log line of the user's call (written just after the answer)."""
        def line() -> dict[str, Any] | None:
            for text in (self.home / "logs" / "airgate.log").read_text().splitlines():
                entry = json.loads(text)
                if entry.get("logger") == "airgate.access" and \
                        entry.get("principal", "") == f"arn:aws:iam::000000000000:user/{user}":
                    return dict(entry)
            return None
        found: dict[str, Any] = wait_for(line, 10, f"the access-log line of {user}", 0.05)
        return found


@pytest.fixture(scope="module", params=["default", "trusting-loopback"])
def served(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("forwarded") / "home"
    port = free_port()
    extra = ["--forwarded-allow-ips", "127.0.0.1"] if request.param != "default" else []
    process = subprocess.Popen([*AIRGATE, "up", "--home", str(home), "--port", str(port),
                                "--no-default-environment", *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        try:
            httpx.get(endpoint)
        except httpx.TransportError:
            return False
        return (home / "credentials.json").exists()

    try:
        wait_for(answering, 30, "airgate up to answer", 0.05)
        db, identities, _ = open_state(config.Settings(home=home))
        keys = {}
        for user, condition in (("from-vpn", ONLY_FROM_FAKED_IP), ("tls-only", ONLY_OVER_TLS)):
            identities.create_user(user)
            identities.put_inline_policy("user", user, "list", json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "airflow:ListEnvironments",
                               "Resource": "*", "Condition": condition}]}))
            keys[user] = identities.create_access_key(user)
        db.close()
        yield Served(home, endpoint, keys)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def test_forwarded_headers_are_ignored_unless_the_proxy_is_named(served: Served,
                                                                 request: Any) -> None:
    trusted = "trusting-loopback" in request.node.callspec.id
    for user in ("from-vpn", "tls-only"):
        answer = served.list_environments(user)
        if trusted:
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"Environments": []}
        else:
            assert answer.status_code == 403, answer.text
            assert (answer.status_code, answer.headers["x-amzn-errortype"],
                    answer.json()["Message"]) == (
                403, "AccessDeniedException",
                f"User: arn:aws:iam::000000000000:user/{user} is not authorized to perform: "
                "airflow:ListEnvironments on resource: *")
    assert served.access_log("from-vpn")["source_ip"] == ("10.9.9.9" if trusted
                                                          else "127.0.0.1")
