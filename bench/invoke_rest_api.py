"""InvokeRestApi: latency through airgate against Airflow called directly, gateway throughput
on one core against a trivial upstream, and a burst at ten times the admitted rate.

    .venv/bin/python bench/invoke_rest_api.py [--calls 400] [--seconds 5]

Everything is measured in one run. Requests to airgate are signed once and replayed (SigV4
allows that within its 5 minutes), so client-side signing cost stays out of the figures and
both sides are plain HTTP from the same client.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.test_authentication import sign
from tests.support import free_port, mwaa_client

from airgate.airflow.tokens import SigningKey
from airgate.environments.layout import EnvironmentLayout

ENV = "bench"
RATE = 50.0  # admitted calls per second for this run; the burst offers ten times as many
PACE = 1.5 / RATE  # seconds between sequential calls: the latency runs stay under the rate


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def start_airgate(home: Path, port: int, **env: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "airgate.cli", "up", "--home", str(home), "--port", str(port),
         "--no-default-environment"],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (home / "server.json").exists():
            try:
                httpx.get(f"http://127.0.0.1:{port}/")
                return process
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    raise RuntimeError("airgate did not start")


def signed_invoke(endpoint: str, credentials: dict[str, str], path: str) -> tuple[str, dict[
        str, str], bytes]:
    body = json.dumps({"Path": path, "Method": "GET"}).encode()
    request = sign("POST", f"{endpoint}/restapi/{ENV}", credentials, body=body,
                   headers={"Content-Type": "application/json"})
    prepared = request.prepare()
    return prepared.url, dict(prepared.headers), body


def timed(client: httpx.Client, method: str, url: str, n: int, **kwargs: Any) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.request(method, url, **kwargs)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text[:300]
        time.sleep(PACE)
    return samples


def latency(endpoint: str, admin: dict[str, str], home: Path, calls: int) -> dict[str, float]:
    """The same Airflow call, directly with a pre-minted token and through InvokeRestApi."""
    layout = EnvironmentLayout.of(home, ENV)
    token = SigningKey.load_or_create(layout.airgate_key, "airgate").mint(
        subject="user/bench", role="ADMIN", environment=ENV, ttl=3600)
    port = _env_api_port(home)
    direct_url = f"http://127.0.0.1:{port}/api/v2/version"
    url, headers, body = signed_invoke(endpoint, admin, "/version")
    with httpx.Client() as client:
        for _ in range(20):  # warm both paths (connections, caches)
            client.get(direct_url, headers={"Authorization": f"Bearer {token}"})
            client.post(url, headers=headers, content=body)
        direct, gateway = [], []
        for _ in range(calls // 20):  # interleaved, so noise hits both alike
            direct += timed(client, "GET", direct_url, 20,
                            headers={"Authorization": f"Bearer {token}"})
            gateway += timed(client, "POST", url, 20, headers=headers, content=body)
    return {"direct_p50": statistics.median(direct), "direct_p99": percentile(direct, 0.99),
            "gateway_p50": statistics.median(gateway),
            "gateway_p99": percentile(gateway, 0.99)}


def _env_api_port(home: Path) -> int:
    import sqlite3

    with sqlite3.connect(home / "airgate.db") as connection:
        (runtime,) = connection.execute("SELECT runtime FROM environments WHERE name = ?",
                                        (ENV,)).fetchone()
    return int(json.loads(runtime)["Ports"]["api"])


def burst(endpoint: str, admin: dict[str, str], home: Path, seconds: float,
          rate: float) -> dict[str, Any]:
    """Ten times the admitted rate, from many callers at once; Airflow probed directly."""
    url, headers, body = signed_invoke(endpoint, admin, "/dags")
    token = SigningKey.load_or_create(EnvironmentLayout.of(home, ENV).airgate_key,
                                      "airgate").mint(subject="user/probe", role="VIEWER",
                                                      environment=ENV, ttl=3600)
    probe_url = f"http://127.0.0.1:{_env_api_port(home)}/api/v2/dags"
    probes: list[float] = []
    results: Any = multiprocessing.Queue()
    workers = 16
    # Each worker paces itself so that together they offer 10x the admitted rate.
    processes = [multiprocessing.Process(target=_paced, args=(url, headers, body, seconds,
                                                              10 * rate / workers, results))
                 for _ in range(workers)]
    for process in processes:
        process.start()
    with httpx.Client(timeout=30) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            client.get(probe_url, headers={"Authorization": f"Bearer {token}"})
            probes.append((time.perf_counter() - started) * 1000)
            time.sleep(0.05)
    total: dict[int, int] = {}
    for _ in processes:
        for status, count in results.get().items():
            total[status] = total.get(status, 0) + count
    for process in processes:
        process.join()
    return {"offered_per_s": 10 * rate, "statuses": total,
            "airflow_probe_p50": statistics.median(probes),
            "airflow_probe_p99": percentile(probes, 0.99)}


def _paced(url: str, headers: dict[str, str], body: bytes, seconds: float, per_second: float,
           results: Any) -> None:
    counts: dict[int, int] = {}
    interval = 1.0 / per_second
    started = time.monotonic()
    sent = 0
    with httpx.Client(timeout=30) as client:
        while time.monotonic() - started < seconds:
            due = started + sent * interval
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            status = client.post(url, headers=headers, content=body).status_code
            counts[status] = counts.get(status, 0) + 1
            sent += 1
    results.put(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        (home / "buckets" / "bench" / "dags").mkdir(parents=True)
        port = free_port()
        server = start_airgate(home, port, AIRGATE_REST_API_RATE=str(RATE),
                               AIRGATE_REST_API_BURST=str(int(RATE)))
        endpoint = f"http://127.0.0.1:{port}"
        try:
            admin = json.loads((home / "credentials.json").read_text())
            mwaa = mwaa_client(endpoint, admin, "us-east-1")
            mwaa.create_environment(Name=ENV, ExecutionRoleArn="arn:aws:iam::000000000000:"
                                    "role/r", SourceBucketArn="arn:aws:s3:::bench",
                                    DagS3Path="dags", NetworkConfiguration={})
            while mwaa.get_environment(Name=ENV)["Environment"]["Status"] != "AVAILABLE":
                time.sleep(0.5)
            figures = latency(endpoint, admin, home, args.calls)
            storm = burst(endpoint, admin, home, args.seconds, rate=RATE)
        finally:
            server.terminate()
            server.wait(timeout=60)

    added = figures["gateway_p50"] - figures["direct_p50"]
    print(f"machine: {os.cpu_count()} cores; {args.calls} calls each way, interleaved")
    rows = [
        ("Airflow direct p50 / p99, ms",
         f"{figures['direct_p50']:.2f} / {figures['direct_p99']:.2f}"),
        ("through InvokeRestApi p50 / p99, ms",
         f"{figures['gateway_p50']:.2f} / {figures['gateway_p99']:.2f}"),
        ("added p50, ms (target < 0.5)", f"{added:.2f}"),
        ("ratio p50 gateway / direct", f"{figures['gateway_p50'] / figures['direct_p50']:.2f}"),
        (f"burst {storm['offered_per_s']:.0f}/s offered: statuses", str(storm["statuses"])),
        ("Airflow p50 / p99 during the burst, ms",
         f"{storm['airflow_probe_p50']:.1f} / {storm['airflow_probe_p99']:.1f}"),
    ]
    print(f"| {'measure':<46} | {'value':<40} |")
    print(f"| {'-' * 46} | {'-' * 40} |")
    for name, value in rows:
        print(f"| {name:<46} | {value:<40} |")


if __name__ == "__main__":
    main()
