"""API keys, the audit log, Idempotency-Key claims and workers in the Postgres store: mixins of
:class:`agent_sdk.store.postgres.PostgresStore`, written only against the helpers that class has
(``_exec``, ``_one``, ``_query``, ``transaction``, ``_in_transaction``), so driver errors are
translated the same way as everywhere else in the store. Row conversions are the shared ones
of :mod:`agent_sdk.store.api_keys`, :mod:`agent_sdk.store.audit` and
:mod:`agent_sdk.store.idempotency`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from agent_sdk.canonical import canonical_json, chain_hash
from agent_sdk.errors import AgentSDKError, BackendUnavailable, Conflict, InvalidInput, NotFound
from agent_sdk.ids import utcnow
from agent_sdk.records import ApiKey, AuditEntry, Checkpoint
from agent_sdk.store._driver_errors import noted, unexpected, unstorable
from agent_sdk.store._rows import MAX_LIMIT, check_limit
from agent_sdk.store._sql_mixins import SQLKeyQueries
from agent_sdk.store.api_keys import (
    key_values,
)
from agent_sdk.store.audit import AUDIT_FIELDS
from agent_sdk.store.idempotency import (
    COLUMNS as IDEM_COLUMNS,
)
from agent_sdk.store.idempotency import (
    FIELDS as IDEM_FIELDS,
)
from agent_sdk.store.idempotency import IdempotencyRecord

# First key of pg_advisory_xact_lock(int, int) for an org's audit log; the second is the org.
_LOCK_AUDIT = 0x616175  # "aau"


def translate(exc: Exception, db: str) -> AgentSDKError:
    """A psycopg error (or a value the driver cannot send) as one of the agent_sdk errors, in
    words of ours: the driver's text stays in the log (see store._driver_errors)."""
    import psycopg
    from psycopg import errors as pg

    if isinstance(exc, OverflowError | UnicodeEncodeError):
        return unstorable(exc)
    noted(exc)
    if isinstance(exc, pg.UniqueViolation):
        return Conflict("already exists")
    if isinstance(exc, pg.ForeignKeyViolation):
        return NotFound("a referenced record does not exist")
    if isinstance(exc, pg.IntegrityError):
        return InvalidInput("a value was rejected by the database's constraints")
    if isinstance(exc, pg.UndefinedTable | pg.UndefinedColumn):
        return Conflict(f"{db} is not migrated", hint="run `agent-sdk db migrate`")
    if isinstance(exc, pg.LockNotAvailable | pg.QueryCanceled):
        return Conflict(f"{db}: timed out waiting for a lock", hint="retry")
    if isinstance(exc, pg.SerializationFailure | pg.DeadlockDetected):
        return Conflict(f"{db}: a concurrent update won", hint="retry")
    if isinstance(exc, pg.NumericValueOutOfRange):
        return unstorable(OverflowError(str(exc)))
    if isinstance(exc, pg.CharacterNotInRepertoire | pg.UntranslatableCharacter):
        return unstorable(UnicodeError(str(exc)))
    if isinstance(exc, psycopg.DataError):
        return InvalidInput("a value was rejected by the database")
    if isinstance(exc, psycopg.ProgrammingError) and "cannot adapt" in str(exc):
        return InvalidInput("a value of this type cannot be stored")
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        # A connection that failed or dropped: the server's words say where and why.
        return BackendUnavailable(
            f"{db}: {str(exc).strip()}",
            hint="check AGENT_SDK_DATABASE_URL and that the server is running",
        )
    return unexpected(db, exc)  # a bug here, not an outage


