"""The Airflow versions environments can run, and their runtimes.

- The Airflow 3 installed with airgate needs nothing more (the first environment needs no
  network).
- Every Airflow 2 version botocore's `mwaa` model lists (MWAA's own offer) for which airgate
  has a lock file (`locks/airflow-VERSION.txt`) is installed on first use into its own
  virtualenv, `runtimes/VERSION/venv` under the airgate home, with uv, the Amazon and
  PostgreSQL providers and psycopg2, constrained by that lock so a fresh install reproduces
  the tested set.
- Other Airflow 3 releases named by the operator (AIRGATE_AIRFLOW_VERSIONS) get their
  virtualenv the same way, with pip and only packages uploaded before a date shortly after
  that release (pip's --uploaded-prior-to): Airflow's constraint files live outside the
  package index, and newer releases of its dependencies do break older Airflow.

One runtime serves every environment of its version; installs of one version are one at a
time, also across airgate processes sharing a home (a lock file).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx

from airgate.environments.provision import ProvisionError

INSTALL_TIMEOUT = 900.0
RELEASE_GRACE = datetime.timedelta(days=3)
INDEX_URL = "https://pypi.org/simple"
LOCKS = Path(__file__).with_name("locks")
# Airflow 2's python-daemon and redshift-connector import pkg_resources at run time, which
# setuptools 81 and later no longer have; locks that don't pin setuptools get this one.
SETUPTOOLS_FOR_AIRFLOW_2 = "setuptools==75.3.0"
# aiobotocore for the provider's deferrable MWAA operators and sensors, as MWAA's images;
# statsd, with which environments send their metrics to airgate (airgate.metrics.statsd).
AIRFLOW_2_PACKAGES = ("apache-airflow-providers-amazon[aiobotocore]",
                      "apache-airflow-providers-postgres", "psycopg2-binary", "statsd")
AIRFLOW_3_PACKAGES = ("apache-airflow-providers-amazon[aiobotocore]", "psycopg[binary]",
                      "psycopg2-binary", "statsd", "apache-airflow-providers-celery", "redis")
# Celery environments' workers (environments/executors.py), where the Airflow 2 lock pins a
# Celery provider (2.7.2's and 2.8.1's don't: those versions can't run Celery here).
CELERY_PACKAGES = ("apache-airflow-providers-celery", "redis")
_log = logging.getLogger("airgate.runtimes")


def mwaa_versions() -> tuple[str, ...]:
    """The Airflow versions botocore's `mwaa` model says MWAA offers ("Valid values: ...")."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("mwaa")
    documentation = model.operation_model("CreateEnvironment").input_shape.members[
        "AirflowVersion"].documentation
    return tuple(dict.fromkeys(re.findall(r"<code>(\d+\.\d+\.\d+)</code>", documentation)))


def airflow_2_versions() -> tuple[str, ...]:
    """MWAA's Airflow 2 versions that airgate has a lock for, newest first."""
    offered = [v for v in mwaa_versions() if v.startswith("2.") and lock_of(v).is_file()]
    return tuple(sorted(offered, key=lambda v: tuple(map(int, v.split("."))), reverse=True))


def runs_celery(version: str) -> bool:
    """Whether version's runtime has the Celery provider (every Airflow 3 one does)."""
    return not version.startswith("2.") or re.search(
        r"^apache-airflow-providers-celery==", lock_of(version).read_text(), re.M) is not None


def airflow_2_packages(version: str) -> tuple[str, ...]:
    return AIRFLOW_2_PACKAGES + (CELERY_PACKAGES if runs_celery(version) else ())


def lock_of(version: str) -> Path:
    return LOCKS / f"airflow-{version}.txt"


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


def _base_python() -> str:
    """The Python airgate runs on, outside any virtualenv: what runtimes are made from."""
    return str(getattr(sys, "_base_executable", None) or sys.executable)


