"""What `airgate worker` processes on other machines tell an environment's autoscaler:
how many Celery workers each runs for it, until when (a report not renewed in time no
longer counts, so a lost machine's workers are replaced).

A table of its own rather than the environment's runtime facts: reports from several
machines and the runner's own writes never overwrite each other.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select

from airgate.store.db import Database
from airgate.store.schema import WorkerReport

REPORT_SECONDS = 10.0  # how often a remote worker process reports
REPORT_VALID_SECONDS = 30.0  # how long a report counts without being renewed


class WorkerReports:
    def __init__(self, db: Database) -> None:
        self._db = db

    def report(self, environment: str, node: str, workers: int, now: float) -> None:
        with self._db.transaction() as session:
            row = session.get(WorkerReport, (environment, node), with_for_update=True)
            if row is None:
                session.add(WorkerReport(environment=environment, node=node, workers=workers,
                                         until=now + REPORT_VALID_SECONDS))
            else:
                row.workers, row.until = workers, now + REPORT_VALID_SECONDS

    def withdraw(self, environment: str, node: str) -> None:
        with self._db.transaction() as session:
            session.execute(delete(WorkerReport).where(WorkerReport.environment == environment,
                                                       WorkerReport.node == node))

    def remote_workers(self, environment: str, now: float) -> int:
        """Workers machines other than the runner's run for the environment now."""
        with self._db.reading() as session:
            total = session.scalar(select(func.sum(WorkerReport.workers)).where(
                WorkerReport.environment == environment, WorkerReport.until > now))
        return int(total or 0)

    def forget(self, environment: str) -> None:
        """The environment is gone: its reports too."""
        with self._db.transaction() as session:
            session.execute(delete(WorkerReport).where(WorkerReport.environment == environment))
