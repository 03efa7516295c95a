"""The audit log: the AuditStore contract on SQLite, and the service on top of it (chain,
checkpoints, tamper detection, sinks that fail closed, scrubbing, streaming export).

Tampering is simulated the way an attacker with the database file would do it: plain SQL on a
separate sqlite3 connection, never through the store."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from contracts.audit_store_contract import AuditStoreContract

from agent_sdk.audit_anchor import CheckpointVerifier
from agent_sdk.canonical import canonical_text
from agent_sdk.config import Settings
from agent_sdk.core.audit import AuditService
from agent_sdk.errors import BackendUnavailable, ConfigError, Conflict, InvalidInput
from agent_sdk.governance.audit import (
    REDACTED,
    canonical_json,
    chain_hash,
    checkpoint_payload,
    read_csv,
    read_jsonl,
    scrub,
)
from agent_sdk.governance.audit_signing import CheckpointSigner
from agent_sdk.governance.audit_sinks import StdoutSink
from agent_sdk.governance.audit_verify import verify_log
from agent_sdk.records import AuditEntry, Checkpoint, VerifyReport
from agent_sdk.store.sqlite import SQLiteStore

ORG = "default"
OTHER = "org_other"
API_KEY = "asdk_0Nq3xP1fK7aBcDeF_" + "S3cr3tS3cr3tS3cr3tS3cr3tS3cr3tXY" + "Qr7T9x"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "store.db")
    s.migrate()
    yield s
    s.close()


class TestSQLiteAuditStore(AuditStoreContract):
    """The shared contract, on a fresh SQLite file per test (the ``store`` fixture above)."""

    @pytest.fixture
    def twin(self, tmp_path: Path) -> Iterator[SQLiteStore]:
        s = SQLiteStore(tmp_path / "store.db")
        yield s
        s.close()


@pytest.fixture
def audit_settings(settings: Settings) -> Settings:
    return settings.replace(audit_hash_chain=True, audit_checkpoint_every=10)


@pytest.fixture
def audit(audit_settings: Settings, store: SQLiteStore) -> AuditService:
    return AuditService(audit_settings, store)


def record(audit: AuditService, n: int = 0, org_id: str = ORG, **extra: Any) -> AuditEntry:
    values: dict[str, Any] = {
        "actor": "api_key:0Nq3xP1fK7aBcDeF",
        "actor_kind": "api_key",
        "action": "runs.create",
        "target": f"run_{n}",
        "outcome": "success",
        "request_id": f"req-{n}",
        "source_ip": "203.0.113.7",
        "details": {"n": n},
    }
    values.update(extra)
    return audit.record(org_id, **values)


def fill(audit: AuditService, count: int, org_id: str = ORG) -> list[AuditEntry]:
    return [record(audit, i, org_id) for i in range(count)]


def tamper(store: SQLiteStore, sql: str, params: tuple[Any, ...] = ()) -> None:
    """Change the database behind the store's back, as someone with the file could."""
    db = sqlite3.connect(store.path, isolation_level=None)
    try:
        db.execute(sql, params)
    finally:
        db.close()


def rehash(store: SQLiteStore, org_id: str = ORG) -> None:
    """Recompute every hash of the org's chain from its (tampered) contents: what an attacker
    with database access but without the signing key can do."""
    prev: str | None = None
    for e in list(store.iter_audit(org_id)):
        new = chain_hash(prev, AuditEntry(**{**e.to_dict(), "prev_hash": prev}))
        tamper(
            store,
            "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE org_id = ? AND seq = ?",
            (prev, new, org_id, e.seq),
        )
        prev = new


