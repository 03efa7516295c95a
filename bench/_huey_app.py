"""The huey side of bench/worker_throughput.py: a SqliteHuey with one no-op task."""

from __future__ import annotations

import os

from huey import SqliteHuey

huey = SqliteHuey("bench", filename=os.environ.get("HUEY_DB", "huey.db"))


@huey.task()
def noop(i: int) -> int:
    return i
