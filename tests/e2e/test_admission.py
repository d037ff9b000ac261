"""Admission control seen from boto3: excess InvokeRestApi calls are refused at once with
ThrottlingException (HTTP 429), which botocore's standard and adaptive retry modes retry by
themselves. The environment's REST API here is a small local server (see UpstreamRuntime),
so these tests run without Airflow."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from tests.support import (
    RunningAirgate,
    TrivialUpstream,
    UpstreamRuntime,
    create_environment_args,
    running_airgate,
    trivial_upstream,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def upstream() -> Iterator[TrivialUpstream]:
    with trivial_upstream() as server:
        yield server


def serving(tmp_path: Path, upstream: TrivialUpstream, **admission: Any) -> Any:
    return running_airgate(tmp_path, runtime_factory=UpstreamRuntime.factory(
        upstream.server_address[1]), **admission)


def invoke(server: RunningAirgate, path: str = "/version", **config: Any) -> dict[str, Any]:
    result: dict[str, Any] = server.client(**config).invoke_rest_api(Name="env", Path=path,
                                                                     Method="GET")
    return result


def test_calls_over_the_rate_are_throttled_with_429(tmp_path: Path,
                                                    upstream: TrivialUpstream) -> None:
    # One token every 1,000 s: the fourth call is refused however slowly the first three ran
    # (at 0.5/s a loaded machine could refill a token between them).
    with serving(tmp_path, upstream, rest_api_rate=0.001, rest_api_burst=3) as server:
        server.client().create_environment(**create_environment_args("env"))
        for _ in range(3):
            assert invoke(server)["RestApiStatusCode"] == 200
        sent = upstream.requests
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            invoke(server)
        error = refused.value.response
        assert error["Error"]["Code"] == "ThrottlingException"
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert upstream.requests == sent  # nothing reached the environment


@pytest.mark.parametrize("mode", ["standard", "adaptive"])
def test_botocore_retry_modes_ride_out_the_throttling(tmp_path: Path, upstream: TrivialUpstream,
                                                      mode: str) -> None:
    # 24 calls at 5 a second take at least 4.4 s, however slowly a loaded machine makes
    # them: some are throttled. (Calls over the in-flight limit wait in admission's line
    # for a slot, so the limit alone does not make any.)
    with serving(tmp_path, upstream, rest_api_rate=5, rest_api_burst=2) as server:
        server.client().create_environment(**create_environment_args("env"))
        retries = {"mode": mode, "max_attempts": 10}
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: invoke(server, retries=retries), range(24)))
        assert all(result["RestApiStatusCode"] == 200 for result in results)
        assert sum(r["ResponseMetadata"]["RetryAttempts"] for r in results) > 0


def test_calls_in_flight_are_bounded(tmp_path: Path, upstream: TrivialUpstream) -> None:
    with serving(tmp_path, upstream, rest_api_concurrency=1) as server:
        server.client().create_environment(**create_environment_args("env"))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            slow = pool.submit(invoke, server, "/slow")
            assert upstream.slow_started.wait(timeout=10)
            with pytest.raises(botocore.exceptions.ClientError) as refused:
                invoke(server)
            assert refused.value.response["Error"]["Code"] == "ThrottlingException"
            upstream.release.set()
            assert slow.result(timeout=10)["RestApiStatusCode"] == 200
        assert invoke(server)["RestApiStatusCode"] == 200  # the slot is free again
