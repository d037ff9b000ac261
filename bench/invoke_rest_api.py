"""InvokeRestApi against a real Airflow environment: latency through airgate against the same
call made directly, what one Airflow api-server takes on this machine, and a burst at ten
times the admitted rate; then the gateway alone against a trivial upstream on one core
(bench/gateway_throughput.py).

    .venv/bin/python bench/invoke_rest_api.py [--calls 400] [--seconds 5]

Everything is measured in one run, against one environment. Requests to airgate are signed
once and replayed (SigV4 allows that within its 5 minutes) and the direct calls carry a
pre-minted token, so neither side pays client-side signing and both are plain HTTP from the
same cheap load generator (bench/support.py). airgate runs with its admission defaults
(or the AIRGATE_REST_API_* variables set for this run), so the burst shows what users get.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import free_port, mwaa_client

from airgate import config
from airgate.airflow.tokens import SigningKey
from airgate.environments.layout import EnvironmentLayout
from bench import gateway_throughput
from bench.support import (
    exchange,
    percentile,
    print_table,
    sequential_latency,
    signed_invoke_bytes,
    throughput,
)

ENV = "bench"
EXAMPLE_DAGS = Path(__file__).resolve().parents[1] / "examples" / "dags"
BATCH = 20  # back-to-back calls per batch: within the admission burst


def start_airgate(home: Path, port: int, *options: str) -> subprocess.Popen[bytes]:
    """`airgate up` with no default environment, once it answers."""
    process = subprocess.Popen(
        [sys.executable, "-m", "airgate.cli", "up", "--home", str(home), "--port", str(port),
         "--no-default-environment", *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (home / "server.json").exists():
            try:
                httpx.get(f"http://127.0.0.1:{port}/")
                return process
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    raise RuntimeError("airgate did not start")


def environment_port(home: Path, environment: str = ENV) -> int:
    """The port of the environment's api-server, as airgate's store has it."""
    import sqlite3

    with sqlite3.connect(home / "airgate.db") as connection:
        (runtime,) = connection.execute("SELECT runtime FROM environments WHERE name = ?",
                                        (environment,)).fetchone()
    return int(json.loads(runtime)["Ports"]["api"])


def direct_request(port: int, token: str, path: str) -> bytes:
    return (f"GET /api/v2{path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n").encode()


def warm_latency(requests: dict[str, tuple[int, bytes]], calls: int,
                 rate: float | None) -> dict[str, list[float]]:
    """Back-to-back calls in batches, with pauses that let a rate ceiling's bucket refill
    when the operator set one."""
    samples: dict[str, list[float]] = {name: [] for name in requests}
    for _ in range(max(1, calls // BATCH)):
        batch = asyncio.run(sequential_latency(requests, BATCH, warmup=5))
        for name, values in batch.items():
            samples[name] += values
        if rate is not None:
            time.sleep((BATCH + 5) / rate + 0.2)
    return samples


def capacity(port: int, request: bytes, seconds: float) -> list[dict[str, Any]]:
    """Airflow's api-server called directly by more and more concurrent callers."""
    rows = []
    for callers in (1, 2, 4, 8, 16, 32):
        result = asyncio.run(throughput(port, request, callers, seconds, warmup=0.5))
        rows.append({"callers": callers, **result})
    return rows


