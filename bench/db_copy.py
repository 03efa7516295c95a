"""`agent-sdk db copy` rows/s, SQLite -> Postgres and back, against plain driver copies of the
same rows in the same run.

The source is a migrated SQLite deployment with 1,000 runs and ``--events`` events (about 200
bytes of JSON each, like model deltas and tool results). Ours: :func:`copy_database`, i.e. the
schema checks, the destination's migrations, a snapshot read in key order, COPY (or
``executemany`` into SQLite), a SHA-256 over every row on both sides and one transaction.
Baseline, same rows: the plainest correct copy, with the destination's tables already created
by the same migrations: ``SELECT *`` of each table with sqlite3 and ``cursor.copy`` of psycopg 3
into Postgres in one transaction (and psycopg reads + ``executemany`` for the way back): no
ordering, no checksums, no read-back. The ratio is what the guarantees cost.

Needs a Postgres server: AGENT_SDK_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:
5432/test); each round works in a fresh schema that is dropped afterwards.

    python bench/db_copy.py [--events 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# bench/queue.py would shadow the standard library's queue module, which psycopg imports: load
# psycopg with this script's directory off the path, then put it back for _util.
_HERE = sys.path.pop(0)
import psycopg  # noqa: E402

sys.path.insert(0, _HERE)
from _util import median, row  # noqa: E402

from agent_sdk.ids import new_id, utcnow  # noqa: E402
from agent_sdk.store import open_store  # noqa: E402
from agent_sdk.store.copy import canonical_schema, copy_database  # noqa: E402

PG = os.environ.get("AGENT_SDK_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
RUNS = 1000


def seed(path: Path, events: int) -> int:
    """A migrated SQLite deployment; returns how many rows copy will move."""
    store = open_store(f"sqlite:///{path}")
    store.migrate()
    store.close()
    # Bulk-load with plain SQL: set-up for the measurement, not the product's write path.
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    now = utcnow()
    run_ids = [new_id("run") for _ in range(RUNS)]
    db.executemany(
        "INSERT INTO runs (id, org_id, agent, status, input, output, created_at, updated_at)"
        " VALUES (?, 'default', 'support-bot', 'succeeded', ?, 'done', ?, ?)",
        [(rid, f"question {i} ünïcödé 🤖", now, now) for i, rid in enumerate(run_ids)],
    )
    per_run = max(1, events // RUNS)
    data = {"text": "a token or two of model output, " * 4, "step": 3, "usage": {"in": 812}}
    db.executemany(
        "INSERT INTO events (run_id, seq, org_id, type, time, data) VALUES (?, ?, 'default',"
        " 'model.delta', ?, ?)",
        (
            (run_ids[i // per_run], i % per_run + 1, now, json.dumps(data | {"i": i}))
            for i in range(events)
        ),
    )
    db.commit()
    total = sum(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables())
    db.close()
    return int(total)


def tables() -> list[str]:
    return [s.name for s in canonical_schema()[0]]


@contextmanager
def pg_schema() -> Iterator[str]:
    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {name}".encode())
        try:
            sep = "&" if "?" in PG else "?"
            yield f"{PG}{sep}options=-csearch_path%3D{name}"
        finally:
            admin.execute(f"DROP SCHEMA {name} CASCADE".encode())


def migrated(url: str) -> None:
    store = open_store(url)
    store.migrate()
    store.close()


def plain_to_pg(sqlite_path: Path, url: str) -> None:
    src = sqlite3.connect(sqlite_path)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(b"DELETE FROM projects")  # the migrations' seed rows
        cur.execute(b"DELETE FROM orgs")
        for spec in canonical_schema()[0]:
            cols = ", ".join(f'"{c}"' for c in spec.columns)
            rows = src.execute(f"SELECT {cols} FROM {spec.name}")
            with cur.copy(f"COPY {spec.name} ({cols}) FROM STDIN".encode()) as copy:
                while batch := rows.fetchmany(2000):
                    for r in batch:
                        copy.write_row(r)
    src.close()


def plain_to_sqlite(url: str, sqlite_path: Path) -> None:
    dst = sqlite3.connect(sqlite_path, isolation_level=None)
    dst.execute("BEGIN IMMEDIATE")
    dst.execute("DELETE FROM projects")
    dst.execute("DELETE FROM orgs")
    with psycopg.connect(url) as conn:
        for spec in canonical_schema()[0]:
            cols = ", ".join(f'"{c}"' for c in spec.columns)
            marks = ", ".join("?" * len(spec.columns))
            with conn.cursor(name=f"plain_{spec.name}") as cur:
                cur.execute(f"SELECT {cols} FROM {spec.name}".encode())
                while batch := cur.fetchmany(2000):
                    dst.executemany(f"INSERT INTO {spec.name} ({cols}) VALUES ({marks})", batch)
    dst.execute("COMMIT")
    dst.close()


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def one_round(tmp: Path, source: Path, r: int) -> dict[str, float]:
    out: dict[str, float] = {}
    src_url = f"sqlite:///{source}"
    with pg_schema() as ours_pg, pg_schema() as plain_pg:
        out["ours_to_pg"] = timed(lambda: copy_database(src_url, ours_pg))
        migrated(plain_pg)
        out["plain_to_pg"] = timed(lambda: plain_to_pg(source, plain_pg))
        back = tmp / f"back-{r}.db"
        out["ours_to_sqlite"] = timed(lambda: copy_database(ours_pg, f"sqlite:///{back}"))
        plain_back = tmp / f"plain-back-{r}.db"
        migrated(f"sqlite:///{plain_back}")
        out["plain_to_sqlite"] = timed(lambda: plain_to_sqlite(plain_pg, plain_back))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.db"
        n = seed(source, args.events)
        results = [one_round(Path(tmp), source, r) for r in range(args.rounds)]
    m = {k: median([res[k] for res in results]) for k in results[0]}
    print(f"db copy, {n:,} rows ({args.events:,} events, {RUNS:,} runs) x {args.rounds} rounds,")
    print("median rows/s (baseline: plain SELECT * + psycopg COPY / executemany, same rows)")
    print(row("SQLite -> Postgres", n / m["ours_to_pg"], n / m["plain_to_pg"], "rows/s", True))
    print(
        row("Postgres -> SQLite", n / m["ours_to_sqlite"], n / m["plain_to_sqlite"], "rows/s", True)
    )


if __name__ == "__main__":
    main()
