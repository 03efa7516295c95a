"""The durable SQLite queue, in a database file of its own (``queue.db``).

Why its own file: the queue is written on every reserve, heartbeat and ack. In a separate file
those writes never wait behind the store's transactions, and the store's never behind them.

How it stays correct with many threads and processes (as the store does):

* WAL journal, ``synchronous=NORMAL``: readers never block the writer; a commit costs no fsync.
* Every write takes the write lock before it reads, so ``reserve``'s read-then-update cannot race
  another worker's: two reservers queue up on the busy timeout and the second one sees the first
  one's lease. Single-statement operations get that from autocommit mode (see below); the few
  with several statements open ``BEGIN IMMEDIATE``.
* One connection per thread (and a new one after ``fork()``).
* Waiting for the write lock is ours: connections have a busy timeout of 0 and a busy statement
  runs again after naps of 20 us to 1 ms, for up to ``busy_timeout`` (see
  :mod:`agent_sdk.sqlite_busy`: SQLite's own handler sleeps 1 ms at once, and 2, 5, 10 after).

Waiting: SQLite has no notification that crosses processes, so an empty ``reserve`` polls, with
exponential back-off from 5 ms to 100 ms until its timeout. That bounds both the latency of a new
job (<= 100 ms) and the cost of an idle worker (~10 tiny queries a second), and never spins.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from agent_sdk.errors import AgentSDKError, BackendUnavailable, ConfigError, InvalidInput
from agent_sdk.masking import mask_url
from agent_sdk.private_files import ensure_private_dir, ensure_private_file
from agent_sdk.queue.base import BaseQueue, Clock, DeadJob, Job, Lease, QueueDepth, new_token
from agent_sdk.sqlite_busy import retry_busy

SCHEMA_VERSION = 1  # recorded in PRAGMA user_version

# Version -> statements that bring the file from the previous version to it.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,                 -- a JSON object
            state TEXT NOT NULL CHECK (state IN ('ready', 'leased', 'dead')),
            attempts INTEGER NOT NULL DEFAULT 0,
            available_at REAL NOT NULL,
            lease_token TEXT,
            lease_worker TEXT,
            lease_expires_at REAL,
            last_error TEXT,
            enqueued_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        # reserve() seeks these two: the oldest due ready job, and the oldest expired lease.
        # rowid (insertion order) ends every index, so ties come out first-in first-out.
        "CREATE INDEX jobs_ready ON jobs (state, available_at)",
        "CREATE INDEX jobs_leases ON jobs (state, lease_expires_at)",
    ),
}

_JOB_COLUMNS = "id, kind, payload, attempts, enqueued_at, available_at, last_error"

# The next job to hand out: the oldest due ready job or the oldest expired lease, whichever is
# older. Each branch is one seek on its index (LIMIT 1), never a scan of the table.
_NEXT = """
    SELECT id FROM (
        SELECT * FROM (SELECT id, available_at AS due, rowid AS seq FROM jobs
                       WHERE state = 'ready' AND available_at <= :now
                       ORDER BY available_at, rowid LIMIT 1)
        UNION ALL
        SELECT * FROM (SELECT id, lease_expires_at AS due, rowid AS seq FROM jobs
                       WHERE state = 'leased' AND lease_expires_at <= :now
                       ORDER BY lease_expires_at, rowid LIMIT 1)
    ) ORDER BY due, seq LIMIT 1