# -- the chain and verification ------------------------------------------------------------------
def test_chain_links_and_verify_ok(audit: AuditService, store: SQLiteStore) -> None:
    entries = fill(audit, 25)
    assert [e.seq for e in entries] == list(range(1, 26))
    assert entries[0].prev_hash is None
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:], strict=False))
    assert [cp.seq for cp in store.list_checkpoints(ORG)] == [10, 20]
    report = audit.verify(ORG)
    assert report == VerifyReport(ORG, True, 25, None, None, entries[-1].hash, 2, 0)
    assert report.summary() == (
        "audit log of org 'default': 25 records verified, 2 signed checkpoints ok"
    )
    assert VerifyReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report


def test_the_hash_is_reproducible_from_the_documented_rules(audit: AuditService) -> None:
    fill(audit, 2)
    lines = list(audit.export(ORG))
    prev: bytes = b""
    for line in lines:
        data = json.loads(line)
        claimed = data.pop("hash")
        body = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(prev + body.encode("utf-8")).hexdigest() == claimed
        assert line == json.dumps({**data, "hash": claimed}, sort_keys=True,
                                  separators=(",", ":"), ensure_ascii=False) + "\n"  # fmt: skip
        prev = bytes.fromhex(claimed)


def test_canonical_json_pins_the_format() -> None:
    value = {"b": "é\n\x01\x7f", "a": [1, 1.0, 1e16, None, True], "ä": {}}
    assert canonical_json(value) == (
        '{"a":[1,1.0,1e+16,null,true],"b":"é\\n\\u0001\x7f","ä":{}}'.encode()
    )
    cycle: dict[str, Any] = {}
    cycle["self"] = [cycle]
    for bad in ({"x": float("nan")}, {"x": object()}, {"x": "\ud800"}, {1: 1, "a": 2}, cycle):
        with pytest.raises(InvalidInput):
            canonical_json(bad)
    with pytest.raises(InvalidInput):
        canonical_text({"x": "\ud800"})  # the text the store keeps is refused the same way


def test_an_edited_record_is_named_with_the_reason(audit: AuditService, store: SQLiteStore) -> None:
    fill(audit, 25)
    tamper(
        store, "UPDATE audit_log SET details = '{\"n\":999}' WHERE org_id = ? AND seq = 7", (ORG,)
    )
    report = audit.verify(ORG)
    assert (report.ok, report.first_bad_seq, report.count) == (False, 7, 6)
    assert report.reason == "record 7 was altered: its contents no longer match its hash"
    assert report.summary() == (
        "audit log of org 'default' FAILED verification at record 7: " + report.reason
    )


def test_an_edited_and_rehashed_record_breaks_the_next_link(
    audit: AuditService, store: SQLiteStore
) -> None:
    entries = fill(audit, 25)
    edited = AuditEntry(**{**entries[6].to_dict(), "outcome": "denied"})
    tamper(
        store,
        "UPDATE audit_log SET outcome = 'denied', hash = ? WHERE org_id = ? AND seq = 7",
        (chain_hash(edited.prev_hash, edited), ORG),
    )
    report = audit.verify(ORG)
    assert (report.ok, report.first_bad_seq) == (False, 8)
    assert "does not link to record 7" in str(report.reason)


def test_a_deleted_middle_record_is_detected(audit: AuditService, store: SQLiteStore) -> None:
    fill(audit, 25)
    tamper(store, "DELETE FROM audit_log WHERE org_id = ? AND seq = 13", (ORG,))
    report = audit.verify(ORG)
    assert (report.ok, report.first_bad_seq) == (False, 13)
    assert report.reason == "record 13 is missing: it was deleted"
    tamper(store, "DELETE FROM audit_log WHERE org_id = ? AND seq = 14", (ORG,))
    assert audit.verify(ORG).reason == "record 13 is missing: records 13..14 were deleted"


