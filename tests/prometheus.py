"""A real Prometheus server (Debian's package) scraping airgate, for checking that the
dashboard's queries answer from real scrapes: installed on first use when the tests run as
root (as in CI), like the browser tests' Chromium."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

PROMETHEUS = "/usr/bin/prometheus"


def ensure_prometheus() -> None:
    if Path(PROMETHEUS).exists():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError("this test needs Debian's prometheus: apt-get install prometheus")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "prometheus"]):
        subprocess.run(command, env=environment, stdout=subprocess.DEVNULL, check=True)


@contextlib.contextmanager
def prometheus_scraping(endpoint_url: str, folder: Path, port: int) -> Iterator[str]:
    """Prometheus scraping `endpoint_url`/metrics every second until the block ends; its
    own address."""
    ensure_prometheus()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: airgate\n"
        f"    scheme: {urlsplit(endpoint_url).scheme}\n"
        f"    static_configs:\n      - targets: ['{urlsplit(endpoint_url).netloc}']\n")
    with (folder / "prometheus.log").open("w") as log:
        process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/-/ready", timeout=5).status_code == 200:
                    break
            assert process.poll() is None, (folder / "prometheus.log").read_text()
            assert time.monotonic() < deadline, "Prometheus did not become ready"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def query(url: str, expression: str) -> list[dict[str, Any]]:
    """An instant query's result; fails on anything but Prometheus's "success"."""
    answer = httpx.get(f"{url}/api/v1/query", params={"query": expression}, timeout=30).json()
    assert answer["status"] == "success", (expression, answer)
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result
