"""API keys in the SQLite store (:class:`agent_sdk.store.keys.KeyStore`).

A mixin of :class:`~agent_sdk.store.sqlite.SQLiteStore`, written only against the helpers that
class already has (``_exec``, ``_one``, ``_query``, ``transaction``), so driver errors are
translated the same way as everywhere else in the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from agent_sdk.errors import Conflict, NotFound
from agent_sdk.records import ApiKey, Page
from agent_sdk.store._rows import check_limit, cursor_key, make_page
from agent_sdk.store.keys import (
    KEY_COLUMNS,
    AuthRecord,
    check_updatable,
    key_column_value,
    key_from_row,
    key_values,
)

if TYPE_CHECKING:
    import sqlite3

_CURSOR_KIND = "api_key"


class SQLiteKeysMixin:
    if TYPE_CHECKING:  # provided by SQLiteStore

        def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]: ...
        def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None: ...
        def _exec(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int: ...
        def transaction(self) -> AbstractContextManager[None]: ...

    def insert_api_key(self, key: ApiKey, secret_hash: str) -> ApiKey:
        values = key_values(key, secret_hash)
        columns = ", ".join(values)
        placeholders = ", ".join(f":{name}" for name in values)
        try:
            self._exec(f"INSERT INTO api_keys ({columns}) VALUES ({placeholders})", values)
        except Conflict as exc:
            raise Conflict(f"API key {key.id!r} already exists") from exc
        except NotFound as exc:
            raise NotFound(f"org {key.org_id!r} not found") from exc
        return key

    def get_api_key(self, org_id: str, key_id: str) -> ApiKey:
        row = self._one(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ? AND org_id = ?", (key_id, org_id)
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
            params.append(cursor_key(cursor, _CURSOR_KIND))
        rows = self._query(sql + " ORDER BY id DESC LIMIT ?", [*params, limit + 1])
        return make_page([key_from_row(r) for r in rows], limit, _CURSOR_KIND, lambda k: k.id)

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
            " FROM api_keys WHERE id = ?",
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


__all__ = ["SQLiteKeysMixin"]
