"""Verifying an audit log: the hash chain, the signed checkpoints, and the length.

:func:`verify_log` reads the records once, in ``seq`` order, holding only the previous hash, so
a log of any size verifies in constant memory. It works on records from the store or read
back from an export (:func:`agent_sdk.governance.audit.read_jsonl`), so a verifier outside the
deployment needs the export, the checkpoints and the public key, and nothing else.

What each check catches:

* ``seq`` must run 1, 2, 3, ... without a gap: a record deleted from the middle.
* each record's ``hash`` must be the hash of its contents: an edited record (named by seq).
* each ``prev_hash`` must be the previous record's ``hash``: a record edited *and* re-hashed, or
  records inserted or removed and renumbered.
* each checkpoint's signature must verify with the public key: a forged or altered checkpoint.
* the record at each checkpoint's ``seq`` must have the checkpoint's head hash: the whole log
  rewritten with every hash recomputed (the attacker has the database, not the signing key).
* the log must be at least as long as its newest checkpoint: records cut from the tail.

Records written before the chain was switched on carry no hash; a leading run of them is
counted as ``unchained`` and reported, not checked. Stripping the hashes off the start of a
chained log to pass it off as such a run is caught by any checkpoint that covers it.

A retention policy may have removed the oldest records. The sweeper then left a signed anchor
(:class:`agent_sdk.records.AuditAnchor`): "the log now starts after record *n*, whose hash was
*h*". With it, the walk starts at record *n* + 1 expecting ``prev_hash`` *h*; without a valid
anchor, a log that does not start at record 1 fails as before (records deleted from the head).
Checkpoints below the anchor covered records that are gone and are skipped; one at the anchor's
seq must agree with it.

What the database alone cannot show (someone with write access to it, but not the key):

* the records after the newest checkpoint: they can be cut off, or rewritten with their hashes
  recomputed. Checkpoints every ``AGENT_SDK_AUDIT_CHECKPOINT_EVERY`` records and every
  ``AGENT_SDK_AUDIT_CHECKPOINT_SECONDS`` keep this window short;
* checkpoint rows deleted together with the records they covered, up to a whole org's log.

An anchor, the checkpoints exported to somewhere the attacker cannot write, closes the second
gap and everything before its newest checkpoint: see :mod:`agent_sdk.audit_anchor`.
The JSONL sink is such a copy of the records themselves: verify it too, and compare.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from agent_sdk.canonical import anchor_payload
from agent_sdk.errors import InvalidInput
from agent_sdk.governance.audit import chain_hash, checkpoint_payload
from agent_sdk.records import AuditAnchor, AuditEntry, Checkpoint, VerifyReport

if TYPE_CHECKING:
    from agent_sdk.audit_anchor import CheckpointVerifier


class _Walk:
    """The state of one pass over a log."""

    def __init__(self, org_id: str, verifier: CheckpointVerifier | None) -> None:
        self.org_id = org_id
        self.verifier = verifier
        self.count = 0
        self.head: str | None = None
        self.chained = False
        self.unchained = 0
        self.checked = 0
        self.pruned = 0

    def report(self, bad_seq: int | None = None, reason: str | None = None) -> VerifyReport:
        return VerifyReport(
            self.org_id,
            reason is None,
            self.count - self.pruned,
            bad_seq,
            reason,
            self.head,
            self.checked,
            self.unchained,
            self.pruned,
        )

    def start_at(self, anchor: AuditAnchor) -> str | None:
        """Begin after a retention anchor, once its signature checks out."""
        if anchor.org_id != self.org_id:
            return f"the retention anchor belongs to org {anchor.org_id!r}"
        if self.verifier is None:
            return "the log was pruned by retention but no public key was given to check its anchor"
        if anchor.key_id != self.verifier.key_id or not self.verifier.check(
            anchor_payload(anchor), anchor.signature
        ):
            return (
                f"the retention anchor at seq {anchor.seq} has a bad signature: it was forged or"
                " altered, so the records before it were not removed by retention"
            )
        self.count = self.pruned = anchor.seq
        self.head = anchor.head_hash
        self.chained = anchor.head_hash is not None
        return None

    def record(self, e: AuditEntry) -> tuple[int, str] | None:
        """Check the next record; return (bad seq, reason) or None."""
        expected = self.count + 1
        if e.seq != expected:
            if e.seq > expected:
                lost = f"records {expected}..{e.seq - 1} were" if e.seq - 1 > expected else "it was"
                return expected, f"record {expected} is missing: {lost} deleted"
            return e.seq, f"record {e.seq} appears again after record {self.count}"
        if e.org_id != self.org_id:
            return e.seq, f"record {e.seq} belongs to org {e.org_id!r}"
        if e.hash is None:
            if self.chained:
                return e.seq, (
                    f"record {e.seq} has no hash although the records before it are chained:"
                    " its hash was removed, or the chain was switched off"
                )
            self.unchained += 1
            self.count += 1
            return None
        if e.prev_hash != self.head:
            if self.head is None:
                return e.seq, (
                    f"record {e.seq} claims a predecessor in the chain but none exists: records"
                    " before it were removed or rewritten"
                )
            return e.seq, (
                f"record {e.seq} does not link to record {e.seq - 1} (its prev_hash is not that"
                f" record's hash): record {e.seq - 1} was altered and re-hashed, or records"
                " were removed or inserted"
            )
        try:
            computed = chain_hash(self.head, e)
        except InvalidInput as exc:
            return e.seq, f"record {e.seq} cannot be hashed: {exc.message}"
        if computed != e.hash:
            return e.seq, f"record {e.seq} was altered: its contents no longer match its hash"
        self.chained = True
        self.head = e.hash
        self.count += 1
        return None

    def signature(self, cp: Checkpoint) -> str | None:
        if cp.org_id != self.org_id:
            return f"checkpoint at seq {cp.seq} belongs to org {cp.org_id!r}"
        if self.verifier is None:
            return "the log has signed checkpoints but no public key was given to check them"
        if cp.key_id != self.verifier.key_id:
            return (
                f"checkpoint at seq {cp.seq} names signing key {cp.key_id}, not the verifying"
                f" key {self.verifier.key_id}: it was forged, or the signing key was replaced"
            )
        if not self.verifier.check(checkpoint_payload(cp), cp.signature):
            return f"checkpoint at seq {cp.seq} has a bad signature: it was forged or altered"
        return None

    def checkpoint(self, cp: Checkpoint, head: str | None) -> str | None:
        """Check a checkpoint against the record at its seq (the last one read)."""
        problem = self.signature(cp)
        if problem:
            return problem
        if cp.seq != self.count:
            return f"checkpoint at seq {cp.seq} does not point at a record"
        if cp.head_hash != head:
            return (
                f"record {cp.seq} has hash {str(head)[:12]}… but the signed checkpoint of"
                f" {cp.time} says {cp.head_hash[:12]}…: the log up to here was rewritten"
            )
        self.checked += 1
        return None


def verify_log(
    org_id: str,
    entries: Iterable[AuditEntry],
    *,
    checkpoints: Iterable[Checkpoint] = (),
    verifier: CheckpointVerifier | None = None,
    anchor: AuditAnchor | None = None,
) -> VerifyReport:
    """Walk ``entries`` (in seq order) and ``checkpoints``; stop at the first problem.

    ``verifier`` holds the public key; it is needed only when there are checkpoints or an
    ``anchor`` (where retention cut the head of the log). A log with records but no chained
    record is reported as not ok: there is nothing to verify.
    """
    walk = _Walk(org_id, verifier)
    pending = sorted(checkpoints, key=lambda c: c.seq)
    if anchor is not None:
        problem = walk.start_at(anchor)
        if problem:
            return walk.report(anchor.seq, problem)
        at_anchor = [cp for cp in pending if cp.seq == anchor.seq]
        pending = [cp for cp in pending if cp.seq > anchor.seq]
        for cp in at_anchor:  # it covered the removed records: it must agree with the anchor
            problem = walk.checkpoint(cp, anchor.head_hash)
            if problem:
                return walk.report(cp.seq, problem)
    i = 0
    for entry in entries:
        bad = walk.record(entry)
        if bad:
            return walk.report(*bad)
        while i < len(pending) and pending[i].seq <= walk.count:
            problem = walk.checkpoint(pending[i], entry.hash)
            if problem:
                return walk.report(pending[i].seq, problem)
            i += 1
    if i < len(pending):
        cp = pending[i]
        problem = walk.signature(cp)
        if problem:
            return walk.report(cp.seq, problem)
        return walk.report(
            walk.count + 1,
            f"the log ends at record {walk.count} but the signed checkpoint of {cp.time} covers"
            f" {cp.seq} records: records {walk.count + 1}..{cp.seq} were deleted from the tail",
        )
    if walk.count > walk.pruned and not walk.chained:
        return walk.report(
            None,
            f"none of the {walk.count - walk.pruned} records is hash-chained"
            " (AGENT_SDK_AUDIT_HASH_CHAIN was off when they were written): there is nothing to"
            " verify",
        )
    return walk.report()


__all__ = ["verify_log"]
