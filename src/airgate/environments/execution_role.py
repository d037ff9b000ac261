"""An environment acts as its execution role, as on MWAA: tasks, hooks and any AWS SDK call
inside it get the role's temporary credentials without a key to configure.

The credentials reach the environment the way AWS SDKs already look for them on AWS compute:
the container credentials provider. Each environment's processes get
`AWS_CONTAINER_CREDENTIALS_FULL_URI` (airgate's listener, a path naming the environment) and
`AWS_CONTAINER_AUTHORIZATION_TOKEN` (a token only that environment is given); botocore,
aiobotocore and the AWS CLI fetch credentials from there and fetch them again as they near
their end. The standard `AWS_ENDPOINT_URL_MWAA`, `_STS` and `_IAM` point those three
services at airgate; every other service keeps its usual endpoint.

Each fetch checks again that the role exists and that its trust policy lets MWAA's service
principals (`airflow.amazonaws.com`, `airflow-env.amazonaws.com`) assume it for this
environment (`aws:SourceAccount`, `aws:SourceArn`). When it no longer does, every session
of the role named after the environment is revoked at once (in the store, so an airgate
restart forgets none) and the fetch is refused; a deleted role's sessions end with it. What
the credentials may do is the role's policies, evaluated on every call. The session is named
after the environment, so another environment's Airflow sees `assumed-role/ROLE/ENVIRONMENT`
as its caller.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import ipaddress
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import certifi

from airgate.auth.identities import Identities
from airgate.auth.policy import AuthorizationRequest, Caller, Decision, evaluate_trust
from airgate.environments.store import EnvironmentRecord, EnvironmentStore
from airgate.errors import ResourceNotFoundException
from airgate.logs import log_fields
from airgate.mwaa.arns import environment_arn

__all__ = ["ROUTE", "SERVICES", "ExecutionRoles", "Refusal"]

ROUTE = "/airgate/execution-role-credentials/"
# The service principals MWAA's user guide puts in an execution role's trust policy.
SERVICES = ("airflow.amazonaws.com", "airflow-env.amazonaws.com")
SESSION_SECONDS = 3600
# A session is given out again while it has this long left; after that a new one is issued
# (SDKs ask again 15 minutes before the end, and must never be handed one that near it).
REUSE_MARGIN = datetime.timedelta(minutes=20)
_SESSION_NAME_MAX = 64  # sts:RoleSessionName

_log = logging.getLogger("airgate.execution_role")


class Refusal(Exception):
    """A fetch that gets no credentials: the status and the reason, for the caller."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True, slots=True)
class _Session:
    role_arn: str
    answer: dict[str, str]  # as the container credentials provider reads it
    expires: datetime.datetime


