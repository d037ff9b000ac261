"""/metrics after real calls from boto3: every call counted by service, operation and
status; InvokeRestApi by environment (Airflow's success, Airflow's 4xx, throttling), with
upstream latency and admission; environment status. The environment's REST API is a small
local server (UpstreamRuntime), so this runs without Airflow; tests/e2e/test_examples.py
scrapes a real environment's components and Airflow's own metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import botocore.exceptions
import httpx
import pytest

from tests.support import (
    TrivialUpstream,
    UpstreamRuntime,
    create_environment_args,
    labels,
    running_airgate,
    scrape_metrics,
    trivial_upstream,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def upstream() -> Iterator[TrivialUpstream]:
    with trivial_upstream() as server:
        yield server


def test_calls_rest_api_outcomes_throttling_and_status_are_counted(
        tmp_path: Path, upstream: TrivialUpstream) -> None:
    with running_airgate(tmp_path, runtime_factory=UpstreamRuntime.factory(upstream.port),
                         rest_api_rate=0.001, rest_api_burst=4) as server:
        client = server.client()
        client.create_environment(**create_environment_args("env"))
        for _ in range(3):
            assert client.invoke_rest_api(Name="env", Method="GET",
                                          Path="/version")["RestApiStatusCode"] == 200
        with pytest.raises(client.exceptions.RestApiClientException):
            client.invoke_rest_api(Name="env", Method="DELETE", Path="/status/404")
        for name in ("env", "made-up"):  # over the rate; an environment that doesn't exist
            with pytest.raises(botocore.exceptions.ClientError):
                client.invoke_rest_api(Name=name, Method="GET", Path="/version")
        client.list_environments()
        samples = scrape_metrics(server.endpoint_url)
        again = scrape_metrics(server.endpoint_url)

    requests = samples["airgate_requests_total"]
    invoke = {"service": "mwaa", "operation": "InvokeRestApi"}
    assert requests[labels(**invoke, status="200")] == 3
    assert requests[labels(**invoke, status="400")] == 1  # Airflow's 404, as MWAA passes it
    assert requests[labels(**invoke, status="429")] == 1
    assert requests[labels(**invoke, status="404")] == 1  # ResourceNotFoundException
    assert requests[labels(service="mwaa", operation="CreateEnvironment", status="200")] == 1
    assert requests[labels(service="mwaa", operation="ListEnvironments", status="200")] == 1
    assert samples["airgate_request_duration_seconds_count"][labels(**invoke)] == 6
    # Scrapes are not calls.
    assert again["airgate_requests_total"] == requests

    calls = samples["airgate_rest_api_calls_total"]
    assert calls == {
        labels(environment="env", method="GET", status="200"): 3,
        labels(environment="env", method="DELETE", status="404"): 1,
        labels(environment="env", method="GET", status="ThrottlingException"): 1,
    }  # nothing for the environment that doesn't exist
    assert samples["airgate_throttled_requests_total"] == {labels(environment="env"): 1}
    upstream_count = samples["airgate_rest_api_upstream_duration_seconds_count"]
    assert upstream_count == {labels(environment="env"): 4}
    assert samples["airgate_rest_api_in_flight"] == {labels(environment="env"): 0}
    assert samples["airgate_rest_api_admission_limit"][labels(environment="env")] >= 1

    status = samples["airgate_environment_status"]
    assert status[labels(environment="env", status="AVAILABLE")] == 1
    assert status[labels(environment="env", status="CREATING")] == 0
    assert sum(value for key, value in status.items() if dict(key)["environment"] == "env") == 1


def test_a_bearer_token_guards_metrics_when_configured(tmp_path: Path) -> None:
    with running_airgate(tmp_path, metrics_token="s3cret-scrape") as server:
        url = f"{server.endpoint_url}/metrics"
        assert httpx.get(url).status_code == 401
        wrong = httpx.get(url, headers={"Authorization": "Bearer guess"})
        assert (wrong.status_code, wrong.headers["www-authenticate"]) == (
            401, 'Bearer realm="airgate metrics"')
        server.client().list_environments()
        assert scrape_metrics(server.endpoint_url, "s3cret-scrape")["airgate_requests_total"] \
            == {labels(service="mwaa", operation="ListEnvironments", status="200"): 1}
        posted = httpx.post(url, headers={"Authorization": "Bearer s3cret-scrape"})
        assert (posted.status_code, posted.headers["allow"]) == (405, "GET")


def test_metrics_are_open_by_default_and_openmetrics_when_asked(tmp_path: Path) -> None:
    with running_airgate(tmp_path) as server:
        plain = httpx.get(f"{server.endpoint_url}/metrics")
        open_metrics = httpx.get(f"{server.endpoint_url}/metrics", headers={
            "Accept": "application/openmetrics-text; version=1.0.0"})
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    assert open_metrics.text.endswith("# EOF\n")
