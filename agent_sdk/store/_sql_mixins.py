"""API keys, Idempotency-Key claims and worker rows, the same on SQLite and Postgres.

Like :mod:`agent_sdk.store._sql`, written with ``?`` placeholders against the store's
``_exec``/``_one``/``_query``/``transaction`` (the Postgres store turns ``?`` into ``%s``). What
differs between the engines is only the row locks, which Postgres adds and SQLite does without
(its writers are serialised by ``BEGIN IMMEDIATE``): ``_for_update`` for reads that precede a
key's rotation, ``_PURGE_LOCK`` for the purge of expired claims.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agent_sdk.errors import Conflict, NotFound
from agent_sdk.records import ApiKey, Page
from agent_sdk.store._rows import check_limit, cursor_key, make_page
from agent_sdk.store._sql_primitives import SQLPrimitives
from agent_sdk.store.api_keys import (
    KEY_COLUMNS,
    AuthRecord,
    check_updatable,
    key_column_value,
    key_from_row,
    key_values,
)
from agent_sdk.store.idempotency import COLUMNS as IDEM_COLUMNS
from agent_sdk.store.idempotency import FIELDS as IDEM_FIELDS
from agent_sdk.store.idempotency import IdempotencyRecord
from agent_sdk.store.workers import WorkerInfo

_KEY_CURSOR = "api_key"
_WORKER_COLUMNS = "name, host, pid, started_at, heartbeat_at, runs_in_flight, health"


class SQLKeyQueries(SQLPrimitives):
    def _for_update(self) -> str:
        """A row-lock clause for reads that precede a write (none by default)."""
        return ""

    def insert_api_key(self, key: ApiKey, secret_hash: str) -> ApiKey:
        values = key_values(key, secret_hash)
        placeholders = ", ".join("?" * len(values))
        try:
            self._exec(
                f"INSERT INTO api_keys ({', '.join(values)}) VALUES ({placeholders})",
                list(values.values()),
            )
        except Conflict as exc:
            raise Conflict(f"API key {key.id!r} already exists") from exc
        except NotFound as exc:
            raise NotFound(f"org {key.org_id!r} not found") from exc
        return key

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

    def api_key_generation(self) -> int | None:
        # Moved by the triggers of migration 0010, never written here.
        row = self._one("SELECT value FROM api_key_generation WHERE id = 1")
        return int(row[0]) if row is not None else None


class SQLWorkerQueries(SQLPrimitives):
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


# -- Idempotency-Key claims ----------------------------------------------------------------------
_REPLACE = ", ".join(f"{name} = excluded.{name}" for name in IDEM_FIELDS[2:])
# One statement settles who holds the key: the primary key lets one insert land; a claim whose
# expires_at has passed is overwritten by the upsert's conditional UPDATE (lazy cleanup, with no
# window between a DELETE and an INSERT for another writer to slip into); a live claim makes the
# statement a no-op that returns no row. On Postgres (READ COMMITTED) a second claimant's upsert
# waits on the first one's uncommitted row, and once that commits the WHERE is evaluated on it.
_CLAIM = (
    f"INSERT INTO idempotency_keys ({IDEM_COLUMNS}) VALUES ({', '.join('?' * len(IDEM_FIELDS))})"
    f" ON CONFLICT (org_id, key) DO UPDATE SET {_REPLACE}"
    " WHERE idempotency_keys.expires_at <= excluded.created_at"
    " RETURNING 1"
)


class SQLIdempotencyQueries(SQLPrimitives):
    """Idempotency-Key claims (:class:`agent_sdk.store.idempotency.IdempotencyStore`)."""

    # A clause for the purge's subquery: Postgres adds FOR UPDATE SKIP LOCKED, so two sweepers
    # delete different rows instead of queueing on each other (SQLite has one writer anyway).
    _PURGE_LOCK = ""

    if TYPE_CHECKING:  # provided by SQLStore (agent_sdk.store.sealing)

        def _idem_values(self, record: IdempotencyRecord) -> dict[str, Any]: ...
        def _idem_record(self, row: Sequence[Any]) -> IdempotencyRecord: ...

    def claim_idempotency_key(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        values = self._idem_values(record)  # the stored answer sealed (encryption at rest)
        # Inside a transaction (the caller's, normally), so the read of the holder sees the one
        # that beat us: SQLite's BEGIN IMMEDIATE holds the write lock from the upsert to the
        # read; on Postgres ON CONFLICT DO UPDATE locks the conflicting row even when its WHERE
        # is false, so the holder cannot change before we commit.
        with self.transaction():
            if self._one(_CLAIM, [values[name] for name in IDEM_FIELDS]) is not None:
                return None
            row = self._one(
                f"SELECT {IDEM_COLUMNS} FROM idempotency_keys WHERE org_id = ? AND key = ?",
                (record.org_id, record.key),
            )
        if row is None:  # the holder was purged between the two statements (Postgres only)
            raise Conflict(f"Idempotency-Key {record.key!r} could not be claimed; retry")
        return self._idem_record(row)

    def get_idempotency_key(self, org_id: str, key: str, *, now: str) -> IdempotencyRecord | None:
        row = self._one(
            f"SELECT {IDEM_COLUMNS} FROM idempotency_keys"
            " WHERE org_id = ? AND key = ? AND expires_at > ?",
            (org_id, key, now),
        )
        return None if row is None else self._idem_record(row)

    def purge_idempotency_keys(self, before: str, *, limit: int = 100) -> int:
        # The subquery walks the expires_at index from its oldest end and stops at `limit`, so the
        # cost is bounded by what is deleted, not by the size of the table.
        return self._exec(
            "DELETE FROM idempotency_keys WHERE (org_id, key) IN ("
            " SELECT org_id, key FROM idempotency_keys WHERE expires_at <= ?"
            f" ORDER BY expires_at LIMIT ?{self._PURGE_LOCK})",
            (before, max(0, limit)),
        )


__all__ = ["SQLIdempotencyQueries", "SQLKeyQueries", "SQLWorkerQueries"]
