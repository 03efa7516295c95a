"""The audit log on SQLite: a mixin of :class:`agent_sdk.store.sqlite.SQLiteStore`.

Appends are race-free across threads *and* processes because the read of the last record and
the insert of the next happen inside one ``BEGIN IMMEDIATE`` transaction: it takes SQLite's
write lock before the read, so a second writer waits on the busy timeout instead of reading the
same last seq. (A deferred transaction would let two writers read the same head and then one of
them fail, or, with a retry, fork the chain.)
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from agent_sdk.canonical import canonical_json, chain_hash
from agent_sdk.errors import InvalidInput
from agent_sdk.ids import utcnow
from agent_sdk.records import AuditEntry, Checkpoint
from agent_sdk.store._rows import MAX_LIMIT, check_limit
from agent_sdk.store.audit import AUDIT_FIELDS

_COLUMNS = (
    "org_id seq time actor actor_kind action target outcome request_id source_ip details"
    " prev_hash hash"
).split()
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM audit_log"
_INSERT = (
    f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)})"
)
_CHECKPOINT_COLUMNS = "org_id, seq, head_hash, time, signature, key_id"


def _entry(r: Sequence[Any]) -> AuditEntry:
    (org_id, seq, time, actor, actor_kind, action, target, outcome, request_id, source_ip,
     details, prev_hash, hash_) = r  # fmt: skip
    return AuditEntry(
        org_id, seq, time, actor, actor_kind, action, target, outcome, request_id, source_ip,
        json.loads(details), prev_hash, hash_,
    )  # fmt: skip


class SQLiteAuditMixin:
    """AuditStore on SQLite. Relies on SQLiteStore's ``_query``, ``_one``, ``_exec`` and
    ``transaction``."""

    if TYPE_CHECKING:

        def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]: ...

        def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None: ...

        def _exec(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int: ...

        def transaction(self) -> AbstractContextManager[None]: ...

    def append_audit(
        self, org_id: str, entry_fields: Mapping[str, Any], *, chain: bool
    ) -> AuditEntry:
        unknown = sorted(set(entry_fields) - set(AUDIT_FIELDS))
        if unknown:
            raise InvalidInput(f"unknown audit field(s) {', '.join(unknown)}")
        details = entry_fields.get("details") or {}
        if not isinstance(details, Mapping):
            raise InvalidInput("audit details must be a JSON object")
        details_text = canonical_json(details).decode("utf-8")
        values: dict[str, Any] = {name: entry_fields.get(name) for name in AUDIT_FIELDS}
        # What is read back is what was hashed: JSON turns tuples into lists, for example.
        values["details"] = json.loads(details_text)
        with self.transaction():
            # One seek: the last row of the org's range of the (org_id, seq) primary key.
            last = self._one(
                "SELECT seq, hash FROM audit_log WHERE org_id = ? ORDER BY seq DESC LIMIT 1",
                (org_id,),
            )
            values["org_id"] = org_id
            values["seq"] = (last[0] if last else 0) + 1
            # Taken under the write lock, so times follow seq order (on one clock).
            values["time"] = values["time"] or utcnow()
            values["prev_hash"] = last[1] if chain and last else None
            values["hash"] = chain_hash(values["prev_hash"], values) if chain else None
            # Positional parameters: binding by name costs more than the seek above.
            self._exec(_INSERT, [details_text if c == "details" else values[c] for c in _COLUMNS])
        return AuditEntry(**values)

    def last_audit(self, org_id: str) -> AuditEntry | None:
        row = self._one(f"{_SELECT} WHERE org_id = ? ORDER BY seq DESC LIMIT 1", (org_id,))
        return _entry(row) if row else None

    def list_audit(
        self,
        org_id: str,
        *,
        after_seq: int = 0,
        limit: int = 100,
        since: str | None = None,
        until: str | None = None,
    ) -> list[AuditEntry]:
        limit = check_limit(limit)
        if after_seq < 0:
            raise InvalidInput("after_seq must be 0 or a seq")
        # The time filters ride along the seq range scan: no extra index to keep up on every
        # append. Skipping far into a long log costs a scan, never memory.
        where, params = "org_id = ? AND seq > ?", [org_id, after_seq]
        if since is not None:
            where += " AND time >= ?"
            params.append(since)
        if until is not None:
            where += " AND time < ?"
            params.append(until)
        rows = self._query(f"{_SELECT} WHERE {where} ORDER BY seq LIMIT ?", [*params, limit])
        return [_entry(r) for r in rows]

    def iter_audit(
        self,
        org_id: str,
        *,
        after_seq: int = 0,
        since: str | None = None,
        until: str | None = None,
    ) -> Iterator[AuditEntry]:
        # Each page is its own short read: a long export never pins an old WAL snapshot.
        while True:
            page = self.list_audit(
                org_id, after_seq=after_seq, limit=MAX_LIMIT, since=since, until=until
            )
            yield from page
            if len(page) < MAX_LIMIT:
                return
            after_seq = page[-1].seq

    def insert_checkpoint(self, checkpoint: Checkpoint) -> bool:
        # Insert-or-ignore: two on-demand checkpoints of an unchanged log carry the same seq.
        inserted = self._exec(
            f"INSERT INTO audit_checkpoints ({_CHECKPOINT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (org_id, seq) DO NOTHING",
            (
                checkpoint.org_id,
                checkpoint.seq,
                checkpoint.head_hash,
                checkpoint.time,
                checkpoint.signature,
                checkpoint.key_id,
            ),
        )
        return inserted == 1


__all__ = ["SQLiteAuditMixin"]
