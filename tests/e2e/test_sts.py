"""STS at airgate's endpoint, to real boto3 clients: who the caller is, assuming roles under
their trust policies, session policies, session tokens, and temporary credentials used
against MWAA and refused when expired or forged."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import update

from airgate.store.generations import bump
from airgate.store.schema import AccessKey
from tests.e2e.aws_clients import (
    ACCOUNT,
    allow,
    client,
    deny,
    failure,
    policy,
    role_arn,
    temporary,
    trust,
    user_arn,
)
from tests.support import RunningAirgate, create_environment_args

pytestmark = pytest.mark.e2e

LIST_ONLY = policy(allow("airflow:ListEnvironments"))
ALL_AIRFLOW = policy(allow("airflow:*"))


def user(server: RunningAirgate, name: str, *documents: str) -> dict[str, str]:
    """An IAM user with these inline policies; its access key."""
    identities = server.airgate.identities
    identities.create_user(name)
    for index, document in enumerate(documents):
        identities.put_inline_policy("user", name, f"p{index}", document)
    key: dict[str, str] = identities.create_access_key(name)
    return key


def role(server: RunningAirgate, name: str, trust_policy: str, *documents: str,
         max_session_duration: int = 3600) -> str:
    identities = server.airgate.identities
    identities.create_role(name, trust_policy, max_session_duration=max_session_duration)
    for index, document in enumerate(documents):
        identities.put_inline_policy("role", name, f"p{index}", document)
    return role_arn(name)


def assume(server: RunningAirgate, credentials: dict[str, Any], arn: str,
           **args: Any) -> dict[str, str]:
    answer = client(server, "sts", credentials).assume_role(
        RoleArn=arn, RoleSessionName=args.pop("RoleSessionName", "session-1"), **args)
    return temporary(answer["Credentials"])


def test_who_the_caller_is(airgate_server: RunningAirgate) -> None:
    server = airgate_server
    admin = client(server, "sts").get_caller_identity()
    admin_id = server.airgate.identities.get_user("admin")["UserId"]
    assert (admin["Arn"], admin["Account"], admin["UserId"]) == (
        user_arn("admin"), ACCOUNT, admin_id)

    alice = user(server, "alice")
    alice_id = server.airgate.identities.get_user("alice")["UserId"]
    answer = client(server, "sts", alice).get_caller_identity()
    assert (answer["Arn"], answer["UserId"]) == (user_arn("alice"), alice_id)

    arn = role(server, "Reporting", trust({"AWS": user_arn("alice")}))
    session = assume(server, alice, arn, RoleSessionName="night-shift")
    answer = client(server, "sts", session).get_caller_identity()
    role_id = server.airgate.identities.get_role("Reporting")["RoleId"]
    assert answer["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Reporting/night-shift"
    assert answer["UserId"] == f"{role_id}:night-shift"


def test_get_caller_identity_even_under_an_explicit_deny(airgate_server: RunningAirgate
                                                         ) -> None:
    denied = user(airgate_server, "denied", policy(deny("*")))
    answer = client(airgate_server, "sts", denied).get_caller_identity()
    assert answer["Arn"] == user_arn("denied")
    assert failure(lambda: client(airgate_server, "mwaa", denied).list_environments())[:2] == (
        "AccessDeniedException", 403)


def test_a_trust_policy_naming_the_user_needs_no_identity_policy(
        airgate_server: RunningAirgate) -> None:
    server = airgate_server
    alice = user(server, "alice")  # no policy at all
    arn = role(server, "Direct", trust({"AWS": user_arn("alice")}), LIST_ONLY)
    session = assume(server, alice, arn)
    assert client(server, "mwaa", session).list_environments()["Environments"] == []
    # An explicit Deny in the identity policy still wins.
    server.airgate.identities.put_inline_policy("user", "alice", "no",
                                                policy(deny("sts:AssumeRole", arn)))
    assert failure(lambda: assume(server, alice, arn)) == (
        "AccessDenied", 403, f"User: {user_arn('alice')} is not authorized to perform: "
                             f"sts:AssumeRole on resource: {arn}")


def test_a_trust_policy_naming_the_account_needs_an_identity_policy(
        airgate_server: RunningAirgate) -> None:
    server = airgate_server
    arn = role(server, "Shared", trust({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}), LIST_ONLY)
    other = role(server, "Other", trust({"AWS": ACCOUNT}), LIST_ONLY)
    bob = user(server, "bob")
    carol = user(server, "carol", policy(allow("sts:AssumeRole", arn)))
    denial = f"is not authorized to perform: sts:AssumeRole on resource: {arn}"
    code, status, message = failure(lambda: assume(server, bob, arn))
    assert (code, status) == ("AccessDenied", 403) and message.endswith(denial)
    assert assume(server, carol, arn)["AccessKeyId"].startswith("ASIA")
    assert failure(lambda: assume(server, carol, other))[:2] == ("AccessDenied", 403)


def test_a_trust_policy_without_the_caller_refuses(airgate_server: RunningAirgate) -> None:
    server = airgate_server
    mallory = user(server, "mallory", policy(allow("sts:AssumeRole")))
    for name, principal in [("ForAlice", {"AWS": user_arn("alice")}),
                            ("ForAirflow", {"Service": "airflow.amazonaws.com"}),
                            ("ForAnotherAccount", {"AWS": "arn:aws:iam::111122223333:root"})]:
        arn = role(server, name, trust(principal), ALL_AIRFLOW)
        assert failure(lambda arn=arn: assume(server, mallory, arn)) == (
            "AccessDenied", 403, f"User: {user_arn('mallory')} is not authorized to perform: "
                                 f"sts:AssumeRole on resource: {arn}")
    # A role that does not exist is refused the same way, saying nothing of it.
    missing = role_arn("Missing")
    assert failure(lambda: assume(server, mallory, missing))[:2] == ("AccessDenied", 403)


def test_external_id(airgate_server: RunningAirgate) -> None:
    server = airgate_server
    vendor = user(server, "vendor")
    arn = role(server, "ForVendor", trust(
        {"AWS": user_arn("vendor")}, Condition={"StringEquals": {"sts:ExternalId": "Ex-123"}}))
    assert failure(lambda: assume(server, vendor, arn))[:2] == ("AccessDenied", 403)
    assert failure(lambda: assume(server, vendor, arn, ExternalId="Ex-124"))[:2] == (
        "AccessDenied", 403)
    assert assume(server, vendor, arn, ExternalId="Ex-123")["AccessKeyId"].startswith("ASIA")


def test_duration_seconds(airgate_server: RunningAirgate) -> None:
    server = airgate_server
    alice = user(server, "alice")
    short = role(server, "Short", trust({"AWS": user_arn("alice")}))
    long = role(server, "Long", trust({"AWS": user_arn("alice")}), max_session_duration=43200)
    sts = client(server, "sts", alice, parameter_validation=False)

    def code(arn: str, seconds: int) -> tuple[str, int, str]:
        return failure(lambda: sts.assume_role(RoleArn=arn, RoleSessionName="s1",
                                               DurationSeconds=seconds))

    assert code(short, 899) == (
        "ValidationError", 400, "1 validation error detected: Value '899' at "
        "'durationSeconds' failed to satisfy constraint: Member must have value greater than "
        "or equal to 900")
    assert code(short, 3601) == ("ValidationError", 400, "The requested DurationSeconds "
                                 "exceeds the MaxSessionDuration set for this role.")
    assert code(long, 43201) == (
        "ValidationError", 400, "1 validation error detected: Value '43201' at "
        "'durationSeconds' failed to satisfy constraint: Member must have value less than or "
        "equal to 43200")
    expires_after(lambda: sts.assume_role(RoleArn=long, RoleSessionName="s1",
                                          DurationSeconds=43200), 43200)
    expires_after(lambda: sts.assume_role(RoleArn=short, RoleSessionName="s1"), 3600)


@pytest.mark.parametrize(("name", "problem"), [
    ("a", "Member must have length greater than or equal to 2"),
    ("x" * 65, "Member must have length less than or equal to 64"),
    ("night shift", r"Member must satisfy regular expression pattern: [\w+=,.@-]*"),
    ("n/ght", r"Member must satisfy regular expression pattern: [\w+=,.@-]*"),
    ("\u00e9t\u00e9", r"Member must satisfy regular expression pattern: [\w+=,.@-]*"),
])
def test_role_session_name_rules(airgate_server: RunningAirgate, name: str,
                                 problem: str) -> None:
    alice = user(airgate_server, "alice")
    arn = role(airgate_server, "R", trust({"AWS": user_arn("alice")}))
    sts = client(airgate_server, "sts", alice, parameter_validation=False)
    assert failure(lambda: sts.assume_role(RoleArn=arn, RoleSessionName=name)) == (
        "ValidationError", 400, f"1 validation error detected: Value '{name}' at "
        f"'roleSessionName' failed to satisfy constraint: {problem}")
    allowed = "a.b@c=d,e-f_g+h"
    session = assume(airgate_server, alice, arn, RoleSessionName=allowed)
    assert client(airgate_server, "sts", session).get_caller_identity()["Arn"].endswith(
        f"/R/{allowed}")


def test_a_session_policy_narrows_the_role(airgate_server: RunningAirgate) -> None:
    server = airgate_server
    alice = user(server, "alice")
    arn = role(server, "Builder", trust({"AWS": user_arn("alice")}), ALL_AIRFLOW)
    full = client(server, "mwaa", assume(server, alice, arn))
    narrowed = client(server, "mwaa", assume(server, alice, arn, Policy=LIST_ONLY))
    assert narrowed.list_environments()["Environments"] == []
    code, status, message = failure(
        lambda: narrowed.create_environment(**create_environment_args("blocked")))
    assert (code, status) == ("AccessDeniedException", 403)
    assert message == (f"User: arn:aws:sts::{ACCOUNT}:assumed-role/Builder/session-1 is not "
                       "authorized to perform: airflow:CreateEnvironment on resource: "
                       f"arn:aws:airflow:us-east-1:{ACCOUNT}:environment/blocked")
    assert full.create_environment(**create_environment_args("built"))["Arn"].endswith(
        "environment/built")
    # A session policy grants nothing the role does not have.
    lister = role(server, "Lister", trust({"AWS": user_arn("alice")}), LIST_ONLY)
    widened = client(server, "mwaa", assume(server, alice, lister, Policy=ALL_AIRFLOW))
    assert failure(lambda: widened.get_environment(Name="built"))[:2] == (
        "AccessDeniedException", 403)
    # Managed policies as session policies.
    managed = server.airgate.identities.create_policy("ListOnly", LIST_ONLY)["Arn"]
    by_arn = client(server, "mwaa", assume(server, alice, arn, PolicyArns=[{"arn": managed}]))
    assert by_arn.list_environments()["Environments"] == ["built"]
    assert failure(lambda: by_arn.get_environment(Name="built"))[:2] == (
        "AccessDeniedException", 403)
    assert failure(lambda: assume(server, alice, arn, Policy='{"Statement": []}'))[:2] == (
        "MalformedPolicyDocument", 400)


def expires_after(call: Callable[[], dict[str, Any]], seconds: int) -> dict[str, Any]:
    """The call's Credentials, checked to expire `seconds` after the call was answered
    (bracketed by the clock before and after it; airgate keeps whole seconds)."""
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    credentials = call()["Credentials"]
    after = datetime.datetime.now(datetime.UTC)
    lifetime = datetime.timedelta(seconds=seconds)
    assert before + lifetime <= credentials["Expiration"] <= after + lifetime
    return dict(credentials)


def _expire(server: RunningAirgate, access_key_id: str) -> None:
    """Move a temporary key's expiry into the past, as time would."""
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
    with server.airgate.db.transaction() as session:
        session.execute(update(AccessKey).where(AccessKey.access_key_id == access_key_id)
                        .values(expires_at=past))
        bump(session, "identities")
    server.airgate.generations.changed_locally()


