"""The account's identities: users, roles, access keys, role sessions and their policies.

This is what `airgate iam ...` manages and what the gateway consults on every request to
learn who signed it and which policies apply. Names, ids and errors follow IAM and STS
(AIDA/AROA/ANPA ids, AKIA/ASIA access keys, NoSuchEntity, EntityAlreadyExists, ...), so that
anyone who knows the AWS CLI knows these commands.

Names are "not distinguished by case", as IAM's documentation says of user, role and policy
names (botocore's iam model, CreateUser's UserName): no name may equal another ignoring
case, and a name in any case finds its entity, which keeps the case it was created with.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import functools
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from airgate.auth.policy import MalformedPolicyDocument, Policy, parse_policy, parse_trust_policy
from airgate.auth.secrets import SecretBox
from airgate.errors import ExpiredTokenException, ModeledError, UnrecognizedClientException
from airgate.store.db import Database
from airgate.store.generations import Generations, NotCached, bump
from airgate.store.schema import (
    AccessKey,
    InlinePolicy,
    ManagedPolicy,
    PolicyAttachment,
    Role,
    SessionPolicy,
    User,
)

PrincipalKind = Literal["user", "role"]

# Paths as botocore's iam model has them: pathType for users and roles, policyPathType
# (no `*`, `~`, ...) for managed policies; at most 512 characters.
_PATH = re.compile(r"/([\x21-\x7e]{1,510}/)?")
_POLICY_PATH = re.compile(r"(?=.{1,512}\Z)(/[A-Za-z0-9.,+@=_-]+)*/")
_MAX_KEYS_PER_USER = 2
_MAX_ATTACHED = 10  # managed policies per user and per role: IAM's default quota
# Expired temporary credentials are kept this long (answering ExpiredToken), then dropped.
_EXPIRED_KEPT = datetime.timedelta(days=1)
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_INVALID_TOKEN = "The security token included in the request is invalid."
_GENERATION = "identities"
POLICY_VERSION = "v1"  # managed policies have one version: CreatePolicyVersion is not served


class IamError(ModeledError):
    """An IAM/STS error, named by its AWS code (NoSuchEntity, EntityAlreadyExists, ...)."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _random_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_BASE32) for _ in range(16))


def _secret_access_key() -> str:
    return base64.b64encode(secrets.token_bytes(30)).decode()  # 40 characters


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise IamError("ValidationError", f"The specified value for {what} is invalid: "
                       f"it must match {pattern.pattern}")
    return value


@dataclass(frozen=True, slots=True)
class _NameRule:
    """A name as botocore's iam and sts models define it (userNameType, roleNameType,
    policyNameType, roleSessionNameType): `[\\w+=,.@-]` with the model's (Java's) ASCII
    `\\w`, "upper and lowercase alphanumeric characters with no spaces" as its
    documentation says; so `élise` or a fullwidth `admin` is no IAM name."""

    member: str  # as AWS's validation messages name it
    min_length: int
    max_length: int

    _CHARACTERS = re.compile(r"[\w+=,.@-]*", re.ASCII)

    def check(self, value: str) -> str:
        """`value`, or IamError ValidationError worded as AWS words it."""
        if len(value) < self.min_length:
            problem = f"Member must have length greater than or equal to {self.min_length}"
        elif len(value) > self.max_length:
            problem = f"Member must have length less than or equal to {self.max_length}"
        elif not self._CHARACTERS.fullmatch(value):
            problem = r"Member must satisfy regular expression pattern: [\w+=,.@-]+"
        else:
            return value
        raise IamError("ValidationError", f"1 validation error detected: Value '{value}' at "
                       f"'{self.member}' failed to satisfy constraint: {problem}")


_USER_NAME = _NameRule("userName", 1, 64)
_ROLE_NAME = _NameRule("roleName", 1, 64)
_POLICY_NAME = _NameRule("policyName", 1, 128)
_SESSION_NAME = _NameRule("roleSessionName", 2, 64)  # sts

_Named = TypeVar("_Named", User, Role, ManagedPolicy, InlinePolicy)


