"""What the benchmarks share: percentiles, CPU pinning and pre-signed requests."""

from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
import time
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def print_table(rows: list[tuple[str, str]]) -> None:
    """A two-column Markdown table of measures, as the README shows them."""
    width = max(len(name) for name, _ in rows)
    print(f"| {'measure':<{width}} | value |")
    print(f"| {'-' * width} | --- |")
    for name, value in rows:
        print(f"| {name:<{width}} | {value} |")


def pin_to_core(core: int) -> None:
    """Run this process on one core only (when the machine has it)."""
    if hasattr(os, "sched_setaffinity") and core < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {core})


def signed_invoke(endpoint: str, credentials: dict[str, str], environment: str, path: str,
                  method: str = "GET", region: str = "us-east-1") -> tuple[
                      str, dict[str, str], bytes]:
    """An InvokeRestApi request signed once, to be replayed (SigV4 allows that for
    5 minutes): URL, headers and body."""
    body = json.dumps({"Path": path, "Method": method}).encode()
    request = AWSRequest(method="POST", url=f"{endpoint}/restapi/{environment}", data=body,
                         headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(credentials["AccessKeyId"], credentials["SecretAccessKey"],
                          credentials.get("SessionToken")), "airflow", region).add_auth(request)
    prepared = request.prepare()
    return prepared.url, dict(prepared.headers), body


def signed_invoke_bytes(port: int, credentials: dict[str, str], environment: str,
                        path: str) -> bytes:
    """The same request as raw HTTP/1.1 bytes, for load generators that write sockets."""
    _, headers, body = signed_invoke(f"http://127.0.0.1:{port}", credentials, environment,
                                       path)
    head = [f"POST /restapi/{environment} HTTP/1.1", f"Host: 127.0.0.1:{port}",
            f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in headers.items()
             if name.lower() not in ("host", "content-length")]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


# --- a load generator cheap enough to share a core with what it measures ---------------

async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   request: bytes) -> int:
    """One request and its answer (which must carry Content-Length); the status code."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def sequential_latency(requests: dict[str, tuple[int, bytes]], calls: int,
                             pause: float = 0.0, warmup: int = 50) -> dict[str, list[float]]:
    """Each request made `calls` times on its own connection, one at a time, interleaved;
    `pause` seconds between rounds stand for callers that come and go."""
    connections = {name: await asyncio.open_connection("127.0.0.1", port)
                   for name, (port, _) in requests.items()}
    samples: dict[str, list[float]] = {name: [] for name in requests}
    for i in range(calls + warmup):
        if pause:
            await asyncio.sleep(pause)
        for name, (_, request) in requests.items():
            reader, writer = connections[name]
            started = time.perf_counter()
            status = await exchange(reader, writer, request)
            elapsed = (time.perf_counter() - started) * 1000
            if status != 200:
                raise RuntimeError(f"{name}: HTTP {status}")
            if i >= warmup:  # the first calls warm connections and caches
                samples[name].append(elapsed)
    for _, writer in connections.values():
        writer.close()
    return samples


async def throughput(port: int, request: bytes, connections: int, seconds: float,
                     warmup: float = 1.0) -> dict[str, Any]:
    """Requests answered per second with `connections` callers each waiting for its answer."""
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    measuring = False
    stop = False

    async def caller() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while not stop:
            started = time.perf_counter()
            status = await exchange(reader, writer, request)
            if measuring:
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append((time.perf_counter() - started) * 1000)
        writer.close()

    tasks = [asyncio.create_task(caller()) for _ in range(connections)]
    await asyncio.sleep(warmup)
    measuring = True
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    measuring = False
    elapsed = time.perf_counter() - started
    stop = True
    await asyncio.gather(*tasks)
    # No answer inside the window (an overloaded Airflow can stall): latency unknown, NaN.
    return {"per_second": sum(statuses.values()) / elapsed, "statuses": statuses,
            "p50": statistics.median(latencies) if latencies else math.nan,
            "p99": percentile(latencies, 0.99) if latencies else math.nan}
