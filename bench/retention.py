"""Retention on SQLite: what a policy costs the reads it filters, and how the sweeper deletes.

Seeds runs spread over 60 days, in sessions, each with events. Then, in the same run:

* listings (``runs list --limit 50``, a session's runs, ``sessions list``) through the core
  services with a policy (``runs_days=30``; ``keep_last_runs_per_session=20``) against the same
  listing with no policy: the filters ride in the queries, so the ratio should stay near 1;
* the sweep of ``runs_days=30`` in batches of ``AGENT_SDK_RETENTION_BATCH_SIZE`` rows per
  transaction, against deleting the same rows in one bulk transaction (what a naive purge
  does): the rate it pays for batching, and the longest write transaction each one holds,
  which is how long every run being created or followed meanwhile waits.

    python bench/retention.py [--runs 30000] [--events 4] [--batch 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _util import bench_env, median, pct, row

from agent_sdk import ids as _ids
from agent_sdk.config import load_settings
from agent_sdk.core.runtime import Runtime

ORG = "default"
DAYS = 60
RUNS_PER_SESSION = 50


def run_id(when: datetime) -> str:
    return "run_" + _ids._encode((int(when.timestamp() * 1000) << 80) | secrets.randbits(80))


def iso(when: datetime) -> str:
    return when.isoformat(timespec="microseconds")[:-6] + "Z"


def seed(path: Path, runs: int, events: int) -> None:
    """Bulk-load with plain SQL: set-up for the measurement, not the product's write path."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    start = datetime.now(UTC) - timedelta(days=DAYS)
    step = timedelta(days=DAYS) / runs
    run_rows, event_rows, sessions = [], [], {}
    for i in range(runs):
        when = start + step * i
        rid, at, session = run_id(when), iso(when), f"s{i % (runs // RUNS_PER_SESSION)}"
        sessions.setdefault(session, at)
        sessions[session] = max(sessions[session], at)
        run_rows.append((rid, ORG, session, "demo", "succeeded", f"input {i}", "ok", at, at))
        for seq in range(1, events + 1):
            event_rows.append((rid, seq, ORG, "tool.result", at, '{"output":"x"}'))
    db.executemany(
        "INSERT INTO sessions (org_id, id, created_at, updated_at) VALUES (?, ?, ?, ?)",
        [(ORG, s, at, at) for s, at in sessions.items()],
    )
    db.executemany(
        "INSERT INTO runs (id, org_id, session_id, agent, status, input, output, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        run_rows,
    )
    db.executemany(
        "INSERT INTO events (run_id, seq, org_id, type, time, data) VALUES (?, ?, ?, ?, ?, ?)",
        event_rows,
    )
    db.commit()
    db.close()


def fresh(tmp: Path, name: str, runs: int, events: int, **extra: str) -> Runtime:
    home = tmp / name
    env = bench_env(home, AGENT_SDK_RETENTION_SWEEP_INTERVAL="0", **extra)
    rt = Runtime(load_settings(env=env, cwd=tmp))
    seed(rt.settings.store.sqlite_path, runs, events)
    return rt


def latency(fn: Callable[[], Any], n: int = 200) -> float:
    """Median milliseconds of ``fn``."""
    fn()  # warm the page cache and the statement cache
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return median(times)


@contextmanager
def timed_transactions(rt: Runtime) -> Iterator[list[float]]:
    """The length (ms) of every outermost write transaction of the store while inside."""
    real = rt.store.transaction
    spans: list[float] = []
    depth = 0

    @contextmanager
    def timing() -> Iterator[None]:
        nonlocal depth
        depth += 1
        t = time.perf_counter()
        try:
            with real():
                yield
        finally:
            depth -= 1
            if depth == 0:
                spans.append((time.perf_counter() - t) * 1000)

    rt.store.transaction = timing  # type: ignore[method-assign]
    try:
        yield spans
    finally:
        rt.store.transaction = real  # type: ignore[method-assign]


POLICIES: dict[str, dict[str, int]] = {
    "no policy": {},
    "runs_days=30": {"runs_days": 30},
    "keep_last_runs_per_session=20": {"keep_last_runs_per_session": 20},
}


