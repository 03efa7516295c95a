"""GCRA rate limits: the arithmetic on a fake clock, the memory limiter's bounds, the Redis
limiter's atomicity across clients, and the RateLimit headers."""

from __future__ import annotations

import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator

import pytest
from conftest import require_module

from agent_sdk.errors import BackendUnavailable, ConfigError, InvalidInput
from agent_sdk.masking import mask_url
from agent_sdk.security.ratelimit import (
    KEY_PREFIX,
    Decision,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    open_rate_limiter,
    rate_limit_headers,
)

SLOW = 1 / 3600  # one token an hour: no refill during a test


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


# -- the arithmetic, on a clock we control --------------------------------------------------


def test_a_full_bucket_allows_burst_then_refuses() -> None:
    clock = FakeClock()
    rl = MemoryRateLimiter(clock=clock)
    got = [rl.hit("k", rate=10, burst=3) for _ in range(4)]
    assert [d.allowed for d in got] == [True, True, True, False]
    assert [d.remaining for d in got] == [2, 1, 0, 0]
    assert all(d.limit == 3 for d in got)
    assert got[0].reset_after == pytest.approx(0.1)
    assert got[2].reset_after == pytest.approx(0.3)
    assert got[2].retry_after == 0
    assert got[3].retry_after == pytest.approx(0.1)
    assert got[3].reset_after == pytest.approx(0.3)


def test_tokens_come_back_at_the_rate_even_on_float_boundaries() -> None:
    # 0.1 is not exact in binary: the third token lands a few ulps past tau without slack.
    clock = FakeClock()
    rl = MemoryRateLimiter(clock=clock)
    for _ in range(3):
        assert rl.hit("k", rate=10, burst=3).allowed
    for _ in range(20):
        clock.now += 0.1
        d = rl.hit("k", rate=10, burst=3)
        assert d.allowed and d.remaining == 0
        assert not rl.hit("k", rate=10, burst=3).allowed
    clock.now += 0.3
    assert rl.hit("k", rate=10, burst=3).remaining == 2


def test_cost_takes_several_tokens_and_a_refusal_takes_none() -> None:
    clock = FakeClock()
    rl = MemoryRateLimiter(clock=clock)
    assert rl.hit("k", rate=1, burst=5, cost=3).remaining == 2
    refused = rl.hit("k", rate=1, burst=5, cost=3)
    assert not refused.allowed
    assert refused.remaining == 2  # nothing was taken
    assert refused.retry_after == pytest.approx(1.0)
    assert rl.hit("k", rate=1, burst=5, cost=2).remaining == 0


def test_cost_zero_reads_without_taking() -> None:
    clock = FakeClock()
    rl = MemoryRateLimiter(clock=clock)
    rl.hit("k", rate=1, burst=5, cost=2)
    peek = rl.hit("k", rate=1, burst=5, cost=0)
    assert peek.allowed and peek.remaining == 3
    assert rl.hit("k", rate=1, burst=5, cost=0).remaining == 3
    assert rl.hit("new", rate=1, burst=5, cost=0).remaining == 5
    assert set(rl._tats) == {"k"}  # a peek at a full bucket remembers nothing


@pytest.mark.parametrize(
    ("rate", "burst", "cost"),
    [(0, 1, 1), (-1, 1, 1), (float("inf"), 1, 1), (float("nan"), 1, 1), (1, 0, 1), (1, 2, 3),
     (1, 2, -1)],
)  # fmt: skip
def test_bad_parameters_are_refused(rate: float, burst: int, cost: int) -> None:
    with pytest.raises(InvalidInput):
        MemoryRateLimiter().hit("k", rate=rate, burst=burst, cost=cost)


def test_keys_have_their_own_buckets() -> None:
    rl = MemoryRateLimiter(clock=FakeClock())
    assert rl.hit("a", rate=1, burst=1).allowed
    assert not rl.hit("a", rate=1, burst=1).allowed
    assert rl.hit("b", rate=1, burst=1).allowed


# -- the memory limiter: threads and bounds ------------------------------------------------


def _race(make: Callable[[], RateLimiter], key: str, n: int, **limits: float) -> list[Decision]:
    """n threads, each with the limiter make() gives it, hit key at the same moment."""
    limiters = [make() for _ in range(n)]
    barrier = threading.Barrier(n)
    results: list[Decision] = []
    lock = threading.Lock()

    def run(rl: RateLimiter) -> None:
        barrier.wait()
        d = rl.hit(key, rate=limits["rate"], burst=int(limits["burst"]))
        with lock:
            results.append(d)

    threads = [threading.Thread(target=run, args=(rl,)) for rl in limiters]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        for rl in limiters:
            rl.close()
    assert len(results) == n
    return results


def test_memory_50_parallel_hits_with_10_left_let_exactly_10_through() -> None:
    rl = MemoryRateLimiter()
    for _ in range(10):
        rl.hit("key_1", rate=SLOW, burst=20)
    got = _race(lambda: rl, "key_1", 50, rate=SLOW, burst=20)
    assert sum(d.allowed for d in got) == 10
    assert sorted(d.remaining for d in got if d.allowed) == list(range(10))


