"""The in-memory queue: the Queue contract in one process, for tests and ``agent_sdk.testing``.

Not durable: jobs live in a dict and die with the process. Thread-safe: one lock guards every
job, and a Condition on that lock wakes waiting ``reserve`` calls when a job is enqueued or given
back, so a waiter never polls. Picking the next job scans all jobs (O(n)): fine for tests.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from agent_sdk.errors import Conflict, NotFound
from agent_sdk.queue.base import (
    Clock,
    DeadJob,
    Job,
    Lease,
    QueueDepth,
    check_job,
    check_limit,
    check_seconds,
    lease_lost,
    new_job_id,
    new_token,
)


@dataclass
class _Entry:
    job: Job
    seq: int  # insertion order, the tie-breaker that keeps equal times first-in first-out
    state: str = "ready"  # ready | leased | dead
    token: str | None = None
    expires_at: float = 0.0
    updated_at: float = 0.0

    def due(self) -> float:
        """When a reserve may take this job (inf: never)."""
        if self.state == "ready":
            return self.job.available_at
        if self.state == "leased":
            return self.expires_at
        return float("inf")


class MemoryQueue:
    supports_delay: ClassVar[bool] = True
    durable: ClassVar[bool] = False
    ordered: ClassVar[bool] = True
    unique_ids: ClassVar[bool] = True
    lease_expiry: ClassVar[bool] = True
    scheme: ClassVar[str] = "memory"

    def __init__(self, *, clock: Clock = time.time) -> None:
        self.clock = clock
        self._jobs: dict[str, _Entry] = {}
        self._seq = 0
        self._changed = threading.Condition()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MemoryQueue:
        """``memory://``: a new, empty queue."""
        return cls(**options)

    def __repr__(self) -> str:
        return f"MemoryQueue({len(self._jobs)} jobs)"

    def enqueue(
        self, kind: str, payload: dict[str, Any], *, delay: float = 0.0, job_id: str | None = None
    ) -> Job:
        text = check_job(kind, payload, delay)
        now = self.clock()
        job_id = job_id or new_job_id()
        with self._changed:
            if job_id in self._jobs:
                return self._jobs[job_id].job
            # Stored as its JSON decoded again: a deep copy the caller cannot mutate later, and
            # the same values a durable queue would give back (tuples become lists, ...).
            job = Job(job_id, kind, json.loads(text), 0, now, now + delay)
            self._seq += 1
            self._jobs[job_id] = _Entry(job, self._seq, updated_at=now)
            self._changed.notify()
            return job

    def reserve(self, worker: str, *, lease: float, timeout: float) -> Lease | None:
        check_seconds("lease", lease)
        check_seconds("timeout", timeout)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                now = self.clock()
                entry = min(self._jobs.values(), key=lambda e: (e.due(), e.seq), default=None)
                if entry is not None and entry.due() <= now:
                    entry.job = dataclasses.replace(entry.job, attempts=entry.job.attempts + 1)
                    entry.state, entry.token = "leased", new_token()
                    entry.expires_at, entry.updated_at = now + lease, now
                    return Lease(entry.job, entry.token, worker, entry.expires_at)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                # Sleep until notified, the deadline, or the next delayed job / lease expiry.
                if entry is not None and entry.due() != float("inf"):
                    left = min(left, max(entry.due() - now, 0.001))
                self._changed.wait(left)

    def _held(self, lease: Lease) -> _Entry:
        entry = self._jobs.get(lease.job.id)
        if entry is None or entry.state != "leased" or entry.token != lease.token:
            raise lease_lost(lease)
        return entry

    def extend(self, lease: Lease, seconds: float) -> Lease:
        check_seconds("seconds", seconds)
        with self._changed:
            entry = self._held(lease)
            now = self.clock()
            entry.expires_at, entry.updated_at = now + seconds, now
            return dataclasses.replace(lease, expires_at=entry.expires_at)

    def ack(self, lease: Lease) -> None:
        with self._changed:
            self._held(lease)
            del self._jobs[lease.job.id]

    def retry(self, lease: Lease, delay: float, error: str) -> None:
        check_seconds("delay", delay)
        with self._changed:
            entry = self._held(lease)
            now = self.clock()
            entry.job = dataclasses.replace(entry.job, available_at=now + delay, last_error=error)
            entry.state, entry.token, entry.updated_at = "ready", None, now
            self._changed.notify()

    def dead(self, lease: Lease, error: str) -> None:
        with self._changed:
            entry = self._held(lease)
            entry.job = dataclasses.replace(entry.job, last_error=error)
            entry.state, entry.token, entry.updated_at = "dead", None, self.clock()

    def depth(self) -> QueueDepth:
        counts = {"ready": 0, "delayed": 0, "leased": 0, "dead": 0}
        with self._changed:
            now = self.clock()
            for e in self._jobs.values():
                if e.state == "dead":
                    counts["dead"] += 1
                elif e.due() <= now:
                    counts["ready"] += 1  # due, or a lease that expired: takeable either way
                else:
                    counts["delayed" if e.state == "ready" else "leased"] += 1
        return QueueDepth(**counts)

    def list_dead(self, limit: int = 50) -> list[DeadJob]:
        check_limit(limit)
        with self._changed:
            dead = [e for e in self._jobs.values() if e.state == "dead"]
        dead.sort(key=lambda e: (e.updated_at, e.seq), reverse=True)
        return [DeadJob(e.job, e.job.last_error or "", e.updated_at) for e in dead[:limit]]

    def requeue_dead(self, job_id: str) -> Job:
        with self._changed:
            entry = self._jobs.get(job_id)
            if entry is None:
                raise NotFound(f"no job {job_id} in the queue")
            if entry.state != "dead":
                raise Conflict(f"job {job_id} is {entry.state}, not dead")
            now = self.clock()
            entry.job = dataclasses.replace(entry.job, attempts=0, available_at=now)
            entry.state, entry.updated_at = "ready", now
            self._changed.notify()
            return entry.job

    def close(self) -> None:
        pass


__all__ = ["MemoryQueue"]
