"""`/metrics` on airgate's listener: every family in one registry, in the format the
scraper asks for (Prometheus text, or OpenMetrics).

Readable without AWS credentials by default, as exporters are: the metrics carry
environment names and call counts, never a body, a key or a principal. With a bearer
token configured (AIRGATE_METRICS_TOKEN), a scrape must present it.
"""

from __future__ import annotations

import hmac

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool

from airgate.aws.wire import Response

PATH = "/metrics"


class MetricsEndpoint:
    def __init__(self, registry: CollectorRegistry, bearer_token: str | None = None) -> None:
        self.registry = registry
        self._token = bearer_token

    async def respond(self, method: str, headers: list[tuple[str, str]]) -> Response:
        if method != "GET":
            return Response(405, b"GET only\n", {"allow": "GET",
                                                 "content-type": "text/plain"})
        if self._token is not None:
            given = [value for key, value in headers if key.lower() == "authorization"]
            expected = f"Bearer {self._token}".encode()
            if len(given) != 1 or not hmac.compare_digest(given[0].encode(), expected):
                return Response(401, b"a bearer token is required\n",
                                {"www-authenticate": 'Bearer realm="airgate metrics"',
                                 "content-type": "text/plain"})
        accept = next((value for key, value in headers if key.lower() == "accept"), "")
        encoder, content_type = choose_encoder(accept)
        # Collectors read the store: not on the event loop.
        body = await run_in_threadpool(encoder, self.registry)
        return Response(200, body, {"content-type": content_type})
