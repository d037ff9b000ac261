"""Code in an environment can't touch airgate or another environment.

One probe, run as a tenant's code runs: from the startup script, from the build of a
requirement (a package whose build backend is the tenant's code) and from a task of a DAG,
in environment `tenant-a`, while `tenant-b` runs beside it. Each time it tries what a review
did as an attacker (read airgate's master key, credentials, signing keys, store, logs and
the other environment's database, key and DAGs; read every other process's environment;
run the airgate CLI; write into airgate's home) and writes down what it got. It gets
nothing, and its own work (the startup script's export, the installed requirement, the task)
still succeeds.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airgate.environments.local import LocalRuntime
from airgate.server import local_runtime
from tests.e2e.test_runtime import create_args, wait_for, wait_for_status
from tests.support import RunningAirgate, running_airgate

pytestmark = [pytest.mark.e2e, pytest.mark.airflow]

BUCKET = "arn:aws:s3:::tenants"
CANARY = "airgate-canary-7c1f0a"  # in airgate's own process environment only

PROBE = r'''
"""What a tenant's code can reach. Written by airgate's isolation test."""
import json, os, subprocess, sys


def attempt(action):
    try:
        return {"ok": True, "result": action()}
    except Exception as error:
        return {"ok": False, "error": type(error).__name__}


def main(stage):
    targets = json.loads(os.environ.get("PROBE_TARGETS") or open(
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "targets.json")).read())
    report = {"stage": stage, "uid": os.getuid(), "files": {}, "listings": {},
              "writes": {}, "environ_hits": [], "own_environ": [], "foreign_processes": []}
    for path in targets["read"]:
        report["files"][path] = attempt(lambda: len(open(path, "rb").read()))
    for path in targets["list"]:
        report["listings"][path] = attempt(lambda: sorted(os.listdir(path)))
    for path in targets["write"]:
        def write():
            with open(path, "w") as sink:
                sink.write("pwned")
            return path
        report["writes"][path] = attempt(write)
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            environ = open(f"/proc/{pid}/environ", "rb").read()
            command = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        for marker in targets["markers"]:
            if marker.encode() in environ or marker.encode() in command:
                report["environ_hits"].append([pid, marker])
        program = [os.path.basename(arg) for arg in command.split(b"\0")[:3]]
        if b"pytest" in program or b"airgate" in program:
            report["foreign_processes"].append(pid)
    report["own_environ"] = sorted(os.environ)
    for command in (["airgate", "iam", "create-access-key", "--user-name", "admin"],
                    ["airgate", "--help"]):
        for home in (None, targets["airgate_home"]):
            env = dict(os.environ, **({"AIRGATE_HOME": home} if home else {}))
            done = attempt(lambda: subprocess.run(command, env=env, capture_output=True,
                                                  timeout=60).returncode)
            report.setdefault("cli", []).append({"command": command[1], "home": home,
                                                 **done})
    with open(os.path.join(os.environ["AIRFLOW_HOME"], f"probe-{stage}.json"), "w") as out:
        json.dump(report, out)
    return report
'''

BACKEND = '''
"""A build backend that is the tenant's code: it probes, then builds a wheel."""
import base64, hashlib, os, sys, zipfile

