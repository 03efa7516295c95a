"""Reading a Kafka queue from the side, as no group member: offsets, pending records, dead letters.

``depth``, ``list_dead`` and ``requeue_dead`` must answer from any process, including one that
never joined the consumer group (a server, the CLI). This module does that with two clients of
its own: an admin client (metadata and watermarks, batched per broker) and a consumer that only
ever uses ``assign``, never ``subscribe``, so it never joins the group and never commits. Its
``group.id`` is the workers' group so ``committed`` reads their offsets and commit metadata.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent_sdk.errors import BackendUnavailable, BadRecord
from agent_sdk.queue._kafka_state import (
    UNREADABLE,
    CommitMarks,
    decode_dead,
    decode_key,
    unreadable_job,
)
from agent_sdk.queue.base import DeadJob

TP = tuple[str, int]
# Partition lists change rarely (an operator adds partitions): look them up again after this.
_METADATA_TTL = 10.0


@dataclass(frozen=True)
class Pending:
    """One partition from the group's point of view: records from ``floor`` (the committed
    offset, or the log start) up to ``high`` are not settled, except what ``marks`` says."""

    tp: TP
    floor: int
    high: int
    marks: CommitMarks

    def unmarked(self) -> int:
        """Records above the floor that the commit metadata says nothing about."""
        marked = sum(1 for o in self.marks.leased if o < self.high)
        marked += sum(1 for o in self.marks.settled if o < self.high)
        return max(0, self.high - self.floor - marked)

    def leased(self) -> int:
        return sum(1 for o in self.marks.leased if self.floor <= o < self.high)


class SideReader:
    """Admin look-ups and range reads for one queue (thread-safe: one read at a time)."""

    def __init__(
        self,
        kafka: Any,
        admin: Any,
        config: dict[str, Any],
        *,
        timeout: float,
        error: Callable[[str, BaseException | str], BackendUnavailable],
    ) -> None:
        self._kafka = kafka
        self._admin = admin
        self._config = config
        self._timeout = timeout
        self._error = error
        self._consumer: Any = None
        self._warmed: set[str] = set()
        self._lock = threading.RLock()
        self._topics: dict[str, tuple[float, list[int]]] = {}
        # The dead-letter view, kept up to date by reading only what was appended since.
        self._dead: dict[str, DeadJob] = {}
        self._dead_next: dict[int, int] = {}

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None

    # -- look-ups --------------------------------------------------------------------------------
    def partitions(self, topic: str) -> list[int]:
        cached = self._topics.get(topic)
        if cached is not None and time.monotonic() - cached[0] < _METADATA_TTL:
            return cached[1]
        try:
            meta = self._admin.list_topics(topic=topic, timeout=self._timeout)
        except self._kafka.KafkaException as exc:
            raise self._error(f"reading the partitions of {topic!r}", exc) from None
        found = meta.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise self._error(f"reading the partitions of {topic!r}", str(found and found.error))
        parts = sorted(found.partitions)
        self._topics[topic] = (time.monotonic(), parts)
        return parts

    def watermarks(self, tps: list[TP]) -> dict[TP, tuple[int, int]]:
        """(log start, log end) of each partition, two batched requests for all of them."""
        if not tps:
            return {}
        kafka = self._kafka
        specs = kafka.admin.OffsetSpec
        out: dict[TP, list[int]] = {tp: [0, 0] for tp in tps}
        for index, spec in enumerate((specs.earliest(), specs.latest())):
            request = {kafka.TopicPartition(t, p): spec for t, p in tps}
            try:
                futures = self._admin.list_offsets(request, request_timeout=self._timeout)
                for tp, future in futures.items():
                    out[(tp.topic, tp.partition)][index] = future.result().offset
            except kafka.KafkaException as exc:
                raise self._error("reading partition offsets", exc) from None
        return {tp: (lo, hi) for tp, (lo, hi) in out.items()}

    def committed(self, tps: list[TP]) -> dict[TP, tuple[int, str | None]]:
        """The group's committed offset (-1 when none) and commit metadata per partition."""
        if not tps:
            return {}
        kafka = self._kafka
        with self._lock:
            consumer = self._reader()
            try:
                got = consumer.committed(
                    [kafka.TopicPartition(t, p) for t, p in tps], timeout=self._timeout
                )
            except kafka.KafkaException as exc:
                raise self._error("reading committed offsets", exc) from None
        return {(tp.topic, tp.partition): (max(tp.offset, -1), tp.metadata) for tp in got}

    def pending(self, topic: str) -> list[Pending]:
        tps = [(topic, p) for p in self.partitions(topic)]
        marks = self.committed(tps)
        out = []
        for tp, (low, high) in self.watermarks(tps).items():
            offset, metadata = marks.get(tp, (-1, None))
            floor = min(max(offset, low), high)
            out.append(Pending(tp, floor, high, CommitMarks.decode(metadata, floor)))
        return out

    # -- range reads -------------------------------------------------------------------------------
    def _reader(self) -> Any:
        if self._consumer is None:
            try:
                self._consumer = self._kafka.Consumer(self._config)
            except self._kafka.KafkaException as exc:
                raise self._error("creating a reader", exc) from None
        return self._consumer

    def _warm(self, consumer: Any, topics: set[str]) -> None:
        """Fetch the metadata of topics this reader has not read yet: otherwise its first
        assign waits for librdkafka's once-a-second metadata refresh."""
        for topic in topics - self._warmed:
            try:
                consumer.list_topics(topic=topic, timeout=self._timeout)
            except self._kafka.KafkaException as exc:
                raise self._error(f"reading the metadata of {topic!r}", exc) from None
            self._warmed.add(topic)

    def read(self, ranges: dict[TP, tuple[int, int]], *, limit: int = 100_000) -> list[Any]:
        """The records of each partition from start (inclusive) to end (exclusive), at most
        ``limit`` in all. A read that stalls for the queue's timeout is an error, not a hang."""
        kafka = self._kafka
        todo = {tp: span for tp, span in ranges.items() if span[1] > span[0]}
        out: list[Any] = []
        if not todo:
            return out
        with self._lock:
            consumer = self._reader()
            self._warm(consumer, {t for t, _ in todo})
            starts = [kafka.TopicPartition(t, p, span[0]) for (t, p), span in todo.items()]
            consumer.assign(starts)
            try:
                stalled = time.monotonic() + self._timeout
                while todo and len(out) < limit:
                    if time.monotonic() > stalled:
                        raise self._error("reading records", "no progress within the timeout")
                    # consume() waits its whole timeout for a full batch, poll() for one
                    # record: take what is there, else wait for the next one.
                    batch = consumer.consume(num_messages=500, timeout=0)
                    if not batch:
                        one = consumer.poll(0.1)
                        batch = [one] if one is not None else []
                    for msg in batch:
                        tp = (msg.topic(), msg.partition())
                        span = todo.get(tp)
                        if span is None:
                            continue
                        err = msg.error()
                        if err is not None:
                            if err.code() == kafka.KafkaError._PARTITION_EOF:
                                del todo[tp]
                            elif err.fatal():
                                raise self._error("reading records", kafka.KafkaException(err))
                            continue
                        stalled = time.monotonic() + self._timeout
                        if msg.offset() < span[1]:
                            out.append(msg)
                        if msg.offset() >= span[1] - 1:
                            del todo[tp]
            finally:
                consumer.unassign()
        return out[:limit]

    # -- dead letters ------------------------------------------------------------------------------
    def dead_letters(self, topic: str) -> dict[str, DeadJob]:
        """Every dead letter not yet requeued, by job id (reads only what is new since the
        last call; a tombstone removes its key)."""
        with self._lock:
            tps = [(topic, p) for p in self.partitions(topic)]
            ranges = {
                tp: (max(self._dead_next.get(tp[1], low), low), high)
                for tp, (low, high) in self.watermarks(tps).items()
            }
            for msg in self.read(ranges, limit=10_000_000):
                job_id = decode_key(msg.key())
                value = msg.value()
                if value is None:
                    self._dead.pop(job_id, None)
                else:
                    dead = self._decode_dead(msg, job_id)
                    self._dead[dead.job.id] = dead
                self._dead_next[msg.partition()] = msg.offset() + 1
            for (_, partition), (_, high) in ranges.items():
                self._dead_next[partition] = max(self._dead_next.get(partition, 0), high)
            return dict(self._dead)

    def forget_dead(self, job_id: str) -> None:
        with self._lock:
            self._dead.pop(job_id, None)

    @staticmethod
    def _decode_dead(msg: Any, job_id: str) -> DeadJob:
        try:
            return decode_dead(msg.value())
        except BadRecord as exc:
            where = f"{msg.topic()}/{msg.partition()}@{msg.offset()}"
            died_at = max(0, msg.timestamp()[1]) / 1000
            job = unreadable_job(msg.key(), where, msg.value(), died_at)
            if job_id:
                job = dataclasses.replace(job, id=job_id)
            return DeadJob(job=job, error=f"{UNREADABLE} {where}: {exc}", died_at=died_at)


__all__ = ["Pending", "SideReader"]
