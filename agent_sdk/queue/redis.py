"""The Redis queue: Redis Streams with a consumer group, leases as tokens in a hash per job.

``AGENT_SDK_QUEUE_BACKEND=redis`` with ``AGENT_SDK_REDIS_URL=redis://host:6379/0``, or
``open_queue("redis://host:6379/0?queue=agent-sdk-jobs")``.

How it works (the keys are described in :mod:`agent_sdk.queue._redis_scripts`):

* Every operation is one Lua script, so it is atomic, and it reads the server's clock (TIME):
  lease expiries are the same for workers whose own clocks disagree.
* ``reserve`` first runs its script: due delayed jobs join the stream, then it takes the oldest
  expired lease (XCLAIM to the new consumer), else an entry a dead consumer read but never
  leased (XAUTOCLAIM), else the next new entry (XREADGROUP ``>``). With nothing to take it waits
  in a blocking XREADGROUP (no polling), for at most the time until the next delayed job or
  lease is due, and leases what that read delivered with the same script.
* ``attempts`` is our own counter in the job hash: a retried job goes back as a new stream entry,
  so the stream's delivery count would restart at 1.
"""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from agent_sdk.errors import BackendUnavailable, ConfigError, InvalidInput
from agent_sdk.masking import mask_url
from agent_sdk.queue import _redis_scripts as scripts
from agent_sdk.queue.base import BaseQueue, DeadJob, Job, Lease, QueueDepth, new_token

if TYPE_CHECKING:
    from agent_sdk.config import Settings

DEFAULT_QUEUE = "agent-sdk-jobs"
KEY_PREFIX = "agent-sdk:q:"
GROUP = "workers"
# One blocking read waits at most this long, so a socket timeout never cuts it short.
_MAX_BLOCK = 5.0
# Up to this much later than a due time, so workers waiting for one job race fairly for it.
_DUE_JITTER = 0.05
_SOCKET_TIMEOUT = _MAX_BLOCK + 5.0
# An entry read by a consumer that died before its lease was recorded is taken over after this.
_ORPHAN_IDLE_MS = 10_000


def _import_redis() -> Any:
    try:
        import redis
    except ImportError:
        raise ConfigError(
            "the Redis queue needs the redis package, which is not installed",
            hint="pip install 'agent-sdk[redis]'",
        ) from None
    return redis


def _job(fields: dict[str, str]) -> Job:
    return Job(
        id=fields["id"],
        kind=fields["kind"],
        payload=json.loads(fields["payload"]),
        attempts=int(fields["attempts"]),
        enqueued_at=float(fields["enqueued_at"]),
        available_at=float(fields["available_at"]),
        last_error=fields.get("last_error"),
    )


