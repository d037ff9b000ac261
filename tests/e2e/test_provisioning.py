"""Provisioning an environment for real, and every way it can fail.

- `PluginsS3Path`: a plugins.zip whose plugin Airflow loads (listed by its REST API's
  /plugins); members that would land outside the plugins folder (`../x.py`, absolute paths)
  refused with PLUGINS_INVALID and nothing written anywhere.
- UpdateEnvironment whose requirements fail: UPDATE_FAILED, the previous settings running
  again and answering (MWAA: "restored to its previous state successfully and is ready to
  use").
- Every LastUpdate.Error code the runtime can produce (environments/provision.py,
  versions.py, local.py), each produced for real: a missing object, an invalid plugins.zip,
  requirements pip refuses, a failing startup script, a failing migration, a metadata
  server that can't be reached, an Airflow version no longer offered, a runtime whose
  install fails, a component that keeps exiting, a health check that never passes, DAGs
  that can't be read from S3. After each failure no process of the environment is left.
- airgate stopped (gracefully) in the middle of a create: the create is finished at the
  next start, as after a crash.
"""

from __future__ import annotations

import contextlib
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from airgate.server import local_runtime
from tests.e2e.processes import EnvironmentProcesses
from tests.e2e.test_runtime import DAG, create_args, wait_for, wait_for_status
from tests.support import RunningAirgate, ScriptedRuntime, free_port, running_airgate

# Each test's bounded waits (environments starting, failing, being deleted, airgate
# restarted) add up to more than pytest's default 300 s on a loaded machine, less than this.
pytestmark = [pytest.mark.e2e, pytest.mark.airflow, pytest.mark.timeout(900)]

PLUGIN = '''
from airflow.plugins_manager import AirflowPlugin

from airgate_probe_helpers import MARK


def airgate_probe_macro():
    return MARK


class AirgateProbePlugin(AirflowPlugin):
    name = "airgate_probe"
    macros = [airgate_probe_macro]
'''


