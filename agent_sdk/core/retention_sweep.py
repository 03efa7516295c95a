"""The retention sweeper: deletes what the orgs' retention policies expired.

It runs in the server and in every worker (every ``AGENT_SDK_RETENTION_SWEEP_INTERVAL``
seconds, see :func:`sweep_periodically`) and as ``agent-sdk retention sweep`` for cron. Several
sweepers at once do no harm: every delete re-checks its condition, so each row goes once.

Why it is shaped this way:

* **Bounded batches.** Every write transaction deletes at most ``AGENT_SDK_RETENTION_BATCH_SIZE``
  rows of one kind (events, runs, sessions, audit records), so a sweep never holds SQLite's
  write lock, or Postgres row locks, for long: runs being created and followed meanwhile wait
  one batch at most. An expired run's events go first, in batches, then the run itself.
* **Active runs are never touched.** A queued or running run is skipped whatever its age, and
  its events with it (a takeover replays them).
* **The audit log stays verifiable.** Pruning its head stores, in the same transaction, a
  signed anchor at the new start (see :class:`agent_sdk.records.AuditAnchor`), and never
  removes the newest record, which the next append chains to.
* **It leaves a receipt.** Each org with deletions gets one ``retention.sweep`` audit record of
  the counts and cutoffs, never any content. A dry run counts and deletes nothing (its event
  count may include events that a real sweep deletes with their run instead).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from agent_sdk.core.actors import SYSTEM, Actor, audit_action
from agent_sdk.errors import AgentSDKError
from agent_sdk.records import Cutoffs, OrgSweep, Progress, RetentionPolicy, RunExpiry, SweepReport
from agent_sdk.records.retention import SETTING
from agent_sdk.times import iso

if TYPE_CHECKING:
    from agent_sdk.config import Settings
    from agent_sdk.core.audit import AuditService
    from agent_sdk.core.orgs import OrgService
    from agent_sdk.core.residency import ResidencyService
    from agent_sdk.store.base import Store

log = logging.getLogger(__name__)

# A sweep of a server or worker waits this long after start before its first pass (at most the
# interval): starting many processes at once does not start many sweeps at once.
FIRST_SWEEP_DELAY = 60.0


class Sweeper:
    """One sweep. ``residency`` (None: sweep every org) skips the orgs another region serves;
    ``now`` is the clock of the cutoffs; ``batch`` bounds the rows of one transaction."""

    def __init__(
        self,
        store: Store,
        *,
        orgs: OrgService,
        audit: AuditService,
        residency: ResidencyService | None,
        now: Callable[[], datetime],
        batch: int,
        actor: Actor | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.store = store
        self.orgs = orgs
        self.audit = audit
        self.residency = residency
        self.now = now
        self.batch = batch
        self.actor = actor
        self.progress = progress

    def run(self, org_id: str | None, *, dry_run: bool) -> SweepReport:
        now = self.now()
        report = SweepReport(dry_run, iso(now))
        for org, stored in self._targets(org_id):
            result = OrgSweep(org)
            try:
                policy = RetentionPolicy.parse(stored)
                cut = policy.cutoffs(now)
                result.cutoffs = {k: v for k, v in _cutoff_dict(cut).items() if v is not None}
                self._sweep_org(result, cut, dry_run=dry_run)
            except AgentSDKError as exc:
                # One org's trouble (an unreadable policy, a failed batch) must not keep the
                # others' expired data: report it, and go on.
                result.error = exc.message
                log.warning("retention sweep of org %s failed: %s", org, exc.message)
            if result.deleted and not dry_run:
                self._receipt(result)
            report.orgs.append(result)
        report.finished_at = iso(self.now())
        if not dry_run and any(o.deleted for o in report.orgs):
            # Where the store can, scrub the deleted rows out of its files too (SQLite's WAL).
            if self.store.purges_deleted:
                self.store.purge_deleted()
        return report

    def _receipt(self, result: OrgSweep) -> None:
        """The audit record of what was deleted (also when a batch failed after others had
        committed): counts and cutoffs, never content."""
        try:
            audit_action(
                self.audit,
                result.org_id,
                self.actor,
                "retention.sweep",
                None,
                outcome="failed" if result.error else "success",
                details=result.to_dict(),
            )
        except AgentSDKError as exc:
            # The rows are gone already: say so in the report rather than hide the sweep.
            result.error = result.error or f"deleted, but not audited: {exc.message}"
            log.warning("retention sweep of org %s not audited: %s", result.org_id, exc.message)

    def _targets(self, org_id: str | None) -> Iterator[tuple[str, Any]]:
        if org_id is not None:
            self.orgs.get(org_id)  # NotFound for an unknown org
            stored = self.store.get_org_setting(org_id, SETTING)
            if stored is not None:
                yield org_id, stored
            return
        residency = self.residency
        for org, stored in self.store.list_org_settings(SETTING):
            # Each region sweeps its own orgs, as it recovers only its own runs.
            if residency is not None and not residency.serves(org):
                continue
            yield org, stored

    def _tick(self, result: OrgSweep, what: str, rows: int) -> None:
        if rows <= 0:
            return
        result.batches += 1
        if self.progress is not None:
            self.progress(result.org_id, what, rows)

    # -- one org -------------------------------------------------------------------------------
    def _sweep_org(self, result: OrgSweep, cut: Cutoffs, *, dry_run: bool) -> None:
        org, store, batch = result.org_id, self.store, self.batch
        if cut.runs_before is not None:
            before = cut.runs_before

            def old(after: str | None) -> list[str]:
                return store.finished_runs_before(org, before, after_id=after, limit=batch)

            self._expire_runs(result, old, dry_run=dry_run)
        if cut.keep_last is not None:
            self._keep_last(result, cut, dry_run=dry_run)
        if cut.events_before is not None:
            self._expire_events(result, cut, dry_run=dry_run)
        if cut.runs_before is not None:
            self._expire_sessions(result, cut.runs_before, dry_run=dry_run)
        if cut.audit_before is not None:
            self._prune_audit(result, cut.audit_before, dry_run=dry_run)

    def _expire_runs(
        self, result: OrgSweep, select: Callable[[str | None], list[str]], *, dry_run: bool
    ) -> None:
        """Delete the runs ``select`` pages through (oldest first, keyset by id): each page's
        events in batches, then the page's runs in one short transaction."""
        org, store = result.org_id, self.store
        after: str | None = None
        while ids := select(after):
            after = ids[-1]
            if dry_run:
                result.runs += len(ids)
                self._tick(result, "runs", len(ids))
                result.events += store.count_run_events(org, ids)
                continue
            while events := store.delete_run_events(org, ids, limit=self.batch):
                result.events += events
                self._tick(result, "events", events)
            runs, events, keys = store.delete_finished_runs(org, ids)
            result.runs += runs
            result.events += events
            result.idempotency_keys += keys
            self._tick(result, "runs", runs)

    def _keep_last(self, result: OrgSweep, cut: Cutoffs, *, dry_run: bool) -> None:
        org, store, batch = result.org_id, self.store, self.batch
        keep = cut.keep_last
        assert keep is not None
        # In a dry run the runs already counted as expired by age are not counted twice.
        floor = RunExpiry(cut.runs_before).floor if dry_run else None
        after_session: str | None = None
        while sessions := store.sessions_over(org, keep, after=after_session, limit=batch):
            after_session = sessions[-1]
            for session_id in sessions:

                def beyond(after: str | None, session_id: str = session_id) -> list[str]:
                    if floor is not None and (after is None or after < floor):
                        after = floor
                    return store.finished_runs_beyond(
                        org, session_id, keep, after_id=after, limit=batch
                    )

                self._expire_runs(result, beyond, dry_run=dry_run)

    def _expire_events(self, result: OrgSweep, cut: Cutoffs, *, dry_run: bool) -> None:
        """Events older than the cutoff, of the finished runs created before it (a run's events
        are never older than the run), never a run's newest event."""
        org, store, batch = result.org_id, self.store, self.batch
        before = cut.events_before
        assert before is not None
        # Runs expired by age are gone already (or, in a dry run, counted with their events).
        after: str | None = RunExpiry(cut.runs_before).floor
        while ids := store.finished_runs_before(org, before, after_id=after, limit=batch):
            after = ids[-1]
            if dry_run:
                counted = store.count_old_events(org, ids, before)
                result.events += counted
                self._tick(result, "events", counted)
                continue
            while deleted := store.delete_old_events(org, ids, before, limit=batch):
                result.events += deleted
                self._tick(result, "events", deleted)

    def _expire_sessions(self, result: OrgSweep, before: str, *, dry_run: bool) -> None:
        org, store = result.org_id, self.store
        after: tuple[str, str] | None = None
        while found := store.idle_sessions(org, before, after=after, limit=self.batch):
            after = found[-1]
            ids = [session_id for _, session_id in found]
            deleted = len(ids) if dry_run else store.delete_idle_sessions(org, ids)
            result.sessions += deleted
            self._tick(result, "sessions", deleted)

    def _prune_audit(self, result: OrgSweep, before: str, *, dry_run: bool) -> None:
        """Cut the head of the org's audit log, one batch per transaction, each cut anchored
        by a signed :class:`~agent_sdk.records.AuditAnchor`."""
        org, store, audit = result.org_id, self.store, self.audit
        if dry_run:
            head = store.last_audit(org)
            last = head.seq if head is not None else 0
            # Read lazily, and only up to the first record that has not expired.
            records = itertools.takewhile(
                lambda e: e.time < before and e.seq < last, store.iter_audit(org)
            )
            result.audit_records = sum(1 for _ in records)
            self._tick(result, "audit records", result.audit_records)
            return
        audit.prepare_signer()  # loaded outside the lock: the first load imports cryptography
        while True:
            with store.transaction():
                # Locked appends of the org wait; a lone lock-free append inserts only after
                # the head it names, and the sweep never cuts the head, so the chain stays whole.
                store.lock_audit(org)
                head = store.last_audit(org)
                rows = store.audit_head(org, limit=self.batch)
                cut = [
                    (seq, hash_)
                    for seq, hash_, _ in itertools.takewhile(lambda r: r[2] < before, rows)
                    if head is not None and seq < head.seq
                ]
                if not cut:
                    return
                seq, head_hash = cut[-1]
                deleted = store.prune_audit(org, audit.sign_anchor(org, seq, head_hash))
            result.audit_records += deleted
            self._tick(result, "audit records", deleted)
            if len(cut) < self.batch:
                return


