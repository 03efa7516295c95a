"""The SQLite store: the embedded default, good for one machine with many threads and processes.

How it stays correct under concurrency:

* WAL journal, so readers never block the writer and the writer never blocks readers.
* Writers open ``BEGIN IMMEDIATE``: they take the write lock before reading, so two writers
  queue up on the busy timeout instead of both reading and then failing to upgrade (a deferred
  transaction that has read a stale snapshot gets SQLITE_BUSY at once, without waiting).
* Waiting for the write lock is ours, not SQLite's: connections have a busy timeout of 0 and a
  statement that finds the database busy is run again after naps of 20 us to 1 ms, for up to
  ``busy_timeout`` (:mod:`agent_sdk.sqlite_busy`; SQLite's handler sleeps 1 ms and more at once,
  far longer than the transactions it waits for).
* One connection per thread: a sqlite3 connection carries one transaction, so sharing it would
  mix up threads' transactions. Connections are opened in autocommit mode (``isolation_level``
  None) and transactions are managed here, not by the driver's implicit BEGINs.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from agent_sdk.errors import (
    AgentSDKError,
    BackendUnavailable,
    ConfigError,
    Conflict,
    InvalidInput,
    NotFound,
)
from agent_sdk.ids import id_floor, parse_time, utcnow
from agent_sdk.masking import mask_url
from agent_sdk.private_files import ensure_private_dir, ensure_private_file
from agent_sdk.records import Event
from agent_sdk.sqlite_busy import retry_busy
from agent_sdk.store._driver_errors import noted, unexpected, unstorable
from agent_sdk.store._rows import (
    MAX_LIMIT,
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
from agent_sdk.store.retention import RetentionMixin, visible_runs_sql

if TYPE_CHECKING:
    from agent_sdk.records import MigrationState, Org, Page, Run, RunExpiry, RunStatus
    from agent_sdk.store.pg_notify import EventSink

T = TypeVar("T")

# How long an erasure's WAL checkpoint may wait for readers (see SQLiteStore.purge_deleted).
PURGE_TIMEOUT = 0.5

# A connection must never be used on both sides of a fork(): the child would share the parent's
# locks and WAL index. Each connection remembers the generation it was opened in.
_fork_generation = 0


def _after_fork() -> None:
    global _fork_generation
    _fork_generation += 1


os.register_at_fork(after_in_child=_after_fork)


class _Conn:
    """One thread's connection and how deep it is in ``transaction()``."""

    __slots__ = ("db", "depth", "generation", "__weakref__")

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.depth = 0
        self.generation = _fork_generation

    def __del__(self) -> None:
        # Runs when the owning thread ends and its threading.local slot is dropped.
        with contextlib.suppress(Exception):
            self.db.close()


