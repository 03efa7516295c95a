"""The Postgres store: many servers and workers on one database (``postgresql://...``).

How it stays correct under concurrency, where the SQLite store relies on its single writer:

* A ``psycopg_pool.ConnectionPool`` of autocommit connections. A statement outside
  ``transaction()`` borrows a connection for itself; the outermost ``transaction()`` of a thread
  checks one out and keeps it in a thread-local slot, so nested calls (and every statement in
  between) join it, like the SQLite store's one-connection-per-thread.
* READ COMMITTED, with explicit locks where SQLite's ``BEGIN IMMEDIATE`` made a read-then-write
  safe: appending an event inside a transaction locks the run row (``FOR NO KEY UPDATE``) before
  reading MAX(seq), unless the transaction already holds it; a lone append is one statement
  whose seq the primary key arbitrates (see :meth:`PostgresStore.append_event`);
  appending an audit record takes a transaction-scoped advisory lock on the org; rotation reads
  the key ``FOR UPDATE``; an Idempotency-Key claim is one upsert (the loser waits on the winner's
  uncommitted row, then sees it).
* Migrations run under a session advisory lock, so two processes migrating at once apply each
  file once.
* Appending an event also NOTIFYs the processes whose readers follow runs, so they need not
  poll: see :mod:`agent_sdk.store.pg_notify` and :meth:`PostgresStore.listen_events`. The
  notification goes in a transaction of its own right after the commit of the event. Not in
  the event's own transaction: Postgres holds one lock for the whole database from a notifying
  transaction's commit until its log is on disk, so notifying commits would wait for each
  other's disk flush instead of sharing one.

* Outages: once a call found the database unreachable, the next ones wait at most
  ``UNREACHABLE_WAIT`` seconds for a pooled connection instead of the whole connect timeout,
  until one gets a connection again. A server then answers 503 at once and a worker's loop is
  not held up for seconds by each call; the pool keeps reconnecting in the background. The
  pool's own warnings (one per reconnect try) are left out of the log: the store's callers
  report the outage once when it starts and once when it ends.

psycopg is imported inside this module only when a Postgres store is opened.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from agent_sdk.errors import BackendUnavailable, ConfigError, Conflict, NotFound
from agent_sdk.ids import id_floor, parse_time, utcnow
from agent_sdk.masking import mask_url, scrub, url_secrets
from agent_sdk.records import Event, MigrationState, Org, Page, Run, RunExpiry, RunStatus
from agent_sdk.store._rows import (
    check_limit,
    cursor_key,
    dumps,
    make_page,
    parse_statuses,
)
from agent_sdk.store._sql import RUN_COLUMNS, SQLStore, append_guard
from agent_sdk.store._sql_audit import SQLAuditQueries
from agent_sdk.store._sql_mixins import SQLIdempotencyQueries, SQLKeyQueries, SQLWorkerQueries
from agent_sdk.store._sql_schema import SQLSchema
from agent_sdk.store.pg_notify import CHANNEL_SQL, EventSink, NotifyListener, payload_run_id
from agent_sdk.store.postgres_mixins import PostgresLocks, translate
from agent_sdk.store.retention import RetentionMixin, visible_runs_sql

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

# Seconds a call waits for a pooled connection while the database is known to be unreachable.
UNREACHABLE_WAIT = 0.5
# Keys of pg_advisory_lock(int, int): the first names what is locked, the second which one.
_LOCK_MIGRATE = 0x61676D  # "agm"

log = logging.getLogger(__name__)

_INSTALL_HINT = "pip install 'agent-sdk[postgres]'"


class _Local(threading.local):
    conn: psycopg.Connection[Any] | None = None
    depth: int = 0

    def __init__(self) -> None:  # runs once per thread
        # Runs (org_id, run_id) whose row the current transaction has locked or inserted: its
        # appends need not lock the row again (one round trip less per event).
        self.locked: set[tuple[str, str]] = set()
        # Notifications ("<seq> <run id>") of the events the current transaction appended, sent
        # once it has committed.
        self.notes: list[str] = []
        self.begun = False  # whether the current transaction's BEGIN has been sent
        # Statements (and their parameters) whose results nobody reads, held back to share the
        # round trip of the transaction's next statement: its BEGIN, an advisory lock.
        self.ahead: list[tuple[str, Sequence[Any]]] = []


@functools.lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    """The shared queries (store/_sql.py) use ``?``; psycopg wants ``%s``. Our own queries here
    already use ``%s``, and no query of ours has a literal ``?`` or ``%``."""
    return sql.replace("?", "%s") if "?" in sql else sql


class PostgresStore(
    PostgresLocks,
    SQLKeyQueries,
    SQLAuditQueries,
    SQLIdempotencyQueries,
    SQLWorkerQueries,
    SQLSchema,
    RetentionMixin,
    SQLStore,
):
    scheme: ClassVar[str] = "postgresql"
    pushes_events: ClassVar[bool] = True  # LISTEN/NOTIFY, unless opened with notify=False
    purges_deleted: ClassVar[bool] = False  # a deleted row's space is vacuumed by the server

    MIGRATIONS = "agent_sdk.store.migrations.postgres"
    _HAS_MIGRATIONS_TABLE = "SELECT to_regclass('schema_migrations') IS NOT NULL"
    _LOCK_FOR_DELETE = " FOR UPDATE"  # erasure locks the rows first (see SQLStore.delete_run)

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 10.0,
        notify: bool = True,
    ) -> None:
        try:
            import psycopg  # noqa: F401
            from psycopg_pool import ConnectionPool, PoolTimeout
        except ImportError as exc:
            raise ConfigError(
                "the Postgres store needs the psycopg package", hint=_INSTALL_HINT
            ) from exc
        self.url = url
        self.display_url = mask_url(url)
        self._local = _Local()
        # Libpq accepts postgres:// and postgresql:// but not a "+driver" suffix.
        conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
        # Whether appended events are announced with NOTIFY (and listen_events() is offered).
        self.notify = notify
        self._conninfo, self._connect_timeout = conninfo, connect_timeout
        self._unreachable = False  # the last call could not reach the database
        self._probe(conninfo, connect_timeout)
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
        self._pool: ConnectionPool[Any] = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True},
            timeout=connect_timeout,
            open=False,
            name="agent-sdk-store",
        )
        try:
            # Open now, so a bad URL or a missing server fails here rather than on first use.
            self._pool.open(wait=True, timeout=connect_timeout)
        except PoolTimeout as exc:
            self._pool.close()
            raise self._unavailable(exc) from None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresStore:
        """``postgresql://user:password@host:5432/db?options=...`` (or ``postgres://``)."""
        if not url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            raise ConfigError(
                f"not a Postgres database URL: {mask_url(url)!r}",
                hint="use postgresql://user:password@host:5432/database",
            )
        known = {"min_size", "max_size", "connect_timeout", "notify"}
        return cls(url, **{k: v for k, v in options.items() if k in known})

    def __repr__(self) -> str:
        return f"PostgresStore({self.display_url!r})"

    # -- connections, errors, transactions -----------------------------------------------------
    def _probe(self, conninfo: str, timeout: float) -> None:
        """One direct connection first: a refused or unknown server fails at once with libpq's
        own reason, instead of the pool retrying (and logging) until its timeout."""
        import psycopg

        try:
            psycopg.connect(conninfo, connect_timeout=max(1, round(timeout))).close()
        except psycopg.Error as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: BaseException) -> BackendUnavailable:
        # libpq's messages run over several lines; the last non-empty one says why.
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if "failed:" in line), None) or (
            lines[0] if lines else type(exc).__name__
        )
        return BackendUnavailable(
            f"cannot reach Postgres at {self.display_url}: {scrub(reason, url_secrets(self.url))}",
            hint="check AGENT_SDK_DATABASE_URL and that the server is running",
        )

    def _error(self, exc: Exception) -> Exception:
        from psycopg_pool import PoolTimeout

        error = (
            self._unavailable(exc)
            if isinstance(exc, PoolTimeout)
            else translate(exc, self._label())
        )
        if isinstance(error, BackendUnavailable):
            self._unreachable = True
        return error

    def _label(self) -> str:
        return f"Postgres at {self.display_url}"

    def _wait(self) -> float:
        """How long a call waits for a pooled connection (see the module's docstring)."""
        return UNREACHABLE_WAIT if self._unreachable else self._connect_timeout

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self._local.conn
        if conn is not None:
            yield conn
            return
        if self._pool.closed:
            raise BackendUnavailable(f"the store of {self.display_url} is closed")
        try:
            with self._pool.connection(timeout=self._wait()) as pooled:
                self._unreachable = False
                yield pooled
        except Exception as exc:
            if _is_driver_error(exc):
                raise self._error(exc) from exc
            raise

    def _query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        with self._connection() as conn:
            try:
                cur = self._execute(conn, sql, params)
                return cur.fetchall() if cur.description else []
            except Exception as exc:
                if _is_driver_error(exc):
                    raise self._error(exc) from exc
                raise

    def _one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        rows = self._query(sql, params)
        return rows[0] if rows else None

    def _exec(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        with self._connection() as conn:
            try:
                rowcount: int = self._execute(conn, sql, params).rowcount
            except Exception as exc:
                if _is_driver_error(exc):
                    raise self._error(exc) from exc
                raise
        return rowcount

    def _execute(
        self, conn: psycopg.Connection[Any], sql: str, params: Sequence[Any] | dict[str, Any]
    ) -> psycopg.Cursor[Any]:
        local = self._local
        if conn is not local.conn or not local.ahead:
            return conn.execute(_placeholders(sql), params or None)
        # What waits for this statement (see _Local.ahead) goes in the same round trip, in order.
        ahead, local.ahead, local.begun = local.ahead, [], True
        with conn.pipeline():
            for text, args in ahead:
                conn.execute(text, args or None)
            cur = conn.execute(_placeholders(sql), params or None)
        return cur

    def _exec_ahead(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run ``sql``, whose result nobody reads, just before the transaction's next statement
        and in its round trip (at once outside a transaction). Its error, if any, comes from
        that statement, or from the commit when none follows."""
        if self._in_transaction():
            self._local.ahead.append((_placeholders(sql), params))
        else:
            self._exec(sql, params)

    def _in_transaction(self) -> bool:
        return self._local.depth > 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A transaction on one pooled connection; nested calls join the outer one and only it
        commits. An exception that leaves the outermost block rolls everything back; an inner
        block has no savepoint (as in the SQLite store)."""
        local = self._local
        if local.depth:
            local.depth += 1
            try:
                yield
            finally:
                local.depth -= 1
            return
        if self._pool.closed:
            raise BackendUnavailable(f"the store of {self.display_url} is closed")
        try:
            conn = self._pool.getconn(timeout=self._wait())
        except Exception as exc:
            raise self._error(exc) from exc
        self._unreachable = False
        try:
            # BEGIN waits for the first statement, to share its round trip (see _execute); a
            # transaction that ran none has nothing to commit.
            local.conn, local.depth, local.locked, local.notes = conn, 1, set(), []
            local.begun, local.ahead = False, [("BEGIN", ())]
            try:
                yield
            except BaseException:
                local.conn, local.depth = None, 0
                if local.begun:
                    with contextlib.suppress(Exception):
                        conn.execute("ROLLBACK")
                raise
            local.conn, local.depth = None, 0
            if not local.begun:
                return
            try:
                self._commit(conn, local.ahead, local.notes)
            except Exception as exc:
                with contextlib.suppress(Exception):
                    conn.execute("ROLLBACK")
                raise self._error(exc) from exc
        finally:
            local.conn, local.depth = None, 0
            self._pool.putconn(conn)  # a broken connection is discarded by the pool

    def _commit(
        self,
        conn: psycopg.Connection[Any],
        ahead: list[tuple[str, Sequence[Any]]],
        notes: list[str],
    ) -> None:
        """COMMIT (after the statements still held back, in its round trip), then the
        notifications of what it committed."""
        if ahead:
            with conn.pipeline():
                for text, args in ahead:
                    conn.execute(text, args or None)
                conn.execute("COMMIT")
        else:
            conn.execute("COMMIT")
        if notes:
            _notify(conn, notes)

    def _alone(self, sql: str, params: Sequence[Any], run_id: str) -> Any:
        """The first row of ``sql``, an append to ``run_id`` committed on its own, then the
        notification of the event it appended."""
        with self._connection() as conn:
            try:
                row = conn.execute(sql, params).fetchone()
            except Exception as exc:
                if _is_driver_error(exc):
                    raise self._error(exc) from exc
                raise
            if row is not None:
                _notify(conn, [f"{row[0]} {payload_run_id(run_id)}"])
            return row

    # -- lifecycle -------------------------------------------------------------------------------
    def migrate(self) -> list[MigrationState]:
        if self._in_transaction():
            raise Conflict("migrate() cannot run inside a transaction")
        applied = self._applied()
        if all(m.version in applied for m in self._migrations()):
            return []  # the common case on every start: stay read-only
        done: list[MigrationState] = []
        with self._connection() as conn:
            try:
                # Session-level lock keyed on the schema: a second process waits here, then
                # finds the versions the first one applied and skips them.
                conn.execute(
                    "SELECT pg_advisory_lock(%s, hashtext(current_schema()))", (_LOCK_MIGRATE,)
                )
                try:
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                        " name TEXT NOT NULL, applied_at TEXT NOT NULL)"
                    )
                    for m in self._migrations():
                        with conn.transaction():
                            if conn.execute(
                                "SELECT 1 FROM schema_migrations WHERE version = %s", (m.version,)
                            ).fetchone():
                                continue
                            for statement in m.statements():
                                conn.execute(statement.encode())
                            state = MigrationState(m.version, m.name, utcnow())
                            conn.execute(
                                "INSERT INTO schema_migrations (version, name, applied_at)"
                                " VALUES (%s, %s, %s)",
                                (m.version, m.name, state.applied_at),
                            )
                        done.append(state)
                finally:
                    conn.execute(
                        "SELECT pg_advisory_unlock(%s, hashtext(current_schema()))",
                        (_LOCK_MIGRATE,),
                    )
            except Exception as exc:
                if _is_driver_error(exc):
                    raise self._error(exc) from exc
                raise
        return done

    def close(self) -> None:
        self._pool.close()

    # -- meta ----------------------------------------------------------------------------------
    def set_meta(self, key: str, value: str, *, only_if_absent: bool = False) -> bool:
        # ON CONFLICT settles who won in one statement, as INSERT OR IGNORE does in SQLite.
        action = "NOTHING" if only_if_absent else "UPDATE SET value = excluded.value"
        sql = f"INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO {action}"
        return self._exec(sql, (key, value)) == 1

    # -- orgs ----------------------------------------------------------------------------------
    def ensure_org(self, org_id: str, name: str | None = None) -> Org:
        """Create the org if missing; an existing org is returned unchanged (name included)."""
        with self.transaction():
            self._exec(
                "INSERT INTO orgs (id, name, created_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                (org_id, name or org_id, utcnow()),
            )
            return self.get_org(org_id)

    # -- sessions ------------------------------------------------------------------------------
    # -- runs ----------------------------------------------------------------------------------
    def list_runs(
        self,
        org_id: str,
        *,
        status: Sequence[RunStatus] | None = None,
        session_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        created_after: str | None = None,
        expiry: RunExpiry | None = None,
    ) -> Page[Run]:
        limit = check_limit(limit)
        before = cursor_key(cursor, "run") if cursor is not None else None
        floor = id_floor("run", parse_time(created_after)) if created_after is not None else None
        where, params = "org_id = %s", list[Any]([org_id])
        if session_id is not None:
            where += " AND session_id = %s"
            params.append(session_id)
        statuses = parse_statuses(status)
        if statuses:
            # = ANY over the (org_id, status, id) index: the planner merges the ranges.
            where += " AND status = ANY(%s)"
            params.append(statuses)
        if before is not None:
            where += " AND id < %s"
            params.append(before)
        if floor is not None:
            where += " AND id >= %s"
            params.append(floor)
        if expiry:
            kept, kept_params = visible_runs_sql(expiry, statuses)
            where += kept.replace("?", "%s")
            params += kept_params
        rows = self._query(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE {where} ORDER BY id DESC LIMIT %s",
            [*params, limit + 1],
        )
        return make_page([self._run(r) for r in rows], limit, "run", lambda r: r.id)

    def update_run(
        self,
        org_id: str,
        run_id: str,
        *,
        expect_status: Sequence[RunStatus] | None = None,
        expect_attempts: int | None = None,
        **fields: Any,
    ) -> Run | None:
        sets, params = self._run_changes(org_id, run_id, fields)
        params += [run_id, org_id]
        where = "id = ? AND org_id = ?"
        if expect_status is not None:
            # Under READ COMMITTED a concurrent UPDATE waits for the first, then re-checks this
            # condition on the row it committed: exactly one compare-and-set applies.
            where += " AND status = ANY(?)"
            params.append(parse_statuses(expect_status, empty_means_all=False))
        if expect_attempts is not None:
            where += " AND attempts = ?"
            params.append(expect_attempts)
        with self.transaction():
            row = self._one(
                f"UPDATE runs SET {sets} WHERE {where} RETURNING {RUN_COLUMNS}",
                params,
            )
            if row is None:
                self._require_run(org_id, run_id)
                return None
            self._local.locked.add((org_id, run_id))  # the UPDATE holds the row lock
            return self._run(row)

    def insert_run(self, run: Run) -> Run:
        with self.transaction():
            inserted = super().insert_run(run)
            # Nobody else sees the row before commit, so nobody else can append to it.
            self._local.locked.add((run.org_id, run.id))
        return inserted

    def _require_run(self, org_id: str, run_id: str, *, lock: bool = False) -> None:
        sql = "SELECT 1 FROM runs WHERE id = %s AND org_id = %s"
        if self._one(sql + (" FOR NO KEY UPDATE" if lock else ""), (run_id, org_id)) is None:
            raise NotFound(f"run {run_id!r} not found")

    def _hold_run(self, org_id: str, run_id: str) -> None:
        """Before a sealed append inside a transaction: lock the run row as the plain append
        does, so a transaction that appends and then updates the run cannot deadlock with one
        that updates it and then appends (see agent_sdk.store.sealing)."""
        if self._in_transaction() and (org_id, run_id) not in self._local.locked:
            self._require_run(org_id, run_id, lock=True)
            self._local.locked.add((org_id, run_id))

    # -- events --------------------------------------------------------------------------------
    def append_event(
        self,
        org_id: str,
        run_id: str,
        type: str,
        data: dict[str, Any],
        *,
        time: str | None = None,
        attempt: int | None = None,
    ) -> Event:
        if self.codec is not None:  # encryption at rest: the seq is bound into the ciphertext
            return self._append_sealed(org_id, run_id, type, data, time, attempt)
        when = time or utcnow()
        payload = dumps(data)
        if not self._in_transaction():
            # Alone, one statement: MAX(seq) + 1 from its snapshot, and the primary key settles
            # a race. A concurrent append of the same seq makes this one wait for it, then do
            # nothing, so no seq can commit while a smaller one is still uncommitted (readers
            # that follow a run by seq skip nothing). It holds no lock another append waits on.
            # The fence (see _sql.append_guard) is read from the same snapshot: a takeover or a
            # terminal event committed after it holds the seq this insert computed, so the
            # insert collides and the locked path below decides again. Hence every event of an
            # attempt has a smaller seq than the run.started of the attempt that superseded it.
            guard, guard_params = append_guard(attempt)
            params = [type, when, payload, run_id, org_id, *guard_params]
            sql = _fenced_append(guard)
            row = self._alone(sql, params, run_id) if self.notify else self._one(sql, params)
            if row is not None:
                return Event(run_id, row[0], type, when, data)
            # Lost a race, refused, or no such run in this org: the locked path below tells.
        with self.transaction():
            # The row lock serialises appends that run inside transactions (and checks the
            # org); the next statement starts a new READ COMMITTED snapshot, so MAX(seq) sees
            # every append committed before the lock was granted. A row lock rather than an
            # advisory lock: a transaction that updates the run and appends takes the same lock
            # either way round, so the two orders cannot deadlock. A lone append (above) takes
            # no lock, so the insert may still lose a seq to one: it then tries the next.
            if (org_id, run_id) not in self._local.locked:
                self._require_run(org_id, run_id, lock=True)
                self._local.locked.add((org_id, run_id))
            # With the row lock held, nothing can end the run or take it over meanwhile: the
            # fence the insert checks in its own statement stays true until the commit.
            guard, guard_params = append_guard(attempt)
            params = [type, when, payload, run_id, org_id, *guard_params]
            for _ in range(_APPEND_TRIES):
                row = self._one(_fenced_append(guard), params)
                if row is not None:
                    if self.notify:
                        self._local.notes.append(f"{row[0]} {payload_run_id(run_id)}")
                    return Event(run_id, row[0], type, when, data)
                # No row: refused (this raises why), or the seq went to a lone append.
                self._refuse_append(org_id, run_id, attempt)
        raise Conflict(f"run {run_id!r}: too many concurrent event appends", hint="retry")

    def listen_events(self, sink: EventSink) -> NotifyListener | None:
        """Push every appended event's run and seq to ``sink``, from any process on this schema
        (see :mod:`agent_sdk.store.pg_notify`). None if this store was opened with
        ``notify=False``."""
        if not self.notify:
            return None
        return NotifyListener(
            self._conninfo, self.display_url, sink, connect_timeout=self._connect_timeout
        ).start()

    def purge_deleted(self, *, timeout: float = 0.5) -> bool:
        """Nothing to do: no file of ours keeps a deleted row (the server vacuums its pages)."""
        return True


@functools.lru_cache(maxsize=4)
def _fenced_append(guard: str) -> str:
    """Every append: the run's org and the fence (``guard``, see _sql.append_guard) are checked
    in the statement that inserts, with the next seq (no row: wrong org, none, refused, or the
    seq was taken meanwhile)."""
    return _placeholders(
        "INSERT INTO events (run_id, seq, org_id, type, time, data)"
        " SELECT r.id, COALESCE((SELECT MAX(e.seq) FROM events e WHERE e.run_id = r.id), 0) + 1,"
        f" r.org_id, %s, %s, %s FROM runs r WHERE r.id = %s AND r.org_id = %s{guard}"
        " ON CONFLICT (run_id, seq) DO NOTHING RETURNING seq"
    )


# Appends that lose a seq to lone appends, in a row, before giving up (each loss means another
# append of the same run committed, so this bound is never reached in practice).
_APPEND_TRIES = 100
# The notifications of committed events, in a transaction of their own (see the module's
# docstring). It need not wait for the disk: a notification lost in a crash costs a reader one
# periodic re-read, while every notifying commit holds the database-wide lock until it returns.
_NOTIFY_OFF_DISK = "set_config('synchronous_commit', 'off', true)"
_NOTIFY = f"SELECT {_NOTIFY_OFF_DISK}, pg_notify({CHANNEL_SQL}, note) FROM unnest(%s::text[]) note"


def _notify(conn: psycopg.Connection[Any], notes: list[str]) -> None:
    """Announce committed events (see the module's docstring). A failure is logged, not raised:
    the events are in, and an error would make the caller append them again; readers elsewhere
    find them at their next re-read."""
    try:
        conn.execute(_NOTIFY, (notes,))
    except Exception as exc:
        log.warning("could not notify listeners of appended events: %s", exc)


def _is_driver_error(exc: BaseException) -> bool:
    import psycopg
    from psycopg_pool import PoolTimeout

    return isinstance(exc, psycopg.Error | PoolTimeout | OverflowError | UnicodeEncodeError)


__all__ = ["PostgresStore"]