def test_temporary_credentials_against_mwaa_and_their_refusals(
        airgate_server: RunningAirgate) -> None:
    server = airgate_server
    alice = user(server, "alice")
    arn = role(server, "Reader", trust({"AWS": user_arn("alice")}), LIST_ONLY)
    session = assume(server, alice, arn)
    assert client(server, "mwaa", session).list_environments()["Environments"] == []

    invalid = "The security token included in the request is invalid."
    forged = {**session, "SessionToken": session["SessionToken"][:-4] + "AAAA"}
    assert failure(lambda: client(server, "mwaa", forged).list_environments()) == (
        "UnrecognizedClientException", 403, invalid)
    assert failure(lambda: client(server, "sts", forged).get_caller_identity()) == (
        "InvalidClientTokenId", 403, invalid)
    tokenless = {k: v for k, v in session.items() if k != "SessionToken"}
    assert failure(lambda: client(server, "sts", tokenless).get_caller_identity()) == (
        "InvalidClientTokenId", 403, invalid)

    _expire(server, session["AccessKeyId"])
    expired = "The security token included in the request is expired"
    assert failure(lambda: client(server, "mwaa", session).list_environments()) == (
        "ExpiredTokenException", 403, expired)
    assert failure(lambda: client(server, "sts", session).get_caller_identity()) == (
        "ExpiredToken", 403, expired)
    assert failure(lambda: client(server, "iam", session).list_users()) == (
        "ExpiredToken", 403, expired)


