"""The MWAA service model, loaded from botocore, and routing of raw requests to operations.

botocore's `mwaa` model (2020-07-01, rest-json) is the single source of truth for routes and
shapes: nothing here names an operation or a path.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import unquote

import botocore.session
from botocore.model import OperationModel, ServiceModel

SERVICE_NAME = "mwaa"


@functools.cache
def service_model() -> ServiceModel:
    """The botocore model of MWAA; loaded once per process."""
    return botocore.session.get_session().get_service_model(SERVICE_NAME)


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
