"""The Queue protocol: at-least-once delivery of jobs to workers, with leases.

A job's life::

    enqueue ──► ready ──reserve──► leased ──ack──► (gone)
                  ▲  ▲                │ │
                  │  └──retry(delay)──┘ └──dead──► dead ──requeue_dead──► ready
                  └── lease expired (the next reserve takes it, attempts + 1)

* **At-least-once.** A worker that dies holding a lease does not lose the job: when the lease
  expires, the next ``reserve`` (by any worker) takes it, with ``attempts`` raised again. A worker
  therefore must make its side effects safe to repeat (the run's state in the store says what
  was already done).
* **Leases are tokens.** Every ``reserve`` hands out a fresh random token; ``extend``, ``ack``,
  ``retry`` and ``dead`` act only if the job still carries that token, and raise
  :class:`~agent_sdk.errors.Conflict` when the lease was lost (it expired and another worker took
  the job, or the job is gone). A lease that expired but that nobody took yet is still honoured.
* **Natural keys.** ``enqueue(..., job_id=X)`` enqueues at most one job ``X``: while a job with
  that id is in the queue (ready, delayed, leased or dead) a second enqueue returns the existing
  job unchanged. An acknowledged job is deleted, so its id may be enqueued again later.
* **Waiting never spins.** ``reserve`` waits up to ``timeout`` seconds, by a notification where the
  backend has one and by bounded back-off polling where it does not.

Capabilities are class attributes, read without isinstance checks:

* ``supports_delay``: ``enqueue(delay=...)`` and ``retry(delay=...)`` hold a job back.
* ``durable``: jobs survive a restart of the process (and of the service holding them).
* ``ordered``: ready jobs are reserved oldest first. SQS standard queues and a multi-partition
  Kafka topic deliver in roughly that order, not exactly.
* ``unique_ids``: ``job_id`` keeps one job per id, as described above. Without it a second
  enqueue of an id may add a second job; the worker copes, because a run's state in the store
  says whether it still needs executing.
* ``lease_expiry``: a lease that is neither extended nor settled expires on time and another
  worker takes the job. Without it (Kafka) a job moves to another worker only when its consumer
  leaves the group (it closed, or stopped polling for longer than the group allows).

:class:`BaseQueue` does what every backend shares, as kombu's virtual transport does for its
channels: it checks every argument, builds jobs, runs ``reserve``'s wait (polling with back-off
for a backend that cannot wait for news itself), turns a lost lease and a refused requeue into
the errors above, and keeps a backend's URL masked in what it says. A backend writes only the
primitives: ``_put``, ``_claim``, ``_extend``, ``_ack``, ``_retry``, ``_dead``, ``_list_dead``,
``_requeue``, ``depth`` and ``close``.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from agent_sdk.errors import BackendUnavailable, Conflict, InvalidInput, NotFound
from agent_sdk.masking import scrub, url_secrets

Clock = Callable[[], float]

# Waiting by polling: first retry after 5 ms, doubling up to 100 ms. A job enqueued while a
# worker sleeps is picked up at most 100 ms late, and an idle worker makes ~10 queries a second.
POLL_MIN = 0.005
POLL_MAX = 0.1


@dataclass(frozen=True)
class Job:
    """One unit of work. ``payload`` is a JSON object; times are Unix seconds (``time.time()``)."""

    id: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    enqueued_at: float
    available_at: float
    # The error recorded by the last retry() or dead(), so a worker sees why it runs again.
    last_error: str | None = None


@dataclass(frozen=True)
class Lease:
    """A worker's claim on a job until ``expires_at``; ``token`` proves it is still the holder."""

    job: Job
    token: str
    worker: str
    expires_at: float


@dataclass(frozen=True)
class QueueDepth:
    """Jobs by state. ``ready`` includes jobs whose lease expired (any worker may take them)."""

    ready: int
    delayed: int
    leased: int
    dead: int

    @property
    def total(self) -> int:
        return self.ready + self.delayed + self.leased + self.dead


@dataclass(frozen=True)
class DeadJob:
    """A dead-lettered job, the error that killed it and when."""

    job: Job
    error: str
    died_at: float