def _cutoff_dict(cut: Cutoffs) -> dict[str, Any]:
    return {
        "runs_before": cut.runs_before,
        "events_before": cut.events_before,
        "audit_before": cut.audit_before,
        "keep_last_runs_per_session": cut.keep_last,
    }


class Sweeps(Protocol):
    """What the periodic sweep needs of the retention service."""

    def sweep(self, *, actor: Actor | None = None) -> SweepReport: ...


class SweepHost(Protocol):
    """What the periodic sweep needs of the runtime of a server or worker (named here rather
    than imported: the runtime builds the retention service, which builds sweepers)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def retention(self) -> Sweeps: ...


async def sweep_periodically(runtime: SweepHost, interval: float) -> None:
    """Sweep every org with a policy every ``interval`` seconds, until cancelled (the server's
    lifespan and each worker run this). A failed sweep is logged; the next one tries again."""
    await asyncio.sleep(min(interval, FIRST_SWEEP_DELAY))
    while True:
        try:
            report = await asyncio.to_thread(runtime.retention.sweep, actor=SYSTEM)
            done = [o for o in report.orgs if o.deleted]
            if done:
                log.info(
                    "retention sweep deleted %s",
                    "; ".join(f"{o.org_id}: {o.runs} runs, {o.events} events" for o in done),
                )
        except AgentSDKError as exc:
            log.warning("retention sweep failed: %s", exc.message)
        await asyncio.sleep(interval)


def start_sweeper(runtime: SweepHost) -> asyncio.Task[None] | None:
    """The background sweep of a server or worker, or None when the interval is 0."""
    interval = runtime.settings.retention.sweep_interval
    if interval <= 0:
        return None
    return asyncio.get_running_loop().create_task(sweep_periodically(runtime, interval))


__all__ = ["Sweeper", "start_sweeper", "sweep_periodically"]
