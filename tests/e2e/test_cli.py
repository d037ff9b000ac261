"""The README's path, as a user walks it: `airgate up` in its own process, `airgate shellenv`,
then unmodified boto3 and `aws mwaa` calls; identities managed with `airgate iam`."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.processes import EnvironmentProcesses
from tests.e2e.test_runtime import wait_for
from tests.leak_scan import remember_secret
from tests.support import free_port, mwaa_client

pytestmark = pytest.mark.e2e

AIRGATE = [sys.executable, "-m", "airgate.cli"]
BOTO3_SCRIPT = """
import boto3
mwaa = boto3.client("mwaa")
mwaa.create_environment(Name="from-script", ExecutionRoleArn="arn:aws:iam::000000000000:role/r",
    SourceBucketArn="arn:aws:s3:::bucket-b", DagS3Path="dags", NetworkConfiguration={})
print(mwaa.get_environment(Name="from-script")["Environment"]["Status"])
"""


def airgate(home: Path, *args: str, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*AIRGATE, *args], env={**os.environ, "AIRGATE_HOME": str(home),
                                                  **(env or {})},
                          capture_output=True, text=True, timeout=60, check=check)
    for secret in re.findall(r'"(?:SecretAccessKey|SessionToken)": "([^"]+)"', done.stdout):
        remember_secret(secret)  # printed by the subprocess: the secret scan looks for it
    return done


def shellenv(home: Path) -> dict[str, str]:
    """The variables `eval "$(airgate shellenv)"` would set."""
    exported: dict[str, str] = {}
    for line in airgate(home, "shellenv").stdout.splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export "):].partition("=")
            exported[name] = shlex.split(value)[0]
    return exported


def output_lines(path: Path, until: Any, deadline_seconds: float,
                 process: subprocess.Popen[str]) -> list[str]:
    """The lines airgate has written to `path` once `until(lines)` holds; fails when airgate
    ends first or the deadline passes. Its output goes to files, never to a pipe nobody
    reads (a full pipe would block airgate)."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if until(lines):
            return lines
        assert process.poll() is None, f"airgate ended: {lines}"
        assert time.monotonic() < deadline, f"airgate's output, still waiting: {lines}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str,
                                                                      subprocess.Popen[str]]]:
    folder = tmp_path_factory.mktemp("cli")
    home, port = folder / "home", free_port()
    with (folder / "stdout.log").open("w") as stdout, (folder / "stderr.log").open("w") as stderr:
        process = subprocess.Popen([*AIRGATE, "up", "--home", str(home), "--port", str(port),
                                    "--no-default-environment"],
                                   stdout=stdout, stderr=stderr, text=True)
    banner = output_lines(folder / "stdout.log", lambda lines: len(lines) >= 3, 20, process)
    assert f"http://127.0.0.1:{port}" in banner[0], banner
    assert str(home) in banner[1]
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/")
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "airgate did not start"
            time.sleep(0.05)
    yield home, f"http://127.0.0.1:{port}", process
    process.send_signal(signal.SIGINT)
    process.wait(timeout=20)


def test_shellenv_and_files(served: tuple[Path, str, Any]) -> None:
    home, endpoint, _ = served
    variables = shellenv(home)
    assert variables["AWS_ENDPOINT_URL_MWAA"] == endpoint
    assert variables["AWS_ENDPOINT_URL_STS"] == endpoint
    assert variables["AWS_ENDPOINT_URL_IAM"] == endpoint
    assert variables["AWS_DISABLE_HOST_PREFIX_INJECTION"] == "true"
    assert variables["AWS_DEFAULT_REGION"] == "us-east-1"
    assert variables["AWS_ACCESS_KEY_ID"].startswith("AKIA")
    assert len(variables["AWS_SECRET_ACCESS_KEY"]) == 40
    for secret_file in ("credentials.json", "master.key"):
        mode = stat.S_IMODE((home / secret_file).stat().st_mode)
        assert mode == 0o600, (secret_file, oct(mode))


