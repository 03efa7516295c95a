"""Retention: how long an org's runs, events and audit records are kept, and the filters that
make expired data invisible at once, before any sweeper has deleted it.

An org's policy is its per-org setting ``retention``, a JSON object with up to four limits:

=============================  ==============================================================
``runs_days``                  a finished run expires this many days after it was created,
                               with its events; so does a session once all its runs have
``events_days``                a finished run's events expire this many days after they were
                               written (the run's newest event is kept)
``audit_days``                 audit records expire this many days after they were written
                               (the newest record is kept, so the chain goes on)
``keep_last_runs_per_session`` a finished run expires once its session has this many newer
                               runs
=============================  ==============================================================

What never expires: a ``queued`` or ``running`` run (its events are its journal: a worker that
takes it over replays them) and a run's newest event (a follower of a finished run stops at its
terminal event). Independently of any policy, ``AGENT_SDK_EVENT_RETENTION_MAX_EVENTS`` caps the
events a run keeps when it finishes (the newest ones; see :mod:`agent_sdk.core.attempt`).

Expired means gone from every read: listings skip it, and a read by id answers NotFound exactly
as for a run that never existed. The filters are part of the queries (an id floor, since run ids
begin with their creation time, and a bounded index walk for keep-last-N), so they cost no extra
round trip. The sweeper (:mod:`agent_sdk.core.retention_sweep`) then deletes what expired.

Policies are read through a per-process cache of ``CACHE_SECONDS``, dropped at once in the
process that changes one: another process applies a new policy within that time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent_sdk.core.actors import Actor, audit_action
from agent_sdk.errors import InvalidInput, NotFound
from agent_sdk.store.retention import ACTIVE

if TYPE_CHECKING:
    from agent_sdk.core.audit import AuditService
    from agent_sdk.core.orgs import OrgService
    from agent_sdk.core.residency import ResidencyService
    from agent_sdk.records import (
        Cutoffs,
        Principal,
        Progress,
        RetentionPolicy,
        RetentionView,
        Run,
        RunExpiry,
        SweepReport,
    )
    from agent_sdk.store.base import Store

CACHE_SECONDS = 5.0
# The per-org setting that holds a policy: agent_sdk.records.retention.SETTING, spelled out so
# that reads need not import the retention records (tests/test_retention.py holds them equal).
SETTING = "retention"


def _now() -> datetime:
    """The clock of every cutoff (tests move it forward to make data old)."""
    return datetime.now(UTC)


class RetentionService:
    """``batch_size`` bounds the rows one transaction of a sweep deletes; ``residency`` lets a
    sweep of every org skip the orgs another region serves."""

    def __init__(
        self,
        store: Store,
        *,
        orgs: OrgService,
        audit: Callable[[], AuditService],
        residency: Callable[[], ResidencyService],
        batch_size: int,
        ttl: float = CACHE_SECONDS,
    ) -> None:
        self.store = store
        self._orgs = orgs
        self._audit = audit
        self._residency = residency
        self.batch_size = batch_size
        self.ttl = ttl
        self._cache: dict[str, tuple[RetentionPolicy | None, float]] = {}
        self._lock = threading.Lock()

    # -- the setting ---------------------------------------------------------------------------
    def policy(self, org_id: str) -> RetentionPolicy:
        """The org's policy (empty: keep everything), cached for ``ttl`` seconds."""
        from agent_sdk.records import RetentionPolicy

        return self._policy(org_id) or RetentionPolicy()

    def _policy(self, org_id: str) -> RetentionPolicy | None:
        """:meth:`policy`, or None when the org has none stored: the filters every read goes
        through then need not import the retention records at all (CLI start-up)."""
        now = time.monotonic()
        hit = self._cache.get(org_id)
        if hit is not None and hit[1] > now:
            return hit[0]
        stored = self.store.get_org_setting(org_id, SETTING)
        policy: RetentionPolicy | None = None
        if stored is not None:
            from agent_sdk.records import RetentionPolicy

            try:
                policy = RetentionPolicy.parse(stored)
            except InvalidInput:
                # A value edited by hand into something unreadable: keep everything rather
                # than guess (the sweeper reports it, and `orgs retention set` replaces it).
                policy = None
        with self._lock:
            if len(self._cache) > 10_000:  # many orgs: start over rather than grow forever
                self._cache.clear()
            self._cache[org_id] = (policy, now + self.ttl)
        return policy

    def show(self, org_id: str) -> RetentionView:
        self._orgs.get(org_id)  # NotFound for an unknown org
        self._cache.pop(org_id, None)  # an admin reading the policy sees the stored one
        from agent_sdk.records import RetentionView

        return RetentionView(org_id, self.policy(org_id))

    def set(
        self, org_id: str, policy: RetentionPolicy | Mapping[str, Any], *, actor: Actor | None
    ) -> RetentionView:
        """Replace the org's policy (an empty one clears it); audited as ``retention.set``."""
        from agent_sdk.records import RetentionPolicy, RetentionView

        if not isinstance(policy, RetentionPolicy):
            policy = RetentionPolicy.parse(policy)
        self._orgs.get(org_id)
        with self.store.transaction():
            self.store.set_org_setting(org_id, SETTING, policy.to_dict() if policy else None)
            action = "retention.set" if policy else "retention.clear"
            audit_action(self._audit(), org_id, actor, action, org_id, details=policy.to_dict())
        self._cache.pop(org_id, None)
        return RetentionView(org_id, policy)

    def clear(self, org_id: str, *, actor: Actor | None) -> RetentionView:
        from agent_sdk.records import RetentionPolicy

        return self.set(org_id, RetentionPolicy(), actor=actor)

    # -- the filters ---------------------------------------------------------------------------
    def now(self) -> datetime:
        """The time cutoffs are computed from."""
        return _now()

    def cutoffs(self, org_id: str) -> Cutoffs | None:
        policy = self._policy(org_id)
        return policy.cutoffs(self.now()) if policy else None

    def run_expiry(self, org_id: str) -> RunExpiry | None:
        cut = self.cutoffs(org_id)
        return cut.runs if cut is not None else None

    def audit_before(self, org_id: str) -> str | None:
        cut = self.cutoffs(org_id)
        return cut.audit_before if cut is not None else None

    def visible_run(self, run: Run) -> Run:
        """``run``, or NotFound if the org's policy has expired it (as if it never existed)."""
        expiry = self.run_expiry(run.org_id)
        if expiry is None or run.status.value in ACTIVE:
            return run
        floor = expiry.floor
        expired = floor is not None and run.id < floor
        if not expired and expiry.keep_last is not None and run.session_id is not None:
            newer = self.store.newer_runs_in_session(
                run.org_id, run.session_id, run.id, expiry.keep_last
            )
            expired = newer >= expiry.keep_last
        if expired:
            raise NotFound(f"run {run.id!r} not found")
        return run

    def events_after(self, run: Run, after: int) -> int:
        """Where a read of ``run``'s events after ``after`` really starts: past the events its
        policy expired (never past its newest event)."""
        cut = self.cutoffs(run.org_id)
        if cut is None or cut.events_before is None or run.status.value in ACTIVE:
            return after
        first = self.store.first_event_since(run.org_id, run.id, cut.events_before)
        if first is None:
            first = self.store.last_event_seq(run.org_id, run.id)
        return max(after, first - 1)

    # -- the sweeper ---------------------------------------------------------------------------
    def sweep(
        self,
        org_id: str | None = None,
        *,
        dry_run: bool = False,
        actor: Actor | None = None,
        progress: Progress | None = None,
    ) -> SweepReport:
        """Delete what the policies expired, in bounded batches: of ``org_id``, or of every org
        with a policy (see :mod:`agent_sdk.core.retention_sweep`)."""
        from agent_sdk.core.retention_sweep import Sweeper

        sweeper = Sweeper(
            self.store,
            orgs=self._orgs,
            audit=self._audit(),
            residency=self._residency() if org_id is None else None,
            now=self.now,
            batch=self.batch_size,
            actor=actor,
            progress=progress,
        )
        return sweeper.run(org_id, dry_run=dry_run)

    def sweep_as(
        self,
        principal: Principal,
        org_id: str,
        *,
        all_orgs: bool = False,
        dry_run: bool = False,
        actor: Actor | None = None,
    ) -> SweepReport:
        """The HTTP API's sweep: the acting org, or every org for a platform admin."""
        from agent_sdk.errors import PermissionDenied
        from agent_sdk.security.scopes import ADMIN_PLATFORM

        if all_orgs and not principal.can(ADMIN_PLATFORM):
            exc = PermissionDenied(
                "this credential lacks the scope 'admin:platform', which sweeping every org needs"
            )
            details = {"reason": exc.message, "all_orgs": True}
            audit = self._audit()
            action = "retention.sweep"
            audit_action(audit, org_id, actor, action, None, outcome="denied", details=details)
            raise exc
        return self.sweep(None if all_orgs else org_id, dry_run=dry_run, actor=actor)


__all__ = [
    "CACHE_SECONDS",
    "SETTING",
    "RetentionService",
]
