"""What the benchmarks share: percentiles, CPU pinning and pre-signed requests."""

from __future__ import annotations

import json
import os

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


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
