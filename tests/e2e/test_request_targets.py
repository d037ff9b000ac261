"""A request target that is not a path (`GET * HTTP/1.1`, `GET http://host HTTP/1.1`) gets a
400 ValidationException from the MWAA API and from an environment's front, never a 500."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from airgate.listen import uvicorn_config
from airgate.web.front import EnvironmentFront
from airgate.web.sessions import WebSessions
from airgate.web.tokens import EnvironmentTokens
from tests.support import RunningAirgate, free_port, running_airgate

pytestmark = pytest.mark.e2e

MALFORMED = [b"*", b"*?x=1", b"http://127.0.0.1", b"http://127.0.0.1:1?x=1"]
REFUSAL = {"message": "The request target must be a path starting with '/'."}


def raw_request(port: int, target: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """Status line, headers and body of the answer to `GET target HTTP/1.1`."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Connection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = {name.lower(): value for name, value in (line.split(b": ", 1) for line in lines)}
    return status, headers, body


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAirgate]:
    with running_airgate(tmp_path_factory.mktemp("targets") / "home") as server:
        yield server


@pytest.fixture(scope="module")
def front_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """An environment's front whose Airflow does not answer."""
    tokens = EnvironmentTokens.load_or_create(tmp_path_factory.mktemp("front") / "key")
    nobody = f"http://127.0.0.1:{free_port()}"
    front = EnvironmentFront("env", lambda: nobody, tokens, run_cli=_unused,
                             mint_airflow_token=_unused,
                             sessions=WebSessions("env", tokens, _unused))
    port = free_port()
    server = uvicorn.Server(uvicorn_config(front, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the front did not start"
        time.sleep(0.01)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def _unused(*args: object) -> Any:
    raise AssertionError("not called for these requests")


@pytest.mark.parametrize("target", MALFORMED)
def test_the_api_refuses_a_target_that_is_not_a_path(api: RunningAirgate,
                                                     target: bytes) -> None:
    port = int(api.endpoint_url.rsplit(":", 1)[1])
    status, headers, body = raw_request(port, target)
    assert status == b"HTTP/1.1 400 Bad Request"
    assert headers[b"x-amzn-errortype"] == b"ValidationException"
    assert json.loads(body) == REFUSAL
    # and the server goes on answering
    assert raw_request(port, b"/environments")[0] == b"HTTP/1.1 403 Forbidden"


@pytest.mark.parametrize("target", MALFORMED)
def test_a_front_refuses_a_target_that_is_not_a_path(front_port: int, target: bytes) -> None:
    status, _, body = raw_request(front_port, target)
    assert status == b"HTTP/1.1 400 Bad Request"
    assert json.loads(body) == REFUSAL
    assert raw_request(front_port, b"/home")[0] == b"HTTP/1.1 502 Bad Gateway"
