"""A CLI command sent to the front of the gateway that runs the environment, by the front of
a gateway that doesn't (every gateway on a store serves every environment's front, but
only the runner has the environment's Airflow installed to run `airflow` with).

The command goes as MWAA's CLI endpoint takes it, with a CLI token minted here for the same
caller (the gateways share the tokens' secret), so the runner checks and logs it as its own.
"""

from __future__ import annotations

import base64
import shlex
import subprocess

import httpx

from airgate.web.front import CLI_PATH, CliNotRun


def forward_cli(front_url: str, token: str, argv: list[str], timeout: float,
                verify: str | bool = True) -> subprocess.CompletedProcess[bytes]:
    """The command's output as the runner's front gives it (no exit code: MWAA's CLI
    endpoint answers only stdout and stderr)."""
    try:
        answer = httpx.post(f"{front_url.rstrip('/')}{CLI_PATH}", content=shlex.join(argv),
                            headers={"Authorization": f"Bearer {token}",
                                     "Content-Type": "text/plain"},
                            timeout=timeout + 10, verify=verify)
    except httpx.HTTPError:
        raise CliNotRun(503, "The gateway that runs the environment can't be reached; "
                             "retry shortly") from None
    try:
        document = answer.json()
    except ValueError:
        document = {}
    if answer.status_code != 200:
        raise CliNotRun(answer.status_code, str(document.get("error")
                                                or f"HTTP {answer.status_code}"))
    try:
        return subprocess.CompletedProcess(argv, 0, base64.b64decode(document["stdout"]),
                                           base64.b64decode(document["stderr"]))
    except (KeyError, TypeError, ValueError):
        raise CliNotRun(502, "The gateway that runs the environment answered something "
                             "other than a CLI result") from None
