"""The Kafka queue's bookkeeping, kept free of any Kafka client so it can be reasoned about alone.

Two things live here:

* **The record formats.** A job travels as one JSON object (ASCII, so any text survives); its
  key is the job id, so every copy of one id lands on one partition. A dead letter is the same
  object plus ``error`` and ``died_at``; a requeued dead letter is erased by a tombstone (a
  record with the same key and no value), which a compacted topic eventually drops.
* **One partition's state as its owner sees it** (:class:`PartitionState`). Kafka remembers a
  single committed offset per partition and commits are cumulative, so the commit may only
  advance to the lowest offset this consumer has not settled. What sits above that point is
  written into the commit's metadata string: offsets handed out to a worker (with the attempt
  number they carried) and offsets already settled. The next owner, after a crash or a
  rebalance, reads that metadata back: it skips the settled offsets instead of running their
  jobs again, and counts a redelivered job's earlier attempt.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent_sdk.errors import BadRecord
from agent_sdk.queue.base import DeadJob, Job

# Kafka refuses commit metadata above offset.metadata.max.bytes (4096 by default).
METADATA_LIMIT = 2000
# The most settled offsets read from one commit's metadata: its ranges may span any number.
_MAX_DECODED = 100_000
_FORMAT = 1


# The error of a dead letter that was never a job (foreign or corrupt data on a topic).
UNREADABLE = "unreadable record"


# -- records -----------------------------------------------------------------------------------


def encode_key(job_id: str) -> bytes:
    # surrogatepass: an id with a lone surrogate still has one stable key (and partition).
    return job_id.encode("utf-8", "surrogatepass")


def decode_key(key: bytes | None) -> str:
    """The job id a key names; a key this queue did not write still gives some text."""
    if not key:
        return ""
    try:
        return key.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return key.decode("utf-8", "replace")


def encode_job(job: Job, payload_text: str, **extra: Any) -> bytes:
    """The record of ``job``; ``payload_text`` is its payload as JSON text (already checked)."""
    head: dict[str, Any] = {
        "v": _FORMAT,
        "id": job.id,
        "kind": job.kind,
        "attempts": job.attempts,
        "enqueued_at": job.enqueued_at,
        "available_at": job.available_at,
        "last_error": job.last_error,
        **extra,
    }
    text = json.dumps(head, separators=(",", ":"), allow_nan=False)
    return (text[:-1] + ',"payload":' + payload_text + "}").encode("ascii")


def payload_text(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRecord(f"{name} is not a number")
    return float(value)


def decode_job(value: bytes | None) -> tuple[Job, dict[str, Any]]:
    """A job record back into a Job, plus the whole decoded object (dead letters carry more)."""
    if value is None:
        raise BadRecord("the record has no value")
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRecord(f"the record is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("v") != _FORMAT:
        raise BadRecord("the record is not a job of this queue (no format marker)")
    job_id, kind, payload = data.get("id"), data.get("kind"), data.get("payload")
    attempts, last_error = data.get("attempts"), data.get("last_error")
    if not isinstance(job_id, str) or not job_id or not isinstance(kind, str) or not kind:
        raise BadRecord("the record has no job id or kind")
    if not isinstance(payload, dict):
        raise BadRecord("the record's payload is not an object")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
        raise BadRecord("the record's attempts is not a count")
    if last_error is not None and not isinstance(last_error, str):
        raise BadRecord("the record's last_error is not text")
    job = Job(
        id=job_id,
        kind=kind,
        payload=payload,
        attempts=attempts,
        enqueued_at=_number(data.get("enqueued_at"), "enqueued_at"),
        available_at=_number(data.get("available_at"), "available_at"),
        last_error=last_error,
    )
    return job, data


def decode_dead(value: bytes | None) -> DeadJob:
    job, data = decode_job(value)
    error = data.get("error")
    return DeadJob(
        job=job,
        error=error if isinstance(error, str) else "",
        died_at=_number(data.get("died_at"), "died_at"),
    )


def unreadable_job(key: bytes | None, where: str, value: bytes | None, now: float) -> Job:
    """A stand-in for a record that is not a job, so it can be dead-lettered and inspected."""
    job_id = decode_key(key)
    raw = (value or b"")[:4096].decode("utf-8", "replace")
    return Job(
        id=job_id or f"unreadable:{where}",
        kind="unreadable",
        payload={"record": where, "value": raw},
        attempts=0,
        enqueued_at=now,
        available_at=now,
    )


# -- one partition ------------------------------------------------------------------------------


def _ranges(offsets: set[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for offset in sorted(offsets):
        if out and out[-1][1] == offset - 1:
            out[-1][1] = offset
        else:
            out.append([offset, offset])
    return out


def _most(upper: int, fits: Callable[[int], bool]) -> int:
    """The largest n in [0, upper] with fits(n), given fits(0) and that fits only turns false."""
    low, high = 0, upper
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


@dataclass
class CommitMarks:
    """What a commit's metadata says about the offsets above the committed one."""

    leased: dict[int, int] = field(default_factory=dict)  # offset -> attempts handed out
    settled: set[int] = field(default_factory=set)

    def encode(self) -> str:
        """Compact JSON; when too long, the highest settled ranges go first (they would only be
        delivered again), then the highest leases (their redelivery counts one attempt less)."""
        leased = sorted(self.leased.items())
        ranges = _ranges(self.settled)

        def text(n_leased: int, n_ranges: int) -> str:
            data = {"l": leased[:n_leased], "s": ranges[:n_ranges]}
            return json.dumps(data, separators=(",", ":"))

        if len(full := text(len(leased), len(ranges))) <= METADATA_LIMIT:
            return full
        if len(text(len(leased), 0)) <= METADATA_LIMIT:
            keep = _most(len(ranges), lambda n: len(text(len(leased), n)) <= METADATA_LIMIT)
            return text(len(leased), keep)
        return text(_most(len(leased), lambda n: len(text(n, 0)) <= METADATA_LIMIT), 0)

    @classmethod
    def decode(cls, text: str | None, floor: int) -> CommitMarks:
        """Marks at or above ``floor``; anything unreadable counts as no marks at all."""
        marks = cls()
        if not text:
            return marks
        try:
            data = json.loads(text)
            for offset, attempts in data.get("l", []):
                if int(offset) >= floor:
                    marks.leased[int(offset)] = int(attempts)
            for first, last in data.get("s", []):
                # A range is trusted only so far: corrupt metadata must not fill the memory.
                start = max(int(first), floor)
                end = min(int(last) + 1, start + _MAX_DECODED - len(marks.settled))
                marks.settled.update(range(start, end))
        except (ValueError, TypeError, AttributeError):
            return cls()
        return marks


