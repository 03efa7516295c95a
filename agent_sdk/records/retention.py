"""Retention as a caller sees it: an org's policy (how long runs, events and audit records are
kept), the cutoffs it means at one moment, the runs they expire (the filter the core hands a
store), and the report of a sweep. The policy and its filters are applied by
:mod:`agent_sdk.core.retention`; the sweep runs in :mod:`agent_sdk.core.retention_sweep`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agent_sdk.errors import InvalidInput
from agent_sdk.ids import id_floor, parse_time
from agent_sdk.times import iso

SETTING = "retention"  # the name of the per-org setting that holds an org's policy

# Upper bounds. Days: a hundred years is "forever" without overflowing a date. Keep-last: each
# listed run of a session checks at most this many newer runs, so it bounds a listing's cost.
MAX_DAYS = 36_500
MAX_KEEP_LAST = 10_000
LIMITS: dict[str, int] = {
    "runs_days": MAX_DAYS,
    "events_days": MAX_DAYS,
    "audit_days": MAX_DAYS,
    "keep_last_runs_per_session": MAX_KEEP_LAST,
}

Progress = Callable[[str, str, int], None]
"""``progress(org_id, what, rows)``: one batch of ``rows`` ``what`` ("events", "runs",
"sessions", "audit records") was deleted (or counted, in a dry run)."""

_COUNTS = ("runs", "events", "sessions", "idempotency_keys", "audit_records")


@dataclass(frozen=True, slots=True)
class RunExpiry:
    """Which finished runs of an org have expired: those created before ``runs_before`` (an
    ISO-8601 time) and those with at least ``keep_last`` newer runs in their session."""

    runs_before: str | None = None
    keep_last: int | None = None

    @property
    def floor(self) -> str | None:
        """The smallest run id created at ``runs_before``: ids sort by creation time."""
        if self.runs_before is None:
            return None
        return id_floor("run", parse_time(self.runs_before))

    def __bool__(self) -> bool:
        return self.runs_before is not None or self.keep_last is not None


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """A policy applied at one moment: what was written before each time has expired."""

    runs_before: str | None = None
    events_before: str | None = None
    audit_before: str | None = None
    keep_last: int | None = None

    @property
    def runs(self) -> RunExpiry | None:
        expiry = RunExpiry(self.runs_before, self.keep_last)
        return expiry if expiry else None


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """An org's retention limits; None means "keep forever"."""

    runs_days: int | None = None
    events_days: int | None = None
    audit_days: int | None = None
    keep_last_runs_per_session: int | None = None

    @classmethod
    def parse(cls, data: Any) -> RetentionPolicy:
        """A policy from JSON-like ``data``: known names only, each a whole number from 1 to its
        bound, or null. InvalidInput names the first bad field."""
        if not isinstance(data, Mapping):
            raise InvalidInput("a retention policy is an object of limits")
        unknown = sorted(str(k) for k in data if k not in LIMITS)
        if unknown:
            raise InvalidInput(
                f"unknown retention field {unknown[0]!r}", hint="known: " + ", ".join(LIMITS)
            )
        values: dict[str, int | None] = {}
        for name, bound in LIMITS.items():
            value = data.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= bound
            ):
                raise InvalidInput(
                    f"retention {name} must be a whole number from 1 to {bound}, not {value!r}"
                )
            values[name] = value
        return cls(**values)

    def __bool__(self) -> bool:
        return any(v is not None for v in dataclasses.astuple(self))

    def to_dict(self) -> dict[str, int | None]:
        return dataclasses.asdict(self)

    def cutoffs(self, now: datetime) -> Cutoffs:
        def before(days: int | None) -> str | None:
            return None if days is None else iso(now - timedelta(days=days))

        return Cutoffs(
            before(self.runs_days),
            before(self.events_days),
            before(self.audit_days),
            self.keep_last_runs_per_session,
        )


@dataclass(frozen=True, slots=True)
class RetentionView:
    """An org's policy as the admin API shows it."""

    org_id: str
    policy: RetentionPolicy

    def to_dict(self) -> dict[str, Any]:
        return {"org_id": self.org_id, **self.policy.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetentionView:
        return cls(str(data["org_id"]), RetentionPolicy.parse({k: data.get(k) for k in LIMITS}))


@dataclass
class OrgSweep:
    """What one org's sweep deleted (or, in a dry run, would delete)."""

    org_id: str
    runs: int = 0
    events: int = 0
    sessions: int = 0
    idempotency_keys: int = 0
    audit_records: int = 0
    batches: int = 0
    error: str | None = None
    cutoffs: dict[str, Any] = field(default_factory=dict)

    @property
    def deleted(self) -> int:
        return sum(getattr(self, name) for name in _COUNTS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "org_id": self.org_id,
            **{name: getattr(self, name) for name in _COUNTS},
            "batches": self.batches,
            "error": self.error,
            "cutoffs": dict(self.cutoffs),
        }


@dataclass
class SweepReport:
    dry_run: bool
    started_at: str
    finished_at: str = ""
    orgs: list[OrgSweep] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "orgs": [o.to_dict() for o in self.orgs],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepReport:
        orgs = [
            OrgSweep(**{k: v for k, v in o.items() if k in OrgSweep.__dataclass_fields__})
            for o in data.get("orgs", [])
        ]
        return cls(bool(data["dry_run"]), str(data["started_at"]), str(data["finished_at"]), orgs)


__all__ = [
    "LIMITS",
    "MAX_DAYS",
    "MAX_KEEP_LAST",
    "Cutoffs",
    "OrgSweep",
    "Progress",
    "RetentionPolicy",
    "RetentionView",
    "RunExpiry",
    "SweepReport",
]
