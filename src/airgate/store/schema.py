"""Tables of the state store: identities and policies, environments and their tags, and
what the gateways sharing a store share (keys, used one-use tokens)."""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime.datetime]):
    """Timestamps stored naive in UTC (SQLite keeps no zone), returned aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> datetime.datetime | None:
        if value is None:
            return None
        return value.astimezone(datetime.UTC).replace(tzinfo=None)  # type: ignore[no-any-return]

    def process_result_value(self, value: Any, dialect: Any) -> datetime.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=datetime.UTC)  # type: ignore[no-any-return]


class Base(DeclarativeBase):
    type_annotation_map = {datetime.datetime: UTCDateTime, dict[str, Any]: JSON}


class User(Base):
    __tablename__ = "users"

    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)  # AIDA...
    name: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(String(512), default="/")
    created_at: Mapped[datetime.datetime]


class Role(Base):
    __tablename__ = "roles"

    role_id: Mapped[str] = mapped_column(String(32), primary_key=True)  # AROA...
    name: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(String(512), default="/")
    assume_role_policy: Mapped[str] = mapped_column(Text)
    max_session_duration: Mapped[int] = mapped_column(default=3600)
    created_at: Mapped[datetime.datetime]


class AccessKey(Base):
    """Long-term keys of users, and temporary credentials of role sessions."""

    __tablename__ = "access_keys"

    access_key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="Active")
    created_at: Mapped[datetime.datetime]
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.user_id", ondelete="CASCADE"), index=True
    )
    role_id: Mapped[str | None] = mapped_column(
        ForeignKey("roles.role_id", ondelete="CASCADE"), index=True
    )
    session_name: Mapped[str | None] = mapped_column(String(64))
    session_token_sha256: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime.datetime | None]

    user: Mapped[User | None] = relationship()
    role: Mapped[Role | None] = relationship()


class SessionPolicy(Base):
    """A session policy of temporary credentials (AssumeRole's `Policy`, or a managed policy
    named in its `PolicyArns`, as it read then): the session may do only what both these and
    the role's own policies allow."""

    __tablename__ = "session_policies"

    access_key_id: Mapped[str] = mapped_column(
        ForeignKey("access_keys.access_key_id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(primary_key=True)
    document: Mapped[str] = mapped_column(Text)


class ManagedPolicy(Base):
    __tablename__ = "managed_policies"

    policy_id: Mapped[str] = mapped_column(String(32), primary_key=True)  # ANPA...
    name: Mapped[str] = mapped_column(String(128), unique=True)
    path: Mapped[str] = mapped_column(String(512), default="/")
    document: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime.datetime]


class InlinePolicy(Base):
    __tablename__ = "inline_policies"

    principal_kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # user | role
    principal_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    document: Mapped[str] = mapped_column(Text)


class PolicyAttachment(Base):
    __tablename__ = "policy_attachments"

    principal_kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    principal_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    policy_id: Mapped[str] = mapped_column(
        ForeignKey("managed_policies.policy_id", ondelete="CASCADE"), primary_key=True
    )


class Generation(Base):
    """A counter per kind of state, bumped by every change to it, so that processes caching
    that state (gateways) notice changes made by others (the CLI, other gateways)."""

    __tablename__ = "generations"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(default=0)


class Environment(Base):
    """An MWAA environment: the fields the caller set, and what airgate made of them."""

    __tablename__ = "environments"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime.datetime]
    # The MWAA members as last requested (CreateEnvironment input, updated in place).
    spec: Mapped[dict[str, Any]]
    # LastUpdate as GetEnvironment returns it, with timestamps as ISO strings.
    last_update: Mapped[dict[str, Any] | None]
    # Runtime facts, set by the runtime once true (e.g. WebserverUrl).
    runtime: Mapped[dict[str, Any]] = mapped_column(default=dict)

    tags: Mapped[list[EnvironmentTag]] = relationship(
        cascade="all, delete-orphan", order_by="EnvironmentTag.key", lazy="selectin"
    )


class EnvironmentTag(Base):
    __tablename__ = "environment_tags"
    __table_args__ = (UniqueConstraint("environment_name", "key"),)

    environment_name: Mapped[str] = mapped_column(
        ForeignKey("environments.name", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class SharedKey(Base):
    """A key every gateway on this store uses alike (e.g. for the tokens of environments'
    fronts), encrypted under the master key."""

    __tablename__ = "shared_keys"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    sealed: Mapped[str] = mapped_column(Text)


class SpentToken(Base):
    """A one-use token already used, or a session already ended, until it expires anyway:
    kept in the store so that no gateway accepts it again."""

    __tablename__ = "spent_tokens"

    token_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[float]


class WorkerReport(Base):
    """Celery workers an `airgate worker` runs for an environment on another machine, as
    it last reported them: the environment's autoscaler counts them until `until`."""

    __tablename__ = "worker_reports"

    environment: Mapped[str] = mapped_column(String(80), primary_key=True)
    node: Mapped[str] = mapped_column(String(64), primary_key=True)
    workers: Mapped[int]
    until: Mapped[float]
