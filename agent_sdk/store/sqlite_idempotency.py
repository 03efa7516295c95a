"""Idempotency-Key claims in the SQLite store
(:class:`agent_sdk.store.idempotency.IdempotencyStore`).

A mixin of :class:`~agent_sdk.store.sqlite.SQLiteStore`, written only against the helpers that
class already has (``_exec``, ``_one``, ``_query``, ``transaction``), so driver errors are
translated the same way as everywhere else in the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from agent_sdk.errors import Conflict
from agent_sdk.store.idempotency import COLUMNS, FIELDS, IdempotencyRecord

if TYPE_CHECKING:
    import sqlite3

_VALUES = ", ".join("?" * len(FIELDS))
_REPLACE = ", ".join(f"{name} = excluded.{name}" for name in FIELDS[2:])

# One statement settles who holds the key: the primary key lets one insert land; a claim whose
# expires_at has passed is overwritten by the upsert's conditional UPDATE (lazy cleanup, with no
# window between a DELETE and an INSERT for another writer to slip into); a live claim makes the
# statement a no-op that returns no row.
_CLAIM = (
    f"INSERT INTO idempotency_keys ({COLUMNS}) VALUES ({_VALUES})"
    f" ON CONFLICT (org_id, key) DO UPDATE SET {_REPLACE}"
    " WHERE idempotency_keys.expires_at <= excluded.created_at"
    " RETURNING 1"
)


class SQLiteIdempotencyMixin:
    if TYPE_CHECKING:  # provided by SQLiteStore

        def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]: ...
        def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None: ...
        def _exec(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int: ...
        def transaction(self) -> AbstractContextManager[None]: ...
        def _idem_values(self, record: IdempotencyRecord) -> dict[str, Any]: ...
        def _idem_record(self, row: Sequence[Any]) -> IdempotencyRecord: ...

    def claim_idempotency_key(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        values = self._idem_values(record)  # the stored answer sealed (encryption at rest)
        # Inside a transaction (the caller's, normally): BEGIN IMMEDIATE holds the write lock from
        # the upsert to the read of the holder, so the holder read is the one that beat us.
        with self.transaction():
            if self._one(_CLAIM, [values[name] for name in FIELDS]) is not None:
                return None
            row = self._one(
                f"SELECT {COLUMNS} FROM idempotency_keys WHERE org_id = ? AND key = ?",
                (record.org_id, record.key),
            )
        if row is None:  # cannot happen under the write lock; say so rather than return None
            raise Conflict(f"Idempotency-Key {record.key!r} could not be claimed; retry")
        return self._idem_record(row)

    def get_idempotency_key(self, org_id: str, key: str, *, now: str) -> IdempotencyRecord | None:
        row = self._one(
            f"SELECT {COLUMNS} FROM idempotency_keys"
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
            " ORDER BY expires_at LIMIT ?)",
            (before, max(0, limit)),
        )


__all__ = ["SQLiteIdempotencyMixin"]