def _same_name(session: Session, entity: type[_Named], name: str,
               *where: ColumnElement[bool]) -> list[_Named]:
    """The entities (among those `where` selects) whose name equals `name` ignoring case."""
    query = select(entity).where(func.lower(entity.name) == func.lower(name), *where)
    return list(session.scalars(query))


def _pick(candidates: list[_Named], name: str) -> _Named | None:
    """The candidate called `name`: the one with exactly that name, else the only one.

    A store from before names were compared ignoring case may hold several that differ only
    in case; then only an exact name chooses, and anything else is NoSuchEntity.
    """
    exact = next((entity for entity in candidates if entity.name == name), None)
    if exact is not None or not candidates:
        return exact
    if len(candidates) == 1:
        return candidates[0]
    names = ", ".join(sorted(entity.name for entity in candidates))
    raise IamError("NoSuchEntity", f"No entity is named exactly {name}, and {names} differ "
                   "only in case: give one of those names exactly.")


def _already_exists(message: str, name: str, existing: list[_Named]) -> IamError:
    """EntityAlreadyExists, saying which name took this one when it differs in case."""
    if all(entity.name != name for entity in existing):
        message += (f" Existing name: {existing[0].name} (IAM names are not distinguished by "
                    "case).")
    return IamError("EntityAlreadyExists", message)