@runtime_checkable
class Queue(Protocol):
    supports_delay: ClassVar[bool]
    durable: ClassVar[bool]
    ordered: ClassVar[bool]
    unique_ids: ClassVar[bool]
    lease_expiry: ClassVar[bool]

    def enqueue(
        self, kind: str, payload: dict[str, Any], *, delay: float = 0.0, job_id: str | None = None
    ) -> Job:
        """Add a job, ready after ``delay`` seconds. An id already queued returns that job."""
        ...

    def reserve(self, worker: str, *, lease: float, timeout: float) -> Lease | None:
        """Take the oldest ready job for ``lease`` seconds (attempts + 1), waiting up to
        ``timeout`` seconds for one; None when none came."""
        ...

    def extend(self, lease: Lease, seconds: float) -> Lease:
        """Heartbeat: the lease now ends ``seconds`` from now. Conflict if the lease was lost."""
        ...

    def ack(self, lease: Lease) -> None:
        """The job is done: remove it. Conflict if the lease was lost."""
        ...

    def retry(self, lease: Lease, delay: float, error: str) -> None:
        """Give the job back, ready again after ``delay`` seconds, keeping ``error``."""
        ...

    def dead(self, lease: Lease, error: str) -> None:
        """Move the job to the dead-letter state, keeping ``error``."""
        ...

    def depth(self) -> QueueDepth: ...

    def list_dead(self, limit: int = 50) -> list[DeadJob]:
        """Dead jobs, the most recently dead first."""
        ...

    def requeue_dead(self, job_id: str) -> Job:
        """An operator's retry: the dead job is ready again with attempts reset to 0 (its last
        error kept). NotFound if there is no such job, Conflict if it is not dead (a queue that
        can only search its dead letters, SQS, says NotFound for a live job too)."""
        ...

    def close(self) -> None: ...


# -- helpers shared by the backends ------------------------------------------------------------


def new_job_id() -> str:
    return "job_" + secrets.token_hex(12)


def new_token() -> str:
    return secrets.token_urlsafe(18)


def check_job(kind: str, payload: dict[str, Any], delay: float) -> str:
    """Validate an enqueue and return the payload as canonical JSON text."""
    if not kind or not isinstance(kind, str):
        raise InvalidInput("a job needs a kind (a non-empty string)")
    if not isinstance(payload, dict):
        raise InvalidInput(f"a job payload must be a JSON object, not {type(payload).__name__}")
    if delay < 0:
        raise InvalidInput(f"delay must be >= 0, not {delay}")
    try:
        # ASCII escapes: a lone surrogate survives the trip through a UTF-8 database as \udXXX.
        return json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"job payload is not JSON-serialisable: {exc}") from None


def lease_lost(lease: Lease) -> Conflict:
    return Conflict(
        f"job {lease.job.id} is no longer leased to {lease.worker}: the lease expired and another "
        "worker took the job, or the job was finished",
        hint="drop this attempt's result; the current holder finishes the job",
    )


def check_seconds(name: str, value: float) -> None:
    if value < 0:
        raise InvalidInput(f"{name} must be >= 0, not {value}")


def check_limit(limit: int) -> int:
    if limit < 1 or limit > 1000:
        raise InvalidInput(f"limit must be from 1 to 1000, not {limit}")
    return limit


# -- the shared base -------------------------------------------------------------------------