def test_memory_refills_over_real_time() -> None:
    rl = MemoryRateLimiter()
    assert rl.hit("k", rate=20, burst=2).allowed
    assert rl.hit("k", rate=20, burst=2).allowed
    refused = rl.hit("k", rate=20, burst=2)
    assert not refused.allowed and 0 < refused.retry_after <= 0.05
    time.sleep(refused.retry_after + 0.01)
    assert rl.hit("k", rate=20, burst=2).allowed


def test_memory_forgets_full_buckets_and_gives_the_memory_back() -> None:
    clock = FakeClock()
    rl = MemoryRateLimiter(clock=clock, sweep_interval=1.0)
    for i in range(100_000):
        rl.hit(f"key_{i}", rate=1000, burst=1)  # each bucket is full again after 1 ms
    assert len(rl) == 100_000
    size = sys.getsizeof(rl._tats)
    clock.now += 1.0
    rl.hit("another", rate=1000, burst=1)
    assert len(rl) == 1
    assert sys.getsizeof(rl._tats) < size / 100


def test_memory_sweeps_on_the_real_clock() -> None:
    rl = MemoryRateLimiter(sweep_interval=0.05)
    for i in range(100_000):
        rl.hit(f"key_{i}", rate=1000, burst=1)
    time.sleep(0.06)
    rl.hit("another", rate=1000, burst=1)
    assert len(rl) == 1


def test_memory_sweep_keeps_buckets_in_use() -> None:
    clock = FakeClock()
    rl = MemoryRateLimiter(clock=clock, sweep_interval=1.0)
    rl.hit("busy", rate=SLOW, burst=2)
    rl.hit("idle", rate=1000, burst=2)
    clock.now += 1.0
    rl.hit("other", rate=1000, burst=2)
    assert set(rl._tats) == {"busy", "other"}
    assert rl.hit("busy", rate=SLOW, burst=2).remaining == 0


def test_memory_caps_keys_dropping_the_least_recently_hit() -> None:
    rl = MemoryRateLimiter(clock=FakeClock(), max_keys=3)
    for key in ["a", "b", "c"]:
        rl.hit(key, rate=SLOW, burst=5)
    rl.hit("a", rate=SLOW, burst=5)  # "b" is now the least recently hit
    rl.hit("d", rate=SLOW, burst=5)
    assert list(rl._tats) == ["c", "a", "d"]


def test_memory_close_forgets_everything() -> None:
    rl = MemoryRateLimiter()
    rl.hit("k", rate=SLOW, burst=1)
    rl.close()
    assert len(rl) == 0


# -- both limiters, one contract -----------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def limiter(request: pytest.FixtureRequest) -> Iterator[RateLimiter]:
    rl: RateLimiter
    if request.param == "memory":
        rl = MemoryRateLimiter()
    else:
        rl = RedisRateLimiter(request.getfixturevalue("redis_url"))
    try:
        yield rl
    finally:
        rl.close()


def test_contract_burst_then_refusal(limiter: RateLimiter) -> None:
    got = [limiter.hit("k", rate=1, burst=3) for _ in range(4)]
    assert [d.allowed for d in got] == [True, True, True, False]
    assert [d.remaining for d in got] == [2, 1, 0, 0]
    assert [d.limit for d in got] == [3, 3, 3, 3]
    assert got[0].reset_after == pytest.approx(1.0, abs=0.05)
    assert got[2].reset_after == pytest.approx(3.0, abs=0.05)
    assert got[3].retry_after == pytest.approx(1.0, abs=0.05)
    assert 0 < got[3].retry_after <= 1.0


def test_contract_cost_and_peek(limiter: RateLimiter) -> None:
    assert limiter.hit("k", rate=SLOW, burst=5, cost=4).remaining == 1
    refused = limiter.hit("k", rate=SLOW, burst=5, cost=2)
    assert not refused.allowed and refused.remaining == 1
    peek = limiter.hit("k", rate=SLOW, burst=5, cost=0)
    assert peek.allowed and peek.remaining == 1
    with pytest.raises(InvalidInput):
        limiter.hit("k", rate=SLOW, burst=5, cost=6)


def test_contract_keys_are_independent(limiter: RateLimiter) -> None:
    assert limiter.hit("a", rate=SLOW, burst=1).allowed
    assert not limiter.hit("a", rate=SLOW, burst=1).allowed
    assert limiter.hit("b", rate=SLOW, burst=1).allowed


def test_contract_refill_over_time(limiter: RateLimiter) -> None:
    assert limiter.hit("k", rate=20, burst=1).allowed
    refused = limiter.hit("k", rate=20, burst=1)
    assert not refused.allowed
    time.sleep(refused.retry_after + 0.01)
    assert limiter.hit("k", rate=20, burst=1).allowed


# -- the Redis limiter ---------------------------------------------------------------------


