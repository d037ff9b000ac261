"""Whether this machine can use an address another gateway recorded for an environment.

A runner records where its environment's API and front answer (`ApiUrl`, `WebserverUrl`)
and which machine it is on. A loopback address means "on the runner's machine": usable by
another gateway or `airgate worker` on that same machine, and by nothing elsewhere (there
it would reach whatever listens on that machine's own loopback, perhaps another tenant's
Airflow). The runner's `--advertise-address` makes its addresses usable everywhere.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["MACHINE", "reachable", "this_machine"]

MACHINE = "Machine"  # in an environment's runtime record: the runner's machine


@functools.cache
def this_machine() -> str:
    """This machine's identity: systemd's machine id where there is one, else its name."""
    for path in (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id")):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text:
            return text
    return socket.gethostname()


def reachable(runtime: Mapping[str, Any], field: str) -> str | None:
    """The URL the runner recorded under `field`, if this machine can use it."""
    url = runtime.get(field)
    if not url:
        return None
    if _is_loopback(urlsplit(str(url)).hostname or "") and \
            runtime.get(MACHINE) != this_machine():
        return None
    return str(url)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