def test_a_record_due_a_checkpoint_after_another_writer_moved_the_head_still_gets_it(
    audit_settings: Settings, store: SQLiteStore
) -> None:
    settings = audit_settings.replace(audit_checkpoint_every=5)
    mine, theirs = AuditService(settings, store), AuditService(settings, SQLiteStore(store.path))
    for i in range(3):
        record(mine, i)
    record(theirs, 3)  # seq 4: mine still expects its next record to be 4, not due
    entry = record(mine, 4)
    assert entry.seq == 5
    assert [cp.seq for cp in store.list_checkpoints(ORG)] == [5]
    assert mine.verify(ORG).ok


def test_a_truncated_tail_after_a_checkpoint_is_detected(
    audit: AuditService, store: SQLiteStore
) -> None:
    fill(audit, 25)
    # Cut the log back to 15 records: a clean chain, but the checkpoint at 20 vouches for more.
    tamper(store, "DELETE FROM audit_log WHERE org_id = ? AND seq > 15", (ORG,))
    report = audit.verify(ORG)
    assert (report.ok, report.first_bad_seq, report.count) == (False, 16, 15)
    assert "covers 20 records: records 16..20 were deleted from the tail" in str(report.reason)


def test_the_window_after_the_newest_checkpoint_closes_with_an_outside_copy(
    audit: AuditService, store: SQLiteStore
) -> None:
    fill(audit, 25)
    kept_outside = store.list_checkpoints(ORG)  # e.g. shipped to another system
    # The attacker also deletes the checkpoint rows that would give the cut away.
    tamper(store, "DELETE FROM audit_log WHERE org_id = ? AND seq > 15", (ORG,))
    tamper(store, "DELETE FROM audit_checkpoints WHERE org_id = ? AND seq > 15", (ORG,))
    assert audit.verify(ORG).ok  # the documented window: the database alone cannot tell
    report = audit.verify(ORG, checkpoints=kept_outside)
    assert (report.ok, report.first_bad_seq) == (False, 16)


def test_a_rewrite_with_recomputed_hashes_fails_the_checkpoints(
    audit: AuditService, store: SQLiteStore
) -> None:
    fill(audit, 25)
    tamper(
        store, "UPDATE audit_log SET actor = 'someone-else' WHERE org_id = ? AND seq = 3", (ORG,)
    )
    rehash(store)
    # The chain itself is consistent again; only the signed checkpoint can tell.
    assert verify_log(ORG, store.iter_audit(ORG)).ok
    report = audit.verify(ORG)
    assert (report.ok, report.first_bad_seq) == (False, 10)
    assert "the log up to here was rewritten" in str(report.reason)


def test_a_forged_checkpoint_has_a_bad_signature(
    audit: AuditService, store: SQLiteStore, tmp_path: Path
) -> None:
    fill(audit, 25)
    tamper(
        store, "UPDATE audit_log SET actor = 'someone-else' WHERE org_id = ? AND seq = 3", (ORG,)
    )
    rehash(store)
    head = store.list_audit(ORG, after_seq=9, limit=1)[0]
    # 1. Keep the real key id, make up the signature.
    fake = base64.b64encode(b"\x00" * 64).decode()
    tamper(
        store,
        "UPDATE audit_checkpoints SET head_hash = ?, signature = ? WHERE org_id = ? AND seq = 10",
        (head.hash, fake, ORG),
    )
    report = audit.verify(ORG)
    assert (report.ok, report.first_bad_seq) == (False, 10)
    assert report.reason == "checkpoint at seq 10 has a bad signature: it was forged or altered"
    # 2. Sign properly, but with the attacker's own key.
    theirs = CheckpointSigner.load(tmp_path / "attacker.key")
    forged = Checkpoint(ORG, 10, str(head.hash), "2030-01-01T00:00:00.000000Z", "", "")
    forged = Checkpoint(
        **{**forged.to_dict(), "signature": theirs.sign(checkpoint_payload(forged)),
           "key_id": theirs.key_id}
    )  # fmt: skip
    tamper(
        store,
        "UPDATE audit_checkpoints SET time = ?, signature = ?, key_id = ?"
        " WHERE org_id = ? AND seq = 10",
        (forged.time, forged.signature, forged.key_id, ORG),
    )
    report = audit.verify(ORG)
    assert report.first_bad_seq == 10 and "not the verifying key" in str(report.reason)
    # ... which verifies only with the attacker's public key, and the next checkpoint fails.
    report = audit.verify(ORG, public_key=theirs.public_key_pem())
    assert report.first_bad_seq == 20 and "not the verifying key" in str(report.reason)


