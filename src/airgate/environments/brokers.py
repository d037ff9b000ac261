"""Each Celery environment's own place on the message broker.

The operator names one broker (AIRGATE_BROKER_URL): Redis or RabbitMQ, with administrator
credentials. That URL never reaches an environment: tenant code can read everything its
Airflow is configured with. Instead each environment gets a login of its own, with a new
random password at every start, that reaches only its own namespace:

- Redis: an ACL user whose keys and pub/sub channels must start with the environment's
  prefix (Celery's transport prefixes every key it uses with `global_keyprefix`), and which
  can't run administrative or server-wide commands. Redis only ever stores the password's
  SHA-256.
- RabbitMQ: a virtual host and a user allowed on it alone, made with the management API
  (`rabbitmq-plugins enable rabbitmq_management`; by default on the broker's host, port
  15672, with the URL's credentials; AIRGATE_BROKER_MANAGEMENT_URL says otherwise).

So environments never take, see or delete each other's tasks, whatever their DAGs do.
Names carry the airgate installation, as metadata databases do.
"""

from __future__ import annotations

import copy
import hashlib
import secrets
import urllib.parse
from dataclasses import dataclass, field
from typing import Protocol

import httpx
import redis

from airgate.environments.metadata import database_name

__all__ = ["BrokerAccess", "BrokerError", "Brokers", "RabbitBrokers", "RedisBrokers",
           "brokers_for"]

# What an environment's Redis user may not run: server administration, commands that see
# or flush every key, and script or function management shared by every user.
_REDIS_DENIED = ("-@admin", "-@dangerous", "-@scripting", "+eval", "+evalsha",
                 "+script|load", "+script|exists", "-scan", "-keys", "-randomkey", "-pubsub",
                 "-swapdb", "-flushdb", "-flushall", "-select")


class BrokerError(RuntimeError):
    """The broker refused or couldn't be reached; the message says which."""


@dataclass(frozen=True, slots=True)
class BrokerAccess:
    """What an environment's Airflow connects to the broker with."""

    url: str  # with the environment's own login and password
    # Celery transport options ([celery_broker_transport_options] in Airflow)
    transport_options: dict[str, str] = field(default_factory=dict)

    def airflow_options(self) -> dict[str, str]:
        return {"celery.broker_url": self.url,
                **{f"celery_broker_transport_options.{key}": value
                   for key, value in self.transport_options.items()}}


class Brokers(Protocol):
    kind: str  # "redis" or "rabbitmq", for the setup log

    def prepare(self, name: str) -> BrokerAccess:
        """Environment `name`'s login and namespace, made or given a new password."""

    def drop(self, name: str) -> None:
        """Remove the environment's login and everything in its namespace."""

    def of(self, installation: str) -> Brokers:
        """The same broker, naming logins as `installation` does (see MetadataDatabases.of)."""


def brokers_for(url: str, installation: str = "",
                management_url: str | None = None) -> Brokers:
    """The broker named by `url` (redis://, rediss://, amqp://, amqps://, pyamqp://)."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme in ("redis", "rediss"):
        return RedisBrokers(url, installation)
    if scheme in ("amqp", "amqps", "pyamqp"):
        return RabbitBrokers(url, installation, management_url)
    raise BrokerError(f"broker URL scheme {scheme!r} is not supported: use redis://, "
                      "rediss:// or amqp://")


def login_name(environment: str, installation: str) -> str:
    """The environment's user on the broker (and its RabbitMQ virtual host)."""
    return database_name(environment, installation).replace("airflow_", "airgate_", 1)


