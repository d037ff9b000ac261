"""What is true right now, read at each scrape: each environment's status, whether each of
its components runs and how often it was restarted, and InvokeRestApi admission."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from airgate.environments.store import EnvironmentStore
from airgate.environments.supervisor import ComponentState
from airgate.mwaa.admission import Admission

# Per environment, per component (scheduler, api-server, ...): what runs on this machine.
ComponentStates = Callable[[], Mapping[str, Mapping[str, ComponentState]]]
# Per Celery environment run here: (workers running, tasks queued).
WorkerCounts = Callable[[], Mapping[str, tuple[int, int]]]


@functools.cache
def environment_statuses() -> tuple[str, ...]:
    """Every status MWAA's model names, so a status series exists (as 0) before it is 1."""
    from airgate.services import service_model

    return tuple(service_model("mwaa").shape_for("EnvironmentStatus").enum)


class EnvironmentState(Collector):
    def __init__(self, store: EnvironmentStore, components: ComponentStates | None = None,
                 admission: Admission | None = None,
                 workers: WorkerCounts | None = None) -> None:
        self._store = store
        self._workers = workers
        self._components = components
        self._admission = admission

    def collect(self) -> Iterator[Metric]:
        records = self._store.all()
        status = GaugeMetricFamily(
            "airgate_environment_status", "1 for the environment's current status, 0 for "
            "the others", labels=["environment", "status"])
        for record in records:
            for name in environment_statuses():
                status.add_metric([record.name, name], 1.0 if record.status == name else 0.0)
        yield status

        up = GaugeMetricFamily("airgate_environment_component_up", "1 while the component's "
                               "process runs", labels=["environment", "component"])
        restarts = CounterMetricFamily(
            "airgate_environment_component_restarts", "Times airgate restarted the "
            "component after it exited, since the environment last started",
            labels=["environment", "component"])
        for environment, components in (self._components() if self._components else
                                        {}).items():
            for component, state in sorted(components.items()):
                up.add_metric([environment, component], 1.0 if state.up else 0.0)
                restarts.add_metric([environment, component], float(state.restarts))
        yield up
        yield restarts

        workers = GaugeMetricFamily("airgate_environment_workers", "Celery workers running "
                                    "for the environment (its autoscaler's doing)",
                                    labels=["environment"])
        queued = GaugeMetricFamily("airgate_environment_queued_tasks", "The environment's "
                                   "task instances queued for a worker", labels=["environment"])
        for environment, (running, waiting) in sorted(
                (self._workers() if self._workers else {}).items()):
            workers.add_metric([environment], float(running))
            queued.add_metric([environment], float(waiting))
        yield workers
        yield queued

        limit = GaugeMetricFamily("airgate_rest_api_admission_limit", "InvokeRestApi calls "
                                  "admission lets in at once (learned from latency)",
                                  labels=["environment"])
        in_flight = GaugeMetricFamily("airgate_rest_api_in_flight", "InvokeRestApi calls "
                                      "in Airflow's hands now", labels=["environment"])
        if self._admission is not None:
            known = {record.name for record in records}
            for environment in self._admission.environments():
                if environment in known:
                    limit.add_metric([environment], self._admission.limit_of(environment))
                    in_flight.add_metric([environment],
                                         float(self._admission.in_flight(environment)))
        yield limit
        yield in_flight