def test_a_checkpoint_beyond_the_log_is_checked_for_its_signature_first(
    audit: AuditService, store: SQLiteStore
) -> None:
    fill(audit, 5)
    audit.public_key_pem()  # the deployment has its key (no checkpoint was due to create it)
    tamper(
        store,
        "INSERT INTO audit_checkpoints VALUES (?, 50, 'ab', '2030-01-01T00:00:00Z', 'eA==', 'k')",
        (ORG,),
    )
    report = audit.verify(ORG)
    assert report.first_bad_seq == 50 and "not the verifying key" in str(report.reason)


def test_verify_without_the_key_file_says_so(audit: AuditService, audit_settings: Settings) -> None:
    fill(audit, 10)
    public = audit.public_key_pem()
    audit_settings.audit_signing_key_path.unlink()
    fresh = AuditService(audit_settings, audit.store)
    report = fresh.verify(ORG)
    assert not report.ok and "is missing, so 1 checkpoints cannot be checked" in str(report.reason)
    assert not audit_settings.audit_signing_key_path.exists()  # verifying never creates a key
    assert fresh.verify(ORG, public_key=public).ok


def test_orgs_chains_are_independent(audit: AuditService, store: SQLiteStore) -> None:
    for i in range(24):
        record(audit, i, ORG if i % 2 else OTHER)
    assert [e.seq for e in store.iter_audit(OTHER)] == list(range(1, 13))
    assert [cp.seq for cp in store.list_checkpoints(OTHER)] == [10]
    tamper(store, "UPDATE audit_log SET outcome = 'x' WHERE org_id = ? AND seq = 2", (OTHER,))
    assert audit.verify(OTHER).first_bad_seq == 2
    assert audit.verify(ORG).ok


def test_empty_and_unchained_logs(audit_settings: Settings, store: SQLiteStore) -> None:
    off = AuditService(audit_settings.replace(audit_hash_chain=False), store)
    assert off.verify(ORG) == VerifyReport(ORG, True, 0)
    fill(off, 3)
    assert [e.hash for e in store.iter_audit(ORG)] == [None] * 3
    report = off.verify(ORG)
    assert not report.ok and "nothing to verify" in str(report.reason)
    with pytest.raises(Conflict, match="not hash-chained"):
        off.checkpoint(ORG)
    assert store.list_checkpoints(ORG) == []
    # Switched on later: the chain starts at record 4; the three before it are counted apart.
    on = AuditService(audit_settings, store)
    fill(on, 12)
    report = on.verify(ORG)
    assert report.ok and (report.count, report.unchained, report.checkpoints) == (15, 3, 1)
    assert "3 earlier records predate the hash chain" in report.summary()
    # Removing hashes from the chain is not "unchained": it is tampering.
    tamper(store, "UPDATE audit_log SET hash = NULL WHERE org_id = ? AND seq = 9", (ORG,))
    assert on.verify(ORG).first_bad_seq == 9


def test_checkpoint_on_demand(audit: AuditService, store: SQLiteStore) -> None:
    with pytest.raises(Conflict, match="empty"):
        audit.checkpoint(ORG)
    fill(audit, 3)
    cp = audit.checkpoint(ORG)
    assert (cp.org_id, cp.seq, cp.head_hash) == (ORG, 3, store.last_audit(ORG).hash)  # type: ignore[union-attr]
    assert audit.checkpoint(ORG) == cp  # the head has not moved: the same checkpoint
    verifier = CheckpointVerifier.from_pem(audit.public_key_pem())
    assert cp.key_id == verifier.key_id and verifier.check(checkpoint_payload(cp), cp.signature)
    assert audit.verify(ORG).checkpoints == 1