def listings(tmp: Path, runs: int, events: int, rounds: int) -> None:
    rt = fresh(tmp, "list", runs, events)
    try:
        cases: dict[str, Callable[[], Any]] = {
            "runs list --limit 50": lambda: rt.runs.list(ORG, limit=50),
            "runs list --session (50 runs)": lambda: rt.runs.list(ORG, session_id="s3"),
            "runs list --status succeeded": lambda: rt.runs.list(ORG, status=["succeeded"]),
            "sessions list --limit 50": lambda: rt.sessions.list(ORG, limit=50),
        }
        # Rounds alternate the policies, so drift of a shared machine hits each alike.
        seen: dict[tuple[str, str], list[float]] = {}
        for _ in range(rounds):
            for label, policy in POLICIES.items():
                rt.retention.set(ORG, policy, actor=None)
                for name, fn in cases.items():
                    seen.setdefault((label, name), []).append(latency(fn, 100))
        print(f"listings on {runs:,} runs over {DAYS} days, median of {rounds}x100 calls each")
        print("(baseline: the same listing with no retention policy, same database and run)")
        for label in list(POLICIES)[1:]:
            for name in cases:
                ours, base = median(seen[(label, name)]), median(seen[("no policy", name)])
                print(row(f"{name} [{label}]", ours, base, "ms"))
    finally:
        rt.close()


def sweeps(tmp: Path, runs: int, events: int, batch: int) -> None:
    rt = fresh(tmp, "sweep", runs, events, AGENT_SDK_RETENTION_BATCH_SIZE=str(batch))
    try:
        rt.retention.set(ORG, {"runs_days": 30}, actor=None)
        with timed_transactions(rt) as spans:
            t = time.perf_counter()
            report = rt.retention.sweep(ORG)
            ours = time.perf_counter() - t
        org = report.orgs[0]
        deleted = org.runs + org.events + org.sessions
        ours_longest, ours_p99, ours_p50 = max(spans), pct(spans, 99), median(spans)
    finally:
        rt.close()
    # The baseline: the same rows, one bulk transaction, on an identical database.
    rt = fresh(tmp, "bulk", runs, events)
    try:
        floor = rt.retention.run_expiry(ORG)
        rt.retention.set(ORG, {"runs_days": 30}, actor=None)
        expiry = rt.retention.run_expiry(ORG)
        assert floor is None and expiry is not None and expiry.floor is not None
        db = sqlite3.connect(rt.settings.store.sqlite_path, isolation_level=None)
        db.execute("PRAGMA secure_delete=ON")  # as the store's own connections delete
        t = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        old = "SELECT id FROM runs WHERE org_id = ? AND id < ?"
        n = db.execute(f"DELETE FROM events WHERE run_id IN ({old})", (ORG, expiry.floor)).rowcount
        n += db.execute(f"DELETE FROM runs WHERE id IN ({old})", (ORG, expiry.floor)).rowcount
        n += db.execute(
            "DELETE FROM sessions WHERE org_id = ? AND NOT EXISTS (SELECT 1 FROM runs r"
            " WHERE r.org_id = sessions.org_id AND r.session_id = sessions.id)",
            (ORG,),
        ).rowcount
        db.execute("COMMIT")
        bulk = time.perf_counter() - t
        db.close()
    finally:
        rt.close()
    print(f"\nsweep of runs_days=30: {org.runs:,} runs, {org.events:,} events, {org.sessions:,}"
          f" sessions deleted in {org.batches:,} batches of at most {batch} rows")  # fmt: skip
    print("(baseline: the same rows deleted in one bulk transaction, identical database)")
    assert n == deleted, (n, deleted)
    print(row("rows deleted per second", deleted / ours, n / bulk, "rows/s", True))
    print(row("longest write transaction", ours_longest, bulk * 1000, "ms"))
    print(row("p99 write transaction", ours_p99, bulk * 1000, "ms"))
    print(row("median write transaction", ours_p50, bulk * 1000, "ms"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30_000)
    ap.add_argument("--events", type=int, default=4)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        listings(Path(tmp), args.runs, args.events, args.rounds)
        sweeps(Path(tmp), args.runs, args.events, args.batch)


if __name__ == "__main__":
    main()
