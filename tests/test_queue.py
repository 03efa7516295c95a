"""The queues: the Queue contract on SQLite and in memory, plus what only SQLite has
(durability across reopen, the schema version, query plans, locking), and open_queue."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from contracts.queue_contract import MakeQueue, QueueContract

from agent_sdk.config import Settings, load_settings
from agent_sdk.errors import BackendUnavailable, ConfigError
from agent_sdk.queue import open_queue, queue_class, queue_from_settings
from agent_sdk.queue.base import Queue
from agent_sdk.queue.memory import MemoryQueue
from agent_sdk.queue.sqlite import _NEXT, SCHEMA_VERSION, SQLiteQueue


class TestSQLiteQueue(QueueContract):
    @pytest.fixture
    def make_queue(self, tmp_path: Path) -> Iterator[MakeQueue]:
        opened: list[SQLiteQueue] = []

        def make() -> Queue:
            opened.append(SQLiteQueue(tmp_path / "queue.db"))
            return opened[-1]

        yield make
        for q in opened:
            q.close()

    @pytest.fixture
    def queue(self, make_queue: MakeQueue) -> Queue:
        return make_queue()

    @pytest.fixture
    def queue_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'queue.db'}"


class TestMemoryQueue(QueueContract):
    @pytest.fixture
    def make_queue(self) -> MakeQueue:
        shared = MemoryQueue()  # "another handle on the same queue" is the same object
        return lambda: shared

    @pytest.fixture
    def queue(self, make_queue: MakeQueue) -> Queue:
        return make_queue()


@pytest.fixture
def sq(tmp_path: Path) -> Iterator[SQLiteQueue]:
    q = SQLiteQueue(tmp_path / "queue.db")
    yield q
    q.close()


def test_capabilities() -> None:
    assert SQLiteQueue.durable and SQLiteQueue.supports_delay
    assert not MemoryQueue.durable and MemoryQueue.supports_delay
    assert isinstance(MemoryQueue(), Queue)


# -- SQLite specifics ----------------------------------------------------------------------------
def test_jobs_survive_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    q = SQLiteQueue(path)
    job = q.enqueue("run", {"run_id": "r1"}, job_id="run_r1")
    held = q.enqueue("run", {"run_id": "r2"})
    lease = q.reserve("w", lease=0.2, timeout=0)
    assert lease is not None and lease.job.id == job.id
    q.close()
    with pytest.raises(BackendUnavailable):
        q.depth()
    q = SQLiteQueue(path)  # a "crashed" worker's lease outlives the process
    assert q.depth().total == 2
    first = q.reserve("w2", lease=30, timeout=0)
    assert first is not None and first.job.id == held.id
    again = q.reserve("w2", lease=30, timeout=2)
    assert again is not None and again.job.id == job.id and again.job.attempts == 2
    q.close()


def test_schema_version_and_pragmas(sq: SQLiteQueue) -> None:
    db = sq._db()
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1
    SQLiteQueue(sq.path).close()  # reopening an up-to-date file migrates nothing


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(BackendUnavailable) as info:
        SQLiteQueue(path)
    assert "upgrade" in (info.value.hint or "")


def test_reserve_is_an_index_seek(sq: SQLiteQueue) -> None:
    plan = sq._db().execute("EXPLAIN QUERY PLAN " + _NEXT, {"now": time.time()}).fetchall()
    details = " | ".join(row["detail"] for row in plan)
    assert "jobs_ready" in details and "jobs_leases" in details
    assert "SCAN jobs" not in details, details


def test_an_empty_reserve_makes_few_queries(sq: SQLiteQueue) -> None:
    statements: list[str] = []
    sq._db().set_trace_callback(statements.append)
    assert sq.reserve("w", lease=30, timeout=1.0) is None
    # Back-off 5, 10, 20, 40, 80 ms then 100 ms: ~14 polls of 3 statements in a second.
    assert len(statements) <= 3 * 20, len(statements)


def test_a_locked_file_is_backend_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    q = SQLiteQueue(path, busy_timeout=0.05)
    q.enqueue("run", {})
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(BackendUnavailable) as info:
            q.enqueue("run", {})
        assert str(path) in info.value.message and "locked" in info.value.message
        assert "AGENT_SDK_SQLITE_BUSY_TIMEOUT" in (info.value.hint or "")
        assert q.depth().ready == 1  # WAL: readers are not blocked by the writer
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert q.reserve("w", lease=30, timeout=0) is not None
    q.close()


def test_enqueueing_a_queued_id_again_takes_no_write_lock(tmp_path: Path) -> None:
    # Recovery enqueues every queued run again at each worker's start: with a backlog, those
    # must not queue up behind the workers' writes.
    q = SQLiteQueue(tmp_path / "queue.db", busy_timeout=0.05)
    job = q.enqueue("run", {"n": 1}, job_id="run_1")
    holder = sqlite3.connect(q.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert q.enqueue("run", {"n": 2}, job_id="run_1") == job
        with pytest.raises(BackendUnavailable):
            q.enqueue("run", {}, job_id="run_2")  # a new job does need the lock
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    q.close()


def test_a_writer_waits_for_the_lock_within_the_busy_timeout(tmp_path: Path) -> None:
    q = SQLiteQueue(tmp_path / "queue.db", busy_timeout=30)
    q.enqueue("run", {})
    holder = sqlite3.connect(q.path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    def release() -> None:
        holder.execute("COMMIT")
        released.set()

    threading.Timer(0.2, release).start()
    lease = q.reserve("w", lease=30, timeout=0)  # waits for the lock, does not fail
    assert released.is_set() and lease is not None
    holder.close()
    q.close()


def test_an_unwritable_path_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(BackendUnavailable) as info:
        SQLiteQueue(blocker / "sub" / "queue.db")
    assert str(blocker / "sub" / "queue.db") in info.value.message


def test_connections_are_per_thread(sq: SQLiteQueue) -> None:
    seen: list[sqlite3.Connection] = []
    t = threading.Thread(target=lambda: seen.append(sq._db()))
    t.start()
    t.join()
    assert seen[0] is not sq._db()


def test_injected_clock(tmp_path: Path) -> None:
    now = [1000.0]
    clock: Callable[[], float] = lambda: now[0]  # noqa: E731
    q = SQLiteQueue(tmp_path / "queue.db", clock=clock)
    job = q.enqueue("run", {}, delay=60)
    assert job.available_at == 1060.0
    assert q.reserve("w", lease=30, timeout=0) is None
    now[0] = 1060.0
    lease = q.reserve("w", lease=30, timeout=0)
    assert lease is not None and lease.expires_at == 1090.0
    now[0] = 1090.0
    assert q.reserve("w2", lease=30, timeout=0) is not None  # expiry follows the clock too
    q.close()


# -- open_queue and settings ---------------------------------------------------------------------
def test_open_queue_by_scheme(tmp_path: Path) -> None:
    q = open_queue(f"sqlite:///{tmp_path / 'q.db'}")
    assert isinstance(q, SQLiteQueue) and q.path == tmp_path / "q.db"
    q.close()
    assert isinstance(open_queue("memory://"), MemoryQueue)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("sqlit:///x.db", ["unknown queue backend 'sqlit'", "did you mean 'sqlite'"]),
        ("rabbit://host", ["unknown queue backend 'rabbit'", "known: sqlite, memory"]),
        ("kafka://broker/a topic", ["invalid Kafka topic name 'a topic'"]),
        ("sqlite://", ["not a SQLite queue URL"]),
        ("sqlite:///:memory:", ["not a SQLite queue URL"]),
    ],
)
def test_open_queue_errors(url: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        open_queue(url)
    text = info.value.message + " " + (info.value.hint or "")
    for word in words:
        assert word in text


def test_a_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from agent_sdk import queue as queue_pkg

    # A backend module that exists but whose driver is not installed.
    (tmp_path / "fake_redis_queue.py").write_text("import no_such_redis_driver\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(queue_pkg.QUEUE_ALIASES, "redis", "fake_redis_queue:RedisQueue")
    with pytest.raises(ConfigError) as info:
        queue_class("redis")
    assert info.value.hint == "pip install 'agent-sdk[redis]'"


def test_queue_from_settings(settings: Settings, tmp_path: Path) -> None:
    assert settings.queue.backend == "sqlite"
    q = queue_from_settings(settings)
    assert isinstance(q, SQLiteQueue) and q.path == Path(settings.data_dir) / "queue.db"
    q.close()
    q = queue_from_settings(settings.replace(queue_db_path="sub/jobs.db"))
    assert isinstance(q, SQLiteQueue) and q.path == Path(settings.data_dir) / "sub" / "jobs.db"
    q.close()
    absolute = tmp_path / "elsewhere.db"
    q = queue_from_settings(settings.replace(queue_db_path=str(absolute)))
    assert isinstance(q, SQLiteQueue) and q.path == absolute
    q.close()
    assert isinstance(queue_from_settings(settings.replace(queue_backend="memory")), MemoryQueue)
    with pytest.raises(ConfigError) as info:
        queue_from_settings(settings.replace(queue_backend="sqs"))
    assert "AGENT_SDK_SQS_QUEUE_URL" in info.value.message  # says what is missing


def test_queue_settings_from_env(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "AGENT_SDK_QUEUE_BACKEND": "Memory",
           "AGENT_SDK_QUEUE_DB_PATH": "/var/lib/q.db"}  # fmt: skip
    s = load_settings(env=env, cwd=tmp_path)
    assert s.queue.backend == "memory" and s.queue.db_path == "/var/lib/q.db"
    with pytest.raises(ConfigError) as info:
        load_settings(env={**env, "AGENT_SDK_QUEUE_BACKEND": "rabbit"}, cwd=tmp_path)
    assert "AGENT_SDK_QUEUE_BACKEND" in info.value.message
