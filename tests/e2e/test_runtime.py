"""Real Apache Airflow behind the MWAA API: create, run a DAG, update, survive a killed
scheduler and an airgate restart, delete; and a broken requirements.txt.

The steps share one environment and run in order (each builds on the one before), with a
real airgate server, real boto3 clients and real Airflow processes.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from airgate.environments.local import LocalRuntime
from airgate.server import default_airflow_version, local_runtime
from tests.support import RunningAirgate, running_airgate

# The tests' bounded waits (an environment AVAILABLE within 240 s, then a DAG parsed, a
# run finished...) add up to more than pytest's default 300 s; each stays under this.
pytestmark = [pytest.mark.e2e, pytest.mark.airflow, pytest.mark.timeout(900)]

ENV = "pipeline"
AIRFLOW_VERSION = default_airflow_version()
BUCKET = "arn:aws:s3:::data-team"
DAG = '''
import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(dag_id="hello_airgate", schedule=None, catchup=False,
         start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    BashOperator(task_id="say_hello", bash_command="echo hello from $AIRFLOW_HOME")
'''
DEFERRED_DAG = '''
import pendulum
from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import DAG

with DAG(dag_id="deferred_airgate", schedule=None, catchup=False,
         start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    DateTimeSensorAsync(task_id="wait", target_time="{{ (macros.datetime.utcnow()"
                        " + macros.timedelta(minutes=30)).isoformat() }}")
'''


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def status_of(mwaa: Any, name: str) -> str:
    return str(mwaa.get_environment(Name=name)["Environment"]["Status"])


def api_url(server: RunningAirgate, name: str) -> str:
    """Where an environment's Airflow REST API answers."""
    runtime = server.airgate.runtime
    assert isinstance(runtime, LocalRuntime)
    url = runtime.api_url(server.airgate.environments.get(name))
    assert url is not None
    return url


def wait_for_status(mwaa: Any, name: str, wanted: str, timeout: float = 240) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        environment: dict[str, Any] = mwaa.get_environment(Name=name)["Environment"]
        if environment["Status"] == wanted:
            return environment
        assert not environment["Status"].endswith("FAILED") or wanted.endswith("FAILED"), \
            environment.get("LastUpdate")
        return None
    return wait_for(reached, timeout, f"{name} to be {wanted}")  # type: ignore[no-any-return]


