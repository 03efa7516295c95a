"""Erasure: delete a run, or a session with all its runs, on request (a data subject's, an
operator's), leaving only an audit record that it happened.

What goes: the run row (input, output, error, usage), its events (model responses, tool calls
and their results), and the Idempotency-Key claims whose stored answer is the run. What stays:
the audit log, whose records hold ids and counts but never content, and a dead-lettered queue
job of the run if there was one (its payload is the org and run id only). Afterwards the run is
NotFound everywhere, exactly like a run that never existed.

A run may be deleted in any status. Deletion does not wait for a running attempt: the rows go at
once, and the attempt (here or in a worker process) notices at its next write, heartbeat or
cancel check that its run is gone and stops without writing anything (see
:mod:`agent_sdk.core.attempt`); a queued job of a deleted run is skipped when a worker leases it.
Waiting for the attempt instead would make erasure depend on a model call that may hang.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agent_sdk.core.actors import Actor, audit_action
from agent_sdk.errors import NotFound
from agent_sdk.records import Deletion, Run, RunStatus, Session

if TYPE_CHECKING:
    from agent_sdk.core.audit import AuditService
    from agent_sdk.core.executor import Executor
    from agent_sdk.store.base import Store

log = logging.getLogger(__name__)

# No id of ours is this long; a longer one is looked up nowhere (some databases refuse to
# compare huge keys or ones holding NUL, which would make a 4xx other than 404).
MAX_ID_CHARS = 1024
_ACTIVE = [RunStatus.QUEUED, RunStatus.RUNNING]


class Erasure:
    """Deletes runs and sessions for the run and session services. ``executor`` answers the
    executor of this process if it has been built, else None: a CLI call that never started the
    engine has no attempt of the erased runs to stop, and must not start the engine to learn
    that."""

    def __init__(
        self,
        store: Store,
        *,
        audit: Callable[[], AuditService],
        executor: Callable[[], Executor | None],
    ) -> None:
        self.store = store
        self._audit = audit
        self._executor = executor

    def delete_run(
        self, org_id: str, run_id: str, *, get: Callable[[str, str], Run], actor: Actor | None
    ) -> Deletion:
        """Erase one run of ``org_id`` and record ``runs.delete``; NotFound for an unknown run,
        another org's run and an id that cannot exist, alike. ``get`` reads the run as its
        readers see it (an expired run is already gone)."""
        _check_id("run", run_id)
        store = self.store
        with store.transaction():
            was = get(org_id, run_id).status
            deletion = store.delete_run(org_id, run_id)
            audit_action(
                self._audit(),
                org_id,
                actor,
                "runs.delete",
                run_id,
                details=_details(deletion) | {"was": was.value},
            )
        self._settle([run_id] if was in _ACTIVE else [])
        return deletion

    def delete_session(
        self,
        org_id: str,
        session_id: str,
        *,
        get: Callable[[str, str], Session],
        actor: Actor | None,
    ) -> Deletion:
        """Erase a session of ``org_id`` with every run in it and record ``sessions.delete``;
        NotFound for an unknown session, another org's session and an id that cannot exist.
        ``get`` reads the session as its readers see it (NotFound also once expired)."""
        _check_id("session", session_id)
        store = self.store
        with store.transaction():
            get(org_id, session_id)  # NotFound before any other read
            active = self._active_here(org_id, session_id)
            deletion = store.delete_session(org_id, session_id)
            audit_action(
                self._audit(),
                org_id,
                actor,
                "sessions.delete",
                session_id,
                details=_details(deletion),
            )
        self._settle(active)
        return deletion

    def _active_here(self, org_id: str, session_id: str) -> list[str]:
        """Ids of the session's queued or running runs, if this process executes runs at all."""
        if self._executor() is None:
            return []
        ids: list[str] = []
        cursor: str | None = None
        while True:
            page = self.store.list_runs(
                org_id, status=_ACTIVE, session_id=session_id, limit=500, cursor=cursor
            )
            ids += [r.id for r in page.items]
            if page.next_cursor is None:
                return ids
            cursor = page.next_cursor

    def _settle(self, active: list[str]) -> None:
        """After the commit: stop what this process was executing of the erased runs (at once,
        rather than at their next write), and scrub the store's files where the store can."""
        executor = self._executor() if active else None
        if executor is not None:
            for run_id in active:
                executor.cancel(run_id)
        if self.store.purges_deleted and not self.store.purge_deleted():
            log.info("the erased rows stay in the SQLite WAL until its next full checkpoint")


def _check_id(kind: str, value: str) -> None:
    if not value or len(value) > MAX_ID_CHARS or "\x00" in value:
        shown = value[:64] + "..." if len(value) > 64 else value
        raise NotFound(f"{kind} {shown!r} not found")


def _details(deletion: Deletion) -> dict[str, Any]:
    """The audit details: the counts (the target names the id, the record the org)."""
    out = deletion.to_dict()
    for name in ("kind", "id", "org_id"):
        out.pop(name)
    return out
