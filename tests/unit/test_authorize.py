"""What a principal's policies make of a request: a role session's session policies narrow
its role's policies (the intersection), and an explicit Deny in either wins."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airgate.auth.authorize import decide
from airgate.auth.identities import Principal
from airgate.auth.policy import AuthorizationRequest, Decision, Policy, parse_policy

ARN = "arn:aws:sts::000000000000:assumed-role/R/s"


def document(effect: str, action: Any) -> Policy:
    return parse_policy(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": effect, "Action": action, "Resource": "*"}]}))


def session(policies: tuple[Policy, ...], session_policies: tuple[Policy, ...]) -> Principal:
    return Principal("AssumedRole", ARN, "arn:aws:iam::000000000000:role/R", "AROA:s", None,
                     policies, session_policies, temporary=True)


ALL = document("Allow", "airflow:*")
LIST = document("Allow", "airflow:ListEnvironments")
DENY_LIST = document("Deny", "airflow:ListEnvironments")


@pytest.mark.parametrize(("role", "narrowed", "action", "expected"), [
    ((ALL,), (), "airflow:CreateEnvironment", Decision.ALLOW),
    ((ALL,), (LIST,), "airflow:ListEnvironments", Decision.ALLOW),
    ((ALL,), (LIST,), "airflow:CreateEnvironment", Decision.IMPLICIT_DENY),
    ((LIST,), (ALL,), "airflow:CreateEnvironment", Decision.IMPLICIT_DENY),
    ((ALL,), (ALL, DENY_LIST), "airflow:ListEnvironments", Decision.EXPLICIT_DENY),
    ((ALL, DENY_LIST), (ALL,), "airflow:ListEnvironments", Decision.EXPLICIT_DENY),
    ((), (ALL,), "airflow:ListEnvironments", Decision.IMPLICIT_DENY),
    ((ALL,), (LIST, document("Allow", "airflow:Get*")), "airflow:GetEnvironment",
     Decision.ALLOW),
])
def test_session_policies_intersect(role: tuple[Policy, ...], narrowed: tuple[Policy, ...],
                                    action: str, expected: Decision) -> None:
    request = AuthorizationRequest(action, "arn:aws:airflow:us-east-1:000000000000:"
                                   "environment/e", {})
    assert decide(session(role, narrowed), request) is expected
