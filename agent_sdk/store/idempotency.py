"""The IdempotencyStore protocol: how a store remembers the ``Idempotency-Key`` claims of run
creation, and the row conversions its implementations share.

A claim is keyed by ``(org_id, key)``: keys are chosen by clients, so org A's ``k1`` and org B's
``k1`` are unrelated. The run service inserts the claim in the *same transaction* as the run, its
``run.created`` event and its audit record (:meth:`IdempotencyStore.claim_idempotency_key` inside
``store.transaction()``), so exactly one of any number of concurrent requests with one key
creates a run, and a claim can never exist without its run or a run without its claim.

Because the claim and its response commit together, a claim is written ``done``, carrying the
response. ``in_flight`` (a claim committed before its response is known) is part of the format
for a flow that has to split the two (a store that cannot hold the lock for the whole creation,
or a creation that must commit before it can answer); the run service answers 409 Conflict when
it meets one. The SQLite store never produces it: ``BEGIN IMMEDIATE`` makes a second request
wait for the first's commit, after which it sees ``done`` and replays. A Postgres store gets the
same from ``INSERT ... ON CONFLICT DO NOTHING`` under READ COMMITTED (the loser blocks on the
winner's uncommitted row, then sees it); one that prefers not to wait can ``SET LOCAL
lock_timeout`` and report the timeout as 409, which is the draft's "still in flight".

Implementation: :class:`agent_sdk.store._sql_mixins.SQLIdempotencyQueries`, for both SQL stores.
Every store runs ``tests/contracts/idempotency_store_contract.py`` unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent_sdk.errors import InvalidInput

IN_FLIGHT = "in_flight"
DONE = "done"
STATES = frozenset({IN_FLIGHT, DONE})


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """One claim of an Idempotency-Key: who holds it, for which request, and what was answered."""

    org_id: str
    key: str
    request_hash: str  # hex SHA-256 of the canonical JSON of the parsed request
    state: str  # IN_FLIGHT or DONE
    created_at: str
    expires_at: str
    run_id: str | None = None
    response: dict[str, Any] | None = field(default=None)  # the first answer's body, when DONE


class IdempotencyStore(Protocol):
    def transaction(self) -> AbstractContextManager[None]:
        """As :meth:`Store.transaction`: claim the key inside the transaction of the change."""
        ...

    def claim_idempotency_key(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        """Insert ``record`` unless its ``(org_id, key)`` is held by a claim that has not expired
        at ``record.created_at``; an expired claim is replaced by the same statement.

        Returns None when ``record`` now holds the key (the caller won and goes on to make the
        change in the same transaction), else the live claim that holds it, with nothing
        written. InvalidInput for an unknown ``state`` or a ``done`` claim without response."""
        ...

    def get_idempotency_key(self, org_id: str, key: str, *, now: str) -> IdempotencyRecord | None:
        """The claim of ``key`` in ``org_id`` unless it expired at or before ``now``."""
        ...

    def purge_idempotency_keys(self, before: str, *, limit: int = 100) -> int:
        """Delete at most ``limit`` claims that expired at or before ``before``, in any org, and
        return how many went. The one write across orgs: upkeep named for its only use, it reads
        nothing back; bounded, so a caller can run it inside a short transaction."""
        ...


# -- shared by the implementations ----------------------------------------------------------

#: The columns of an IdempotencyRecord, in its field order (a row of them converts back).
FIELDS: tuple[str, ...] = (
    "org_id",
    "key",
    "request_hash",
    "state",
    "created_at",
    "expires_at",
    "run_id",
    "response",
)
COLUMNS = ", ".join(FIELDS)


def record_values(record: IdempotencyRecord) -> dict[str, Any]:
    """The column values of ``record``, by column name (checked: see claim_idempotency_key)."""
    if record.state not in STATES:
        raise InvalidInput(f"unknown idempotency claim state {record.state!r}")
    if record.state == DONE and record.response is None:
        raise InvalidInput("a done idempotency claim needs its response")
    values = {name: getattr(record, name) for name in FIELDS}
    if record.response is not None:
        values["response"] = json.dumps(record.response, separators=(",", ":"))
    return values


def record_from_row(r: Sequence[Any]) -> IdempotencyRecord:
    values = dict(zip(FIELDS, r, strict=True))
    if values["response"] is not None:
        values["response"] = json.loads(values["response"])
    return IdempotencyRecord(**values)


__all__ = [
    "COLUMNS",
    "DONE",
    "FIELDS",
    "IN_FLIGHT",
    "STATES",
    "IdempotencyRecord",
    "IdempotencyStore",
    "record_from_row",
    "record_values",
]
