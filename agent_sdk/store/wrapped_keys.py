"""The keys of encryption at rest in the store (table ``encryption_keys``, migration 0007), and the
raw access the re-encryption job needs.

The store keeps wrapped keys only: every row's KEK is wrapped by a master key that never enters
the database, and its DEK by that KEK (see :mod:`agent_sdk.governance.envelope`). The SQL is
shared by both engines (``?`` placeholders, which the Postgres store rewrites); what differs is
how freed space is scrubbed after keys are destroyed.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from agent_sdk.errors import AgentSDKError, InvalidInput
from agent_sdk.records.sealed import ACTIVE, DESTROYED, RETIRED, STATES, StoredKey
from agent_sdk.store.sealing import SEALED_COLUMNS, ColumnCodec

_COLUMNS = "org_id, id, state, master_key_id, kek, dek, created_at, retired_at, destroyed_at"

# Per table of sealed data: the key columns of one org's rows, in keyset order, and the SELECT
# of the rows that follow a key (the org and the key bounds come first in the parameters).
_KEYS: dict[str, tuple[str, ...]] = {
    "runs": ("id",),
    "events": ("run_id", "seq"),
    "sessions": ("id",),
    "idempotency_keys": ("key",),
}
_SCAN: dict[str, str] = {
    "runs": "SELECT id, {cols} FROM runs WHERE org_id = ? AND id > ?",
    # Events carry no index on org_id: walk the org's runs on their index and each run's
    # events on the primary key. The second bound resumes inside the run the last batch ended in.
    "events": (
        "SELECT e.run_id, e.seq, {cols} FROM runs r JOIN events e ON e.run_id = r.id"
        " WHERE r.org_id = ? AND e.org_id = r.org_id AND r.id >= ? AND (r.id > ? OR e.seq > ?)"
    ),
    "sessions": "SELECT id, {cols} FROM sessions WHERE org_id = ? AND id > ?",
    "idempotency_keys": "SELECT key, {cols} FROM idempotency_keys WHERE org_id = ? AND key > ?",
}
_ORDER = {
    "runs": " ORDER BY id",
    "events": " ORDER BY e.run_id, e.seq",
    "sessions": " ORDER BY id",
    "idempotency_keys": " ORDER BY key",
}


@dataclass(frozen=True, slots=True)
class SealedRow:
    """One row of sealed data as stored: its key (after the org) and its sealed columns."""

    key: tuple[Any, ...]
    values: dict[str, str | None]


class EncryptionKeyStore(Protocol):
    codec: ColumnCodec | None

    def transaction(self) -> AbstractContextManager[None]: ...

    def in_transaction(self) -> bool:
        """Whether this thread is inside ``transaction()`` (its writes not yet committed)."""
        ...

    def get_encryption_key(self, org_id: str, key_id: str) -> StoredKey | None: ...

    def active_encryption_key(self, org_id: str) -> StoredKey | None: ...

    def list_encryption_keys(self, org_id: str) -> list[StoredKey]:
        """The org's key generations, oldest first."""
        ...

    def insert_encryption_key(self, key: StoredKey) -> bool:
        """Insert ``key``; False (and nothing written) when the org already has an active key
        and ``key`` is active: another process made the org's key first."""
        ...

    def retire_encryption_keys(self, org_id: str, when: str) -> list[str]:
        """Retire the org's active key; return its id (or nothing when there was none)."""
        ...

    def destroy_encryption_keys(self, org_id: str, when: str) -> list[str]:
        """Overwrite the wrapped material of every key of the org that is not destroyed yet;
        return their ids. Freed space is zeroed where the engine can (SQLite secure_delete)."""
        ...

    def scrub_freed_space(self) -> bool:
        """After a commit that destroyed keys: move the old row images out of the database
        files (SQLite: checkpoint and truncate the WAL; Postgres: rewrite the key table).
        Outside any transaction. False when the engine could not do it now."""
        ...

    def encryption_master_key_ids(self) -> list[str]:
        """The fingerprints of the master keys that wrapped keys which are not destroyed."""
        ...

    def sealed_rows(
        self, org_id: str, table: str, after: tuple[Any, ...] | None, limit: int, keep: str
    ) -> list[SealedRow]:
        """Up to ``limit`` of the org's rows of ``table`` after key ``after``, in key order, that
        have a sealed column not starting with ``keep`` (plaintext included)."""
        ...

    def replace_sealed(
        self, org_id: str, table: str, key: tuple[Any, ...], column: str, old: str, new: str
    ) -> bool:
        """Set one sealed column to ``new`` if it still holds ``old`` (compare-and-set, so a
        concurrent write is never overwritten). Whether it changed."""
        ...


def sealed_key_columns(table: str) -> tuple[str, ...]:
    try:
        return _KEYS[table]
    except KeyError:
        raise InvalidInput(f"no sealed data in table {table!r}") from None


def _key(r: Sequence[Any]) -> StoredKey:
    return StoredKey(*r)


