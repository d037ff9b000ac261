"""Which IAM action and resource each MWAA call is, and whether the caller may make it.

Actions are `airflow:<OperationName>`; resources are as MWAA's service authorization
reference defines them: the environment ARN for most operations, `*` for ListEnvironments,
and the Airflow role ARN `role/ENVIRONMENT/AIRFLOW_ROLE` for InvokeRestApi and
CreateWebLoginToken, where the first Airflow role allowed (Admin, Op, User, Viewer, Public)
becomes the role the caller acts as.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airgate.auth.identities import Principal
from airgate.auth.policy import AuthorizationRequest, ContextValue, Decision, evaluate
from airgate.environments.store import check_tag_keys
from airgate.errors import AccessDeniedException
from airgate.mwaa.arns import AIRFLOW_ROLES, airflow_role_arn, environment_arn

ROLE_SCOPED_OPERATIONS = frozenset({"InvokeRestApi", "CreateWebLoginToken"})
_UNSCOPED_OPERATIONS = frozenset({"ListEnvironments"})


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the request itself contributes to the condition context."""

    source_ip: str
    secure_transport: bool
    now: datetime.datetime


@dataclass(frozen=True, slots=True)
class Authorization:
    action: str
    resource: str
    airflow_role: str | None = None  # for role-scoped operations: the role chosen


class Authorizer:
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
        if evaluate(principal.policies, request) is not Decision.ALLOW:
            raise AccessDeniedException(
                f"User: {principal.arn} is not authorized to perform: {action} on resource: "
                f"{resource}")
        return Authorization(action, resource)

    def _choose_airflow_role(self, action: str, environment: str, principal: Principal,
                             context: Mapping[str, ContextValue]) -> Authorization:
        for role in AIRFLOW_ROLES:
            resource = airflow_role_arn(self._region, self._account, environment, role)
            decision = evaluate(principal.policies, AuthorizationRequest(action, resource,
                                                                         context))
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
        context: dict[str, ContextValue] = {
            "aws:userid": principal.user_id,
            "aws:PrincipalArn": principal.principal_arn,
            "aws:PrincipalType": principal.kind,
            "aws:PrincipalAccount": self._account,
            "aws:SourceIp": facts.source_ip,
            "aws:CurrentTime": facts.now,
            "aws:EpochTime": int(facts.now.timestamp()),
            "aws:SecureTransport": facts.secure_transport,
            "aws:RequestedRegion": self._region,
        }
        if principal.username is not None:
            context["aws:username"] = principal.username
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

