"""Trust policies: who a role's Principal element takes in, what they may not contain, and
whether an Allow named the caller's own ARN (which, within one account, makes an identity
policy allowing sts:AssumeRole unnecessary)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airgate.auth.policy import (
    AuthorizationRequest,
    Caller,
    Decision,
    MalformedPolicyDocument,
    evaluate_trust,
    parse_policy,
    parse_trust_policy,
)

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/Target"
ALICE = Caller(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/alice")
BOB = Caller(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/team/bob")
SESSION = Caller(ACCOUNT, f"arn:aws:sts::{ACCOUNT}:assumed-role/Ops/night",
                 role_arn=f"arn:aws:iam::{ACCOUNT}:role/Ops")
STRANGER = Caller("210987654321", "arn:aws:iam::210987654321:user/alice")
MWAA = Caller.of_service("airflow.amazonaws.com")
MWAA_ENV = Caller.of_service("airflow-env.amazonaws.com")
MWAA_MIXED_CASE = Caller.of_service("Airflow.AmazonAWS.com")


def trust(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal: Any, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", **extra}


def decide(document: str, caller: Caller, action: str = "sts:AssumeRole",
           **context: Any) -> tuple[Decision, bool]:
    answer = evaluate_trust(parse_trust_policy(document),
                            AuthorizationRequest(action, ROLE, context), caller)
    return answer.decision, answer.names_caller


ALLOW, IMPLICIT, DENY = Decision.ALLOW, Decision.IMPLICIT_DENY, Decision.EXPLICIT_DENY


@pytest.mark.parametrize(("principal", "caller", "expected"), [
    ({"AWS": f"arn:aws:iam::{ACCOUNT}:user/alice"}, ALICE, (ALLOW, True)),
    ({"AWS": f"arn:aws:iam::{ACCOUNT}:user/alice"}, BOB, (IMPLICIT, False)),
    ({"AWS": [f"arn:aws:iam::{ACCOUNT}:user/x", f"arn:aws:iam::{ACCOUNT}:user/team/bob"]},
     BOB, (ALLOW, True)),
    ({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, ALICE, (ALLOW, False)),
    ({"AWS": ACCOUNT}, SESSION, (ALLOW, False)),
    ({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, STRANGER, (IMPLICIT, False)),
    ("*", STRANGER, (ALLOW, False)),
    ({"AWS": "*"}, ALICE, (ALLOW, False)),
    # A role principal takes in the role's sessions, but does not name the session itself.
    ({"AWS": f"arn:aws:iam::{ACCOUNT}:role/Ops"}, SESSION, (ALLOW, False)),
    ({"AWS": f"arn:aws:sts::{ACCOUNT}:assumed-role/Ops/night"}, SESSION, (ALLOW, True)),
    ({"AWS": f"arn:aws:sts::{ACCOUNT}:assumed-role/Ops/day"}, SESSION, (IMPLICIT, False)),
    ({"AWS": f"arn:aws:iam::{ACCOUNT}:role/Ops"}, ALICE, (IMPLICIT, False)),
    # Service principals (MWAA's execution roles) name no caller of airgate.
    ({"Service": ["airflow.amazonaws.com", "airflow-env.amazonaws.com"]}, ALICE,
     (IMPLICIT, False)),
    ({"Federated": "arn:aws:iam::123456789012:oidc-provider/x"}, ALICE, (IMPLICIT, False)),
    # ... but take in the service itself, as airgate plays it for an environment.
    ({"Service": ["airflow.amazonaws.com", "airflow-env.amazonaws.com"]}, MWAA, (ALLOW, True)),
    ({"Service": ["airflow.amazonaws.com", "airflow-env.amazonaws.com"]}, MWAA_ENV,
     (ALLOW, True)),
    ({"Service": "AIRFLOW.amazonaws.com"}, MWAA_MIXED_CASE, (ALLOW, True)),
    ({"Service": "ecs-tasks.amazonaws.com"}, MWAA, (IMPLICIT, False)),
    ({"AWS": ACCOUNT}, MWAA, (IMPLICIT, False)),
    ({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, MWAA, (IMPLICIT, False)),
    ("*", MWAA, (ALLOW, False)),
])
def test_who_a_principal_takes_in(principal: Any, caller: Caller,
                                  expected: tuple[Decision, bool]) -> None:
    assert decide(trust(allow(principal)), caller) == expected


def test_a_service_s_source_conditions() -> None:
    """The confused-deputy guard MWAA's user guide puts in an execution role's trust."""
    document = trust(allow({"Service": "airflow-env.amazonaws.com"}, Condition={
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": f"arn:aws:airflow:us-east-1:{ACCOUNT}:environment/a*"}}))
    source = f"arn:aws:airflow:us-east-1:{ACCOUNT}:environment/"
    assert decide(document, MWAA_ENV, **{"aws:SourceAccount": ACCOUNT,
                                         "aws:SourceArn": source + "alpha"}) == (ALLOW, True)
    assert decide(document, MWAA_ENV, **{"aws:SourceAccount": ACCOUNT,
                                         "aws:SourceArn": source + "beta"}) == (IMPLICIT, False)
    assert decide(document, MWAA_ENV, **{"aws:SourceAccount": "210987654321",
                                         "aws:SourceArn": source + "alpha"}) == (IMPLICIT, False)


def test_external_id_condition() -> None:
    document = trust(allow({"AWS": ACCOUNT},
                           Condition={"StringEquals": {"sts:ExternalId": "s3cret"}}))
    assert decide(document, ALICE) == (IMPLICIT, False)
    assert decide(document, ALICE, **{"sts:ExternalId": "wrong"}) == (IMPLICIT, False)
    assert decide(document, ALICE, **{"sts:ExternalId": "s3cret"}) == (ALLOW, False)


def test_only_the_actions_allowed() -> None:
    document = trust(allow({"AWS": ACCOUNT}))
    assert decide(document, ALICE, action="sts:TagSession") == (IMPLICIT, False)


def test_a_deny_wins_over_a_direct_allow() -> None:
    document = trust(allow({"AWS": f"arn:aws:iam::{ACCOUNT}:user/alice"}),
                     {"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole",
                      "Condition": {"StringLike": {"sts:RoleSessionName": "forbidden-*"}}})
    assert decide(document, ALICE, **{"sts:RoleSessionName": "ok"}) == (ALLOW, True)
    assert decide(document, ALICE, **{"sts:RoleSessionName": "forbidden-1"}) == (DENY, False)


def test_the_strongest_allow_counts() -> None:
    document = trust(allow({"AWS": ACCOUNT}),
                     allow({"AWS": f"arn:aws:iam::{ACCOUNT}:user/alice"}))
    assert decide(document, ALICE) == (ALLOW, True)
    assert decide(document, BOB) == (ALLOW, False)


def test_not_principal() -> None:
    document = trust({"Effect": "Allow", "NotPrincipal": {"AWS": ALICE.arn},
                      "Action": "sts:AssumeRole"})
    assert decide(document, ALICE) == (IMPLICIT, False)
    assert decide(document, BOB) == (ALLOW, False)


@pytest.mark.parametrize(("document", "message"), [
    (trust({"Effect": "Allow", "Action": "sts:AssumeRole"}), "Missing required field Principal"),
    (trust({**allow({"AWS": ACCOUNT}), "Resource": "*"}), "Has prohibited field Resource"),
    (trust({**allow({"AWS": ACCOUNT}), "NotResource": ROLE}),
     "Has prohibited field NotResource"),
    (trust(allow({"AWS": "arn:aws:iam::*:root"})), "Invalid principal in policy"),
    (trust(allow({"AWS": f"arn:aws:iam::{ACCOUNT}:user/*"})), "Invalid principal in policy"),
    (trust(allow({"AWS": "alice"})), "Invalid principal in policy"),
    (trust(allow({"Service": "*.amazonaws.com"})), "Invalid principal in policy"),
    (trust(allow({"Someone": "x"})), "Invalid principal in policy"),
    (trust(allow({})), "Invalid principal in policy"),
    (trust({**allow({"AWS": ACCOUNT}), "NotPrincipal": {"AWS": ACCOUNT}}),
     "both Principal and NotPrincipal"),
    (trust({"Effect": "Allow", "Principal": "*"}), "Missing required field Action"),
    ('{"Statement": ', "Syntax errors in policy"),
])
def test_malformed_trust_policies(document: str, message: str) -> None:
    with pytest.raises(MalformedPolicyDocument, match=message):
        parse_trust_policy(document)


def test_identity_policies_still_refuse_principals() -> None:
    with pytest.raises(MalformedPolicyDocument, match="should not specify a principal"):
        parse_policy(trust({**allow({"AWS": ACCOUNT}), "Resource": "*"}))
