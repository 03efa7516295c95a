"""Remembered audit heads under other appenders: two processes appending to one org's log at
once, and a retention cut past a remembered head, on SQLite and on Postgres.

Each store remembers the head it last wrote and appends after it in one statement, without the
org's lock when nothing else is in the transaction. These drills check that the remembered heads
never fork or gap the chain when another process keeps moving the head, when some records ride
in a caller's transaction, and when some of those transactions roll back.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_sdk.config import Settings
from agent_sdk.core.audit import AuditService
from agent_sdk.records import AuditAnchor
from agent_sdk.store import open_store
from agent_sdk.store.base import Store

ORG = "default"
RECORDS = 200  # per process: every 5th in a caller's transaction, every 11th rolled back
CHECKPOINT_EVERY = 7

WRITER = """
import sys
from agent_sdk.config import Settings
from agent_sdk.core.audit import AuditService
from agent_sdk.store import open_store

url, data_dir, worker, records, every = sys.argv[1:6]
settings = Settings().replace(
    data_dir=data_dir, audit_hash_chain=True, audit_checkpoint_every=int(every)
)
store = open_store(url)
audit = AuditService(settings, store)
audit.prepare_signer()


def record(i):
    audit.record("default", actor=f"worker-{worker}", actor_kind="system", action="test.append",
                 target=str(i), outcome="success", details={"worker": worker, "i": i})


print("ready", flush=True)
sys.stdin.readline()  # the go: both processes are up and connected
for i in range(int(records)):
    if i % 11 == 10:
        try:
            with store.transaction():
                record(i)
                raise RuntimeError("the action failed")
        except RuntimeError:
            pass
    elif i % 5 == 4:
        with store.transaction():
            record(i)
    else:
        record(i)
store.close()
"""


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'audit.db'}"


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    s = open_store(url)
    s.migrate()
    yield s
    s.close()


@pytest.mark.slow
def test_two_processes_appending_at_once_form_one_verified_chain(
    url: str, store: Store, tmp_path: Path
) -> None:
    settings = Settings().replace(
        data_dir=str(tmp_path), audit_hash_chain=True, audit_checkpoint_every=CHECKPOINT_EVERY
    )
    audit = AuditService(settings, store)
    audit.public_key_pem()  # the key exists before the writers start: they do not race for it
    args = [url, str(tmp_path), "", str(RECORDS), str(CHECKPOINT_EVERY)]
    procs = []
    for w in range(2):
        args[2] = str(w)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WRITER, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            _, err = p.communicate(timeout=180)
            assert p.returncode == 0, err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    kept = [i for i in range(RECORDS) if i % 11 != 10]
    entries = list(store.iter_audit(ORG))
    assert [e.seq for e in entries] == list(range(1, 2 * len(kept) + 1))  # no gap, no fork
    for w in ("0", "1"):
        mine = [e for e in entries if e.actor == f"worker-{w}"]
        assert [int(e.target or "") for e in mine] == kept  # in order, none rolled back
    assert all(e.prev_hash == before.hash for before, e in zip(entries, entries[1:], strict=False))
    last = entries[-1].seq
    signed = [cp.seq for cp in store.list_checkpoints(ORG)]
    assert signed == list(range(CHECKPOINT_EVERY, last + 1, CHECKPOINT_EVERY))
    report = audit.verify(ORG, public_key=audit.public_key_pem())
    assert report.ok, report.reason
    assert report.count == last


def test_a_head_remembered_across_a_retention_cut_is_not_built_on(url: str, store: Store) -> None:
    # This store remembers seq 2 as the head; another appends 3..6, and a retention sweep cuts
    # the log up to 5. Seq 3 is free again, but the next record must still follow 6.
    other = open_store(url)
    try:
        for i in range(2):
            store.append_audit(ORG, _fields(i), chain=True)
        later = [other.append_audit(ORG, _fields(i), chain=True) for i in range(2, 6)]
        cut = later[-2]
        assert cut.hash is not None
        store.prune_audit(ORG, AuditAnchor(ORG, cut.seq, cut.hash, cut.time, "sig", "key"))
        entry = store.append_audit(ORG, _fields(6), chain=True)
    finally:
        other.close()
    assert (entry.seq, entry.prev_hash) == (7, later[-1].hash)
    assert [e.seq for e in store.iter_audit(ORG)] == [6, 7]


def _fields(i: int) -> dict[str, Any]:
    return {"actor": "a", "actor_kind": "system", "action": "test.append", "target": str(i),
            "outcome": "success", "details": {"i": i}}  # fmt: skip
