"""An ETL pipeline scheduled on the data lake (Airflow 2): it runs when new files have
landed, and one run processes every file whose dataset event arrived before it was
scheduled.

New files are announced as dataset events on the data-lake dataset, each carrying the
file's location in its `extra` (mwaa_dataset_client.py, or dataset_event_lambda.py on S3 PUT
notifications). Airflow's scheduler batches them: a run takes every event on the dataset
since the previous run, up to the one that queued it. Events for a paused DAG are recorded
but don't queue it (Airflow >= 2.9): after unpausing, the next event starts a run that takes
them all. `max_active_runs=1` keeps loads from overlapping.
"""

from __future__ import annotations

import logging
import os

import pendulum
from airflow.datasets import Dataset
from airflow.decorators import dag, task

# The data lake: set DATALAKE_URI (e.g. in the environment's startup script) to your own.
DATALAKE = Dataset(os.environ.get("DATALAKE_URI", "s3://airgate-example-lake/datalake"))
log = logging.getLogger(__name__)


@dag(
    dag_id="data_aware_pipeline",
    schedule=[DATALAKE],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["airgate", "example", "data-aware"],
)
def data_aware_pipeline() -> None:
    @task
    def get_resources(**context: object) -> list[str]:
        """The locations of the new files, in the order they arrived: the `extra` of every
        event behind this run."""
        events = context["triggering_dataset_events"]
        arrived = sorted(
            (event for dataset_events in events.values()  # type: ignore[attr-defined]
             for event in dataset_events),
            key=lambda event: event.timestamp)
        return [str(event.extra["location"]) for event in arrived
                if (event.extra or {}).get("location")]

    @task
    def extract(locations: list[str]) -> list[dict[str, str]]:
        log.info("batched %d dataset events: %s", len(locations), ", ".join(locations))
        # A real pipeline reads each file here (e.g. with the Amazon provider's S3Hook).
        return [{"location": location} for location in locations]

    @task
    def transform(records: list[dict[str, str]]) -> list[dict[str, str]]:
        return [{**record, "status": "transformed"} for record in records]

    @task
    def load(records: list[dict[str, str]]) -> int:
        log.info("loaded %d records", len(records))
        return len(records)

    load(transform(extract(get_resources())))


data_aware_pipeline()