class AirflowRuntimes:
    def __init__(self, home: Path, default_version: str, extra_versions: tuple[str, ...] = (),
                 base_interpreter: Path | None = None,
                 airflow_2: tuple[str, ...] | None = None) -> None:
        self._home = home
        self._default = default_version
        self._extra = tuple(v for v in extra_versions if v != default_version)
        self._airflow_2 = airflow_2_versions() if airflow_2 is None else airflow_2
        self._base = base_interpreter or Path(sys.executable)
        self._locks: dict[str, threading.Lock] = {
            v: threading.Lock() for v in (*self._extra, *self._airflow_2)}

    @property
    def versions(self) -> tuple[str, ...]:
        """Supported versions, the default first."""
        return (self._default, *self._extra, *self._airflow_2)

    def folder(self, version: str) -> Path:
        return self._home / "runtimes" / version

    def interpreter(self, version: str, progress: Path | None = None) -> Path:
        """The Python that runs `version`, installing it on first use (what the install
        does goes to its log, and to `progress`, the environment's setup log)."""
        if version == self._default:
            return self._base
        if version not in self._locks:
            raise ProvisionError("UNSUPPORTED_VERSION", f"Airflow {version} is not supported")
        venv = self.folder(version) / "venv"
        ready = self.folder(version) / "ready"
        with self._locks[version], self._installing(version):
            # `ready` holds what was installed: a runtime made by another recipe (an older
            # airgate's) is installed again.
            recipe = _recipe(version)
            if not ready.exists() or ready.read_text() != recipe:
                _log.info("installing an Airflow runtime", extra={"fields": {
                    "version": version}})
                self._install(version, venv, progress)
                ready.write_text(recipe)
        return venv / "bin" / "python"

    @contextlib.contextmanager
    def _installing(self, version: str) -> Iterator[None]:
        """One install of a version at a time, also across airgate processes."""
        self.folder(version).mkdir(parents=True, exist_ok=True)
        with open(self.folder(version) / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _steps(self, version: str, venv: Path) -> list[list[str]]:
        return (self._airflow_2_steps(version, venv) if version.startswith("2.")
                else self._airflow_3_steps(version, venv))

    def _install(self, version: str, venv: Path, progress: Path | None) -> None:
        log = self.folder(version) / "install.log"
        for step in self._steps(version, venv):
            _run_step(version, step, log, progress)

    def _airflow_2_steps(self, version: str, venv: Path) -> list[list[str]]:
        from uv import find_uv_bin

        lock = lock_of(version)
        pins = [] if re.search(r"^setuptools==", lock.read_text(), re.M) else [
            SETUPTOOLS_FOR_AIRFLOW_2]
        uv = find_uv_bin()
        cache = ["--cache-dir", str(self._home / "runtimes" / ".uv-cache")]
        return [
            [uv, "venv", "--quiet", "--clear", *cache, "--python", _base_python(), str(venv)],
            # Compiled now: the runtime is read-only inside environments' sandboxes.
            [uv, "pip", "install", *cache, "--python", str(venv / "bin" / "python"),
             "--compile-bytecode", "--constraint", str(lock), f"apache-airflow=={version}",
             *airflow_2_packages(version), *pins],
        ]

    def _airflow_3_steps(self, version: str, venv: Path) -> list[list[str]]:
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install",
               "--disable-pip-version-check", "--no-input"]
        released = release_time(version)
        cutoff = [] if released is None else [
            "--uploaded-prior-to", (released + RELEASE_GRACE).strftime("%Y-%m-%dT%H:%M:%SZ")]
        return [
            [str(self._base), "-m", "venv", "--clear", str(venv)],
            [*pip, "--upgrade", "pip>=26"],  # --uploaded-prior-to needs a recent pip
            [*pip, *cutoff, f"apache-airflow=={version}", *AIRFLOW_3_PACKAGES],
        ]


def _recipe(version: str) -> str:
    """What a runtime of `version` is made of (its packages, and its lock's contents)."""
    if version.startswith("2."):
        lock = hashlib.sha256(lock_of(version).read_bytes()).hexdigest()
        packages = " ".join(airflow_2_packages(version))
        return f"uv {SETUPTOOLS_FOR_AIRFLOW_2} {packages} lock:{lock}"
    return f"pip {' '.join(AIRFLOW_3_PACKAGES)}"


def _run_step(version: str, step: list[str], log: Path, progress: Path | None) -> None:
    """One install command, its output kept in the runtime's log and the environment's."""
    sinks = [log, *([progress] if progress is not None else [])]
    for sink in sinks:
        sink.parent.mkdir(parents=True, exist_ok=True)
        with open(sink, "a") as file:
            file.write(f"installing Airflow {version}: $ {' '.join(step)}\n")
    try:
        result = subprocess.run(step, capture_output=True, timeout=INSTALL_TIMEOUT,
                                stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise ProvisionError("RUNTIME_INSTALL_FAILED", f"installing Airflow {version} took "
                             f"more than {INSTALL_TIMEOUT:.0f} s") from None
    output = (result.stdout + result.stderr).decode(errors="replace")
    for sink in sinks:
        with open(sink, "a") as file:
            file.write(output)
    if result.returncode != 0:
        tail = " | ".join(line.strip() for line in output.splitlines()[-6:] if line.strip())
        raise ProvisionError("RUNTIME_INSTALL_FAILED",
                             f"installing Airflow {version} failed: {tail}"[-900:])
