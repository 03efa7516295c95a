"""The store's hook for encryption at rest: tenant columns pass through a codec on their way in
and out, so every read path (get, list, events, idempotent replays) decrypts the same way on
SQLite and Postgres.

The store knows no keys and no policy. It holds an optional :class:`ColumnCodec` (``None``: store
text as given) and calls it with the org, table, row id and column of each sealed value, which
the codec binds into the ciphertext: a value copied into another row, column or org no longer
opens. Which columns are sealed is :data:`SEALED_COLUMNS`; ids, timestamps, statuses, usage
counts and everything the queries filter on stay as they are.

Values that do not start with :data:`SEALED_PREFIX` are plaintext written before encryption was
turned on; they read back unchanged, and the re-encryption job finds them. Data sealed under a
key that was destroyed (crypto-shredding) reads as a fixed placeholder, so listings of ids and
statuses keep working; an Idempotency-Key replay of such a run is refused instead, because a
placeholder is not the answer the first request got.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from agent_sdk.errors import ConfigError, Conflict, KeyDestroyed, NotFound
from agent_sdk.ids import utcnow
from agent_sdk.records import Event, Run, Session
from agent_sdk.records.sealed import SEALED_PREFIX
from agent_sdk.store._rows import RUN_FIELDS, dumps, run_from_row, session_from_row
from agent_sdk.store.idempotency import IdempotencyRecord, record_from_row, record_values

#: The columns whose text is sealed, by table. Everything else stays queryable.
SEALED_COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": ("input", "output", "error", "metadata", "agent_spec"),
    "events": ("data",),
    "sessions": ("metadata",),
    "idempotency_keys": ("response",),
}
_RUN_SEALED = frozenset(SEALED_COLUMNS["runs"])

#: What a value sealed under a destroyed key reads as: text columns, and JSON columns.
SHREDDED_TEXT = "[unreadable: the org's encryption key was destroyed]"
SHREDDED_JSON = {"code": "key_destroyed", "message": SHREDDED_TEXT}
_TEXT_COLUMNS = frozenset({("runs", "input"), ("runs", "output")})
# The position of sessions.metadata in agent_sdk.store._sql.SESSION_SELECT.
_SESSION_METADATA = 3
# Appends that lose their seq to a concurrent writer before giving up.
_APPEND_TRIES = 100
# Runs whose last appended seq a store remembers (see SealingMixin._append_sealed).
_SEQ_CACHE = 10_000


class ColumnCodec(Protocol):
    """Turns a column's text into what is stored and back, bound to where it is stored."""

    def seal(self, org_id: str, table: str, row_id: str, column: str, text: str) -> str:
        """The stored form of ``text`` (starts with SEALED_PREFIX)."""
        ...

    def open(self, org_id: str, table: str, row_id: str, column: str, stored: str) -> str:
        """The text of a sealed value. KeyDestroyed if its key was destroyed; an error of the
        tree for a value that was altered or moved from another row, column or org."""
        ...


def event_row_id(run_id: str, seq: int) -> str:
    """The row id an event's payload is bound to: its run and its seq."""
    return f"{run_id}/{seq}"


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


def shredded(table: str, column: str) -> str:
    """The placeholder text of a value whose key was destroyed, as the column holds it."""
    if (table, column) in _TEXT_COLUMNS:
        return SHREDDED_TEXT
    return json.dumps(SHREDDED_JSON, separators=(",", ":"))


@functools.cache
def _run_positions() -> tuple[tuple[str, int], ...]:
    return tuple((name, RUN_FIELDS.index(name)) for name in SEALED_COLUMNS["runs"])


