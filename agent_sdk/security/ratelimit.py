"""Per-key rate limits: GCRA (the generic cell rate algorithm) in memory or in Redis.

GCRA is a token bucket stored as one number per key, the *theoretical arrival time* (TAT): the
moment the bucket would be full again. With ``interval = 1 / rate`` and ``tau = burst * interval``
a hit of ``cost`` tokens moves the TAT to ``max(tat, now) + cost * interval`` and is allowed when
that is at most ``tau`` ahead of now. A full bucket is simply a TAT in the past, so a key that is
forgotten (expired, swept) loses nothing.

Limits belong to the key *id*: callers pass ``key_id`` (never the secret) as ``key``, so rotating
a key's secret keeps its bucket, and a client cannot reset its limit by rotating.

* :class:`MemoryRateLimiter`: one process, thread-safe, bounded memory.
* :class:`RedisRateLimiter`: shared by every process that uses the same Redis. The whole step is
  one Lua script, so it is atomic, and it reads the Redis server's clock, so the clocks of the
  application servers never matter.

:func:`rate_limit_headers` renders a :class:`Decision` as the ``RateLimit`` / ``RateLimit-Policy``
headers of the IETF httpapi draft, plus ``Retry-After`` when refused.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple, Protocol

from agent_sdk.errors import BackendUnavailable, ConfigError, InvalidInput
from agent_sdk.masking import mask_url, scrub, url_secrets

KEY_PREFIX = "agent-sdk:rl:"


class Decision(NamedTuple):
    """The answer to one hit. (A named tuple: made on every request, it costs a third of a
    frozen dataclass.)"""

    allowed: bool
    limit: int  # the burst: tokens in a full bucket
    remaining: int  # tokens left after this hit
    reset_after: float  # seconds until the bucket is full again
    retry_after: float  # seconds until this hit would pass; 0 when allowed


class RateLimiter(Protocol):
    def hit(self, key: str, *, rate: float, burst: int, cost: int = 1) -> Decision:
        """Take ``cost`` tokens from ``key``'s bucket (``rate`` tokens/s, ``burst`` at most)."""
        ...

    def close(self) -> None: ...


def _check(rate: float, burst: int, cost: int) -> None:
    if not (rate > 0 and math.isfinite(rate)):
        raise InvalidInput(f"rate must be a positive number of tokens per second, not {rate!r}")
    if burst < 1:
        raise InvalidInput(f"burst must be at least 1, not {burst!r}")
    if cost < 0 or cost > burst:
        # A cost above the burst could never pass: say so instead of refusing forever.
        raise InvalidInput(f"cost must be from 0 to the burst ({burst}), not {cost!r}")


def _tolerance(interval: float) -> float:
    """Slack for float rounding: TATs are sums of fractional intervals, so an exact boundary
    (the last token of a burst) can land a few ulps past ``tau``. A microsecond, or a thousandth
    of a token for very high rates, never changes a real decision."""
    return min(1e-6, interval / 1000)


def gcra(tat: float, now: float, *, rate: float, burst: int, cost: int) -> tuple[float, Decision]:
    """One GCRA step in seconds on any clock. Returns the TAT to keep and the decision.
    The Lua script of :class:`RedisRateLimiter` is the same arithmetic in microseconds."""
    interval = 1.0 / rate
    tau = burst * interval
    tol = _tolerance(interval)
    if tat < now:
        tat = now
    new_tat = tat + cost * interval
    ahead = new_tat - now
    if ahead <= tau + tol:
        remaining = math.floor((tau - ahead + tol) / interval)
        return new_tat, Decision(True, burst, _clamp(remaining, burst), ahead, 0.0)
    used = tat - now
    remaining = math.floor((tau - used + tol) / interval)
    return tat, Decision(False, burst, _clamp(remaining, burst), used, ahead - tau)


def _clamp(remaining: int, burst: int) -> int:
    return 0 if remaining < 0 else burst if remaining > burst else remaining


