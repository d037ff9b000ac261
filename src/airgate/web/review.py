"""Whether a web session may go on: its IAM identity still exists, is the same identity
(not deleted and made again under its name), and its policies still allow
`airflow:CreateWebLoginToken` on `role/ENVIRONMENT/AIRFLOW_ROLE` for the session's Airflow
role. Asked when a session starts and again every few minutes while it is used, so that a
12-hour session does not outlive the permission that granted it.

The identity is what the web-login token names (`user/alice`, `assumed-role/Role/session`);
its principal is read back from the store, and the decision is the Authorizer's own, for the
request now being made (its source address and scheme, the current time and the
environment's tags).
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from airgate.auth.authorize import RequestFacts
from airgate.auth.identities import IamError, Identities, Principal, PrincipalKind
from airgate.auth.policy import Policy, parse_policy
from airgate.environments.store import EnvironmentStore
from airgate.errors import AccessDeniedException
from airgate.mwaa.arns import AIRFLOW_ROLES, airflow_role_arn
from airgate.mwaa.service import MwaaAuthorizer

ACTION = "airflow:CreateWebLoginToken"


class IamReview:
    def __init__(self, identities: Identities, authorizer: MwaaAuthorizer,
                 environments: EnvironmentStore, region: str) -> None:
        self._identities = identities
        self._authorizer = authorizer
        self._environments = environments
        self._region = region

    def __call__(self, environment: str, identity: str, airflow_role: str,
                 source_ip: str, secure: bool) -> str | None:
        """The identity's principal id (AIDA..., AROA...:session) if it may be signed in to
        `environment` as `airflow_role` now, else None."""
        principal = self.principal(identity)
        record = self._environments.cached(environment)
        if principal is None or record is None:
            return None
        # Only the session's role may be chosen: every other Airflow role is denied, so the
        # Authorizer's choice is the session's role exactly when that role is allowed.
        narrowed = dataclasses.replace(
            principal, policies=(*principal.policies, self._deny_except(environment,
                                                                         airflow_role)))
        facts = RequestFacts(source_ip, secure, datetime.datetime.now(datetime.UTC))
        try:
            self._authorizer.authorize("CreateWebLoginToken", {"Name": environment},
                                       narrowed, facts, record.tags)
        except AccessDeniedException:
            return None
        return principal.user_id

    def principal(self, identity: str) -> Principal | None:
        """The principal `identity` names now, with its policies; None if it is gone."""
        kind, _, rest = identity.partition("/")
        account = self._identities.account_id
        try:
            if kind == "user":
                name = rest.rsplit("/", 1)[-1]
                user = self._identities.get_user(name)
                arn = f"arn:aws:iam::{account}:{identity}"
                if user["Arn"] != arn:
                    return None
                return Principal("User", arn, arn, user["UserId"], user["UserName"],
                                 self._policies("user", name))
            if kind == "assumed-role":
                role_name, _, session = rest.partition("/")
                role = self._identities.get_role(role_name)
                if role["RoleName"] != role_name:
                    return None
                return Principal("AssumedRole", f"arn:aws:sts::{account}:{identity}",
                                 role["Arn"], f"{role['RoleId']}:{session}", None,
                                 self._policies("role", role_name))
        except IamError:  # NoSuchEntity: deleted
            return None
        return None

    def _policies(self, kind: PrincipalKind, name: str) -> tuple[Policy, ...]:
        documents: list[Any] = []
        for policy_name in self._identities.list_inline_policies(kind, name):
            try:
                documents.append(self._identities.get_inline_policy(
                    kind, name, policy_name)["PolicyDocument"])
            except IamError:  # deleted since listed: no longer one of its policies
                continue
        for attached in self._identities.list_attached_policies(kind, name):
            try:
                documents.append(self._identities.get_policy_document(attached["PolicyArn"]))
            except IamError:
                continue
        return tuple(parse_policy(document) for document in documents)

    def _deny_except(self, environment: str, airflow_role: str) -> Policy:
        account = self._identities.account_id
        others = [airflow_role_arn(self._region, account, environment, role)
                  for role in AIRFLOW_ROLES if role != airflow_role]
        return parse_policy({"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Action": ACTION, "Resource": others}]})
