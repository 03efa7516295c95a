"""API keys in the SQLite store (:class:`agent_sdk.store.api_keys.KeyStore`).

A mixin of :class:`~agent_sdk.store.sqlite.SQLiteStore`, written only against the helpers that
class already has (``_exec``, ``_one``, ``_query``, ``transaction``), so driver errors are
translated the same way as everywhere else in the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from agent_sdk.errors import Conflict, NotFound
from agent_sdk.records import ApiKey
from agent_sdk.store._sql_mixins import SQLKeyQueries
from agent_sdk.store.api_keys import (
    key_values,
)

if TYPE_CHECKING:
    import sqlite3


class SQLiteKeysMixin(SQLKeyQueries):
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


__all__ = ["SQLiteKeysMixin"]
