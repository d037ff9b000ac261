"""Runs the bash command given in the DAG run's conf under `command` (Airflow 2).

Trigger it with conf {"command": "echo hello"}, e.g. through MWAA's InvokeRestApi:
POST /dags/any_bash_command/dagRuns with {"conf": {"command": "..."}} (Airflow 2's API
needs no logical date: the run is for now).
"""

from __future__ import annotations

import pendulum
from airflow import DAG
from airflow.operators.bash import BashOperator

with DAG(
    dag_id="any_bash_command",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"command": "echo 'no command given'"},
    tags=["airgate", "example"],
) as dag:
    BashOperator(
        task_id="trigger_bash_command",
        # The command comes from the run's conf (params are overridden by conf).
        bash_command="{{ dag_run.conf.get('command', params.command) }}",
    )
