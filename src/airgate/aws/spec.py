"""The MWAA service model, loaded from botocore, and routing of raw requests to operations.

botocore's `mwaa` model (2020-07-01, rest-json) is the single source of truth for routes and
shapes: nothing here names an operation or a path. Where the model and what the service's
real clients send disagree, the clients win, through the few named corrections in
MODEL_CORRECTIONS, applied as the model is loaded.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import botocore.session
from botocore.model import OperationModel, ServiceModel

SERVICE_NAME = "mwaa"


@dataclass(frozen=True, slots=True)
class ModelCorrection:
    """One trait of one shape in a service's model where botocore is stricter than the
    service and its real clients: the value the model has (applied only while the model
    still has it, so that a botocore which changes the trait is taken as it is;
    tests/unit/test_model_corrections.py fails when a correction no longer applies), the
    value used instead, and why."""

    service: str
    shape: str
    trait: str
    model_value: Any
    value: Any
    reason: str


MODEL_CORRECTIONS = (
    ModelCorrection(
        "mwaa", "RestApiPath", "max", 64, 2048,
        "InvokeRestApi's Path. The model says 64 characters, but MWAA does not enforce it "
        "(botocore checks only the minimum), and Airflow's own Amazon provider, written and "
        "tested against MWAA, sends longer paths: MwaaDagRunSensor and the "
        "mwaa_dag_run_complete waiter GET /dags/{dag_id}/dagRuns/{run_id} (a default run id "
        "alone is 40 characters), MwaaTaskSensor adds /taskInstances/{task_id}, and a task's "
        "log is below that. 2048 leaves room for Airflow's longest routes with long ids and "
        "a query string."),
)


def corrected(service: str, description: dict[str, Any]) -> dict[str, Any]:
    """A copy of a service's description with its MODEL_CORRECTIONS applied."""
    description = copy.deepcopy(description)
    shapes = description.get("shapes", {})
    for correction in MODEL_CORRECTIONS:
        if correction.service != service:
            continue
        shape = shapes.get(correction.shape)
        if shape is not None and shape.get(correction.trait) == correction.model_value:
            shape[correction.trait] = correction.value
    return description


@functools.cache
def service_model() -> ServiceModel:
    """The botocore model of MWAA, corrected; loaded once per process."""
    description = botocore.session.get_session().get_service_data(SERVICE_NAME)
    return ServiceModel(corrected(SERVICE_NAME, description), service_name=SERVICE_NAME)


@dataclass(frozen=True, slots=True)
class RouteMatch:
    operation: OperationModel
    uri_params: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    segments: tuple[str, ...]  # literal segments, or "{Label}" / "{Label+}" for labels
    operation: OperationModel

    @property
    def literal_count(self) -> int:
        return sum(1 for s in self.segments if not s.startswith("{"))

    def match(self, raw_segments: list[str]) -> dict[str, str] | None:
        params: dict[str, str] = {}
        for index, pattern in enumerate(self.segments):
            if pattern.endswith("+}"):
                rest = raw_segments[index:]
                if not rest or rest == [""]:
                    return None
                params[pattern[1:-2]] = unquote("/".join(rest))
                return params
            if index >= len(raw_segments):
                return None
            segment = raw_segments[index]
            if pattern.startswith("{"):
                if not segment:
                    return None
                params[pattern[1:-1]] = unquote(segment)
            elif segment != pattern:
                return None
        return params if len(raw_segments) == len(self.segments) else None


class Router:
    """Maps (method, raw path) to an operation using each operation's `requestUri`.

    Matching is done on the raw (still percent-encoded) path so that an encoded `/` inside a
    label such as an ARN stays inside that label.
    """

    def __init__(self, model: ServiceModel) -> None:
        routes = []
        for name in model.operation_names:
            operation = model.operation_model(name)
            uri = operation.http["requestUri"].split("?", 1)[0]
            segments = tuple(uri.strip("/").split("/")) if uri.strip("/") else ()
            routes.append(_Route(operation.http["method"], segments, operation))
        # More literal segments first: /environments before /environments/{Name} is not an
        # issue (lengths differ), but a literal must beat a label of the same length.
        self._routes = sorted(routes, key=lambda r: -r.literal_count)

    def match(self, method: str, raw_path: str) -> RouteMatch | None:
        if not raw_path.startswith("/"):
            return None
        raw_segments = raw_path[1:].split("/") if raw_path != "/" else []
        for route in self._routes:
            if route.method != method:
                continue
            params = route.match(raw_segments)
            if params is not None:
                return RouteMatch(route.operation, params)
        return None


@functools.cache
def router() -> Router:
    return Router(service_model())
