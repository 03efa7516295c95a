"""API-key and worker queries that read the same on SQLite and Postgres.

Like :mod:`agent_sdk.store._sql`, written with ``?`` placeholders against the store's
``_exec``/``_one``/``_query`` (the Postgres store turns ``?`` into ``%s``). What differs between
the engines stays in their own mixins: inserts that map driver errors, and row locks
(``_for_update`` is empty on SQLite, whose writers are serialised by ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent_sdk.errors import NotFound
from agent_sdk.records import ApiKey, Page
from agent_sdk.store._rows import check_limit, cursor_key, make_page
from agent_sdk.store.api_keys import (
    KEY_COLUMNS,
    AuthRecord,
    check_updatable,
    key_column_value,
    key_from_row,
)
from agent_sdk.store.workers import WorkerInfo

_KEY_CURSOR = "api_key"
_WORKER_COLUMNS = "name, host, pid, started_at, heartbeat_at, runs_in_flight, health"


class _Primitives:
    def _exec(self, sql: str, params: Sequence[Any] = ()) -> int:
        raise NotImplementedError

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        raise NotImplementedError


class SQLKeyQueries(_Primitives):
    def _for_update(self) -> str:
        """A row-lock clause for reads that precede a write (none by default)."""
        return ""

    def get_api_key(self, org_id: str, key_id: str) -> ApiKey:
        row = self._one(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ? AND org_id = ?" + self._for_update(),
            (key_id, org_id),
        )
        if row is None:
            raise NotFound(f"API key {key_id!r} not found")
        return key_from_row(row)

    def list_api_keys(
        self, org_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[ApiKey]:
        # Keyset on (org_id, id): key ids begin with their creation time, so the index is
        # already in "newest first" order and a page costs the same at any depth.
        limit = check_limit(limit)
        sql, params = f"SELECT {KEY_COLUMNS} FROM api_keys WHERE org_id = ?", [org_id]
        if cursor is not None:
            sql += " AND id < ?"
            params.append(cursor_key(cursor, _KEY_CURSOR))
        rows = self._query(sql + " ORDER BY id DESC LIMIT ?", [*params, limit + 1])
        return make_page([key_from_row(r) for r in rows], limit, _KEY_CURSOR, lambda k: k.id)

    def update_api_key(self, org_id: str, key_id: str, /, **fields: Any) -> ApiKey:
        check_updatable(fields)
        if not fields:
            return self.get_api_key(org_id, key_id)
        # Column names come from UPDATABLE only, never from the caller's text.
        sets = ", ".join(f"{name} = ?" for name in fields)
        params = [key_column_value(name, value) for name, value in fields.items()]
        row = self._one(
            f"UPDATE api_keys SET {sets} WHERE id = ? AND org_id = ? RETURNING {KEY_COLUMNS}",
            [*params, key_id, org_id],
        )
        if row is None:
            raise NotFound(f"API key {key_id!r} not found")
        return key_from_row(row)

    def find_api_key_for_auth(self, key_id: str) -> AuthRecord | None:
        row = self._one(
            f"SELECT {KEY_COLUMNS}, secret_hash, previous_hash, previous_valid_until"
            " FROM api_keys WHERE id = ?" + self._for_update(),
            (key_id,),
        )
        if row is None:
            return None
        *key, secret_hash, previous_hash, previous_valid_until = row
        return key_from_row(key), secret_hash, previous_hash, previous_valid_until

    def touch_api_key(self, key_id: str, when: str) -> None:
        # The condition keeps last_used_at from moving backwards when touches race, and makes
        # a repeated touch with the same time a no-op that writes nothing.
        self._exec(
            "UPDATE api_keys SET last_used_at = ?"
            " WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
            (when, key_id, when),
        )


class SQLWorkerQueries(_Primitives):
    """The liveness rows of workers (:class:`agent_sdk.store.workers.WorkerStore`)."""

    def register_worker(self, worker: WorkerInfo) -> None:
        self._exec(
            f"INSERT INTO workers ({_WORKER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET host = excluded.host, pid = excluded.pid,"
            " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,"
            " runs_in_flight = excluded.runs_in_flight, health = excluded.health",
            (
                worker.name,
                worker.host,
                worker.pid,
                worker.started_at,
                worker.heartbeat_at,
                worker.runs_in_flight,
                worker.health,
            ),
        )

    def heartbeat_worker(
        self, name: str, when: str, runs_in_flight: int, health: str = "ok"
    ) -> bool:
        changed = self._exec(
            "UPDATE workers SET heartbeat_at = ?, runs_in_flight = ?, health = ? WHERE name = ?",
            (when, runs_in_flight, health, name),
        )
        return changed > 0

    def remove_worker(self, name: str) -> None:
        self._exec("DELETE FROM workers WHERE name = ?", (name,))

    def list_workers(self) -> list[WorkerInfo]:
        rows = self._query(f"SELECT {_WORKER_COLUMNS} FROM workers ORDER BY name")
        return [
            WorkerInfo(r[0], r[1], int(r[2]), r[3], r[4], int(r[5]), r[6])  # _WORKER_COLUMNS order
            for r in rows
        ]


__all__ = ["SQLKeyQueries", "SQLWorkerQueries"]
