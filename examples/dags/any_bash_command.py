"""Runs the bash command given in the DAG run's conf under `command`.

Trigger it with conf {"command": "echo hello"}, e.g. through MWAA's InvokeRestApi:
POST /dags/any_bash_command/dagRuns with {"logical_date": null, "conf": {"command": "..."}}.
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

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
