"""The AuditStore protocol: how a store keeps the audit log and its signed checkpoints.

A store only keeps records in order; the policy (what to record, scrubbing, sinks, when to
checkpoint, signing) lives in :class:`agent_sdk.core.audit.AuditService`. The one rule a store
must get right is the append: numbering and chaining happen inside one write transaction, so
appends from many threads and processes form one gap-free chain per org.

Implementation: :class:`agent_sdk.store._sql_audit.SQLAuditQueries`, one for both SQL stores
(they differ only in how an append keeps the org's head to itself). The contract suite is
``tests/contracts/audit_store_contract.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agent_sdk.records import AuditAnchor, AuditEntry, Checkpoint

# The caller-supplied fields of a record; the store adds org_id, seq, prev_hash and hash, and
# the time when it is not given.
AUDIT_FIELDS = (
    "time",
    "actor",
    "actor_kind",
    "action",
    "target",
    "outcome",
    "request_id",
    "source_ip",
    "details",
)


class AuditStore(Protocol):
    def transaction(self) -> AbstractContextManager[None]:
        """A write transaction; nested calls join the outer one (see Store.transaction)."""
        ...

    def append_audit(
        self, org_id: str, entry_fields: Mapping[str, Any], *, chain: bool
    ) -> AuditEntry:
        """Append one record to ``org_id``'s log and return it as stored.

        ``entry_fields`` holds the keys of :data:`AUDIT_FIELDS` (``time`` defaults to now,
        taken under the write lock so times never run backwards along ``seq``; ``details`` is
        a JSON-ready dict). In one write transaction (joining the caller's, if open), the store
        reads the org's last ``(seq, hash)``, assigns ``seq + 1`` and, when ``chain``, sets
        ``prev_hash`` to the last hash and ``hash`` to
        :func:`agent_sdk.canonical.chain_hash` of the record; without ``chain`` both
        are None. Raises InvalidInput for unknown fields or values it cannot store."""
        ...

    def last_audit(self, org_id: str) -> AuditEntry | None:
        """The org's newest record, or None for an empty log."""
        ...

    def list_audit(
        self,
        org_id: str,
        *,
        after_seq: int = 0,
        limit: int = 100,
        since: str | None = None,
        until: str | None = None,
    ) -> list[AuditEntry]:
        """Up to ``limit`` (at most 1000) records with ``seq > after_seq``, oldest first,
        optionally only those with ``since <= time < until`` (ISO-8601 UTC text)."""
        ...

    def iter_audit(
        self,
        org_id: str,
        *,
        after_seq: int = 0,
        since: str | None = None,
        until: str | None = None,
    ) -> Iterator[AuditEntry]:
        """Every record after ``after_seq`` in seq order, read lazily in pages of 1000 by
        keyset on seq: the whole log is never in memory, and no read stays open between
        pages."""
        ...

    def insert_checkpoint(self, checkpoint: Checkpoint) -> bool:
        """Store a signed checkpoint; False (and nothing changed) if the org already has one
        at that seq."""
        ...

    def list_checkpoints(
        self, org_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Checkpoint]:
        """The org's checkpoints with ``seq > after_seq``, oldest (lowest seq) first; at most
        ``limit`` (1-1000) of them, or all."""
        ...

    def get_audit_anchor(self, org_id: str) -> AuditAnchor | None:
        """Where a retention sweep cut the head of the org's log (None: never cut)."""
        ...

    def last_checkpoint(self, org_id: str) -> Checkpoint | None:
        """The org's newest checkpoint (highest seq), or None."""
        ...

    def unsigned_audit_orgs(self, *, after: str = "", limit: int = 500) -> tuple[list[str], str]:
        """Of up to ``limit`` orgs with ids after ``after``: those whose newest record is
        hash-chained and past their newest checkpoint; and the org id to continue after, ""
        once every org was looked at."""
        ...


__all__ = ["AUDIT_FIELDS", "AuditStore"]
