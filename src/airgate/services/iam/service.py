"""IAM as one of airgate's services, and what IAM sees of its own calls.

Each call is `iam:<Operation>` on the resource IAM's Service Authorization Reference names
for it: the user's ARN (with its path) for user, access-key and user-policy operations, the
role's for role operations, the managed policy's for policy operations, and `*` for
ListUsers, ListRoles and ListPolicies. Attaching and detaching carry `iam:PolicyARN`; a
request with `Tags` carries `aws:RequestTag/KEY` and `aws:TagKeys`.

IAM is global: clients sign for us-east-1 (or, given an endpoint URL, for their own
region, airgate's). Temporary credentials from GetSessionToken can't call IAM without MFA,
which airgate does not have: AWS answers them InvalidClientTokenId, and so does airgate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from airgate.auth.authorize import Authorization, RequestFacts, base_context, require
from airgate.auth.identities import IamError, Identities, Principal
from airgate.aws.query import QueryProtocol
from airgate.errors import UnknownOperationException, UnrecognizedClientException
from airgate.services import Authorized, Handler, ProviderService, service_model
from airgate.services.iam import arns
from airgate.services.iam.provider import IamProvider
from airgate.store.generations import NotCached

_Resource = Callable[["IamService", Mapping[str, Any], Principal], str]


def _user(service: IamService, params: Mapping[str, Any], principal: Principal) -> str:
    return service.user_arn(arns.caller_user_name(params, principal))


def _new_user(service: IamService, params: Mapping[str, Any], principal: Principal) -> str:
    return arns.user_arn(service.account_id, params["UserName"], params.get("Path", "/"))


def _role(service: IamService, params: Mapping[str, Any], principal: Principal) -> str:
    return service.role_arn(params["RoleName"])


def _new_role(service: IamService, params: Mapping[str, Any], principal: Principal) -> str:
    return arns.role_arn(service.account_id, params["RoleName"], params.get("Path", "/"))


def _policy(service: IamService, params: Mapping[str, Any], principal: Principal) -> str:
    return str(params["PolicyArn"])


def _new_policy(service: IamService, params: Mapping[str, Any], principal: Principal) -> str:
    return arns.policy_arn(service.account_id, params["PolicyName"], params.get("Path", "/"))


def _everything(service: IamService, params: Mapping[str, Any], principal: Principal) -> str:
    return "*"


# Every served operation and the resource it is authorised on; the provider has one
# method for each (tests/unit/test_iam_service.py holds the two together).
RESOURCES: dict[str, _Resource] = {
    "CreateUser": _new_user, "GetUser": _user, "ListUsers": _everything,
    "DeleteUser": _user,
    "CreateAccessKey": _user, "ListAccessKeys": _user, "UpdateAccessKey": _user,
    "DeleteAccessKey": _user,
    "PutUserPolicy": _user, "GetUserPolicy": _user, "DeleteUserPolicy": _user,
    "ListUserPolicies": _user,
    "AttachUserPolicy": _user, "DetachUserPolicy": _user, "ListAttachedUserPolicies": _user,
    "CreateRole": _new_role, "GetRole": _role, "ListRoles": _everything,
    "DeleteRole": _role, "UpdateAssumeRolePolicy": _role,
    "PutRolePolicy": _role, "GetRolePolicy": _role, "DeleteRolePolicy": _role,
    "ListRolePolicies": _role,
    "AttachRolePolicy": _role, "DetachRolePolicy": _role, "ListAttachedRolePolicies": _role,
    "CreatePolicy": _new_policy, "GetPolicy": _policy, "GetPolicyVersion": _policy,
    "ListPolicyVersions": _policy, "ListPolicies": _everything, "DeletePolicy": _policy,
}


class IamService(ProviderService):
    def __init__(self, region: str, identities: Identities) -> None:
        model = service_model("iam")
        self.provider = IamProvider(identities)
        super().__init__(model, QueryProtocol(model), self.provider, region)
        self._identities = identities
        self._region = region
        self.account_id = identities.account_id

    def handler(self, operation: str) -> Handler | None:
        """Only operations with a resource in RESOURCES are served."""
        return super().handler(operation) if operation in RESOURCES else None

    def authorize(self, operation: str, params: Mapping[str, Any], principal: Principal,
                  facts: RequestFacts, memory_only: bool) -> Authorized:
        resource_of = RESOURCES.get(operation)
        if resource_of is None:
            raise UnknownOperationException(f"airgate does not serve {operation} yet")
        if principal.temporary and principal.kind == "User":
            raise UnrecognizedClientException("The security token included in the request "
                                              "is invalid.")
        if memory_only:
            raise NotCached  # resources' paths are read from the store
        context = base_context(principal, facts, self.account_id, self._region)
        if "PolicyArn" in params and operation.startswith(("Attach", "Detach")):
            context["iam:PolicyARN"] = params["PolicyArn"]
        tags = params.get("Tags")
        if tags is not None:
            for tag in tags:
                context[f"aws:RequestTag/{tag['Key']}"] = tag["Value"]
            context["aws:TagKeys"] = [tag["Key"] for tag in tags]
        action = f"iam:{operation}"
        authorization: Authorization = require(principal, action,
                                               resource_of(self, params, principal), context)
        return Authorized(authorization)

    def user_arn(self, name: str) -> str:
        """The user's ARN with its path; `user/NAME` for a user that does not exist."""
        try:
            found = self._identities.user_arn_of(name)
        except IamError:  # names that differ only in case, from an older store
            found = None
        return found or arns.user_arn(self.account_id, name)

    def role_arn(self, name: str) -> str:
        try:
            found = self._identities.role_arn_of(name)
        except IamError:
            found = None
        return found or arns.role_arn(self.account_id, name)
