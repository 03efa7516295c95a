"""Waiting for another connection's SQLite write lock in short naps.

SQLite's own busy handler (what ``busy_timeout`` installs) sleeps 1 ms on the first conflict,
then 2, 5, 10 ms and more. Our write transactions hold the lock for tens of microseconds, so
two worker processes writing the same file lost most of their time asleep: a third of a
worker's wall time went to ``BEGIN IMMEDIATE`` in bench/worker_throughput.py. The store and the
queue therefore open their connections with a busy timeout of 0 and retry a statement that
found the database busy here instead, napping from 20 us up to 1 ms, until their own
``busy_timeout`` has passed. The promise is unchanged: a writer waits that long for the lock,
then gets the driver's "database is locked" error, which each translates into
BackendUnavailable.

A busy statement did nothing (SQLite undoes a statement that fails), so running it again is
safe, inside or outside a transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

FIRST_NAP = 0.00002
LONGEST_NAP = 0.001


def is_busy(exc: sqlite3.Error) -> bool:
    """SQLITE_BUSY or one of its extended codes (another connection holds the lock)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_BUSY


def retry_busy(step: Callable[[], T], timeout: float) -> T:
    """``step()``, run again while it fails with SQLITE_BUSY, for up to ``timeout`` seconds;
    after that the last busy error is raised."""
    try:
        return step()
    except sqlite3.OperationalError as exc:
        if not is_busy(exc):
            raise
    deadline = time.monotonic() + timeout
    nap = FIRST_NAP
    while True:
        time.sleep(nap)
        try:
            return step()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
        nap = min(nap * 2, LONGEST_NAP)


__all__ = ["retry_busy", "is_busy"]
