"""STS as one of airgate's services, and what IAM sees of its calls.

- GetCallerIdentity needs no permission, and "if an administrator attaches a policy to your
  identity that explicitly denies access to the sts:GetCallerIdentity action, you can still
  perform this operation" (STS API reference).
- GetSessionToken is not controlled by policies either (it authenticates a user); the
  provider refuses callers with temporary credentials.
- AssumeRole is `sts:AssumeRole` on the role's ARN, decided by the role's trust policy and
  the caller's identity policies together, as AWS decides it within one account: an explicit
  Deny in either refuses; the trust policy must allow the caller; and unless it names the
  caller's own ARN (a user's, or a role session's), the caller's identity policies must
  allow it too (naming the account, `*` or the caller's role is not enough). A role that
  does not exist is refused the same way, as AWS does, without saying so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airgate.auth.authorize import Authorization, RequestFacts, base_context, decide, denial
from airgate.auth.identities import Identities, Principal
from airgate.auth.policy import AuthorizationRequest, Caller, Decision, evaluate_trust
from airgate.aws.query import QueryProtocol
from airgate.errors import UnknownOperationException
from airgate.services import Authorized, ProviderService, service_model
from airgate.services.sts.provider import StsProvider
from airgate.store.generations import NotCached

ASSUME_ROLE = "sts:AssumeRole"
_UNCONTROLLED = frozenset({"GetCallerIdentity", "GetSessionToken"})


class StsService(ProviderService):
    def __init__(self, region: str, identities: Identities) -> None:
        model = service_model("sts")
        self.provider = StsProvider(identities)
        super().__init__(model, QueryProtocol(model), self.provider, region)
        self._identities = identities
        self._region = region

    def authorize(self, operation: str, params: Mapping[str, Any], principal: Principal,
                  facts: RequestFacts, memory_only: bool) -> Authorized:
        if operation in _UNCONTROLLED:
            return Authorized(Authorization(f"sts:{operation}", "*"))
        if operation != "AssumeRole":
            raise UnknownOperationException(f"airgate does not serve {operation} yet")
        if memory_only:
            raise NotCached  # the role's trust policy is read from the store
        return Authorized(self._assume_role(params, principal, facts))

    def _assume_role(self, params: Mapping[str, Any], principal: Principal,
                     facts: RequestFacts) -> Authorization:
        role_arn = str(params["RoleArn"])
        context = base_context(principal, facts, self._identities.account_id, self._region)
        context["sts:RoleSessionName"] = params["RoleSessionName"]
        if params.get("ExternalId") is not None:
            context["sts:ExternalId"] = params["ExternalId"]
        request = AuthorizationRequest(ASSUME_ROLE, role_arn, context)
        trust_policy = self._identities.trust_policy(role_arn)
        if trust_policy is None:
            raise denial(principal, ASSUME_ROLE, role_arn)
        caller = Caller(self._identities.account_id, principal.arn,
                        principal.principal_arn if principal.kind == "AssumedRole" else None)
        trust = evaluate_trust(trust_policy, request, caller)
        identity = decide(principal, request)
        if identity is Decision.EXPLICIT_DENY or trust.decision is not Decision.ALLOW \
                or (not trust.names_caller and identity is not Decision.ALLOW):
            raise denial(principal, ASSUME_ROLE, role_arn)
        return Authorization(ASSUME_ROLE, role_arn)
