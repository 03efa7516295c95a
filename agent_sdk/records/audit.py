"""The audit log: its entries, the signed checkpoints and retention anchors that vouch for it,
the report of a verification, and the export formats."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from agent_sdk.errors import InvalidInput
from agent_sdk.records._base import Record

EXPORT_FORMATS = ("jsonl", "csv")


@dataclass(frozen=True, slots=True)
class AuditEntry(Record):
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
class Checkpoint(Record):
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
class AuditAnchor(Record):
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


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of verifying one org's log.

    ``count`` is the number of records read before the walk stopped (all of them when ``ok``);
    ``first_bad_seq`` names the first record found bad, and ``reason`` says what was wrong with
    it, in words meant for the operator. ``checkpoints`` counts the signed checkpoints checked;
    ``unchained`` the leading records written before the hash chain was switched on; ``pruned``
    the records a retention policy removed from the head (a signed anchor vouches for them);
    ``anchored`` the checkpoints of an anchor kept outside the database that were found intact
    (see :mod:`agent_sdk.audit_anchor`).
    """

    org_id: str
    ok: bool
    count: int
    first_bad_seq: int | None = None
    reason: str | None = None
    head_hash: str | None = None
    checkpoints: int = 0
    unchained: int = 0
    pruned: int = 0
    anchored: int = 0

    @property
    def unchained_only(self) -> bool:
        """Failed only because no record is hash-chained (the chain was off): nothing was found
        wrong, and nothing could be checked."""
        return not self.ok and self.first_bad_seq is None and 0 < self.count == self.unchained

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VerifyReport:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def summary(self) -> str:
        """One line for the CLI."""
        where = f"audit log of org {self.org_id!r}"
        if not self.ok:
            at = f" at record {self.first_bad_seq}" if self.first_bad_seq is not None else ""
            return f"{where} FAILED verification{at}: {self.reason}"
        text = f"{where}: {self.count} records verified, {self.checkpoints} signed checkpoints ok"
        if self.unchained:
            text += f" ({self.unchained} earlier records predate the hash chain and are unchecked)"
        if self.anchored:
            text += f", {self.anchored} checkpoints of the anchor found intact"
        if self.pruned:
            text += (
                f"; records 1..{self.pruned} were removed by the retention policy, as its"
                " signed anchor attests"
            )
        return text


def check_format(fmt: str) -> str:
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(
            f"unknown audit export format {fmt!r}", hint="one of: " + ", ".join(EXPORT_FORMATS)
        )
    return fmt


__all__ = [
    "EXPORT_FORMATS",
    "AuditAnchor",
    "AuditEntry",
    "Checkpoint",
    "VerifyReport",
    "check_format",
]
