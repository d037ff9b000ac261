"""What the gateway itself costs per InvokeRestApi call: signed requests per second on one
core, and the latency it adds, measured against a trivial upstream instead of Airflow so that
Airflow's own time is not in the figures.

    .venv/bin/python bench/gateway_throughput.py [--seconds 5] [--connections 32] [--runs 3]

Three processes: airgate (the real server: SigV4, parsing, policy evaluation, admission,
token, proxy, access log) pinned to core 0; a trivial upstream that answers every request
with `{}`, and the load generator, pinned to core 1. Requests are signed once and replayed
(SigV4 allows that within its 5 minutes), so every request is verified in full by airgate
while the load generator stays cheap. Latency is the same request made one at a time
directly to the upstream and through airgate, interleaved; throughput is many connections
at once through airgate. Each figure is the median of --runs runs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import free_port

from airgate import config
from airgate.airflow.tokens import SigningKey
from airgate.environments.store import EnvironmentRecord, EnvironmentStore
from airgate.server import build, ensure_bootstrap_admin, uvicorn_config
from bench.support import percentile, pin_to_core, signed_invoke_bytes

ENV = "bench"
UPSTREAM_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 2\r\n\r\n{}")


# --- the trivial upstream --------------------------------------------------------------------

class _Upstream(asyncio.Protocol):
    """Answers each bodiless request with `{}` as soon as its headers have arrived."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport: Any = transport
        self._buffer = b""

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\r\n\r\n")) >= 0:
            self._buffer = self._buffer[end + 4:]
            self._transport.write(UPSTREAM_RESPONSE)


def serve_upstream(port: int) -> None:
    pin_to_core(1)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Upstream, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(main())


# --- airgate in front of it ------------------------------------------------------------------

class UpstreamRuntime:
    """Environments that are AVAILABLE at once, their REST API being the trivial upstream."""

    def __init__(self, store: EnvironmentStore, home: Path, upstream_port: int) -> None:
        self._store = store
        self._key = SigningKey.load_or_create(home / "bench-signing.pem", "airgate")
        self._upstream_port = upstream_port

    @property
    def supported_versions(self) -> tuple[str, ...]:
        return ("3.3.2",)

    def check_spec(self, spec: dict[str, Any]) -> None:
        return None

    def begin_create(self, environment: EnvironmentRecord) -> None:
        self._store.transition(environment.name, allowed_from=None, status="AVAILABLE",
                               runtime={"Ports": {"api": self._upstream_port}})

    def begin_update(self, environment: EnvironmentRecord, previous_spec: dict[str, Any]) -> None:
        return None

    def begin_delete(self, environment: EnvironmentRecord) -> None:
        self._store.remove(environment.name)

    def webserver_url(self, environment: EnvironmentRecord) -> str | None:
        return None

    def api_url(self, environment: EnvironmentRecord) -> str | None:
        return f"http://127.0.0.1:{environment.runtime['Ports']['api']}"

    def signing_key(self, name: str) -> SigningKey:
        return self._key


def serve_airgate(home: Path, port: int, upstream_port: int) -> None:
    import uvicorn

    from airgate import logs

    pin_to_core(0)
    settings = config.Settings(home=home, port=port, rest_api_concurrency=100_000,
                               rest_api_rate=1e9, rest_api_burst=1_000_000_000)
    logs.configure(settings.log_dir)  # the access log is part of the cost
    airgate = build(settings, lambda s, store: UpstreamRuntime(store, home, upstream_port))
    ensure_bootstrap_admin(settings, airgate.identities)
    airgate.provider.create({
        "Name": ENV, "ExecutionRoleArn": "arn:aws:iam::000000000000:role/bench",
        "SourceBucketArn": "arn:aws:s3:::bench", "DagS3Path": "dags",
        "NetworkConfiguration": {}}, datetime.datetime.now(datetime.UTC))
    airgate.start()
    uvicorn.Server(uvicorn_config(airgate.app, settings)).run()


# --- the load generator ----------------------------------------------------------------------

async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def sequential_latency(requests: dict[str, tuple[int, bytes]],
                             calls: int) -> dict[str, list[float]]:
    """Each request made `calls` times on its own connection, one at a time, interleaved."""
    connections = {name: await asyncio.open_connection("127.0.0.1", port)
                   for name, (port, _) in requests.items()}
    samples: dict[str, list[float]] = {name: [] for name in requests}
    for i in range(calls + 50):
        for name, (_, request) in requests.items():
            reader, writer = connections[name]
            started = time.perf_counter()
            status = await _exchange(reader, writer, request)
            elapsed = (time.perf_counter() - started) * 1000
            if status != 200:
                raise RuntimeError(f"{name}: HTTP {status}")
            if i >= 50:  # the first calls warm connections and caches
                samples[name].append(elapsed)
    for _, writer in connections.values():
        writer.close()
    return samples