def _fields(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


class RedisQueue(BaseQueue):
    durable: ClassVar[bool] = True  # as durable as the server's persistence (AOF or RDB)
    ordered: ClassVar[bool] = True
    unique_ids: ClassVar[bool] = True
    lease_expiry: ClassVar[bool] = True
    scheme: ClassVar[str] = "redis"
    waits: ClassVar[bool] = True  # a blocking XREADGROUP

    def __init__(self, url: str, *, name: str = DEFAULT_QUEUE, timeout: float = 2.0) -> None:
        self._redis = _import_redis()
        if not name:
            raise ConfigError("a Redis queue needs a name", hint=f"e.g. ?queue={DEFAULT_QUEUE}")
        self.name = name
        self.url = mask_url(url)
        self._hide(url)
        self._prefix = f"{KEY_PREFIX}{name}:"
        self._stream = self._prefix + "stream"
        try:
            self._client = self._redis.Redis.from_url(
                url,
                decode_responses=True,
                socket_connect_timeout=timeout,
                socket_timeout=_SOCKET_TIMEOUT,
            )
        except ValueError as exc:
            raise ConfigError(f"invalid Redis URL {self.url}: {self._scrub(str(exc))}") from None
        register = self._client.register_script
        self._enqueue = register(scripts.ENQUEUE)
        self._reserve = register(scripts.RESERVE)
        self._extend_script = register(scripts.EXTEND)
        self._ack_script = register(scripts.ACK)
        self._retry_script = register(scripts.RETRY)
        self._dead_script = register(scripts.DEAD)
        self._requeue_script = register(scripts.REQUEUE_DEAD)
        self._depth = register(scripts.DEPTH)
        self._list_dead_script = register(scripts.LIST_DEAD)
        try:
            self._call(self._depth)  # connects, and creates the stream and its group
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisQueue:
        """``redis://[:password@]host:port/db?queue=name`` (``rediss://`` for TLS)."""
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        names = [v for k, v in pairs if k == "queue"]
        rest = urlencode([(k, v) for k, v in pairs if k != "queue"])
        if names:
            options.setdefault("name", names[-1])
        return cls(urlunsplit(parts._replace(query=rest)), **options)

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisQueue:
        """AGENT_SDK_REDIS_URL; the queue is ``agent-sdk-jobs`` unless the URL names another
        with ``?queue=``."""
        url = settings.redis_url
        if not url:
            raise ConfigError(
                "AGENT_SDK_QUEUE_BACKEND=redis needs AGENT_SDK_REDIS_URL",
                hint="e.g. AGENT_SDK_REDIS_URL=redis://localhost:6379/0",
            )
        return cls.from_url(url)

    def __repr__(self) -> str:
        return f"RedisQueue({self.url!r}, name={self.name!r})"

    # -- calls and errors --------------------------------------------------------------------------
    def _call(self, script: Any, *args: Any) -> Any:
        try:
            return script(keys=[self._stream], args=[self._prefix, *args])
        except self._redis.RedisError as exc:
            raise self._error(exc) from None
        except UnicodeEncodeError:  # a kind or error text with a lone surrogate
            raise InvalidInput("a text holds characters that cannot be stored") from None

    def _error(self, exc: BaseException) -> BackendUnavailable:
        return self._outage(
            f"Redis queue {self.name!r} at {self.url} failed: {exc}",
            hint="check AGENT_SDK_REDIS_URL and that Redis is running",
        )

    def close(self) -> None:
        self._client.close()
        self._client.connection_pool.disconnect()

    # -- the protocol ----------------------------------------------------------------------------
    def _put(self, job_id: str, kind: str, text: str, delay: float) -> Job:
        return _job(_fields(self._call(self._enqueue, job_id, kind, text, repr(float(delay)))))

    def _claim(self, worker: str, lease: float, wait: float) -> Lease | None:
        """The script; with nothing to take, a blocking read and the script again for what it
        delivered (reserve calls again after a read that delivered nothing)."""
        delivered: tuple[str, str] | None = None
        while True:
            token = new_token()
            args = [worker, repr(float(lease)), token, _ORPHAN_IDLE_MS, *(delivered or ())]
            reply = self._call(self._reserve, *args)
            if reply[0] == "ok":
                expires = float(reply[1])
                return Lease(_job(_fields(reply[2])), token, worker, expires)
            if delivered is not None or wait <= 0:
                return None
            wait = min(wait, _MAX_BLOCK)
            if reply[1]:  # a delayed job or a lease falls due sooner
                # Every waiting worker computes the same instant; a little jitter makes the
                # one that just gave a job back no likelier than the others to take it again
                # (a worker of another region hands jobs back: see agent_sdk.core.residency).
                wait = min(wait, float(reply[1]) + random.uniform(0, _DUE_JITTER))
            delivered = self._wait(worker, wait)
            if delivered is None:
                return None

    def _wait(self, worker: str, seconds: float) -> tuple[str, str] | None:
        """Block until a new entry arrives (it is then pending on ``worker``), or ``seconds``."""
        block = max(1, round(seconds * 1000))
        try:
            got = self._client.xreadgroup(GROUP, worker, {self._stream: ">"}, count=1, block=block)
        except self._redis.ResponseError as exc:
            # The stream was deleted before or while we waited: the next script recreates it.
            if "NOGROUP" in str(exc) or "UNBLOCKED" in str(exc):
                return None
            raise self._error(exc) from None
        except self._redis.RedisError as exc:
            raise self._error(exc) from None
        if not got:
            return None
        entry_id, fields = got[0][1][0]
        return entry_id, fields.get("id", "")

    def _holding(self, script: Any, lease: Lease, *args: Any) -> Any:
        """The script's reply; None when the lease was lost."""
        return self._call(script, lease.job.id, lease.token, *args)

    def _extend(self, lease: Lease, seconds: float) -> float | None:
        expires = self._holding(self._extend_script, lease, repr(float(seconds)))
        return None if expires is None else float(expires)

    def _ack(self, lease: Lease) -> bool:
        return self._holding(self._ack_script, lease) is not None

    def _retry(self, lease: Lease, delay: float, error: str) -> bool:
        return self._holding(self._retry_script, lease, repr(float(delay)), error) is not None

    def _dead(self, lease: Lease, error: str) -> bool:
        return self._holding(self._dead_script, lease, error) is not None

    def depth(self) -> QueueDepth:
        ready, delayed, leased, dead = (int(n) for n in self._call(self._depth))
        return QueueDepth(ready=ready, delayed=delayed, leased=leased, dead=dead)

    def _list_dead(self, limit: int) -> list[DeadJob]:
        out = []
        for flat in self._call(self._list_dead_script, limit):
            fields = _fields(flat)
            if not fields:  # deleted between the two reads of the script: cannot happen
                continue
            died_at = float(fields.get("died_at", "0"))
            out.append(
                DeadJob(job=_job(fields), error=fields.get("last_error") or "", died_at=died_at)
            )
        return out

    def _requeue(self, job_id: str) -> Job | str | None:
        reply = self._call(self._requeue_script, job_id)
        if reply[0] == "missing":
            return None
        return _job(_fields(reply[1])) if reply[0] == "ok" else str(reply[0])


__all__ = ["DEFAULT_QUEUE", "RedisQueue"]