# -- the signing key -----------------------------------------------------------------------------
def test_signing_key_is_created_once_with_mode_0600(
    audit: AuditService, audit_settings: Settings
) -> None:
    path = audit_settings.audit_signing_key_path
    assert not path.exists()
    pem = audit.public_key_pem()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in path.read_bytes()
    assert AuditService(audit_settings, audit.store).public_key_pem() == pem
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_concurrent_key_creation_yields_one_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit.key"
    ids: list[str] = []
    barrier = threading.Barrier(8)

    def load() -> None:
        barrier.wait()
        ids.append(CheckpointSigner.load(path).key_id)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 8 and len(set(ids)) == 1


def test_a_bad_key_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.key"
    path.write_text("not a key")
    with pytest.raises(ConfigError, match="not a PEM private key"):
        CheckpointSigner.load(path)
    with pytest.raises(InvalidInput):
        CheckpointVerifier.from_pem("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")


def test_cryptography_is_not_imported_to_record_without_the_chain() -> None:
    code = textwrap.dedent(
        """
        import sys, tempfile
        from agent_sdk.config import Settings
        from agent_sdk.core.audit import AuditService
        from agent_sdk.store.sqlite import SQLiteStore
        d = tempfile.mkdtemp()
        store = SQLiteStore(d + "/a.db"); store.migrate()
        AuditService(Settings(data_dir=d).replace(audit_hash_chain=False), store).record(
            "default", actor="a", actor_kind="system", action="x", target=None, outcome="success")
        off = "cryptography" in sys.modules
        # With the chain on (the default), a record that is not due a checkpoint needs no key
        # either: a short CLI write does not pay for importing cryptography.
        AuditService(Settings(data_dir=d), store).record(
            "default", actor="a", actor_kind="system", action="x", target=None, outcome="success")
        print(off or "cryptography" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- concurrency across processes ----------------------------------------------------------------
WRITER = """
import sys, time
from agent_sdk.config import Settings
from agent_sdk.core.audit import AuditService
from agent_sdk.store.sqlite import SQLiteStore

db, data_dir, log, worker, start = sys.argv[1:6]
settings = Settings().replace(data_dir=data_dir, audit_hash_chain=True, audit_checkpoint_every=7,
                               audit_log_path=log)
audit = AuditService(settings, SQLiteStore(db, busy_timeout=30))
while time.time() < float(start):
    time.sleep(0.001)
for i in range(50):
    audit.record("default", actor=f"worker-{worker}", actor_kind="system", action="test.append",
                 target=str(i), outcome="success", details={"worker": worker, "i": i})
"""


@pytest.mark.slow
def test_concurrent_appends_from_four_processes_form_one_chain(
    audit_settings: Settings, store: SQLiteStore, tmp_path: Path
) -> None:
    log = tmp_path / "audit.jsonl"
    start = str(time.time() + 1.5)  # every process is ready well before: they really race
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(store.path),
                audit_settings.data_dir,
                str(log),
                str(w),
                start,
            ],
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for w in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    entries = list(store.iter_audit(ORG))
    assert [e.seq for e in entries] == list(range(1, 201))
    assert len({e.actor for e in entries[:60]}) > 1  # the writers interleaved
    # The processes raced to create the signing key too: one key signed every checkpoint.
    assert [cp.seq for cp in store.list_checkpoints(ORG)] == list(range(7, 201, 7))
    assert AuditService(audit_settings, store).verify(ORG).ok
    # The file got whole lines, in seq order, identical to the database's records.
    with log.open(encoding="utf-8") as fh:
        assert list(read_jsonl(fh)) == entries


# -- sinks fail closed ---------------------------------------------------------------------------
def test_unwritable_log_path_fails_closed_and_leaves_nothing(
    audit_settings: Settings, store: SQLiteStore, tmp_path: Path
) -> None:
    # A directory where the file should be: unwritable even for root.
    (tmp_path / "log-dir").mkdir()
    audit = AuditService(audit_settings.replace(audit_log_path=str(tmp_path / "log-dir")), store)
    with pytest.raises(BackendUnavailable, match=r"^audit log write failed: cannot write to file"):
        record(audit)
    assert store.last_audit(ORG) is None
    # Inside the caller's transaction, the caller's own write is undone with it.
    with pytest.raises(BackendUnavailable), store.transaction():
        store.set_meta("action-result", "done")
        record(audit)
    assert store.get_meta("action-result") is None and store.last_audit(ORG) is None


def test_the_file_sink_appends_whole_lines(audit_settings: Settings, store: SQLiteStore) -> None:
    log = Path(audit_settings.data_dir) / "logs" / "audit.jsonl"
    audit = AuditService(audit_settings.replace(audit_log_path=str(log)), store)
    entries = fill(audit, 3)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    log.rename(log.with_suffix(".1"))  # log rotation: the next record starts a new file
    entries.append(record(audit, 3))
    assert list(read_jsonl(log.with_suffix(".1").read_text().splitlines())) == entries[:3]
    assert list(read_jsonl(log.read_text().splitlines())) == entries[3:]


def test_stdout_sink_writes_lines_and_fails_closed(
    audit_settings: Settings,
    store: SQLiteStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    audit = AuditService(audit_settings.replace(audit_log_stdout=True), store)
    assert [type(s) for s in audit.sinks] == [StdoutSink]
    entry = record(audit)
    assert list(read_jsonl(capsys.readouterr().out.splitlines())) == [entry]
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stdout", closed)
    with pytest.raises(BackendUnavailable, match="cannot write to stdout"):
        record(audit, 1)
    assert store.last_audit(ORG) == entry


def test_a_failing_store_is_reported_as_an_audit_failure(
    audit: AuditService, store: SQLiteStore
) -> None:
    tamper(store, "DROP TABLE audit_log")
    with pytest.raises(BackendUnavailable, match="^audit log write failed: .*not migrated") as info:
        record(audit)
    assert info.value.hint == "run `agent-sdk db migrate`"


def test_a_bad_signing_key_fails_closed(
    audit: AuditService, audit_settings: Settings, store: SQLiteStore
) -> None:
    audit_settings.audit_signing_key_path.parent.mkdir(parents=True)
    audit_settings.audit_signing_key_path.write_text("not a key")
    fill(audit, 9)  # no checkpoint due: the key is not read (servers read it at start-up)
    with pytest.raises(BackendUnavailable, match="^audit log write failed: .*not a PEM"):
        record(audit, 9)  # the 10th record needs a checkpoint: it fails, and is not kept
    assert store.last_audit(ORG).seq == 9  # type: ignore[union-attr]


def test_missing_fields_are_invalid_input(audit: AuditService) -> None:
    with pytest.raises(InvalidInput, match="actor"):
        record(audit, actor="")
    with pytest.raises(InvalidInput, match="target"):
        record(audit, target=5)
    with pytest.raises(InvalidInput, match="mapping"):
        record(audit, details=["x"])
    assert record(audit, target="", request_id="").target is None


# -- secrets -------------------------------------------------------------------------------------
def test_secrets_never_reach_the_database_or_the_file(
    audit_settings: Settings, store: SQLiteStore, tmp_path: Path
) -> None:
    log = tmp_path / "audit.jsonl"
    audit = AuditService(audit_settings.replace(audit_log_path=str(log)), store)
    details = {
        "password": "hunter2-hunter2",
        "request": {
            "headers": {"Authorization": "Bearer opaque-bearer-credential", "X-Api-Key": "k-99"},
            "body": [{"note": f"pasted {API_KEY} by mistake", "jwt": JWT}],
        },
        "Client-Secret": {"anything": "below-a-secret-key"},
        "message": f"token was {JWT}",
    }
    entry = record(audit, details=details, target=f"key {API_KEY}")
    assert entry.details == {
        "password": REDACTED,
        "request": {
            "headers": {"Authorization": REDACTED, "X-Api-Key": REDACTED},
            "body": [{"note": f"pasted {REDACTED} by mistake", "jwt": REDACTED}],
        },
        "Client-Secret": REDACTED,
        "message": f"token was {REDACTED}",
    }
    assert entry.target == f"key {REDACTED}"
    store.close()  # checkpoint the WAL into the main file; read both anyway
    files = [Path(str(store.path) + suffix) for suffix in ("", "-wal", "-shm")]
    blob = b"".join(p.read_bytes() for p in files if p.exists()) + log.read_bytes()
    assert b"runs.create" in blob  # the record is there...
    for secret in ("hunter2", "opaque-bearer", "k-99", "S3cr3t", "eyJhbGci", "below-a-secret"):
        assert secret.encode() not in blob, secret  # ...its secrets are not


@pytest.mark.parametrize(
    "field", ["actor", "actor_kind", "action", "target", "outcome", "request_id", "source_ip"]
)
@pytest.mark.parametrize("secret", [API_KEY, JWT, "BeArEr opaque-bearer-credential"])
def test_a_secret_in_any_one_text_field_is_scrubbed(
    audit: AuditService, store: SQLiteStore, field: str, secret: str
) -> None:
    # The text fields are looked at together first; a secret in any one of them, the others
    # clean, must still be found (and only that field changes).
    entry = record(audit, **{field: f"seen {secret} here"})
    stored = store.last_audit(ORG)
    assert stored is not None and stored == entry
    assert getattr(stored, field) == f"seen {REDACTED} here"
    clean = record(audit, 1)
    others = [f for f in ("actor", "actor_kind", "action", "outcome", "source_ip") if f != field]
    assert all(getattr(stored, f) == getattr(clean, f) for f in others)


def test_scrub_rules() -> None:
    display = "asdk_0Nq3xP1fK7aBcDeF_"  # the public prefix a listing shows: not a secret
    assert scrub({"key": f"{display}…Qr7T"}) == {"key": f"{display}…Qr7T"}
    assert scrub({"v": API_KEY, "w": "asdk_" + "x" * 30, "b": "BEARER abc", "n": 1}) == {
        "v": REDACTED, "w": REDACTED, "b": REDACTED, "n": 1,
    }  # fmt: skip
    for key in ("token", "access_token", "API-KEY", "apikey", "Cookie", "set-cookie",
                "db_password", "PASSWD", "pepper", "client secret", "private_key"):  # fmt: skip
        assert scrub({key: "v"}) == {key: REDACTED}, key
    assert scrub({"actor": "api_key:0Nq3", "count": 3, "ok": True, "none": None}) == {
        "actor": "api_key:0Nq3", "count": 3, "ok": True, "none": None,
    }  # fmt: skip
    odd = scrub({1: (1, 2), "b": b"raw", "f": float("inf"), "s": {3}, "o": Path("/x")})
    assert odd == {"1": [1, 2], "b": "[3 bytes]", "f": "inf", "s": [3], "o": "/x"}
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(100):
        cursor["d"] = {}
        cursor = cursor["d"]
    assert "[TOO DEEP]" in json.dumps(scrub(deep))


# -- reading: tail, export -----------------------------------------------------------------------
def test_tail_shows_the_newest_and_then_follows(audit: AuditService) -> None:
    assert audit.tail(ORG) == []
    entries = fill(audit, 12)
    assert audit.tail(ORG, limit=5) == entries[-5:]
    assert audit.tail(ORG, limit=50) == entries
    assert audit.tail(ORG, after=3, limit=2) == entries[3:5]
    assert audit.tail(ORG, after=12) == []
    with pytest.raises(InvalidInput):
        audit.tail(ORG, after=-1)


def test_export_streams_without_reading_the_whole_log(
    audit: AuditService, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with store.transaction():  # set-up: 10,000 chained records in one commit
        for i in range(10_000):
            store.append_audit(ORG, {"actor": "a", "actor_kind": "system", "action": "x",
                                     "target": None, "outcome": "success",
                                     "details": {"i": i}}, chain=True)  # fmt: skip
    reads: list[str] = []
    real_query = store._query

    def counting_query(sql: str, params: Any = ()) -> Any:
        reads.append(sql)
        return real_query(sql, params)

    monkeypatch.setattr(store, "_query", counting_query)
    for fmt in ("jsonl", "csv"):
        lines = audit.export(ORG, fmt)
        assert reads == []  # nothing is read until the first line is asked for
        first = next(lines)
        assert first.startswith("{" if fmt == "jsonl" else "org_id,seq")
        assert len(reads) <= 1  # one page of 1,000 at most, not 10,000 records
        reads.clear()
    count = sum(1 for _ in audit.export(ORG))
    assert count == 10_000 and len(reads) == 11  # 10 full pages and an empty one
    reads.clear()
    # verify streams the same way (plus one read each of the checkpoints and the anchor)
    assert audit.verify(ORG).ok and len(reads) <= 13


def test_exports_parse_back_and_verify_offline(audit: AuditService, tmp_path: Path) -> None:
    entries = fill(audit, 9)
    entries.append(
        record(audit, 9, target='a "quoted", comma\nnew line', request_id=None,
               details={"ünï": "日本語", "csv": 'x,"y"\r\n', "n": [1.5, None]})
    )  # fmt: skip
    jsonl = list(audit.export(ORG, "jsonl"))
    csv_lines = list(audit.export(ORG, "csv"))
    assert len(jsonl) == 10 and len(csv_lines) == 11
    assert list(read_jsonl(jsonl)) == entries
    assert list(read_csv(io.StringIO("".join(csv_lines), newline=""))) == entries
    # An outside verifier needs the export, the checkpoints and the public key: nothing else.
    export = tmp_path / "export.jsonl"
    export.write_text("".join(jsonl), encoding="utf-8")
    verifier = CheckpointVerifier.from_pem(audit.public_key_pem())
    with export.open(encoding="utf-8") as fh:
        report = verify_log(
            ORG, read_jsonl(fh), checkpoints=audit.store.list_checkpoints(ORG), verifier=verifier
        )
    assert report.ok and report.checkpoints == 1
    with pytest.raises(InvalidInput):
        list(read_jsonl(['{"seq": 1}']))
    with pytest.raises(InvalidInput):
        list(read_csv(["a,b\n"]))


def test_export_checks_its_format_and_window_at_once(audit: AuditService) -> None:
    with pytest.raises(InvalidInput, match="unknown audit export format 'xml'"):
        audit.export(ORG, "xml")
    entries = fill(audit, 3)
    since = entries[1].time
    assert list(read_jsonl(audit.export(ORG, since=since))) == entries[1:]
    assert list(read_jsonl(audit.export(ORG, until=since))) == entries[:1]


def test_records_have_the_documented_shape(audit: AuditService) -> None:
    entry = record(audit)
    assert list(entry.to_dict()) == [
        "org_id", "seq", "time", "actor", "actor_kind", "action", "target", "outcome",
        "request_id", "source_ip", "details", "prev_hash", "hash",
    ]  # fmt: skip
    assert AuditEntry.from_dict(json.loads(json.dumps(entry.to_dict()))) == entry
    assert os.path.basename(str(audit.settings.audit_signing_key_path)) == "audit-signing.key"
