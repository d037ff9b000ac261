"""MWAA as one of airgate's services: its model and rest-json, its provider, and what IAM
sees of each of its calls.

Actions are `airflow:<OperationName>`; resources are as MWAA's service authorization
reference defines them: the environment ARN for most operations, `*` for ListEnvironments,
and the Airflow role ARN `role/ENVIRONMENT/AIRFLOW_ROLE` for InvokeRestApi and
CreateWebLoginToken, where the first Airflow role allowed (Admin, Op, User, Viewer, Public)
becomes the role the caller acts as.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airgate.auth.authorize import Authorization, RequestFacts, base_context, decide, denial
from airgate.auth.identities import Principal
from airgate.auth.policy import AuthorizationRequest, ContextValue, Decision
from airgate.aws.protocol import RestJsonProtocol
from airgate.aws.spec import router, service_model
from airgate.environments.store import EnvironmentStore, check_tag_keys
from airgate.errors import AccessDeniedException
from airgate.mwaa.arns import AIRFLOW_ROLES, airflow_role_arn, environment_arn
from airgate.mwaa.provider import MwaaProvider
from airgate.services import Authorized, ProviderService

ROLE_SCOPED_OPERATIONS = frozenset({"InvokeRestApi", "CreateWebLoginToken"})
_UNSCOPED_OPERATIONS = frozenset({"ListEnvironments"})


class MwaaAuthorizer:
    """Which action and resource an MWAA call is, and whether the caller may make it."""

    def __init__(self, region: str, account_id: str) -> None:
        self._region = region
        self._account = account_id

    def environment_of(self, params: Mapping[str, Any]) -> str | None:
        """The environment a call is about, named directly or by ARN."""
        if "Name" in params:
            return str(params["Name"])
        if "EnvironmentName" in params:
            return str(params["EnvironmentName"])
        arn = params.get("ResourceArn")
        prefix = environment_arn(self._region, self._account, "")
        if isinstance(arn, str) and arn.startswith(prefix):
            return arn[len(prefix):] or None
        return None

    def authorize(self, operation: str, params: Mapping[str, Any], principal: Principal,
                  facts: RequestFacts,
                  resource_tags: Mapping[str, str] | None = None) -> Authorization:
        """The action and resource allowed, or AccessDeniedException (ValidationException
        for request tags whose keys differ only in case). `resource_tags` are the tags of the
        environment the call is about, if it exists."""
        action = f"airflow:{operation}"
        environment = self.environment_of(params)
        context = self._context(operation, params, principal, facts, resource_tags)
        if operation in ROLE_SCOPED_OPERATIONS:
            return self._choose_airflow_role(action, environment or "", principal, context)
        if operation in _UNSCOPED_OPERATIONS:
            resource = "*"
        elif "ResourceArn" in params:
            resource = str(params["ResourceArn"])
        else:
            resource = environment_arn(self._region, self._account, environment or "")
        request = AuthorizationRequest(action, resource, context)
        if decide(principal, request) is not Decision.ALLOW:
            raise denial(principal, action, resource)
        return Authorization(action, resource)

    def _choose_airflow_role(self, action: str, environment: str, principal: Principal,
                             context: Mapping[str, ContextValue]) -> Authorization:
        for role in AIRFLOW_ROLES:
            resource = airflow_role_arn(self._region, self._account, environment, role)
            decision = decide(principal, AuthorizationRequest(action, resource, context))
            if decision is Decision.ALLOW:
                return Authorization(action, resource, airflow_role=role)
        resource = airflow_role_arn(self._region, self._account, environment, "*")
        raise AccessDeniedException(
            f"User: {principal.arn} is not authorized to perform: {action} on resource: "
            f"{resource}: no Airflow role in environment {environment} is allowed for this "
            "identity")

    def _context(self, operation: str, params: Mapping[str, Any], principal: Principal,
                 facts: RequestFacts,
                 resource_tags: Mapping[str, str] | None) -> dict[str, ContextValue]:
        context = base_context(principal, facts, self._account, self._region)
        for key, value in (resource_tags or {}).items():
            context[f"aws:ResourceTag/{key}"] = value
        request_tags: Mapping[str, str] = params.get("Tags") or {}
        # Keys equal ignoring case would be one aws:RequestTag/KEY: refused before a policy
        # sees only one of them. (Against the environment's tags, the store checks after
        # authorisation: the answer would otherwise tell any caller which keys it has.)
        check_tag_keys(request_tags)
        for key, value in request_tags.items():
            context[f"aws:RequestTag/{key}"] = value
        if operation in ("CreateEnvironment", "TagResource"):
            context["aws:TagKeys"] = list(request_tags)
        elif operation == "UntagResource":
            context["aws:TagKeys"] = list(params.get("tagKeys") or [])
        return context


class MwaaService(ProviderService):
    """MWAA: rest-json, signed for `airflow`. Its calls are authorised from memory (the
    environment's tags come from the environment cache), so that InvokeRestApi's whole
    preparation runs on the event loop."""

    def __init__(self, region: str, account_id: str, environments: EnvironmentStore,
                 provider: MwaaProvider) -> None:
        model = service_model()
        super().__init__(model, RestJsonProtocol(model, router()), provider, region)
        self.authorizer = MwaaAuthorizer(region, account_id)
        self._environments = environments

    def authorize(self, operation: str, params: Mapping[str, Any], principal: Principal,
                  facts: RequestFacts, memory_only: bool) -> Authorized:
        # The environment is read once per call: for its tags here, and for the operation.
        name = self.authorizer.environment_of(params)
        environment = self._environments.cached(name, memory_only) if name else None
        authorization = self.authorizer.authorize(
            operation, params, principal, facts, environment.tags if environment else None)
        return Authorized(authorization, environment)
