"""Plain records passed between the layers. They carry data, never behaviour that touches I/O.

Every record converts to a JSON-ready dict with :meth:`to_dict` and back with ``from_dict``; the
HTTP API, the CLI's ``-o json`` and the store all use these same shapes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, Self, TypeVar

T = TypeVar("T")


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


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


class _Record:
    def to_dict(self) -> dict[str, Any]:
        # Shallow on purpose: records hold no nested records, and dataclasses.asdict deep-copies
        # every dict and list, which made it the largest cost of inserting a run.
        return {name: getattr(self, name) for name in _field_names(type(self))}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True, slots=True)
class Org(_Record):
    id: str
    name: str
    created_at: str


@dataclass(frozen=True, slots=True)
class Project(_Record):
    id: str
    org_id: str
    name: str
    created_at: str


@dataclass(frozen=True, slots=True)
class Session(_Record):
    id: str
    org_id: str
    created_at: str
    updated_at: str
    project_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    run_count: int = 0


@dataclass(frozen=True, slots=True)
class Usage(_Record):
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
class Run(_Record):
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
class Event(_Record):
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
class Page(Generic[T]):
    """One page of a listing; ``next_cursor`` is opaque and ``None`` on the last page."""

    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class Deletion(_Record):
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


@dataclass(frozen=True, slots=True)
class MigrationState(_Record):
    version: int
    name: str
    applied_at: str | None


@dataclass(frozen=True, slots=True)
class ApiKey(_Record):
    """An API key as listings show it. It never holds the secret or its hash: those stay in the
    store, so no code path that renders a key can leak one."""

    id: str
    org_id: str
    name: str
    prefix_display: str  # "asdk_<id>_": the public part of the token
    last4: str  # the token's last four characters, to tell rotations apart
    role: str
    scopes: list[str]
    created_at: str
    created_by: str
    expires_at: str | None = None
    revoked_at: str | None = None
    rotated_at: str | None = None
    last_used_at: str | None = None
    rate_per_second: float | None = None
    burst: int | None = None
    ip_allowlist: list[str] = field(default_factory=list)

    @property
    def display(self) -> str:
        return f"{self.prefix_display}…{self.last4}"


_PLATFORM_SCOPE = "admin:platform"  # agent_sdk.security.scopes.ADMIN_PLATFORM; records import none


@dataclass(frozen=True, slots=True)
class Principal(_Record):
    """Who is making a request, as authentication established it, and what it may do."""

    subject: str  # "api_key:<id>", a JWT's "sub", or "bootstrap"
    org_id: str
    scopes: frozenset[str]
    kind: str  # "api_key" | "jwt" | "bootstrap"
    key_id: str | None = None
    rate_per_second: float | None = None
    burst: int | None = None
    ip_allowlist: tuple[str, ...] = ()

    def can(self, scope: str) -> bool:
        return scope in self.scopes

    def acts_in(self, org_id: str) -> bool:
        """A principal acts in its own org; only ``admin:platform`` reaches into others."""
        return org_id == self.org_id or _PLATFORM_SCOPE in self.scopes

    def to_dict(self) -> dict[str, Any]:
        out = _Record.to_dict(self)
        out["scopes"] = sorted(self.scopes)
        out["ip_allowlist"] = list(self.ip_allowlist)
        return out


@dataclass(frozen=True, slots=True)
class AuditEntry(_Record):
    """One audit record. ``seq`` counts 1, 2, 3, ... per org and is never reused; with the hash
    chain on, ``hash`` covers every other field and ``prev_hash`` (the previous record's hash),
    as :mod:`agent_sdk.governance.audit` defines. ``details`` never holds a secret: it is
    scrubbed before it is stored."""

    org_id: str
    seq: int
    time: str
    actor: str  # who: "api_key:<id>", a JWT subject, "bootstrap", "system", ...
    actor_kind: str  # "api_key" | "jwt" | "bootstrap" | "system" | "anonymous" | ...
    action: str  # what: "runs.create", "keys.revoke", ...
    target: str | None  # the object acted on, if any
    outcome: str  # "success" | "denied" | "failure" | ...
    request_id: str | None = None
    source_ip: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    prev_hash: str | None = None
    hash: str | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint(_Record):
    """A signed statement: the first ``seq`` audit records of ``org_id`` end in ``head_hash``.
    ``signature`` is base64 Ed25519 over the canonical JSON of (org_id, seq, head_hash, time);
    ``key_id`` is the fingerprint of the public key that verifies it."""

    org_id: str
    seq: int
    head_hash: str
    time: str
    signature: str
    key_id: str


@dataclass(frozen=True, slots=True)
class AuditAnchor(_Record):
    """A signed statement that ``org_id``'s audit log now begins after record ``seq``: the
    records up to it were removed by the org's retention policy, and record ``seq`` had the hash
    ``head_hash`` (None when it predates the hash chain). ``audit verify`` starts its walk from
    here, so the remaining records still verify, while a cut that no anchor vouches for is still
    caught. ``signature`` is base64 Ed25519 over :func:`agent_sdk.canonical.anchor_payload`
    (distinct from a checkpoint's, so neither can stand in for the other)."""

    org_id: str
    seq: int
    head_hash: str | None
    time: str
    signature: str
    key_id: str
