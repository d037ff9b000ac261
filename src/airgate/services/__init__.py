"""The AWS services airgate serves, behind the one interface the gateway iterates.

A service is its botocore model (operations, shapes, errors), the wire protocol that model
names (rest-json for MWAA, query for STS and IAM), a provider with one method per served
operation, and what IAM sees of each operation (action, resource, condition keys). The
gateway finds a request's service by the service its signature is scoped to (`airflow`,
`sts`, `iam`) and knows nothing else about any of them.

    mwaa       airgate.mwaa.service.MwaaService
    sts        airgate.services.sts.StsService
    iam        airgate.services.iam.IamService
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import botocore.session
from botocore import xform_name
from botocore.model import ServiceModel

from airgate.auth.authorize import Authorization, RequestFacts
from airgate.auth.identities import Principal
from airgate.auth.sigv4 import SignedRequest
from airgate.aws.wire import WireProtocol
from airgate.call import Call
from airgate.environments.store import EnvironmentRecord

# A provider's operation: (validated input, the call) -> output, or an awaitable of it.
Handler = Callable[[dict[str, Any], Call], Any]
# Where AWS serves a global service (IAM, STS's global endpoint), clients sign for this.
GLOBAL_SIGNING_REGION = "us-east-1"


@dataclass(frozen=True, slots=True)
class Authorized:
    """What the operation may act as, and what was read to decide it."""

    authorization: Authorization
    environment: EnvironmentRecord | None = None  # MWAA: the environment, as read then


class Service(Protocol):
    @property
    def model(self) -> ServiceModel: ...

    @property
    def wire(self) -> WireProtocol: ...

    @property
    def signing_name(self) -> str:
        """The service a signature's credential scope names."""
        ...

    @property
    def signing_regions(self) -> frozenset[str]:
        """The regions a signature may be scoped to."""
        ...

    def handler(self, operation: str) -> Handler | None:
        """The provider's method for an operation, or None if airgate does not serve it."""
        ...

    def authorize(self, operation: str, params: Mapping[str, Any], principal: Principal,
                  facts: RequestFacts, memory_only: bool) -> Authorized:
        """What the call is allowed as, or AccessDeniedException. With `memory_only`,
        NotCached where the answer would need the store (the gateway then asks again from
        a worker thread)."""
        ...


class ProviderService:
    """What services share: the model, the protocol, operations found on a provider object
    by their Python names (CreateUser -> create_user), and the regions signatures may name."""

    def __init__(self, model: ServiceModel, wire: WireProtocol, provider: object,
                 region: str) -> None:
        self._model = model
        self._wire = wire
        self._provider = provider
        regions = {region}
        if model.metadata.get("globalEndpoint"):
            regions.add(GLOBAL_SIGNING_REGION)
        self._regions = frozenset(regions)
        self._signing_name = str(model.signing_name)
        self._handlers: dict[str, Handler | None] = {}

    @property
    def model(self) -> ServiceModel:
        return self._model

    @property
    def wire(self) -> WireProtocol:
        return self._wire

    @property
    def signing_name(self) -> str:
        return self._signing_name

    @property
    def signing_regions(self) -> frozenset[str]:
        return self._regions

    def handler(self, operation: str) -> Handler | None:
        try:
            return self._handlers[operation]
        except KeyError:
            found = self._handlers[operation] = getattr(self._provider, xform_name(operation),
                                                        None)
            return found

    def served(self) -> list[str]:
        """The model's operations this service serves."""
        return [name for name in self._model.operation_names if self.handler(name) is not None]


@functools.cache
def service_model(name: str) -> ServiceModel:
    """botocore's model of a service, loaded once per process."""
    return botocore.session.get_session().get_service_model(name)


class Services:
    """The served services, found by a request's credential scope or, for a request without
    one, by what it looks like (so that its error speaks its service's language)."""

    def __init__(self, services: Iterable[Service], default: Service) -> None:
        self._by_signing_name = {service.signing_name: service for service in services}
        self._by_signing_name.setdefault(default.signing_name, default)
        self.default = default

    def __iter__(self) -> Iterator[Service]:
        return iter(self._by_signing_name.values())

    def for_request(self, request: SignedRequest, signed_for: str | None) -> Service:
        if signed_for is not None:
            service = self._by_signing_name.get(signed_for)
            if service is not None:
                return service
        for service in self._by_signing_name.values():
            if service is not self.default and service.wire.recognizes(request):
                return service
        return self.default
