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
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import UpstreamRuntime, create_environment_args, free_port

from airgate import config
from airgate.listen import uvicorn_config
from airgate.server import build, ensure_bootstrap_admin
from bench.support import (
    percentile,
    pin_to_core,
    print_table,
    sequential_latency,
    signed_invoke_bytes,
    throughput,
)

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

def serve_airgate(home: Path, port: int, upstream_port: int) -> None:
    import uvicorn

    from airgate import logs

    pin_to_core(0)
    # The gateway alone: admission fixed far above what the load offers.
    settings = config.Settings(home=home, port=port, rest_api_concurrency=100_000,
                               rest_api_adaptive=False)
    logs.configure(settings.log_dir)  # the access log is part of the cost
    airgate = build(settings, UpstreamRuntime.factory(upstream_port))
    ensure_bootstrap_admin(settings, airgate.identities)
    airgate.provider.create(create_environment_args(ENV), datetime.datetime.now(datetime.UTC))
    airgate.start()
    uvicorn.Server(uvicorn_config(airgate.app, settings.host, settings.port)).run()


# --- the load generator ----------------------------------------------------------------------

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
            airgate = psutil.Process(processes[1].pid)
            idle_rss = airgate.memory_info().rss
            cpu_before = cpu_seconds(processes[1].pid)
            with PeakMemory(airgate) as peak:
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
            "errors": errors, "airgate_idle_rss_mib": idle_rss / 2**20,
            "airgate_load_rss_mib": peak.rss / 2**20}


class PeakMemory:
    """The largest resident size a process reaches while the block runs (sampled)."""

    def __init__(self, process: psutil.Process, interval: float = 0.05) -> None:
        self._process, self._interval = process, interval
        self._done = threading.Event()
        self.rss = process.memory_info().rss

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._done.wait(self._interval):
            self.rss = max(self.rss, self._process.memory_info().rss)


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
        ("airgate RSS idle / peak under load, MiB",
         f"{figures['airgate_idle_rss_mib']:.0f} / {figures['airgate_load_rss_mib']:.0f}"),
    ]
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