def _parse_document(document: str) -> Policy:
    try:
        return _parsed(document)
    except MalformedPolicyDocument as error:
        raise IamError("MalformedPolicyDocument", str(error)) from None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who signed a request, as policy evaluation and Airflow need to see them."""

    # aws:PrincipalType; "Account" is the account's root, as which the operator (whoever
    # holds the airgate home) acts through `airgate iam`.
    kind: Literal["User", "AssumedRole", "Account"]
    arn: str  # the caller's ARN: a user, or arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION
    principal_arn: str  # aws:PrincipalArn: the user's or the role's ARN
    user_id: str  # aws:userid: AIDA..., or AROA...:SESSION
    username: str | None  # aws:username, for users only
    policies: tuple[Policy, ...]
    # A role session's session policies: it may do only what these also allow.
    session_policies: tuple[Policy, ...] = ()
    temporary: bool = False  # signed with temporary credentials (a session token)

    @property
    def airflow_identity(self) -> str:
        """How Airflow names this caller: `user/alice`, `assumed-role/Role/session`."""
        return self.arn.split(":", 5)[5]


@dataclass(frozen=True, slots=True)
class Credential:
    """An access key as the verifier needs it: the secret, and whom it belongs to."""

    access_key_id: str
    secret_access_key: str
    principal: Principal
    session_token_sha256: str | None = None  # temporary credentials only
    expires_at: datetime.datetime | None = None

    def check_session(self, presented_token: str | None, now: datetime.datetime) -> None:
        """Temporary credentials need their own session token, unexpired; long-term keys
        take none."""
        if self.session_token_sha256 is None:
            if presented_token:
                raise UnrecognizedClientException(_INVALID_TOKEN)
            return
        presented = _sha256(presented_token or "")
        if not hmac.compare_digest(presented, self.session_token_sha256):
            raise UnrecognizedClientException(_INVALID_TOKEN)
        if self.expires_at is not None and now >= self.expires_at:
            raise ExpiredTokenException("The security token included in the request is expired")


class Identities:
    """IAM for one account, backed by the state store."""

    def __init__(self, db: Database, box: SecretBox, account_id: str,
                 generations: Generations | None = None) -> None:
        self._db = db
        self._box = box
        self.account_id = account_id
        self._generations = generations or Generations(db, max_age=0.0)
        # Resolved credentials, valid while the identities generation is unchanged.
        self._credentials: dict[str, Credential] = {}
        self._cached_version: tuple[int, int] | None = None

    @property
    def box(self) -> SecretBox:
        """What encrypts secrets under the master key (also environments' keys kept in the
        store)."""
        return self._box

    @contextlib.contextmanager
    def _changing(self) -> Iterator[Session]:
        """A write transaction that also tells every cache (in any process) to drop.

        The counter is bumped first: its row lock then queues identity writes one behind
        another on PostgreSQL (SQLite's BEGIN IMMEDIATE already does), so that two creates
        of names equal ignoring case can't both find the name free.
        """
        with self._db.transaction() as session:
            bump(session, _GENERATION)
            yield session
        self._generations.changed_locally()

    # --- ARNs ------------------------------------------------------------------------

    def user_arn(self, user: User) -> str:
        return f"arn:aws:iam::{self.account_id}:user{user.path}{user.name}"

    def role_arn(self, role: Role) -> str:
        return f"arn:aws:iam::{self.account_id}:role{role.path}{role.name}"

    def policy_arn(self, policy: ManagedPolicy) -> str:
        return f"arn:aws:iam::{self.account_id}:policy{policy.path}{policy.name}"

    # --- users -----------------------------------------------------------------------

    def create_user(self, name: str, path: str = "/") -> dict[str, Any]:
        _USER_NAME.check(name)
        _check(_PATH, path, "path")
        with self._changing() as session:
            if taken := _same_name(session, User, name):
                raise _already_exists(f"User with name {name} already exists.", name, taken)
            user = User(user_id=_random_id("AIDA"), name=name, path=path, created_at=_now())
            session.add(user)
            return self._user_view(user)

    def get_user(self, name: str) -> dict[str, Any]:
        with self._db.reading() as session:
            return self._user_view(self._user(session, name))

    def list_users(self) -> list[dict[str, Any]]:
        with self._db.reading() as session:
            return [self._user_view(u) for u in session.scalars(select(User).order_by(User.name))]

    def delete_user(self, name: str) -> None:
        """Only a user without access keys and policies; its temporary credentials end."""
        with self._changing() as session:
            user = self._user(session, name)
            if self._keys_of(session, user):
                raise IamError("DeleteConflict", "Cannot delete entity, must delete access "
                               "keys first.")
            if self._inline_names(session, "user", user.user_id):
                raise IamError("DeleteConflict", "Cannot delete entity, must delete policies "
                               "first.")
            if self._attached(session, "user", user.user_id):
                raise IamError("DeleteConflict", "Cannot delete entity, must detach all "
                               "policies first.")
            session.execute(delete(AccessKey).where(AccessKey.user_id == user.user_id))
            session.delete(user)

    def user_arn_of(self, name: str) -> str | None:
        """The ARN (with its path) of the user called `name`, if there is one."""
        with self._db.reading() as session:
            user = _pick(_same_name(session, User, name), name)
            return None if user is None else self.user_arn(user)

    def _user_view(self, user: User) -> dict[str, Any]:
        return {"UserName": user.name, "UserId": user.user_id, "Arn": self.user_arn(user),
                "Path": user.path, "CreateDate": user.created_at}

    @staticmethod
    def _user(session: Session, name: str) -> User:
        user = _pick(_same_name(session, User, name), name)
        if user is None:
            raise IamError("NoSuchEntity", f"The user with name {name} cannot be found.")
        return user

    # --- access keys -----------------------------------------------------------------

    def create_access_key(self, user_name: str) -> dict[str, Any]:
        """A new long-term key; the only time its secret is ever shown."""
        with self._changing() as session:
            user = self._user(session, user_name)
            if len(self._keys_of(session, user)) >= _MAX_KEYS_PER_USER:
                raise IamError("LimitExceeded", "Cannot exceed quota for AccessKeysPerUser: "
                               f"{_MAX_KEYS_PER_USER}")
            secret = _secret_access_key()
            key = AccessKey(access_key_id=_random_id("AKIA"), user_id=user.user_id,
                            secret_ciphertext=self._box.encrypt(secret), created_at=_now(),
                            status="Active")
            session.add(key)
            view = self._key_view(key, user)
            view["SecretAccessKey"] = secret
            return view

    def list_access_keys(self, user_name: str) -> list[dict[str, Any]]:
        with self._db.reading() as session:
            user = self._user(session, user_name)
            return [self._key_view(k, user) for k in self._keys_of(session, user)]

    def update_access_key(self, user_name: str, access_key_id: str, status: str) -> None:
        if status not in ("Active", "Inactive"):
            raise IamError("ValidationError", "Status must be Active or Inactive")
        with self._changing() as session:
            self._key(session, user_name, access_key_id).status = status

    def delete_access_key(self, user_name: str, access_key_id: str) -> None:
        with self._changing() as session:
            session.delete(self._key(session, user_name, access_key_id))

    def _key(self, session: Session, user_name: str, access_key_id: str) -> AccessKey:
        user = self._user(session, user_name)
        key = session.get(AccessKey, access_key_id)
        if key is None or key.user_id != user.user_id or key.session_token_sha256 is not None:
            raise IamError("NoSuchEntity",
                           f"The Access Key with id {access_key_id} cannot be found.")
        return key

    @staticmethod
    def _keys_of(session: Session, user: User) -> list[AccessKey]:
        """The user's long-term keys (not the temporary ones of GetSessionToken)."""
        query = select(AccessKey).where(AccessKey.user_id == user.user_id,
                                        AccessKey.session_token_sha256.is_(None))
        return list(session.scalars(query.order_by(AccessKey.created_at)))

    @staticmethod
    def _key_view(key: AccessKey, user: User) -> dict[str, Any]:
        return {"UserName": user.name, "AccessKeyId": key.access_key_id, "Status": key.status,
                "CreateDate": key.created_at}

    # --- roles and sessions ----------------------------------------------------------

    def default_trust_policy(self) -> str:
        """A trust policy that trusts this account (whose identities then need an identity
        policy allowing sts:AssumeRole on the role), as the console's default does."""
        return json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": f"arn:aws:iam::{self.account_id}:root"}}]})

    def create_role(self, name: str, assume_role_policy_document: str | None = None,
                    path: str = "/", max_session_duration: int = 3600) -> dict[str, Any]:
        """A role; its trust policy defaults to trusting this account, as the console does."""
        if assume_role_policy_document is None:
            assume_role_policy_document = self.default_trust_policy()
        _ROLE_NAME.check(name)
        _check(_PATH, path, "path")
        if not 3600 <= max_session_duration <= 43200:
            raise IamError("ValidationError", "MaxSessionDuration must be between 3600 and "
                           "43200 seconds")
        _check_trust_policy(assume_role_policy_document)
        with self._changing() as session:
            if taken := _same_name(session, Role, name):
                raise _already_exists(f"Role with name {name} already exists.", name, taken)
            role = Role(role_id=_random_id("AROA"), name=name, path=path, created_at=_now(),
                        assume_role_policy=assume_role_policy_document,
                        max_session_duration=max_session_duration)
            session.add(role)
            return self._role_view(role)

    def get_role(self, name: str) -> dict[str, Any]:
        with self._db.reading() as session:
            return self._role_view(self._role(session, name))

    def list_roles(self) -> list[dict[str, Any]]:
        with self._db.reading() as session:
            return [self._role_view(r) for r in session.scalars(select(Role).order_by(Role.name))]

    def delete_role(self, name: str) -> None:
        with self._changing() as session:
            role = self._role(session, name)
            if self._inline_names(session, "role", role.role_id):
                raise IamError("DeleteConflict", "Cannot delete entity, must delete policies "
                               "first.")
            if self._attached(session, "role", role.role_id):
                raise IamError("DeleteConflict", "Cannot delete entity, must detach all "
                               "policies first.")
            session.execute(delete(AccessKey).where(AccessKey.role_id == role.role_id))
            session.delete(role)

    def update_assume_role_policy(self, name: str, document: str) -> None:
        _check_trust_policy(document)
        with self._changing() as session:
            self._role(session, name).assume_role_policy = document

    def role_arn_of(self, name: str) -> str | None:
        """The ARN (with its path) of the role called `name`, if there is one."""
        with self._db.reading() as session:
            role = _pick(_same_name(session, Role, name), name)
            return None if role is None else self.role_arn(role)

    def role_named_by(self, arn: str) -> dict[str, Any] | None:
        """The role an ARN names (its path exactly, its name in any case), if any."""
        prefix = f"arn:aws:iam::{self.account_id}:role"
        if not arn.startswith(prefix + "/"):
            return None
        path, _, name = arn[len(prefix):].rpartition("/")
        with self._db.reading() as session:
            try:
                role = _pick(_same_name(session, Role, name), name)
            except IamError:
                return None
            if role is None or role.path != path + "/":
                return None
            return self._role_view(role)

    def trust_policy(self, role_arn: str) -> Policy | None:
        """The parsed trust policy of the role `role_arn` names, if that role exists."""
        role = self.role_named_by(role_arn)
        return None if role is None else _parsed_trust(role["AssumeRolePolicyDocument"])

    def assume_role(self, role_name: str, session_name: str, duration_seconds: int = 3600,
                    session_policies: Sequence[str] = ()) -> dict[str, Any]:
        """Temporary credentials for a session of the role, as STS AssumeRole returns them,
        narrowed by `session_policies` (documents) if any are given.

        Who may ask is decided before (the STS service evaluates the trust policy; the
        operator, through `airgate iam`, may issue any).
        """
        _SESSION_NAME.check(session_name)
        for document in session_policies:
            _parse_document(document)
        with self._changing() as session:
            role = self._role(session, role_name)
            if not 900 <= duration_seconds <= role.max_session_duration:
                raise IamError("ValidationError", "The requested DurationSeconds exceeds the "
                               "MaxSessionDuration set for this role." if duration_seconds > 900
                               else "DurationSeconds must be at least 900")
            credentials, key = self._temporary_key(session, duration_seconds,
                                                   role_id=role.role_id,
                                                   session_name=session_name)
            for position, document in enumerate(session_policies):
                session.add(SessionPolicy(access_key_id=key.access_key_id, position=position,
                                          document=document))
            return {
                "Credentials": credentials,
                "AssumedRoleUser": {
                    "AssumedRoleId": f"{role.role_id}:{session_name}",
                    "Arn": f"arn:aws:sts::{self.account_id}:assumed-role/{role.name}/"
                           f"{session_name}",
                },
            }

    def end_role_sessions(self, role_arn: str, session_name: str) -> None:
        """Revoke at once every unexpired session of the role called `session_name` (an
        execution role its environment may no longer use); nothing if there is none."""
        role = self.role_named_by(role_arn)
        if role is None:
            return  # a deleted role's sessions went with it
        with self._changing() as session:
            session.execute(delete(AccessKey).where(
                AccessKey.role_id == role["RoleId"], AccessKey.session_name == session_name))

    def get_session_token(self, user_name: str, duration_seconds: int) -> dict[str, Any]:
        """Temporary credentials of a user, with the user's permissions (STS
        GetSessionToken)."""
        with self._changing() as session:
            user = self._user(session, user_name)
            credentials, _ = self._temporary_key(session, duration_seconds,
                                                 user_id=user.user_id)
            return {"Credentials": credentials}

    def _temporary_key(self, session: Session, duration_seconds: int,
                       **owner: str) -> tuple[dict[str, Any], AccessKey]:
        """A new ASIA key with its session token (stored only as a hash), and the
        Credentials STS returns for it; expired keys of a day ago are dropped."""
        now = _now()
        session.execute(delete(AccessKey).where(AccessKey.expires_at < now - _EXPIRED_KEPT))
        secret = _secret_access_key()
        token = base64.b64encode(secrets.token_bytes(120)).decode()
        expires = now + datetime.timedelta(seconds=duration_seconds)
        key = AccessKey(access_key_id=_random_id("ASIA"), status="Active",
                        secret_ciphertext=self._box.encrypt(secret), created_at=now,
                        session_token_sha256=_sha256(token), expires_at=expires, **owner)
        session.add(key)
        session.flush()
        return ({"AccessKeyId": key.access_key_id, "SecretAccessKey": secret,
                 "SessionToken": token, "Expiration": expires}, key)

    def _role_view(self, role: Role) -> dict[str, Any]:
        return {"RoleName": role.name, "RoleId": role.role_id, "Arn": self.role_arn(role),
                "Path": role.path, "CreateDate": role.created_at,
                "MaxSessionDuration": role.max_session_duration,
                "AssumeRolePolicyDocument": role.assume_role_policy}

    @staticmethod
    def _role(session: Session, name: str) -> Role:
        role = _pick(_same_name(session, Role, name), name)
        if role is None:
            raise IamError("NoSuchEntity", f"The role with name {name} cannot be found.")
        return role

    # --- inline policies -------------------------------------------------------------

    def put_inline_policy(self, kind: PrincipalKind, principal_name: str, policy_name: str,
                          document: str) -> None:
        """Add the policy, or replace the document of the one with this name ignoring case
        (keeping that one's name): PutUserPolicy and PutRolePolicy "add or update" and have
        no EntityAlreadyExists error, and IAM policy names are not distinguished by case."""
        _POLICY_NAME.check(policy_name)
        _parse_document(document)
        with self._changing() as session:
            principal_id = self._principal_id(session, kind, principal_name)
            existing = self._find_inline(session, kind, principal_id, policy_name)
            if existing is None:
                session.add(InlinePolicy(principal_kind=kind, principal_id=principal_id,
                                         name=policy_name, document=document))
            else:
                existing.document = document

    def get_inline_policy(self, kind: PrincipalKind, principal_name: str,
                          policy_name: str) -> dict[str, Any]:
        """The policy with its document parsed as JSON."""
        view = self.inline_policy(kind, principal_name, policy_name)
        return {"PolicyName": view["PolicyName"],
                "PolicyDocument": json.loads(view["PolicyDocument"])}

    def inline_policy(self, kind: PrincipalKind, principal_name: str,
                      policy_name: str) -> dict[str, Any]:
        """The policy as GetUserPolicy / GetRolePolicy return it: its document as given."""
        with self._db.reading() as session:
            policy = self._inline(session, kind, principal_name, policy_name)
            owner = self._user(session, principal_name).name if kind == "user" \
                else self._role(session, principal_name).name
            return {"UserName" if kind == "user" else "RoleName": owner,
                    "PolicyName": policy.name, "PolicyDocument": policy.document}

    def list_inline_policies(self, kind: PrincipalKind, principal_name: str) -> list[str]:
        with self._db.reading() as session:
            return self._inline_names(session, kind,
                                      self._principal_id(session, kind, principal_name))

    def delete_inline_policy(self, kind: PrincipalKind, principal_name: str,
                             policy_name: str) -> None:
        with self._changing() as session:
            session.delete(self._inline(session, kind, principal_name, policy_name))

    def _inline(self, session: Session, kind: PrincipalKind, principal_name: str,
                policy_name: str) -> InlinePolicy:
        principal_id = self._principal_id(session, kind, principal_name)
        policy = self._find_inline(session, kind, principal_id, policy_name)
        if policy is None:
            raise IamError("NoSuchEntity", f"The {kind} policy with name {policy_name} "
                           "cannot be found.")
        return policy

    @staticmethod
    def _find_inline(session: Session, kind: PrincipalKind, principal_id: str,
                     policy_name: str) -> InlinePolicy | None:
        return _pick(_same_name(session, InlinePolicy, policy_name,
                                InlinePolicy.principal_kind == kind,
                                InlinePolicy.principal_id == principal_id), policy_name)

    @staticmethod
    def _inline_names(session: Session, kind: str, principal_id: str) -> list[str]:
        query = select(InlinePolicy.name).where(InlinePolicy.principal_kind == kind,
                                                InlinePolicy.principal_id == principal_id)
        return list(session.scalars(query.order_by(InlinePolicy.name)))

    def _principal_id(self, session: Session, kind: PrincipalKind, name: str) -> str:
        return self._user(session, name).user_id if kind == "user" \
            else self._role(session, name).role_id

    # --- managed policies ------------------------------------------------------------

    def create_policy(self, name: str, document: str, path: str = "/") -> dict[str, Any]:
        _POLICY_NAME.check(name)
        _check(_POLICY_PATH, path, "path")
        _parse_document(document)
        exists = f"A policy called {name} already exists. Duplicate names are not allowed."
        try:
            with self._changing() as session:
                if taken := _same_name(session, ManagedPolicy, name):  # in any path
                    raise _already_exists(exists, name, taken)
                policy = ManagedPolicy(policy_id=_random_id("ANPA"), name=name, path=path,
                                       document=document, created_at=_now())
                session.add(policy)
                session.flush()
                return self._policy_view(policy, session)
        except IntegrityError:
            raise IamError("EntityAlreadyExists", exists) from None

    def list_policies(self) -> list[dict[str, Any]]:
        with self._db.reading() as session:
            query = select(ManagedPolicy).order_by(ManagedPolicy.name)
            return [self._policy_view(p, session) for p in session.scalars(query)]

    def get_policy(self, arn: str) -> dict[str, Any]:
        with self._db.reading() as session:
            return self._policy_view(self._policy(session, arn), session)

    def get_policy_document(self, arn: str) -> dict[str, Any]:
        return json.loads(self.policy_document(arn))  # type: ignore[no-any-return]

    def policy_document(self, arn: str) -> str:
        """A managed policy's document as given (its one version, v1)."""
        with self._db.reading() as session:
            return self._policy(session, arn).document

    def delete_policy(self, arn: str) -> None:
        with self._changing() as session:
            policy = self._policy(session, arn)
            attached = session.scalar(select(PolicyAttachment).where(
                PolicyAttachment.policy_id == policy.policy_id))
            if attached is not None:
                raise IamError("DeleteConflict", "Cannot delete a policy attached to entities.")
            session.delete(policy)

    def attach_policy(self, kind: PrincipalKind, principal_name: str, arn: str) -> None:
        with self._changing() as session:
            principal_id = self._principal_id(session, kind, principal_name)
            policy = self._policy(session, arn)
            key = (kind, principal_id, policy.policy_id)
            if session.get(PolicyAttachment, key) is None:
                if len(self._attached(session, kind, principal_id)) >= _MAX_ATTACHED:
                    raise IamError("LimitExceeded", "Cannot exceed quota for "
                                   f"PoliciesPer{kind.capitalize()}: {_MAX_ATTACHED}")
                session.add(PolicyAttachment(principal_kind=kind, principal_id=principal_id,
                                             policy_id=policy.policy_id))

    def detach_policy(self, kind: PrincipalKind, principal_name: str, arn: str) -> None:
        with self._changing() as session:
            principal_id = self._principal_id(session, kind, principal_name)
            policy = self._policy(session, arn)
            attachment = session.get(PolicyAttachment, (kind, principal_id, policy.policy_id))
            if attachment is None:
                raise IamError("NoSuchEntity", f"Policy {arn} was not found.")
            session.delete(attachment)

    def list_attached_policies(self, kind: PrincipalKind,
                               principal_name: str) -> list[dict[str, str]]:
        with self._db.reading() as session:
            principal_id = self._principal_id(session, kind, principal_name)
            return [{"PolicyName": p.name, "PolicyArn": self.policy_arn(p)}
                    for p in self._attached(session, kind, principal_id)]

    @staticmethod
    def _attached(session: Session, kind: str, principal_id: str) -> list[ManagedPolicy]:
        query = (select(ManagedPolicy)
                 .join(PolicyAttachment, PolicyAttachment.policy_id == ManagedPolicy.policy_id)
                 .where(PolicyAttachment.principal_kind == kind,
                        PolicyAttachment.principal_id == principal_id)
                 .order_by(ManagedPolicy.name))
        return list(session.scalars(query))

    def _policy(self, session: Session, arn: str) -> ManagedPolicy:
        """The policy an ARN names: its name in any case, its path exactly (IAM paths are
        compared with their case)."""
        prefix = f"arn:aws:iam::{self.account_id}:policy"
        if arn.startswith(prefix):
            path_and_name = arn[len(prefix):]
            path, _, name = path_and_name.rpartition("/")
            policy = _pick(_same_name(session, ManagedPolicy, name,
                                      ManagedPolicy.path == path + "/"), name)
            if policy is not None:
                return policy
        raise IamError("NoSuchEntity", f"Policy {arn} does not exist or is not attachable.")

    def _policy_view(self, policy: ManagedPolicy, session: Session) -> dict[str, Any]:
        """As IAM describes a policy; a managed policy here has one version, v1."""
        attachments = session.scalar(select(func.count()).select_from(PolicyAttachment).where(
            PolicyAttachment.policy_id == policy.policy_id)) or 0
        return {"PolicyName": policy.name, "PolicyId": policy.policy_id,
                "Arn": self.policy_arn(policy), "Path": policy.path,
                "DefaultVersionId": POLICY_VERSION, "AttachmentCount": attachments,
                "PermissionsBoundaryUsageCount": 0, "IsAttachable": True,
                "CreateDate": policy.created_at, "UpdateDate": policy.created_at}

    # --- request-time resolution -----------------------------------------------------

    def credential(self, access_key_id: str, memory_only: bool = False) -> Credential | None:
        """The key's secret and principal, or None if no active key has this id.

        Served from memory while no identity, key or policy has changed (see
        `airgate.store.generations`), instead of reading a key, its user or role and their
        policies on every request. With `memory_only`, NotCached instead of reading the store.
        """
        version = self._generations.version(_GENERATION, memory_only)
        if version != self._cached_version:
            self._credentials, self._cached_version = {}, version
        cache = self._credentials  # a read that races a change lands in the dict being dropped
        cached = cache.get(access_key_id)
        if cached is not None:
            return cached
        if memory_only:
            raise NotCached
        with self._db.reading() as session:
            key = session.get(AccessKey, access_key_id)
            if key is None or key.status != "Active":
                return None
            if key.role is not None:
                principal = self._session_principal(session, key.role, key.session_name or "",
                                                    key.access_key_id)
            else:
                assert key.user is not None
                principal = self._user_principal(session, key.user,
                                                 temporary=key.session_token_sha256 is not None)
            credential = Credential(access_key_id, self._box.decrypt(key.secret_ciphertext),
                                    principal, key.session_token_sha256, key.expires_at)
            cache[access_key_id] = credential
            return credential

    def _user_principal(self, session: Session, user: User, temporary: bool) -> Principal:
        arn = self.user_arn(user)
        return Principal(kind="User", arn=arn, principal_arn=arn, user_id=user.user_id,
                         username=user.name,
                         policies=self._policies_of(session, "user", user.user_id),
                         temporary=temporary)

    def _session_principal(self, session: Session, role: Role, session_name: str,
                           access_key_id: str) -> Principal:
        session_policies = session.scalars(
            select(SessionPolicy.document).where(SessionPolicy.access_key_id == access_key_id)
            .order_by(SessionPolicy.position))
        return Principal(
            kind="AssumedRole",
            arn=f"arn:aws:sts::{self.account_id}:assumed-role/{role.name}/{session_name}",
            principal_arn=self.role_arn(role), user_id=f"{role.role_id}:{session_name}",
            username=None, policies=self._policies_of(session, "role", role.role_id),
            session_policies=tuple(_parsed(document) for document in session_policies),
            temporary=True,
        )

    def root(self) -> Principal:
        """The account's root user: who the operator is, through `airgate iam`."""
        arn = f"arn:aws:iam::{self.account_id}:root"
        return Principal(kind="Account", arn=arn, principal_arn=arn, user_id=self.account_id,
                         username=None, policies=(_parsed(_ALLOW_ALL),))

    def _policies_of(self, session: Session, kind: str, principal_id: str) -> tuple[Policy, ...]:
        inline = session.scalars(select(InlinePolicy.document).where(
            InlinePolicy.principal_kind == kind, InlinePolicy.principal_id == principal_id))
        managed = (p.document for p in self._attached(session, kind, principal_id))
        return tuple(_parsed(document) for document in [*inline, *managed])


_ALLOW_ALL = json.dumps({"Version": "2012-10-17",
                         "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


@functools.lru_cache(maxsize=1024)
def _parsed(document: str) -> Policy:
    """Policies are parsed once per distinct document, not on every request."""
    return parse_policy(document)


@functools.lru_cache(maxsize=256)
def _parsed_trust(document: str) -> Policy:
    return parse_trust_policy(document)


def _check_trust_policy(document: str) -> None:
    """A trust policy names principals and no resource (CreateRole,
    UpdateAssumeRolePolicy)."""
    try:
        _parsed_trust(document)
    except MalformedPolicyDocument as error:
        raise IamError("MalformedPolicyDocument", str(error)) from None

