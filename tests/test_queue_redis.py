"""The Redis queue: the Queue contract on a real Redis (a fresh queue name per test), plus
what only Redis has (URLs, settings, errors naming the masked URL, server-side clocks)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest
from conftest import require_module
from contracts.queue_contract import MakeQueue, QueueContract

from agent_sdk.config import Settings
from agent_sdk.errors import BackendUnavailable, ConfigError
from agent_sdk.queue import open_queue, queue_from_settings
from agent_sdk.queue.base import Queue

redis = require_module("redis", "Redis")
from agent_sdk.queue.redis import DEFAULT_QUEUE, RedisQueue  # noqa: E402


@pytest.fixture
def queue_name() -> str:
    return "test-" + secrets.token_hex(6)


class TestRedisQueue(QueueContract):
    @pytest.fixture
    def make_queue(self, redis_url: str, queue_name: str) -> Iterator[MakeQueue]:
        opened: list[RedisQueue] = []

        def make() -> Queue:
            opened.append(RedisQueue(redis_url, name=queue_name))
            return opened[-1]

        yield make
        for q in opened:
            q.close()

    @pytest.fixture
    def queue(self, make_queue: MakeQueue) -> Queue:
        return make_queue()

    @pytest.fixture
    def queue_url(self, redis_url: str, queue_name: str) -> str:
        return f"{redis_url}?queue={queue_name}"


def test_open_queue_reads_the_name_from_the_url(redis_url: str) -> None:
    q = open_queue(f"{redis_url}?queue=named")
    assert isinstance(q, RedisQueue) and q.name == "named"
    job = q.enqueue("run", {"a": 1})
    q.close()
    other = open_queue(f"{redis_url}?queue=other")
    assert other.depth().total == 0
    other.close()
    again = open_queue(f"{redis_url}?queue=named")
    assert again.depth().ready == 1
    lease = again.reserve("w", lease=30, timeout=0)
    assert lease is not None and lease.job.id == job.id
    again.ack(lease)
    again.close()


def test_queue_from_settings(settings: Settings, redis_url: str) -> None:
    q = queue_from_settings(settings.replace(queue_backend="redis", redis_url=redis_url))
    assert isinstance(q, RedisQueue) and q.name == DEFAULT_QUEUE
    q.close()
    with pytest.raises(ConfigError) as info:
        queue_from_settings(settings.replace(queue_backend="redis", redis_url=None))
    assert "AGENT_SDK_REDIS_URL" in info.value.message


def test_an_unreachable_redis_names_the_url_without_its_password() -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    with pytest.raises(BackendUnavailable) as info:
        RedisQueue("redis://:hunter2@127.0.0.1:1/0")
    assert "127.0.0.1:1" in info.value.message and "***" in info.value.message
    assert "hunter2" not in info.value.message + (info.value.hint or "")


def test_a_missing_redis_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ConfigError) as info:
        RedisQueue("redis://127.0.0.1:6379/15")
    assert info.value.hint == "pip install 'agent-sdk[redis]'"


def test_leases_follow_the_server_clock(redis_url: str, queue_name: str) -> None:
    """Lease expiry comes from Redis TIME, so it agrees with the server, not this process."""
    client = redis.Redis.from_url(redis_url)
    try:
        seconds, micros = client.time()
    finally:
        client.close()
    q = RedisQueue(redis_url, name=queue_name)
    try:
        q.enqueue("run", {})
        lease = q.reserve("w", lease=30, timeout=0)
        assert lease is not None
        assert seconds + micros / 1e6 + 29 <= lease.expires_at <= seconds + micros / 1e6 + 32
    finally:
        q.close()


def test_a_consumer_that_died_after_reading_loses_nothing(
    redis_url: str, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry read by XREADGROUP whose reader died before leasing it is taken over."""
    from agent_sdk.queue import redis as redis_queue

    monkeypatch.setattr(redis_queue, "_ORPHAN_IDLE_MS", 50)
    q = RedisQueue(redis_url, name=queue_name)
    try:
        job = q.enqueue("run", {})
        # A consumer reads the entry, then "dies": no lease was recorded.
        client = redis.Redis.from_url(redis_url)
        try:
            assert client.xreadgroup("workers", "ghost", {q._stream: ">"}, count=1)
        finally:
            client.close()
        time.sleep(0.1)  # past the (shortened) idle time of an orphaned entry
        lease = q.reserve("w", lease=30, timeout=0)
        assert lease is not None and lease.job.id == job.id and lease.job.attempts == 1
        q.ack(lease)
        assert q.depth().total == 0
    finally:
        q.close()
