"""`Schedulers`: that many scheduler processes with PostgreSQL metadata, one with SQLite."""

from __future__ import annotations

from airgate.airflow.major import Ports
from airgate.airflow.v2 import AIRFLOW_2
from airgate.airflow.v3 import AIRFLOW_3
from airgate.environments.airflow_config import components

PORTS = Ports(api=1, web=2, worker_logs=3, trigger_logs=4)


def test_extra_schedulers_run_on_postgresql_only_and_serve_no_logs() -> None:
    spec = {"Schedulers": 3}
    on_server = dict(components(spec, AIRFLOW_3, PORTS, metadata_on_server=True))
    assert list(on_server) == ["api-server", "scheduler", "dag-processor", "triggerer",
                               "scheduler-2", "scheduler-3"]
    assert on_server["scheduler"] == ["scheduler"]
    assert on_server["scheduler-3"] == ["scheduler", "--skip-serve-logs"]
    on_sqlite = dict(components(spec, AIRFLOW_3, PORTS, metadata_on_server=False))
    assert [name for name in on_sqlite if name.startswith("scheduler")] == ["scheduler"]
    airflow_2 = dict(components({"Schedulers": 2}, AIRFLOW_2, PORTS, metadata_on_server=True))
    assert list(airflow_2) == ["webserver", "scheduler", "triggerer", "scheduler-2"]
    assert list(dict(components({}, AIRFLOW_3, PORTS, True))) == [
        "api-server", "scheduler", "dag-processor", "triggerer"]