class RedisBrokers:
    kind = "redis"

    def __init__(self, url: str, installation: str = "") -> None:
        self._url = urllib.parse.urlsplit(url)
        self._installation = installation

    def of(self, installation: str) -> RedisBrokers:
        other = copy.copy(self)
        other._installation = installation
        return other

    def prefix(self, name: str) -> str:
        return f"{login_name(name, self._installation)}:"

    def prepare(self, name: str) -> BrokerAccess:
        user, prefix = login_name(name, self._installation), self.prefix(name)
        password = secrets.token_urlsafe(32)
        digest = hashlib.sha256(password.encode()).hexdigest()
        self._command("ACL", "SETUSER", user, "reset", "on", f"#{digest}", f"~{prefix}*",
                      f"&{prefix}*", "+@all", *_REDIS_DENIED)
        netloc = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}" \
                 f"@{self._url.hostname}" + (f":{self._url.port}" if self._url.port else "")
        url = urllib.parse.urlunsplit((self._url.scheme, netloc, self._url.path or "/0",
                                       self._url.query, ""))
        return BrokerAccess(url, {"global_keyprefix": prefix})

    def drop(self, name: str) -> None:
        prefix = self.prefix(name)
        self._command("ACL", "DELUSER", login_name(name, self._installation))
        with self._client() as client:
            for key in client.scan_iter(match=f"{prefix}*", count=500):
                client.delete(key)

    def _client(self) -> redis.Redis:
        return redis.Redis.from_url(urllib.parse.urlunsplit(self._url), socket_timeout=10)

    def _command(self, *args: str) -> object:
        try:
            with self._client() as client:
                return client.execute_command(*args)
        except redis.RedisError as error:
            raise BrokerError(f"Redis at {self._url.hostname}:{self._url.port or 6379}: "
                              f"{error}") from None


class RabbitBrokers:
    kind = "rabbitmq"

    def __init__(self, url: str, installation: str = "",
                 management_url: str | None = None) -> None:
        self._url = urllib.parse.urlsplit(url)
        self._installation = installation
        login = (urllib.parse.unquote(self._url.username or "guest"),
                 urllib.parse.unquote(self._url.password or "guest"))
        if management_url:
            given = urllib.parse.urlsplit(management_url)
            if given.username:
                login = (urllib.parse.unquote(given.username),
                         urllib.parse.unquote(given.password or ""))
            host = given.hostname or "127.0.0.1"
            base = f"{given.scheme}://{host}" + (f":{given.port}" if given.port else "") \
                + given.path.rstrip("/")
        else:
            base = f"http://{self._url.hostname or '127.0.0.1'}:15672"
        self._api = httpx.Client(base_url=f"{base}/api", auth=login, timeout=15.0)

    def of(self, installation: str) -> RabbitBrokers:
        other = copy.copy(self)
        other._installation = installation
        return other

    def prepare(self, name: str) -> BrokerAccess:
        user = login_name(name, self._installation)
        password = secrets.token_urlsafe(32)
        quoted = urllib.parse.quote(user, safe="")
        self._call("PUT", f"/vhosts/{quoted}", {})
        self._call("PUT", f"/users/{quoted}", {"password": password, "tags": ""})
        self._call("PUT", f"/permissions/{quoted}/{quoted}",
                   {"configure": ".*", "write": ".*", "read": ".*"})
        netloc = f"{quoted}:{urllib.parse.quote(password, safe='')}@{self._url.hostname}" \
                 + (f":{self._url.port}" if self._url.port else "")
        return BrokerAccess(urllib.parse.urlunsplit((self._url.scheme, netloc, f"/{quoted}",
                                                     self._url.query, "")))

    def drop(self, name: str) -> None:
        quoted = urllib.parse.quote(login_name(name, self._installation), safe="")
        self._call("DELETE", f"/users/{quoted}", None, missing_ok=True)
        self._call("DELETE", f"/vhosts/{quoted}", None, missing_ok=True)

    def _call(self, method: str, path: str, body: dict[str, str] | None,
              missing_ok: bool = False) -> None:
        try:
            answer = self._api.request(method, path, json=body)
        except httpx.HTTPError as error:
            raise BrokerError(f"RabbitMQ's management API at {self._api.base_url}: {error} "
                              "(is rabbitmq_management enabled?)") from None
        if answer.status_code == 404 and missing_ok:
            return
        if answer.status_code >= 300:
            raise BrokerError(f"RabbitMQ's management API refused {method} {path}: "
                              f"{answer.status_code} {answer.text[:200]}")
