"""The in-memory queue: the Queue contract in one process, for tests and ``agent_sdk.testing``.

Not durable: jobs live in a dict and die with the process. Thread-safe: one lock guards every
job, and a Condition on that lock wakes waiting ``reserve`` calls when a job is enqueued or given
back, so a waiter never polls. Picking the next job scans all jobs (O(n)): fine for tests.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from agent_sdk.queue.base import (
    BaseQueue,
    Clock,
    DeadJob,
    Job,
    Lease,
    QueueDepth,
    new_job,
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

    def settle(self, state: str, now: float, **changes: Any) -> None:
        self.job = dataclasses.replace(self.job, **changes)
        self.state, self.token, self.updated_at = state, None, now


class MemoryQueue(BaseQueue):
    durable: ClassVar[bool] = False
    ordered: ClassVar[bool] = True
    unique_ids: ClassVar[bool] = True
    lease_expiry: ClassVar[bool] = True
    scheme: ClassVar[str] = "memory"
    waits: ClassVar[bool] = True

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

    def _put(self, job_id: str, kind: str, text: str, delay: float) -> Job:
        now = self.clock()
        with self._changed:
            if job_id in self._jobs:
                return self._jobs[job_id].job
            self._seq += 1
            self._jobs[job_id] = _Entry(new_job(job_id, kind, text, now, now + delay), self._seq)
            self._jobs[job_id].updated_at = now
            self._changed.notify()
            return self._jobs[job_id].job

    def _claim(self, worker: str, lease: float, wait: float) -> Lease | None:
        with self._changed:
            for waited in (False, True):
                now = self.clock()
                entry = min(self._jobs.values(), key=lambda e: (e.due(), e.seq), default=None)
                if entry is not None and entry.due() <= now:
                    entry.job = dataclasses.replace(entry.job, attempts=entry.job.attempts + 1)
                    entry.state, entry.token = "leased", new_token()
                    entry.expires_at, entry.updated_at = now + lease, now
                    return Lease(entry.job, entry.token, worker, entry.expires_at)
                if waited or wait <= 0:
                    break
                # Sleep until notified, the deadline, or the next delayed job / lease expiry.
                if entry is not None and entry.due() != float("inf"):
                    wait = min(wait, max(entry.due() - now, 0.001))
                self._changed.wait(wait)
        return None

    def _held(self, lease: Lease) -> _Entry | None:
        entry = self._jobs.get(lease.job.id)
        held = entry is not None and entry.state == "leased" and entry.token == lease.token
        return entry if held else None

    def _extend(self, lease: Lease, seconds: float) -> float | None:
        with self._changed:
            if (entry := self._held(lease)) is None:
                return None
            entry.updated_at = self.clock()
            entry.expires_at = entry.updated_at + seconds
            return entry.expires_at

    def _settle(self, lease: Lease, state: str, delay: float | None = None, **changes: Any) -> bool:
        """Take the job out of the lease: gone (state ""), ready again, or dead."""
        with self._changed:
            if (entry := self._held(lease)) is None:
                return False
            now = self.clock()
            if delay is not None:
                changes["available_at"] = now + delay
            if state:
                entry.settle(state, now, **changes)
            else:
                del self._jobs[lease.job.id]
            self._changed.notify()
            return True

    def _ack(self, lease: Lease) -> bool:
        return self._settle(lease, "")

    def _retry(self, lease: Lease, delay: float, error: str) -> bool:
        return self._settle(lease, "ready", delay, last_error=error)

    def _dead(self, lease: Lease, error: str) -> bool:
        return self._settle(lease, "dead", last_error=error)

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

    def _list_dead(self, limit: int) -> list[DeadJob]:
        with self._changed:
            dead = [e for e in self._jobs.values() if e.state == "dead"]
        dead.sort(key=lambda e: (e.updated_at, e.seq), reverse=True)
        return [DeadJob(e.job, e.job.last_error or "", e.updated_at) for e in dead[:limit]]

    def _requeue(self, job_id: str) -> Job | str | None:
        with self._changed:
            entry = self._jobs.get(job_id)
            if entry is None or entry.state != "dead":
                return None if entry is None else entry.state
            now = self.clock()
            entry.settle("ready", now, attempts=0, available_at=now)
            self._changed.notify()
            return entry.job

    def close(self) -> None:
        pass


__all__ = ["MemoryQueue"]