class SealingMixin:
    """Sealing and opening of tenant columns, for :class:`agent_sdk.store._sql.SQLStore`."""

    #: Set by the runtime when encryption at rest is on (see agent_sdk.governance.envelope).
    codec: ColumnCodec | None = None
    # (org, run) -> the last seq this store committed for it by a lone sealed append.
    _sealed_seqs: dict[tuple[str, str], int] | None = None

    if TYPE_CHECKING:  # provided by the store

        def _one(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
        def _in_transaction(self) -> bool: ...
        def _refuse_append(self, org_id: str, run_id: str, attempt: int | None) -> None: ...

        pushes_events: ClassVar[bool]
        notify: bool  # a store that pushes events: whether this one was opened to

    # -- single values ---------------------------------------------------------------------------
    def _seal(self, org_id: str, table: str, row_id: str, column: str, text: Any) -> Any:
        codec = self.codec
        if codec is None or not isinstance(text, str):
            return text
        return codec.seal(org_id, table, row_id, column, text)

    def _open(self, org_id: str, table: str, row_id: str, column: str, stored: Any) -> Any:
        if not is_sealed(stored):
            return stored
        codec = self.codec
        if codec is None:
            raise ConfigError(
                f"{table}.{column} of org {org_id!r} is encrypted, and encryption at rest is off",
                hint="set AGENT_SDK_ENCRYPTION_ENABLED=true and the master key it was written with",
            )
        try:
            return codec.open(org_id, table, row_id, column, stored)
        except KeyDestroyed:
            if table == "idempotency_keys":
                raise
            return shredded(table, column)

    # -- rows ------------------------------------------------------------------------------------
    def _run_value(self, org_id: str, run_id: str, name: str, value: Any) -> Any:
        """A column value of an update of ``runs`` (already converted), sealed if it must be."""
        return self._seal(org_id, "runs", run_id, name, value) if name in _RUN_SEALED else value

    def _sealed_run_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """The column values of an inserted run with its sealed columns sealed."""
        if self.codec is None:
            return row
        org_id, run_id = row["org_id"], row["id"]
        for name in _RUN_SEALED:
            row[name] = self._seal(org_id, "runs", run_id, name, row[name])
        return row

    def _run(self, row: Sequence[Any]) -> Run:
        """A run from a row in RUN_FIELDS order, its sealed columns opened."""
        positions = _run_positions()
        if self.codec is None and not any(is_sealed(row[i]) for _, i in positions):
            return run_from_row(row)
        values = list(row)
        for name, i in positions:
            values[i] = self._open(values[1], "runs", values[0], name, values[i])
        return run_from_row(values)

    def _session(self, row: Sequence[Any]) -> Session:
        """A session from a row of SESSION_SELECT, its metadata opened."""
        metadata = row[_SESSION_METADATA]
        if not is_sealed(metadata):
            return session_from_row(row)
        values = list(row)
        values[_SESSION_METADATA] = self._open(row[0], "sessions", row[1], "metadata", metadata)
        return session_from_row(values)

    def _event(self, org_id: str, run_id: str, r: Sequence[Any]) -> Event:
        """An event from ``(seq, type, time, data)``, its data opened."""
        data = r[3]
        if is_sealed(data):
            data = self._open(org_id, "events", event_row_id(run_id, r[0]), "data", data)
        return Event(run_id, r[0], r[1], r[2], json.loads(data))

    def _idem_values(self, record: IdempotencyRecord) -> dict[str, Any]:
        values = record_values(record)
        values["response"] = self._seal(
            record.org_id, "idempotency_keys", record.key, "response", values["response"]
        )
        return values

    def _idem_record(self, row: Sequence[Any]) -> IdempotencyRecord:
        values = list(row)
        # FIELDS order: org_id, key, ..., response last.
        values[-1] = self._open(values[0], "idempotency_keys", values[1], "response", values[-1])
        return record_from_row(values)

    # -- events ----------------------------------------------------------------------------------
    def _hold_run(self, org_id: str, run_id: str) -> None:
        """Lock the run against concurrent appends where the engine needs it (Postgres, inside
        a transaction); SQLite's writer lock already serialises them."""

    def _append_sealed(
        self,
        org_id: str,
        run_id: str,
        type: str,
        data: dict[str, Any],
        time: str | None,
        attempt: int | None = None,
    ) -> Event:
        """Append an event whose payload is sealed with its seq bound in, so the seq must be
        known before the insert. It is read (checking the run's org) and inserted explicitly;
        the primary key arbitrates a concurrent append that took the same seq meanwhile (it
        waits for that one to commit, then does nothing) and the payload is sealed again for
        the next seq. So no seq commits while a smaller one is still uncommitted, as with the
        unsealed appends.

        The usual writer of a run's events is the one attempt executing it, so a lone append
        first tries the seq after the last one this store committed for the run: one statement
        instead of two (a round trip less on Postgres). A wrong guess only conflicts, and the
        read decides. Only committed seqs are remembered, so a guess is never past the end.

        The fence (see _sql.append_guard) is read before each try: an event committed after
        that read (a takeover's run.started, a terminal event) holds the seq this try inserts,
        so the insert collides and the next try reads the fence again."""
        when = time or utcnow()
        text = dumps(data)
        insert = (
            "INSERT INTO events (run_id, seq, org_id, type, time, data) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (run_id, seq) DO NOTHING RETURNING seq"
        )
        tail: list[Any] = []
        if self.pushes_events and self.notify:
            from agent_sdk.store.pg_notify import CHANNEL_SQL, payload_run_id

            # Announced to other processes in the same statement (sent on commit, only then).
            insert = (
                f"WITH appended AS ({insert})"
                f" SELECT seq, pg_notify({CHANNEL_SQL}, seq || ' ' || ?) FROM appended"
            )
            tail.append(payload_run_id(run_id))
        self._hold_run(org_id, run_id)
        alone = not self._in_transaction()
        seqs = self._sealed_seqs
        if seqs is None:
            seqs = self._sealed_seqs = {}
        guess = seqs.get((org_id, run_id)) if alone else None
        for _ in range(_APPEND_TRIES):
            try:
                self._refuse_append(org_id, run_id, attempt)
            except NotFound:
                seqs.pop((org_id, run_id), None)
                raise
            if guess is not None:
                seq, guess = guess + 1, None
            else:
                row = self._one(
                    "SELECT (SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id = ?) + 1"
                    " FROM runs WHERE id = ? AND org_id = ?",
                    (run_id, run_id, org_id),
                )
                if row is None:
                    seqs.pop((org_id, run_id), None)
                    raise NotFound(f"run {run_id!r} not found")
                seq = int(row[0])
            sealed = self._seal(org_id, "events", event_row_id(run_id, seq), "data", text)
            try:
                done = self._one(insert, (run_id, seq, org_id, type, when, sealed, *tail))
            except NotFound:
                if not alone:
                    raise
                done = None  # the run went away since the guess: the read says so
            if done is not None:
                if alone:  # committed by this statement
                    if len(seqs) > _SEQ_CACHE:
                        seqs.clear()
                    seqs[(org_id, run_id)] = seq
                return Event(run_id, seq, type, when, data)
        raise Conflict(f"run {run_id!r}: too many concurrent event appends", hint="retry")


__all__ = [
    "SEALED_COLUMNS",
    "SHREDDED_JSON",
    "SHREDDED_TEXT",
    "ColumnCodec",
    "SealingMixin",
    "event_row_id",
    "is_sealed",
    "shredded",
]