"""

# A connection must never be used on both sides of a fork(): count generations.
_fork_generation = 0


def _after_fork() -> None:
    global _fork_generation
    _fork_generation += 1


os.register_at_fork(after_in_child=_after_fork)


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        payload=json.loads(row["payload"]),
        attempts=row["attempts"],
        enqueued_at=row["enqueued_at"],
        available_at=row["available_at"],
        last_error=row["last_error"],
    )


class SQLiteQueue(BaseQueue):
    durable: ClassVar[bool] = True
    ordered: ClassVar[bool] = True
    unique_ids: ClassVar[bool] = True
    lease_expiry: ClassVar[bool] = True
    scheme: ClassVar[str] = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 5.0,
        clock: Clock = time.time,
    ) -> None:
        self.path = Path(path).expanduser()
        self.busy_timeout = busy_timeout
        self.clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        self._closed = False
        try:
            ensure_private_dir(self.path.parent)  # 0700, and the file 0600 like the store's
            ensure_private_file(self.path)
        except OSError as exc:
            raise BackendUnavailable(
                f"cannot create the directory of SQLite queue {self.path}: {exc.strerror}",
                hint="set AGENT_SDK_QUEUE_DB_PATH to a writable location",
            ) from exc
        self._migrate()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteQueue:
        """``sqlite:///relative/queue.db`` or ``sqlite:////absolute/queue.db``."""
        prefix = "sqlite:///"
        path = url[len(prefix) :] if url.startswith(prefix) else ""
        if not path or path == ":memory:":  # per-thread connections would each see another db
            raise ConfigError(
                f"not a SQLite queue URL: {mask_url(url)!r}", hint="use sqlite:///path/to/queue.db"
            )
        return cls(path, **options)

    def __repr__(self) -> str:
        return f"SQLiteQueue({str(self.path)!r})"

    # -- connections, errors, transactions -----------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None and getattr(self._local, "generation", -1) == _fork_generation:
            return db
        if self._closed:
            raise BackendUnavailable(f"the queue of {self.path} is closed")
        try:
            db = sqlite3.connect(
                self.path, timeout=0, isolation_level=None, check_same_thread=False
            )
            db.row_factory = sqlite3.Row
            for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"):
                retry_busy(lambda: db.execute(pragma), self.busy_timeout)  # noqa: B023
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        self._local.db, self._local.generation = db, _fork_generation
        with self._lock:
            self._conns.append(db)
        return db

    def _error(self, exc: sqlite3.Error) -> AgentSDKError:
        text, where = str(exc), f"SQLite queue {self.path}"
        low = text.lower()
        if "locked" in low or "busy" in low:
            return BackendUnavailable(
                f"{where} is locked: another connection kept it busy for over "
                f"{self.busy_timeout:g}s",
                hint="retry, stop the process holding it, or raise AGENT_SDK_SQLITE_BUSY_TIMEOUT",
            )
        if "unable to open" in low:
            return BackendUnavailable(
                f"cannot open {where}", hint="check the path and that its directory is writable"
            )
        if "readonly" in low or "read-only" in low:
            return BackendUnavailable(f"{where} is read-only", hint="check the file's permissions")
        if "disk is full" in low:  # SQLITE_FULL: nothing was written; it works again with space
            return BackendUnavailable(
                f"{where}: the disk is full", hint="free space on the disk that holds it"
            )
        if "disk i/o error" in low:  # SQLITE_IOERR: the device failed the read or write
            return BackendUnavailable(
                f"{where}: the disk failed a read or write (I/O error)",
                hint="check the disk and the kernel log",
            )
        if isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError):
            return AgentSDKError(f"{where}: {text}")  # a bug here, not an outage
        return BackendUnavailable(f"{where}: {text}", hint="check the disk and the file")

    def _exec(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        """One statement. Outside ``_write()`` it is its own transaction (autocommit mode)."""
        try:
            db = self._db()
            return retry_busy(lambda: db.execute(sql, params), self.busy_timeout)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        except UnicodeEncodeError as exc:  # a kind or error text with a lone surrogate
            raise InvalidInput("a text holds characters that cannot be stored") from exc

    def _query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        db = self._db()
        try:  # a statement with RETURNING (or a big read) fails in the fetch, not the execute
            rows: list[sqlite3.Row] = retry_busy(
                lambda: db.execute(sql, params).fetchall(), self.busy_timeout
            )
        except UnicodeEncodeError as exc:
            raise InvalidInput("a text holds characters that cannot be stored") from exc
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        return rows

    def _one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Row | None:
        rows = self._query(sql, params)
        return rows[0] if rows else None

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction, holding the write lock from its first statement."""
        db = self._db()
        try:
            retry_busy(lambda: db.execute("BEGIN IMMEDIATE"), self.busy_timeout)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            yield db
            retry_busy(lambda: db.execute("COMMIT"), self.busy_timeout)
        except BaseException as exc:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from exc
            raise

    def _migrate(self) -> None:
        version = self._query("PRAGMA user_version")[0][0]
        if version == SCHEMA_VERSION:  # every start after the first: read-only
            return
        if version > SCHEMA_VERSION:
            raise BackendUnavailable(
                f"SQLite queue {self.path} has schema version {version}, newer than this "
                f"agent-sdk knows ({SCHEMA_VERSION})",
                hint="upgrade agent-sdk",
            )
        with self._write() as db:
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target]:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self._closed = True
        with self._lock:
            conns, self._conns = self._conns, []
        for db in conns:
            with contextlib.suppress(sqlite3.Error):
                db.close()
        self._local = threading.local()

    # -- the protocol ----------------------------------------------------------------------------
    # Each operation below is ONE statement in autocommit mode, so it is its own transaction. A
    # statement that writes takes SQLite's write lock before it reads anything (waiting on the
    # busy timeout), exactly what BEGIN IMMEDIATE does for a multi-statement transaction: the
    # read-then-update of reserve cannot interleave with another writer. It saves the BEGIN and
    # COMMIT round trips, a third of the cost of a job's life.
    def _put(self, job_id: str, kind: str, text: str, delay: float) -> Job:
        # A job already queued is found by a read, which takes no write lock: recovery enqueues
        # every queued run again when a worker starts (and every three leases), and with a
        # backlog those were a write transaction each, fighting the workers for the file.
        row = self._one(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        if row is not None:
            return _job(row)
        now = self.clock()
        # ON CONFLICT DO NOTHING settles a duplicate job_id in the insert itself: RETURNING gives
        # our row when it landed, nothing when a job with that id was already there.
        row = self._one(
            "INSERT INTO jobs (id, kind, payload, state, attempts, available_at, enqueued_at,"
            " updated_at) VALUES (?, ?, ?, 'ready', 0, ?, ?, ?)"
            f" ON CONFLICT (id) DO NOTHING RETURNING {_JOB_COLUMNS}",
            (job_id, kind, text, now + delay, now, now),
        )
        if row is None:
            row = self._one(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
            if row is None:  # acked between our insert and this read: enqueue it again
                return self._put(job_id, kind, text, delay)
        return _job(row)

    def _claim(self, worker: str, lease: float, wait: float) -> Lease | None:
        """One try: nothing crosses processes to wait on, so reserve polls this."""
        now = self.clock()
        token = new_token()
        row = self._one(
            "UPDATE jobs SET state = 'leased', attempts = attempts + 1, lease_token = :token,"
            " lease_worker = :worker, lease_expires_at = :expires, updated_at = :now"
            f" WHERE id = ({_NEXT}) RETURNING {_JOB_COLUMNS}",
            {"now": now, "token": token, "worker": worker, "expires": now + lease},
        )
        if row is None:
            return None
        return Lease(job=_job(row), token=token, worker=worker, expires_at=now + lease)

    def _holding(self, lease: Lease, sql: str, params: tuple[Any, ...] = ()) -> bool:
        """A statement guarded by ``WHERE id = ? AND lease_token = ?``; False if it hit no row:
        the token changed (another worker took the job) or the job left the queue."""
        guard = " WHERE id = ? AND lease_token = ? AND state = 'leased'"
        return self._exec(sql + guard, (*params, lease.job.id, lease.token)).rowcount == 1

    def _extend(self, lease: Lease, seconds: float) -> float | None:
        now = self.clock()
        sql = "UPDATE jobs SET lease_expires_at = ?, updated_at = ?"
        return now + seconds if self._holding(lease, sql, (now + seconds, now)) else None

    def _ack(self, lease: Lease) -> bool:
        return self._holding(lease, "DELETE FROM jobs")

    def _retry(self, lease: Lease, delay: float, error: str) -> bool:
        now = self.clock()
        sql = (
            "UPDATE jobs SET state = 'ready', available_at = ?, last_error = ?, lease_token = NULL,"
            " lease_worker = NULL, lease_expires_at = NULL, updated_at = ?"
        )
        return self._holding(lease, sql, (now + delay, error, now))

    def _dead(self, lease: Lease, error: str) -> bool:
        sql = (
            "UPDATE jobs SET state = 'dead', last_error = ?, lease_token = NULL,"
            " lease_worker = NULL, lease_expires_at = NULL, updated_at = ?"
        )
        return self._holding(lease, sql, (error, self.clock()))

    def depth(self) -> QueueDepth:
        row = self._query(
            "SELECT"
            " COUNT(*) FILTER (WHERE state = 'ready' AND available_at <= :now"
            "   OR state = 'leased' AND lease_expires_at <= :now),"
            " COUNT(*) FILTER (WHERE state = 'ready' AND available_at > :now),"
            " COUNT(*) FILTER (WHERE state = 'leased' AND lease_expires_at > :now),"
            " COUNT(*) FILTER (WHERE state = 'dead')"
            " FROM jobs",
            {"now": self.clock()},
        )[0]
        return QueueDepth(ready=row[0], delayed=row[1], leased=row[2], dead=row[3])

    def _list_dead(self, limit: int) -> list[DeadJob]:
        rows = self._query(
            f"SELECT {_JOB_COLUMNS}, updated_at FROM jobs WHERE state = 'dead'"
            " ORDER BY updated_at DESC, rowid DESC LIMIT ?",
            (limit,),
        )
        return [
            DeadJob(job=_job(r), error=r["last_error"] or "", died_at=r["updated_at"]) for r in rows
        ]

    def _requeue(self, job_id: str) -> Job | str | None:
        now = self.clock()
        with self._write() as db:
            row = db.execute(
                "UPDATE jobs SET state = 'ready', attempts = 0, available_at = ?, updated_at = ?"
                f" WHERE id = ? AND state = 'dead' RETURNING {_JOB_COLUMNS}",
                (now, now, job_id),
            ).fetchone()
            if row is None:
                found = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
                return None if found is None else str(found[0])
        return _job(row)


__all__ = ["SCHEMA_VERSION", "SQLiteQueue"]
