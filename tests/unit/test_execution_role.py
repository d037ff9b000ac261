"""Execution roles: what an environment is given, who may fetch its role's credentials, and
when those stop (trust taken away, role deleted, environment deleted). Real identities and
environment records in a SQLite store; no Airflow (tests/e2e/test_execution_roles.py)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from airgate.config import Settings
from airgate.environments.execution_role import ROUTE, ExecutionRoles, Refusal
from airgate.environments.store import EnvironmentRecord, EnvironmentStore
from airgate.server import open_state

ACCOUNT = "000000000000"
ROLE = "runner"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/service-role/{ROLE}"
MWAA_TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "sts:AssumeRole",
    "Principal": {"Service": ["airflow.amazonaws.com", "airflow-env.amazonaws.com"]}}]}
ENDPOINT = "http://127.0.0.1:8999"


class Clock:
    def __init__(self) -> None:
        self.ahead = datetime.timedelta()

    def __call__(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC) + self.ahead


class World:
    def __init__(self, tmp_path: Path) -> None:
        db, self.identities, generations = open_state(Settings(home=tmp_path / "home"))
        self.store = EnvironmentStore(db, generations)
        self.clock = Clock()
        self.roles = ExecutionRoles(self.identities, self.store, "us-east-1", ACCOUNT,
                                    b"k" * 32, ENDPOINT, clock=self.clock)
        self.identities.create_role(ROLE, json.dumps(MWAA_TRUST), path="/service-role/")

    def environment(self, name: str, role_arn: str = ROLE_ARN) -> EnvironmentRecord:
        return self.store.create(name, {"ExecutionRoleArn": role_arn, "AirflowVersion": "3.3.2"},
                                 {}, datetime.datetime.now(datetime.UTC), "test")

    def fetch(self, record: EnvironmentRecord, token: str | None = None) -> dict[str, str]:
        return self.roles.credentials(record.name, token or self.roles.token(record))

    def refused(self, record: EnvironmentRecord, token: str | None = None) -> tuple[int, str]:
        with pytest.raises(Refusal) as refusal:
            self.fetch(record, token)
        return refusal.value.status, refusal.value.code

    def caller(self, answer: dict[str, str]) -> Any:
        credential = self.identities.credential(answer["AccessKeyId"])
        return None if credential is None else credential.principal.arn


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_an_environment_is_told_where_and_how_to_fetch(world: World, tmp_path: Path) -> None:
    alpha = world.environment("alpha")
    variables, said = world.roles.variables(alpha, tmp_path / "keys")
    assert variables == {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{ENDPOINT}{ROUTE}alpha",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": world.roles.token(alpha),
        "AWS_ENDPOINT_URL_MWAA": ENDPOINT, "AWS_ENDPOINT_URL_STS": ENDPOINT,
        "AWS_ENDPOINT_URL_IAM": ENDPOINT, "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    assert said == f"acting as execution role {ROLE_ARN} (credentials from {ENDPOINT})"
    assert len(world.roles.token(alpha)) == 64


def test_a_role_airgate_does_not_have_gives_nothing(world: World, tmp_path: Path) -> None:
    other = f"arn:aws:iam::{ACCOUNT}:role/elsewhere"
    record = world.environment("alpha", other)
    assert world.roles.variables(record, tmp_path) == (
        {}, f"execution role {other} not used: the role {other} does not exist in airgate's "
            "IAM")
    assert world.refused(record) == (404, "NoSuchEntity")


def test_an_endpoint_sdks_would_refuse_gives_nothing(world: World, tmp_path: Path) -> None:
    roles = ExecutionRoles(world.identities, world.store, "us-east-1", ACCOUNT, b"k" * 32,
                           "http://10.0.0.5:8999")
    variables, said = roles.variables(world.environment("alpha"), tmp_path)
    assert variables == {}
    assert "plain HTTP only from a loopback address" in said


def test_the_token_holder_gets_the_role_s_session(world: World) -> None:
    alpha = world.environment("alpha")
    answer = world.fetch(alpha)
    assert set(answer) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "RoleArn"}
    assert answer["AccessKeyId"].startswith("ASIA") and answer["RoleArn"] == ROLE_ARN
    assert world.caller(answer) == f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/alpha"
    expires = datetime.datetime.strptime(answer["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.UTC)
    assert datetime.timedelta(minutes=59) < expires - datetime.datetime.now(datetime.UTC) \
        <= datetime.timedelta(hours=1)
    assert world.fetch(alpha) == answer  # the same session while it has long left


def test_a_session_near_its_end_is_replaced(world: World) -> None:
    alpha = world.environment("alpha")
    first = world.fetch(alpha)
    world.clock.ahead = datetime.timedelta(minutes=39)  # 21 minutes left: still given out
    assert world.fetch(alpha) == first
    world.clock.ahead = datetime.timedelta(minutes=41)  # 19 minutes left
    second = world.fetch(alpha)
    assert second["AccessKeyId"] != first["AccessKeyId"]
    # Another process may have fetched the first a moment ago: it runs out by itself.
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/alpha"
    assert world.caller(first) == world.caller(second) == session


@pytest.mark.parametrize("token", ["", "0" * 64, "not a token"])
def test_a_wrong_token_gets_nothing(world: World, token: str) -> None:
    alpha = world.environment("alpha")
    with pytest.raises(Refusal) as refusal:
        world.roles.credentials("alpha", token)
    assert (refusal.value.status, refusal.value.code) == (403, "AccessDenied")
    with pytest.raises(Refusal):
        world.roles.credentials("alpha", None)
    assert world.fetch(alpha)["AccessKeyId"].startswith("ASIA")


def test_one_environment_s_token_is_no_good_for_another(world: World) -> None:
    alpha, beta = world.environment("alpha"), world.environment("beta")
    assert world.refused(beta, world.roles.token(alpha)) == (403, "AccessDenied")
    # A missing environment answers as a wrong token does.
    with pytest.raises(Refusal) as refusal:
        world.roles.credentials("gamma", world.roles.token(alpha))
    assert (refusal.value.status, refusal.value.code) == (403, "AccessDenied")


def test_a_recreated_environment_has_a_new_token(world: World) -> None:
    first = world.environment("alpha")
    world.store.remove("alpha")
    again = world.environment("alpha")
    assert world.roles.token(first) != world.roles.token(again)
    assert world.refused(again, world.roles.token(first)) == (403, "AccessDenied")


def test_trust_taken_away_stops_the_session_at_once(world: World) -> None:
    alpha = world.environment("alpha")
    answer = world.fetch(alpha)
    world.identities.update_assume_role_policy(ROLE, json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]}))
    assert world.refused(alpha) == (403, "AccessDenied")
    assert world.caller(answer) is None


def test_trust_taken_away_stops_every_session_given_out(world: World) -> None:
    alpha = world.environment("alpha")
    first = world.fetch(alpha)
    world.clock.ahead = datetime.timedelta(minutes=41)
    second = world.fetch(alpha)
    world.identities.update_assume_role_policy(ROLE, json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": ACCOUNT}}]}))
    assert world.refused(alpha) == (403, "AccessDenied")
    assert world.caller(first) is None and world.caller(second) is None


def test_a_deleted_role_ends_its_sessions(world: World) -> None:
    alpha = world.environment("alpha")
    answer = world.fetch(alpha)
    world.identities.delete_role(ROLE)
    assert world.caller(answer) is None
    assert world.refused(alpha) == (404, "NoSuchEntity")


def test_source_conditions_pick_the_environment(world: World) -> None:
    world.identities.update_assume_role_policy(ROLE, json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"Service": "airflow-env.amazonaws.com"},
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT},
                          "ArnEquals": {"aws:SourceArn":
                                        f"arn:aws:airflow:us-east-1:{ACCOUNT}:environment/alpha"}
                          }}]}))
    alpha, beta = world.environment("alpha"), world.environment("beta")
    assert world.fetch(alpha)["AccessKeyId"].startswith("ASIA")
    assert world.refused(beta) == (403, "AccessDenied")


def test_a_deleted_environment_s_session_ends(world: World) -> None:
    alpha = world.environment("alpha")
    answer = world.fetch(alpha)
    beta = world.environment("beta")
    kept = world.fetch(beta)
    world.roles.forget(alpha)
    assert world.caller(answer) is None
    assert world.caller(kept) == f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/beta"


def test_sessions_given_before_a_restart_are_revoked_too(world: World) -> None:
    alpha = world.environment("alpha")
    before = world.fetch(alpha)
    restarted = ExecutionRoles(world.identities, world.store, "us-east-1", ACCOUNT,
                               b"k" * 32, ENDPOINT)
    world.identities.update_assume_role_policy(ROLE, json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": ACCOUNT}}]}))
    with pytest.raises(Refusal):
        restarted.credentials("alpha", restarted.token(alpha))
    assert world.caller(before) is None


def test_over_tls_the_sdks_trust_airgate_s_ca_and_everyone_else_s(world: World,
                                                                   tmp_path: Path) -> None:
    import certifi

    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nairgate's own CA\n-----END CERTIFICATE-----\n")
    roles = ExecutionRoles(world.identities, world.store, "us-east-1", ACCOUNT, b"k" * 32,
                           "https://10.0.0.5:8999", ca_bundle=ca)
    variables, _ = roles.variables(world.environment("alpha"), tmp_path / "keys")
    assert variables["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == \
        f"https://10.0.0.5:8999{ROUTE}alpha"  # any host will do over https
    bundle = Path(variables["AWS_CA_BUNDLE"])
    assert bundle == tmp_path / "keys" / "ca-bundle.pem"
    text = bundle.read_text()
    assert text.startswith(Path(certifi.where()).read_text()) and text.endswith(ca.read_text())
