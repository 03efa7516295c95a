"""Audit appends per second with the hash chain on, against plain inserts of the same rows.

Ours: ``AuditService.record`` with ``AGENT_SDK_AUDIT_HASH_CHAIN=true`` and a signed checkpoint
every 100 records: scrubbing, the seek for the previous hash, SHA-256 over canonical JSON, the
insert, and the checkpoints. Baseline, same run: the very rows ours wrote (hashes included, as
text), inserted into a table of the same shape with the same settings (WAL,
synchronous=NORMAL, ``BEGIN IMMEDIATE`` and one commit per row) by plain sqlite3 calls. The
extra rows split the cost: the store's append alone, the service with the chain off, and the
chain with the JSONL file sink on.

The chain-on and chain-off rows alternate within each round, and the figures are medians over
the rounds with their spread (lowest..highest), so the cost of turning the chain on by default
is read from one interleaved measurement.

    python bench/audit.py [--records 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _util import median, row

from agent_sdk.config import Settings
from agent_sdk.core.audit import AuditService
from agent_sdk.governance.audit import canonical_json
from agent_sdk.records import AuditEntry
from agent_sdk.store.sqlite import SQLiteStore

ORG = "default"
COLUMNS = (
    "org_id seq time actor actor_kind action target outcome request_id source_ip details"
    " prev_hash hash"
).split()
PLAIN_TABLE = """
CREATE TABLE audit_log (
    org_id TEXT NOT NULL, seq INTEGER NOT NULL, time TEXT NOT NULL, actor TEXT NOT NULL,
    actor_kind TEXT NOT NULL, action TEXT NOT NULL, target TEXT, outcome TEXT NOT NULL,
    request_id TEXT, source_ip TEXT, details TEXT NOT NULL DEFAULT '{}', prev_hash TEXT,
    hash TEXT, PRIMARY KEY (org_id, seq)
) WITHOUT ROWID
"""


def fields(i: int) -> dict[str, Any]:
    return {
        "actor": "api_key:0Nq3xP1fK7aBcDeF",
        "actor_kind": "api_key",
        "action": "runs.create",
        "target": f"run_01JDQ7{i:020d}",
        "outcome": "success",
        "request_id": f"req-{i:012d}",
        "source_ip": "203.0.113.7",
        "details": {"agent": "support-bot", "status": 201, "input_chars": 42 + i % 7},
    }


def rate(n: int, fn: Callable[[int], object]) -> float:
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - t)


def service(tmp: Path, name: str, **settings: Any) -> AuditService:
    store = SQLiteStore(tmp / f"{name}.db")
    store.migrate()
    base = Settings(data_dir=str(tmp)).replace(audit_checkpoint_every=100)
    return AuditService(base.replace(**settings), store)


def plain(tmp: Path, name: str, entries: list[AuditEntry]) -> float:
    db = sqlite3.connect(tmp / f"{name}.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(PLAIN_TABLE)
    rows = []
    for e in entries:
        values = e.to_dict()
        values["details"] = canonical_json(e.details).decode()
        rows.append(tuple(values[c] for c in COLUMNS))
    sql = f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"

    def insert(i: int) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute(sql, rows[i])
        db.execute("COMMIT")

    result = rate(len(rows), insert)
    db.close()
    return result


def one_round(tmp: Path, n: int, r: int) -> dict[str, float]:
    # Chain on and off alternate within the round (off first on odd rounds), so a slower
    # stretch of a shared machine falls on both.
    chained = service(tmp, f"chain-{r}", audit_hash_chain=True)
    chained.public_key_pem()  # create the signing key before timing, as a running server has
    off = service(tmp, f"off-{r}", audit_hash_chain=False)
    pair = [("chain", chained), ("off", off)]
    out: dict[str, float] = {}
    for name, svc in pair if r % 2 == 0 else pair[::-1]:
        out[name] = rate(n, lambda i, svc=svc: svc.record(ORG, **fields(i)))  # type: ignore[misc]
    out["plain"] = plain(tmp, f"plain-{r}", list(chained.store.iter_audit(ORG)))
    store = service(tmp, f"store-{r}").store
    out["store"] = rate(n, lambda i: store.append_audit(ORG, fields(i), chain=True))
    log = str(tmp / f"audit-{r}.jsonl")
    filed = service(tmp, f"file-{r}", audit_hash_chain=True, audit_log_path=log)
    out["file"] = rate(n, lambda i: filed.record(ORG, **fields(i)))
    # What the chain adds to one record, in microseconds, measured within this round.
    out["extra_us"] = 1e6 / out["chain"] - 1e6 / out["off"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    results: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            results.append(one_round(Path(tmp), args.records, r))
    m = {k: median([res[k] for res in results]) for k in results[0]}
    lo = {k: min(res[k] for res in results) for k in results[0]}
    hi = {k: max(res[k] for res in results) for k in results[0]}
    print(f"audit appends, {args.records:,} records x {args.rounds} rounds, median rate")
    print("(baseline: plain sqlite3 inserts of the same rows, one transaction per row)")
    print(row("AuditService.record, hash chain on", m["chain"], m["plain"], "rec/s", True))
    print(row("store.append_audit, hash chain on", m["store"], m["plain"], "rec/s", True))
    print(row("AuditService.record, hash chain off", m["off"], m["plain"], "rec/s", True))
    print(row("chain on + JSONL file sink", m["file"], m["plain"], "rec/s", True))
    for k in ("chain", "off"):
        print(f"  spread of {k}: {lo[k]:,.0f}..{hi[k]:,.0f} rec/s")
    print(
        f"the chain adds {m['extra_us']:.1f} us per record (median of the rounds;"
        f" spread {lo['extra_us']:.1f}..{hi['extra_us']:.1f} us)"
    )


if __name__ == "__main__":
    main()
