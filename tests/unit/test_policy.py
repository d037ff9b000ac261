"""IAM identity-policy evaluation: each AWS rule as a table of cases."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airgate.auth.policy import (
    AuthorizationRequest,
    ContextValue,
    Decision,
    MalformedPolicyDocument,
    Policy,
    evaluate,
    parse_policy,
)

ACCOUNT = "123456789012"
ENV = f"arn:aws:airflow:us-east-1:{ACCOUNT}:environment/prod"
ACTION = "airflow:InvokeRestApi"

ALLOW, DENY, IMPLICIT = Decision.ALLOW, Decision.EXPLICIT_DENY, Decision.IMPLICIT_DENY


def statement(effect: str = "Allow", action: Any = "*", resource: Any = "*",
              **extra: Any) -> dict[str, Any]:
    return {"Effect": effect, "Action": action, "Resource": resource, **extra}


def policy(*statements: dict[str, Any], version: str | None = "2012-10-17") -> Policy:
    document: dict[str, Any] = {"Statement": list(statements)}
    if version is not None:
        document["Version"] = version
    return parse_policy(document)


def decide(policies: list[Policy], action: str = ACTION, resource: str = ENV,
           context: dict[str, ContextValue] | None = None) -> Decision:
    return evaluate(policies, AuthorizationRequest(action, resource, context or {}))


# --- evaluation logic ---------------------------------------------------------------------


@pytest.mark.parametrize(("policies", "expected"), [
    pytest.param([], IMPLICIT, id="no-policies-implicit-deny"),
    pytest.param([policy(statement(action="airflow:CreateCliToken"))], IMPLICIT,
                 id="other-action-implicit-deny"),
    pytest.param([policy(statement())], ALLOW, id="allow-all"),
    pytest.param([policy(statement(), statement("Deny", ACTION))], DENY,
                 id="deny-beats-allow-in-one-policy"),
    pytest.param([policy(statement("Deny", "airflow:*")), policy(statement())], DENY,
                 id="deny-beats-allow-across-policies"),
    pytest.param([policy(statement()), policy(statement("Deny", resource=ENV + "-other"))], ALLOW,
                 id="deny-for-other-resource-does-not-apply"),
    pytest.param([policy(statement("Deny", ACTION))], DENY, id="deny-alone"),
    pytest.param([policy({"Effect": "Allow", "NotAction": "airflow:Delete*", "Resource": "*"})],
                 ALLOW, id="not-action-allows-unlisted"),
    pytest.param([policy({"Effect": "Allow", "NotAction": "airflow:invoke*", "Resource": "*"})],
                 IMPLICIT, id="not-action-excludes-listed"),
    pytest.param([policy(statement(), {"Effect": "Deny", "NotAction": "airflow:Get*",
                                       "Resource": "*"})],
                 DENY, id="deny-not-action-denies-everything-else"),
    pytest.param([policy({"Effect": "Allow", "Action": "*", "NotResource": ENV + "-*"})],
                 ALLOW, id="not-resource-allows-unlisted"),
    pytest.param([policy({"Effect": "Allow", "Action": "*",
                          "NotResource": ["arn:aws:s3:::x*", ENV]})],
                 IMPLICIT, id="not-resource-excludes-listed"),
    pytest.param([policy(statement(resource=["arn:aws:airflow:*:*:environment/dev", ENV]))],
                 ALLOW, id="any-listed-resource"),
])
def test_evaluation_logic(policies: list[Policy], expected: Decision) -> None:
    assert decide(policies) is expected


@pytest.mark.parametrize(("pattern", "action", "matches"), [
    pytest.param("*", "airflow:InvokeRestApi", True, id="star-matches-all"),
    pytest.param("airflow:*", "airflow:InvokeRestApi", True, id="service-star"),
    pytest.param("airflow:*", "mwaa:InvokeRestApi", False, id="service-star-other-service"),
    pytest.param("AIRFLOW:invokerestapi", "airflow:InvokeRestApi", True, id="case-insensitive"),
    pytest.param("airflow:Invoke*", "airflow:invokeRESTAPI", True, id="prefix-case-insensitive"),
    pytest.param("airflow:*Token", "airflow:CreateWebLoginToken", True, id="suffix"),
    pytest.param("airflow:Get?nvironment", "airflow:GetEnvironment", True, id="question-mark"),
    pytest.param("airflow:Get?nvironment", "airflow:GetEEnvironment", False,
                 id="question-mark-one-char"),
    pytest.param("airflow:Get", "airflow:GetEnvironment", False, id="no-implicit-prefix"),
    pytest.param(["airflow:List*", "airflow:Invoke*"], "airflow:InvokeRestApi", True,
                 id="any-of-list"),
])
def test_action_wildcards(pattern: Any, action: str, matches: bool) -> None:
    assert decide([policy(statement(action=pattern))], action=action) is (
        ALLOW if matches else IMPLICIT)


@pytest.mark.parametrize(("pattern", "resource", "matches"), [
    pytest.param("*", ENV, True, id="star"),
    pytest.param("*", "*", True, id="star-matches-star-request"),
    pytest.param("**", "*", True, id="all-wildcards-match-star-request"),
    pytest.param("arn:aws:airflow:*:*:*", "*", False, id="arn-pattern-not-star-request"),
    pytest.param(f"arn:aws:airflow:*:{ACCOUNT}:environment/*", ENV, True, id="any-region"),
    pytest.param(f"arn:aws:airflow:*:{ACCOUNT}:environment/*",
                 f"arn:aws:airflow:eu-west-1:{ACCOUNT}:environment/x", True,
                 id="any-region-other-region"),
    pytest.param(f"arn:aws:airflow:*:{ACCOUNT}:environment/*",
                 "arn:aws:airflow:us-east-1:210987654321:environment/prod", False,
                 id="any-region-other-account"),
    pytest.param("arn:aws:airflow:us-east-1:*:role/prod/*",
                 f"arn:aws:airflow:us-east-1:{ACCOUNT}:role/prod/Admin", True,
                 id="any-account-role-path"),
    pytest.param(f"arn:aws:airflow:*:{ACCOUNT}:environment/prod",
                 f"arn:aws:airflow:us-east-1:extra:{ACCOUNT}:environment/prod", False,
                 id="region-star-does-not-swallow-colon"),
    pytest.param("arn:aws:airflow:us-east-?:*:*",
                 f"arn:aws:airflow:us-east-12:{ACCOUNT}:environment/prod", False,
                 id="question-mark-one-char-in-segment"),
    pytest.param("arn:aws:airflow:us-east-?:*:*", ENV, True, id="question-mark-in-segment"),
    pytest.param("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a:b/c", True,
                 id="resource-part-star-crosses-colon-and-slash"),
    pytest.param(f"arn:aws:airflow:us-east-1:{ACCOUNT}:environment/PROD", ENV, False,
                 id="case-sensitive"),
    pytest.param(f"arn:aws:AIRFLOW:us-east-1:{ACCOUNT}:environment/prod", ENV, False,
                 id="case-sensitive-service"),
    pytest.param(f"arn:aws:airflow:us-east-1:{ACCOUNT}:environment/pro", ENV, False,
                 id="no-implicit-prefix"),
])
def test_resource_wildcards(pattern: str, resource: str, matches: bool) -> None:
    assert decide([policy(statement(resource=pattern))], resource=resource) is (
        ALLOW if matches else IMPLICIT)


# --- conditions ---------------------------------------------------------------------------

T0 = "2024-06-01T12:00:00Z"
CASES: list[Any] = [
    # String operators
    ({"StringEquals": {"aws:username": "alice"}}, {"aws:username": "alice"}, True),
    ({"StringEquals": {"aws:username": "alice"}}, {"aws:username": "Alice"}, False),
    ({"StringEquals": {"aws:username": "alice"}}, {}, False),
    ({"StringEquals": {"aws:username": ["bob", "alice"]}}, {"aws:username": "alice"}, True),
    ({"StringEquals": {"aws:username": "a*"}}, {"aws:username": "alice"}, False),
    ({"StringNotEquals": {"aws:username": "alice"}}, {"aws:username": "bob"}, True),
    ({"StringNotEquals": {"aws:username": "alice"}}, {"aws:username": "alice"}, False),
    ({"StringNotEquals": {"aws:username": "alice"}}, {}, True),
    ({"StringNotEquals": {"aws:username": ["bob", "alice"]}}, {"aws:username": "alice"}, False),
    ({"StringEqualsIfExists": {"aws:username": "alice"}}, {}, True),
    ({"StringEqualsIfExists": {"aws:username": "alice"}}, {"aws:username": "bob"}, False),
    ({"StringNotEqualsIfExists": {"aws:username": "alice"}}, {}, True),
    ({"StringEqualsIgnoreCase": {"aws:username": "ALICE"}}, {"aws:username": "alice"}, True),
    ({"StringEqualsIgnoreCase": {"aws:username": "ALICE"}}, {"aws:username": "bob"}, False),
    ({"StringEqualsIgnoreCase": {"aws:username": "ALICE"}}, {}, False),
    ({"StringNotEqualsIgnoreCase": {"aws:username": "ALICE"}}, {"aws:username": "alice"}, False),
    ({"StringNotEqualsIgnoreCase": {"aws:username": "ALICE"}}, {"aws:username": "bob"}, True),
    ({"StringNotEqualsIgnoreCase": {"aws:username": "ALICE"}}, {}, True),
    ({"StringEqualsIgnoreCaseIfExists": {"aws:username": "x"}}, {}, True),
    ({"StringNotEqualsIgnoreCaseIfExists": {"aws:username": "x"}}, {}, True),
    ({"StringNotEqualsIgnoreCaseIfExists": {"aws:username": "x"}}, {"aws:username": "X"}, False),
    ({"StringLike": {"aws:username": "al?ce*"}}, {"aws:username": "alice-admin"}, True),
    ({"StringLike": {"aws:username": "al?ce*"}}, {"aws:username": "Alice"}, False),
    ({"StringLike": {"aws:username": "a*"}}, {}, False),
    ({"StringNotLike": {"aws:username": "a*"}}, {"aws:username": "bob"}, True),
    ({"StringNotLike": {"aws:username": "a*"}}, {"aws:username": "alice"}, False),
    ({"StringNotLike": {"aws:username": "a*"}}, {}, True),
    ({"StringLikeIfExists": {"aws:username": "a*"}}, {}, True),
    ({"StringNotLikeIfExists": {"aws:username": "a*"}}, {}, True),
    ({"StringEquals": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": True}, True),
    # Numeric operators
    ({"NumericEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": 10}, True),
    ({"NumericEquals": {"s3:max-keys": 10}}, {"s3:max-keys": "10.0"}, True),
    ({"NumericEquals": {"s3:max-keys": 10}}, {"s3:max-keys": 11}, False),
    ({"NumericEquals": {"s3:max-keys": 10}}, {"s3:max-keys": "ten"}, False),
    ({"NumericEquals": {"s3:max-keys": 10}}, {}, False),
    ({"NumericNotEquals": {"s3:max-keys": 10}}, {"s3:max-keys": 11}, True),
    ({"NumericNotEquals": {"s3:max-keys": 10}}, {"s3:max-keys": 10}, False),
    ({"NumericNotEquals": {"s3:max-keys": 10}}, {}, True),
    ({"NumericEqualsIfExists": {"s3:max-keys": 10}}, {}, True),
    ({"NumericLessThan": {"s3:max-keys": 10}}, {"s3:max-keys": 9.5}, True),
    ({"NumericLessThan": {"s3:max-keys": 10}}, {"s3:max-keys": 10}, False),
    ({"NumericLessThanIfExists": {"s3:max-keys": 10}}, {}, True),
    ({"NumericLessThanEquals": {"s3:max-keys": 10}}, {"s3:max-keys": 10}, True),
    ({"NumericLessThanEquals": {"s3:max-keys": 10}}, {"s3:max-keys": 11}, False),
    ({"NumericGreaterThan": {"s3:max-keys": "1e1"}}, {"s3:max-keys": 11}, True),
    ({"NumericGreaterThan": {"s3:max-keys": 10}}, {"s3:max-keys": 10}, False),
    ({"NumericGreaterThanEquals": {"s3:max-keys": -1}}, {"s3:max-keys": -1}, True),
    ({"NumericGreaterThanEquals": {"s3:max-keys": -1}}, {"s3:max-keys": -2}, False),
    ({"NumericGreaterThanEqualsIfExists": {"s3:max-keys": 1}}, {}, True),
    # Date operators
    ({"DateEquals": {"aws:CurrentTime": T0}}, {"aws:CurrentTime": "2024-06-01T14:00:00+02:00"},
     True),
    ({"DateEquals": {"aws:CurrentTime": "2024-06-01"}},
     {"aws:CurrentTime": datetime(2024, 6, 1, tzinfo=UTC)}, True),
    ({"DateEquals": {"aws:CurrentTime": T0}}, {"aws:CurrentTime": 1717243200}, True),
    ({"DateEquals": {"aws:CurrentTime": 1717243200}}, {"aws:CurrentTime": T0}, True),
    ({"DateEquals": {"aws:CurrentTime": T0}}, {"aws:CurrentTime": "2024-06-01T12:00:01Z"}, False),
    ({"DateEquals": {"aws:CurrentTime": T0}}, {"aws:CurrentTime": "not a date"}, False),
    ({"DateEquals": {"aws:CurrentTime": T0}}, {}, False),
    ({"DateNotEquals": {"aws:CurrentTime": T0}}, {"aws:CurrentTime": "2024-06-02"}, True),
    ({"DateNotEquals": {"aws:CurrentTime": T0}}, {"aws:CurrentTime": T0}, False),
    ({"DateNotEquals": {"aws:CurrentTime": T0}}, {}, True),
    ({"DateLessThan": {"aws:CurrentTime": T0}},
     {"aws:CurrentTime": datetime(2024, 6, 1, 11, 59)}, True),
    ({"DateLessThan": {"aws:CurrentTime": T0}}, {"aws:CurrentTime": T0}, False),
    ({"DateLessThanIfExists": {"aws:CurrentTime": T0}}, {}, True),
    ({"DateLessThanEquals": {"aws:CurrentTime": T0}}, {"aws:CurrentTime": T0}, True),
    ({"DateLessThanEquals": {"aws:CurrentTime": T0}}, {"aws:CurrentTime": "2025-01-01"}, False),
    ({"DateGreaterThan": {"aws:CurrentTime": "2024-01-01"}}, {"aws:CurrentTime": T0}, True),
    ({"DateGreaterThan": {"aws:CurrentTime": T0}}, {"aws:CurrentTime": T0}, False),
    ({"DateGreaterThanEquals": {"aws:CurrentTime": T0}}, {"aws:CurrentTime": T0}, True),
    ({"DateGreaterThanEquals": {"aws:CurrentTime": T0}}, {"aws:CurrentTime": "2020-01-01"},
     False),
    ({"DateGreaterThanEqualsIfExists": {"aws:CurrentTime": T0}}, {}, True),
    # Bool
    ({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": True}, True),
    ({"Bool": {"aws:SecureTransport": True}}, {"aws:SecureTransport": "TRUE"}, True),
    ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": True}, False),
    ({"Bool": {"aws:SecureTransport": "true"}}, {}, False),
    ({"BoolIfExists": {"aws:SecureTransport": "true"}}, {}, True),
    ({"BoolIfExists": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": False}, False),
    # BinaryEquals
    ({"BinaryEquals": {"test:blob": "QmluYXJ5"}}, {"test:blob": "QmluYXJ5"}, True),
    ({"BinaryEquals": {"test:blob": "QmluYXJ5"}}, {"test:blob": "T3RoZXI="}, False),
    ({"BinaryEquals": {"test:blob": "QmluYXJ5"}}, {"test:blob": "!!"}, False),
    ({"BinaryEquals": {"test:blob": "QmluYXJ5"}}, {}, False),
    ({"BinaryEqualsIfExists": {"test:blob": "QmluYXJ5"}}, {}, True),
    # IP addresses
    ({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "203.0.113.7"}, True),
    ({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "198.51.100.7"}, False),
    ({"IpAddress": {"aws:SourceIp": "203.0.113.7"}}, {"aws:SourceIp": "203.0.113.7"}, True),
    ({"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}, {"aws:SourceIp": "2001:db8::1"}, True),
    ({"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}, {"aws:SourceIp": "203.0.113.7"}, False),
    ({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "not-an-ip"}, False),
    ({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {}, False),
    ({"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "198.51.100.7"},
     True),
    ({"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "203.0.113.7"},
     False),
    ({"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {}, True),
    ({"IpAddressIfExists": {"aws:SourceIp": "203.0.113.0/24"}}, {}, True),
    # ARN operators: ArnEquals behaves like ArnLike
    ({"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/*"}},
     {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/ops/admin"}, True),
    ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/*"}},
     {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:user/alice"}, False),
    ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam:*:role/*"}},
     {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/x"}, False),
    ({"ArnLike": {"aws:PrincipalArn": "*"}}, {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:root"},
     True),
    ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/*"}}, {}, False),
    ({"ArnEquals": {"aws:SourceArn": "arn:aws:airflow:*:*:environment/prod"}},
     {"aws:SourceArn": ENV}, True),
    ({"ArnEquals": {"aws:SourceArn": ENV}}, {"aws:SourceArn": ENV + "2"}, False),
    ({"ArnNotEquals": {"aws:SourceArn": ENV}}, {"aws:SourceArn": ENV + "2"}, True),
    ({"ArnNotEquals": {"aws:SourceArn": ENV}}, {"aws:SourceArn": ENV}, False),
    ({"ArnNotEquals": {"aws:SourceArn": ENV}}, {}, True),
    ({"ArnNotLike": {"aws:SourceArn": "arn:aws:airflow:*"}}, {"aws:SourceArn": ENV}, True),
    ({"ArnNotLike": {"aws:SourceArn": "arn:aws:airflow:*:*:*"}}, {"aws:SourceArn": ENV}, False),
    ({"ArnNotLike": {"aws:SourceArn": "arn:aws:airflow:*:*:*"}}, {}, True),
    ({"ArnLikeIfExists": {"aws:SourceArn": "arn:aws:s3:::*"}}, {}, True),
    ({"ArnNotLikeIfExists": {"aws:SourceArn": "arn:aws:s3:::*"}}, {}, True),
    # Null
    ({"Null": {"aws:TokenIssueTime": "true"}}, {}, True),
    ({"Null": {"aws:TokenIssueTime": True}}, {"aws:TokenIssueTime": T0}, False),
    ({"Null": {"aws:TokenIssueTime": "false"}}, {"aws:TokenIssueTime": T0}, True),
    ({"Null": {"aws:TokenIssueTime": "false"}}, {}, False),
    ({"Null": {"aws:TagKeys": "true"}}, {"aws:TagKeys": []}, True),
    # Set operators on a multivalued key
    ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["team", "env"]}},
     {"aws:TagKeys": ["env", "cost"]}, True),
    ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["team", "env"]}},
     {"aws:TagKeys": ["cost"]}, False),
    ({"ForAnyValue:StringEquals": {"aws:TagKeys": "env"}}, {}, False),
    ({"ForAnyValue:StringEquals": {"aws:TagKeys": "env"}}, {"aws:TagKeys": []}, False),
    ({"ForAnyValue:StringEquals": {"aws:TagKeys": "env"}}, {"aws:TagKeys": "env"}, True),
    ({"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": "env"}}, {}, True),
    ({"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["team", "env"]}},
     {"aws:TagKeys": ["team", "env"]}, False),
    ({"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["team", "env"]}},
     {"aws:TagKeys": ["team", "dept"]}, True),
    ({"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}},
     {"aws:TagKeys": ["env", "team"]}, True),
    ({"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}},
     {"aws:TagKeys": ["env", "cost"]}, False),
    ({"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}}, {}, True),
    ({"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}}, {"aws:TagKeys": []}, True),
    ({"ForAllValues:StringNotLike": {"aws:TagKeys": "key1*"}},
     {"aws:TagKeys": ["key1:hr", "key1:personnel"]}, False),
    ({"ForAllValues:StringNotLike": {"aws:TagKeys": "key1*"}}, {"aws:TagKeys": ["key2:audit"]},
     True),
    ({"ForAllValues:StringNotLike": {"aws:TagKeys": "key1*"}}, {}, True),
    ({"ForAllValues:StringLike": {"aws:TagKeys": "Created*"}},
     {"aws:TagKeys": ["CreatedBy", "CreatedAt"]}, True),
    ({"ForAllValues:StringEquals": {"aws:TagKeys": "env"}, "Null": {"aws:TagKeys": "false"}},
     {}, False),
    # A plain operator on a multivalued key: any value matches; a negated one: none matches
    ({"StringEquals": {"aws:CalledVia": "athena.amazonaws.com"}},
     {"aws:CalledVia": ["glue.amazonaws.com", "athena.amazonaws.com"]}, True),
    ({"StringNotEquals": {"aws:CalledVia": "athena.amazonaws.com"}},
     {"aws:CalledVia": ["glue.amazonaws.com", "athena.amazonaws.com"]}, False),
    ({"StringNotEquals": {"aws:CalledVia": "athena.amazonaws.com"}},
     {"aws:CalledVia": ["glue.amazonaws.com"]}, True),
    ({"StringEquals": {"aws:CalledVia": "athena.amazonaws.com"}}, {"aws:CalledVia": []}, False),
    # AND across keys and operators, OR across values
    ({"StringEquals": {"aws:username": "alice", "aws:PrincipalTag/team": "data"}},
     {"aws:username": "alice", "aws:PrincipalTag/team": "data"}, True),
    ({"StringEquals": {"aws:username": "alice", "aws:PrincipalTag/team": "data"}},
     {"aws:username": "alice"}, False),
    ({"StringEquals": {"aws:username": "alice"}, "Bool": {"aws:SecureTransport": "true"}},
     {"aws:username": "alice", "aws:SecureTransport": False}, False),
    ({"StringEquals": {"aws:username": "alice"}, "Bool": {"aws:SecureTransport": "true"}},
     {"aws:username": "alice", "aws:SecureTransport": True}, True),
    # Context key names are case-insensitive, in the policy and in the request
    ({"StringEquals": {"aws:ResourceTag/Team": "data"}}, {"aws:resourcetag/team": "data"}, True),
    ({"StringEquals": {"AWS:RESOURCETAG/team": "data"}}, {"aws:ResourceTag/Team": "data"}, True),
    ({"StringEquals": {"aws:ResourceTag/Team": "data"}}, {"aws:ResourceTag/Team": "Data"},
     False),
    ({"Null": {"aws:ResourceTag/Team": "false"}}, {"AWS:resourceTAG/TEAM": "x"}, True),
]


def _case_id(case: Any) -> str:
    condition, context, holds = case
    operators = "+".join(condition)
    keys = ",".join(sorted({k for block in condition.values() for k in block}))
    given_ = ";".join(f"{k}={v}" for k, v in context.items()) or "absent"
    return f"{operators}[{keys}]-{given_}-{'holds' if holds else 'fails'}"


@pytest.mark.parametrize(("condition", "context", "holds"),
                         [pytest.param(*case, id=_case_id(case)) for case in CASES])
def test_condition(condition: dict[str, Any], context: dict[str, ContextValue],
                   holds: bool) -> None:
    allow = policy(statement(Condition=condition))
    assert decide([allow], context=context) is (ALLOW if holds else IMPLICIT)
    # The same condition on a Deny decides the opposite way: it denies exactly when it holds.
    deny = policy(statement(), statement("Deny", Condition=condition))
    assert decide([deny], context=context) is (DENY if holds else ALLOW)


IF_EXISTS_ONLY = {  # IfExists forms not in CASES, each tried with its key absent
    "NumericNotEqualsIfExists": "1", "NumericLessThanEqualsIfExists": "1",
    "NumericGreaterThanIfExists": "1", "DateEqualsIfExists": T0, "DateNotEqualsIfExists": T0,
    "DateLessThanEqualsIfExists": T0, "DateGreaterThanIfExists": T0, "ArnEqualsIfExists": ENV,
    "ArnNotEqualsIfExists": ENV, "NotIpAddressIfExists": "10.0.0.0/8",
}


@pytest.mark.parametrize(("operator", "value"), list(IF_EXISTS_ONLY.items()))
def test_if_exists_with_absent_key_holds(operator: str, value: str) -> None:
    allow = policy(statement(Condition={operator: {"test:key": value}}))
    assert decide([allow]) is ALLOW
    assert decide([allow], context={"test:key": "present-but-unmatchable"}) is (
        ALLOW if "Not" in operator else IMPLICIT)


def test_every_operator_has_cases_plain_and_if_exists() -> None:
    base = ["StringEquals", "StringNotEquals", "StringEqualsIgnoreCase",
            "StringNotEqualsIgnoreCase", "StringLike", "StringNotLike", "NumericEquals",
            "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals", "NumericGreaterThan",
            "NumericGreaterThanEquals", "DateEquals", "DateNotEquals", "DateLessThan",
            "DateLessThanEquals", "DateGreaterThan", "DateGreaterThanEquals", "Bool",
            "BinaryEquals", "IpAddress", "NotIpAddress", "ArnEquals", "ArnLike", "ArnNotEquals",
            "ArnNotLike"]
    used = {name.split(":")[-1] for condition, _, _ in CASES for name in condition}
    used |= IF_EXISTS_ONLY.keys()
    assert {"Null", *base, *(name + "IfExists" for name in base)} <= used


# --- policy variables ---------------------------------------------------------------------

ALICE_ENV = f"arn:aws:airflow:us-east-1:{ACCOUNT}:environment/alice"


@pytest.mark.parametrize(("resource", "request_resource", "context", "matches"), [
    pytest.param(f"arn:aws:airflow:*:{ACCOUNT}:environment/${{aws:username}}", ALICE_ENV,
                 {"aws:username": "alice"}, True, id="username"),
    pytest.param(f"arn:aws:airflow:*:{ACCOUNT}:environment/${{AWS:UserName}}", ALICE_ENV,
                 {"aws:username": "alice"}, True, id="variable-name-case-insensitive"),
    pytest.param(f"arn:aws:airflow:*:{ACCOUNT}:environment/${{aws:username}}", ALICE_ENV,
                 {"aws:username": "bob"}, False, id="other-user"),
    pytest.param(f"arn:aws:airflow:*:{ACCOUNT}:environment/${{aws:username}}", ALICE_ENV,
                 {}, False, id="no-value-matches-nothing"),
    pytest.param(f"arn:aws:airflow:*:{ACCOUNT}:environment/${{aws:username, 'alice'}}",
                 ALICE_ENV, {}, True, id="default-used-when-absent"),
    pytest.param(f"arn:aws:airflow:*:{ACCOUNT}:environment/${{ aws:username , 'alice' }}",
                 ALICE_ENV, {"aws:username": "bob"}, False, id="default-ignored-when-present"),
    pytest.param(f"arn:aws:airflow:*:{ACCOUNT}:environment/${{aws:username, 'it''s'}}",
                 f"arn:aws:airflow:us-east-1:{ACCOUNT}:environment/it's", {}, True,
                 id="default-doubled-quote"),
    pytest.param(f"arn:aws:airflow:*:{ACCOUNT}:environment/${{aws:username,'*'}}",
                 ALICE_ENV, {}, False, id="default-is-literal-not-wildcard"),
    pytest.param(f"arn:aws:airflow:*:{ACCOUNT}:environment/${{*}}",
                 f"arn:aws:airflow:us-east-1:{ACCOUNT}:environment/*", {}, True,
                 id="escape-star"),
    pytest.param(f"arn:aws:airflow:*:{ACCOUNT}:environment/${{*}}", ALICE_ENV, {}, False,
                 id="escaped-star-is-literal"),
    pytest.param(f"arn:aws:airflow:*:{ACCOUNT}:environment/a${{?}}",
                 f"arn:aws:airflow:us-east-1:{ACCOUNT}:environment/a?", {}, True,
                 id="escape-question-mark"),
    pytest.param(f"arn:aws:airflow:*:{ACCOUNT}:environment/a${{?}}",
                 f"arn:aws:airflow:us-east-1:{ACCOUNT}:environment/ab", {}, False,
                 id="escaped-question-mark-is-literal"),
    pytest.param(f"arn:aws:airflow:*:{ACCOUNT}:environment/${{$}}{{x}}",
                 f"arn:aws:airflow:us-east-1:{ACCOUNT}:environment/${{x}}", {}, True,
                 id="escape-dollar"),
    pytest.param(f"arn:aws:airflow:*:{ACCOUNT}:environment/${{aws:username}}",
                 ALICE_ENV, {"aws:username": "a*"}, False, id="substituted-value-is-literal"),
    pytest.param(f"arn:aws:airflow:*:{ACCOUNT}:environment/${{aws:TagKeys}}", ALICE_ENV,
                 {"aws:TagKeys": ["alice"]}, False, id="multivalued-key-is-no-variable"),
    pytest.param(f"arn:aws:airflow:*:{ACCOUNT}:environment/${{aws:PrincipalTag/Env}}-*",
                 f"arn:aws:airflow:us-east-1:{ACCOUNT}:environment/dev-1",
                 {"aws:principaltag/env": "dev"}, True, id="tag-variable"),
])
def test_policy_variables_in_resource(resource: str, request_resource: str,
                                      context: dict[str, ContextValue], matches: bool) -> None:
    allow = policy(statement(resource=resource))
    assert decide([allow], resource=request_resource, context=context) is (
        ALLOW if matches else IMPLICIT)


@pytest.mark.parametrize(("condition", "context", "holds"), [
    pytest.param({"StringEquals": {"aws:PrincipalTag/team": "${aws:ResourceTag/team}"}},
                 {"aws:PrincipalTag/team": "data", "aws:ResourceTag/team": "data"}, True,
                 id="string-equals-tag-to-tag"),
    pytest.param({"StringEquals": {"aws:PrincipalTag/team": "${aws:ResourceTag/team}"}},
                 {"aws:PrincipalTag/team": "data", "aws:ResourceTag/team": "ops"}, False,
                 id="string-equals-tag-mismatch"),
    pytest.param({"StringLike": {"test:path": "home/${aws:username}/*"}},
                 {"test:path": "home/alice/x", "aws:username": "alice"}, True,
                 id="string-like-with-variable"),
    pytest.param({"StringLike": {"test:path": "home/${aws:username}/*"}},
                 {"test:path": "home/alice/x"}, False, id="string-like-unresolved-matches-nothing"),
    pytest.param({"StringNotEquals": {"aws:PrincipalTag/team": "${aws:ResourceTag/team}"}},
                 {"aws:PrincipalTag/team": "data"}, True,
                 id="negated-unresolved-value-does-not-match"),
    pytest.param({"StringEquals": {"aws:PrincipalTag/team": "${aws:ResourceTag/team, 'data'}"}},
                 {"aws:PrincipalTag/team": "data"}, True, id="condition-default"),
    pytest.param({"StringEquals": {"test:literal": "${*}"}}, {"test:literal": "*"}, True,
                 id="condition-escape"),
    pytest.param({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/${aws:username}"}},
                 {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:user/alice",
                  "aws:username": "alice"}, True, id="arn-like-with-variable"),
    pytest.param({"Bool": {"test:flag": "${test:expected}"}},
                 {"test:flag": True, "test:expected": "true"}, True, id="bool-with-variable"),
])
def test_policy_variables_in_conditions(condition: dict[str, Any],
                                        context: dict[str, ContextValue], holds: bool) -> None:
    assert decide([policy(statement(Condition=condition))], context=context) is (
        ALLOW if holds else IMPLICIT)


@pytest.mark.parametrize("version", [
    pytest.param("2008-10-17", id="version-2008"),
    pytest.param(None, id="no-version-means-2008"),
])
def test_version_2008_does_not_substitute(version: str | None) -> None:
    literal_env = f"arn:aws:airflow:us-east-1:{ACCOUNT}:environment/${{aws:username}}"
    allow = policy(statement(resource=f"arn:aws:airflow:*:{ACCOUNT}:environment/${{aws:username}}",
                             Condition={"StringEquals": {"test:k": "${aws:username}"}}),
                   version=version)
    context: dict[str, ContextValue] = {"aws:username": "alice", "test:k": "${aws:username}"}
    assert decide([allow], resource=ALICE_ENV, context=context) is IMPLICIT
    assert decide([allow], resource=literal_env, context=context) is ALLOW
    assert decide([allow], resource=literal_env,
                  context={"aws:username": "alice", "test:k": "alice"}) is IMPLICIT


def test_variables_are_not_substituted_in_actions() -> None:
    allow = policy(statement(action="airflow:${aws:username}"))
    assert decide([allow], action="airflow:alice", context={"aws:username": "alice"}) is IMPLICIT


# --- parsing and validation ---------------------------------------------------------------


def test_parse_accepts_json_text_and_single_statement_object() -> None:
    text = json.dumps({"Version": "2012-10-17", "Id": "p1", "Statement": {
        "Sid": "AllowAll", "Effect": "Allow", "Action": ["airflow:*"], "Resource": ["*"]}})
    parsed = parse_policy(text)
    assert parsed.version == "2012-10-17"
    assert parsed.policy_id == "p1"
    assert len(parsed.statements) == 1
    assert decide([parsed]) is ALLOW


def _valid(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {"Version": "2012-10-17",
                                "Statement": [statement(Condition={})]}
    document["Statement"][0].update(changes)
    return {k: v for k, v in document.items()}


def _without(key: str) -> dict[str, Any]:
    document = _valid()
    del document["Statement"][0][key]
    return document


def _condition(block: Any) -> dict[str, Any]:
    return _valid(Condition=block)


@pytest.mark.parametrize(("document", "message"), [
    pytest.param("{not json", "Syntax errors in policy.", id="bad-json"),
    pytest.param("[]", "Syntax errors in policy.", id="not-an-object"),
    pytest.param('{"Version": "2012-10-17", "Version": "2012-10-17", "Statement": []}',
                 "duplicate key", id="duplicate-json-key"),
    pytest.param({"Version": "2012-10-17"}, "Missing required field Statement", id="no-statement"),
    pytest.param({"Version": "2012-10-17", "Statement": []}, "non-empty", id="empty-statement"),
    pytest.param({"Version": "2012-10-17", "Statement": "x"}, "Statement", id="statement-string"),
    pytest.param({"Version": "2012-10-17", "Statement": ["x"]}, "object",
                 id="statement-not-object"),
    pytest.param({"Version": "2013-01-01", "Statement": [statement()]}, "valid version",
                 id="bad-version"),
    pytest.param({"Version": "2012-10-17", "Statement": [statement()], "Extra": 1},
                 "unknown policy element", id="unknown-top-level-key"),
    pytest.param({"Version": "2012-10-17", "Statement": [statement()], "Id": 3}, "Id",
                 id="id-not-string"),
    pytest.param(_valid(Effect="allow"), "Invalid effect", id="bad-effect-case"),
    pytest.param(_valid(Effect="Permit"), "Invalid effect", id="bad-effect"),
    pytest.param(_without("Effect"), "Missing required field Effect", id="no-effect"),
    pytest.param(_valid(NotAction="iam:*"), "both Action and NotAction",
                 id="action-and-not-action"),
    pytest.param(_without("Action"), "Missing required field Action", id="no-action"),
    pytest.param(_valid(NotResource="*"), "both Resource and NotResource",
                 id="resource-and-not-resource"),
    pytest.param(_without("Resource"), "Missing required field Resource", id="no-resource"),
    pytest.param(_valid(Principal={"AWS": "*"}), "should not specify a principal",
                 id="principal"),
    pytest.param(_valid(NotPrincipal={"AWS": "*"}), "should not specify a principal",
                 id="not-principal"),
    pytest.param(_valid(Foo="bar"), "unknown statement element", id="unknown-statement-key"),
    pytest.param(_valid(Sid="not valid!"), "alpha-numeric", id="bad-sid"),
    pytest.param({"Version": "2012-10-17", "Statement": [statement(Sid="A"), statement(Sid="A")]},
                 "unique", id="duplicate-sid"),
    pytest.param(_valid(Action=[]), "non-empty list", id="empty-action-list"),
    pytest.param(_valid(Action=["iam:*", 3]), "list of strings", id="action-not-string"),
    pytest.param(_valid(Action="InvokeRestApi"), "prefaced by a vendor", id="action-no-vendor"),
    pytest.param(_valid(Action="airflow:"), "prefaced by a vendor", id="action-no-name"),
    pytest.param(_valid(Action="air*:Get"), "vendor", id="action-vendor-wildcard"),
    pytest.param(_valid(Resource="environment/prod"), "ARN format", id="resource-not-arn"),
    pytest.param(_valid(Resource="arn:aws:airflow:*:environment/x"), "ARN format",
                 id="resource-too-few-segments"),
    pytest.param(_condition([]), "Condition must be an object", id="condition-not-object"),
    pytest.param(_condition({"StringEquals": "x"}), "StringEquals", id="operator-not-object"),
    pytest.param(_condition({"StringEquals": {}}), "at least one", id="operator-without-keys"),
    pytest.param(_condition({"StringEqual": {"aws:username": "a"}}), "Invalid condition operator",
                 id="unknown-operator"),
    pytest.param(_condition({"stringequals": {"aws:username": "a"}}),
                 "Invalid condition operator", id="operator-case-sensitive"),
    pytest.param(_condition({"ForSomeValues:StringEquals": {"aws:username": "a"}}),
                 "Invalid condition operator", id="unknown-set-prefix"),
    pytest.param(_condition({"NullIfExists": {"aws:username": "true"}}),
                 "Invalid condition operator", id="null-if-exists"),
    pytest.param(_condition({"ForAnyValue:Null": {"aws:username": "true"}}),
                 "Invalid condition operator", id="null-with-set-operator"),
    pytest.param(_condition({"StringEquals": {"username": "a"}}), "prefaced by a vendor",
                 id="condition-key-no-vendor"),
    pytest.param(_condition({"StringEquals": {"aws:username": []}}), "non-empty list",
                 id="condition-no-values"),
    pytest.param(_condition({"StringEquals": {"aws:username": None}}), "strings, numbers",
                 id="condition-null-value"),
    pytest.param(_condition({"StringEquals": {"aws:username": {"a": "b"}}}), "strings, numbers",
                 id="condition-object-value"),
    pytest.param(_condition({"NumericEquals": {"s3:max-keys": "ten"}}), "not a number",
                 id="bad-numeric"),
    pytest.param(_condition({"NumericLessThan": {"s3:max-keys": True}}), "not a number",
                 id="bool-as-numeric"),
    pytest.param(_condition({"NumericEquals": {"s3:max-keys": "NaN"}}), "not a number",
                 id="nan-numeric"),
    pytest.param(_condition({"NumericEquals": {"s3:max-keys": "${aws:username}"}}),
                 "not a number", id="variable-in-numeric"),
    pytest.param(_condition({"DateLessThan": {"aws:CurrentTime": "yesterday"}}),
                 "not a valid date", id="bad-date"),
    pytest.param(_condition({"DateLessThan": {"aws:CurrentTime": "2024-13-01"}}),
                 "not a valid date", id="bad-month"),
    pytest.param(_condition({"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}}),
                 "not an IP address", id="bad-cidr"),
    pytest.param(_condition({"NotIpAddress": {"aws:SourceIp": "300.1.1.1"}}),
                 "not an IP address", id="bad-ip"),
    pytest.param(_condition({"BinaryEquals": {"test:blob": "not base64!"}}), "base64",
                 id="bad-base64"),
    pytest.param(_condition({"Bool": {"aws:SecureTransport": "yes"}}), "true or false",
                 id="bad-bool"),
    pytest.param(_condition({"Null": {"aws:username": "maybe"}}), "true or false",
                 id="bad-null"),
    pytest.param(_valid(Resource="arn:aws:s3:::${aws:username"), "Invalid policy variable",
                 id="unclosed-variable"),
    pytest.param(_valid(Resource="arn:aws:s3:::${}"), "Invalid policy variable",
                 id="empty-variable"),
    pytest.param(_valid(Resource="arn:aws:s3:::${aws:username, default}"), "default value",
                 id="unquoted-default"),
    pytest.param(_valid(Resource="arn:aws:s3:::${aws:username, 'x}"), "Unterminated",
                 id="unterminated-default"),
])
def test_malformed_documents(document: Any, message: str) -> None:
    with pytest.raises(MalformedPolicyDocument, match=re.escape(message)):
        parse_policy(document)


def test_malformed_message_for_unknown_operator_names_it() -> None:
    with pytest.raises(MalformedPolicyDocument) as error:
        parse_policy(_condition({"StringEqualz": {"aws:username": "a"}}))
    assert "StringEqualz" in str(error.value)


# --- properties ---------------------------------------------------------------------------

_NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,20}", fullmatch=True)
_ACTIONS = st.builds(lambda service, name: f"{service}:{name}", _NAME, _NAME)
_STATEMENTS = st.builds(
    lambda effect, action, resource: statement(effect, action, resource),
    st.sampled_from(["Allow", "Deny"]),
    st.one_of(st.just("*"), _ACTIONS, _NAME.map(lambda n: f"airflow:{n}*")),
    st.sampled_from(["*", ENV, f"arn:aws:airflow:*:{ACCOUNT}:environment/*"]),
)
_POLICY_SETS = st.lists(st.lists(_STATEMENTS, min_size=1, max_size=4), max_size=4)


@given(action=_ACTIONS, policy_set=_POLICY_SETS, deny_first=st.booleans())
def test_explicit_deny_for_the_action_always_wins(action: str, policy_set: list[list[Any]],
                                                  deny_first: bool) -> None:
    policies = [policy(*statements) for statements in policy_set]
    denial = policy(statement("Deny", action))
    ordered = [denial, *policies] if deny_first else [*policies, denial]
    assert decide(ordered, action=action) is DENY
    assert decide(ordered, action=action.upper(), resource="*") is DENY


@given(action=_ACTIONS, resource=st.one_of(st.just("*"), st.text(min_size=1)),
       username=st.text())
def test_allow_all_alone_allows_everything(action: str, resource: str, username: str) -> None:
    assert decide([policy(statement())], action=action, resource=resource,
                  context={"aws:username": username}) is ALLOW


def _glob_reference(pattern: str, text: str) -> bool:
    """Textbook dynamic programming over `*` and `?`, to check the compiled matcher against."""
    row = [True] + [False] * len(text)
    for p in pattern:
        new = [row[0] and p == "*"] + [False] * len(text)
        for j, ch in enumerate(text, 1):
            if p == "*":
                new[j] = new[j - 1] or row[j]
            else:
                new[j] = row[j - 1] and p in ("?", ch)
        row = new
    return row[-1]


def _arn_reference(pattern: str, arn: str) -> bool:
    """Segment by segment: the first five colons separate parts that wildcards cannot cross."""
    pattern_parts, arn_parts = pattern.split(":", 5), arn.split(":", 5)
    return len(arn_parts) == 6 and all(
        _glob_reference(p, a) for p, a in zip(pattern_parts, arn_parts, strict=True))


def _text(alphabet: str, max_size: int, min_size: int = 0) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=min_size, max_size=max_size)


@given(pattern=_text("ab*?", 8, min_size=1), action=_text("abAB", 10))
def test_action_matching_agrees_with_reference(pattern: str, action: str) -> None:
    expected = _glob_reference(pattern, action.lower())
    allowed = decide([policy(statement(action=f"svc:{pattern}"))], action=f"svc:{action}")
    assert allowed is (ALLOW if expected else IMPLICIT)


@given(segments=st.lists(_text("ab*?", 3), min_size=4, max_size=4),
       resource_part=_text("ab*?:/", 8),
       arn_segments=st.lists(_text("ab:", 3), min_size=4, max_size=4),
       arn_resource=_text("ab:/", 8))
def test_resource_matching_agrees_with_segment_reference(
        segments: list[str], resource_part: str, arn_segments: list[str],
        arn_resource: str) -> None:
    pattern = ":".join(["arn", *segments, resource_part])
    arn = ":".join(["arn", *arn_segments, arn_resource])
    allowed = decide([policy(statement(resource=pattern))], resource=arn)
    assert allowed is (ALLOW if _arn_reference(pattern, arn) else IMPLICIT)


@pytest.mark.timeout(10)
def test_many_wildcards_do_not_backtrack_exponentially() -> None:
    stars = "*a" * 15 + "*b"
    allow = policy(statement(action=f"svc:{stars}", resource=f"arn:aws:s3:::{stars}"),
                   statement(action="*", resource="*",
                             Condition={"StringLike": {"test:key": stars}}))
    long_text = "a" * 5000
    assert decide([allow], action=f"svc:{long_text}", resource=f"arn:aws:s3:::{long_text}",
                  context={"test:key": long_text}) is IMPLICIT
