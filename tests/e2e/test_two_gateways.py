"""Two airgate gateways on one PostgreSQL store, as behind a load balancer: each with its
own home, engine and caches, sharing the store and the master key (AIRGATE_MASTER_KEY).
Both serve InvokeRestApi, a change made through one is obeyed by the other at once, and
concurrent CreateEnvironment calls for one name through both make exactly one environment.

The environments' REST API is the recording stand-in (tests.support.TrivialUpstream): what
is tested here is the gateways and the store. Real environments run under the airgate that
created them; the last test shows the other gateway leaving them alone.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import pytest
from cryptography.fernet import Fernet

from airgate.auth.secrets import MASTER_KEY_VARIABLE
from airgate.server import local_runtime
from tests.e2e.processes import EnvironmentProcesses
from tests.e2e.test_airgate_crash import Airgate
from tests.e2e.test_runtime import create_args, status_of, wait_for, wait_for_status
from tests.support import (
    RunningAirgate,
    TrivialUpstream,
    UpstreamRuntime,
    create_environment_args,
    postgres_database,
    running_airgate,
    trivial_upstream,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

Gateways = tuple[RunningAirgate, RunningAirgate, TrivialUpstream]


@pytest.fixture
def gateways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateways]:
    monkeypatch.setenv(MASTER_KEY_VARIABLE, Fernet.generate_key().decode())
    with postgres_database() as url, trivial_upstream() as upstream:
        runtime = UpstreamRuntime.factory(upstream.port)
        with running_airgate(tmp_path / "a", url, runtime_factory=runtime) as first, \
                running_airgate(tmp_path / "b", url, runtime_factory=runtime) as second:
            yield first, second, upstream


def test_both_serve_invoke_rest_api_with_one_administrator(gateways: Gateways) -> None:
    first, second, upstream = gateways
    assert first.admin == second.admin  # the second start shared the key, not rotated it
    first.client().create_environment(**create_environment_args("shared"))
    for gateway in (first, second, first, second):
        answer = gateway.client().invoke_rest_api(Name="shared", Method="GET", Path="/version")
        assert answer["RestApiStatusCode"] == 200
    assert upstream.requests == 4


def test_a_change_through_one_is_obeyed_by_the_other(gateways: Gateways) -> None:
    first, second, _ = gateways
    identities = first.airgate.identities
    identities.create_user("roaming")
    identities.put_inline_policy("user", "roaming", "list", (
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
        '"Action": "airflow:ListEnvironments", "Resource": "*"}]}'))
    key = identities.create_access_key("roaming")
    second.client(key).list_environments()
    identities.delete_access_key("roaming", key["AccessKeyId"])
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        second.client(key).list_environments()
    assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_concurrent_creates_of_one_name_make_one_environment(gateways: Gateways) -> None:
    first, second, _ = gateways
    clients = [first.client(), second.client()]
    for round_ in range(15):
        name = f"race-{round_}"
        barrier = threading.Barrier(2)

        def create(client: Any, name: str = name, barrier: threading.Barrier = barrier) -> str:
            barrier.wait()
            try:
                client.create_environment(**create_environment_args(name))
                return "created"
            except botocore.exceptions.ClientError as error:
                return str(error.response["Error"]["Code"])

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            outcomes = sorted(pool.map(create, clients))
        assert outcomes == ["ValidationException", "created"], outcomes
    names = first.client().list_environments()["Environments"]
    assert sorted(names) == sorted(f"race-{i}" for i in range(15))
    assert second.client().list_environments()["Environments"] == names


def monitor_rounds(runtime: Any, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The times of the runtime's monitor rounds from now on (its look for changes made
    through other gateways ends each round)."""
    rounds: list[float] = []
    take_up = runtime._take_up_changes_made_elsewhere

    def counted() -> None:
        take_up()
        rounds.append(time.monotonic())

    monkeypatch.setattr(runtime, "_take_up_changes_made_elsewhere", counted)
    return rounds