def test_get_session_token(airgate_server: RunningAirgate) -> None:
    server = airgate_server
    alice = user(server, "alice", LIST_ONLY, policy(allow(["iam:*", "sts:*"])))
    answer = expires_after(lambda: client(server, "sts", alice).get_session_token(), 43200)
    session = temporary(answer)
    assert session["AccessKeyId"].startswith("ASIA")
    assert client(server, "sts", session).get_caller_identity()["Arn"] == user_arn("alice")
    assert client(server, "mwaa", session).list_environments()["Environments"] == []
    assert failure(lambda: client(server, "mwaa", session).get_environment(Name="x"))[:2] == (
        "AccessDeniedException", 403)
    # Not with temporary credentials; and they can't call IAM (no MFA here).
    refused = ("AccessDenied", 403, "Cannot call GetSessionToken with session credentials")
    assert failure(lambda: client(server, "sts", session).get_session_token()) == refused
    assert failure(lambda: client(server, "iam", session).list_users()) == (
        "InvalidClientTokenId", 403, "The security token included in the request is invalid.")
    # Temporary keys are not among the user's access keys.
    assert [key["AccessKeyId"] for key in client(server, "iam", alice).list_access_keys()[
        "AccessKeyMetadata"]] == [alice["AccessKeyId"]]
    arn = role(server, "R", trust({"AWS": user_arn("alice")}))
    assert failure(lambda: client(server, "sts", assume(server, alice, arn))
                   .get_session_token()) == refused
    assert failure(lambda: client(server, "sts", alice, parameter_validation=False)
                   .get_session_token(DurationSeconds=129601))[:2] == ("ValidationError", 400)
    expires_after(lambda: client(server, "sts", alice).get_session_token(DurationSeconds=900),
                  900)