class SQLEncryptionKeysMixin:
    """The implementation for both SQL stores, written against their shared helpers."""

    if TYPE_CHECKING:  # provided by the store
        scheme: ClassVar[str]

        def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...
        def _one(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
        def _exec(self, sql: str, params: Sequence[Any] = ()) -> int: ...
        def _in_transaction(self) -> bool: ...
        def transaction(self) -> AbstractContextManager[None]: ...

    def in_transaction(self) -> bool:
        return self._in_transaction()

    def get_encryption_key(self, org_id: str, key_id: str) -> StoredKey | None:
        row = self._one(
            f"SELECT {_COLUMNS} FROM encryption_keys WHERE org_id = ? AND id = ?", (org_id, key_id)
        )
        return None if row is None else _key(row)

    def active_encryption_key(self, org_id: str) -> StoredKey | None:
        row = self._one(
            f"SELECT {_COLUMNS} FROM encryption_keys WHERE org_id = ? AND state = ?",
            (org_id, ACTIVE),
        )
        return None if row is None else _key(row)

    def list_encryption_keys(self, org_id: str) -> list[StoredKey]:
        rows = self._query(
            f"SELECT {_COLUMNS} FROM encryption_keys WHERE org_id = ? ORDER BY created_at, id",
            (org_id,),
        )
        return [_key(r) for r in rows]

    def insert_encryption_key(self, key: StoredKey) -> bool:
        if key.state not in STATES:
            raise InvalidInput(f"unknown key state {key.state!r}")
        # DO NOTHING settles a race for the org's first key: the partial unique index on the
        # active key lets one insert land (on Postgres the loser waits for the winner's commit).
        return (
            self._exec(
                f"INSERT INTO encryption_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (
                    key.org_id,
                    key.id,
                    key.state,
                    key.master_key_id,
                    key.kek,
                    key.dek,
                    key.created_at,
                    key.retired_at,
                    key.destroyed_at,
                ),
            )
            == 1
        )

    def retire_encryption_keys(self, org_id: str, when: str) -> list[str]:
        rows = self._query(
            "UPDATE encryption_keys SET state = ?, retired_at = ?"
            " WHERE org_id = ? AND state = ? RETURNING id",
            (RETIRED, when, org_id, ACTIVE),
        )
        return [str(r[0]) for r in rows]

    def destroy_encryption_keys(self, org_id: str, when: str) -> list[str]:
        with self.transaction():
            sqlite = self.scheme == "sqlite"
            if sqlite:
                # Zero the bytes of the overwritten cells in the page too, not just unlink them
                # (many builds have this on by default; this connection keeps it on).
                self._exec("PRAGMA secure_delete = ON")
            rows = self._query(
                "UPDATE encryption_keys SET state = ?, kek = NULL, dek = NULL, destroyed_at = ?"
                " WHERE org_id = ? AND state <> ? RETURNING id",
                (DESTROYED, when, org_id, DESTROYED),
            )
        return sorted(str(r[0]) for r in rows)

    def scrub_freed_space(self) -> bool:
        if self._in_transaction():
            raise AgentSDKError("scrub_freed_space() must run outside a transaction")
        try:
            if self.scheme == "sqlite":
                # The WAL still holds the pages as they were before the destroy: copy the new
                # pages into the database file and truncate the log. A reader holding an old
                # snapshot makes this incomplete (busy = 1) until it is done.
                row = self._one("PRAGMA wal_checkpoint(TRUNCATE)")
                return row is None or int(row[0]) == 0
            # A plain UPDATE leaves the old row versions in the heap until vacuumed; VACUUM
            # FULL writes the (small) table anew and drops the old files.
            self._exec("VACUUM FULL encryption_keys")
            return True
        except AgentSDKError:
            return False

    def encryption_master_key_ids(self) -> list[str]:
        rows = self._query(
            "SELECT DISTINCT master_key_id FROM encryption_keys WHERE state <> ?"
            " ORDER BY master_key_id",
            (DESTROYED,),
        )
        return [str(r[0]) for r in rows]

    # -- raw access for re-encryption -----------------------------------------------------------
    def sealed_rows(
        self, org_id: str, table: str, after: tuple[Any, ...] | None, limit: int, keep: str
    ) -> list[SealedRow]:
        keys = sealed_key_columns(table)
        columns = SEALED_COLUMNS[table]
        prefix = "e." if table == "events" else ""
        cols = ", ".join(prefix + c for c in columns)
        sql = _SCAN[table].format(cols=cols)
        params: list[Any] = [org_id]
        if table == "events":
            run_id, seq = after if after is not None else ("", 0)
            params += [run_id, run_id, seq]
        else:
            params.append(after[0] if after is not None else "")
        # NULL columns compare as NULL, which is not true: a run without output needs nothing.
        stale = " OR ".join(f"substr({prefix}{c}, 1, ?) <> ?" for c in columns)
        for _ in columns:
            params += [len(keep), keep]
        rows = self._query(f"{sql} AND ({stale}){_ORDER[table]} LIMIT ?", [*params, limit])
        n = len(keys)
        return [SealedRow(tuple(r[:n]), dict(zip(columns, r[n:], strict=True))) for r in rows]

    def replace_sealed(
        self, org_id: str, table: str, key: tuple[Any, ...], column: str, old: str, new: str
    ) -> bool:
        keys = sealed_key_columns(table)
        if column not in SEALED_COLUMNS[table] or len(key) != len(keys):
            raise InvalidInput(f"{table}.{column} is not a sealed column")
        # Column and table names come from SEALED_COLUMNS only, never from a caller's text.
        where = " AND ".join(f"{k} = ?" for k in keys)
        return (
            self._exec(
                f"UPDATE {table} SET {column} = ? WHERE {where} AND org_id = ? AND {column} = ?",
                (new, *key, org_id, old),
            )
            == 1
        )


__all__ = [
    "EncryptionKeyStore",
    "SQLEncryptionKeysMixin",
    "SealedRow",
    "sealed_key_columns",
]
