"""The AuditStore contract: what every store (SQLite today, Postgres later) must do with the
audit log and its checkpoints.

Use it by subclassing with a ``store`` fixture that yields a fresh, migrated store::

    class TestSQLiteAuditStore(AuditStoreContract):
        @pytest.fixture
        def store(self, tmp_path): ...

        @pytest.fixture
        def twin(self, tmp_path): ...  # a second store on the same database, as another
                                       # process would open it

Tests here use only the AuditStore protocol and the record format of
:mod:`agent_sdk.governance.audit`, never a backend's internals.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agent_sdk.errors import InvalidInput
from agent_sdk.governance.audit import chain_hash
from agent_sdk.governance.audit_verify import verify_log
from agent_sdk.records import AuditEntry, Checkpoint
from agent_sdk.store.audit import AuditStore
from contracts.store_contract import HOSTILE

ORG = "default"
OTHER = "org_other"


def fields(n: int = 0, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "actor": "api_key:k1",
        "actor_kind": "api_key",
        "action": "runs.create",
        "target": f"run_{n}",
        "outcome": "success",
        "request_id": f"req-{n}",
        "source_ip": "203.0.113.7",
        "details": {"n": n},
    }
    values.update(extra)
    return values


def append(store: AuditStore, count: int, org_id: str = ORG, *, chain: bool = True) -> list[Any]:
    return [store.append_audit(org_id, fields(i), chain=chain) for i in range(count)]


class AuditStoreContract:
    """Mixin of contract tests; the subclass provides the ``store`` fixture."""

    def test_append_numbers_from_one_and_round_trips_every_field(self, store: AuditStore) -> None:
        assert store.last_audit(ORG) is None
        details = {"nested": {"list": [1, 2.5, None, True, "x"]}, "ünï": "日本語 🤖"}
        entries = [
            store.append_audit(ORG, fields(0, details=details), chain=True),
            store.append_audit(ORG, fields(1, target=None, request_id=None), chain=True),
        ]
        for text in HOSTILE:
            entries.append(
                store.append_audit(ORG, fields(9, target=text, details={text: text}), chain=True)
            )
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
        assert list(store.iter_audit(ORG)) == entries
        assert store.last_audit(ORG) == entries[-1]
        assert entries[0].details == details and entries[1].target is None

    def test_every_hash_follows_the_documented_rule_whatever_the_text(
        self, store: AuditStore
    ) -> None:
        odd = [*HOSTILE, '\x01\x1f\x7f \u2028\u2029 \\u0041 "', "", "null"]
        prev = b""
        for i, text in enumerate(odd):
            entry = store.append_audit(
                ORG,
                fields(i, actor=text or "x", target=text, source_ip=text, details={"t": text}),
                chain=True,
            )
            data = entry.to_dict()
            del data["hash"]
            body = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            assert entry.hash == hashlib.sha256(prev + body.encode("utf-8")).hexdigest()
            assert store.last_audit(ORG) == entry
            prev = bytes.fromhex(entry.hash)
        with pytest.raises(InvalidInput):  # a lone surrogate has no UTF-8 form
            store.append_audit(ORG, fields(actor="\ud800"), chain=True)
        assert [e.seq for e in store.iter_audit(ORG)] == list(range(1, len(odd) + 1))

    def test_chain_links_each_record_to_the_one_before(self, store: AuditStore) -> None:
        entries = append(store, 5)
        assert entries[0].prev_hash is None
        for before, after in zip(entries, entries[1:], strict=False):
            assert after.prev_hash == before.hash
        for e in entries:
            assert e.hash == chain_hash(e.prev_hash, e)
        assert verify_log(ORG, store.iter_audit(ORG)).ok

    def test_without_chain_there_are_no_hashes(self, store: AuditStore) -> None:
        entries = append(store, 3, chain=False)
        assert [(e.seq, e.prev_hash, e.hash) for e in entries] == [
            (i, None, None) for i in (1, 2, 3)
        ]
        # Switching the chain on later starts it at the next record.
        first = store.append_audit(ORG, fields(), chain=True)
        assert first.seq == 4 and first.prev_hash is None and first.hash

    def test_time_is_set_in_seq_order_unless_given(self, store: AuditStore) -> None:
        entries = append(store, 20)
        times = [e.time for e in entries]
        assert times == sorted(times) and all(t.endswith("Z") for t in times)
        given = store.append_audit(ORG, fields(time="2030-01-01T00:00:00.000000Z"), chain=True)
        assert given.time == "2030-01-01T00:00:00.000000Z"
        assert store.last_audit(ORG) == given

    def test_details_read_back_as_they_were_hashed(self, store: AuditStore) -> None:
        e = store.append_audit(ORG, fields(details={"t": (1, 2)}), chain=True)
        assert e.details == {"t": [1, 2]}
        assert store.last_audit(ORG) == e and e.hash == chain_hash(None, e)

    @pytest.mark.parametrize(
        "bad",
        [{"org_id": "x"}, {"seq": 5}, {"hash": "00"}, {"surprise": 1}, {"details": [1]}],
    )
    def test_bad_fields_are_refused(self, store: AuditStore, bad: dict[str, Any]) -> None:
        with pytest.raises(InvalidInput):
            store.append_audit(ORG, fields(**bad), chain=True)
        assert store.last_audit(ORG) is None

    def test_orgs_have_independent_sequences_and_chains(self, store: AuditStore) -> None:
        for i in range(6):
            store.append_audit(ORG if i % 2 else OTHER, fields(i), chain=True)
        mine, theirs = list(store.iter_audit(ORG)), list(store.iter_audit(OTHER))
        assert [e.seq for e in mine] == [e.seq for e in theirs] == [1, 2, 3]
        assert mine[0].prev_hash is None and theirs[0].prev_hash is None
        assert {e.org_id for e in mine} == {ORG} and {e.org_id for e in theirs} == {OTHER}
        assert verify_log(ORG, iter(mine)).ok and verify_log(OTHER, iter(theirs)).ok

    def test_an_append_in_a_rolled_back_transaction_leaves_nothing(self, store: AuditStore) -> None:
        append(store, 2)
        with pytest.raises(RuntimeError), store.transaction():
            store.append_audit(ORG, fields(), chain=True)
            raise RuntimeError("the action failed")
        assert [e.seq for e in store.iter_audit(ORG)] == [1, 2]
        assert store.append_audit(ORG, fields(), chain=True).seq == 3

    def test_appends_through_two_stores_of_one_database_form_one_chain(
        self, store: AuditStore, twin: AuditStore
    ) -> None:
        # Each store remembers the head it wrote last; the other's appends make that stale.
        for i in range(6):
            (store if i % 3 else twin).append_audit(ORG, fields(i), chain=True)
        entries = list(store.iter_audit(ORG))
        assert [e.seq for e in entries] == [1, 2, 3, 4, 5, 6]
        assert [e.target for e in entries] == [f"run_{i}" for i in range(6)]
        assert verify_log(ORG, iter(entries)).ok

    def test_an_append_after_a_rolled_back_one_takes_its_seq(self, store: AuditStore) -> None:
        first = store.append_audit(ORG, fields(0), chain=True)
        with pytest.raises(RuntimeError), store.transaction():
            store.append_audit(ORG, fields(1), chain=True)
            raise RuntimeError("the action failed")
        again = store.append_audit(ORG, fields(2), chain=True)
        assert (again.seq, again.prev_hash) == (2, first.hash)
        assert list(store.iter_audit(ORG)) == [first, again]
        assert verify_log(ORG, iter([first, again])).ok

    def test_switching_the_chain_on_and_off_links_to_the_true_head(self, store: AuditStore) -> None:
        unchained = store.append_audit(ORG, fields(0), chain=False)
        chained = [store.append_audit(ORG, fields(i), chain=True) for i in (1, 2)]
        assert unchained.hash is None and chained[0].prev_hash is None
        assert chained[1].prev_hash == chained[0].hash == chain_hash(None, chained[0])
        assert store.append_audit(ORG, fields(3), chain=False).seq == 4

    def test_list_audit_pages_by_seq(self, store: AuditStore) -> None:
        entries = append(store, 12)
        assert store.list_audit(ORG, limit=5) == entries[:5]
        assert store.list_audit(ORG, after_seq=5, limit=5) == entries[5:10]
        assert store.list_audit(ORG, after_seq=10, limit=5) == entries[10:]
        assert store.list_audit(ORG, after_seq=12) == []
        with pytest.raises(InvalidInput):
            store.list_audit(ORG, limit=0)
        with pytest.raises(InvalidInput):
            store.list_audit(ORG, after_seq=-1)

    def test_time_window(self, store: AuditStore) -> None:
        for i, t in enumerate(["2030-01-01", "2030-01-02", "2030-01-03", "2030-01-04"]):
            store.append_audit(ORG, fields(i, time=t + "T00:00:00.000000Z"), chain=True)
        since, until = "2030-01-02T00:00:00.000000Z", "2030-01-04T00:00:00.000000Z"
        assert [e.seq for e in store.iter_audit(ORG, since=since, until=until)] == [2, 3]
        assert [e.seq for e in store.iter_audit(ORG, since=since)] == [2, 3, 4]
        assert [e.seq for e in store.list_audit(ORG, until=since)] == [1]
        assert [e.seq for e in store.iter_audit(ORG, after_seq=2, since=since)] == [3, 4]

    def test_iter_audit_reads_past_one_page_in_order(self, store: AuditStore) -> None:
        with store.transaction():  # one commit for the set-up, not 1,001
            append(store, 1001)
        it = store.iter_audit(ORG)
        assert isinstance(it, Iterator)
        seqs = [e.seq for e in it]
        assert seqs == list(range(1, 1002))
        assert [e.seq for e in store.iter_audit(ORG, after_seq=999)] == [1000, 1001]

    def test_checkpoints_are_kept_per_org_in_seq_order(self, store: AuditStore) -> None:
        def cp(org: str, seq: int, head: str = "ab") -> Checkpoint:
            return Checkpoint(org, seq, head, "2030-01-01T00:00:00.000000Z", "c2ln", "sha256:k")

        assert store.list_checkpoints(ORG) == []
        assert store.insert_checkpoint(cp(ORG, 20)) is True
        assert store.insert_checkpoint(cp(ORG, 10)) is True
        assert store.insert_checkpoint(cp(OTHER, 10)) is True
        # The same seq again changes nothing: the first checkpoint of a head stands.
        assert store.insert_checkpoint(cp(ORG, 10, head="cd")) is False
        assert store.list_checkpoints(ORG) == [cp(ORG, 10), cp(ORG, 20)]
        assert store.list_checkpoints(OTHER) == [cp(OTHER, 10)]
        # Pages by seq, for an export that resumes after the newest line it already has.
        assert store.list_checkpoints(ORG, after_seq=10) == [cp(ORG, 20)]
        assert store.list_checkpoints(ORG, after_seq=0, limit=1) == [cp(ORG, 10)]
        assert store.list_checkpoints(ORG, after_seq=20) == []
        assert store.last_checkpoint(ORG) == cp(ORG, 20)
        assert store.last_checkpoint("no-such-org") is None

    def test_unsigned_orgs_are_those_with_chained_records_past_their_newest_checkpoint(
        self, store: Any
    ) -> None:
        ids = [f"org-{c}" for c in "abcde"]
        for org in ids:
            store.create_org(org, org)
        append(store, 3, "org-a")  # chained, no checkpoint: unsigned
        append(store, 2, "org-b")  # chained and signed at its head: done
        store.insert_checkpoint(Checkpoint("org-b", 2, "ab", "2030-01-01T00:00:00Z", "s", "k"))
        store.append_audit("org-c", fields(0), chain=False)  # not chained: nothing to sign
        append(store, 5, "org-d")  # a checkpoint, then more records: unsigned
        store.insert_checkpoint(Checkpoint("org-d", 3, "ab", "2030-01-01T00:00:00Z", "s", "k"))
        seen: list[str] = []
        after = ""
        while True:
            unsigned, after = store.unsigned_audit_orgs(after=after, limit=2)
            seen += [o for o in unsigned if o in ids]
            if not after:
                break
        assert seen == ["org-a", "org-d"]

    def test_concurrent_appends_from_threads_form_one_chain(self, store: AuditStore) -> None:
        errors: list[BaseException] = []
        barrier = threading.Barrier(4)

        def worker(w: int) -> None:
            try:
                barrier.wait()
                for i in range(25):
                    store.append_audit(ORG, fields(w * 100 + i), chain=True)
            except Exception as exc:  # reported below, in the test thread
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        entries: list[AuditEntry] = list(store.iter_audit(ORG))
        assert [e.seq for e in entries] == list(range(1, 101))
        assert verify_log(ORG, iter(entries)).ok