@pytest.mark.airflow  # the script's environment starts creating before it is deleted
def test_boto3_script_and_aws_cli(served: tuple[Path, str, Any], tmp_path: Path) -> None:
    home, _, _ = served
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(shellenv(home), AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    script = subprocess.run([sys.executable, "-c", BOTO3_SCRIPT], env=env, capture_output=True,
                            text=True, timeout=60)
    assert script.returncode == 0, script.stderr
    assert script.stdout.strip() == "CREATING"

    listed = subprocess.run([sys.executable, "-m", "awscli", "mwaa", "list-environments"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["Environments"] == ["from-script"]

    deleted = subprocess.run([sys.executable, "-m", "awscli", "mwaa", "delete-environment",
                              "--name", "from-script"], env=env, capture_output=True,
                             text=True, timeout=60)
    assert deleted.returncode == 0, deleted.stderr
    # The deletion ends the environment's start where it is (its metadata template may still
    # be migrating): wait until it is gone, so that nothing of it starts during other tests.
    deadline = time.monotonic() + 240
    while (home / "environments" / "from-script").exists():
        assert time.monotonic() < deadline, "the deleted environment's folder stayed"
        time.sleep(0.5)

    # STS and IAM answer at the same endpoint, found through the same variables.
    who = subprocess.run([sys.executable, "-m", "awscli", "sts", "get-caller-identity"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout)["Arn"] == "arn:aws:iam::000000000000:user/admin"
    users = subprocess.run([sys.executable, "-m", "awscli", "iam", "list-users"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert users.returncode == 0, users.stderr
    assert "admin" in [u["UserName"] for u in json.loads(users.stdout)["Users"]]


START_STEPS = ["runtime", "metadata", "prepare", "plugins_requirements_startup_script",
               "migrate", "healthy", "warm_up"]


@pytest.mark.airflow
def test_status_follows_a_create_step_by_step_and_shows_the_environment(
        served: tuple[Path, str, Any], tmp_path: Path) -> None:
    home, endpoint, _ = served
    variables = shellenv(home)
    mwaa = mwaa_client(endpoint, {"AccessKeyId": variables["AWS_ACCESS_KEY_ID"],
                                  "SecretAccessKey": variables["AWS_SECRET_ACCESS_KEY"]},
                       "us-east-1")
    mwaa.create_environment(Name="watched", ExecutionRoleArn="arn:aws:iam::000000000000:role/r",
                            SourceBucketArn="arn:aws:s3:::bucket-w", DagS3Path="dags",
                            NetworkConfiguration={}, MaxWorkers=3)
    try:
        followed = subprocess.run(
            [*AIRGATE, "status", "--watch", "watched", "--interval", "0.3"],
            env={**os.environ, "AIRGATE_HOME": str(home)}, capture_output=True, text=True,
            timeout=280)
        assert followed.returncode == 0, followed.stderr
        said = [line.split(" ", 1)[1] for line in followed.stdout.splitlines()]
        assert said[0] == "watched: CREATING"
        assert [line.split(": ", 1)[1].split(" done")[0] for line in said
                if " done (" in line] == START_STEPS
        assert said[-2:] == ["watched: AVAILABLE", said[-1]]
        assert re.fullmatch(r"watched: last update SUCCESS \S+ \S+", said[-1]), said

        table = airgate(home, "status").stdout.splitlines()
        assert table[0].split() == ["NAME", "STATUS", "AIRFLOW", "EXECUTOR", "COMPONENTS",
                                    "WEB", "UI", "LAST", "UPDATE"]
        row = table[1].split()
        web = mwaa.get_environment(Name="watched")["Environment"]["WebserverUrl"]
        assert row[:8] == ["watched", "AVAILABLE", "3.3.2", "LocalExecutor", "x3", "4/4", "up",
                           web], table
        assert row[8] == "SUCCESS"

        described = json.loads(airgate(home, "status", "--json", "watched").stdout)
        view = described["Environments"][0]
        assert list(view["StartSteps"]) == START_STEPS
        assert view["Components"] == {name: {"Up": True, "Restarts": 0} for name in (
            "api-server", "dag-processor", "scheduler", "triggerer")}
        assert (view["Executor"], view["Workers"], view["MaxWorkers"]) == ("LocalExecutor", 3,
                                                                           3)
        missing = airgate(home, "status", "nowhere", check=False)
        assert (missing.returncode, missing.stderr) == (
            1, "airgate: no environment named nowhere\n")
    finally:
        mwaa.delete_environment(Name="watched")
        deadline = time.monotonic() + 240
        while (home / "environments" / "watched").exists():
            assert time.monotonic() < deadline, "the deleted environment's folder stayed"
            time.sleep(0.5)


def test_iam_commands(served: tuple[Path, str, Any], tmp_path: Path) -> None:
    home, endpoint, _ = served
    assert json.loads(airgate(home, "iam", "create-user", "--user-name", "alice").stdout)[
        "User"]["Arn"] == "arn:aws:iam::000000000000:user/alice"
    key = json.loads(airgate(home, "iam", "create-access-key", "--user-name", "alice").stdout)[
        "AccessKey"]
    document = tmp_path / "p.json"
    document.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "airflow:ListEnvironments", "Resource": "*"}]}))
    airgate(home, "iam", "put-user-policy", "--user-name", "alice", "--policy-name", "list",
            "--policy-document", f"file://{document}")
    assert json.loads(airgate(home, "iam", "list-user-policies", "--user-name",
                              "alice").stdout) == {"PolicyNames": ["list"]}
    assert json.loads(airgate(home, "iam", "get-user-policy", "--user-name", "alice",
                              "--policy-name", "list").stdout) == {
        "UserName": "alice", "PolicyName": "list",
        "PolicyDocument": json.loads(document.read_text())}

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL_MWAA=endpoint, AWS_DISABLE_HOST_PREFIX_INJECTION="true",
               AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID=key["AccessKeyId"],
               AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"],
               AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    aws = [sys.executable, "-m", "awscli", "mwaa"]
    allowed = subprocess.run([*aws, "list-environments"], env=env, capture_output=True,
                             text=True, timeout=60)
    assert allowed.returncode == 0, allowed.stderr
    denied = subprocess.run([*aws, "get-environment", "--name", "x"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert denied.returncode != 0 and "AccessDeniedException" in denied.stderr

    airgate(home, "iam", "create-role", "--role-name", "Reporting")
    airgate(home, "iam", "put-role-policy", "--role-name", "Reporting", "--policy-name", "list",
            "--policy-document", document.read_text())
    session = json.loads(airgate(home, "iam", "assume-role", "--role-name", "Reporting",
                                 "--role-session-name", "session-1").stdout)
    assert session["AssumedRoleUser"]["Arn"] == \
        "arn:aws:sts::000000000000:assumed-role/Reporting/session-1"
    env.update(AWS_ACCESS_KEY_ID=session["Credentials"]["AccessKeyId"],
               AWS_SECRET_ACCESS_KEY=session["Credentials"]["SecretAccessKey"],
               AWS_SESSION_TOKEN=session["Credentials"]["SessionToken"])
    as_role = subprocess.run([*aws, "list-environments"], env=env, capture_output=True,
                             text=True, timeout=60)
    assert as_role.returncode == 0, as_role.stderr

    airgate(home, "iam", "delete-access-key", "--user-name", "alice", "--access-key-id",
            key["AccessKeyId"])
    # The running server (another process, which caches credentials) sees it at once.
    env.update(AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"])
    env.pop("AWS_SESSION_TOKEN")
    revoked = subprocess.run([*aws, "list-environments"], env=env, capture_output=True,
                             text=True, timeout=60)
    assert revoked.returncode != 0 and "UnrecognizedClientException" in revoked.stderr
    gone = airgate(home, "iam", "delete-access-key", "--user-name", "alice",
                   "--access-key-id", key["AccessKeyId"], check=False)
    assert gone.returncode != 0
    assert "NoSuchEntity" in gone.stderr and "DeleteAccessKey" in gone.stderr
    malformed = airgate(home, "iam", "put-user-policy", "--user-name", "alice",
                        "--policy-name", "bad", "--policy-document", '{"Statement": 1}',
                        check=False)
    assert malformed.returncode != 0 and "MalformedPolicyDocument" in malformed.stderr


def test_access_log_has_one_safe_line_per_request(served: tuple[Path, str, Any]) -> None:
    home, endpoint, _ = served
    exported = shellenv(home)
    secrets = {exported["AWS_SECRET_ACCESS_KEY"], (home / "master.key").read_text().strip()}
    mwaa = mwaa_client(endpoint, {"AccessKeyId": exported["AWS_ACCESS_KEY_ID"],
                                  "SecretAccessKey": exported["AWS_SECRET_ACCESS_KEY"]},
                       "us-east-1")
    listed = [mwaa.list_environments()["ResponseMetadata"]["RequestId"] for _ in range(3)]
    with pytest.raises(mwaa.exceptions.ResourceNotFoundException) as missing:
        mwaa.get_environment(Name="nowhere")
    refused = missing.value.response["ResponseMetadata"]["RequestId"]

    def requests() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in (home / "logs" / "airgate.log").read_text()
                 .splitlines()]
        return [line for line in lines if line["logger"] == "airgate.access"]

    # A line is written as its response ends: wait for the last one, then count.
    wait_for(lambda: any(line["request_id"] == refused for line in requests()), 10,
             "the last request's access-log line")
    ours = {line["request_id"]: line for line in requests()
            if line["request_id"] in {*listed, refused}}
    assert [line["request_id"] for line in requests() if line["request_id"] in ours] == [
        *listed, refused]  # one line per request, in order
    for request_id in listed:
        line = ours[request_id]
        assert (line["operation"], line["status"], line["principal"]) == (
            "ListEnvironments", 200, "arn:aws:iam::000000000000:user/admin")
        assert {"request_id", "principal", "operation", "resource", "status",
                "latency_ms"} <= set(line)
    assert (ours[refused]["operation"], ours[refused]["status"]) == ("GetEnvironment", 404)
    text = (home / "logs" / "airgate.log").read_text()
    for secret in secrets:
        assert secret not in text


def test_help_on_every_command() -> None:
    from airgate.cli import IAM_COMMANDS

    for command in (["--help"], ["up", "--help"], ["shellenv", "--help"], ["iam", "--help"],
                    *(["iam", c.name, "--help"] for c in IAM_COMMANDS)):
        result = subprocess.run([*AIRGATE, *command], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0 and "usage: airgate" in result.stdout, command


@pytest.mark.airflow
@pytest.mark.timeout(600)  # its bounded waits: AVAILABLE 280 s, the stop 60 s
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_airgate_stops_its_environments(tmp_path: Path, signum: int) -> None:
    """`airgate up` with its default environment; stopping airgate leaves no Airflow behind
    (its processes found by the test, not by airgate: tests/e2e/processes.py)."""
    home = tmp_path / "home"
    with (tmp_path / "stdout.log").open("w") as stdout:
        process = subprocess.Popen(
            [*AIRGATE, "up", "--home", str(home), "--port", str(free_port()),
             "--dags", str(Path(__file__).parents[2] / "examples" / "dags")],
            stdout=stdout, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = output_lines(tmp_path / "stdout.log", lambda lines: any(
            "Airflow UI: http://127.0.0.1:" in line for line in lines), 280, process)
        assert any("environment default is AVAILABLE" in line for line in lines)
        environment = EnvironmentProcesses(home / "environments" / "default")
        running = environment.find()
        commands = {" ".join(p.cmdline()) for p in running}
        assert len(running) >= 4, environment.describe(running)
        assert any("scheduler" in command for command in commands), commands
        process.send_signal(signum)
        process.wait(timeout=60)
        left = environment.find()
        assert left == [], environment.describe(left)
    finally:
        if process.poll() is None:  # the test failed early: don't leave airgate running
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
