"""What the SQL stores share: the queries that read and write orgs, sessions, runs and events
the same way on SQLite and PostgreSQL.

Queries here are written with ``?`` placeholders; the PostgreSQL store turns them into ``%s``
when it runs them. What differs between the engines (transactions, locking, upserts, migrations,
error translation) stays in each store.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from agent_sdk.errors import Conflict, InvalidInput, NotFound, Superseded
from agent_sdk.ids import utcnow
from agent_sdk.records import Deletion, EventType, RunStatus, Session
from agent_sdk.store._rows import (
    MAX_LIMIT,
    RUN_FIELDS,
    check_limit,
    column_value,
    cursor_key,
    dumps,
    dumps_opt,
    make_page,
    parse_status,
)
from agent_sdk.store._sql_primitives import SQLPrimitives
from agent_sdk.store.retention import (
    visible_run_count_sql,
    visible_sessions_sql,
)
from agent_sdk.store.sealing import SealingMixin
from agent_sdk.store.wrapped_keys import SQLEncryptionKeysMixin

if TYPE_CHECKING:
    from agent_sdk.records import Event, Org, Page, Run, RunExpiry

RUN_COLUMNS = ", ".join(RUN_FIELDS)
_RUN_PLACEHOLDERS = ", ".join("?" * len(RUN_FIELDS))
# The run columns update_run may set.
_UPDATABLE = frozenset(
    "status output error usage steps attempts started_at finished_at cancel_requested".split()
)
SESSION_SELECT = (
    "SELECT org_id, id, project_id, metadata, created_at, updated_at,"
    " (SELECT COUNT(*) FROM runs r WHERE r.org_id = s.org_id AND r.session_id = s.id) AS run_count"
    " FROM sessions s WHERE s.org_id = ?"
)


# -- the fence of event appends ------------------------------------------------------------------
# Two rules every append obeys, checked in the statement that inserts (or, where a store cannot
# put them there, in the transaction that holds the run's write lock):
#   * nothing follows a run's terminal event: once the run is terminal and its last event is the
#     terminal one, the run's history is closed (an operator's retry re-opens it by setting the
#     status back to queued in the transaction that appends its run.retrying);
#   * an attempt's write applies only while the run's attempt counter is still its own and the
#     run has not ended: a worker paused past its lease cannot write after a takeover.
# The values are the enums' own (never caller text), inlined so every engine plans the same SQL.
# Runs per statement of watch_runs: well within every driver's limit on parameters.
_WATCH_CHUNK = 200
_TERMINAL_STATUSES = ", ".join(f"'{s.value}'" for s in RunStatus if s.terminal)
_TERMINAL_EVENT_TYPES = frozenset(t.value for t in EventType if t.terminal)
_TERMINAL_EVENTS = ", ".join(f"'{t}'" for t in sorted(_TERMINAL_EVENT_TYPES))
LAST_EVENT_TYPE_SQL = (
    "(SELECT e.type FROM events e WHERE e.run_id = r.id ORDER BY e.seq DESC LIMIT 1)"
)
OPEN_RUN_SQL = (
    f" AND NOT (r.status IN ({_TERMINAL_STATUSES})"
    f" AND COALESCE({LAST_EVENT_TYPE_SQL}, '') IN ({_TERMINAL_EVENTS}))"
)
ATTEMPT_FENCE_SQL = f" AND r.attempts = ? AND r.status NOT IN ({_TERMINAL_STATUSES})"


def append_guard(attempt: int | None) -> tuple[str, list[Any]]:
    """The conditions on ``runs r`` under which an append applies, and their parameters."""
    if attempt is None:
        return OPEN_RUN_SQL, []
    return OPEN_RUN_SQL + ATTEMPT_FENCE_SQL, [attempt]


def _session_select(org_id: str, expiry: RunExpiry | None) -> tuple[str, list[Any]]:
    """SESSION_SELECT (the same columns) and its parameters. Under a retention policy, the
    sessions whose runs all expired are left out, and run_count counts the visible runs."""
    if not expiry:
        return SESSION_SELECT, [org_id]
    assert expiry is not None
    count, count_params = visible_run_count_sql(expiry)
    hidden, hidden_params = visible_sessions_sql(expiry.runs_before)
    sql = (
        f"SELECT org_id, id, project_id, metadata, created_at, updated_at, {count} AS run_count"
        f" FROM sessions s WHERE s.org_id = ?{hidden}"
    )
    return sql, [*count_params, org_id, *hidden_params]


class SQLStore(SQLEncryptionKeysMixin, SealingMixin, SQLPrimitives):
    """The shared part of a Store. A subclass provides the four primitives of
    :class:`~agent_sdk.store._sql_primitives.SQLPrimitives`.

    Tenant columns go through ``self._seal`` / ``self._run`` / ``self._event`` /
    ``self._session`` (see :mod:`agent_sdk.store.sealing`): encryption at rest hooks in there."""

    def _require_run(self, org_id: str, run_id: str, *, lock: bool = False) -> None:
        """NotFound unless the run exists in the org; with ``lock``, inside a transaction, the
        run's row stays locked until commit (where the transaction does not already hold the
        database's write lock)."""
        raise NotImplementedError

    def _refuse_append(self, org_id: str, run_id: str, attempt: int | None) -> None:
        """Raise why an append to the run would not apply (NotFound, Superseded, Conflict), or
        return when it would. Decisive only while the caller holds the run's write lock (a
        transaction on SQLite, the row lock on Postgres) or when a later insert would collide
        with any event committed since (see the appends)."""
        row = self._one(
            f"SELECT r.attempts, r.status, {LAST_EVENT_TYPE_SQL} FROM runs r"
            " WHERE r.id = ? AND r.org_id = ?",
            (run_id, org_id),
        )
        if row is None:
            raise NotFound(f"run {run_id!r} not found")
        attempts, status, last = int(row[0]), RunStatus(row[1]), row[2]
        ended = status.terminal and last in _TERMINAL_EVENT_TYPES
        if attempt is not None and attempts != attempt:
            raise Superseded(
                f"attempt {attempt} of run {run_id!r} was superseded by attempt {attempts}:"
                " it may not write any more",
                hint="nothing to do: the newer attempt carries the run on",
            )
        if attempt is not None and status.terminal:
            raise Superseded(
                f"run {run_id!r} is {status.value}: attempt {attempt} may not write any more",
                hint="nothing to do: the run has ended",
            )
        if ended:
            raise Conflict(
                f"run {run_id!r} has ended ({last}): no event may follow its terminal event",
                hint="retry the run (runs retry) to give it another attempt",
            )

    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def create_org(self, org_id: str, name: str) -> Org:
        try:
            self._exec(
                "INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)",
                (org_id, name, utcnow()),
            )
        except Conflict:
            raise Conflict(f"org {org_id!r} already exists") from None
        return self.get_org(org_id)

    def list_orgs(self, *, limit: int = 50, cursor: str | None = None) -> Page[Org]:
        """By id: org ids are chosen by people, so there is no time order to follow."""
        limit = check_limit(limit)
        sql, params = "SELECT id, name, created_at FROM orgs", []
        if cursor is not None:
            sql += " WHERE id > ?"
            params.append(cursor_key(cursor, "org"))
        rows = self._query(sql + " ORDER BY id LIMIT ?", [*params, limit + 1])
        from agent_sdk.records import Org

        return make_page([Org(r[0], r[1], r[2]) for r in rows], limit, "org", lambda o: o.id)

    def get_org(self, org_id: str) -> Org:
        row = self._one("SELECT id, name, created_at FROM orgs WHERE id = ?", (org_id,))
        if row is None:
            raise NotFound(f"org {org_id!r} not found")
        from agent_sdk.records import Org

        return Org(row[0], row[1], row[2])

    # -- per-org settings (governance policies) -------------------------------------------------
    def get_org_setting(self, org_id: str, name: str) -> Any:
        row = self._one(
            "SELECT value FROM org_settings WHERE org_id = ? AND name = ?", (org_id, name)
        )
        return None if row is None else json.loads(row[0])

    def set_org_setting(self, org_id: str, name: str, value: Any) -> None:
        self.get_org(org_id)  # NotFound for an unknown org, before any write
        if value is None:
            self._exec("DELETE FROM org_settings WHERE org_id = ? AND name = ?", (org_id, name))
            return
        self._exec(
            "INSERT INTO org_settings (org_id, name, value, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (org_id, name) DO UPDATE"
            " SET value = excluded.value, updated_at = excluded.updated_at",
            (org_id, name, json.dumps(value, separators=(",", ":")), utcnow()),
        )

    def list_org_settings(self, name: str) -> list[tuple[str, Any]]:
        rows = self._query(
            "SELECT org_id, value FROM org_settings WHERE name = ? ORDER BY org_id", (name,)
        )
        return [(str(r[0]), json.loads(r[1])) for r in rows]

    def create_session(
        self, org_id: str, session_id: str, *, metadata: dict[str, Any] | None = None
    ) -> Session:
        now = utcnow()
        try:
            self._exec(
                "INSERT INTO sessions (org_id, id, metadata, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    org_id,
                    session_id,
                    self._seal(org_id, "sessions", session_id, "metadata", dumps(metadata or {})),
                    now,
                    now,
                ),
            )
        except Conflict as exc:
            raise Conflict(f"session {session_id!r} already exists") from exc
        except NotFound as exc:
            raise NotFound(f"org {org_id!r} not found") from exc
        return Session(session_id, org_id, now, now, None, dict(metadata or {}), 0)

    def get_session(
        self, org_id: str, session_id: str, *, expiry: RunExpiry | None = None
    ) -> Session:
        sql, params = _session_select(org_id, expiry)
        row = self._one(sql + " AND s.id = ?", [*params, session_id])
        if row is None:
            raise NotFound(f"session {session_id!r} not found")
        return self._session(row)

    def list_sessions(
        self,
        org_id: str,
        *,
        limit: int = 50,
        cursor: str | None = None,
        expiry: RunExpiry | None = None,
    ) -> Page[Session]:
        # Keyed on (created_at, id): session ids may be chosen by callers and need not sort by
        # time. The row-value comparison is a range on the (org_id, created_at, id) index.
        limit = check_limit(limit)
        sql, params = _session_select(org_id, expiry)
        if cursor is not None:
            created_at, _, session_id = cursor_key(cursor, "session").partition(" ")
            sql += " AND (s.created_at, s.id) < (?, ?)"
            params += [created_at, session_id]
        sql += " ORDER BY s.created_at DESC, s.id DESC LIMIT ?"
        rows = self._query(sql, [*params, limit + 1])
        return make_page(
            [self._session(r) for r in rows],
            limit,
            "session",
            lambda s: f"{s.created_at} {s.id}",
        )

    def insert_run(self, run: Run) -> Run:
        status = parse_status(run.status)
        row = run.to_dict() | {
            "status": status.value,
            "agent_spec": dumps_opt(run.agent_spec),
            "error": dumps_opt(run.error),
            "usage": dumps(run.usage),
            "metadata": dumps(run.metadata),
            "cancel_requested": int(run.cancel_requested),
        }
        try:
            # Sealed before the insert's own errors are translated: an org whose keys were
            # destroyed is a Conflict of its own, not an "already exists".
            row = self._sealed_run_row(row)
        except NotFound as exc:
            raise NotFound(f"org {run.org_id!r} not found") from exc
        try:
            with self.transaction():
                if run.session_id is not None:
                    # Sessions are keyed by (org_id, id), so an id used by another org is simply
                    # a different session: nothing about the other org is revealed or touched.
                    now = utcnow()
                    self._exec(
                        "INSERT INTO sessions (org_id, id, project_id, created_at, updated_at)"
                        " VALUES (?, ?, ?, ?, ?)"
                        " ON CONFLICT (org_id, id) DO UPDATE SET updated_at = excluded.updated_at",
                        (run.org_id, run.session_id, run.project_id, now, now),
                    )
                self._exec(
                    f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({_RUN_PLACEHOLDERS})",
                    [row[name] for name in RUN_FIELDS],
                )
        except Conflict as exc:
            raise Conflict(f"run {run.id!r} already exists") from exc
        except NotFound as exc:
            raise NotFound(f"org {run.org_id!r} not found") from exc
        return run if run.status is status else dataclasses.replace(run, status=status)

    def get_run(self, org_id: str, run_id: str) -> Run:
        row = self._one(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ? AND org_id = ?", (run_id, org_id)
        )
        if row is None:
            raise NotFound(f"run {run_id!r} not found")
        return self._run(row)

    def watch_runs(
        self, attempts: Sequence[tuple[str, str, int]], *, touch: bool = False
    ) -> dict[tuple[str, str], tuple[int, bool]]:
        found: dict[tuple[str, str], tuple[int, bool]] = {}
        keys = list(attempts)
        for at in range(0, len(keys), _WATCH_CHUNK):
            chunk = keys[at : at + _WATCH_CHUNK]
            ids = [run_id for _, run_id, _ in chunk]
            marks = ", ".join("?" * len(chunk))
            if touch:
                fence = " OR ".join(["(id = ? AND org_id = ? AND attempts = ?)"] * len(chunk))
                params: list[Any] = [utcnow(), RunStatus.RUNNING.value]
                for org_id, run_id, attempt in chunk:
                    params += [run_id, org_id, attempt]
                self._exec(f"UPDATE runs SET updated_at = ? WHERE status = ? AND ({fence})", params)
            rows = self._query(
                f"SELECT org_id, id, attempts, cancel_requested FROM runs WHERE id IN ({marks})",
                ids,
            )
            asked = {(org_id, run_id) for org_id, run_id, _ in chunk}
            for org_id, run_id, attempt, cancel in rows:
                if (org_id, run_id) in asked:  # run ids are unique; the org must match too
                    found[(org_id, run_id)] = (int(attempt), bool(cancel))
        return found

    def _run_changes(
        self, org_id: str, run_id: str, fields: dict[str, Any]
    ) -> tuple[str, list[Any]]:
        """The SET clause of update_run for ``fields`` (updated_at included) and its
        parameters, the tenant columns sealed. InvalidInput for a field that is not updatable."""
        unknown = sorted(set(fields) - _UPDATABLE)
        if unknown:
            raise InvalidInput(
                f"cannot update run field(s) {', '.join(unknown)}",
                hint="updatable: " + ", ".join(sorted(_UPDATABLE)),
            )
        # Column names come from _UPDATABLE only, never from the caller's text.
        sets = ", ".join([f"{name} = ?" for name in fields] + ["updated_at = ?"])
        params = [
            self._run_value(org_id, run_id, name, column_value(name, value))
            for name, value in fields.items()
        ]
        return sets, [*params, utcnow()]

    def prune_events(self, org_id: str, run_id: str, *, keep: int) -> int:
        if keep < 0:
            raise InvalidInput("keep must be >= 0")
        with self.transaction():
            self._require_run(org_id, run_id, lock=True)
            # One range delete on the (run_id, seq) primary key, below the newest `keep`.
            return self._exec(
                "DELETE FROM events WHERE run_id = ? AND seq <= "
                "(SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id = ?) - ?",
                (run_id, run_id, keep),
            )

    if TYPE_CHECKING:  # each engine appends in its own way (sqlite.py, postgres.py)

        def append_event(
            self,
            org_id: str,
            run_id: str,
            type: str,
            data: dict[str, Any],
            *,
            time: str | None = None,
            attempt: int | None = None,
        ) -> Event: ...

    def append_events(
        self,
        org_id: str,
        run_id: str,
        events: Sequence[tuple[str, dict[str, Any]]],
        *,
        attempt: int | None = None,
    ) -> list[Event]:
        # One transaction of the engine's own appends: on SQLite the commit is most of an
        # append's cost; on Postgres the first append takes the run's row lock for the rest.
        if not events:
            return []
        with self.transaction():
            return [self.append_event(org_id, run_id, t, d, attempt=attempt) for t, d in events]

    def list_events(
        self, org_id: str, run_id: str, *, after: int = 0, limit: int = 1000
    ) -> list[Event]:
        limit = check_limit(limit)
        if after < 0:
            raise InvalidInput("after must be 0 or a seq")
        rows = self._query(
            "SELECT seq, type, time, data FROM events"
            " WHERE run_id = ? AND seq > ? AND org_id = ? ORDER BY seq LIMIT ?",
            (run_id, after, org_id, limit),
        )
        if not rows:
            # Only an empty page is ambiguous (no events yet, or not this org's run).
            self._require_run(org_id, run_id)
        return [self._event(org_id, run_id, r) for r in rows]

    def iter_events(self, org_id: str, run_id: str, *, after: int = 0) -> Iterator[Event]:
        """A generator: NotFound surfaces on the first ``next()``."""
        while True:
            page = self.list_events(org_id, run_id, after=after, limit=MAX_LIMIT)
            yield from page
            if len(page) < MAX_LIMIT:
                return
            after = page[-1].seq

    # -- erasure -------------------------------------------------------------------------------
    # What a run leaves in the database: its row (input, output, error, usage), its events (model
    # responses, tool calls with their results, usage per step) and the Idempotency-Key claims
    # whose stored answer is the run (input included). Erasure deletes all three, children first
    # so every count is exact, in one transaction. Audit records stay: they never hold content.

    # Postgres: lock the rows first, so an append or update of the run racing the erasure
    # waits for it and then finds nothing (SQLite's BEGIN IMMEDIATE already serialises writers).
    _LOCK_FOR_DELETE = ""

    def delete_run(self, org_id: str, run_id: str) -> Deletion:
        with self.transaction():
            found = self._one(
                f"SELECT 1 FROM runs WHERE id = ? AND org_id = ?{self._LOCK_FOR_DELETE}",
                (run_id, org_id),
            )
            if found is None:
                raise NotFound(f"run {run_id!r} not found")
            counts = self._erase_runs(org_id, "id = ?", run_id)
        return Deletion("run", run_id, org_id, **counts)

    def delete_session(self, org_id: str, session_id: str) -> Deletion:
        lock = self._LOCK_FOR_DELETE
        with self.transaction():
            # The session row first: a run being added to it waits (its upsert touches the row),
            # so the runs read next are all there are.
            found = self._one(
                f"SELECT 1 FROM sessions WHERE org_id = ? AND id = ?{lock}", (org_id, session_id)
            )
            if found is None:
                raise NotFound(f"session {session_id!r} not found")
            if lock:
                self._query(
                    f"SELECT id FROM runs WHERE org_id = ? AND session_id = ? ORDER BY id{lock}",
                    (org_id, session_id),
                )
            counts = self._erase_runs(org_id, "session_id = ?", session_id)
            sessions = self._exec(
                "DELETE FROM sessions WHERE org_id = ? AND id = ?", (org_id, session_id)
            )
        return Deletion("session", session_id, org_id, sessions=sessions, **counts)

    def _erase_runs(self, org_id: str, where: str, value: str) -> dict[str, int]:
        """Delete the org's runs matching ``where`` (a fixed condition with one placeholder,
        never caller text) with everything keyed by them; return the counts."""
        runs = f"SELECT id FROM runs WHERE org_id = ? AND {where}"
        keys = self._exec(
            f"DELETE FROM idempotency_keys WHERE org_id = ? AND run_id IN ({runs})",
            (org_id, org_id, value),
        )
        events = self._exec(f"DELETE FROM events WHERE run_id IN ({runs})", (org_id, value))
        deleted = self._exec(f"DELETE FROM runs WHERE org_id = ? AND {where}", (org_id, value))
        return {"runs": deleted, "events": events, "idempotency_keys": keys}