class ExecutionRoles:
    """Execution-role credentials for the environments this airgate runs."""

    def __init__(self, identities: Identities, environments: EnvironmentStore, region: str,
                 account_id: str, token_key: bytes, endpoint: str,
                 ca_bundle: Path | None = None, session_seconds: int = SESSION_SECONDS,
                 clock: Callable[[], datetime.datetime] | None = None) -> None:
        self._identities = identities
        self._environments = environments
        self._region = region
        self._account_id = account_id
        self._token_key = token_key
        self._endpoint = endpoint.rstrip("/")
        self._ca_bundle = ca_bundle
        self._session_seconds = session_seconds
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._sessions: dict[str, _Session] = {}  # the one given out now, per environment
        self._guard = threading.Lock()

    # --- what an environment is given -------------------------------------------------

    def variables(self, record: EnvironmentRecord, keys: Path) -> tuple[dict[str, str], str]:
        """The process environment that makes `record`'s environment act as its execution
        role, and a sentence for its setup log. Nothing when the role can't be used (it
        is not in airgate's IAM, its trust policy leaves MWAA out, or SDKs could not reach
        airgate's listener from the environment): the environment runs as before."""
        arn = str(record.spec.get("ExecutionRoleArn", ""))
        unreachable = _unreachable(self._endpoint)
        if unreachable:
            return {}, f"execution role {arn} not used: {unreachable}"
        try:
            self._check_role(record)
        except Refusal as refusal:
            return {}, f"execution role {arn} not used: {refusal.message}"
        variables = {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{self._endpoint}{ROUTE}{record.name}",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": self.token(record),
            "AWS_ENDPOINT_URL_MWAA": self._endpoint,
            "AWS_ENDPOINT_URL_STS": self._endpoint,
            "AWS_ENDPOINT_URL_IAM": self._endpoint,
            # MWAA's model prefixes its hosts (api., env.); airgate's endpoint has none.
            "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
            "AWS_DEFAULT_REGION": self._region,
            "AWS_REGION": self._region,
        }
        if self._ca_bundle is not None:
            variables["AWS_CA_BUNDLE"] = str(_trust_bundle(self._ca_bundle, keys))
        return variables, f"acting as execution role {arn} (credentials from {self._endpoint})"

    def token(self, record: EnvironmentRecord) -> str:
        """The environment's token: bound to its name and creation, so a token is never
        good for another environment, nor for a later one of the same name."""
        message = f"{record.name}\0{record.created_at.isoformat()}".encode()
        return hmac.new(self._token_key, message, hashlib.sha256).hexdigest()

    # --- the credentials endpoint -----------------------------------------------------

    def credentials(self, name: str, authorization: str | None) -> dict[str, str]:
        """The environment's current role credentials, for the holder of its token;
        Refusal otherwise."""
        try:
            record = self._environments.get(name)
        except ResourceNotFoundException:
            record = None
        # One answer for a missing environment and a wrong token: a caller learns nothing
        # about environments it has no token for.
        if record is None or authorization is None or not hmac.compare_digest(
                authorization.encode(), self.token(record).encode()):
            raise Refusal(403, "AccessDenied", "Not authorized for this environment's "
                                               "execution role credentials")
        with self._guard:
            try:
                role_name, role_arn = self._check_role(record)
            except Refusal:
                self._end(record)
                raise
            session = self._sessions.get(name)
            now = self._clock()
            if session is None or session.role_arn != role_arn \
                    or session.expires - now < REUSE_MARGIN:
                session = self._issue(record, role_name, role_arn)
                self._sessions[name] = session
            return session.answer

    def _check_role(self, record: EnvironmentRecord) -> tuple[str, str]:
        """The role's name and ARN, if it exists and MWAA may assume it for `record`."""
        arn = str(record.spec.get("ExecutionRoleArn", ""))
        role = self._identities.role_named_by(arn)
        trust = self._identities.trust_policy(arn) if role is not None else None
        if role is None or trust is None:
            raise Refusal(404, "NoSuchEntity", f"the role {arn} does not exist in airgate's "
                                               "IAM")
        request = AuthorizationRequest("sts:AssumeRole", arn, {
            "aws:SourceAccount": self._account_id,
            "aws:SourceArn": environment_arn(self._region, self._account_id, record.name)})
        if not any(evaluate_trust(trust, request, Caller.of_service(service)).decision
                   is Decision.ALLOW for service in SERVICES):
            raise Refusal(403, "AccessDenied", f"the trust policy of {arn} does not let "
                                               f"{' or '.join(SERVICES)} assume it")
        return str(role["RoleName"]), str(role["Arn"])

    def _issue(self, record: EnvironmentRecord, role_name: str, role_arn: str) -> _Session:
        # The session it replaces is left to run out (unless the role is taken away):
        # another process of the environment may have fetched it a moment ago.
        issued = self._identities.assume_role(role_name, _session_name(record),
                                              self._session_seconds)
        credentials = issued["Credentials"]
        expires: datetime.datetime = credentials["Expiration"]
        log_fields(_log, "execution role session issued", environment=record.name,
                   role=role_arn, access_key_id=credentials["AccessKeyId"],
                   expires=expires.isoformat())
        return _Session(role_arn, {
            "AccessKeyId": credentials["AccessKeyId"],
            "SecretAccessKey": credentials["SecretAccessKey"],
            "Token": credentials["SessionToken"],
            "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "RoleArn": role_arn,
        }, expires)

    def _end(self, record: EnvironmentRecord) -> None:
        """Revoke every session the environment was given: its role may no longer be used."""
        self._sessions.pop(record.name, None)
        self._identities.end_role_sessions(str(record.spec.get("ExecutionRoleArn", "")),
                                           _session_name(record))

    def forget(self, record: EnvironmentRecord) -> None:
        """The environment is being deleted: its sessions end with it."""
        with self._guard:
            self._end(record)


def _session_name(record: EnvironmentRecord) -> str:
    return record.name[:_SESSION_NAME_MAX]


def _unreachable(endpoint: str) -> str | None:
    """Why AWS SDKs would refuse to fetch credentials from `endpoint`, if they would: they
    take plain HTTP only from a loopback address."""
    scheme, _, rest = endpoint.partition("://")
    if scheme == "https":
        return None
    host = rest.rsplit(":", 1)[0].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return None
    return (f"airgate listens on {endpoint}, and AWS SDKs fetch container credentials over "
            "plain HTTP only from a loopback address (use --tls, or listen on 127.0.0.1)")


def _trust_bundle(ca_bundle: Path, keys: Path) -> Path:
    """The CAs an environment's SDKs trust: the usual ones and airgate's local CA, so that
    airgate's endpoints and every other service verify (AWS_CA_BUNDLE replaces, not adds)."""
    bundle = keys / "ca-bundle.pem"
    keys.mkdir(parents=True, exist_ok=True)
    bundle.write_text(Path(certifi.where()).read_text() + "\n" + ca_bundle.read_text())
    bundle.chmod(0o644)
    return bundle
