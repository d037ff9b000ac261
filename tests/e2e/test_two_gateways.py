"""Two airgate gateways on one PostgreSQL store, as behind a load balancer: each with its
own home, engine and caches, sharing the store and the master key (AIRGATE_MASTER_KEY).
Both serve InvokeRestApi, a change made through one is obeyed by the other at once, and
concurrent CreateEnvironment calls for one name through both make exactly one environment.

The environments' REST API is the recording stand-in (tests.support.TrivialUpstream): what
is tested here is the gateways and the store, not Airflow supervision.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from cryptography.fernet import Fernet

from airgate.auth.secrets import MASTER_KEY_VARIABLE
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
