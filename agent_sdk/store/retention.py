"""What retention asks of a store: filters that hide what a policy has expired, and bounded
batch deletes for the sweeper.

A store knows no policy. :mod:`agent_sdk.core.retention` turns an org's policy into cutoffs and
hands them here; every method selects or deletes by the conditions it is given, at most one
batch per call, so a caller that loops never holds a write transaction for long.

Two rules hold in every query below, because the core relies on them:

* a ``queued`` or ``running`` run never expires: its events are its journal (a takeover replays
  them), and deleting it would lose work in flight;
* a run's newest event is never deleted by age: a follower of a finished run ends at the
  terminal event, so removing it would leave followers waiting for an end that never comes.

The SQL is shared by the SQLite and Postgres stores (written with ``?``, which the Postgres store
turns into ``%s``); what differs is locking (row locks and the audit lock on Postgres).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from agent_sdk.ids import id_floor, parse_time
from agent_sdk.records import RunStatus

if TYPE_CHECKING:
    from agent_sdk.records import AuditAnchor, RunExpiry

# Literal SQL of the statuses that never expire (constants, never caller text).
ACTIVE = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
_ACTIVE_SQL = "(" + ", ".join(f"'{s}'" for s in ACTIVE) + ")"


def visible_runs_sql(
    expiry: RunExpiry | None, statuses: Sequence[str] = (), table: str = "runs"
) -> tuple[str, list[Any]]:
    """`` AND ...`` that keeps only the runs ``expiry`` has not expired, for a query on
    ``table`` (its name or alias), and its parameters. ``statuses`` is the listing's own status
    filter: when it names only finished statuses, the age bound becomes a plain ``id >= floor``,
    a range the (org_id, status, id) index serves; when it names only active ones, nothing can
    have expired."""
    if not expiry:
        return "", []
    assert expiry is not None
    if statuses and all(s in ACTIVE for s in statuses):
        return "", []
    parts: list[str] = []
    params: list[Any] = []
    floor = expiry.floor
    if floor is not None:
        parts.append(f"{table}.id >= ?")
        params.append(floor)
    if expiry.keep_last is not None:
        # "There is no keep_last-th newer run in its session": a walk of at most keep_last
        # entries of the (org_id, session_id, id) index per row.
        parts.append(
            f"({table}.session_id IS NULL OR NOT EXISTS (SELECT 1 FROM runs n"
            f" WHERE n.org_id = {table}.org_id AND n.session_id = {table}.session_id"
            f" AND n.id > {table}.id ORDER BY n.id LIMIT 1 OFFSET ?))"
        )
        params.append(expiry.keep_last - 1)
    kept = " AND ".join(parts)
    if statuses and not any(s in ACTIVE for s in statuses):
        return f" AND {kept}", params
    return f" AND ({table}.status IN {_ACTIVE_SQL} OR ({kept}))", params


def visible_sessions_sql(runs_before: str | None, alias: str = "s") -> tuple[str, list[Any]]:
    """`` AND ...`` that hides sessions whose runs have all expired by age: nothing was added
    to them since ``runs_before`` (a run's insert touches its session's ``updated_at``) and
    none of their runs is still queued or running."""
    if runs_before is None:
        return "", []
    return (
        f" AND ({alias}.updated_at >= ? OR EXISTS (SELECT 1 FROM runs a"
        f" WHERE a.org_id = {alias}.org_id AND a.session_id = {alias}.id"
        f" AND a.status IN {_ACTIVE_SQL}))",
        [runs_before],
    )


def visible_run_count_sql(expiry: RunExpiry, alias: str = "s") -> tuple[str, list[Any]]:
    """An expression counting the runs of session ``alias`` that ``expiry`` keeps, and its
    parameters: a session's ``run_count`` must not count what its listing hides.

    Visible runs are those at or above a bound (the age floor, and for keep-last-N the
    session's N-th newest run id), which the (org_id, session_id, id) index counts without
    reading a row, plus the queued or running ones below it (few, and none once swept)."""
    parts: list[str] = []
    params: list[Any] = []
    if expiry.keep_last is not None:
        # The session's N-th newest run id ('' when it has fewer: every run is kept).
        parts.append(
            f"COALESCE((SELECT t.id FROM runs t WHERE t.org_id = {alias}.org_id"
            f" AND t.session_id = {alias}.id ORDER BY t.id DESC LIMIT 1 OFFSET ?), '')"
        )
        params.append(expiry.keep_last - 1)
    floor = expiry.floor
    if floor is not None:
        parts.append("?")
        params.append(floor)
    if len(parts) == 2:  # the larger of the two bounds, in SQL both engines speak
        bound = f"(SELECT MAX(b) FROM (SELECT {parts[0]} AS b UNION ALL SELECT ?) AS bounds)"
    else:
        bound = parts[0]
    # The bound appears twice, so its parameters do too.
    where = f"r.org_id = {alias}.org_id AND r.session_id = {alias}.id"
    sql = (
        f"((SELECT COUNT(*) FROM runs r WHERE {where} AND r.id >= {bound})"
        f" + (SELECT COUNT(*) FROM runs r WHERE {where} AND r.id < {bound}"
        f" AND r.status IN {_ACTIVE_SQL}))"
    )
    return sql, [*params, *params]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class RetentionStore(Protocol):
    """The retention part of a Store (see :mod:`agent_sdk.store.base`)."""

    # -- reads for the filters ---------------------------------------------------------------
    def newer_runs_in_session(self, org_id: str, session_id: str, run_id: str, cap: int) -> int:
        """How many runs of the session are newer than ``run_id``, counting at most ``cap``."""
        ...

    def first_event_since(self, org_id: str, run_id: str, since: str) -> int | None:
        """The smallest seq of the run's events with ``time >= since`` (None: none)."""
        ...

    def last_event_seq(self, org_id: str, run_id: str) -> int:
        """The run's newest seq, 0 without events."""
        ...

    # -- selections for the sweeper (finished runs only, oldest first, keyset by id) ---------
    def finished_runs_before(
        self, org_id: str, created_before: str, *, after_id: str | None = None, limit: int
    ) -> list[str]: ...

    def sessions_over(
        self, org_id: str, keep_last: int, *, after: str | None = None, limit: int
    ) -> list[str]:
        """Sessions with more than ``keep_last`` runs, by id."""
        ...

    def finished_runs_beyond(
        self,
        org_id: str,
        session_id: str,
        keep_last: int,
        *,
        after_id: str | None = None,
        limit: int,
    ) -> list[str]:
        """Finished runs of the session older than its ``keep_last`` newest runs."""
        ...

    def idle_sessions(
        self, org_id: str, updated_before: str, *, after: tuple[str, str] | None, limit: int
    ) -> list[tuple[str, str]]:
        """``(created_at, id)`` of sessions untouched since ``updated_before`` with no queued
        or running run, by (created_at, id)."""
        ...

    # -- counts for a dry run -----------------------------------------------------------------
    def count_run_events(self, org_id: str, run_ids: Sequence[str]) -> int: ...

    def count_old_events(self, org_id: str, run_ids: Sequence[str], before: str) -> int: ...

    # -- deletes: each one short transaction ---------------------------------------------------
    def delete_run_events(self, org_id: str, run_ids: Sequence[str], *, limit: int) -> int:
        """Delete up to ``limit`` events of the finished runs among ``run_ids``."""
        ...

    def delete_finished_runs(self, org_id: str, run_ids: Sequence[str]) -> tuple[int, int, int]:
        """Delete the finished runs among ``run_ids`` with what is keyed by them; return
        (runs, events, idempotency keys) deleted."""
        ...

    def delete_old_events(
        self, org_id: str, run_ids: Sequence[str], before: str, *, limit: int
    ) -> int:
        """Delete up to ``limit`` events older than ``before`` of the finished runs among
        ``run_ids``, never a run's newest event."""
        ...

    def delete_idle_sessions(self, org_id: str, session_ids: Sequence[str]) -> int:
        """Delete those of the sessions that have no run left."""
        ...

    # -- the audit log's head ------------------------------------------------------------------
    def audit_head(self, org_id: str, *, limit: int) -> list[tuple[int, str | None, str]]:
        """``(seq, hash, time)`` of the org's oldest ``limit`` audit records."""
        ...

    def lock_audit(self, org_id: str) -> None:
        """Inside a transaction: hold off the org's audit appends until it ends."""
        ...

    def prune_audit(self, org_id: str, anchor: AuditAnchor) -> int:
        """In one transaction: store ``anchor`` (unless a later one is stored), delete the
        org's audit records and checkpoints up to ``anchor.seq``; return the records deleted."""
        ...

    def get_audit_anchor(self, org_id: str) -> AuditAnchor | None: ...


_ANCHOR_COLUMNS = "org_id, seq, head_hash, time, signature, key_id"


class RetentionMixin:
    """RetentionStore in SQL shared by both stores (before ``SQLStore`` in their bases)."""

    if TYPE_CHECKING:
        scheme: ClassVar[str]

        def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

        def _one(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

        def _exec(self, sql: str, params: Sequence[Any] = ()) -> int: ...

        def transaction(self) -> AbstractContextManager[None]: ...

    def _lock_clause(self) -> str:
        """Row locks taken before a delete re-checks what it selected: Postgres needs them
        under READ COMMITTED; SQLite's BEGIN IMMEDIATE already serialises every writer."""
        return " FOR UPDATE" if self.scheme == "postgresql" else ""

    # -- reads for the filters ---------------------------------------------------------------
    def newer_runs_in_session(self, org_id: str, session_id: str, run_id: str, cap: int) -> int:
        row = self._one(
            "SELECT COUNT(*) FROM (SELECT 1 FROM runs WHERE org_id = ? AND session_id = ?"
            " AND id > ? LIMIT ?) AS newer",
            (org_id, session_id, run_id, cap),
        )
        return int(row[0])

    def first_event_since(self, org_id: str, run_id: str, since: str) -> int | None:
        # Times grow with seq, so this walks the run's (run_id, seq) range only over the
        # expired events the sweeper has not deleted yet.
        row = self._one(
            "SELECT seq FROM events WHERE run_id = ? AND org_id = ? AND time >= ?"
            " ORDER BY seq LIMIT 1",
            (run_id, org_id, since),
        )
        return None if row is None else int(row[0])

    def last_event_seq(self, org_id: str, run_id: str) -> int:
        row = self._one(
            "SELECT MAX(seq) FROM events WHERE run_id = ? AND org_id = ?", (run_id, org_id)
        )
        return int(row[0] or 0)

    # -- selections for the sweeper ----------------------------------------------------------
    def finished_runs_before(
        self, org_id: str, created_before: str, *, after_id: str | None = None, limit: int
    ) -> list[str]:
        sql = f"SELECT id FROM runs WHERE org_id = ? AND id < ? AND status NOT IN {_ACTIVE_SQL}"
        params: list[Any] = [org_id, id_floor("run", parse_time(created_before))]
        if after_id is not None:
            sql += " AND id > ?"
            params.append(after_id)
        rows = self._query(sql + " ORDER BY id LIMIT ?", [*params, limit])
        return [str(r[0]) for r in rows]

    def sessions_over(
        self, org_id: str, keep_last: int, *, after: str | None = None, limit: int
    ) -> list[str]:
        # One pass over the (org_id, session_id, id) index, which holds every column used.
        sql = "SELECT session_id FROM runs WHERE org_id = ? AND session_id IS NOT NULL"
        params: list[Any] = [org_id]
        if after is not None:
            sql += " AND session_id > ?"
            params.append(after)
        sql += " GROUP BY session_id HAVING COUNT(*) > ? ORDER BY session_id LIMIT ?"
        return [str(r[0]) for r in self._query(sql, [*params, keep_last, limit])]

    def finished_runs_beyond(
        self,
        org_id: str,
        session_id: str,
        keep_last: int,
        *,
        after_id: str | None = None,
        limit: int,
    ) -> list[str]:
        # The subquery is the id of the session's keep_last-th newest run (NULL when it has
        # fewer, and then nothing compares below it).
        sql = (
            "SELECT id FROM runs WHERE org_id = ? AND session_id = ?"
            f" AND status NOT IN {_ACTIVE_SQL} AND id < (SELECT id FROM runs"
            " WHERE org_id = ? AND session_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)"
        )
        params: list[Any] = [org_id, session_id, org_id, session_id, keep_last - 1]
        if after_id is not None:
            sql += " AND id > ?"
            params.append(after_id)
        rows = self._query(sql + " ORDER BY id LIMIT ?", [*params, limit])
        return [str(r[0]) for r in rows]

    def idle_sessions(
        self, org_id: str, updated_before: str, *, after: tuple[str, str] | None, limit: int
    ) -> list[tuple[str, str]]:
        # updated_at >= created_at, so the (org_id, created_at, id) index bounds the scan.
        sql = (
            "SELECT created_at, id FROM sessions s WHERE s.org_id = ? AND s.created_at < ?"
            " AND s.updated_at < ? AND NOT EXISTS (SELECT 1 FROM runs a WHERE a.org_id = s.org_id"
            f" AND a.session_id = s.id AND a.status IN {_ACTIVE_SQL})"
        )
        params: list[Any] = [org_id, updated_before, updated_before]
        if after is not None:
            sql += " AND (s.created_at, s.id) > (?, ?)"
            params += list(after)
        rows = self._query(sql + " ORDER BY s.created_at, s.id LIMIT ?", [*params, limit])
        return [(str(r[0]), str(r[1])) for r in rows]

    # -- counts for a dry run ------------------------------------------------------------------
    def count_run_events(self, org_id: str, run_ids: Sequence[str]) -> int:
        if not run_ids:
            return 0
        row = self._one(
            f"SELECT COUNT(*) FROM events WHERE org_id = ? AND run_id IN ({_marks(len(run_ids))})",
            [org_id, *run_ids],
        )
        return int(row[0])

    def count_old_events(self, org_id: str, run_ids: Sequence[str], before: str) -> int:
        if not run_ids:
            return 0
        row = self._one(
            f"SELECT COUNT(*) FROM ({self._old_events_sql(len(run_ids))}) AS old",
            [org_id, *run_ids, before],
        )
        return int(row[0])

    @staticmethod
    def _old_events_sql(n: int) -> str:
        return (
            "SELECT e.run_id, e.seq FROM events e JOIN runs r ON r.id = e.run_id"
            f" WHERE r.org_id = ? AND r.id IN ({_marks(n)}) AND r.status NOT IN {_ACTIVE_SQL}"
            " AND e.time < ?"
            " AND e.seq < (SELECT MAX(m.seq) FROM events m WHERE m.run_id = e.run_id)"
        )

    # -- deletes -------------------------------------------------------------------------------
    def delete_run_events(self, org_id: str, run_ids: Sequence[str], *, limit: int) -> int:
        if not run_ids:
            return 0
        with self.transaction():
            return self._exec(
                "DELETE FROM events WHERE (run_id, seq) IN (SELECT e.run_id, e.seq FROM events e"
                f" WHERE e.run_id IN (SELECT id FROM runs WHERE org_id = ?"
                f" AND id IN ({_marks(len(run_ids))}) AND status NOT IN {_ACTIVE_SQL})"
                " LIMIT ?)",
                [org_id, *run_ids, limit],
            )

    def delete_finished_runs(self, org_id: str, run_ids: Sequence[str]) -> tuple[int, int, int]:
        if not run_ids:
            return 0, 0, 0
        with self.transaction():
            # Lock and re-check first: a run retried since it was selected is queued again and
            # must stay, with everything keyed by it.
            rows = self._query(
                f"SELECT id FROM runs WHERE org_id = ? AND id IN ({_marks(len(run_ids))})"
                f" AND status NOT IN {_ACTIVE_SQL} ORDER BY id{self._lock_clause()}",
                [org_id, *run_ids],
            )
            ids = [str(r[0]) for r in rows]
            if not ids:
                return 0, 0, 0
            marks = _marks(len(ids))
            keys = self._exec(
                f"DELETE FROM idempotency_keys WHERE org_id = ? AND run_id IN ({marks})",
                [org_id, *ids],
            )
            events = self._exec(
                f"DELETE FROM events WHERE org_id = ? AND run_id IN ({marks})", [org_id, *ids]
            )
            runs = self._exec(
                f"DELETE FROM runs WHERE org_id = ? AND id IN ({marks})", [org_id, *ids]
            )
        return runs, events, keys

    def delete_old_events(
        self, org_id: str, run_ids: Sequence[str], before: str, *, limit: int
    ) -> int:
        if not run_ids:
            return 0
        with self.transaction():
            return self._exec(
                "DELETE FROM events WHERE (run_id, seq) IN"
                f" (SELECT * FROM ({self._old_events_sql(len(run_ids))} LIMIT ?) AS old)",
                [org_id, *run_ids, before, limit],
            )

    def delete_idle_sessions(self, org_id: str, session_ids: Sequence[str]) -> int:
        if not session_ids:
            return 0
        with self.transaction():
            marks = _marks(len(session_ids))
            # Postgres: lock the rows, so a run being added to one waits for this and then
            # creates the session afresh (SQLite's write lock already orders the two).
            self._query(
                f"SELECT id FROM sessions WHERE org_id = ? AND id IN ({marks})"
                f" ORDER BY id{self._lock_clause()}",
                [org_id, *session_ids],
            )
            return self._exec(
                f"DELETE FROM sessions WHERE org_id = ? AND id IN ({marks}) AND NOT EXISTS"
                " (SELECT 1 FROM runs r WHERE r.org_id = sessions.org_id"
                " AND r.session_id = sessions.id)",
                [org_id, *session_ids],
            )

    # -- the audit log's head ------------------------------------------------------------------
    def audit_head(self, org_id: str, *, limit: int) -> list[tuple[int, str | None, str]]:
        rows = self._query(
            "SELECT seq, hash, time FROM audit_log WHERE org_id = ? ORDER BY seq LIMIT ?",
            (org_id, limit),
        )
        return [(int(r[0]), r[1], str(r[2])) for r in rows]

    def lock_audit(self, org_id: str) -> None:
        if self.scheme == "postgresql":
            # The advisory lock every audit append of the org takes (store/postgres_mixins.py).
            from agent_sdk.store.postgres_mixins import _LOCK_AUDIT

            self._query("SELECT pg_advisory_xact_lock(?, hashtext(?))", (_LOCK_AUDIT, org_id))

    def prune_audit(self, org_id: str, anchor: AuditAnchor) -> int:
        with self.transaction():
            # A later anchor wins: two sweepers racing never move the start backwards.
            self._exec(
                f"INSERT INTO audit_anchors ({_ANCHOR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (org_id) DO UPDATE SET seq = excluded.seq,"
                " head_hash = excluded.head_hash, time = excluded.time,"
                " signature = excluded.signature, key_id = excluded.key_id"
                " WHERE audit_anchors.seq < excluded.seq",
                (
                    org_id,
                    anchor.seq,
                    anchor.head_hash,
                    anchor.time,
                    anchor.signature,
                    anchor.key_id,
                ),
            )
            # Checkpoints up to the anchor vouch for records that are gone.
            self._exec(
                "DELETE FROM audit_checkpoints WHERE org_id = ? AND seq <= ?", (org_id, anchor.seq)
            )
            return self._exec(
                "DELETE FROM audit_log WHERE org_id = ? AND seq <= ?", (org_id, anchor.seq)
            )

    def get_audit_anchor(self, org_id: str) -> AuditAnchor | None:
        row = self._one(f"SELECT {_ANCHOR_COLUMNS} FROM audit_anchors WHERE org_id = ?", (org_id,))
        if row is None:
            return None
        from agent_sdk.records import AuditAnchor

        return AuditAnchor(str(row[0]), int(row[1]), row[2], str(row[3]), str(row[4]), row[5])


__all__ = [
    "ACTIVE",
    "RetentionMixin",
    "RetentionStore",
    "visible_run_count_sql",
    "visible_runs_sql",
    "visible_sessions_sql",
]