@pytest.mark.airflow
@pytest.mark.timeout(600)  # its bounded waits: AVAILABLE 240 s, deletion 120 s, processes 30 s
def test_each_environment_runs_under_the_airgate_that_created_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real Airflow: the second gateway's start leaves the first's environment alone, serves
    it all the same (InvokeRestApi, CLI and web-login tokens), and a DeleteEnvironment sent
    to it is carried out by the first."""
    monkeypatch.setenv(MASTER_KEY_VARIABLE, Fernet.generate_key().decode())
    homes = {name: tmp_path / name for name in ("a", "b")}
    for home in homes.values():
        (home / "buckets" / "data-team" / "dags").mkdir(parents=True)
    # Found by the test itself (tests/e2e/processes.py), not by airgate's leftovers code.
    in_a = EnvironmentProcesses(homes["a"] / "environments" / "shared")
    in_b = EnvironmentProcesses(homes["b"] / "environments" / "shared")
    try:
        with postgres_database() as url, \
                running_airgate(homes["a"], url, runtime_factory=local_runtime,
                                advertise_address="127.0.0.2") as first:
            first.client().create_environment(**create_args("shared"))
            wait_for_status(first.client(), "shared", "AVAILABLE")
            running_here = {p.pid for p in in_a.find()}
            assert running_here
            with running_airgate(homes["b"], url, runtime_factory=local_runtime,
                                 host="127.0.0.2") as second:
                # Its recovery ran in start(); wait for three of its monitor rounds (each
                # looks for work sent to it by other gateways) before checking none acted.
                rounds = monitor_rounds(second.airgate.runtime, monkeypatch)
                wait_for(lambda: len(rounds) >= 3, 60, "three monitor rounds of the second")
                assert status_of(first.client(), "shared") == "AVAILABLE"
                assert in_b.find() == []
                assert not (homes["b"] / "environments" / "shared").exists()
                # None of the first's processes was ended: the same ones still run.
                assert {p.pid for p in in_a.find()} >= running_here
                serves_the_environment_it_does_not_run(first, second)

                second.client().delete_environment(Name="shared")
                wait_for(lambda: "shared" not in first.client().list_environments()[
                    "Environments"], 120, "the first airgate to carry out the deletion")
                wait_for(lambda: not in_a.find(), 30, "its processes to end")
    finally:
        left = in_a.kill_all() + in_b.kill_all()
    assert not left, f"processes left running: {left}"


def serves_the_environment_it_does_not_run(first: RunningAirgate,
                                           second: RunningAirgate) -> None:
    """The second gateway answers for the first's environment: InvokeRestApi reads and
    writes the same Airflow (at the address the first advertises: another loopback
    address, where only a server listening beyond 127.0.0.1 answers); it serves the
    environment's front at its own address, running CLI commands through the first's, and
    tokens either mints work at either front, a web-login token once only (at either)."""
    runtime = first.airgate.environments.get("shared").runtime
    assert runtime["ApiUrl"] == f"http://127.0.0.2:{runtime['Ports']['api']}"
    version = first.client().invoke_rest_api(Name="shared", Method="GET", Path="/version")
    through_second = second.client().invoke_rest_api(Name="shared", Method="GET",
                                                     Path="/version")
    assert through_second["RestApiStatusCode"] == 200
    assert through_second["RestApiResponse"] == version["RestApiResponse"]
    second.client().invoke_rest_api(Name="shared", Method="POST", Path="/variables",
                                    Body={"key": "from_second", "value": "b"})
    assert first.client().invoke_rest_api(Name="shared", Method="GET",
                                          Path="/variables/from_second")[
        "RestApiResponse"]["value"] == "b"

    web = runtime["Ports"]["web"]
    fronts = {"first": f"127.0.0.1:{web}", "second": f"127.0.0.2:{web}"}
    assert first.client().create_cli_token(Name="shared")["WebServerHostname"] == \
        fronts["first"]
    cli = second.client().create_cli_token(Name="shared")
    assert cli["WebServerHostname"] == fronts["second"]  # its own front
    for hostname in fronts.values():  # forwarded to the first's, run there
        answer = httpx.post(f"http://{hostname}/aws_mwaa/cli",
                            content="variables get from_second", timeout=120,
                            headers={"Authorization": f"Bearer {cli['CliToken']}"})
        assert answer.status_code == 200, answer.text
        assert base64.b64decode(answer.json()["stdout"]).decode().strip().endswith("b")

    for minting, using in (("second", "second"), ("first", "second"), ("second", "first")):
        gateway = second if minting == "second" else first
        login = gateway.client().create_web_login_token(Name="shared")
        signed_in = sign_in(fronts[using], login["WebToken"])
        assert signed_in.status_code == 200, signed_in.text
        session = signed_in.cookies["airgate.session.shared"]
        with httpx.Client(base_url=f"http://{fronts[using]}",
                          cookies={"airgate.session.shared": session}) as browser:
            assert browser.get("/api/v2/variables/from_second").json()["value"] == "b"
        for again in fronts.values():  # used up, at every gateway
            refused = sign_in(again, login["WebToken"])
            assert refused.status_code == 401, refused.text
            assert "already been used" in refused.text


def sign_in(hostname: str, token: str) -> httpx.Response:
    return httpx.post(f"http://{hostname}/pluginsv2/aws_mwaa/login", data={"token": token},
                      timeout=30)


@pytest.mark.slow
def test_two_airgate_processes_race_to_create_one_name(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The same race between two `airgate up` processes (true parallelism, nothing shared
    but the store). The environments point at a requirements file that does not exist, so
    each fails fast (CREATE_FAILED) instead of starting Airflow."""
    monkeypatch.setenv(MASTER_KEY_VARIABLE, Fernet.generate_key().decode())
    with postgres_database() as url, contextlib.ExitStack() as stack:
        servers = []
        for name in ("a", "b"):
            server = Airgate(tmp_path / name, url)
            stack.callback(server.stop)
            server.start()
            servers.append(server)
        clients = [server.client() for server in servers]
        for round_ in range(10):
            name = f"race-{round_}"
            barrier = threading.Barrier(2)

            def create(client: Any, name: str = name,
                       barrier: threading.Barrier = barrier) -> str:
                barrier.wait()
                try:
                    client.create_environment(**create_environment_args(name),
                                              RequirementsS3Path="missing.txt")
                    return "created"
                except botocore.exceptions.ClientError as error:
                    return str(error.response["Error"]["Code"])

            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                assert sorted(pool.map(create, clients)) == ["ValidationException", "created"]
        expected = [f"race-{i}" for i in range(10)]
        for client in clients:
            assert client.list_environments()["Environments"] == expected