async def burst(gateway: tuple[int, bytes], probe: tuple[int, bytes], offered: float,
                seconds: float, callers: int = 32) -> dict[str, Any]:
    """`offered` InvokeRestApi calls per second from `callers` connections, while a probe
    calls Airflow directly every 50 ms to see what the burst does to it."""
    statuses: dict[int, int] = {}
    probes: list[float] = []
    started = time.monotonic()

    async def caller(index: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway[0])
        interval = callers / offered
        due = started + index * interval / callers
        while due < started + seconds:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            status = await exchange(reader, writer, gateway[1])
            statuses[status] = statuses.get(status, 0) + 1
            due += interval
        writer.close()

    async def prober() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", probe[0])
        while time.monotonic() < started + seconds:
            began = time.perf_counter()
            await exchange(reader, writer, probe[1])
            probes.append((time.perf_counter() - began) * 1000)
            await asyncio.sleep(0.05)
        writer.close()

    await asyncio.gather(prober(), *(caller(i) for i in range(callers)))
    return {"statuses": statuses, "probe_p50": statistics.median(probes),
            "probe_p99": percentile(probes, 0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    settings = config.from_environment(home=Path("/nonexistent"))  # what airgate will use
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        shutil.copytree(EXAMPLE_DAGS, home / "buckets" / "bench" / "dags")
        port = free_port()
        server = start_airgate(home, port)
        try:
            admin = json.loads((home / "credentials.json").read_text())
            mwaa = mwaa_client(f"http://127.0.0.1:{port}", admin, "us-east-1")
            mwaa.create_environment(Name=ENV, ExecutionRoleArn="arn:aws:iam::000000000000:"
                                    "role/r", SourceBucketArn="arn:aws:s3:::bench",
                                    DagS3Path="dags", NetworkConfiguration={})
            while mwaa.get_environment(Name=ENV)["Environment"]["Status"] != "AVAILABLE":
                time.sleep(0.5)
            time.sleep(5)  # let the first DAG parse settle
            token = SigningKey.load_or_create(EnvironmentLayout.of(home, ENV).airgate_key,
                                              "airgate").mint(subject="user/bench",
                                                              role="ADMIN", environment=ENV,
                                                              ttl=3600)
            api = environment_port(home)
            requests = {"direct": (api, direct_request(api, token, "/version")),
                        "gateway": (port, signed_invoke_bytes(port, admin, ENV, "/version"))}
            warm = warm_latency(requests, args.calls, settings.rest_api_rate)
            sporadic = asyncio.run(sequential_latency(requests, 100, pause=0.05, warmup=5))
            load = capacity(api, direct_request(api, token, "/dags"), args.seconds)
            # Ten times what Airflow itself takes at its best, offered through airgate.
            offered = 10 * max(row["per_second"] for row in load)
            storm = asyncio.run(burst(
                (port, signed_invoke_bytes(port, admin, ENV, "/dags")),
                (api, direct_request(api, token, "/dags")), offered, args.seconds))
        finally:
            server.terminate()
            server.wait(timeout=60)

    figures = {
        "direct_p50": statistics.median(warm["direct"]),
        "direct_p99": percentile(warm["direct"], 0.99),
        "gateway_p50": statistics.median(warm["gateway"]),
        "gateway_p99": percentile(warm["gateway"], 0.99),
        "sporadic_direct_p50": statistics.median(sporadic["direct"]),
        "sporadic_gateway_p50": statistics.median(sporadic["gateway"]),
        "admission": {"concurrency": settings.rest_api_concurrency,
                      "rate": settings.rest_api_rate, "burst": settings.rest_api_burst,
                      "adaptive": settings.rest_api_adaptive},
        "capacity": load, "burst": {**storm, "offered": offered},
    }
    figures["added_p50"] = figures["gateway_p50"] - figures["direct_p50"]
    # The gateway's own cost, on one core against a trivial upstream (Airflow stopped).
    figures["trivial_upstream"] = gateway_throughput.one_run(args.seconds, connections=32,
                                                             calls=500)
    figures["sporadic_added_p50"] = (figures["sporadic_gateway_p50"]
                                     - figures["sporadic_direct_p50"])
    report(figures, args)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


def report(figures: dict[str, Any], args: argparse.Namespace) -> None:
    admission = figures["admission"]
    print(f"machine: {os.cpu_count()} cores; GET /version {args.calls} times each way, "
          f"interleaved; admission {'adaptive' if admission['adaptive'] else 'fixed'}, "
          f"ceilings: {admission['concurrency'] or 'none'} in flight, "
          f"{admission['rate'] or 'no'} calls/s")
    storm = figures["burst"]
    errors = sum(n for status, n in storm["statuses"].items() if status >= 500)
    rows = [
        ("Airflow direct p50 / p99, ms",
         f"{figures['direct_p50']:.2f} / {figures['direct_p99']:.2f}"),
        ("through InvokeRestApi p50 / p99, ms",
         f"{figures['gateway_p50']:.2f} / {figures['gateway_p99']:.2f}"),
        ("added p50, ms (target < 0.5)", f"{figures['added_p50']:.2f}"),
        ("sporadic callers (50 ms apart): direct / through / added p50, ms",
         f"{figures['sporadic_direct_p50']:.2f} / {figures['sporadic_gateway_p50']:.2f} / "
         f"{figures['sporadic_added_p50']:.2f}"),
        (f"burst {storm['offered']:.0f}/s offered (10x Airflow's peak): answers by status",
         json.dumps(storm["statuses"], sort_keys=True)),
        ("5xx during the burst (target 0)", str(errors)),
        ("Airflow p50 / p99 during the burst, ms",
         f"{storm['probe_p50']:.1f} / {storm['probe_p99']:.1f}"),
    ]
    trivial = figures["trivial_upstream"]
    rows += [
        ("trivial upstream, airgate on one core: added p50, ms (target < 0.5)",
         f"{trivial['added_p50']:.3f}"),
        ("trivial upstream: signed requests/s on one core (target >= 2000)",
         f"{trivial['per_second']:.0f}"),
    ]
    print_table(rows)
    print("\nAirflow api-server alone, GET /dags, closed-loop callers:")
    print("| callers | requests/s | p50 ms | p99 ms |")
    print("| --- | --- | --- | --- |")
    for row in figures["capacity"]:
        print(f"| {row['callers']} | {row['per_second']:.0f} | {row['p50']:.1f} | "
              f"{row['p99']:.1f} |")


if __name__ == "__main__":
    main()