class Harness:
    """An airgate server over one home that the tests can stop and start again."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._context: Any = None
        self.server: RunningAirgate

    def start(self) -> RunningAirgate:
        self._context = running_airgate(self.home, runtime_factory=local_runtime)
        self.server = self._context.__enter__()
        return self.server

    def stop(self) -> None:
        self._context.__exit__(None, None, None)

    @property
    def runtime(self) -> LocalRuntime:
        runtime = self.server.airgate.runtime
        assert isinstance(runtime, LocalRuntime)
        return runtime

    def airflow(self, role: str = "ADMIN", subject: str = "user/e2e") -> httpx.Client:
        """Airflow's REST API for the environment, with a token airgate minted."""
        token = self.runtime.signing_key(ENV).mint(subject=subject, role=role, environment=ENV,
                                                   ttl=600)
        url = api_url(self.server, ENV)
        assert url is not None
        return httpx.Client(base_url=f"{url}/api/v2", timeout=30,
                            headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    harness = Harness(tmp_path_factory.mktemp("runtime") / "home")
    dags = harness.home / "buckets" / "data-team" / "dags"
    dags.mkdir(parents=True)
    (dags / "hello_airgate.py").write_text(DAG)
    (dags / "deferred_airgate.py").write_text(DEFERRED_DAG)
    harness.start()
    yield harness
    harness.stop()


def create_args(name: str, **more: Any) -> dict[str, Any]:
    return {"Name": name, "ExecutionRoleArn": "arn:aws:iam::000000000000:role/airflow",
            "SourceBucketArn": BUCKET, "DagS3Path": "dags", "NetworkConfiguration": {}, **more}


def test_create_and_run_a_dag(harness: Harness) -> None:
    mwaa = harness.server.client()
    # How long this takes is bench/environment_startup.py's business, not a test's.
    mwaa.create_environment(**create_args(ENV, AirflowConfigurationOptions={
        "core.default_task_retries": "0", "core.default_pool_task_slot_count": "7"}))
    assert status_of(mwaa, ENV) == "CREATING"
    environment = wait_for_status(mwaa, ENV, "AVAILABLE")
    assert environment["LastUpdate"]["Status"] == "SUCCESS"
    assert environment["WebserverUrl"].startswith("http://127.0.0.1:")
    assert httpx.get(environment["WebserverUrl"], follow_redirects=True).status_code == 200

    with harness.airflow() as airflow:
        wait_for(lambda: airflow.get("/dags/hello_airgate").status_code == 200, 60,
                 "the DAG to be parsed")
        assert airflow.patch("/dags/hello_airgate", json={"is_paused": False}).status_code \
            == 200
        run = airflow.post("/dags/hello_airgate/dagRuns", json={"logical_date": None})
        assert run.status_code == 200, run.text
        run_id = run.json()["dag_run_id"]
        final = wait_for(lambda: (lambda r: r if r["state"] in ("success", "failed") else None)(
            airflow.get(f"/dags/hello_airgate/dagRuns/{run_id}").json()), 120, "the run")
        assert final["state"] == "success"
        assert final["triggering_user_name"] == "user/e2e"
        assert airflow.post("/variables", json={"key": "kept", "value": "across restarts"}) \
            .status_code == 201
        # The metadata began as a copy of a template migrated once for this Airflow, and the
        # environment's own migration made the default pool as its configuration says.
        assert airflow.get("/pools/default_pool").json()["slots"] == 7
    setup = (harness.home / "environments" / ENV / "logs" / "setup.log").read_text()
    assert f"airgate: metadata copied from Airflow {AIRFLOW_VERSION}'s migrated template" \
        in setup
    assert (harness.home / "templates" / AIRFLOW_VERSION / "airflow.db").is_file()


def test_a_deferred_task_s_log_comes_from_the_one_log_server(harness: Harness) -> None:
    """The triggerer runs no log server of its own: the scheduler's serves the trigger's log
    of a deferred task (the same folder), at the port Airflow asks for it."""
    with harness.airflow() as airflow:
        wait_for(lambda: airflow.get("/dags/deferred_airgate").status_code == 200, 60,
                 "the DAG to be parsed")
        airflow.patch("/dags/deferred_airgate", json={"is_paused": False})
        run = airflow.post("/dags/deferred_airgate/dagRuns", json={"logical_date": None})
        assert run.status_code == 200, run.text
        base = f"/dags/deferred_airgate/dagRuns/{run.json()['dag_run_id']}/taskInstances/wait"
        wait_for(lambda: airflow.get(base).json()["state"] == "deferred", 120,
                 "the sensor to defer")

        def served_sources() -> list[str] | None:
            content = airflow.get(f"{base}/logs/1", params={"full_content": True}).json()
            events = [str(line.get("event", "")) for line in content["content"]]
            served = [e for e in events if e.startswith("http://") and ".trigger." in e]
            failed = [e for e in events if "Could not read served logs" in e]
            return served if served and not failed else None

        served = wait_for(served_sources, 60, "the trigger's log, served")
        assert len(served) == 1
        airflow.patch(f"/dags/deferred_airgate/dagRuns/{run.json()['dag_run_id']}",
                      json={"state": "failed"})


def test_tokens_are_per_environment_and_role(harness: Harness) -> None:
    with harness.airflow(role="VIEWER") as viewer:
        assert viewer.get("/dags").status_code == 200
        assert viewer.post("/variables", json={"key": "x", "value": "y"}).status_code == 403
    other = harness.runtime.signing_key(ENV).mint(subject="user/e2e", role="ADMIN",
                                                  environment="another-env", ttl=60)
    url = api_url(harness.server, ENV)
    assert httpx.get(f"{url}/api/v2/dags",
                     headers={"Authorization": f"Bearer {other}"}).status_code == 403
    # The environment's configuration names no airgate private key.
    layout_root = harness.home / "environments" / ENV
    airgate_key = (harness.home / "keys" / "environments" / f"{ENV}.pem").read_text()
    for path in layout_root.rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert airgate_key.strip() not in path.read_text(errors="ignore")


def test_update_applies_configuration(harness: Harness) -> None:
    mwaa = harness.server.client()
    before = harness.runtime.pids(ENV)
    mwaa.update_environment(Name=ENV, AirflowConfigurationOptions={
        "core.parallelism": "3", "api.expose_config": "True"})
    assert status_of(mwaa, ENV) == "UPDATING"
    environment = wait_for_status(mwaa, ENV, "AVAILABLE")
    assert environment["AirflowConfigurationOptions"]["core.parallelism"] == "3"
    assert set(harness.runtime.pids(ENV).values()).isdisjoint(before.values())
    with harness.airflow() as airflow:
        option = airflow.get("/config/section/core/option/parallelism",
                             headers={"Accept": "application/json"})
        assert option.status_code == 200, option.text
        assert option.json()["sections"][0]["options"][0]["value"] == "3"


def test_blocked_option_is_refused(harness: Harness) -> None:
    mwaa = harness.server.client()
    with pytest.raises(mwaa.exceptions.ValidationException) as excinfo:
        mwaa.update_environment(Name=ENV, AirflowConfigurationOptions={
            "database.sql_alchemy_conn": "sqlite:////tmp/x.db"})
    assert "database.sql_alchemy_conn" in excinfo.value.response["Error"]["Message"]
    assert status_of(mwaa, ENV) == "AVAILABLE"


def test_killed_scheduler_comes_back(harness: Harness) -> None:
    mwaa = harness.server.client()
    scheduler = harness.runtime.pids(ENV)["scheduler"]
    os.killpg(scheduler, signal.SIGKILL)
    wait_for(lambda: status_of(mwaa, ENV) == "UNAVAILABLE", 30, "UNAVAILABLE")
    wait_for_status(mwaa, ENV, "AVAILABLE", timeout=120)
    assert harness.runtime.pids(ENV)["scheduler"] != scheduler


def test_restart_brings_environment_back_with_its_data(harness: Harness) -> None:
    pids = list(harness.runtime.pids(ENV).values())
    harness.stop()
    assert not any(psutil.pid_exists(pid) for pid in pids)
    harness.start()
    mwaa = harness.server.client()
    wait_for_status(mwaa, ENV, "AVAILABLE")
    with harness.airflow() as airflow:
        assert airflow.get("/variables/kept").json()["value"] == "across restarts"
        runs = airflow.get("/dags/hello_airgate/dagRuns").json()
        assert runs["total_entries"] == 1 and runs["dag_runs"][0]["state"] == "success"


def test_delete_stops_everything(harness: Harness) -> None:
    mwaa = harness.server.client()
    processes = [psutil.Process(pid) for pid in harness.runtime.pids(ENV).values()]
    family = processes + [child for p in processes for child in p.children(recursive=True)]
    mwaa.delete_environment(Name=ENV)
    assert status_of(mwaa, ENV) == "DELETING"

    def gone() -> bool:
        try:
            mwaa.get_environment(Name=ENV)
        except mwaa.exceptions.ResourceNotFoundException:
            return True
        return False

    wait_for(gone, 120, "the environment to be deleted")
    assert not [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not (harness.home / "environments" / ENV).exists()


def test_broken_requirements_fail_the_creation(harness: Harness) -> None:
    bucket = harness.home / "buckets" / "data-team"
    (bucket / "requirements.txt").write_text("airgate-no-such-package-anywhere==0.0.1\n")
    mwaa = harness.server.client()
    mwaa.create_environment(**create_args("broken", RequirementsS3Path="requirements.txt"))
    environment = wait_for_status(mwaa, "broken", "CREATE_FAILED", timeout=300)
    error = environment["LastUpdate"]["Error"]
    assert environment["LastUpdate"]["Status"] == "FAILED"
    assert error["ErrorCode"] == "REQUIREMENTS_INSTALL_FAILED"
    assert "airgate-no-such-package-anywhere" in error["ErrorMessage"]
    assert not harness.runtime.pids("broken")
    mwaa.delete_environment(Name="broken")


@pytest.mark.postgres
def test_metadata_on_postgresql(tmp_path: Path) -> None:
    """With a PostgreSQL server configured, each environment gets its own database there,
    dropped with the environment."""
    import psycopg

    from airgate.environments.metadata import database_name
    from airgate.server import installation_id
    from tests.support import POSTGRES_ADMIN_URL

    home = tmp_path / "home"
    (home / "buckets" / "data-team" / "dags").mkdir(parents=True)
    (home / "buckets" / "data-team" / "dags" / "hello_airgate.py").write_text(DAG)
    name = "OnPostgres"

    def databases() -> list[str]:
        with psycopg.connect(POSTGRES_ADMIN_URL) as connection:
            return [row[0] for row in connection.execute("SELECT datname FROM pg_database")]

    with running_airgate(home, runtime_factory=local_runtime,
                         airflow_database_url=POSTGRES_ADMIN_URL) as server:
        database = database_name(name, installation_id(home))
        mwaa = server.client()
        mwaa.create_environment(**create_args(name, AirflowConfigurationOptions={
            "core.default_pool_task_slot_count": "9"}, Schedulers=2))
        wait_for_status(mwaa, name, "AVAILABLE")
        assert database in databases()
        # Made from the template database migrated once for this Airflow version; every
        # table then handed to the environment's own role.
        assert database_name(f"template {AIRFLOW_VERSION}", installation_id(home)) \
            in databases()
        with psycopg.connect(POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/"
                             + database) as connection:
            owners = connection.execute("SELECT DISTINCT tableowner FROM pg_tables "
                                        "WHERE schemaname = 'public'").fetchall()
            slots = connection.execute("SELECT slots FROM slot_pool "
                                       "WHERE pool = 'default_pool'").fetchall()
        assert owners == [(database,)]
        assert slots == [(9,)]
        runtime = server.airgate.runtime
        assert isinstance(runtime, LocalRuntime)
        token = runtime.signing_key(name).mint(subject="user/pg", role="ADMIN",
                                               environment=name, ttl=60)
        with httpx.Client(base_url=f"{api_url(server, name)}/api/v2",
                          headers={"Authorization": f"Bearer {token}"}) as airflow:
            assert airflow.post("/variables", json={"key": "k", "value": "v"}).status_code == 201
            # Schedulers=2 on PostgreSQL: two schedulers, both alive in Airflow's own eyes.
            assert {"scheduler", "scheduler-2"} <= set(runtime.pids(name))
            wait_for(lambda: airflow.get("/jobs", params={
                "job_type": "SchedulerJob", "is_alive": True}).json()["total_entries"] == 2,
                60, "two live scheduler jobs")
        with psycopg.connect(POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/"
                             + database) as connection:
            stored = connection.execute("SELECT val, is_encrypted FROM variable "
                                        "WHERE key = 'k'").fetchone()
        assert stored is not None and stored[1] is True  # there, under the env's Fernet key
        mwaa.delete_environment(Name=name)
        wait_for(lambda: database not in databases(), 120, "the database to go")


def test_dags_plugins_and_startup_script_from_s3(tmp_path: Path) -> None:
    """With S3 configured, objects are fetched with boto3 (here from moto's S3 server), and
    a DAG uploaded later reaches the running environment (promised within 30 s: waited for
    within a generous bound; bench/dag_pickup.py measures pickup times)."""
    import boto3
    from moto.server import ThreadedMotoServer

    from airgate.environments.sources import S3Objects
    from airgate.environments.versions import AirflowRuntimes
    from airgate.server import default_airflow_version
    from tests.support import free_port

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    try:
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="lake")
        s3.put_object(Bucket="lake", Key="airflow/dags/hello_airgate.py", Body=DAG.encode())
        s3.put_object(Bucket="lake", Key="airflow/startup.sh",
                      Body=b"export AIRGATE_FROM_STARTUP=yes\n")

        def s3_runtime(settings: Any, store: Any) -> LocalRuntime:
            return LocalRuntime(settings.home, store, sources=S3Objects(s3),
                                runtimes=AirflowRuntimes(settings.home,
                                                         default_airflow_version()))

        with running_airgate(tmp_path / "home", runtime_factory=s3_runtime) as server:
            mwaa = server.client()
            mwaa.create_environment(**create_args(
                "from-s3", SourceBucketArn="arn:aws:s3:::lake", DagS3Path="airflow/dags",
                StartupScriptS3Path="airflow/startup.sh"))
            wait_for_status(mwaa, "from-s3", "AVAILABLE")
            runtime = server.airgate.runtime
            assert isinstance(runtime, LocalRuntime)
            # The scheduler itself (inside its sandbox, under the process airgate started).
            started = psutil.Process(runtime.pids("from-s3")["scheduler"])
            scheduler = next(p for p in [started, *started.children(recursive=True)]
                             if p.name() not in ("bwrap", "env")
                             and p.cmdline()[-2:] == ["airflow", "scheduler"])
            assert scheduler.environ().get("AIRGATE_FROM_STARTUP") == "yes"

            token = runtime.signing_key("from-s3").mint(subject="user/s3", role="VIEWER",
                                                        environment="from-s3", ttl=120)
            with httpx.Client(base_url=f"{api_url(server, 'from-s3')}/api/v2",
                              headers={"Authorization": f"Bearer {token}"}) as airflow:
                wait_for(lambda: airflow.get("/dags/hello_airgate").status_code == 200, 60,
                         "the DAG from S3")
                s3.put_object(Bucket="lake", Key="airflow/dags/second.py",
                              Body=DAG.replace("hello_airgate", "second_dag").encode())
                wait_for(lambda: airflow.get("/dags/second_dag").status_code == 200, 90,
                         "the uploaded DAG", 2)
            mwaa.delete_environment(Name="from-s3")
    finally:
        moto.stop()


@pytest.mark.timeout(1500)  # the install and start are waited for up to 900 s
def test_another_airflow_version_gets_its_own_virtualenv(tmp_path: Path) -> None:
    """A supported version other than airgate's own is installed once into its own
    virtualenv under the home (this downloads Airflow 3.2.2 from PyPI), and runs there."""
    home = tmp_path / "home"
    (home / "buckets" / "data-team" / "dags").mkdir(parents=True)
    with running_airgate(home, runtime_factory=local_runtime,
                         extra_airflow_versions=("3.2.2",)) as server:
        mwaa = server.client()
        with pytest.raises(mwaa.exceptions.ValidationException) as excinfo:
            mwaa.create_environment(**create_args("too-old", AirflowVersion="2.10.5"))
        assert "3.2.2" in excinfo.value.response["Error"]["Message"]

        mwaa.create_environment(**create_args("older", AirflowVersion="3.2.2"))
        environment = wait_for_status(mwaa, "older", "AVAILABLE", timeout=900)
        assert environment["AirflowVersion"] == "3.2.2"
        runtime = server.airgate.runtime
        assert isinstance(runtime, LocalRuntime)
        token = runtime.signing_key("older").mint(subject="user/v", role="VIEWER",
                                                  environment="older", ttl=60)
        answer = httpx.get(f"{api_url(server, 'older')}/api/v2/version",
                           headers={"Authorization": f"Bearer {token}"})
        assert answer.json()["version"] == "3.2.2"
        assert (home / "runtimes" / "3.2.2" / "venv" / "bin" / "python").exists()
        mwaa.delete_environment(Name="older")
