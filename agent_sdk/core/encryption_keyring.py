"""Managing an org's encryption keys: list, rotate, destroy, and re-encrypt old rows.

Lifecycle of one key generation (see :mod:`agent_sdk.governance.envelope`)::

    made (first sealed write, or a rotation) ──► active ──► retired (rotated out: decrypts only)
                                                   └─────────┴──► destroyed (crypto-shredded)

Rotation makes a new KEK and DEK and retires the active ones in one transaction: new writes use
the new key at once (other processes within the key cache TTL), old values stay readable.
:func:`rewrap` then moves old values to the active key in bounded batches: it reads a batch,
re-seals each value, and writes it back only if the row still holds what was read, so it runs
alongside live writers without downtime, can stop anywhere, and can be run again (a cursor
resumes it; a value already on the active key is skipped). It also seals plaintext left from
before encryption was enabled.

Listings carry metadata only, never key material, wrapped or not.
"""

from __future__ import annotations

import json
from typing import Any

from agent_sdk.cursors import decode_cursor, encode_cursor
from agent_sdk.errors import Conflict, InvalidInput, KeyDestroyed
from agent_sdk.governance.envelope import DecryptionFailed, EnvelopeCodec, MasterKey, make_key
from agent_sdk.ids import utcnow
from agent_sdk.records import EncryptionKey, RewrapReport
from agent_sdk.records.sealed import SEALED_PREFIX, StoredKey
from agent_sdk.store.sealing import event_row_id, is_sealed
from agent_sdk.store.wrapped_keys import EncryptionKeyStore

#: Tables are re-encrypted in this order; a cursor names its table by position.
TABLES = ("runs", "events", "sessions", "idempotency_keys")
MAX_BATCH = 5000


def key_view(key: StoredKey) -> EncryptionKey:
    """``key`` as listings show it: ids, state and times, never key material."""
    return EncryptionKey(
        key.id,
        key.org_id,
        key.state,
        key.created_at,
        key.master_key_id,
        key.retired_at,
        key.destroyed_at,
    )


def list_keys(store: EncryptionKeyStore, org_id: str) -> list[EncryptionKey]:
    return [key_view(k) for k in store.list_encryption_keys(org_id)]


def rotate(
    store: EncryptionKeyStore, master: MasterKey, org_id: str
) -> tuple[EncryptionKey, list[str]]:
    """Retire the org's active key (if any) and make a new one; return it and the retired ids.
    Runs in the caller's transaction when there is one. After commit, the codec of this process
    must :meth:`~EnvelopeCodec.forget` the org."""
    now = utcnow()
    retired = store.retire_encryption_keys(org_id, now)
    key = make_key(org_id, master, when=now)
    if not store.insert_encryption_key(key):
        raise Conflict(f"the keys of org {org_id!r} were rotated at the same time", hint="retry")
    return key_view(key), retired


def destroy(store: EncryptionKeyStore, org_id: str) -> list[str]:
    """Overwrite the wrapped material of every key of the org; return the ids destroyed."""
    return store.destroy_encryption_keys(org_id, utcnow())


# -- re-encryption -------------------------------------------------------------------------------
def _cursor(table: int, after: tuple[Any, ...] | None) -> str:
    return encode_cursor("rewrap:" + json.dumps([table, list(after) if after else None]))


def _parse_cursor(cursor: str | None) -> tuple[int, tuple[Any, ...] | None]:
    if cursor is None:
        return 0, None
    bad = InvalidInput("invalid cursor", hint="pass the next_cursor of the previous call unchanged")
    kind, _, body = decode_cursor(cursor).partition(":")
    try:
        table, after = json.loads(body) if kind == "rewrap" else (None, None)
    except (ValueError, TypeError):
        raise bad from None
    if not isinstance(table, int) or isinstance(table, bool) or not 0 <= table < len(TABLES):
        raise bad
    if after is None:
        return table, None
    width = 2 if TABLES[table] == "events" else 1
    if (
        not isinstance(after, list)
        or len(after) != width
        or not isinstance(after[0], str)
        or (width == 2 and (not isinstance(after[1], int) or isinstance(after[1], bool)))
    ):
        raise bad
    return table, tuple(after)


def rewrap(
    store: EncryptionKeyStore,
    codec: EnvelopeCodec,
    org_id: str,
    *,
    limit: int = 500,
    cursor: str | None = None,
) -> RewrapReport:
    """Move up to ``limit`` rows of the org onto its active key (re-sealing plaintext too),
    continuing after ``cursor``. Each batch commits on its own; reads keep working throughout,
    since old keys stay until destroyed."""
    if not 1 <= limit <= MAX_BATCH:
        raise InvalidInput(f"limit must be from 1 to {MAX_BATCH}, not {limit}")
    index, after = _parse_cursor(cursor)
    key_id, _ = codec.active_key(org_id)
    keep = f"{SEALED_PREFIX}{key_id}:"
    report = RewrapReport(org_id, key_id)
    budget = limit
    while budget > 0 and index < len(TABLES):
        table = TABLES[index]
        rows = store.sealed_rows(org_id, table, after, budget, keep)
        writes: list[tuple[tuple[Any, ...], str, str, str]] = []
        for row in rows:
            row_id = event_row_id(row.key[0], row.key[1]) if table == "events" else row.key[0]
            for column, old in row.values.items():
                if old is None or old.startswith(keep):
                    continue
                try:
                    text = codec.open(org_id, table, row_id, column, old) if is_sealed(old) else old
                except KeyDestroyed:
                    report.unreadable += 1
                    continue
                except DecryptionFailed:  # altered or moved: it must not stop the job
                    report.failed += 1
                    continue
                new = codec.seal(org_id, table, row_id, column, text)
                writes.append((row.key, column, old, new))
        with store.transaction():
            for key, column, old, new in writes:
                if store.replace_sealed(org_id, table, key, column, old, new):
                    report.rewrapped += 1
                    report.tables[table] = report.tables.get(table, 0) + 1
                else:
                    report.changed += 1
        report.rows += len(rows)
        budget -= len(rows)
        if budget > 0:  # fewer rows than asked for: this table is done
            index, after = index + 1, None
        else:
            after = rows[-1].key
    if index < len(TABLES):
        report.next_cursor = _cursor(index, after)
    return report


__all__ = [
    "MAX_BATCH",
    "TABLES",
    "destroy",
    "key_view",
    "list_keys",
    "rewrap",
    "rotate",
]