class MemoryRateLimiter:
    """GCRA in a dict guarded by a lock: for one process.

    Memory stays bounded two ways: every ``sweep_interval`` seconds the table is rebuilt without
    the keys whose TAT is past (their buckets are full, so forgetting them changes nothing, and a
    rebuilt dict gives its memory back where deletions would not); and above ``max_keys`` the
    least recently hit key is dropped (which does forget a partly used bucket: a safety cap for
    floods of distinct keys, not the normal path).
    """

    def __init__(
        self,
        *,
        sweep_interval: float = 10.0,
        max_keys: int = 1_000_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tats: dict[str, float] = {}  # in least-recently-hit-first order
        self._lock = threading.Lock()
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._max_keys = max_keys
        self._next_sweep = clock() + sweep_interval

    def hit(self, key: str, *, rate: float, burst: int, cost: int = 1) -> Decision:
        _check(rate, burst, cost)
        with self._lock:
            # The clock is read under the lock, so TATs of one key only ever move forward.
            now = self._clock()
            if now >= self._next_sweep:
                self._sweep(now)
            # Pop and re-insert: the dict stays ordered by last hit, for the max_keys cap.
            tat, decision = gcra(self._tats.pop(key, now), now, rate=rate, burst=burst, cost=cost)
            if tat > now:
                self._tats[key] = tat
                if len(self._tats) > self._max_keys:
                    del self._tats[next(iter(self._tats))]
        return decision

    def _sweep(self, now: float) -> None:
        self._tats = {k: tat for k, tat in self._tats.items() if tat > now}
        self._next_sweep = now + self._sweep_interval

    def __len__(self) -> int:
        """How many keys are remembered (keys with a full bucket may still count until the next
        sweep)."""
        return len(self._tats)

    def close(self) -> None:
        with self._lock:
            self._tats = {}


# KEYS[1] = the bucket; ARGV = interval (microseconds per token), burst, cost.
# Returns {allowed, remaining, reset_after_us, retry_after_us}, integers because Redis truncates
# Lua numbers in replies. The TAT is stored with %.17g: Lua's tostring keeps 14 digits, too few
# for microseconds since 1970.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tau = burst * interval
local tol = math.min(1, interval / 1000)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + cost * interval
local ahead = new_tat - now
if ahead <= tau + tol then
  if cost > 0 then
    redis.call('SET', KEYS[1], string.format('%.17g', new_tat),
               'PX', math.max(1, math.ceil(ahead / 1000)))
  end
  return {1, math.floor((tau - ahead + tol) / interval), math.ceil(ahead), 0}
end
local used = tat - now
return {0, math.floor((tau - used + tol) / interval), math.ceil(used), math.ceil(ahead - tau)}
"""
_SCRIPT_SHA = hashlib.sha1(_SCRIPT.encode()).hexdigest()


def _import_redis() -> Any:
    try:
        import redis
    except ImportError:
        raise ConfigError(
            "AGENT_SDK_REDIS_URL is set but the redis package is not installed",
            hint="pip install 'agent-sdk[redis]'",
        ) from None
    return redis


class RedisRateLimiter:
    """GCRA in Redis, shared between processes. Keys are ``agent-sdk:rl:<key>`` and expire when
    their bucket is full again, so Redis holds only buckets in use.

    Connection failures raise :class:`BackendUnavailable` (the caller chooses to fail open or
    closed). A connection error is retried once, on a fresh connection (the script never ran);
    a timeout is not, since the script may have run and a retry would charge twice.
    """

    def __init__(self, url: str, *, timeout: float = 2.0) -> None:
        self._redis = _import_redis()
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._shown_url = mask_url(url)
        self._secrets = url_secrets(url)
        try:
            self._client = self._redis.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 1, supported_errors=(self._redis.ConnectionError,)),
            )
        except ValueError as exc:
            raise ConfigError(f"invalid Redis URL {self._shown_url}: {self._scrub(exc)}") from None

    def hit(self, key: str, *, rate: float, burst: int, cost: int = 1) -> Decision:
        _check(rate, burst, cost)
        # repr keeps every digit of the interval; the script does its arithmetic in doubles.
        args = (KEY_PREFIX + key, repr(1_000_000 / rate), burst, cost)
        try:
            try:
                reply = self._client.evalsha(_SCRIPT_SHA, 1, *args)
            except self._redis.exceptions.NoScriptError:
                # First use on this server (or after SCRIPT FLUSH): EVAL also caches it.
                reply = self._client.eval(_SCRIPT, 1, *args)
        except self._redis.RedisError as exc:
            raise BackendUnavailable(
                f"rate limiter Redis at {self._shown_url} failed: {self._scrub(exc)}",
                hint="check AGENT_SDK_REDIS_URL and that Redis is running",
            ) from None
        allowed, remaining, reset_us, retry_us = (int(x) for x in reply)
        return Decision(
            allowed=bool(allowed),
            limit=burst,
            remaining=min(max(remaining, 0), burst),
            reset_after=reset_us / 1e6,
            retry_after=retry_us / 1e6,
        )

    def _scrub(self, exc: BaseException) -> str:
        return scrub(str(exc), self._secrets)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RedisRateLimiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_rate_limiter(redis_url: str | None) -> RateLimiter:
    """Redis when ``redis_url`` (``AGENT_SDK_REDIS_URL``) is set, else one process's memory."""
    if redis_url:
        return RedisRateLimiter(redis_url)
    return MemoryRateLimiter()


def _ceil(seconds: float) -> int:
    # Round away float dust first: 2.0000000001 s is 2 s, not 3.
    return math.ceil(round(seconds, 6))


@lru_cache(maxsize=1024)
def _policy_header(policy: str, burst: int, rate: float) -> str:
    # The same for every answer to one key: worked out once per (policy, burst, rate).
    return f'"{policy}";q={burst};w={max(1, _ceil(burst / rate))}'


def rate_limit_headers(
    decision: Decision, *, rate: float, burst: int, policy: str = "default"
) -> dict[str, str]:
    """Headers of draft-ietf-httpapi-ratelimit-headers in their structured-field form: the
    policy (quota ``q`` per window ``w`` seconds, the time to refill a whole burst) and the
    current state (``r`` remaining, ``t`` seconds until the bucket is full), plus
    ``Retry-After`` (whole seconds, at least 1) when the hit was refused."""
    headers = {
        "RateLimit-Policy": _policy_header(policy, burst, rate),
        "RateLimit": f'"{policy}";r={decision.remaining};t={_ceil(decision.reset_after)}',
    }
    if not decision.allowed:
        headers["Retry-After"] = str(max(1, _ceil(decision.retry_after)))
    return headers


__all__ = [
    "KEY_PREFIX",
    "Decision",
    "MemoryRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "gcra",
    "open_rate_limiter",
    "rate_limit_headers",
]
