"""Authorisation that knows no service: what every request contributes to the condition
context, and whether a principal may perform an action on a resource.

Each service says which action, resource and service-specific condition keys an operation
is (`airgate.mwaa.service`, `airgate.services.sts`, `airgate.services.iam`); this module
says what the caller's policies make of that. A role session with session policies may do
only what both its role's policies and its session policies allow (the intersection AWS
describes under "Session policies"); an explicit Deny in either wins.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from airgate.auth.identities import Principal
from airgate.auth.policy import AuthorizationRequest, ContextValue, Decision, evaluate
from airgate.errors import AccessDeniedException

__all__ = ["Authorization", "RequestFacts", "base_context", "decide", "denial",
           "require"]


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
    airflow_role: str | None = None  # MWAA's role-scoped operations: the role chosen


def base_context(principal: Principal, facts: RequestFacts, account_id: str,
                 region: str) -> dict[str, ContextValue]:
    """The global condition keys (aws:...) of a request, for any service."""
    context: dict[str, ContextValue] = {
        "aws:userid": principal.user_id,
        "aws:PrincipalArn": principal.principal_arn,
        "aws:PrincipalType": principal.kind,
        "aws:PrincipalAccount": account_id,
        "aws:SourceIp": facts.source_ip,
        "aws:CurrentTime": facts.now,
        "aws:EpochTime": int(facts.now.timestamp()),
        "aws:SecureTransport": facts.secure_transport,
        "aws:RequestedRegion": region,
    }
    if principal.username is not None:
        context["aws:username"] = principal.username
    return context


def decide(principal: Principal, request: AuthorizationRequest) -> Decision:
    """The principal's policies, narrowed by its session policies if it has any."""
    decision = evaluate(principal.policies, request)
    if not principal.session_policies or decision is Decision.EXPLICIT_DENY:
        return decision
    session = evaluate(principal.session_policies, request)
    if session is Decision.EXPLICIT_DENY:
        return session
    return decision if session is Decision.ALLOW else Decision.IMPLICIT_DENY


def denial(principal: Principal, action: str, resource: str,
           reason: str = "") -> AccessDeniedException:
    """AWS's words for a refusal (each protocol gives it its service's code)."""
    return AccessDeniedException(f"User: {principal.arn} is not authorized to perform: "
                                 f"{action} on resource: {resource}{reason}")


def require(principal: Principal, action: str, resource: str,
            context: dict[str, ContextValue]) -> Authorization:
    """The authorization if the principal's policies allow it, else AccessDeniedException."""
    if decide(principal, AuthorizationRequest(action, resource, context)) is not Decision.ALLOW:
        raise denial(principal, action, resource)
    return Authorization(action, resource)

