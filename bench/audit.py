"""Audit appends per second with the hash chain on, against plain inserts of the same rows.

Ours: ``AuditService.record`` with ``AGENT_SDK_AUDIT_HASH_CHAIN=true`` and a signed checkpoint
every 100 records: scrubbing, the hash over canonical JSON, the insert after the org's head, and
the checkpoints. Baseline, same run: the very rows ours wrote (hashes included, as text),
inserted into a table of the same shape with the same settings (WAL, synchronous=NORMAL,
``BEGIN IMMEDIATE``, the insert and ``COMMIT`` for each row) by plain sqlite3 calls. The extra
rows split the cost: the store's append alone, the service with the chain off, and the chain
with the JSONL file sink on; and a stricter baseline, the same plain insert as one autocommitted
statement (its own transaction, without the BEGIN and COMMIT calls), which is how the store
commits a record written alone.

With ``--postgres URL`` the service and the store's append also run on Postgres (a fresh
schema per round), against plain psycopg inserts of the same rows on an autocommit connection
(one statement, one transaction each) into a table of the same shape.

Every configuration runs in blocks of ``--block`` records, taking turns block by block, so a
busier stretch of a shared machine falls on all of them alike; a configuration's rate in a round
is its records over the sum of its blocks' times. The figures are medians over the rounds with
their spread (lowest..highest), the ratios too (each round's against its own baseline).

    python bench/audit.py [--records 3000] [--rounds 3] [--block 100] [--postgres URL]
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from _util import median, row, spread

from agent_sdk.config import Settings
from agent_sdk.core.audit import AuditService
from agent_sdk.governance.audit import canonical_json
from agent_sdk.records import AuditEntry
from agent_sdk.store import open_store

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
# The shape of the Postgres store's table (store/migrations/postgres/0003_audit.sql).
PLAIN_TABLE_PG = """
CREATE TABLE audit_log (
    org_id TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL, time TEXT COLLATE "C" NOT NULL,
    actor TEXT NOT NULL, actor_kind TEXT NOT NULL, action TEXT NOT NULL, target TEXT,
    outcome TEXT NOT NULL, request_id TEXT, source_ip TEXT, details TEXT NOT NULL DEFAULT '{}',
    prev_hash TEXT, hash TEXT, PRIMARY KEY (org_id, seq)
)
"""
INSERT = f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"

# A step appends records [start, end) and returns the entries it wrote (if any).
Step = Callable[[int, int], list[AuditEntry]]


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


def as_row(e: AuditEntry) -> tuple[Any, ...]:
    values = e.to_dict()
    values["details"] = canonical_json(e.details).decode()
    return tuple(values[c] for c in COLUMNS)


def recording(svc: AuditService) -> Step:
    def step(start: int, end: int) -> list[AuditEntry]:
        return [svc.record(ORG, **fields(i)) for i in range(start, end)]

    return step


def appending(svc: AuditService) -> Step:
    store = svc.store

    def step(start: int, end: int) -> list[AuditEntry]:
        for i in range(start, end):
            store.append_audit(ORG, fields(i), chain=True)
        return []

    return step


def interleaved(
    n: int, block: int, steps: dict[str, Step], plain: dict[str, Callable[[Sequence[Any]], None]]
) -> dict[str, float]:
    """Run every step over records [0, n) block by block, taking turns; each ``plain`` baseline
    (name -> a function inserting one row) then inserts the rows the "chain" step wrote in that
    block. Rates in records per second of wall time (``name``) and of this process's CPU time
    (``name/cpu``), which other processes on a shared machine disturb much less."""
    names = [*steps, *plain]
    wall, cpu = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0.0)
    for start in range(0, n, block):
        end = min(n, start + block)
        written: list[AuditEntry] = []
        for name, step in steps.items():
            t, c = time.perf_counter(), time.process_time()
            entries = step(start, end)
            wall[name] += time.perf_counter() - t
            cpu[name] += time.process_time() - c
            if name == "chain":
                written = entries
        rows = [as_row(e) for e in written]
        for name, insert in plain.items():
            t, c = time.perf_counter(), time.process_time()
            for r in rows:
                insert(r)
            wall[name] += time.perf_counter() - t
            cpu[name] += time.process_time() - c
    rates = {name: n / wall[name] for name in names}
    rates.update({f"{name}/cpu": n / max(cpu[name], 1e-9) for name in names})
    return rates


def service(store_url: str, data_dir: Path, **settings: Any) -> AuditService:
    store = open_store(store_url)
    store.migrate()
    base = Settings(data_dir=str(data_dir)).replace(audit_checkpoint_every=100)
    svc = AuditService(base.replace(**settings), store)
    svc.public_key_pem()  # create the signing key before timing, as a running server has
    return svc


def sqlite_round(tmp: Path, n: int, block: int, r: int) -> dict[str, float]:
    def url(name: str) -> str:
        return f"sqlite:///{tmp / f'{name}-{r}.db'}"

    log = str(tmp / f"audit-{r}.jsonl")
    services = {
        "chain": service(url("chain"), tmp, audit_hash_chain=True),
        "off": service(url("off"), tmp, audit_hash_chain=False),
        "file": service(url("file"), tmp, audit_hash_chain=True, audit_log_path=log),
    }
    steps = {name: recording(svc) for name, svc in services.items()}
    store_only = service(url("store"), tmp)
    steps["store"] = appending(store_only)
    db = sqlite3.connect(tmp / f"plain-{r}.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(PLAIN_TABLE)
    auto = sqlite3.connect(tmp / f"auto-{r}.db", isolation_level=None)
    auto.execute("PRAGMA journal_mode=WAL")
    auto.execute("PRAGMA synchronous=NORMAL")
    auto.execute(PLAIN_TABLE)

    def plain(values: Sequence[Any]) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute(INSERT, values)
        db.execute("COMMIT")

    def plain_auto(values: Sequence[Any]) -> None:
        auto.execute(INSERT, values)

    try:
        return interleaved(n, block, steps, {"plain": plain, "auto": plain_auto})
    finally:
        db.close()
        auto.close()
        for svc in [*services.values(), store_only]:
            svc.store.close()


@contextlib.contextmanager
def schema(url: str) -> Iterator[str]:
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {name}")
        try:
            sep = "&" if "?" in url else "?"
            yield f"{url}{sep}options=-csearch_path%3D{name}"
        finally:
            admin.execute(f"DROP SCHEMA {name} CASCADE")


def postgres_round(url: str, tmp: Path, n: int, block: int) -> dict[str, float]:
    import psycopg

    with schema(url) as ours, schema(url) as alone, schema(url) as theirs:
        svc = service(ours, tmp, audit_hash_chain=True)
        store_only = service(alone, tmp)
        conn = psycopg.connect(theirs, autocommit=True)
        conn.execute(PLAIN_TABLE_PG)
        sql = INSERT.replace("?", "%s")

        def plain(values: Sequence[Any]) -> None:
            conn.execute(sql, values)

        try:
            steps = {"chain": recording(svc), "store": appending(store_only)}
            return interleaved(n, block, steps, {"plain": plain})
        finally:
            conn.close()
            svc.store.close()
            store_only.store.close()


def report(results: list[dict[str, float]], lines: list[tuple[str, str, str]]) -> None:
    """One line per (label, ours, baseline): median rates and ratio; then the ratio's median
    and spread over the rounds, by wall time and by CPU time."""
    for label, ours, base in lines:
        m_ours = median([res[ours] for res in results])
        m_base = median([res[base] for res in results])
        print(row(label, m_ours, m_base, "rec/s", True))
        by_wall = [res[ours] / res[base] for res in results]
        by_cpu = [res[f"{ours}/cpu"] / res[f"{base}/cpu"] for res in results]
        print(f"{'':<45}ratio by wall time {spread(by_wall)}, by CPU time {spread(by_cpu)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--block", type=int, default=100)
    ap.add_argument("--postgres", metavar="URL", help="also run on this Postgres database")
    args = ap.parse_args()
    n, block = args.records, args.block
    with tempfile.TemporaryDirectory() as tmp:
        results = [sqlite_round(Path(tmp), n, block, r) for r in range(args.rounds)]
        print(f"SQLite: audit appends, {n:,} records x {args.rounds} rounds, blocks of {block}")
        print("(baseline: plain sqlite3 inserts of the same rows, BEGIN IMMEDIATE/INSERT/COMMIT)")
        report(
            results,
            [
                ("AuditService.record, hash chain on", "chain", "plain"),
                ("store.append_audit, hash chain on", "store", "plain"),
                ("AuditService.record, hash chain off", "off", "plain"),
                ("chain on + JSONL file sink", "file", "plain"),
                ("plain, one autocommitted INSERT", "auto", "plain"),
            ],
        )
        print("(stricter baseline: the plain insert as one autocommitted statement)")
        report(results, [("AuditService.record, hash chain on", "chain", "auto")])
        extra = [1e6 / res["chain"] - 1e6 / res["off"] for res in results]
        print(f"the chain adds {spread(extra, '.1f')} us per record")
        if args.postgres:
            pg = [postgres_round(args.postgres, Path(tmp), n, block) for _ in range(args.rounds)]
            print(f"\nPostgres: audit appends, {n:,} records x {args.rounds} rounds")
            print("(baseline: plain psycopg inserts of the same rows, autocommit, one per row)")
            report(
                pg,
                [
                    ("AuditService.record, hash chain on", "chain", "plain"),
                    ("store.append_audit, hash chain on", "store", "plain"),
                ],
            )


if __name__ == "__main__":
    main()