class SQLiteStore(
    SQLKeyQueries,
    SQLAuditQueries,
    SQLIdempotencyQueries,
    SQLWorkerQueries,
    SQLSchema,
    RetentionMixin,
    SQLStore,
):
    scheme: ClassVar[str] = "sqlite"
    pushes_events: ClassVar[bool] = False  # other processes' events are found by polling
    purges_deleted: ClassVar[bool] = True  # the WAL keeps deleted rows until a checkpoint

    MIGRATIONS = "agent_sdk.store.migrations"
    _HAS_MIGRATIONS_TABLE = (
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    )

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path).expanduser()
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: weakref.WeakSet[_Conn] = weakref.WeakSet()
        self._closed = False
        try:
            # Private from the start: the directory 0700, the file 0600 (SQLite gives its -wal
            # and -shm files the database file's mode).
            ensure_private_dir(self.path.parent)
            ensure_private_file(self.path)
        except OSError as exc:
            raise BackendUnavailable(
                f"cannot create the directory of SQLite database {self.path}: {exc.strerror}",
                hint="set AGENT_SDK_DATABASE_URL to a writable location",
            ) from exc
        self._conn()  # open now, so a bad path fails here rather than on first use

    @classmethod
    def from_url(cls, url: str, *, busy_timeout: float = 5.0) -> SQLiteStore:
        """``sqlite:///relative.db`` or ``sqlite:////absolute/path.db``."""
        prefix = "sqlite:///"
        path = url[len(prefix) :] if url.startswith(prefix) else ""
        hint = "use sqlite:///relative/path.db or sqlite:////absolute/path.db"
        if not path:
            raise ConfigError(f"not a SQLite database URL: {mask_url(url)!r}", hint=hint)
        if path == ":memory:":
            # Every thread has its own connection, and so would get its own empty database.
            raise ConfigError("in-memory SQLite databases are not supported", hint=hint)
        return cls(path, busy_timeout=busy_timeout)

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- connections, errors, transactions -----------------------------------------------------
    def _conn(self) -> _Conn:
        conn: _Conn | None = getattr(self._local, "conn", None)
        if conn is not None and conn.generation == _fork_generation:
            return conn
        if self._closed:
            raise BackendUnavailable(f"the store of {self.path} is closed")
        conn = _Conn(self._connect())
        self._local.conn = conn
        with self._lock:
            self._conns.add(conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            # Busy timeout 0: a busy statement is retried by retry_busy (see the module's notes).
            db = sqlite3.connect(
                self.path, timeout=0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            db.row_factory = sqlite3.Row
            db.text_factory = _text
            pragmas = (
                "PRAGMA journal_mode=WAL",
                # NORMAL in WAL mode never corrupts; a power loss can lose only the last commits.
                "PRAGMA synchronous=NORMAL",
                "PRAGMA foreign_keys=ON",
                # Deleted content is overwritten with zeros, not left in free pages and cells
                # where a copy of the file would still show it (erasure, retention). It costs
                # writes only when space is freed; bench/deletion.py measures it.
                "PRAGMA secure_delete=ON",
            )
            for pragma in pragmas:
                retry_busy(lambda: db.execute(pragma), self.busy_timeout)  # noqa: B023
        except sqlite3.Error as exc:
            db.close()
            raise self._error(exc) from exc
        return db

    def _error(self, exc: Exception) -> AgentSDKError:
        if not isinstance(exc, sqlite3.Error):  # a str or int the driver cannot bind
            return unstorable(exc)
        return _translate(exc, self._label(), self.busy_timeout)

    def _label(self) -> str:
        return f"SQLite database {self.path}"

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            db = self._conn().db
            rows: list[sqlite3.Row] = retry_busy(
                lambda: db.execute(sql, params).fetchall(), self.busy_timeout
            )
        except (sqlite3.Error, UnicodeEncodeError, OverflowError) as exc:
            raise self._error(exc) from exc
        return rows

    def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = self._query(sql, params)
        return rows[0] if rows else None

    def _exec(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        try:
            db = self._conn().db
            return retry_busy(lambda: db.execute(sql, params).rowcount, self.busy_timeout)
        except (sqlite3.Error, UnicodeEncodeError, OverflowError) as exc:
            raise self._error(exc) from exc

    def _in_transaction(self) -> bool:
        return self._conn().depth > 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction; nested calls join the outer one and only it commits.

        An exception that leaves the outermost block rolls everything back. An inner block has no
        savepoint: if its caller swallows the exception, the outer block commits what ran.
        """
        conn = self._conn()
        if conn.depth:
            conn.depth += 1
            try:
                yield
            finally:
                conn.depth -= 1
            return
        self._exec("BEGIN IMMEDIATE")
        conn.depth = 1
        try:
            yield
        except BaseException:
            conn.depth = 0
            if conn.db.in_transaction:  # SQLite already rolled back after some errors
                with contextlib.suppress(sqlite3.Error):
                    conn.db.execute("ROLLBACK")
            raise
        conn.depth = 0
        try:
            retry_busy(lambda: conn.db.execute("COMMIT"), self.busy_timeout)
        except sqlite3.Error as exc:
            if conn.db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.db.execute("ROLLBACK")
            raise self._error(exc) from exc

    # -- lifecycle -------------------------------------------------------------------------------
    def migrate(self) -> list[MigrationState]:
        if self._conn().depth:
            raise Conflict("migrate() cannot run inside a transaction")
        applied = self._applied()
        pending = [m for m in self._migrations() if m.version not in applied]
        if not pending:  # the common case on every start: stay read-only
            return []
        self._exec(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        from agent_sdk.records import MigrationState  # only when a migration is due

        done: list[MigrationState] = []
        for m in pending:
            with self.transaction():
                # Another process may have applied it since we looked; the write lock is ours now.
                if self._one("SELECT 1 FROM schema_migrations WHERE version = ?", (m.version,)):
                    continue
                for statement in m.statements():
                    self._exec(statement)
                state = MigrationState(m.version, m.name, utcnow())
                self._exec(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (m.version, m.name, state.applied_at),
                )
            done.append(state)
        return done

    def close(self) -> None:
        self._closed = True
        with self._lock:
            conns = list(self._conns)
            self._conns.clear()
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.db.close()
        self._local = threading.local()

    def listen_events(self, sink: EventSink) -> None:
        """No notification crosses SQLite processes: readers poll."""
        return None

    def purge_deleted(self, *, timeout: float = PURGE_TIMEOUT) -> bool:
        """Copy the WAL into the database file and truncate it, so what was just deleted (zeroed
        by secure_delete) no longer survives in the ``-wal`` file either. An optional store
        capability, called after an erasure commits. Best effort: it waits at most ``timeout``
        seconds for readers, since writers queue behind it meanwhile, and returns False when
        it could not finish (the next full checkpoint then does it)."""
        conn = self._conn()
        if conn.depth:
            return False  # inside a transaction: the caller's erasure has not committed yet
        db = conn.db
        try:
            db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            try:
                busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                db.execute("PRAGMA busy_timeout = 0")  # waiting is retry_busy's again
        except sqlite3.Error:
            return False
        return not busy

    # -- meta ----------------------------------------------------------------------------------
    def set_meta(self, key: str, value: str, *, only_if_absent: bool = False) -> bool:
        # INSERT OR IGNORE settles who won in one statement: when several processes race to set
        # a first value (an instance id, a generated secret), exactly one insert lands and every
        # other caller learns that it lost, and keeps the winner's value.
        verb = "INSERT OR IGNORE" if only_if_absent else "INSERT OR REPLACE"
        return self._exec(f"{verb} INTO meta (key, value) VALUES (?, ?)", (key, value)) == 1

    # -- orgs ----------------------------------------------------------------------------------
    def ensure_org(self, org_id: str, name: str | None = None) -> Org:
        """Create the org if missing; an existing org is returned unchanged (name included)."""
        with self.transaction():
            self._exec(
                "INSERT OR IGNORE INTO orgs (id, name, created_at) VALUES (?, ?, ?)",
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
        """An empty ``status`` means no status filter, like None."""
        limit = check_limit(limit)
        before = cursor_key(cursor, "run") if cursor is not None else None
        # Run ids begin with their creation time: a lower bound on the id is a lower bound on
        # the time, served by the same (org_id, status, id) range as the keyset.
        floor = id_floor("run", parse_time(created_after)) if created_after is not None else None
        sql, params = self._runs_query(
            org_id, parse_statuses(status), session_id, before, limit + 1, floor, expiry
        )
        return make_page(
            [self._run(r) for r in self._query(sql, params)], limit, "run", lambda r: r.id
        )

    def _runs_query(
        self,
        org_id: str,
        statuses: list[str],
        session_id: str | None,
        before: str | None,
        limit: int,
        floor: str | None = None,
        expiry: RunExpiry | None = None,
    ) -> tuple[str, list[Any]]:
        keyset, tail = (" AND id < ?", [before]) if before is not None else ("", [])
        if floor is not None:
            keyset, tail = keyset + " AND id >= ?", [*tail, floor]
        if expiry:
            kept, kept_params = visible_runs_sql(expiry, statuses)
            keyset, tail = keyset + kept, [*tail, *kept_params]
        params: list[Any] = [org_id]
        if session_id is not None or len(statuses) <= 1:
            where = "org_id = ?"
            if session_id is not None:
                where += " AND session_id = ?"
                params.append(session_id)
            if statuses:
                where += f" AND status IN ({', '.join('?' * len(statuses))})"
                params += statuses
            sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE {where}{keyset} ORDER BY id DESC LIMIT ?"
            return sql, [*params, *tail, limit]
        # Several statuses: an IN list over (org_id, status, id) gives one ordered range per
        # status, and SQLite would sort their whole union. Taking the newest `limit` rows of
        # each range and merging them bounds the work by len(statuses) * limit instead.
        arm = (
            f"SELECT * FROM (SELECT {RUN_COLUMNS} FROM runs"
            f" WHERE org_id = ? AND status = ?{keyset} ORDER BY id DESC LIMIT ?)"
        )
        sql = " UNION ALL ".join([arm] * len(statuses)) + " ORDER BY id DESC LIMIT ?"
        params = [v for s in statuses for v in (org_id, s, *tail, limit)]
        return sql, [*params, limit]

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
            expected = parse_statuses(expect_status, empty_means_all=False)
            where += f" AND status IN ({', '.join('?' * len(expected))})"
            params += expected
        if expect_attempts is not None:
            where += " AND attempts = ?"
            params.append(expect_attempts)
        with self.transaction():
            row = self._one(f"UPDATE runs SET {sets} WHERE {where} RETURNING {RUN_COLUMNS}", params)
            if row is None:
                self._require_run(org_id, run_id)
                return None
            return self._run(row)

    def _require_run(self, org_id: str, run_id: str, *, lock: bool = False) -> None:
        # No row lock here: a transaction's BEGIN IMMEDIATE already holds the write lock.
        if self._one("SELECT 1 FROM runs WHERE id = ? AND org_id = ?", (run_id, org_id)) is None:
            raise NotFound(f"run {run_id!r} not found")

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
        guard, guard_params = append_guard(attempt)
        with self.transaction():
            # One statement: the SELECT checks the run's org, the fence (see _sql.append_guard)
            # and finds the last seq with one seek at the end of the run's PK range; BEGIN
            # IMMEDIATE's write lock makes it race-free.
            row = self._one(
                "INSERT INTO events (run_id, seq, org_id, type, time, data)"
                " SELECT ?, (SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id = ?) + 1,"
                f" ?, ?, ?, ? FROM runs r WHERE r.id = ? AND r.org_id = ?{guard} RETURNING seq",
                (run_id, run_id, org_id, type, when, payload, run_id, org_id, *guard_params),
            )
            if row is None:
                self._refuse_append(org_id, run_id, attempt)  # raises: the lock is still held
                raise NotFound(f"run {run_id!r} not found")
            seq: int = row[0]
        return Event(run_id, seq, type, when, data)


def _text(raw: bytes) -> str:
    """A TEXT value as a str, whatever its bytes. SQLite does not check that text is UTF-8, so a
    row written around this store (raw SQL, another program, an old bug) can hold bytes that are
    not, a lone surrogate's for one; the driver's own decoding then failed the whole query, and a
    listing of the org with it. Such bytes read as U+FFFD. A Python function costs ~0.1 us per
    value over the driver's own decoding: ~2 ms on a page of 1,000 runs."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace")


def _translate(exc: sqlite3.Error, db: str, busy_timeout: float) -> AgentSDKError:
    # Messages of our own: the driver's text stays in the log (see store._driver_errors).
    text = str(exc)
    low = text.lower()
    noted(exc)
    if isinstance(exc, sqlite3.IntegrityError):
        if "unique" in low or "primary key" in low:
            return Conflict("already exists")
        if "foreign key" in low:
            return NotFound("a referenced record does not exist")
        return InvalidInput("a value was rejected by the database's constraints")
    if "locked" in low or "busy" in low:
        return BackendUnavailable(
            f"{db} is locked: another connection kept it busy for over {busy_timeout:g}s",
            hint="retry, stop the process holding it, or raise AGENT_SDK_SQLITE_BUSY_TIMEOUT",
        )
    if "unable to open" in low:
        hint = "check the path and that its directory is writable"
        return BackendUnavailable(f"cannot open {db}", hint=hint)
    if "readonly" in low or "read-only" in low:
        hint = "check permissions of the file, its -wal and -shm files and its directory"
        return BackendUnavailable(f"{db} is read-only", hint=hint)
    if "no such table" in low or "no such column" in low:
        return Conflict(f"{db} is not migrated", hint="run `agent-sdk db migrate`")
    if isinstance(exc, sqlite3.DataError):
        return InvalidInput("a value was rejected by the database")
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError) and any(
        word in low for word in _OUTAGE_WORDS
    ):
        # Disk I/O errors, a full disk, "file is not a database", a malformed image: the state
        # of the file, which its operator needs to read.
        return BackendUnavailable(f"{db}: {text}", hint="check the disk and the file")
    return unexpected(db, exc)  # a bug here (a statement SQLite refused), not an outage


_OUTAGE_WORDS = ("disk", "full", "not a database", "malformed", "corrupt", "i/o", "interrupt")


__all__ = ["MAX_LIMIT", "SQLiteStore"]
