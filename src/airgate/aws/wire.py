"""What every wire protocol does for the gateway: read a request into an operation and its
input, and write a result or an error as the service's clients expect it.

One implementation per AWS protocol, each driven by a botocore service model: rest-json
(`airgate.aws.protocol`, MWAA) and query (`airgate.aws.query`, IAM and STS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.model import OperationModel

from airgate.auth.sigv4 import QueryParameter, SignedRequest
from airgate.errors import ServiceError


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    error_code: str | None = None  # the code on the wire, for the access log


class WireProtocol(Protocol):
    def read(self, request: SignedRequest, query: Sequence[QueryParameter]
             ) -> tuple[OperationModel, dict[str, Any]]:
        """The operation a request calls and its input, validated against the model.

        `query` is the query string as `sigv4.query_parameters` read it for the signature.
        Raises UnknownOperationException, ValidationException (or another client error).
        """
        ...

    def write(self, operation: OperationModel, result: Mapping[str, Any],
              request_id: str) -> Response:
        """A successful answer carrying `result`."""
        ...

    def write_error(self, error: ServiceError, request_id: str) -> Response:
        """An error answer the service's clients parse into this code and message."""
        ...

    def recognizes(self, request: SignedRequest) -> bool:
        """Whether an unsigned request looks like one of this protocol's service (so that
        its errors are answered in that service's words)."""
        ...
