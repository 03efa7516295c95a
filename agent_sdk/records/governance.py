"""What the governance features show a caller: an org's region, its encryption keys and what
re-encrypting did, and its redaction policy with a preview. Each comes with the logic that makes
it in :mod:`agent_sdk.core` or :mod:`agent_sdk.governance`; here is only the shape that crosses a
Backend (and the HTTP API)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


# -- data residency --------------------------------------------------------------------------
@dataclass(frozen=True)
class Residency:
    """An org's region as seen by one process."""

    org_id: str
    region: str | None  # None: not pinned, served by every region
    server_region: str | None  # AGENT_SDK_DATA_REGION of the process answering

    @property
    def served_here(self) -> bool:
        return self.server_region is None or self.region in (None, self.server_region)

    def to_dict(self) -> dict[str, Any]:
        return {
            "org_id": self.org_id,
            "region": self.region,
            "server_region": self.server_region,
            "served_here": self.served_here,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Residency:
        return cls(str(data["org_id"]), data.get("region"), data.get("server_region"))


# -- encryption at rest ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EncryptionKey:
    """One key generation of an org, as listings show it: no key material."""

    id: str
    org_id: str
    state: str  # active | retired | destroyed
    created_at: str
    master_key_id: str
    retired_at: str | None = None
    destroyed_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncryptionKey:
        values: dict[str, Any] = {name: data.get(name) for name in cls.__slots__}
        return cls(**values)


@dataclass(slots=True)
class RewrapReport:
    """What one call of :func:`rewrap` did. ``done`` when every table was walked to its end;
    otherwise pass ``next_cursor`` to the next call."""

    org_id: str
    key_id: str  # the active key values were moved to
    rows: int = 0  # rows examined that had a value on another key (or in plaintext)
    rewrapped: int = 0  # values re-sealed with the active key
    unreadable: int = 0  # values under a destroyed key: left as they are
    changed: int = 0  # values a concurrent writer replaced meanwhile (already on the new key)
    failed: int = 0  # values that do not decrypt (altered or moved): left as they are
    tables: dict[str, int] = field(default_factory=dict)  # values re-sealed per table
    next_cursor: str | None = None

    @property
    def done(self) -> bool:
        return self.next_cursor is None

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__slots__}
        out["tables"] = dict(self.tables)
        out["done"] = self.done
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RewrapReport:
        return cls(**{name: data[name] for name in cls.__slots__ if name in data})


# -- PII redaction ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CustomPattern:
    name: str
    regex: str
    placeholder: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "regex": self.regex, "placeholder": self.placeholder}


@dataclass(frozen=True)
class RedactionPolicy:
    """What an org changes about redaction. The default (nothing disabled, no patterns) is every
    built-in detector. :func:`agent_sdk.governance.redact_policy.parse_policy` makes a validated
    one from JSON, and ``compile_policy`` the Redactor it stands for."""

    disabled: tuple[str, ...] = ()
    patterns: tuple[CustomPattern, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"disabled": list(self.disabled), "patterns": [p.to_dict() for p in self.patterns]}

    @property
    def is_default(self) -> bool:
        return not self.disabled and not self.patterns


@dataclass(frozen=True)
class RedactionView:
    """An org's redaction settings as the API and the CLI show them: whether redaction is on in
    this deployment, the org's policy, and every built-in detector with its state."""

    org_id: str
    enabled: bool  # AGENT_SDK_PII_REDACTION_ENABLED of the process that answered
    policy: RedactionPolicy
    # The built-in detectors of the process that answered: name, placeholder, enabled, and what
    # each finds. The governance layer fills them in; a client reads them from the answer.
    detectors: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "org_id": self.org_id,
            "enabled": self.enabled,
            **self.policy.to_dict(),
            "detectors": [dict(d) for d in self.detectors],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RedactionView:
        policy = RedactionPolicy(
            tuple(data.get("disabled") or ()),
            tuple(CustomPattern(**p) for p in data.get("patterns") or ()),
        )
        detectors = tuple(dict(d) for d in data.get("detectors") or ())
        return cls(str(data["org_id"]), bool(data.get("enabled")), policy, detectors)


@dataclass(frozen=True)
class Preview:
    """A sample text as an org's policy would store it, and how many findings of each
    detector or pattern it had."""

    redacted: str
    findings: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"redacted": self.redacted, "findings": self.findings}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preview:
        return cls(str(data["redacted"]), {str(k): int(v) for k, v in data["findings"].items()})


__all__ = [
    "CustomPattern",
    "EncryptionKey",
    "Preview",
    "RedactionPolicy",
    "RedactionView",
    "Residency",
    "RewrapReport",
]
