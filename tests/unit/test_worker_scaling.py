"""How many Celery workers an environment runs (the autoscaler's policy), what each takes,
and which Airflow options a Celery environment gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from airgate.airflow.major import Ports
from airgate.airflow.v3 import AIRFLOW_3
from airgate.environments.airflow_config import check_options, components
from airgate.environments.autoscaler import WorkerScaler
from airgate.environments.brokers import BrokerAccess
from airgate.environments.executors import (
    CeleryExecution,
    LocalExecution,
    first_workers,
    tasks_per_worker,
    worker_bounds,
)
from airgate.environments.local import _only_worker_bounds_differ
from airgate.errors import ValidationException


def test_workers_follow_the_tasks_within_the_bounds() -> None:
    scaler = WorkerScaler(minimum=1, maximum=3, per_worker=5, quiet_seconds=60)
    assert scaler.target(running=1, tasks=0, now=0) == 1
    assert scaler.target(running=1, tasks=5, now=1) == 1  # one worker takes 5
    assert scaler.target(running=1, tasks=6, now=2) == 2  # up at once
    assert scaler.target(running=2, tasks=40, now=3) == 3  # never past MaxWorkers
    assert scaler.target(running=0, tasks=0, now=4) == 1  # never below MinWorkers


def test_fewer_workers_only_after_a_quiet_period() -> None:
    scaler = WorkerScaler(minimum=1, maximum=4, per_worker=5, quiet_seconds=60)
    assert scaler.target(running=3, tasks=4, now=100) == 3  # fewer would do: wait
    assert scaler.target(running=3, tasks=2, now=159) == 3
    assert scaler.target(running=3, tasks=2, now=160) == 1  # quiet for 60 s: down
    # A burst in between starts the quiet period over.
    assert scaler.target(running=3, tasks=0, now=200) == 3
    assert scaler.target(running=3, tasks=11, now=230) == 3
    assert scaler.target(running=3, tasks=0, now=280) == 3
    assert scaler.target(running=3, tasks=0, now=340) == 1


def test_new_bounds_win_at_once() -> None:
    scaler = WorkerScaler(minimum=1, maximum=5, per_worker=5, quiet_seconds=60)
    scaler.bound(2, 3)
    assert scaler.target(running=1, tasks=0, now=0) == 2
    assert scaler.target(running=5, tasks=0, now=1) == 3  # above MaxWorkers: no waiting
    scaler.bound(4, 2)  # a maximum below the minimum is the minimum
    assert scaler.target(running=1, tasks=0, now=2) == 4


def test_tasks_per_worker_follow_the_environment_class_or_worker_autoscale() -> None:
    assert tasks_per_worker({}) == 5
    assert tasks_per_worker({"EnvironmentClass": "mw1.micro"}) == 3
    assert tasks_per_worker({"EnvironmentClass": "mw1.large"}) == 20
    assert tasks_per_worker({"EnvironmentClass": "mw1.medium", "AirflowConfigurationOptions": {
        "celery.worker_autoscale": "8,2"}}) == 8
    assert worker_bounds({}) == (1, 10)
    assert worker_bounds({"MinWorkers": 2, "MaxWorkers": 40}) == (2, 25)
    assert first_workers({"MinWorkers": 2}) == ["worker-1", "worker-2"]


class RecordingBrokers:
    kind = "redis"

    def __init__(self) -> None:
        self.prepared: list[str] = []
        self.dropped: list[str] = []

    def prepare(self, name: str) -> BrokerAccess:
        self.prepared.append(name)
        return BrokerAccess("redis://own:secret@127.0.0.1:6379/0",
                            {"global_keyprefix": "own:"})

    def drop(self, name: str) -> None:
        self.dropped.append(name)


def test_celery_options_carry_the_environment_s_own_login() -> None:
    brokers = RecordingBrokers()
    celery = CeleryExecution(brokers)
    options = celery.options("team", {"EnvironmentClass": "mw1.medium", "MaxWorkers": 3})
    assert brokers.prepared == ["team"]
    assert options["core.executor"] == "CeleryExecutor"
    assert options["celery.broker_url"] == "redis://own:secret@127.0.0.1:6379/0"
    assert options["celery_broker_transport_options.global_keyprefix"] == "own:"
    assert options["celery.worker_concurrency"] == "10"
    assert options["celery.worker_enable_remote_control"] == "False"
    assert LocalExecution().options("team", {"MaxWorkers": 7}) == {
        "core.executor": "LocalExecutor", "core.parallelism": "7"}
    ports = Ports(api=1, web=2, worker_logs=3, trigger_logs=4)
    processes = dict(components({"MinWorkers": 2}, AIRFLOW_3, ports, True, celery))
    assert processes["worker-2"] == ["celery", "worker", "--celery-hostname", "worker-2@%h",
                                     "--skip-serve-logs", "--without-mingle",
                                     "--without-gossip"]
    assert "worker-3" not in processes
    assert not any(name.startswith("worker-") for name in dict(
        components({"MinWorkers": 2}, AIRFLOW_3, ports, True, LocalExecution())))
    celery.forget("team")
    assert brokers.dropped == ["team"]


def test_callers_cannot_set_the_broker() -> None:
    for option in ("celery.broker_url", "celery.result_backend",
                   "celery_broker_transport_options.global_keyprefix",
                   "celery.extra_celery_config"):
        with pytest.raises(ValidationException, match=option.replace(".", r"\.")):
            check_options({option: "x"}, AIRFLOW_3)
    check_options({"celery.worker_autoscale": "8,2"}, AIRFLOW_3)  # MWAA lets them


def test_only_worker_bounds_change_live() -> None:
    spec = {"AirflowVersion": "3.3.2", "MinWorkers": 1, "MaxWorkers": 3}
    assert _only_worker_bounds_differ({**spec, "MaxWorkers": 5}, spec)
    assert _only_worker_bounds_differ({**spec, "MinWorkers": 2}, spec)
    assert not _only_worker_bounds_differ(spec, spec)
    assert not _only_worker_bounds_differ({**spec, "MaxWorkers": 5, "Schedulers": 2}, spec)


def test_a_broker_needs_postgresql_metadata_and_a_known_scheme(tmp_path: Path) -> None:
    from airgate import config

    home = {"AIRGATE_HOME": str(tmp_path)}
    with pytest.raises(config.ConfigError, match="need PostgreSQL metadata"):
        config.from_environment({**home, "AIRGATE_BROKER_URL": "redis://127.0.0.1:6379/0"})
    with pytest.raises(config.ConfigError, match="got kafka scheme"):
        config.from_environment({**home, "AIRGATE_BROKER_URL": "kafka://127.0.0.1:9092",
                                 "AIRGATE_AIRFLOW_DATABASE_URL": "postgresql://x@y/z"})
    settings = config.from_environment({
        **home, "AIRGATE_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
        "AIRGATE_AIRFLOW_DATABASE_URL": "postgresql://x@y/z",
        "AIRGATE_WORKER_QUIET_SECONDS": "30"})
    assert settings.broker_url == "amqp://guest:guest@127.0.0.1:5672//"
    assert settings.worker_quiet_seconds == 30.0


def test_the_advertised_address_is_a_reachable_one(tmp_path: Path) -> None:
    from airgate import config
    from airgate.server import _reachable_endpoint

    home = {"AIRGATE_HOME": str(tmp_path)}
    for wildcard in ("0.0.0.0", "::", "10.0.0.5/24", "host name", "fd00::1"):
        with pytest.raises(config.ConfigError, match="advertise address"):
            config.from_environment({**home, "AIRGATE_ADVERTISE_ADDRESS": wildcard})
    settings = config.from_environment({**home, "AIRGATE_ADVERTISE_ADDRESS": "10.0.0.5",
                                        "AIRGATE_HOST": "0.0.0.0"})
    assert settings.advertise_address == "10.0.0.5"
    # Users and other gateways reach the fronts there; this machine's environments still
    # reach airgate's listener on loopback (plain HTTP is only for loopback, to SDKs).
    assert settings.reachable_host == "10.0.0.5"
    assert _reachable_endpoint(settings) == "http://127.0.0.1:8420"
    assert config.from_environment({**home, "AIRGATE_HOST": "0.0.0.0"}).reachable_host == \
        "127.0.0.1"
