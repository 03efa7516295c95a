"""The IdempotencyStore contract: how every store (SQLite today, Postgres later) keeps the
Idempotency-Key claims of run creation.

Use it by subclassing with a ``store`` fixture that yields a fresh, migrated store::

    class TestSQLiteIdempotencyStore(IdempotencyStoreContract):
        @pytest.fixture
        def store(self, tmp_path): ...

Tests here use only the Store and IdempotencyStore protocols, never a backend's internals.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from agent_sdk.errors import InvalidInput
from agent_sdk.store.base import Store
from agent_sdk.store.idempotency import DONE, IN_FLIGHT, IdempotencyRecord
from contracts.store_contract import ORG, OTHER

# Fixed times, so expiry is exact: T0 < T1 < T2.
T0 = "2030-01-01T00:00:00.000000Z"
T1 = "2030-01-01T00:00:30.000000Z"
T2 = "2030-01-01T00:01:00.000000Z"


def claim(
    org_id: str = ORG,
    key: str = "k1",
    *,
    request_hash: str = "h1",
    state: str = DONE,
    created_at: str = T0,
    expires_at: str = T2,
    run_id: str | None = "run_1",
    response: dict[str, Any] | None = None,
) -> IdempotencyRecord:
    if response is None and state == DONE:
        response = {"id": run_id, "status": "queued", "metadata": {"n": 1}}
    return IdempotencyRecord(
        org_id, key, request_hash, state, created_at, expires_at, run_id, response
    )


class IdempotencyStoreContract:
    def test_the_first_claim_wins_and_reads_back(self, store: Store) -> None:
        record = claim()
        assert store.claim_idempotency_key(record) is None
        assert store.get_idempotency_key(ORG, "k1", now=T0) == record

    def test_a_live_claim_is_kept_and_returned_to_the_next_claimant(self, store: Store) -> None:
        first = claim()
        store.claim_idempotency_key(first)
        second = claim(request_hash="h2", run_id="run_2", created_at=T1)
        assert store.claim_idempotency_key(second) == first
        assert store.get_idempotency_key(ORG, "k1", now=T1) == first

    def test_keys_are_scoped_to_the_org(self, store: Store) -> None:
        mine = claim(ORG)
        theirs = claim(OTHER, request_hash="h2", run_id="run_2")
        assert store.claim_idempotency_key(mine) is None
        assert store.claim_idempotency_key(theirs) is None  # same text, unrelated key
        assert store.get_idempotency_key(ORG, "k1", now=T0) == mine
        assert store.get_idempotency_key(OTHER, "k1", now=T0) == theirs
        assert store.get_idempotency_key("nobody", "k1", now=T0) is None

    def test_an_expired_claim_is_invisible_and_replaced(self, store: Store) -> None:
        store.claim_idempotency_key(claim(expires_at=T1))
        assert store.get_idempotency_key(ORG, "k1", now=T0) is not None
        assert store.get_idempotency_key(ORG, "k1", now=T1) is None  # expires_at is exclusive
        fresh = claim(request_hash="h2", run_id="run_2", created_at=T1, expires_at=T2)
        assert store.claim_idempotency_key(fresh) is None
        assert store.get_idempotency_key(ORG, "k1", now=T1) == fresh

    def test_in_flight_claims_carry_no_response(self, store: Store) -> None:
        record = claim(state=IN_FLIGHT, run_id=None)
        assert store.claim_idempotency_key(record) is None
        held = store.get_idempotency_key(ORG, "k1", now=T0)
        assert held is not None and (held.state, held.response) == (IN_FLIGHT, None)

    @pytest.mark.parametrize(
        "record",
        [claim(state="pending"), IdempotencyRecord(ORG, "k", "h", DONE, T0, T2)],
        ids=["unknown-state", "done-without-response"],
    )
    def test_malformed_claims_are_refused(self, store: Store, record: IdempotencyRecord) -> None:
        with pytest.raises(InvalidInput):
            store.claim_idempotency_key(record)

    def test_a_claim_rolled_back_with_its_transaction_is_gone(self, store: Store) -> None:
        with pytest.raises(RuntimeError), store.transaction():
            store.claim_idempotency_key(claim())
            raise RuntimeError("the run insert failed")
        assert store.get_idempotency_key(ORG, "k1", now=T0) is None
        assert store.claim_idempotency_key(claim()) is None

    def test_purge_removes_expired_claims_only_and_is_bounded(self, store: Store) -> None:
        for i in range(5):
            store.claim_idempotency_key(claim(key=f"old{i}", expires_at=T1))
        store.claim_idempotency_key(claim(OTHER, key="old", expires_at=T1))
        store.claim_idempotency_key(claim(key="live", expires_at=T2))
        assert store.purge_idempotency_keys(T1, limit=4) == 4
        assert store.purge_idempotency_keys(T1, limit=100) == 2  # across orgs
        assert store.purge_idempotency_keys(T1) == 0
        assert store.get_idempotency_key(ORG, "live", now=T1) is not None

    def test_concurrent_claims_of_one_key_have_one_winner(self, store: Store) -> None:
        n = 12
        barrier = threading.Barrier(n)
        results: list[IdempotencyRecord | None] = []
        lock = threading.Lock()

        def contend(i: int) -> None:
            barrier.wait()
            record = claim(request_hash=f"h{i}", run_id=f"run_{i}")
            with store.transaction():
                held = store.claim_idempotency_key(record)
            with lock:
                results.append(held)

        threads = [threading.Thread(target=contend, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count(None) == 1
        winner = store.get_idempotency_key(ORG, "k1", now=T0)
        assert winner is not None
        assert all(held == winner for held in results if held is not None)
