"""IAM: one method per served operation, plain data in and out, no HTTP.

Input has been validated against botocore's iam model; the identity store (`Identities`)
keeps the rules the model can't express (names unique ignoring case, quotas, what may be
deleted). Outputs are as IAM's model has them, with one IAM habit kept: policy documents go
out URL-encoded (botocore decodes them in its `json_decode_policies` handler), as the
text that was given, never re-serialised.

List operations page with `MaxItems` (default 100) and an opaque `Marker`. `Tags` and
`Description` are accepted and not kept (tags still reach policy conditions as
aws:RequestTag); a `PermissionsBoundary` is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from airgate.auth.identities import POLICY_VERSION, IamError, Identities, PrincipalKind
from airgate.call import Call
from airgate.errors import ValidationException
from airgate.services.iam.arns import caller_user_name

DEFAULT_MAX_ITEMS = 100
_NO_SUCH_VERSION = "Policy {arn} version {version} does not exist or is not attachable."


def encoded(document: str) -> str:
    """A policy document as IAM sends it: percent-encoded, every byte but the unreserved."""
    return quote(document, safe="")


class IamProvider:
    def __init__(self, identities: Identities) -> None:
        self._identities = identities

    # --- users -----------------------------------------------------------------------

    def create_user(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        _refuse_boundary(params)
        return {"User": self._identities.create_user(params["UserName"],
                                                     params.get("Path", "/"))}

    def get_user(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        return {"User": self._identities.get_user(caller_user_name(params, call.principal))}

    def list_users(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        users = _under(self._identities.list_users(), params.get("PathPrefix"))
        return _page(users, params, "Users")

    def delete_user(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        self._identities.delete_user(params["UserName"])
        return {}

    # --- access keys -----------------------------------------------------------------

    def create_access_key(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        user = caller_user_name(params, call.principal)
        return {"AccessKey": self._identities.create_access_key(user)}

    def list_access_keys(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        keys = self._identities.list_access_keys(caller_user_name(params, call.principal))
        return _page(keys, params, "AccessKeyMetadata")

    def update_access_key(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        self._identities.update_access_key(caller_user_name(params, call.principal),
                                           params["AccessKeyId"], params["Status"])
        return {}

    def delete_access_key(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        self._identities.delete_access_key(caller_user_name(params, call.principal),
                                           params["AccessKeyId"])
        return {}

    # --- roles -----------------------------------------------------------------------

    def create_role(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        _refuse_boundary(params)
        role = self._identities.create_role(
            params["RoleName"], params["AssumeRolePolicyDocument"], params.get("Path", "/"),
            params.get("MaxSessionDuration", 3600))
        return {"Role": _role(role)}

    def get_role(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        return {"Role": _role(self._identities.get_role(params["RoleName"]))}

    def list_roles(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        roles = [_role(role) for role in _under(self._identities.list_roles(),
                                                params.get("PathPrefix"))]
        return _page(roles, params, "Roles")

    def delete_role(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        self._identities.delete_role(params["RoleName"])
        return {}

    def update_assume_role_policy(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        self._identities.update_assume_role_policy(params["RoleName"], params["PolicyDocument"])
        return {}

    # --- inline policies -------------------------------------------------------------

    def put_user_policy(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        return self._put_inline("user", params["UserName"], params)

    def get_user_policy(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        return self._get_inline("user", params["UserName"], params)

    def delete_user_policy(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        return self._delete_inline("user", params["UserName"], params)

    def list_user_policies(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        return self._list_inline("user", params["UserName"], params)

    def put_role_policy(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        return self._put_inline("role", params["RoleName"], params)

    def get_role_policy(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        return self._get_inline("role", params["RoleName"], params)

    def delete_role_policy(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        return self._delete_inline("role", params["RoleName"], params)

    def list_role_policies(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        return self._list_inline("role", params["RoleName"], params)

    def _put_inline(self, kind: PrincipalKind, owner: str,
                    params: dict[str, Any]) -> dict[str, Any]:
        self._identities.put_inline_policy(kind, owner, params["PolicyName"],
                                           params["PolicyDocument"])
        return {}

    def _get_inline(self, kind: PrincipalKind, owner: str,
                    params: dict[str, Any]) -> dict[str, Any]:
        policy = self._identities.inline_policy(kind, owner, params["PolicyName"])
        return {**policy, "PolicyDocument": encoded(policy["PolicyDocument"])}

    def _delete_inline(self, kind: PrincipalKind, owner: str,
                       params: dict[str, Any]) -> dict[str, Any]:
        self._identities.delete_inline_policy(kind, owner, params["PolicyName"])
        return {}

    def _list_inline(self, kind: PrincipalKind, owner: str,
                     params: dict[str, Any]) -> dict[str, Any]:
        return _page(self._identities.list_inline_policies(kind, owner), params, "PolicyNames")

    # --- managed policies ------------------------------------------------------------

    def create_policy(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        return {"Policy": self._identities.create_policy(
            params["PolicyName"], params["PolicyDocument"], params.get("Path", "/"))}

    def get_policy(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        return {"Policy": self._identities.get_policy(params["PolicyArn"])}

    def get_policy_version(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        arn, version = params["PolicyArn"], params["VersionId"]
        policy = self._identities.get_policy(arn)
        if version != POLICY_VERSION:
            raise IamError("NoSuchEntity", _NO_SUCH_VERSION.format(arn=arn, version=version))
        return {"PolicyVersion": {
            "Document": encoded(self._identities.policy_document(arn)),
            "VersionId": POLICY_VERSION, "IsDefaultVersion": True,
            "CreateDate": policy["CreateDate"]}}

    def list_policy_versions(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        policy = self._identities.get_policy(params["PolicyArn"])
        versions = [{"VersionId": POLICY_VERSION, "IsDefaultVersion": True,
                     "CreateDate": policy["CreateDate"]}]
        return _page(versions, params, "Versions")

    def list_policies(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        """Every policy here is the account's own (scope Local); AWS's managed policies
        are not kept."""
        policies = [] if params.get("Scope") == "AWS" else self._identities.list_policies()
        if params.get("OnlyAttached"):
            policies = [policy for policy in policies if policy["AttachmentCount"]]
        if params.get("PolicyUsageFilter") == "PermissionsBoundary":
            policies = []
        return _page(_under(policies, params.get("PathPrefix")), params, "Policies")

    def delete_policy(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        self._identities.delete_policy(params["PolicyArn"])
        return {}

    def attach_user_policy(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        self._identities.attach_policy("user", params["UserName"], params["PolicyArn"])
        return {}

    def detach_user_policy(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        self._identities.detach_policy("user", params["UserName"], params["PolicyArn"])
        return {}

    def list_attached_user_policies(self, params: dict[str, Any],
                                    call: Call) -> dict[str, Any]:
        return self._attached("user", params["UserName"], params)

    def attach_role_policy(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        self._identities.attach_policy("role", params["RoleName"], params["PolicyArn"])
        return {}

    def detach_role_policy(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        self._identities.detach_policy("role", params["RoleName"], params["PolicyArn"])
        return {}

    def list_attached_role_policies(self, params: dict[str, Any],
                                    call: Call) -> dict[str, Any]:
        return self._attached("role", params["RoleName"], params)

    def _attached(self, kind: PrincipalKind, owner: str,
                  params: dict[str, Any]) -> dict[str, Any]:
        prefix = params.get("PathPrefix")
        attached = self._identities.list_attached_policies(kind, owner)
        if prefix:
            account = self._identities.account_id
            attached = [policy for policy in attached if policy["PolicyArn"].startswith(
                f"arn:aws:iam::{account}:policy{prefix}")]
        return _page(attached, params, "AttachedPolicies")


def _refuse_boundary(params: dict[str, Any]) -> None:
    """A permissions boundary limits what an identity may do: ignoring one would grant more
    than was asked for, so it is refused rather than dropped."""
    if params.get("PermissionsBoundary"):
        raise ValidationException("airgate does not support permissions boundaries "
                                  "(PermissionsBoundary)")


def _role(role: dict[str, Any]) -> dict[str, Any]:
    return {**role, "AssumeRolePolicyDocument": encoded(role["AssumeRolePolicyDocument"])}


def _under(items: list[dict[str, Any]], prefix: str | None) -> list[dict[str, Any]]:
    """The entities whose path begins with `prefix` (all of them without one)."""
    return [item for item in items if item["Path"].startswith(prefix)] if prefix else items


def _page(items: Sequence[Any], params: dict[str, Any], member: str) -> dict[str, Any]:
    """One page of a list: MaxItems from the Marker on, IsTruncated and the next Marker."""
    start = _position(params["Marker"]) if params.get("Marker") else 0
    limit = params.get("MaxItems", DEFAULT_MAX_ITEMS)
    page: dict[str, Any] = {member: list(items[start:start + limit])}
    truncated = start + limit < len(items)
    page["IsTruncated"] = truncated
    if truncated:
        page["Marker"] = base64.urlsafe_b64encode(
            json.dumps({"at": start + limit}).encode()).decode()
    return page


def _position(marker: str) -> int:
    try:
        position = json.loads(base64.urlsafe_b64decode(marker))["at"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise ValidationException("Invalid Marker.") from None
    if not isinstance(position, int) or position < 0:
        raise ValidationException("Invalid Marker.")
    return position
