"""An org's retention policy as a value: its limits, how they are checked, and the cutoffs they
give at one moment. Shared by the service that applies policies
(:mod:`agent_sdk.core.retention`) and the sweeper that deletes what they expired
(:mod:`agent_sdk.core.retention_sweep`), so neither imports the other for them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from agent_sdk.errors import InvalidInput
from agent_sdk.store.retention import RunExpiry

SETTING = "retention"  # the name of the per-org setting
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


def iso(when: datetime) -> str:
    """``when`` in the stores' fixed-width UTC text, which compares like the times."""
    return when.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


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
