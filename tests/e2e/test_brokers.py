"""Each Celery environment's own login and namespace on the real Redis and RabbitMQ of this
machine: its tasks travel through Celery's own transport (kombu) there, and it can't reach
another environment's queues or the broker's administration."""

from __future__ import annotations

import urllib.parse

import amqp
import httpx
import kombu
import pytest
import redis

from airgate.environments.brokers import BrokerAccess, RabbitBrokers, RedisBrokers, brokers_for

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

REDIS_URL = "redis://127.0.0.1:6379/0"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
RABBITMQ_API = "http://127.0.0.1:15672/api"


def roundtrip(access: BrokerAccess, queue: str, payload: dict[str, int]) -> object:
    """A message sent and taken back through kombu, as Celery's workers do."""
    with kombu.Connection(access.url, transport_options=access.transport_options) as conn:
        simple = conn.SimpleQueue(queue)
        try:
            simple.put(payload)
            message = simple.get(timeout=5)
            message.ack()
            return message.payload
        finally:
            simple.close()


def test_redis_logins_reach_only_their_own_keys() -> None:
    brokers = brokers_for(REDIS_URL, "test-installation")
    assert isinstance(brokers, RedisBrokers)
    a, b = brokers.prepare("team-a"), brokers.prepare("team-b")
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        assert a.url.startswith("redis://airgate_team_a_")  # its own login, not the admin's
        assert roundtrip(a, "default", {"n": 1}) == {"n": 1}
        assert roundtrip(b, "default", {"n": 2}) == {"n": 2}
        # The queue's keys are under each environment's own prefix, nowhere else.
        prefix_a, prefix_b = (brokers.prefix("team-a"), brokers.prefix("team-b"))
        assert prefix_a != prefix_b
        keys = {key.decode() for key in admin.scan_iter(match="*kombu.binding.default*")}
        assert {f"{prefix_a}_kombu.binding.default", f"{prefix_b}_kombu.binding.default"} \
            <= keys
        as_a = redis.Redis.from_url(a.url)
        for command in (("LPUSH", f"{prefix_b}default", "stolen"), ("LPOP", f"{prefix_b}x"),
                        ("SET", "unprefixed", "1"), ("PUBLISH", f"{prefix_b}pidbox", "x")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                as_a.execute_command(*command)
        for command in (("KEYS", "*"), ("FLUSHALL",), ("CONFIG", "GET", "*"),
                        ("ACL", "LIST"), ("SCAN", "0"), ("SCRIPT", "FLUSH")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                as_a.execute_command(*command)
        assert as_a.execute_command("SET", f"{prefix_a}own", "1") is True
        assert as_a.execute_command("PUBLISH", f"{prefix_a}celery.pidbox", "x") == 0
        # A new start gives a new password: the old one stops working.
        again = brokers.prepare("team-a")
        assert again.url != a.url
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis.from_url(a.url).ping()
        assert redis.Redis.from_url(again.url).ping() is True
    finally:
        brokers.drop("team-a")
        brokers.drop("team-b")
    users = {user.decode() if isinstance(user, bytes) else user for user in admin.acl_users()}
    assert not any(user.startswith("airgate_team") for user in users), users
    assert list(admin.scan_iter(match=f"{brokers.prefix('team-a')}*")) == []


def test_rabbitmq_logins_reach_only_their_own_virtual_host() -> None:
    brokers = brokers_for(RABBITMQ_URL, "test-installation")
    assert isinstance(brokers, RabbitBrokers)
    a, b = brokers.prepare("team-a"), brokers.prepare("team-b")
    try:
        assert roundtrip(a, "default", {"n": 1}) == {"n": 1}
        assert roundtrip(b, "default", {"n": 2}) == {"n": 2}
        vhost_a = urllib.parse.unquote(urllib.parse.urlsplit(a.url).path.lstrip("/"))
        vhost_b = urllib.parse.unquote(urllib.parse.urlsplit(b.url).path.lstrip("/"))
        assert vhost_a != vhost_b
        queues = httpx.get(f"{RABBITMQ_API}/queues", auth=("guest", "guest")).json()
        assert {(q["vhost"], q["name"]) for q in queues} >= {(vhost_a, "default"),
                                                            (vhost_b, "default")}
        # A's login on B's virtual host (or the default one) is refused.
        for vhost in (vhost_b, ""):
            parts = urllib.parse.urlsplit(a.url)
            other = urllib.parse.urlunsplit(parts._replace(path=f"/{vhost}"))
            with pytest.raises(amqp.exceptions.NotAllowed, match="access to vhost"), \
                    kombu.Connection(other) as conn:
                conn.connect()
        # Nor can A administer the broker.
        login = urllib.parse.urlsplit(a.url)
        answer = httpx.get(f"{RABBITMQ_API}/users", auth=(
            urllib.parse.unquote(login.username or ""),
            urllib.parse.unquote(login.password or "")))
        assert answer.status_code == 401
    finally:
        brokers.drop("team-a")
        brokers.drop("team-b")
    vhosts = {v["name"] for v in httpx.get(f"{RABBITMQ_API}/vhosts",
                                           auth=("guest", "guest")).json()}
    assert not {vhost_a, vhost_b} & vhosts


def test_unknown_brokers_are_refused_plainly() -> None:
    from airgate.environments.brokers import BrokerError

    with pytest.raises(BrokerError, match="scheme 'kafka' is not supported"):
        brokers_for("kafka://127.0.0.1:9092")
    unreachable = brokers_for("redis://127.0.0.1:1/0")
    with pytest.raises(BrokerError, match=r"Redis at 127\.0\.0\.1:1"):
        unreachable.prepare("x")
    no_api = brokers_for("amqp://guest:guest@127.0.0.1:5672//",
                         management_url="http://127.0.0.1:1")
    with pytest.raises(BrokerError, match="is rabbitmq_management enabled"):
        no_api.prepare("x")
