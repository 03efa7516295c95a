"""The huey side of bench/worker_throughput.py: a SqliteHuey with one no-op task.

``HUEY_SYNCHRONOUS`` picks SQLite's ``synchronous`` level for every connection huey opens:
``FULL`` (what SqliteHuey gets by default, from SQLite's own default) or ``NORMAL`` (what
agent-sdk's SQLite store and queue use), so the benchmark can compare at equal durability.
"""

from __future__ import annotations

import os
import sqlite3

from huey import SqliteHuey
from huey.storage import SqliteStorage

SYNCHRONOUS = os.environ.get("HUEY_SYNCHRONOUS", "FULL")
if SYNCHRONOUS not in ("FULL", "NORMAL"):
    raise SystemExit(f"HUEY_SYNCHRONOUS must be FULL or NORMAL, not {SYNCHRONOUS!r}")


class _Storage(SqliteStorage):
    def _create_connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection = super()._create_connection()
        conn.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
        return conn


class _Huey(SqliteHuey):
    storage_class = _Storage


huey = _Huey("bench", filename=os.environ.get("HUEY_DB", "huey.db"))


@huey.task()
def noop(i: int) -> int:
    return i