def zipped(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


class Provisioning:
    """airgate with real environments over one home, and its bucket `data-team`."""

    def __init__(self, server: RunningAirgate, home: Path) -> None:
        self.server, self.home = server, home
        self.bucket = home / "buckets" / "data-team"

    def put(self, key: str, content: str | bytes) -> None:
        path = self.bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

    def processes(self, name: str) -> EnvironmentProcesses:
        return EnvironmentProcesses(self.home / "environments" / name)

    def failed_create(self, name: str, timeout: float = 300, **spec: Any) -> dict[str, Any]:
        """Create `name`, wait for CREATE_FAILED; its LastUpdate.Error. Nothing of the
        environment may be left running; the environment is deleted afterwards."""
        mwaa = self.server.client()
        mwaa.create_environment(**create_args(name, **spec))
        environment = wait_for_status(mwaa, name, "CREATE_FAILED", timeout=timeout)
        assert environment["LastUpdate"]["Status"] == "FAILED"
        processes = self.processes(name)
        left = processes.describe(processes.find())
        mwaa.delete_environment(Name=name)
        wait_for(lambda: name not in mwaa.list_environments()["Environments"], 120,
                 f"{name} to be deleted")
        assert left == [], f"processes left after {name} failed: {left}"
        error: dict[str, Any] = environment["LastUpdate"]["Error"]
        return error


@pytest.fixture(scope="module")
def provisioning(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provisioning]:
    home = tmp_path_factory.mktemp("provisioning") / "home"
    (home / "buckets" / "data-team" / "dags").mkdir(parents=True)
    (home / "buckets" / "data-team" / "dags" / "hello_airgate.py").write_text(DAG)
    with running_airgate(home, runtime_factory=local_runtime) as server:
        yield Provisioning(server, home)


# --- failures before Airflow starts: cheap ---------------------------------------------------

@pytest.mark.parametrize("member", ["Requirements", "Plugins", "StartupScript"])
def test_a_missing_object_is_s3_object_not_found(provisioning: Provisioning,
                                                  member: str) -> None:
    error = provisioning.failed_create(f"missing-{member.lower()}",
                                       **{f"{member}S3Path": f"absent/{member}.obj"})
    assert error["ErrorCode"] == "S3_OBJECT_NOT_FOUND"
    assert error["ErrorMessage"].startswith(f"s3://data-team/absent/{member}.obj does not "
                                            "exist")


@pytest.mark.parametrize(("case", "member"), [
    ("parent", "../escaped.py"),
    ("nested-parent", "inside/../../escaped.py"),
    ("absolute", "{outside}/absolute.py"),
])
def test_a_plugins_zip_member_outside_the_folder_is_refused(
        provisioning: Provisioning, tmp_path: Path, case: str, member: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    member = member.format(outside=outside)
    provisioning.put(f"plugins/{case}.zip", zipped({"fine.py": "x = 1\n",
                                                     member: "ESCAPED = True\n"}))
    name = f"zip-{case}"
    root = provisioning.home / "environments" / name
    error = provisioning.failed_create(name, PluginsS3Path=f"plugins/{case}.zip")
    assert error == {"ErrorCode": "PLUGINS_INVALID",
                     "ErrorMessage": f"plugins.zip member {member!r} escapes the folder"}
    # Nothing written: not beside the plugins folder, not at the absolute path, and not
    # even the harmless member (the archive is refused as a whole).
    assert list(outside.iterdir()) == []
    for base in (provisioning.home, tmp_path):
        assert [p for p in base.rglob("*.py") if p.read_text() == "ESCAPED = True\n"] == []
    assert not (root / "escaped.py").exists()


def test_a_plugins_file_that_is_not_a_zip_is_refused(provisioning: Provisioning) -> None:
    provisioning.put("plugins/not-a.zip", "just text\n")
    error = provisioning.failed_create("not-a-zip", PluginsS3Path="plugins/not-a.zip")
    assert error["ErrorCode"] == "PLUGINS_INVALID"
    assert error["ErrorMessage"].startswith("plugins.zip is not a zip file")


def test_requirements_pip_refuses_are_requirements_install_failed(
        provisioning: Provisioning) -> None:
    provisioning.put("bad-requirements.txt", "this is not a requirement ==\n")
    error = provisioning.failed_create("bad-requirements",
                                       RequirementsS3Path="bad-requirements.txt")
    assert error["ErrorCode"] == "REQUIREMENTS_INSTALL_FAILED"
    assert error["ErrorMessage"].startswith("pip install -r requirements.txt failed (exit 1)")
    assert "Invalid requirement" in error["ErrorMessage"]


def test_a_failing_startup_script_is_startup_script_failed(provisioning: Provisioning) -> None:
    provisioning.put("startup-fails.sh", 'echo "the probe gives up" >&2\nexit 3\n')
    error = provisioning.failed_create("startup-fails", StartupScriptS3Path="startup-fails.sh")
    assert error == {"ErrorCode": "STARTUP_SCRIPT_FAILED",
                     "ErrorMessage": "the startup script failed (exit 3): the probe gives up"}


def test_a_failing_migration_is_airflow_db_migrate_failed(provisioning: Provisioning) -> None:
    """The startup script (run before the migration) puts a folder where the SQLite
    metadata database goes: `airflow db migrate` can't open it."""
    provisioning.put("break-database.sh",
                     'rm -rf "$AIRFLOW_HOME/airflow.db"\nmkdir "$AIRFLOW_HOME/airflow.db"\n')
    error = provisioning.failed_create("migration-fails",
                                       StartupScriptS3Path="break-database.sh")
    assert error["ErrorCode"] == "AIRFLOW_DB_MIGRATE_FAILED"
    assert error["ErrorMessage"].startswith("airflow db migrate failed (exit 1)")
    assert "unable to open database file" in error["ErrorMessage"]


def test_an_unreachable_metadata_server_is_internal_error(tmp_path: Path) -> None:
    """A PostgreSQL server for metadata that refuses connections: the environment fails
    with the database error, and airgate stays up."""
    home = tmp_path / "home"
    (home / "buckets" / "data-team" / "dags").mkdir(parents=True)
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    with running_airgate(home, runtime_factory=local_runtime,
                         airflow_database_url=dead) as server:
        mwaa = server.client()
        mwaa.create_environment(**create_args("no-metadata-server"))
        error = wait_for_status(mwaa, "no-metadata-server", "CREATE_FAILED", timeout=120)[
            "LastUpdate"]["Error"]
        assert error["ErrorCode"] == "INTERNAL_ERROR"
        assert error["ErrorMessage"].startswith("OperationalError: ")
        assert "Connection refused" in error["ErrorMessage"]
        assert mwaa.list_environments()["Environments"] == ["no-metadata-server"]


# --- versions: a create under way when airgate stopped, taken up by an airgate whose
# --- runtimes differ ----------------------------------------------------------------------

def created_by_a_runtime_that_offers(home: Path, name: str, version: str) -> None:
    """`name` recorded CREATING with AirflowVersion `version`, as if an airgate offering it
    had stopped during the create."""
    with running_airgate(home, runtime_factory=lambda settings, store: ScriptedRuntime(
            store, versions=("3.3.2", version))) as server:
        server.client().create_environment(**create_args(name, AirflowVersion=version))
        assert server.client().get_environment(Name=name)["Environment"]["Status"] == \
            "CREATING"


def test_a_version_no_longer_offered_is_unsupported_version(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "buckets" / "data-team" / "dags").mkdir(parents=True)
    created_by_a_runtime_that_offers(home, "old-version", "3.0.98")
    with running_airgate(home, runtime_factory=local_runtime) as server:
        environment = wait_for_status(server.client(), "old-version", "CREATE_FAILED",
                                      timeout=120)
    assert environment["LastUpdate"]["Error"] == {
        "ErrorCode": "UNSUPPORTED_VERSION", "ErrorMessage": "Airflow 3.0.98 is not supported"}
    assert not (home / "runtimes" / "3.0.98").exists()


def test_a_runtime_whose_install_fails_is_runtime_install_failed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An extra version's runtime is really installed: a virtualenv, then pip. A real
    release would download gigabytes, so the version here is one no index has (3.0.99),
    and pip's main index is a closed port: pip fails, as it does offline or for a release
    the index lacks."""
    home = tmp_path / "home"
    (home / "buckets" / "data-team" / "dags").mkdir(parents=True)
    created_by_a_runtime_that_offers(home, "new-runtime", "3.0.99")
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{free_port()}/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    with running_airgate(home, runtime_factory=local_runtime,
                         extra_airflow_versions=("3.0.99",)) as server:
        environment = wait_for_status(server.client(), "new-runtime", "CREATE_FAILED",
                                      timeout=600)
    error = environment["LastUpdate"]["Error"]
    assert error["ErrorCode"] == "RUNTIME_INSTALL_FAILED"
    # The message ends with pip's own last words, which the runtime's log holds too.
    assert "installing Airflow 3.0.99 failed: " in error["ErrorMessage"]
    last_words = error["ErrorMessage"].rsplit(" | ", 1)[-1]
    assert last_words.startswith("ERROR: "), error
    log = (home / "runtimes" / "3.0.99" / "install.log").read_text()
    assert last_words in log
    assert (home / "runtimes" / "3.0.99" / "venv" / "bin" / "python").exists()  # it began
    assert not (home / "runtimes" / "3.0.99" / "ready").exists()


# --- S3 ------------------------------------------------------------------------------------

def test_s3_failures_are_s3_sync_failed_and_s3_object_not_found(tmp_path: Path) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    from airgate.environments.local import LocalRuntime
    from airgate.environments.sources import S3Objects
    from airgate.environments.versions import AirflowRuntimes
    from airgate.server import default_airflow_version

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    try:
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}",
                          region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
        s3.create_bucket(Bucket="lake")
        s3.put_object(Bucket="lake", Key="dags/hello_airgate.py", Body=DAG.encode())

        def s3_runtime(settings: Any, store: Any) -> LocalRuntime:
            return LocalRuntime(settings.home, store, sources=S3Objects(s3),
                                runtimes=AirflowRuntimes(settings.home,
                                                         default_airflow_version()))

        with running_airgate(tmp_path / "home", runtime_factory=s3_runtime) as server:
            mwaa = server.client()
            mwaa.create_environment(**create_args("no-bucket",
                                                  SourceBucketArn="arn:aws:s3:::no-such-lake"))
            mwaa.create_environment(**create_args("no-object", SourceBucketArn="arn:aws:s3:::lake",
                                                  RequirementsS3Path="requirements.txt"))
            no_bucket = wait_for_status(mwaa, "no-bucket", "CREATE_FAILED", timeout=120)
            no_object = wait_for_status(mwaa, "no-object", "CREATE_FAILED", timeout=120)
    finally:
        moto.stop()
    error = no_bucket["LastUpdate"]["Error"]
    assert error["ErrorCode"] == "S3_SYNC_FAILED"
    assert error["ErrorMessage"].startswith("could not read DAGs from S3: ")
    assert "NoSuchBucket" in error["ErrorMessage"]
    assert no_object["LastUpdate"]["Error"] == {
        "ErrorCode": "S3_OBJECT_NOT_FOUND",
        "ErrorMessage": "s3://lake/requirements.txt does not exist"}


# --- failures once Airflow runs --------------------------------------------------------------

# Run by Python before any module (PYTHONPATH, exported by the startup script): the
# scheduler exits at once, every time it is started; nothing else is touched.
CRASHING_SCHEDULER = '''mkdir -p "$HOME/crash"
cat > "$HOME/crash/sitecustomize.py" <<'PY'
import sys
if sys.argv[1:2] == ["scheduler"]:
    sys.exit(7)
PY
export PYTHONPATH="$HOME/crash:$PYTHONPATH"
'''


def test_a_component_that_keeps_exiting_is_component_crashed(
        provisioning: Provisioning) -> None:
    provisioning.put("crash-scheduler.sh", CRASHING_SCHEDULER)
    error = provisioning.failed_create("crashing", StartupScriptS3Path="crash-scheduler.sh")
    assert error == {"ErrorCode": "COMPONENT_CRASHED",
                     "ErrorMessage": "scheduler kept exiting at start; see "
                                     "`airgate logs crashing scheduler`"}


def test_a_health_check_that_never_passes_is_health_check_timeout(
        provisioning: Provisioning, monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's scheduler counts as healthy only with a heartbeat younger than the
    threshold; with a threshold of 0 it never is. airgate's wait (240 s) is shortened so
    that the test does not sit through all of it."""
    monkeypatch.setattr("airgate.environments.local.HEALTH_TIMEOUT", 60.0)
    error = provisioning.failed_create("never-healthy", AirflowConfigurationOptions={
        "scheduler.scheduler_health_check_threshold": "0"})
    assert error == {"ErrorCode": "HEALTH_CHECK_TIMEOUT",
                     "ErrorMessage": "Airflow did not report healthy within 60 s"}


# --- plugins for real, and an update rolled back -------------------------------------------

def test_plugins_are_loaded_and_a_failed_update_rolls_back(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "buckets" / "data-team" / "dags").mkdir(parents=True)
    (home / "buckets" / "data-team" / "dags" / "hello_airgate.py").write_text(DAG)
    (home / "buckets" / "data-team" / "plugins.zip").write_bytes(zipped({
        "airgate_probe_plugin.py": PLUGIN,
        "airgate_probe_helpers/__init__.py": 'MARK = "from plugins.zip"\n'}))
    (home / "buckets" / "data-team" / "bad-requirements.txt").write_text(
        "this is not a requirement ==\n")
    processes = EnvironmentProcesses(home / "environments" / "with-plugins")

    def plugins(mwaa: Any) -> list[str]:
        answer = mwaa.invoke_rest_api(Name="with-plugins", Method="GET", Path="/plugins")
        assert answer["RestApiStatusCode"] == 200
        return [plugin["name"] for plugin in answer["RestApiResponse"]["plugins"]]

    def previous_settings_answer(mwaa: Any) -> None:
        """Running the previous settings, and answering: MWAA's UPDATE_FAILED is "restored
        to its previous state successfully and ready to use"."""
        environment = mwaa.get_environment(Name="with-plugins")["Environment"]
        assert environment["Status"] == "UPDATE_FAILED"
        assert "RequirementsS3Path" not in environment
        assert environment["PluginsS3Path"] == "plugins.zip"
        assert plugins(mwaa).count("airgate_probe") == 1
        assert mwaa.invoke_rest_api(Name="with-plugins", Method="GET",
                                    Path="/dags/hello_airgate")["RestApiStatusCode"] == 200

    try:
        with running_airgate(home, runtime_factory=local_runtime) as server:
            mwaa = server.client()
            mwaa.create_environment(**create_args("with-plugins", PluginsS3Path="plugins.zip"))
            wait_for_status(mwaa, "with-plugins", "AVAILABLE")
            answer = mwaa.invoke_rest_api(Name="with-plugins", Method="GET", Path="/plugins")
            probe = [plugin for plugin in answer["RestApiResponse"]["plugins"]
                     if plugin["name"] == "airgate_probe"]
            assert len(probe) == 1, answer["RestApiResponse"]
            assert probe[0]["macros"] == ["airgate_probe_plugin.airgate_probe_macro"]
            unpacked = home / "environments" / "with-plugins" / "plugins"
            assert sorted(str(p.relative_to(unpacked)) for p in unpacked.rglob("*.py")) == [
                "airgate_probe_helpers/__init__.py", "airgate_probe_plugin.py"]

            # An update whose requirements pip refuses: UPDATE_FAILED, the previous
            # settings back.
            mwaa.update_environment(Name="with-plugins",
                                    RequirementsS3Path="bad-requirements.txt")
            environment = wait_for_status(mwaa, "with-plugins", "UPDATE_FAILED")
            assert environment["LastUpdate"]["Status"] == "FAILED"
            assert environment["LastUpdate"]["Error"]["ErrorCode"] == \
                "REQUIREMENTS_INSTALL_FAILED"
            previous_settings_answer(mwaa)
        # airgate restarted: a rolled-back environment was running, so it runs again.
        wait_for(lambda: not processes.find(), 30, "the stopped airgate's processes to end")
        with running_airgate(home, runtime_factory=local_runtime) as server:
            mwaa = server.client()

            def answers() -> bool:
                try:
                    return bool(mwaa.invoke_rest_api(Name="with-plugins", Method="GET",
                                                     Path="/version")["RestApiStatusCode"]
                                == 200)
                except mwaa.exceptions.RestApiServerException:  # 502 while it starts
                    return False

            wait_for(answers, 240, "the rolled-back environment to answer again", interval=2)
            previous_settings_answer(mwaa)
    finally:
        left = processes.kill_all()
    assert left == []


# --- airgate stopped during a create ---------------------------------------------------------

def test_a_create_interrupted_by_a_stop_is_finished_at_the_next_start(tmp_path: Path) -> None:
    """airgate stopped (gracefully) while Airflow's components start: the next start
    finishes the create, as it does after a crash. In this process the create's own thread
    outlives the stop, as it does in `airgate up` whenever stopping the components takes
    longer than its next look (half a second): what it records then must not end the
    create."""
    home = tmp_path / "home"
    (home / "buckets" / "data-team" / "dags").mkdir(parents=True)
    processes = EnvironmentProcesses(home / "environments" / "interrupted")

    def components_launched() -> bool:
        for process in processes.find():
            with contextlib.suppress(psutil.Error):
                if process.cmdline()[-3:] == ["-m", "airflow", "scheduler"]:
                    return True
        return False

    def lifecycle_running() -> bool:
        return any(thread.name == "env-interrupted" for thread in threading.enumerate())

    try:
        with running_airgate(home, runtime_factory=local_runtime) as server:
            server.client().create_environment(**create_args("interrupted"))
            wait_for(components_launched, 240, "Airflow's components to be launched")
            assert server.client().get_environment(Name="interrupted")["Environment"][
                "Status"] == "CREATING"
        wait_for(lambda: not lifecycle_running(), 60, "the create's thread to end")
        wait_for(lambda: not processes.find(), 30, "the stopped airgate's processes to end")
        with running_airgate(home, runtime_factory=local_runtime) as server:
            environment = wait_for_status(server.client(), "interrupted", "AVAILABLE")
            assert environment["LastUpdate"]["Status"] == "SUCCESS"
            assert "Error" not in environment["LastUpdate"]
    finally:
        left = processes.kill_all()
    assert left == []