class _Helpers:
    if TYPE_CHECKING:  # provided by PostgresStore

        def _query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]: ...
        def _one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any: ...
        def _exec(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int: ...
        def _in_transaction(self) -> bool: ...
        def transaction(self) -> AbstractContextManager[None]: ...


# -- API keys ----------------------------------------------------------------------------------


class PostgresKeysMixin(_Helpers, SQLKeyQueries):
    def insert_api_key(self, key: ApiKey, secret_hash: str) -> ApiKey:
        values = key_values(key, secret_hash)
        columns = ", ".join(values)
        placeholders = ", ".join(f"%({name})s" for name in values)
        try:
            self._exec(f"INSERT INTO api_keys ({columns}) VALUES ({placeholders})", values)
        except Conflict as exc:
            raise Conflict(f"API key {key.id!r} already exists") from exc
        except NotFound as exc:
            raise NotFound(f"org {key.org_id!r} not found") from exc
        return key

    def _for_update(self) -> str:
        # Inside a transaction (rotation, revocation) the read locks the row until the write,
        # so two rotations at once cannot both replace the same secret.
        return " FOR UPDATE" if self._in_transaction() else ""


# -- audit -------------------------------------------------------------------------------------
_AUDIT_COLUMNS = (
    "org_id seq time actor actor_kind action target outcome request_id source_ip details"
    " prev_hash hash"
).split()
_AUDIT_SELECT = f"SELECT {', '.join(_AUDIT_COLUMNS)} FROM audit_log"
_AUDIT_INSERT = (
    f"INSERT INTO audit_log ({', '.join(_AUDIT_COLUMNS)})"
    f" VALUES ({', '.join(['%s'] * len(_AUDIT_COLUMNS))})"
)
_CHECKPOINT_COLUMNS = "org_id, seq, head_hash, time, signature, key_id"


def _entry(r: Sequence[Any]) -> AuditEntry:
    (org_id, seq, time, actor, actor_kind, action, target, outcome, request_id, source_ip,
     details, prev_hash, hash_) = r  # fmt: skip
    return AuditEntry(
        org_id, seq, time, actor, actor_kind, action, target, outcome, request_id, source_ip,
        json.loads(details), prev_hash, hash_,
    )  # fmt: skip


class PostgresAuditMixin(_Helpers):
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
        values["details"] = json.loads(details_text)
        with self.transaction():
            # One appender per org at a time, until commit: the head read below is then the
            # true head (a new READ COMMITTED snapshot), and the chain cannot fork.
            self._exec("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_AUDIT, org_id))
            last = self._one(
                "SELECT seq, hash FROM audit_log WHERE org_id = %s ORDER BY seq DESC LIMIT 1",
                (org_id,),
            )
            values["org_id"] = org_id
            values["seq"] = (last[0] if last else 0) + 1
            values["time"] = values["time"] or utcnow()  # under the lock: follows seq order
            values["prev_hash"] = last[1] if chain and last else None
            values["hash"] = chain_hash(values["prev_hash"], values) if chain else None
            self._exec(
                _AUDIT_INSERT,
                [details_text if c == "details" else values[c] for c in _AUDIT_COLUMNS],
            )
        return AuditEntry(**values)

    def last_audit(self, org_id: str) -> AuditEntry | None:
        row = self._one(f"{_AUDIT_SELECT} WHERE org_id = %s ORDER BY seq DESC LIMIT 1", (org_id,))
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
        where, params = "org_id = %s AND seq > %s", [org_id, after_seq]
        if since is not None:
            where += " AND time >= %s"
            params.append(since)
        if until is not None:
            where += " AND time < %s"
            params.append(until)
        rows = self._query(f"{_AUDIT_SELECT} WHERE {where} ORDER BY seq LIMIT %s", [*params, limit])
        return [_entry(r) for r in rows]

    def iter_audit(
        self,
        org_id: str,
        *,
        after_seq: int = 0,
        since: str | None = None,
        until: str | None = None,
    ) -> Iterator[AuditEntry]:
        while True:
            page = self.list_audit(
                org_id, after_seq=after_seq, limit=MAX_LIMIT, since=since, until=until
            )
            yield from page
            if len(page) < MAX_LIMIT:
                return
            after_seq = page[-1].seq

    def insert_checkpoint(self, checkpoint: Checkpoint) -> bool:
        inserted = self._exec(
            f"INSERT INTO audit_checkpoints ({_CHECKPOINT_COLUMNS})"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (org_id, seq) DO NOTHING",
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


# -- Idempotency-Key claims --------------------------------------------------------------------
_REPLACE = ", ".join(f"{name} = excluded.{name}" for name in IDEM_FIELDS[2:])
# One statement settles who holds the key, as in the SQLite store. Under READ COMMITTED a
# second claimant's upsert waits on the first one's uncommitted row; once that commits, the
# WHERE is evaluated on it: a live claim makes the statement a no-op that returns no row, an
# expired one is overwritten in place.
_CLAIM = (
    f"INSERT INTO idempotency_keys ({IDEM_COLUMNS})"
    f" VALUES ({', '.join(['%s'] * len(IDEM_FIELDS))})"
    f" ON CONFLICT (org_id, key) DO UPDATE SET {_REPLACE}"
    " WHERE idempotency_keys.expires_at <= excluded.created_at"
    " RETURNING 1"
)


class PostgresIdempotencyMixin(_Helpers):
    if TYPE_CHECKING:  # provided by SQLStore (agent_sdk.store.sealing)

        def _idem_values(self, record: IdempotencyRecord) -> dict[str, Any]: ...
        def _idem_record(self, row: Sequence[Any]) -> IdempotencyRecord: ...

    def claim_idempotency_key(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        values = self._idem_values(record)  # the stored answer sealed (encryption at rest)
        with self.transaction():
            if self._one(_CLAIM, [values[name] for name in IDEM_FIELDS]) is not None:
                return None
            # ON CONFLICT DO UPDATE locks the conflicting row even when its WHERE is false, so
            # this read sees the holder, and it cannot change before we commit.
            row = self._one(
                f"SELECT {IDEM_COLUMNS} FROM idempotency_keys WHERE org_id = %s AND key = %s",
                (record.org_id, record.key),
            )
        if row is None:  # the holder was purged between the two statements
            raise Conflict(f"Idempotency-Key {record.key!r} could not be claimed; retry")
        return self._idem_record(row)

    def get_idempotency_key(self, org_id: str, key: str, *, now: str) -> IdempotencyRecord | None:
        row = self._one(
            f"SELECT {IDEM_COLUMNS} FROM idempotency_keys"
            " WHERE org_id = %s AND key = %s AND expires_at > %s",
            (org_id, key, now),
        )
        return None if row is None else self._idem_record(row)

    def purge_idempotency_keys(self, before: str, *, limit: int = 100) -> int:
        # SKIP LOCKED: two sweepers delete different rows instead of queueing on each other.
        return self._exec(
            "DELETE FROM idempotency_keys WHERE (org_id, key) IN ("
            " SELECT org_id, key FROM idempotency_keys WHERE expires_at <= %s"
            " ORDER BY expires_at LIMIT %s FOR UPDATE SKIP LOCKED)",
            (before, max(0, limit)),
        )


__all__ = [
    "PostgresAuditMixin",
    "PostgresIdempotencyMixin",
    "PostgresKeysMixin",
    "translate",
]
