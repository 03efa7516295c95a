"""The SQLite store: the Store contract, plus what only SQLite has (WAL, file locking, the
migration table, query plans), and the id and cursor helpers it relies on."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from contracts.store_contract import ORG, StoreContract, make_run

from agent_sdk.cursors import decode_cursor, encode_cursor
from agent_sdk.errors import BackendUnavailable, ConfigError, Conflict, InvalidInput
from agent_sdk.ids import new_id, utcnow
from agent_sdk.records import RunStatus
from agent_sdk.store import open_store
from agent_sdk.store.migrations import load_migrations, split_statements
from agent_sdk.store.sqlite import SQLiteStore, _translate


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "store.db")
    s.migrate()
    yield s
    s.close()


class TestSQLiteStore(StoreContract):
    """The shared contract, on a fresh SQLite file per test (the ``store`` fixture above)."""


def pragma(store: SQLiteStore, name: str) -> object:
    return store._conn().db.execute(f"PRAGMA {name}").fetchone()[0]


# -- connection settings and migrations ----------------------------------------------------------
def test_connection_pragmas(store: SQLiteStore) -> None:
    assert pragma(store, "journal_mode") == "wal"
    assert pragma(store, "synchronous") == 1  # NORMAL
    assert pragma(store, "foreign_keys") == 1
    # SQLite's own busy handler is off: the store waits for the lock itself (sqlite_busy).
    assert pragma(store, "busy_timeout") == 0 and store.busy_timeout == 5.0


def test_every_thread_gets_its_own_configured_connection(store: SQLiteStore) -> None:
    seen: list[object] = []

    def probe() -> None:
        seen.append((store._conn().db, pragma(store, "foreign_keys")))

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    assert seen[0] != (store._conn().db, 1) and seen[0][1] == 1  # type: ignore[index]


def test_migrations_are_recorded(store: SQLiteStore) -> None:
    rows = store._conn().db.execute("SELECT version, name, applied_at FROM schema_migrations")
    recorded = [tuple(r) for r in rows]
    assert [(v, n) for v, n, _ in recorded] == [(m.version, m.name) for m in load_migrations()]
    assert recorded[0][:2] == (1, "initial")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", recorded[0][2])


def test_fresh_database_reports_pending_migrations(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "fresh.db")
    try:
        n = len(load_migrations())
        assert [s.applied_at for s in store.migration_status()] == [None] * n
        with pytest.raises(Conflict, match=rf"{n} migrations? pending; run `agent-sdk db migrate`"):
            store.check()
        with pytest.raises(Conflict) as info:
            store.get_run(ORG, "run_x")
        assert info.value.hint == "run `agent-sdk db migrate`"
        applied = store.migrate()
        assert [m.version for m in applied] == list(range(1, n + 1)) and applied[0].applied_at
        store.check()
    finally:
        store.close()


def test_a_newer_schema_is_reported(store: SQLiteStore) -> None:
    store._exec("INSERT INTO schema_migrations VALUES (9999, 'future', ?)", (utcnow(),))
    with pytest.raises(Conflict, match="newer than this agent-sdk"):
        store.check()


def test_two_processes_migrating_at_once_apply_each_migration_once(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    stores = [SQLiteStore(path) for _ in range(4)]
    results: list[int] = []
    barrier = threading.Barrier(len(stores))

    def run(s: SQLiteStore) -> None:
        barrier.wait()
        results.append(len(s.migrate()))

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Each migration is applied exactly once, whichever store got to it (with several migrations
    # the stores may share the work: one applies the first, another the next).
    assert sum(results) == len(load_migrations())
    assert len(stores[0].migration_status()) == len(load_migrations())
    stores[0].check()
    for s in stores:
        s.close()


def test_split_statements_respects_strings_comments_and_triggers() -> None:
    sql = """
    -- a comment; with a semicolon
    CREATE TABLE t (a TEXT DEFAULT 'x;y');
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN
        UPDATE t SET a = 'z;' WHERE a = NEW.a;
    END;
    /* block; comment */ INSERT INTO t VALUES ('semi;colon');
    -- trailing comment
    """
    statements = split_statements(sql)
    assert len(statements) == 3
    assert statements[1].endswith("END;")
    db = sqlite3.connect(":memory:")
    for statement in statements:
        db.execute(statement)
    assert db.execute("SELECT a FROM t").fetchone()[0] == "z;"
    db.close()
    with pytest.raises(ValueError, match="unterminated"):
        split_statements("CREATE TABLE t (a); SELECT 1")


def test_migration_files_are_numbered_from_one_without_gaps() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))


# -- URLs, paths and failures --------------------------------------------------------------------
def test_open_store_by_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = open_store(f"sqlite:///{tmp_path}/abs/one.db", busy_timeout=1.5)
    assert isinstance(absolute, SQLiteStore)
    assert absolute.path == tmp_path / "abs" / "one.db" and absolute.path.exists()
    assert absolute.busy_timeout == 1.5
    absolute.close()
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///rel/two.db")
    assert (tmp_path / "rel" / "two.db").exists()
    relative.close()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite:x.db"])
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        SQLiteStore.from_url(url)


def test_unwritable_path_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    path = blocker / "sub" / "agent-sdk.db"
    with pytest.raises(BackendUnavailable) as info:
        SQLiteStore(path)
    assert str(path) in info.value.message
    assert info.value.hint


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite" * 512)
    with pytest.raises(BackendUnavailable) as info:
        SQLiteStore(path).migrate()
    assert str(path) in info.value.message


def test_locked_database_is_backend_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = SQLiteStore(path, busy_timeout=0.05)
    store.migrate()
    run = make_run(store)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable) as info:
            store.append_event(ORG, run.id, "tick", {})
        # The 0.05 s set here, not the 5 s default: a third of the default is ample.
        assert time.monotonic() - started < 1.5
        message = info.value.message
        assert str(path) in message and "locked" in message and "\n" not in message
        assert info.value.hint and "AGENT_SDK_SQLITE_BUSY_TIMEOUT" in info.value.hint
        # WAL: readers are not blocked by the writer.
        assert store.get_run(ORG, run.id) == run
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.append_event(ORG, run.id, "tick", {}).seq == 1  # nothing half-written
    store.close()


def test_a_writer_waits_for_the_lock_within_the_busy_timeout(store: SQLiteStore) -> None:
    run = make_run(store)
    holder = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(0.2, lambda: holder.execute("COMMIT")).start()
    assert store.append_event(ORG, run.id, "tick", {}).seq == 1
    holder.close()


@pytest.mark.parametrize(
    ("message", "kind", "needle"),
    [
        ("database is locked", BackendUnavailable, "locked"),
        ("unable to open database file", BackendUnavailable, "cannot open"),
        ("attempt to write a readonly database", BackendUnavailable, "read-only"),
        ("disk I/O error", BackendUnavailable, "disk I/O"),
        ("no such table: runs", Conflict, "not migrated"),
    ],
)
def test_driver_errors_are_translated(message: str, kind: type, needle: str) -> None:
    error = _translate(sqlite3.OperationalError(message), "SQLite database /x.db", 5)
    assert type(error) is kind
    assert needle in error.message and "/x.db" in error.message and error.hint


def test_a_second_connection_sees_committed_writes(store: SQLiteStore) -> None:
    other = SQLiteStore(store.path)
    run = make_run(store)
    assert other.get_run(ORG, run.id) == run
    other.append_event(ORG, run.id, "from-other", {})
    assert store.append_event(ORG, run.id, "from-first", {}).seq == 2
    other.close()


_WRITER = """
import sys
from agent_sdk.store.sqlite import SQLiteStore
store = SQLiteStore(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
for i in range(int(sys.argv[3])):
    store.append_event("default", sys.argv[2], "child", {"i": i})
store.close()
"""


@pytest.mark.slow
def test_another_process_appending_at_the_same_time(store: SQLiteStore) -> None:
    run = make_run(store)
    n = 150
    with subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(store.path), run.id, str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        child.stdin.write("go\n")
        child.stdin.flush()
        for i in range(n):
            store.append_event(ORG, run.id, "parent", {"i": i})
        assert child.wait(timeout=60) == 0
    events = list(store.iter_events(ORG, run.id))
    assert [e.seq for e in events] == list(range(1, 2 * n + 1))
    for who in ("parent", "child"):
        assert [e.data["i"] for e in events if e.type == who] == list(range(n))


def test_close_closes_every_threads_connection(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "c.db")
    store.migrate()
    connections: list[sqlite3.Connection] = [store._conn().db]
    ready, done = threading.Event(), threading.Event()

    def worker() -> None:
        connections.append(store._conn().db)
        ready.set()
        done.wait(5)

    t = threading.Thread(target=worker)
    t.start()
    ready.wait(5)
    store.close()
    done.set()
    t.join()
    for conn in connections:
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT 1")
    with pytest.raises(BackendUnavailable, match="closed"):
        store.get_org(ORG)


# -- keyset pagination stays on the indexes ------------------------------------------------------
def plan(store: SQLiteStore, sql: str, params: list[object]) -> list[str]:
    rows = store._conn().db.execute("EXPLAIN QUERY PLAN " + sql, params)
    return [r["detail"] for r in rows]


@pytest.mark.parametrize(
    ("statuses", "session_id"),
    [([], None), (["queued"], None), (["queued", "running"], None), ([], "s"), (["failed"], "s")],
)
@pytest.mark.parametrize("before", [None, "run_01ZZZZZZZZZZZZZZZZZZZZZZZZ"])
def test_list_runs_reads_an_index_in_order(
    store: SQLiteStore, statuses: list[str], session_id: str | None, before: str | None
) -> None:
    sql, params = store._runs_query(ORG, statuses, session_id, before, 51)
    steps = plan(store, sql, params)
    searches = [s for s in steps if s.startswith(("SEARCH", "SCAN"))]
    assert searches and all(
        "USING INDEX runs_org_" in s or s.startswith("SCAN (subquery") for s in searches
    ), steps
    if len(statuses) <= 1 or session_id:
        assert not any("TEMP B-TREE" in s for s in steps), steps
    else:
        # One index range per status, each cut at LIMIT inside its subquery; only those few
        # rows are merged, never the whole table.
        assert len([s for s in steps if "USING INDEX runs_org_status" in s]) == len(statuses)
        assert sum("LIMIT" in a for a in sql.split("UNION ALL")) == len(statuses)


def test_list_sessions_and_events_read_an_index_in_order(store: SQLiteStore) -> None:
    from agent_sdk.store._sql import SESSION_SELECT as _SESSION_SELECT

    sql = _SESSION_SELECT + " AND (s.created_at, s.id) < (?, ?)"
    sql += " ORDER BY s.created_at DESC, s.id DESC LIMIT ?"
    steps = plan(store, sql, [ORG, "t", "id", 51])
    assert "USING INDEX sessions_org_created" in steps[0] and "(created_at,id)<" in steps[0]
    assert any("COVERING INDEX runs_org_session" in s for s in steps)
    assert not any("TEMP B-TREE" in s for s in steps), steps
    steps = plan(
        store,
        "SELECT seq, type, time, data FROM events"
        " WHERE run_id = ? AND seq > ? AND org_id = ? ORDER BY seq LIMIT ?",
        ["r", 0, ORG, 10],
    )
    assert steps == ["SEARCH events USING PRIMARY KEY (run_id=? AND seq>?)"]


def test_list_runs_with_several_statuses_on_a_bigger_table(store: SQLiteStore) -> None:
    statuses = list(RunStatus)
    with store.transaction():
        ids = [make_run(store, status=statuses[i % 5]).id for i in range(600)]
    want = [i for k, i in enumerate(ids) if k % 5 in (1, 3)][::-1]
    page = store.list_runs(ORG, status=[statuses[1], statuses[3]], limit=50)
    assert [r.id for r in page.items] == want[:50]
    page = store.list_runs(
        ORG, status=[statuses[1], statuses[3]], limit=50, cursor=page.next_cursor
    )
    assert [r.id for r in page.items] == want[50:100]


# -- ids and cursors -----------------------------------------------------------------------------
def test_new_id_format_and_order() -> None:
    ids = [new_id("run") for _ in range(20_000)]
    assert all(re.fullmatch(r"run_[0-9A-HJKMNP-TV-Z]{26}", i) for i in ids[:100])
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    later = new_id("run")
    time.sleep(0.002)
    assert new_id("run")[4:14] > later[4:14]  # the leading 10 characters are the timestamp


def test_new_id_is_unique_across_threads() -> None:
    out: list[list[str]] = []

    def make() -> None:
        out.append([new_id("x") for _ in range(2000)])

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [i for chunk in out for i in chunk]
    assert len(set(flat)) == len(flat)
    assert all(chunk == sorted(chunk) for chunk in out)


def test_utcnow_is_fixed_width_iso_utc() -> None:
    a = utcnow()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", a)
    assert utcnow() >= a


@pytest.mark.parametrize("key", ["run:run_01ABC", "", "ünï 'quoted' ; --", "x" * 300])
def test_cursor_round_trip(key: str) -> None:
    cursor = encode_cursor(key)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)
    assert decode_cursor(cursor) == key


@pytest.mark.parametrize("bad", ["", "@@@", "e30", "WzFd", "eyJ2IjoyLCJrIjoieCJ9", "é"])
def test_bad_cursors_are_invalid_input(bad: str) -> None:
    with pytest.raises(InvalidInput, match="invalid cursor"):
        decode_cursor(bad)
