"""An asset-event storm: many boto3 callers posting asset events through InvokeRestApi at
once, as a fleet of Lambda functions would on a burst of S3 uploads. Shared by the
end-to-end test and bench/event_storm.py."""

from __future__ import annotations

import concurrent.futures
import time
from dataclasses import dataclass, field
from typing import Any

import botocore.exceptions

from tests.support import mwaa_client


@dataclass
class StormResult:
    events: int
    seconds: float
    retries: int = 0  # attempts botocore repeated, nearly all after ThrottlingException
    throttled: int = 0  # answers that were ThrottlingException, as botocore received them
    failures: list[str] = field(default_factory=list)  # calls that failed after retries

    @property
    def per_second(self) -> float:
        return self.events / self.seconds


def asset_event_storm(endpoint: str, credentials: dict[str, str], environment: str,
                      asset_id: int, events: int = 1000, callers: int = 50,
                      location: str = "s3://storm") -> StormResult:
    """`events` asset events from `callers` concurrent boto3 clients (standard retry mode,
    10 attempts), each event's `extra.location` naming a distinct file."""
    clients = [mwaa_client(endpoint, credentials, "us-east-1",
                           retries={"mode": "standard", "max_attempts": 10})
               for _ in range(callers)]
    throttled = [0] * callers  # per caller: each list item has one writer

    def count_throttling(index: int) -> Any:
        def seen(response: Any = None, **_: Any) -> None:
            if response is not None and response[1].get("Error", {}).get(
                    "Code") == "ThrottlingException":
                throttled[index] += 1
        return seen

    for index, client in enumerate(clients):
        # Every attempt's answer passes here before botocore decides to retry it.
        client.meta.events.register("needs-retry.mwaa.InvokeRestApi", count_throttling(index))

    def caller(index: int) -> tuple[int, list[str]]:
        retries, failures = 0, []
        for number in range(index, events, callers):
            try:
                answer = clients[index].invoke_rest_api(
                    Name=environment, Method="POST", Path="/assets/events",
                    Body={"asset_id": asset_id,
                          "extra": {"location": f"{location}/file-{number:05d}.csv"}})
                retries += answer["ResponseMetadata"]["RetryAttempts"]
            except botocore.exceptions.ClientError as error:
                failures.append(f"{error.response['Error']['Code']}: {error}")
        return retries, failures

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(callers) as pool:
        outcomes: list[Any] = list(pool.map(caller, range(callers)))
    result = StormResult(events=events, seconds=time.monotonic() - started)
    for retries, failures in outcomes:
        result.retries += retries
        result.failures += failures
    result.throttled = sum(throttled)
    return result
