"""agent_sdk.sqlite_busy: a statement that finds the database busy runs again until it gets the
lock or its time is up; any other error passes at once."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from agent_sdk.sqlite_busy import is_busy, retry_busy


def _locked(path: Path) -> sqlite3.Connection:
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE IF NOT EXISTS t (a)")
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_a_busy_statement_runs_once_the_lock_is_free(tmp_path: Path) -> None:
    holder = _locked(tmp_path / "x.db")
    db = sqlite3.connect(tmp_path / "x.db", timeout=0, isolation_level=None)
    threading.Timer(0.1, lambda: holder.execute("COMMIT")).start()
    assert retry_busy(lambda: db.execute("INSERT INTO t VALUES (1)").rowcount, 30) == 1
    holder.close()
    db.close()


def test_the_busy_error_comes_back_after_the_timeout(tmp_path: Path) -> None:
    holder = _locked(tmp_path / "x.db")
    db = sqlite3.connect(tmp_path / "x.db", timeout=0, isolation_level=None)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError) as info:
        retry_busy(lambda: db.execute("INSERT INTO t VALUES (1)"), 0.05)
    assert is_busy(info.value) and time.monotonic() - started >= 0.05
    holder.execute("ROLLBACK")
    holder.close()
    db.close()


def test_other_errors_are_not_retried() -> None:
    calls = []

    def fails() -> None:
        calls.append(1)
        raise sqlite3.OperationalError("no such table: nope")

    with pytest.raises(sqlite3.OperationalError):
        retry_busy(fails, 30)
    assert calls == [1]
