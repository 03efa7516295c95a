"""Worker registrations in the SQLite store (:class:`agent_sdk.store.workers.WorkerStore`).

A mixin of :class:`~agent_sdk.store.sqlite.SQLiteStore`, written against the helpers that class
already has, like :mod:`agent_sdk.store.sqlite_keys`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agent_sdk.store.workers import WorkerInfo

if TYPE_CHECKING:
    import sqlite3

_COLUMNS = "name, host, pid, started_at, heartbeat_at, runs_in_flight"


class SQLiteWorkersMixin:
    if TYPE_CHECKING:  # provided by SQLiteStore

        def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]: ...
        def _exec(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int: ...

    def register_worker(self, worker: WorkerInfo) -> None:
        self._exec(
            f"INSERT OR REPLACE INTO workers ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            (
                worker.name,
                worker.host,
                worker.pid,
                worker.started_at,
                worker.heartbeat_at,
                worker.runs_in_flight,
            ),
        )

    def heartbeat_worker(self, name: str, when: str, runs_in_flight: int) -> bool:
        changed = self._exec(
            "UPDATE workers SET heartbeat_at = ?, runs_in_flight = ? WHERE name = ?",
            (when, runs_in_flight, name),
        )
        return changed > 0

    def remove_worker(self, name: str) -> None:
        self._exec("DELETE FROM workers WHERE name = ?", (name,))

    def list_workers(self) -> list[WorkerInfo]:
        rows = self._query(f"SELECT {_COLUMNS} FROM workers ORDER BY name")
        return [
            WorkerInfo(
                name=r[0],
                host=r[1],
                pid=int(r[2]),
                started_at=r[3],
                heartbeat_at=r[4],
                runs_in_flight=int(r[5]),
            )
            for r in rows
        ]


__all__ = ["SQLiteWorkersMixin"]
