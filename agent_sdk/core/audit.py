"""The audit service: who did what, in which org, with what outcome, recorded before the answer.

:meth:`AuditService.record` is the one way to write the audit log. It is *fail closed*: if any
configured sink cannot take the record, it raises ``BackendUnavailable("audit log write failed:
...")`` and the caller's action must fail with it.

Ordering within :meth:`record` (inside one database transaction, joining the caller's when
one is open, which is how a failed audit write also undoes the action it describes):

1. append the record to the database (the source of truth): seq, chain hash;
2. write the JSONL file line and the stdout line;
3. every ``AGENT_SDK_AUDIT_CHECKPOINT_EVERY`` records, and on the first record written
   ``AGENT_SDK_AUDIT_CHECKPOINT_SECONDS`` or more after the org's newest checkpoint (or after
   the first unsigned record), sign and store a checkpoint (servers and workers also sign idle
   logs on that period: :func:`agent_sdk.core.audit_seal.seal_periodically`);
4. commit (by the outermost transaction).

A failure in 1-3 rolls the record (and the caller's writes) back. A record with no sink to write
and no checkpoint due (guessed from the org's last seq as this process saw it) is only step 1,
which the store commits as one statement when no caller's transaction is open. If the guess was
wrong because another process appended meanwhile and the record turns out due, its checkpoint is
stored in a transaction of its own just after; should that fail, :meth:`record` still raises,
but the record (which describes something that did happen) stays.

The remaining window runs the other way: a line written in step 2 stays in the file and on
stdout even if step 3 or the commit then fails, or the caller's transaction later raises and
rolls back. Such a line has a seq that the database will give to another record, so a reader
spots it (the same seq twice, with different contents); the database decides. Because the sinks
are written while the store's write lock for the org is held (on SQLite, the database's one
write lock), their lines appear in seq order even with many processes.

Callers should record an action as the last step before its transaction commits, and must not
swallow the exception of a failed :meth:`record` inside their own transaction.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent_sdk.canonical import anchor_payload
from agent_sdk.errors import AgentSDKError, BackendUnavailable, Conflict, InvalidInput
from agent_sdk.governance.audit import (
    checkpoint_payload,
    export_lines,
    scrub,
    scrub_texts,
    to_jsonl,
)
from agent_sdk.governance.audit_sinks import AuditSink, sinks_from_settings
from agent_sdk.governance.audit_verify import verify_log
from agent_sdk.ids import utcnow
from agent_sdk.records import AuditAnchor, AuditEntry, Checkpoint, VerifyReport
from agent_sdk.store._rows import MAX_LIMIT, check_limit
from agent_sdk.times import iso, parse_instant, resolve_since

if TYPE_CHECKING:
    from agent_sdk.audit_anchor import CheckpointVerifier
    from agent_sdk.config import Settings
    from agent_sdk.governance.audit_signing import CheckpointSigner
    from agent_sdk.store.audit import AuditStore

_FAILED = "audit log write failed: "
# Orgs whose last seq is remembered, at most; past it the memory starts again (a miss costs a read).
_MAX_ORGS = 4096


class AuditService:
    def __init__(
        self,
        settings: Settings,
        store: AuditStore,
        *,
        sinks: Sequence[AuditSink] | None = None,
        expired_before: Callable[[str], str | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        # The org's retention cutoff: records written before it are hidden from tail and
        # export before the sweeper deletes them (see agent_sdk.core.retention).
        self.expired_before = expired_before
        self.sinks: list[AuditSink] = (
            list(sinks) if sinks is not None else sinks_from_settings(settings)
        )
        self._signer: CheckpointSigner | None = None
        self._signer_lock = threading.Lock()
        # Seconds since the epoch; checkpoint times and the time rule read it (tests inject it).
        self.clock = clock
        # org -> when its unsigned tail began, as this process last saw it: spares a read per
        # record until the time rule may be due (then the database is asked again).
        self._tail_began: dict[str, float] = {}
        # org -> the seq of the last record this service wrote: the guess of :meth:`_upcoming`.
        self._last_seq: dict[str, int] = {}

    # -- writing -------------------------------------------------------------------------------
    def record(
        self,
        org_id: str,
        *,
        actor: str,
        actor_kind: str,
        action: str,
        target: str | None,
        outcome: str,
        request_id: str | None = None,
        source_ip: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Append one record to ``org_id``'s log and to every sink, or raise.

        Secrets are scrubbed from every text field and from ``details`` at any depth (see
        :func:`agent_sdk.governance.audit.scrub`). Raises InvalidInput for a missing field,
        and BackendUnavailable when the record could not be written everywhere.
        """
        texts = {
            "actor": _required("actor", actor),
            "actor_kind": _required("actor_kind", actor_kind),
            "action": _required("action", action),
            "target": _optional("target", target),
            "outcome": _required("outcome", outcome),
            "request_id": _optional("request_id", request_id),
            "source_ip": _optional("source_ip", source_ip),
        }
        fields: dict[str, Any] = {**scrub_texts(texts), "details": _details(details)}
        _required("org_id", org_id)
        chain = self.settings.audit.hash_chain
        try:
            # Whether this record will need a checkpoint, guessed before the write lock from the
            # org's last seq as this process saw it (the database is asked once per org).
            upcoming = self._upcoming(org_id)
            due = chain and self._due_at(org_id, upcoming)
            # Load (or create) the signing key before taking the write lock when this record may
            # need a checkpoint: the first load imports cryptography (tens of ms), which would
            # otherwise stall every other writer. A record that needs none (most records of a
            # short CLI process) never pays for it.
            signer = self._signer
            if due and signer is None:
                signer = self._signing_key()
            if self.sinks or due:
                with self.store.transaction():
                    entry = self.store.append_audit(org_id, fields, chain=chain)
                    self._write_sinks(entry)
                    if entry.hash is not None and self._due(entry):
                        self._store_checkpoint(signer or self._signing_key(), entry)
            else:
                # Nothing to do but the append: the store commits it on its own (or in the
                # caller's transaction). Only when another writer moved the head since the guess
                # can the record turn out due; its checkpoint then follows in a transaction of its
                # own (see the module docstring).
                entry = self.store.append_audit(org_id, fields, chain=chain)
                if entry.hash is not None and entry.seq != upcoming and self._due(entry):
                    signer = signer or self._signing_key()  # loaded before the write lock
                    with self.store.transaction():
                        self._store_checkpoint(signer, entry)
        except AgentSDKError as exc:
            # The caller's input was checked above; anything failing from here on (a bad key
            # file included) is the deployment's problem, and the action fails with it.
            if exc.message.startswith(_FAILED):
                raise
            raise BackendUnavailable(_FAILED + exc.message, hint=exc.hint) from exc
        if len(self._last_seq) >= _MAX_ORGS:
            self._last_seq.clear()
        self._last_seq[org_id] = entry.seq
        return entry

    def _write_sinks(self, entry: AuditEntry) -> None:
        if not self.sinks:
            return
        line = to_jsonl(entry)
        for sink in self.sinks:
            try:
                sink.write(line)
            except (OSError, ValueError) as exc:  # ValueError: a closed stdout
                reason = getattr(exc, "strerror", None) or str(exc)
                raise BackendUnavailable(
                    f"{_FAILED}cannot write to {sink.name}: {reason}",
                    hint="fix or unset AGENT_SDK_AUDIT_LOG_PATH / AGENT_SDK_AUDIT_LOG_STDOUT;"
                    " the action was not performed",
                ) from exc

    # -- checkpoints ---------------------------------------------------------------------------
    def _upcoming(self, org_id: str) -> int:
        """The seq the org's next record will probably get: one past the last this process
        wrote or, the first time, one past the database's head."""
        last = self._last_seq.get(org_id)
        if last is None:
            head = self.store.last_audit(org_id)
            last = head.seq if head is not None else 0
        return last + 1

    def _due_at(self, org_id: str, seq: int) -> bool:
        """Does record ``seq`` of the org get a checkpoint (every N records, or T seconds after
        the org's unsigned tail began)?"""
        return seq % self.settings.audit.checkpoint_every == 0 or self._time_due(org_id)

    def _due(self, entry: AuditEntry) -> bool:
        """:meth:`_due_at` for a record just written (under the write lock, when it matters)."""
        return self._due_at(entry.org_id, entry.seq)

    def _time_due(self, org_id: str) -> bool:
        period = self.settings.audit.checkpoint_seconds
        if period <= 0:
            return False
        now = self.clock()
        began = self._tail_began.get(org_id)
        if began is not None and now - began < period:
            return False
        # Maybe due: ask the database, which another process may have signed meanwhile.
        newest = self.store.last_checkpoint(org_id)
        if newest is not None:
            began = _epoch(newest.time)
        else:
            oldest = self.store.list_audit(org_id, limit=1)
            began = _epoch(oldest[0].time) if oldest else now
        if began is None:  # an unreadable time in the database: sign now rather than never
            return True
        self._tail_began[org_id] = began
        return now - began >= period

    def seal(self) -> list[Checkpoint]:
        """Sign the head of every org whose hash-chained log has records past its newest
        checkpoint. Servers and workers call this every ``AGENT_SDK_AUDIT_CHECKPOINT_SECONDS``,
        so no record waits longer than that for a signature, even in an org that writes no
        more records."""
        signed: list[Checkpoint] = []
        after = ""
        while True:
            orgs, after = self.store.unsigned_audit_orgs(after=after)
            for org_id in orgs:
                try:
                    signed.append(self.checkpoint(org_id))
                except Conflict:  # emptied or unchained since the query: nothing to sign
                    continue
            if not after:
                return signed

    def checkpoints(self, org_id: str, *, after: int = 0) -> Iterator[Checkpoint]:
        """The org's signed checkpoints with ``seq > after``, oldest first, read in pages of
        1000 (the source of ``audit checkpoints export``)."""
        if not isinstance(after, int) or after < 0:
            raise InvalidInput("after must be 0 or a seq")

        def pages(after: int) -> Iterator[Checkpoint]:
            while True:
                page = self.store.list_checkpoints(org_id, after_seq=after, limit=MAX_LIMIT)
                yield from page
                if len(page) < MAX_LIMIT:
                    return
                after = page[-1].seq

        return pages(after)

    def anchor_lines(self, org_id: str, *, after: int = 0) -> Iterator[str]:
        """:meth:`checkpoints` as the lines of an anchor file (see
        :mod:`agent_sdk.audit_anchor`), for a download streamed page by page."""
        from agent_sdk.audit_anchor import anchor_line

        checkpoints = self.checkpoints(org_id, after=after)  # a bad `after` raises here, not later
        return (anchor_line(cp) for cp in checkpoints)

    def checkpoint(self, org_id: str) -> Checkpoint:
        """Sign and store a checkpoint of the log as it is now (or return the one already
        stored at its head). Conflict if the log is empty or its head is not chained."""
        signer = self._signing_key()
        with self.store.transaction():  # no append can slip between the head and its checkpoint
            head = self.store.last_audit(org_id)
            if head is None:
                raise Conflict(f"the audit log of org {org_id!r} is empty: nothing to sign")
            if head.hash is None:
                raise Conflict(
                    f"the audit log of org {org_id!r} is not hash-chained",
                    hint="set AGENT_SDK_AUDIT_HASH_CHAIN=true; checkpoints sign the chain's head",
                )
            cp = self._store_checkpoint(signer, head)
            if cp is None:  # one already covers the head
                return self.store.list_checkpoints(org_id)[-1]
        return cp

    def _store_checkpoint(self, signer: CheckpointSigner, head: AuditEntry) -> Checkpoint | None:
        assert head.hash is not None
        unsigned: dict[str, Any] = {"org_id": head.org_id, "seq": head.seq, "head_hash": head.hash}
        now = self.clock()
        unsigned["time"] = iso(datetime.fromtimestamp(now, UTC))
        signature = signer.sign(checkpoint_payload(unsigned))
        cp = Checkpoint(**unsigned, signature=signature, key_id=signer.key_id)
        stored = self.store.insert_checkpoint(cp)
        self._tail_began[head.org_id] = now  # the tail now begins after this head
        return cp if stored else None

    def prepare_signer(self) -> None:
        """Load (or create) the signing key now, before a caller takes a write lock."""
        self._signing_key()

    def sign_anchor(self, org_id: str, seq: int, head_hash: str | None) -> AuditAnchor:
        """A signed retention anchor: ``org_id``'s log is about to start after record ``seq``,
        whose hash is ``head_hash``. The retention sweeper stores it in the transaction that
        deletes the records up to ``seq``; :meth:`verify` starts from it."""
        signer = self._signing_key()
        unsigned: dict[str, Any] = {
            "org_id": org_id,
            "seq": seq,
            "head_hash": head_hash,
            "time": utcnow(),
        }
        signature = signer.sign(anchor_payload(unsigned))
        return AuditAnchor(**unsigned, signature=signature, key_id=signer.key_id)

    def _signing_key(self) -> CheckpointSigner:
        signer = self._load_signer(create=True)
        assert signer is not None  # create=True returns a key or raises
        return signer

    def _load_signer(self, *, create: bool) -> CheckpointSigner | None:
        """The signing key, cached; None when it does not exist and ``create`` is False."""
        with self._signer_lock:
            if self._signer is None:
                from agent_sdk.governance.audit_signing import CheckpointSigner

                try:
                    self._signer = CheckpointSigner.load(
                        self.settings.audit_signing_key_path, create=create
                    )
                except FileNotFoundError:
                    return None
            return self._signer

    def public_key_pem(self) -> str:
        """The PEM public key that verifies this deployment's checkpoints (creating the key
        pair on first use), to hand to verifiers."""
        return self._signing_key().public_key_pem()

    # -- reading -------------------------------------------------------------------------------
    def tail(self, org_id: str, *, after: int = 0, limit: int = 100) -> list[AuditEntry]:
        """With ``after`` 0: the newest ``limit`` records, oldest first (like ``tail``). With
        ``after`` a seq: up to ``limit`` records after it, to follow the log by polling."""
        if after < 0:
            raise InvalidInput("after must be 0 or a seq")
        limit = min(check_limit(limit), MAX_LIMIT)  # clamp first, so "newest" stays newest
        if after == 0:
            head = self.store.last_audit(org_id)
            if head is None:
                return []
            after = max(0, head.seq - limit)
        since = self.expired_before(org_id) if self.expired_before is not None else None
        return self.store.list_audit(org_id, after_seq=after, limit=limit, since=since)

    def export(
        self, org_id: str, fmt: str = "jsonl", *, since: str | None = None, until: str | None = None
    ) -> Iterator[str]:
        """The log as JSONL or CSV lines, produced as they are read (pages of 1000 records).
        The format and the times (ISO-8601, or an age such as ``2d``) are checked on call,
        before anything is read."""
        # Through the one time parser: "yesterday" is refused, not compared as text.
        since = resolve_since(since, "since") if since is not None else None
        until = resolve_since(until, "until") if until is not None else None
        expired = self.expired_before(org_id) if self.expired_before is not None else None
        if expired is not None and (since is None or since < expired):
            since = expired  # both fixed-width ISO text, which compares like the times
        return export_lines(self.store.iter_audit(org_id, since=since, until=until), fmt)

    def verify(
        self,
        org_id: str,
        *,
        public_key: str | bytes | None = None,
        checkpoints: Iterable[Checkpoint] | None = None,
        anchor: Iterable[Checkpoint] | None = None,
    ) -> VerifyReport:
        """Verify ``org_id``'s chain and checkpoints (see
        :func:`agent_sdk.governance.audit_verify.verify_log`), streaming the records.

        ``public_key`` (PEM) defaults to this deployment's own key; ``checkpoints`` default to
        the stored ones; pass a copy kept outside the database to also catch checkpoint rows
        deleted together with the tail they covered.

        ``anchor``: checkpoints exported to a file outside the database (``audit checkpoints
        export``), held against the database after its own verification (see
        :func:`agent_sdk.audit_anchor.check_anchor`). It needs ``public_key``: the
        anchor is only as good as the key the verifier trusts, never the deployment's own.
        """
        if anchor is not None and public_key is None:
            raise InvalidInput(
                "an anchor is checked against a public key you hold",
                hint="pass the PEM public key of the audit signing key (--public-key FILE)",
            )
        # Checkpoints before records: appends during the walk only add records, whereas a
        # checkpoint read after the walk could cover records it never saw (false truncation).
        cps = list(checkpoints) if checkpoints is not None else self.store.list_checkpoints(org_id)
        # Where a retention sweep cut the head of the log.
        retention_anchor = self.store.get_audit_anchor(org_id)
        verifier: CheckpointVerifier | None = None
        if public_key is not None:
            from agent_sdk.audit_anchor import CheckpointVerifier

            verifier = CheckpointVerifier.from_pem(public_key)
        elif cps or retention_anchor is not None:
            verifier = self._load_signer(create=False)
            if verifier is None:
                path = self.settings.audit_signing_key_path
                what = f"{len(cps)} checkpoints"
                if retention_anchor is not None:
                    what += " and the retention anchor"
                return VerifyReport(
                    org_id,
                    False,
                    0,
                    reason=f"the signing key {path} is missing, so {what} cannot be checked:"
                    " pass the public key",
                )
        report = verify_log(
            org_id,
            self.store.iter_audit(org_id),
            checkpoints=cps,
            verifier=verifier,
            anchor=retention_anchor,
        )
        if anchor is None or verifier is None:
            return report
        from agent_sdk.audit_anchor import check_anchor

        stored = cps if checkpoints is None else self.store.list_checkpoints(org_id)
        return check_anchor(report, anchor, stored, verifier)


def _epoch(text: str) -> float | None:
    try:
        return parse_instant(text).timestamp()
    except (InvalidInput, OverflowError, ValueError):
        return None


def _required(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"audit record needs a non-empty {name}")
    return value  # scrubbed with the others (scrub_texts)


def _optional(name: str, value: Any) -> str | None:
    # "" and None both become None, so a CSV export (where both are an empty cell) reads back
    # to the very record that was hashed.
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"audit record field {name} must be text")
    return value


def _details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    if details is None:
        return {}
    if not isinstance(details, Mapping):
        raise InvalidInput("audit details must be a mapping")
    cleaned: dict[str, Any] = scrub(details)
    return cleaned


__all__ = ["AuditService"]