@dataclass
class PartitionState:
    """An owned partition: what this consumer read from it and where each record stands.

    Every record read lands in exactly one of ``waiting`` (not handed out yet: not due, or
    read while no worker asked), ``leased`` or ``settled``, until the commit point passes it.
    """

    loaded: bool = False  # the previous owner's marks were read
    floor: int = 0  # the committed offset when this consumer took the partition over
    next: int | None = None  # the offset after the last record read
    waiting: set[int] = field(default_factory=set)
    leased: dict[int, int] = field(default_factory=dict)
    settled: set[int] = field(default_factory=set)
    prior: CommitMarks = field(default_factory=CommitMarks)  # marks not read past yet

    def load(self, marks: CommitMarks, floor: int) -> None:
        self.prior = marks
        self.floor = floor
        self.loaded = True

    def read(self, offset: int) -> tuple[bool, int | None]:
        """Record that ``offset`` was read. Returns (fresh, attempts handed out before): not
        fresh when it is a repeat of a record already read, or one a previous owner settled."""
        if self.next is not None and offset < self.next:
            return False, None
        self.next = offset + 1
        if offset in self.prior.settled:
            self.prior.settled.discard(offset)
            self.settled.add(offset)
            return False, None
        return True, self.prior.leased.pop(offset, None)

    def commit_point(self) -> int | None:
        """The offset to commit: the lowest unsettled one read, else the next to read."""
        if self.next is None:
            return None
        return min([*self.waiting, *self.leased, self.next])

    def marks(self, point: int) -> CommitMarks:
        """Marks above ``point`` (settled ones below it are forgotten: the commit covers them)."""
        self.settled = {o for o in self.settled if o >= point}
        # A previous owner's marks below the point named offsets that were never read back
        # (compacted away, or not records at all): nothing is left to skip there.
        self.prior.leased = {o: a for o, a in self.prior.leased.items() if o >= point}
        self.prior.settled = {o for o in self.prior.settled if o >= point}
        return CommitMarks(
            leased={**self.prior.leased, **self.leased},
            settled=self.settled | self.prior.settled,
        )


__all__ = [
    "METADATA_LIMIT",
    "UNREADABLE",
    "CommitMarks",
    "PartitionState",
    "decode_dead",
    "decode_job",
    "decode_key",
    "encode_job",
    "encode_key",
    "payload_text",
    "unreadable_job",
]