NAME, VERSION = "airgate_probe_pkg", "1.0"


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    sys.path.insert(0, os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"])
    import isolation_probe
    isolation_probe.main("requirements")
    dist = f"{NAME}-{VERSION}.dist-info"
    files = {
        f"{NAME}/__init__.py": b"INSTALLED = 'yes'\\n",
        f"{dist}/METADATA":
            f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: probe\\nRoot-Is-Purelib: true\\n"
                         b"Tag: py3-none-any\\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\\n".join(record) + "\\n").encode()
    wheel = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel
'''

PYPROJECT = '''
[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]

[project]
name = "airgate-probe-pkg"
version = "1.0"
'''

DAG = '''
import pendulum
from airflow.sdk import DAG, task

with DAG(dag_id="isolation_probe", schedule=None, catchup=False,
         start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    @task
    def probe():
        import os
        import airgate_probe_pkg  # the requirement the tenant's backend built
        import isolation_probe  # from plugins.zip
        assert os.environ["FROM_STARTUP"] == "exported"
        isolation_probe.main("task")
        return airgate_probe_pkg.INSTALLED

    probe()
'''

STARTUP = '''#!/bin/bash
export FROM_STARTUP=exported
cd "$AIRFLOW__CORE__PLUGINS_FOLDER"
python -c 'import isolation_probe; isolation_probe.main("startup")'
cd - >/dev/null
'''

REQUIREMENTS = "airgate-probe-pkg @ file://${AIRFLOW__CORE__PLUGINS_FOLDER}/probe_pkg\n"


def plugins_zip(targets: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("isolation_probe.py", PROBE)
        archive.writestr("targets.json", json.dumps(targets))
        archive.writestr("probe_pkg/backend.py", BACKEND)
        archive.writestr("probe_pkg/pyproject.toml", PYPROJECT)
    return buffer.getvalue()


def secrets_of(home: Path) -> list[Path]:
    """What a tenant must never read: airgate's own files, and the other environment's."""
    other = home / "environments" / "tenant-b"
    return [home / "master.key", home / "credentials.json", home / "airgate.db",
            home / "keys" / "web-tokens.key", home / "keys" / "environments" / "tenant-a.pem",
            home / "keys" / "environments" / "tenant-b.pem", home / "logs" / "airgate.log",
            home / "installation-id", other / "airflow" / "airflow.db",
            other / "airflow" / "airflow.cfg", other / "keys" / "airflow.pem",
            other / "keys" / "fernet.key", home / "buckets" / "tenants" / "b" / "dags" /
            "secret_dag.py", home / "environments" / "tenant-a" / "keys" / "fernet.key",
            Path(f"/proc/{os.getpid()}/environ"), Path("/root/.bash_history")]


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningAirgate, Path]]:
    home = tmp_path_factory.mktemp("isolation") / "home"
    bucket = home / "buckets" / "tenants"
    (bucket / "a" / "dags").mkdir(parents=True)
    (bucket / "b" / "dags").mkdir(parents=True)
    (bucket / "a" / "dags" / "probe.py").write_text(DAG)
    (bucket / "b" / "dags" / "secret_dag.py").write_text("# tenant b's secret\n")
    targets = {
        "read": [str(path) for path in secrets_of(home)],
        "list": [str(home), str(home / "environments"), str(home / "keys"),
                 str(home / "buckets"), str(home / "environments" / "tenant-b")],
        "write": [str(home / "pwned"), str(home / "environments" / "tenant-b" / "pwned"),
                  str(home / "environments" / "tenant-a" / "pwned"),
                  str(bucket / "a" / "dags" / "pwned.py")],
        "markers": [CANARY],
        "airgate_home": str(home),
    }
    (bucket / "a" / "plugins.zip").write_bytes(plugins_zip(targets))
    (bucket / "a" / "startup.sh").write_text(STARTUP)
    (bucket / "a" / "requirements.txt").write_text(REQUIREMENTS)
    os.environ["AIRGATE_TEST_CANARY"] = CANARY
    try:
        with running_airgate(home, runtime_factory=local_runtime) as server:
            targets["markers"].append(server.admin["SecretAccessKey"])
            (bucket / "a" / "plugins.zip").write_bytes(plugins_zip(targets))
            mwaa = server.client()
            mwaa.create_environment(**create_args(
                "tenant-b", SourceBucketArn=BUCKET, DagS3Path="b/dags"))
            mwaa.create_environment(**create_args(
                "tenant-a", SourceBucketArn=BUCKET, DagS3Path="a/dags",
                PluginsS3Path="a/plugins.zip", RequirementsS3Path="a/requirements.txt",
                StartupScriptS3Path="a/startup.sh"))
            wait_for_status(mwaa, "tenant-b", "AVAILABLE")
            wait_for_status(mwaa, "tenant-a", "AVAILABLE", timeout=400)
            yield server, home
    finally:
        del os.environ["AIRGATE_TEST_CANARY"]


def report(home: Path, stage: str) -> dict[str, Any]:
    path = home / "environments" / "tenant-a" / "airflow" / f"probe-{stage}.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def run_probe_dag(server: RunningAirgate) -> dict[str, Any]:
    mwaa = server.client()

    def invoke(method: str, path: str, **more: Any) -> Any:
        return mwaa.invoke_rest_api(Name="tenant-a", Method=method, Path=path,
                                    **more)["RestApiResponse"]

    wait_for(lambda: any(d["dag_id"] == "isolation_probe" for d in invoke("GET", "/dags")[
        "dags"]), 120, "the probe DAG to be parsed")
    invoke("PATCH", "/dags/isolation_probe", Body={"is_paused": False})
    run = invoke("POST", "/dags/isolation_probe/dagRuns",
                 Body={"logical_date": None, "dag_run_id": "probe"})
    path = f"/dags/isolation_probe/dagRuns/{run['dag_run_id']}"
    return wait_for(lambda: (lambda r: r if r["state"] in ("success", "failed") else None)(  # type: ignore[no-any-return]
        invoke("GET", path)), 180, "the probe run to finish")


def assert_got_nothing(found: dict[str, Any], home: Path) -> None:
    stage = found["stage"]
    denied = {path: result for path, result in found["files"].items() if result["ok"]}
    assert denied == {}, f"{stage}: read {sorted(denied)}"
    assert all(result["error"] in ("FileNotFoundError", "PermissionError")
               for result in found["files"].values()), found["files"]
    # airgate's home holds only the paths the sandbox mounts to reach the environment's
    # own folder and DAGs: no key, store, log or other environment.
    assert found["listings"][str(home)] == {"ok": True, "result": ["buckets", "environments"]}
    assert found["listings"][str(home / "environments")] == {"ok": True,
                                                              "result": ["tenant-a"]}
    for path in (home / "keys", home / "environments" / "tenant-b"):
        assert found["listings"][str(path)] == {"ok": False, "error": "FileNotFoundError"}
    # Its own folder and its DAGs are read-only to it (the host's files are checked too).
    for path in (home / "environments" / "tenant-a" / "pwned",
                 home / "buckets" / "tenants" / "a" / "dags" / "pwned.py"):
        assert found["writes"][str(path)] == {"ok": False, "error": "OSError"}, stage
    assert found["environ_hits"] == [], f"{stage}: saw airgate's secrets in /proc"
    assert found["foreign_processes"] == [], f"{stage}: saw airgate's process"
    inherited = [name for name in found["own_environ"]
                 if name.startswith(("AIRGATE", "AWS_"))
                 or (name in os.environ and name.startswith("PIP_"))]
    assert inherited == [], f"{stage}: inherited airgate's {inherited}"
    # The airgate CLI does nothing for it (the store is checked by the caller too).
    assert [attempt["ok"] for attempt in found["cli"]] == [True] * 4, found["cli"]
    assert all(attempt["result"] != 0 for attempt in found["cli"]
               if attempt["home"] is not None and attempt["command"] == "iam"), found["cli"]
    if os.geteuid() == 0:
        assert found["uid"] != 0
        assert found["writes"][str(home / "pwned")]["ok"] is False


def test_startup_script_requirements_and_tasks_reach_nothing(
        tenants: tuple[RunningAirgate, Path]) -> None:
    server, home = tenants
    final = run_probe_dag(server)
    assert final["state"] == "success"
    stages = {stage: report(home, stage) for stage in ("startup", "requirements", "task")}
    for found in stages.values():
        assert_got_nothing(found, home)
    runtime = server.airgate.runtime
    assert isinstance(runtime, LocalRuntime)
    assert stages["task"]["uid"] == runtime.sandbox.uid_of("tenant-a") or \
        runtime.sandbox.uid_of("tenant-a") is None
    # Nothing was written where the probe tried, and the store still has one admin key.
    assert not (home / "pwned").exists()
    assert not (home / "environments" / "tenant-b" / "pwned").exists()
    assert not (home / "buckets" / "tenants" / "a" / "dags" / "pwned.py").exists()
    keys = server.airgate.identities.list_access_keys("admin")
    assert [key["AccessKeyId"] for key in keys] == [server.admin["AccessKeyId"]]


def test_each_environment_has_its_own_uid(tenants: tuple[RunningAirgate, Path]) -> None:
    import psutil

    server, home = tenants
    runtime = server.airgate.runtime
    assert isinstance(runtime, LocalRuntime)
    if not runtime.sandbox.isolated:
        pytest.fail(f"environments are not isolated here: {runtime.sandbox.description}")
    uids = {name: runtime.sandbox.uid_of(name) for name in ("tenant-a", "tenant-b")}
    if os.geteuid() != 0:
        assert uids == {"tenant-a": None, "tenant-b": None}
        return
    assert uids["tenant-a"] != uids["tenant-b"]
    for name, uid in uids.items():
        components = [psutil.Process(pid) for pid in runtime.pids(name).values()]
        seen = {}  # every Airflow process under the components: its real uid
        for child in (c for component in components for c in component.children(True)):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                if child.name() not in ("bwrap", "env") and "airflow" in " ".join(
                        child.cmdline()):
                    seen[child.pid] = child.uids().real
        assert len(seen) >= 4
        assert set(seen.values()) == {uid}
        own = home / "environments" / name / "airflow"
        assert own.stat().st_uid == uid and own.stat().st_mode & 0o777 == 0o700
