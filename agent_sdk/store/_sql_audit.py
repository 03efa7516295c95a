"""The audit log on SQLite and Postgres, written once (``?`` placeholders, which the Postgres
store turns into ``%s``), against the store's ``_exec``, ``_one``, ``_query`` and
``transaction``.

The one rule a store must get right is the append: appends from many threads and processes
form one gap-free chain per org. The locked path reads the org's head and inserts the next
record in one write transaction that no other locked appender of the org can enter. How it is
kept to one appender is the one thing the engines do differently (:meth:`_lock_audit_head`):
SQLite's ``BEGIN IMMEDIATE`` takes the write lock before the read, so a second writer waits on
the busy timeout instead of reading the same last seq; Postgres takes an advisory lock on the org
until commit, after which the head read is a fresh READ COMMITTED snapshot.

The usual append skips the read: the store remembers the head it last wrote for each org and
inserts the next record with one statement that writes only if that head row is still there
with its hash and nothing follows it. The (org_id, seq) primary key lets one record only take a
seq (``ON CONFLICT DO NOTHING``: the loser of a race writes nothing instead of failing), so the
statement is safe without the org's lock, and outside a caller's transaction it is the whole
transaction (a lone write statement commits on its own; on SQLite it takes the write lock
first). It writes nothing when another process or thread has appended since, when the
transaction that wrote the remembered head rolled back, or when a retention sweep cut the log
past it; the append then takes the locked path, whose insert reads the head again if a lock-free
appender took that seq meanwhile (only possible on Postgres).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agent_sdk.canonical import canonical_text, hash_payload, payload_json
from agent_sdk.errors import InvalidInput
from agent_sdk.ids import utcnow
from agent_sdk.store._rows import MAX_LIMIT, check_limit
from agent_sdk.store._sql_primitives import SQLPrimitives
from agent_sdk.store.audit import AUDIT_FIELDS

if TYPE_CHECKING:
    from agent_sdk.records import AuditEntry, Checkpoint

_COLUMNS = (
    "org_id seq time actor actor_kind action target outcome request_id source_ip details"
    " prev_hash hash"
).split()
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM audit_log"
# Either insert writes nothing when the seq is taken (one row, or none: the caller reads the head
# again), rather than failing the transaction it runs in.
_INSERT = (
    f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
    " ON CONFLICT (org_id, seq) DO NOTHING"
)
# The insert of the next record when the org's head is still (seq, hash) as remembered: the
# head row exists and nothing follows it. Two seeks of the (org_id, seq) primary key.
_INSERT_AFTER = (
    f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) SELECT {', '.join('?' * len(_COLUMNS))}"
    " WHERE EXISTS (SELECT 1 FROM audit_log WHERE org_id = ? AND seq = ?"
    " AND COALESCE(hash, '') = ?)"
    " AND NOT EXISTS (SELECT 1 FROM audit_log WHERE org_id = ? AND seq > ?)"
    " ON CONFLICT (org_id, seq) DO NOTHING"
)
_PICK_COLUMNS = operator.itemgetter(*_COLUMNS)
_FIELDS = frozenset(AUDIT_FIELDS)
# A head: the seq and hash of an org's last record ((0, None) for an empty log).
_Head = tuple[int, str | None]
# Types that JSON reads back as themselves: details made only of these need no round trip.
_SCALARS = frozenset({str, int, float, bool, type(None)})
_TEXT = frozenset({str})
# Orgs whose head is remembered, at most; past it the memory starts again (a miss costs a read).
_MAX_HEADS = 4096
CHECKPOINT_COLUMNS = "org_id, seq, head_hash, time, signature, key_id"

# Orgs whose newest record is hash-chained and newer than their newest checkpoint: the ones a
# periodic checkpoint should sign. Each subquery is one seek of an (org_id, seq) primary key,
# so the cost grows with the number of orgs, never with the length of their logs.
_UNSIGNED = """
SELECT id FROM (
    SELECT o.id AS id,
        (SELECT a.seq FROM audit_log a WHERE a.org_id = o.id ORDER BY a.seq DESC LIMIT 1) AS head,
        (SELECT a.hash FROM audit_log a WHERE a.org_id = o.id ORDER BY a.seq DESC LIMIT 1) AS h,
        (SELECT c.seq FROM audit_checkpoints c WHERE c.org_id = o.id ORDER BY c.seq DESC LIMIT 1)
            AS signed
    FROM orgs o WHERE o.id > ? ORDER BY o.id LIMIT ?
) heads
WHERE head IS NOT NULL AND h IS NOT NULL AND head > COALESCE(signed, 0)
"""


def _entry(r: Sequence[Any]) -> AuditEntry:
    (org_id, seq, time, actor, actor_kind, action, target, outcome, request_id, source_ip,
     details, prev_hash, hash_) = r  # fmt: skip
    from agent_sdk.records import AuditEntry

    return AuditEntry(
        org_id, seq, time, actor, actor_kind, action, target, outcome, request_id, source_ip,
        json.loads(details), prev_hash, hash_,
    )  # fmt: skip


def _link(
    values: dict[str, Any], details_text: str, head: tuple[int, str | None], chain: bool
) -> None:
    """Make ``values`` the record after ``head`` (its seq and hash): seq, prev_hash, hash."""
    values["seq"] = head[0] + 1
    values["prev_hash"] = head[1] if chain else None
    values["hash"] = (
        hash_payload(values["prev_hash"], payload_json(values, details_text)) if chain else None
    )


def _row(values: dict[str, Any], details_text: str) -> tuple[Any, ...]:
    # Positional parameters: binding by name costs more than the seek for the head. The columns
    # are picked in one call, with the stored text standing in for details meanwhile.
    details = values["details"]
    values["details"] = details_text
    row: tuple[Any, ...] = _PICK_COLUMNS(values)
    values["details"] = details
    return row


def _read_back(details: Mapping[str, Any], text: str) -> dict[str, Any]:
    """``details`` as the store will read it back (JSON turns tuples into lists, for example),
    so the record returned is the record hashed. A flat object of text keys and JSON scalars
    reads back as a copy of itself, which spares the parse."""
    if (
        type(details) is dict
        and _SCALARS.issuperset(map(type, details.values()))
        and _TEXT.issuperset(map(type, details))
    ):
        return dict(details)
    parsed: dict[str, Any] = json.loads(text)
    return parsed


class SQLAuditQueries(SQLPrimitives):
    """The AuditStore of SQLiteStore and PostgresStore."""

    # org -> the last record this store appended: a guess, checked by the insert (see the module
    # docstring). Created on first use, shared by the store's threads.
    _audit_heads: dict[str, _Head] | None = None

    if TYPE_CHECKING:  # provided by each store

        def _in_transaction(self) -> bool: ...

    def _lock_audit_head(self, org_id: str) -> None:
        """Inside the append's transaction, before the head is read: make this the org's only
        appender until commit. Nothing to do where the transaction already holds the database's
        one write lock (SQLite's ``BEGIN IMMEDIATE``)."""

    def append_audit(
        self, org_id: str, entry_fields: Mapping[str, Any], *, chain: bool
    ) -> AuditEntry:
        if not _FIELDS.issuperset(entry_fields):
            unknown = sorted(set(entry_fields) - _FIELDS)
            raise InvalidInput(f"unknown audit field(s) {', '.join(unknown)}")
        details = entry_fields.get("details") or {}
        if type(details) is not dict and not isinstance(details, Mapping):
            raise InvalidInput("audit details must be a JSON object")
        # Serialised once: this text is stored, and the hash covers the record around it.
        details_text = canonical_text(details)
        values: dict[str, Any] = dict.fromkeys(AUDIT_FIELDS)
        values.update(entry_fields)
        values["details"] = _read_back(details, details_text)
        values["org_id"] = org_id
        heads = self._audit_heads
        if heads is None:
            heads = self._audit_heads = {}
        given_time = values["time"]
        known = heads.get(org_id)
        if known is not None and not self._in_transaction():
            # Alone, with the head remembered: one statement, committed on its own. The time is
            # taken after the head was looked up, so it is not older than that head's.
            values["time"] = given_time or utcnow()
            if self._insert_after(values, details_text, known, chain):
                return self._appended(heads, values)
            known = None  # stale: take the locked path
        with self.transaction():
            self._lock_audit_head(org_id)
            # Taken under the lock, so times follow seq order (on one clock).
            values["time"] = given_time or utcnow()
            if known is None or not self._insert_after(values, details_text, known, chain):
                while True:  # again only if an appender without the lock took the seq
                    _link(values, details_text, self._read_head(org_id), chain)
                    if self._exec(_INSERT, _row(values, details_text)) == 1:
                        break
        return self._appended(heads, values)

    def _read_head(self, org_id: str) -> tuple[int, str | None]:
        # One seek: the last row of the org's range of the (org_id, seq) primary key.
        last = self._one(
            "SELECT seq, hash FROM audit_log WHERE org_id = ? ORDER BY seq DESC LIMIT 1", (org_id,)
        )
        return (last[0], last[1]) if last else (0, None)

    def _appended(self, heads: dict[str, _Head], values: dict[str, Any]) -> AuditEntry:
        """Remember the record just written as its org's head, and return it."""
        if len(heads) >= _MAX_HEADS:
            heads.clear()
        heads[values["org_id"]] = (values["seq"], values["hash"])
        from agent_sdk.records import AuditEntry

        return AuditEntry(**values)

    def _insert_after(
        self, values: dict[str, Any], details_text: str, head: _Head, chain: bool
    ) -> bool:
        """Insert ``values`` as the record after ``head`` if that is still the org's last row.

        Both checks are needed even for a head this store saw committed: since then, others may
        have appended and a retention sweep cut the log past that head, freeing the next seq."""
        _link(values, details_text, head, chain)
        org_id, seq = values["org_id"], head[0]
        params = (*_row(values, details_text), org_id, seq, head[1] or "", org_id, seq)
        return self._exec(_INSERT_AFTER, params) == 1

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
        # Each page is its own short read: a long export never pins an old snapshot.
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
            f"INSERT INTO audit_checkpoints ({CHECKPOINT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
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

    def list_checkpoints(
        self, org_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Checkpoint]:
        if after_seq < 0:
            raise InvalidInput("after must be 0 or a seq")
        sql = f"SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE org_id = ? AND seq > ?"
        params: list[Any] = [org_id, after_seq]
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(check_limit(limit))
        from agent_sdk.records import Checkpoint

        return [Checkpoint(*r) for r in self._query(sql, params)]

    def last_checkpoint(self, org_id: str) -> Checkpoint | None:
        row = self._one(
            f"SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE org_id = ?"
            " ORDER BY seq DESC LIMIT 1",
            (org_id,),
        )
        from agent_sdk.records import Checkpoint

        return Checkpoint(*row) if row else None

    def unsigned_audit_orgs(self, *, after: str = "", limit: int = 500) -> tuple[list[str], str]:
        """The orgs (of up to ``limit`` orgs with ids after ``after``) whose hash-chained log
        has records past its newest checkpoint, and the id to continue after ("" when done)."""
        limit = check_limit(limit)
        orgs = self._query("SELECT id FROM orgs WHERE id > ? ORDER BY id LIMIT ?", (after, limit))
        if not orgs:
            return [], ""
        unsigned = [r[0] for r in self._query(_UNSIGNED, (after, limit))]
        return unsigned, (orgs[-1][0] if len(orgs) == limit else "")


__all__ = ["CHECKPOINT_COLUMNS", "SQLAuditQueries"]