class BaseQueue(ABC):
    """The Queue protocol on top of a handful of primitives (see the module's docstring)."""

    supports_delay: ClassVar[bool] = True
    durable: ClassVar[bool]
    ordered: ClassVar[bool]
    unique_ids: ClassVar[bool]
    lease_expiry: ClassVar[bool]
    scheme: ClassVar[str]
    # Whether _claim waits up to its ``wait`` for a job itself (a notification, a blocking read,
    # a long poll). A backend that cannot returns at once, and reserve polls it with back-off.
    waits: ClassVar[bool] = False

    url: str = ""  # where the queue is, its secrets masked
    _closed: bool = False  # set by close() where a backend tracks it: reserve stops waiting
    _secrets: tuple[str, ...] = ()  # what _scrub takes out of every message

    # -- what a backend writes ---------------------------------------------------------------
    @abstractmethod
    def _put(self, job_id: str, kind: str, text: str, delay: float) -> Job:
        """Add a job (its payload checked, as JSON ``text``), or return the queued one of that
        id where the backend keeps ids unique."""

    @abstractmethod
    def _claim(self, worker: str, lease: float, wait: float) -> Lease | None:
        """Lease the next due job (attempts + 1), or None. A backend that ``waits`` waits up to
        ``wait`` seconds for one before it gives up."""

    @abstractmethod
    def _extend(self, lease: Lease, seconds: float) -> float | None:
        """The lease's new end, ``seconds`` from now; None if the lease was lost."""

    @abstractmethod
    def _ack(self, lease: Lease) -> bool:
        """Remove the job; False if the lease was lost."""

    @abstractmethod
    def _retry(self, lease: Lease, delay: float, error: str) -> bool:
        """Ready again after ``delay``, keeping ``error``; False if the lease was lost."""

    @abstractmethod
    def _dead(self, lease: Lease, error: str) -> bool:
        """Dead-letter the job, keeping ``error``; False if the lease was lost."""

    @abstractmethod
    def _list_dead(self, limit: int) -> list[DeadJob]:
        """Up to ``limit`` dead jobs, the most recently dead first."""

    @abstractmethod
    def _requeue(self, job_id: str) -> Job | str | None:
        """Make a dead job ready again with attempts 0: the job; or the state it is in when it
        is not dead; or None when there is no such job."""

    @abstractmethod
    def depth(self) -> QueueDepth: ...

    @abstractmethod
    def close(self) -> None: ...

    def _check_open(self) -> None:
        """Raise if the queue was closed (a backend that notices it before any request)."""
        return

    # -- the protocol --------------------------------------------------------------------------
    def enqueue(
        self, kind: str, payload: dict[str, Any], *, delay: float = 0.0, job_id: str | None = None
    ) -> Job:
        self._check_open()
        text = check_job(kind, payload, delay)
        return self._put(job_id or new_job_id(), kind, text, delay)

    def reserve(self, worker: str, *, lease: float, timeout: float) -> Lease | None:
        check_seconds("lease", lease)
        check_seconds("timeout", timeout)
        if not worker:
            raise InvalidInput("a worker needs a name")
        deadline = time.monotonic() + timeout
        pause = POLL_MIN
        while True:
            wait = max(deadline - time.monotonic(), 0.0)
            taken = self._claim(worker, lease, wait)
            if taken is not None:
                return taken
            left = deadline - time.monotonic()
            if left <= 0 or self._closed:
                return None
            if not self._waited(wait):
                time.sleep(min(pause, left))
                pause = min(pause * 2, POLL_MAX)

    def _waited(self, wait: float) -> bool:
        """Whether ``_claim(..., wait)`` waited for news itself (no back-off needed)."""
        return self.waits

    def extend(self, lease: Lease, seconds: float) -> Lease:
        check_seconds("seconds", seconds)
        expires_at = self._extend(lease, seconds)
        if expires_at is None:
            raise lease_lost(lease)
        return dataclasses.replace(lease, expires_at=expires_at)

    def ack(self, lease: Lease) -> None:
        if not self._ack(lease):
            raise lease_lost(lease)

    def retry(self, lease: Lease, delay: float, error: str) -> None:
        check_seconds("delay", delay)
        if not self._retry(lease, delay, error):
            raise lease_lost(lease)

    def dead(self, lease: Lease, error: str) -> None:
        if not self._dead(lease, error):
            raise lease_lost(lease)

    def list_dead(self, limit: int = 50) -> list[DeadJob]:
        return self._list_dead(check_limit(limit))

    def requeue_dead(self, job_id: str) -> Job:
        found = self._requeue(job_id)
        if found is None:
            raise NotFound(f"no job {job_id} in the queue")
        if isinstance(found, str):
            raise Conflict(f"job {job_id} is {found}, not dead")
        return found

    # -- helpers for the backends --------------------------------------------------------------
    def _hide(self, *urls: str | None) -> None:
        """Keep the secrets of these URLs (passwords, keys) out of every message."""
        self._secrets = tuple(s for u in urls if u for s in url_secrets(u))

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)

    def _outage(self, message: str, hint: str) -> BackendUnavailable:
        """The service failed: ``message`` with its secrets taken out."""
        return BackendUnavailable(self._scrub(message), hint=hint)


def new_job(job_id: str, kind: str, text: str, enqueued_at: float, available_at: float) -> Job:
    """A new job (attempts 0) whose payload is ``text`` decoded again: a deep copy the caller
    cannot mutate later, with the values a durable queue gives back (tuples become lists)."""
    return Job(job_id, kind, json.loads(text), 0, enqueued_at, available_at)


__all__ = [
    "BaseQueue",
    "Clock",
    "DeadJob",
    "Job",
    "Lease",
    "Queue",
    "QueueDepth",
    "check_job",
    "new_job",
    "new_job_id",
    "new_token",
]
