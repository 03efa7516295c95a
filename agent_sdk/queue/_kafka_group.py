"""The Kafka queue's consumer-group member: partitions owned, records read, leases handed out.

One :class:`GroupMember` per queue handle, created by the handle's first ``reserve`` (a handle
that only enqueues never joins the group, so it never takes partitions it would not read).
Everything here follows from three facts about Kafka:

* **A partition belongs to one member at a time**, and moves only in a rebalance. The rebalance
  callbacks run inside ``poll``; giving a partition up drops its state and its leases, which
  then answer Conflict. Commits are refused by the group coordinator once a member is fenced,
  but not for a single partition that moved, so this side makes sure it commits only what it
  owns: callbacks and commits take the same lock.
* **Commits are cumulative.** The commit of a partition advances only to the lowest offset not
  settled; see :class:`~agent_sdk.queue._kafka_state.PartitionState` for what its metadata
  records above that point, and how the next owner uses it.
* **A member must poll** (within ``max.poll.interval.ms``) or it is fenced, and it must poll for
  a rebalance to go through. ``reserve`` polls; ``extend`` polls once too when no ``reserve`` is
  polling, so a process whose workers are all busy stays in the group.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent_sdk.errors import BackendUnavailable, BadRecord, Conflict
from agent_sdk.queue._kafka_reader import TP, SideReader
from agent_sdk.queue._kafka_state import (
    UNREADABLE,
    CommitMarks,
    PartitionState,
    decode_job,
    unreadable_job,
)
from agent_sdk.queue.base import Job, Lease, lease_lost, new_token

log = logging.getLogger("agent_sdk.queue.kafka")

# Not-yet-due retry records one member holds in memory before it stops reading ahead.
MAX_HELD = 1000
# How long one poll blocks: reserve re-checks held jobs and its deadline this often.
_POLL_CHUNK = 0.25
# Past its timeout, reserve keeps polling (at most this long) while records are known to be on
# their way to this member; see GroupMember.worth_waiting.
SETTLE = 10.0
# Commit errors that mean this member no longer owns what it committed.
_FENCED = (
    "STALE_MEMBER_EPOCH",
    "FENCED_MEMBER_EPOCH",
    "UNKNOWN_MEMBER_ID",
    "ILLEGAL_GENERATION",
    "FENCED_INSTANCE_ID",
    "_ASSIGNMENT_LOST",
    "_STATE",
)


@dataclass(frozen=True)
class _Held:
    """A lease handed out: where its record is, and the job as the worker got it."""

    tp: TP
    offset: int
    part: PartitionState
    job: Job


class GroupMember:
    def __init__(
        self,
        kafka: Any,
        config: dict[str, Any],
        *,
        topic: str,
        retry_topic: str,
        side: SideReader,
        bury: Callable[[Job, str], None],
        error: Callable[[str, BaseException | str], BackendUnavailable],
        timeout: float,
    ) -> None:
        self._kafka = kafka
        self._topic = topic
        self._retry_topic = retry_topic
        self._side = side
        self._bury = bury
        self._error = error
        self._timeout = timeout
        self._fenced_codes = {getattr(kafka.KafkaError, name, None) for name in _FENCED}
        self._lock = threading.RLock()  # the state below; never held while polling
        self._poll_lock = threading.Lock()  # one poll at a time, its record handled before
        self._parts: dict[TP, PartitionState] = {}
        self._leases: dict[str, _Held] = {}
        self._ready: list[tuple[float, int, TP, int, PartitionState, Job]] = []
        self._seq = itertools.count()
        self._paused: set[TP] = set()
        self._closed = False
        self._consumer = kafka.Consumer(config)
        self._consumer.subscribe(
            [topic, retry_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._moved_at = time.monotonic()  # joined, or its partitions last changed

    def close(self) -> None:
        """Leave the group; the revoke callbacks commit what was settled, and what was not goes
        to the partitions' next owners. A poll in progress finishes first."""
        with self._poll_lock:
            self._closed = True
            self._consumer.close()

    # -- rebalances --------------------------------------------------------------------------------
    def _on_assign(self, _consumer: Any, partitions: list[Any]) -> None:
        with self._lock:
            self._moved_at = time.monotonic()
            for tp in partitions:
                key = (tp.topic, tp.partition)
                if key in self._parts:  # assigned again without a revoke: start over
                    self._drop(key, commit=False)
                self._parts[key] = PartitionState()

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        with self._lock:
            self._moved_at = time.monotonic()
            for tp in partitions:
                self._drop((tp.topic, tp.partition), commit=True)

    def _on_lost(self, _consumer: Any, partitions: list[Any]) -> None:
        with self._lock:
            self._moved_at = time.monotonic()
            for tp in partitions:
                self._drop((tp.topic, tp.partition), commit=False)

    def _drop(self, tp: TP, *, commit: bool) -> None:
        """Give a partition up: what it held is the next owner's, and its leases are lost."""
        part = self._parts.pop(tp, None)
        self._paused.discard(tp)
        if part is None:
            return
        if commit and part.loaded:
            try:
                self._commit(tp, part)
            except self._kafka.KafkaException as exc:
                log.info("final commit of %s/%d failed: %s", *tp, exc)
        for token in [t for t, held in self._leases.items() if held.part is part]:
            del self._leases[token]

    # -- commits -----------------------------------------------------------------------------------
    def _load_marks(self) -> None:
        """Read the commit metadata of the partitions assigned since the last read."""
        kafka = self._kafka
        todo = [tp for tp, part in self._parts.items() if not part.loaded]
        if not todo:
            return
        try:
            got = self._consumer.committed(
                [kafka.TopicPartition(t, p) for t, p in todo], timeout=self._timeout
            )
        except kafka.KafkaException as exc:
            raise self._error("reading committed offsets", exc) from None
        for tp in got:
            part = self._parts.get((tp.topic, tp.partition))
            if part is not None and not part.loaded:
                floor = max(tp.offset, 0)
                part.load(CommitMarks.decode(tp.metadata, floor), floor)

    def _commit(self, tp: TP, part: PartitionState) -> None:
        point = part.commit_point()
        if point is None:
            return
        kafka = self._kafka
        offset = kafka.TopicPartition(tp[0], tp[1], point, part.marks(point).encode())
        for result in self._consumer.commit(offsets=[offset], asynchronous=False) or ():
            if result.error is not None:
                raise kafka.KafkaException(result.error)

    def _fenced(self, exc: BaseException) -> bool:
        err: Any = exc.args[0] if exc.args else None
        return hasattr(err, "code") and err.code() in self._fenced_codes

    def _settle_commit(self, tp: TP, part: PartitionState) -> None:
        try:
            self._commit(tp, part)
        except self._kafka.KafkaException as exc:
            if self._fenced(exc):
                raise Conflict(f"partition {tp[0]}/{tp[1]} moved to another consumer") from None
            # Settled here all the same; the partition's next commit carries it.
            log.warning("commit of %s/%d failed, retried with the next one: %s", *tp, exc)

    # -- reading -----------------------------------------------------------------------------------
    def poll(self, seconds: float, *, wait_turn: bool = True) -> None:
        """One poll (which also runs the rebalance callbacks); a record read joins the ready
        heap, or the dead letters when it is not a job."""
        if not self._poll_lock.acquire(blocking=wait_turn):
            return  # another thread is polling: that keeps the membership alive too
        try:
            if self._closed:
                return
            msg = self._consumer.poll(seconds)
            if msg is None:
                return
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise self._error("consuming", err.str())
                log.warning("Kafka queue %r: %s", self._topic, err.str())
                return
            self._accept(msg)
        finally:
            self._poll_lock.release()

    def _accept(self, msg: Any) -> None:
        tp = (msg.topic(), msg.partition())
        offset = msg.offset()
        with self._lock:
            part = self._parts.get(tp)
            if part is None:
                return
            if not part.loaded:
                self._load_marks()
            fresh, before = part.read(offset)
            if not fresh:
                return
            part.waiting.add(offset)
            try:
                job, _ = decode_job(msg.value())
            except BadRecord as exc:
                reason = str(exc)
            else:
                if before is not None:  # handed out by a previous owner that never settled it
                    job = dataclasses.replace(job, attempts=max(job.attempts, before))
                entry = (job.available_at, next(self._seq), tp, offset, part, job)
                heapq.heappush(self._ready, entry)
                self._hold_back()
                return
        # Not a job of this queue: kept for inspection among the dead letters.
        where = f"{tp[0]}/{tp[1]}@{offset}"
        job = unreadable_job(msg.key(), where, msg.value(), time.time())
        self._bury(job, f"{UNREADABLE} {where}: {reason}")
        with self._lock:
            if self._parts.get(tp) is part:
                part.waiting.discard(offset)
                part.settled.add(offset)
                try:
                    self._settle_commit(tp, part)
                except Conflict:
                    pass  # the partition moved on: its next owner reads the record again

    def _hold_back(self) -> None:
        """Stop reading the retry topic while MAX_HELD records wait for their time; read on
        when half of them went out."""
        retry = [tp for tp in self._parts if tp[0] == self._retry_topic]
        held = sum(len(self._parts[tp].waiting) for tp in retry)
        kafka = self._kafka
        if held >= MAX_HELD and not self._paused and retry:
            self._consumer.pause([kafka.TopicPartition(t, p) for t, p in retry])
            self._paused.update(retry)
        elif held < MAX_HELD // 2 and self._paused:
            self._consumer.resume([kafka.TopicPartition(t, p) for t, p in self._paused])
            self._paused.clear()

    # -- leases ------------------------------------------------------------------------------------
    def reserve(self, worker: str, lease: float, timeout: float) -> Lease | None:
        started = time.monotonic()
        deadline = started + timeout
        while True:
            if self._closed:
                return None
            got = self._take(worker, lease)
            if got is not None:
                return got
            left = deadline - time.monotonic()
            if left <= 0 and not self._worth_waiting(started, timeout):
                return None
            wait = min(max(left, 0.05), _POLL_CHUNK)
            with self._lock:
                if self._ready:
                    wait = max(0.0, min(wait, self._ready[0][0] - time.time()))
            self.poll(wait)

    def _take(self, worker: str, seconds: float) -> Lease | None:
        """Lease the first due record read, recording the lease in the partition's commit."""
        with self._lock:
            now = time.time()
            while self._ready:
                available_at, _, tp, offset, part, job = self._ready[0]
                if self._parts.get(tp) is not part or offset not in part.waiting:
                    heapq.heappop(self._ready)  # its partition went to another consumer
                    continue
                if available_at > now:
                    return None
                heapq.heappop(self._ready)
                part.waiting.discard(offset)
                job = dataclasses.replace(job, attempts=job.attempts + 1)
                part.leased[offset] = job.attempts
                try:
                    self._commit(tp, part)
                except self._kafka.KafkaException as exc:
                    if self._fenced(exc):  # the partition is going away: not ours to hand out
                        part.leased.pop(offset, None)
                        continue
                    log.warning("could not record the lease of job %s: %s", job.id, exc)
                self._hold_back()
                token = new_token()
                self._leases[token] = _Held(tp, offset, part, job)
                return Lease(job, token, worker, time.time() + seconds)
            return None

    def _worth_waiting(self, started: float, timeout: float) -> bool:
        """Whether records are on their way to this member although its time is up: its own
        partitions lag behind their end, or the group is still handing partitions out (this
        member joined, gained or lost partitions lately) while it has ready jobs. Giving up then
        could leave partitions about to arrive unread by a caller that stops asking."""
        if time.monotonic() - started > timeout + SETTLE:
            return False
        with self._lock:
            owned = {tp: part for tp, part in self._parts.items() if tp not in self._paused}
            if any(not part.loaded for part in owned.values()):
                self._load_marks()
            positions = {tp: part.next for tp, part in owned.items()}
            floors = {tp: part.floor for tp, part in owned.items()}
            settling = time.monotonic() - self._moved_at < SETTLE
        for tp, (low, high) in self._side.watermarks(list(positions)).items():
            position = positions[tp]
            if high > (position if position is not None else max(low, floors[tp])):
                return True
        return settling and any(p.unmarked() > 0 for p in self._side.pending(self._topic))

    def holding(self, lease: Lease) -> Job:
        """The leased job, as long as this member still holds it (else Conflict)."""
        with self._lock:
            return self._holding(lease).job

    def _holding(self, lease: Lease) -> _Held:
        held = self._leases.get(lease.token)
        if held is None or held.job.id != lease.job.id or self._parts.get(held.tp) is not held.part:
            raise lease_lost(lease)
        return held

    def keep(self, lease: Lease) -> None:
        """extend's part: poll once unless another thread is polling, then check the lease."""
        self.holding(lease)
        self.poll(0, wait_turn=False)
        self.holding(lease)

    def settle(self, lease: Lease) -> None:
        """The lease's record is done with: commit as far as that allows."""
        with self._lock:
            held = self._holding(lease)
            del self._leases[lease.token]
            held.part.leased.pop(held.offset, None)
            held.part.settled.add(held.offset)
            try:
                self._settle_commit(held.tp, held.part)
            except Conflict:
                raise lease_lost(lease) from None


__all__ = ["MAX_HELD", "SETTLE", "GroupMember"]
