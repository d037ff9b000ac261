"""The Airflow versions environments can run.

The version installed with airgate needs nothing more (so the first environment needs no
network). Any other supported version gets its own virtualenv under the airgate home,
`runtimes/VERSION/venv`, created the first time an environment asks for it and reused after.
Only Airflow 3 is supported: InvokeRestApi speaks its /api/v2 and its JWT authentication.

Airflow pins its dependencies through constraint files published outside the package index,
which this machine can't reach; newer releases of its dependencies do break older Airflow
(pydantic, for one). So the install takes only packages uploaded before a date shortly after
that Airflow release (pip's --uploaded-prior-to), which reproduces the set it was tested with.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from airgate.environments.provision import ProvisionError

INSTALL_TIMEOUT = 900.0
RELEASE_GRACE = datetime.timedelta(days=3)
INDEX_URL = "https://pypi.org/simple"


def release_time(version: str) -> datetime.datetime | None:
    """When apache-airflow==version was uploaded, from the index's JSON API (PEP 691)."""
    index = os.environ.get("PIP_INDEX_URL", INDEX_URL).rstrip("/")
    try:
        answer = httpx.get(f"{index}/apache-airflow/", timeout=30,
                           headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        files = answer.json()["files"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    times = [f.get("upload-time") for f in files
             if f.get("filename", "").startswith((f"apache_airflow-{version}-",
                                                  f"apache_airflow-{version}.tar"))]
    stamps = [datetime.datetime.fromisoformat(t.replace("Z", "+00:00")) for t in times if t]
    return min(stamps) if stamps else None


def runtime_folders(interpreter: Path) -> tuple[Path, ...]:
    """What an environment must be able to read to run `interpreter`: its virtualenv and
    the Python installation the virtualenv was made from."""
    venv = interpreter.parent.parent
    config = venv / "pyvenv.cfg"
    if not config.is_file():
        return (interpreter.resolve().parent.parent,)
    home = next((line.split("=", 1)[1].strip() for line in config.read_text().splitlines()
                 if line.split("=", 1)[0].strip() == "home"), None)
    base = Path(home).resolve().parent if home else interpreter.resolve().parent.parent
    return (venv, base)


class AirflowRuntimes:
    def __init__(self, home: Path, default_version: str, extra_versions: tuple[str, ...] = (),
                 base_interpreter: Path | None = None) -> None:
        self._home = home
        self._default = default_version
        self._extra = tuple(v for v in extra_versions if v != default_version)
        self._base = base_interpreter or Path(sys.executable)
        self._locks: dict[str, threading.Lock] = {v: threading.Lock() for v in self._extra}

    @property
    def versions(self) -> tuple[str, ...]:
        """Supported versions, the default first."""
        return (self._default, *self._extra)

    def folder(self, version: str) -> Path:
        return self._home / "runtimes" / version

    def interpreter(self, version: str) -> Path:
        """The Python that runs `version`, installing it on first use."""
        if version == self._default:
            return self._base
        if version not in self._locks:
            raise ProvisionError("UNSUPPORTED_VERSION", f"Airflow {version} is not supported")
        venv = self.folder(version) / "venv"
        python = venv / "bin" / "python"
        ready = self.folder(version) / "ready"
        with self._locks[version]:
            if not ready.exists():
                self._install(version, venv)
                ready.touch()
        return python

    def _install(self, version: str, venv: Path) -> None:
        log = self.folder(version) / "install.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
               "--no-input"]
        released = release_time(version)
        cutoff = [] if released is None else [
            "--uploaded-prior-to", (released + RELEASE_GRACE).strftime("%Y-%m-%dT%H:%M:%SZ")]
        steps = [
            [str(self._base), "-m", "venv", "--clear", str(venv)],
            [*pip, "--upgrade", "pip>=26"],  # --uploaded-prior-to needs a recent pip
            [*pip, *cutoff, f"apache-airflow=={version}", "psycopg[binary]"],
        ]
        with open(log, "ab") as sink:
            for step in steps:
                try:
                    result = subprocess.run(step, stdout=sink, stderr=subprocess.STDOUT,
                                            timeout=INSTALL_TIMEOUT, stdin=subprocess.DEVNULL)
                except subprocess.TimeoutExpired:
                    raise ProvisionError("RUNTIME_INSTALL_FAILED", f"installing Airflow {version}"
                                         " took too long") from None
                if result.returncode != 0:
                    raise ProvisionError("RUNTIME_INSTALL_FAILED", f"installing Airflow "
                                         f"{version} failed; see {log}")
