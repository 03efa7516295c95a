"""Verifying the audit log against an anchor (signed checkpoints kept outside the database), and
checking a checkpoint's signature with a public key.

The database alone cannot show what someone with write access to it removed together with its
evidence: every record and checkpoint of an org (the log then looks new), the tail together with
the checkpoints past it, or a rewrite whose checkpoints were deleted or signed again with a key
the attacker found beside the database. ``agent-sdk audit checkpoints export --out FILE`` copies
the signed checkpoints to a file kept elsewhere (append-only: a run adds the checkpoints newer
than the file's newest, never rewriting a line), and ``agent-sdk audit verify --anchor FILE
--public-key KEY`` compares the database with it.

The anchor file
---------------
UTF-8 text, one checkpoint per line: the canonical JSON (see :mod:`agent_sdk.canonical`) of an
object with exactly the members ``org_id``, ``seq`` (an integer >= 1), ``head_hash``, ``time``,
``signature`` (base64 Ed25519 over the checkpoint payload) and ``key_id`` (``sha256:`` of the
raw public key), in seq order per org. One file may hold the lines of several orgs; each
verification reads the lines of its own org.

What :func:`check_anchor` requires, after the database's own verification passed (or found
only records written before the chain was switched on):

* every anchor line of the org is signed by the public key the verifier gave (not by whatever
  key the deployment has now), so the file cannot be forged by someone without the private key;
* every anchor checkpoint past the retention anchor is in the database, byte for byte: a
  missing one was deleted, a different one was replaced (the log up to it rewritten and signed
  again). Checkpoints at or below the retention anchor covered records the org's retention
  policy removed, which the signed retention anchor attests;
* no anchor checkpoint lies past the end of the log: that is a cut tail (or, for an empty log,
  every record deleted).

The database's verification has already tied each stored checkpoint to the record at its seq
(with the same public key), so an anchor checkpoint found unchanged in the database vouches for
every record up to it.

It is a leaf (canonical JSON, records and errors only) because the checks run wherever the
verifier is: in the core for a local backend, and in the client for the HTTP one, which keeps the
anchor and the trusted public key on the caller's side. ``cryptography`` is imported inside the
functions: it costs tens of milliseconds, and only the code paths that verify pay for it.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from agent_sdk.canonical import canonical_json, checkpoint_payload
from agent_sdk.errors import InvalidInput
from agent_sdk.records import Checkpoint, VerifyReport

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def key_id(public_key: Ed25519PublicKey) -> str:
    """``sha256:<hex>`` of the raw 32-byte public key: names the key in every checkpoint."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


class CheckpointVerifier:
    """Checks checkpoint signatures against one public key."""

    def __init__(self, public_key: Ed25519PublicKey) -> None:
        self.public_key = public_key
        self.key_id = key_id(public_key)

    @classmethod
    def from_pem(cls, pem: str | bytes) -> CheckpointVerifier:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            data = pem.encode("ascii") if isinstance(pem, str) else pem
            key = load_pem_public_key(data)
        except UnicodeEncodeError:
            raise InvalidInput("not a PEM public key: it is not ASCII text") from None
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"not a PEM public key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise InvalidInput("audit checkpoints are verified with an Ed25519 public key")
        return cls(key)

    def check(self, payload: bytes, signature: str) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            self.public_key.verify(base64.b64decode(signature, validate=True), payload)
        except (InvalidSignature, ValueError):
            return False
        return True


_TEXT = ("org_id", "head_hash", "time", "signature", "key_id")


def anchor_line(cp: Checkpoint) -> str:
    """One line of an anchor file: the canonical JSON of the checkpoint and a newline."""
    return canonical_json(cp.to_dict()).decode("utf-8") + "\n"


def well_formed(cp: Checkpoint) -> bool:
    seq = cp.seq
    return (
        isinstance(seq, int)
        and not isinstance(seq, bool)
        and seq >= 1
        and all(isinstance(getattr(cp, name), str) for name in _TEXT)
    )


def check_anchor(
    report: VerifyReport,
    anchor: Iterable[Checkpoint],
    stored: Sequence[Checkpoint],
    verifier: CheckpointVerifier,
) -> VerifyReport:
    """``report`` (the database's own verification, made with ``verifier``'s key) held against
    ``anchor``; ``stored`` are the database's checkpoints, read before that verification.

    Returns ``report`` with ``anchored`` set to the number of anchor checkpoints found intact,
    or a failed report naming the first problem. A failed ``report`` is returned as it is,
    unless it failed only because nothing in the log is chained: an attacker who stripped every
    hash must not pass for a log written with the chain off.
    """
    org = report.org_id
    if not (report.ok or report.unchained_only):
        return report
    mine: dict[int, Checkpoint] = {}
    for cp in anchor:
        if cp.org_id != org:
            continue
        if not well_formed(cp):
            raise InvalidInput(f"the anchor holds a line of org {org!r} that is not a checkpoint")
        if cp.key_id != verifier.key_id or not verifier.check(checkpoint_payload(cp), cp.signature):
            return _fail(
                report,
                cp.seq,
                f"the anchor's checkpoint at seq {cp.seq} is not signed by the given public key"
                f" ({verifier.key_id}): the anchor was altered, or it is another deployment's",
            )
        seen = mine.setdefault(cp.seq, cp)
        if seen != cp:
            return _fail(
                report,
                cp.seq,
                f"the anchor holds two different signed checkpoints at seq {cp.seq}: the"
                " signing key was used by someone else",
            )
    end = report.pruned + report.count  # the seq of the last record in the database
    newest = max(mine, default=0)
    if newest > end:  # named by the newest checkpoint: it tells how much is gone
        cp = mine[newest]
        if end == 0:
            why = (
                f"the audit log of org {org!r} is empty, but the anchor's checkpoint of"
                f" {cp.time} says it held {newest} records: every record (and checkpoint) was"
                " deleted"
            )
        else:
            lost = (
                f"records {end + 1}..{newest} were" if newest > end + 1 else f"record {newest} was"
            )
            why = (
                f"the log ends at record {end}, but the anchor's checkpoint of {cp.time} covers"
                f" {newest} records: {lost} deleted from the tail, with the checkpoints past"
                f" record {end}"
            )
        return _fail(report, end + 1, why)
    by_seq = {cp.seq: cp for cp in stored}
    anchored = 0
    for seq in sorted(mine):
        cp = mine[seq]
        if seq <= report.pruned:
            continue  # removed by retention, as the signed retention anchor attests
        have = by_seq.get(seq)
        if have is None:
            return _fail(
                report,
                seq,
                f"the anchor's checkpoint at seq {seq} (of {cp.time}) is missing from the"
                f" database: it was deleted, so records up to {seq} may have been rewritten",
            )
        if have != cp:
            return _fail(
                report,
                seq,
                f"the database's checkpoint at seq {seq} differs from the anchor's (head hash"
                f" {have.head_hash[:12]}… where the anchor has {cp.head_hash[:12]}…): the log"
                f" up to record {seq} was rewritten and signed again",
            )
        anchored += 1
    return dataclasses.replace(report, anchored=anchored)


def _fail(report: VerifyReport, seq: int, reason: str) -> VerifyReport:
    return dataclasses.replace(report, ok=False, first_bad_seq=seq, reason=reason, anchored=0)


__all__ = ["CheckpointVerifier", "anchor_line", "check_anchor", "key_id", "well_formed"]