def test_role_chaining_is_limited_to_an_hour(airgate_server: RunningAirgate) -> None:
    server = airgate_server
    alice = user(server, "alice")
    first = role(server, "First", trust({"AWS": user_arn("alice")}),
                 policy(allow("sts:AssumeRole")))
    second = role(server, "Second", trust({"AWS": role_arn("First")}),
                  max_session_duration=43200)
    session = assume(server, alice, first)
    assert failure(lambda: assume(server, session, second, DurationSeconds=7200)) == (
        "ValidationError", 400, "The requested DurationSeconds exceeds the 1 hour session "
                                "limit for roles assumed by role chaining.")
    chained = assume(server, session, second)
    assert client(server, "sts", chained).get_caller_identity()["Arn"] == \
        f"arn:aws:sts::{ACCOUNT}:assumed-role/Second/session-1"


def test_session_tags_and_mfa_are_refused(airgate_server: RunningAirgate) -> None:
    alice = user(airgate_server, "alice")
    arn = role(airgate_server, "R", trust({"AWS": user_arn("alice")}))
    assert failure(lambda: assume(airgate_server, alice, arn,
                                  Tags=[{"Key": "team", "Value": "data"}])) == (
        "ValidationError", 400, "airgate does not support session tags (Tags)")
    assert failure(lambda: client(airgate_server, "sts", alice).get_session_token(
        SerialNumber="arn:aws:iam::000000000000:mfa/alice", TokenCode="123456"))[:2] == (
        "AccessDenied", 403)


def test_sts_operations_not_served(airgate_server: RunningAirgate) -> None:
    sts = client(airgate_server, "sts")
    assert failure(lambda: sts.get_federation_token(Name="someone")) == (
        "InvalidAction", 400, "airgate does not serve GetFederationToken yet")
    assert failure(lambda: sts.decode_authorization_message(EncodedMessage="x"))[:2] == (
        "InvalidAction", 400)


def test_operator_issued_sessions_still_work(airgate_server: RunningAirgate) -> None:
    """`airgate iam assume-role` issues without a caller; its sessions are like others."""
    identities = airgate_server.airgate.identities
    identities.create_role("Ops", json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "airflow.amazonaws.com"},
         "Action": "sts:AssumeRole"}]}))
    identities.put_inline_policy("role", "Ops", "list", LIST_ONLY)
    session = temporary(identities.assume_role("Ops", "operator")["Credentials"])
    assert client(airgate_server, "mwaa", session).list_environments()["Environments"] == []
