"""Runs, their events and sessions, and what erasing them removed; with the rule for an
Idempotency-Key, which both backends check before a request leaves the caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from agent_sdk.errors import InvalidInput
from agent_sdk.records._base import Record

# The draft's limit on an Idempotency-Key is its syntax (a string of printable ASCII); the length
# bound keeps the primary key small and is what Stripe and others accept.
MAX_IDEMPOTENCY_KEY_CHARS = 255


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Failed with a retryable error on every attempt AGENT_SDK_RETRY_MAX allowed: dead-lettered,
    # waiting for an operator's `runs retry`.
    DEAD = "dead"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.DEAD})


class EventType(StrEnum):
    """The names of run events. They are public: renaming one breaks users."""

    RUN_CREATED = "run.created"
    RUN_STARTED = "run.started"
    RUN_RETRYING = "run.retrying"
    MODEL_REQUEST = "model.request"
    MODEL_DELTA = "model.delta"
    MODEL_RESPONSE = "model.response"
    TOOL_CALL = "tool.call"
    TOOL_RESULT = "tool.result"
    RUN_SUCCEEDED = "run.succeeded"
    RUN_FAILED = "run.failed"
    RUN_CANCELLED = "run.cancelled"

    @property
    def terminal(self) -> bool:
        return self in (EventType.RUN_SUCCEEDED, EventType.RUN_FAILED, EventType.RUN_CANCELLED)


@dataclass(frozen=True, slots=True)
class Session(Record):
    id: str
    org_id: str
    created_at: str
    updated_at: str
    project_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    run_count: int = 0


@dataclass(frozen=True, slots=True)
class Usage(Record):
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


@dataclass(frozen=True, slots=True)
class Run(Record):
    id: str
    org_id: str
    agent: str
    status: RunStatus
    input: str
    created_at: str
    updated_at: str
    session_id: str | None = None
    project_id: str | None = None
    output: str | None = None
    error: dict[str, Any] | None = None
    usage: dict[str, int] = field(default_factory=dict)
    steps: int = 0
    attempts: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    agent_spec: dict[str, Any] | None = None
    started_at: str | None = None
    finished_at: str | None = None
    cancel_requested: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        data = dict(data)
        data["status"] = RunStatus(data["status"])
        return super(Run, cls).from_dict(data)


@dataclass(frozen=True, slots=True)
class Event(Record):
    """One run event. ``seq`` strictly increases per run, starts at 1 and is never reused."""

    run_id: str
    seq: int
    type: str
    time: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.type in _TERMINAL_EVENTS


_TERMINAL_EVENTS = frozenset(
    {EventType.RUN_SUCCEEDED, EventType.RUN_FAILED, EventType.RUN_CANCELLED}
)


@dataclass(frozen=True, slots=True)
class Deletion(Record):
    """What erasing a run or a session removed: ids and counts, never content. It is both the
    answer to the caller and the ``details`` of the deletion's audit record, so the receipt of an
    erasure cannot itself hold what was erased."""

    kind: str  # "run" | "session"
    id: str
    org_id: str
    runs: int = 0
    events: int = 0
    idempotency_keys: int = 0  # Idempotency-Key claims whose stored answer was the run
    sessions: int = 0


def check_idempotency_key(key: str) -> str:
    """``key`` if it is 1-255 printable ASCII characters (not only spaces), else InvalidInput."""
    if (
        not isinstance(key, str)
        or not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS
        or not key.strip()
        or not all(" " <= c <= "~" for c in key)
    ):
        raise InvalidInput(
            f"an Idempotency-Key is 1-{MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters",
            hint="use a random UUID per request, and the same one for its retries",
        )
    return key


__all__ = [
    "MAX_IDEMPOTENCY_KEY_CHARS",
    "Deletion",
    "Event",
    "EventType",
    "Run",
    "RunStatus",
    "Session",
    "Usage",
    "check_idempotency_key",
]