async def throughput(port: int, request: bytes, connections: int,
                     seconds: float) -> dict[str, Any]:
    """Requests answered per second with `connections` callers each waiting for its answer."""
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    measuring = False
    stop = False

    async def caller() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while not stop:
            started = time.perf_counter()
            status = await _exchange(reader, writer, request)
            if measuring:
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append((time.perf_counter() - started) * 1000)
        writer.close()

    tasks = [asyncio.create_task(caller()) for _ in range(connections)]
    await asyncio.sleep(1.0)  # warm-up
    measuring = True
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    measuring = False
    elapsed = time.perf_counter() - started
    stop = True
    await asyncio.gather(*tasks)
    return {"per_second": sum(statuses.values()) / elapsed, "statuses": statuses,
            "p50": statistics.median(latencies), "p99": percentile(latencies, 0.99)}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_port(port: int) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def one_run(seconds: float, connections: int, calls: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        upstream_port, airgate_port = free_port(), free_port()
        me = [sys.executable, __file__]
        processes = [
            subprocess.Popen([*me, "--upstream", str(upstream_port)]),
            subprocess.Popen([*me, "--airgate", str(home), str(airgate_port),
                              str(upstream_port)], stderr=subprocess.DEVNULL),
        ]
        try:
            wait_for_port(upstream_port)
            wait_for_port(airgate_port)
            pin_to_core(1)
            admin = json.loads((home / "credentials.json").read_text())
            through = signed_invoke_bytes(airgate_port, admin, ENV, "/version")
            direct = (b"GET /api/v2/version HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Authorization: Bearer x\r\nAccept: application/json\r\n\r\n")
            samples = asyncio.run(sequential_latency(
                {"direct": (upstream_port, direct), "gateway": (airgate_port, through)}, calls))
            cpu_before = cpu_seconds(processes[1].pid)
            load = asyncio.run(throughput(airgate_port, through, connections, seconds))
            cpu_used = cpu_seconds(processes[1].pid) - cpu_before
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
    direct_p50 = statistics.median(samples["direct"])
    gateway_p50 = statistics.median(samples["gateway"])
    errors = sum(n for status, n in load["statuses"].items() if status != 200)
    return {"direct_p50": direct_p50, "gateway_p50": gateway_p50,
            "added_p50": gateway_p50 - direct_p50,
            "gateway_p99": percentile(samples["gateway"], 0.99),
            "per_second": load["per_second"], "load_p50": load["p50"], "load_p99": load["p99"],
            "cpu_ms_per_request": 1000 * cpu_used / (load["per_second"] * (seconds + 1.0)),
            "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--airgate", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream:
        return serve_upstream(args.upstream)
    if args.airgate:
        home, port, upstream = args.airgate
        return serve_airgate(Path(home), int(port), int(upstream))

    runs = [one_run(args.seconds, args.connections, args.calls) for _ in range(args.runs)]
    figures = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    print(f"machine: {os.cpu_count()} cores; airgate pinned to one core; median of "
          f"{args.runs} runs; {args.calls} sequential calls each way, then "
          f"{args.connections} connections for {args.seconds:g} s")
    rows = [
        ("trivial upstream direct p50, ms", f"{figures['direct_p50']:.3f}"),
        ("through InvokeRestApi p50 / p99, ms",
         f"{figures['gateway_p50']:.3f} / {figures['gateway_p99']:.3f}"),
        ("added p50, ms (target < 0.5)", f"{figures['added_p50']:.3f}"),
        ("signed requests/s on one core (target >= 2000)", f"{figures['per_second']:.0f}"),
        ("airgate CPU per request, ms", f"{figures['cpu_ms_per_request']:.3f}"),
        (f"latency at {args.connections} connections p50 / p99, ms",
         f"{figures['load_p50']:.2f} / {figures['load_p99']:.2f}"),
        ("non-200 answers under load", f"{figures['errors']:.0f}"),
    ]
    print(f"| {'measure':<48} | {'value':<20} |")
    print(f"| {'-' * 48} | {'-' * 20} |")
    for name, value in rows:
        print(f"| {name:<48} | {value:<20} |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
