"""The IAM resources an IAM call is about, as ARNs, and the user a call without a
`UserName` is about."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airgate.auth.identities import Principal
from airgate.errors import ValidationException


def user_arn(account_id: str, name: str, path: str = "/") -> str:
    return f"arn:aws:iam::{account_id}:user{path}{name}"


def role_arn(account_id: str, name: str, path: str = "/") -> str:
    return f"arn:aws:iam::{account_id}:role{path}{name}"


def policy_arn(account_id: str, name: str, path: str = "/") -> str:
    return f"arn:aws:iam::{account_id}:policy{path}{name}"


def caller_user_name(params: Mapping[str, Any], principal: Principal) -> str:
    """`UserName`, or, left out, the calling user's own name ("IAM determines the user name
    implicitly based on the Amazon Web Services access key ID signing the request")."""
    name = params.get("UserName")
    if name:
        return str(name)
    if principal.kind != "User" or principal.username is None:
        raise ValidationException("Must specify userName when calling with non-User "
                                  "credentials")
    return principal.username