def test_redis_50_clients_with_10_left_let_exactly_10_through(redis_url: str) -> None:
    with RedisRateLimiter(redis_url) as rl:
        for _ in range(10):
            rl.hit("key_1", rate=SLOW, burst=20)
    # Each thread has its own client and connection, as separate processes would.
    got = _race(lambda: RedisRateLimiter(redis_url), "key_1", 50, rate=SLOW, burst=20)
    assert sum(d.allowed for d in got) == 10
    assert sorted(d.remaining for d in got if d.allowed) == list(range(10))


def test_redis_keys_are_namespaced_and_expire_when_full(redis_url: str) -> None:
    import redis

    with RedisRateLimiter(redis_url) as rl:
        d = rl.hit("key_7", rate=2, burst=4, cost=3)
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.keys("*") == [(KEY_PREFIX + "key_7").encode()]
        ttl_ms = client.pttl(KEY_PREFIX + "key_7")
        assert 0 < ttl_ms <= round(d.reset_after * 1000) + 1
        assert d.reset_after == pytest.approx(1.5, abs=0.05)
    finally:
        client.close()


def test_redis_reloads_the_script_after_a_flush(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        with RedisRateLimiter(redis_url) as rl:
            assert rl.hit("k", rate=SLOW, burst=3).remaining == 2
            client.script_flush()  # the cached script is gone: EVALSHA answers NOSCRIPT
            assert rl.hit("k", rate=SLOW, burst=3).remaining == 1
            assert rl.hit("k", rate=SLOW, burst=3).remaining == 0
    finally:
        client.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_redis_down_is_backend_unavailable_without_the_password() -> None:
    require_module("redis", "Redis")
    url = f"redis://:secret@127.0.0.1:{_closed_port()}/0"
    with RedisRateLimiter(url, timeout=1) as rl:
        with pytest.raises(BackendUnavailable) as info:
            rl.hit("k", rate=1, burst=1)
    exc = info.value
    shown = "".join(traceback.format_exception(exc)) + repr(exc.to_dict())
    assert "secret" not in shown
    assert f"redis://:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in exc.message


def test_redis_bad_url_is_a_config_error() -> None:
    require_module("redis", "Redis")
    with pytest.raises(ConfigError) as info:
        RedisRateLimiter("http://user:secret@example.com/")
    assert "secret" not in str(info.value)


def test_missing_redis_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # `import redis` now raises ImportError
    with pytest.raises(ConfigError) as info:
        open_rate_limiter("redis://127.0.0.1:6379/0")
    assert info.value.hint == "pip install 'agent-sdk[redis]'"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:secret@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:secret@host/1", "redis://user:***@host/1"),
        ("rediss://host:6380/0", "rediss://host:6380/0"),
        ("redis://user@host/0", "redis://user@host/0"),
        ("redis://host/0?password=secret&db=2", "redis://host/0?password=***&db=2"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_open_rate_limiter_picks_by_url(redis_url: str) -> None:
    assert isinstance(open_rate_limiter(None), MemoryRateLimiter)
    assert isinstance(open_rate_limiter(""), MemoryRateLimiter)
    rl = open_rate_limiter(redis_url)
    try:
        assert isinstance(rl, RedisRateLimiter)
        assert rl.hit("k", rate=1, burst=1).allowed
    finally:
        rl.close()


# -- headers -------------------------------------------------------------------------------


def test_headers_when_allowed() -> None:
    d = Decision(allowed=True, limit=10, remaining=7, reset_after=2.3, retry_after=0.0)
    assert rate_limit_headers(d, rate=2, burst=10) == {
        "RateLimit-Policy": '"default";q=10;w=5',
        "RateLimit": '"default";r=7;t=3',
    }


def test_headers_when_refused_carry_retry_after() -> None:
    d = Decision(allowed=False, limit=10, remaining=0, reset_after=29.2, retry_after=0.2)
    assert rate_limit_headers(d, rate=1 / 3, burst=10) == {
        "RateLimit-Policy": '"default";q=10;w=30',
        "RateLimit": '"default";r=0;t=30',
        "Retry-After": "1",
    }


def test_headers_round_float_dust_and_never_say_zero_window() -> None:
    d = Decision(allowed=False, limit=5, remaining=0, reset_after=2.0000000001, retry_after=3e-9)
    h = rate_limit_headers(d, rate=1000, burst=5, policy="per-key")
    assert h == {
        "RateLimit-Policy": '"per-key";q=5;w=1',
        "RateLimit": '"per-key";r=0;t=2',
        "Retry-After": "1",
    }


def test_headers_from_a_real_refusal() -> None:
    rl = MemoryRateLimiter(clock=FakeClock())
    rl.hit("k", rate=0.5, burst=2, cost=2)
    d = rl.hit("k", rate=0.5, burst=2)
    assert rate_limit_headers(d, rate=0.5, burst=2) == {
        "RateLimit-Policy": '"default";q=2;w=4',
        "RateLimit": '"default";r=0;t=4',
        "Retry-After": "2",
    }
