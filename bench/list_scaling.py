"""`runs list --limit 50` on 1,000 and on 1,000,000 runs: keyset pagination must keep the cost
flat as the table grows. The baseline is the same listing on the 1,000-run table, same run; the
ratio should stay near 1. Also shown: a deep page read with OFFSET (what we avoid) for contrast.

    python bench/list_scaling.py [--big 1000000]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

from _util import agent_sdk_cmd, bench_env, median, row

from agent_sdk.config import load_settings
from agent_sdk.ids import new_id, utcnow
from agent_sdk.store import store_from_settings


def seed(env: dict[str, str], n: int) -> Path:
    settings = load_settings(env=env)
    store = store_from_settings(settings)
    store.migrate()
    store.close()
    path = settings.store.sqlite_path
    # Bulk-load with plain SQL: this is set-up for the measurement, not the product's write path.
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    now = utcnow()
    batch = 50_000
    for start in range(0, n, batch):
        rows = [
            (new_id("run"), "default", "demo", "succeeded", f"input {i}", "ok", now, now)
            for i in range(start, min(n, start + batch))
        ]
        conn.executemany(
            "INSERT INTO runs (id, org_id, agent, status, input, output, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    return path


def time_store(env: dict[str, str], repeat: int) -> tuple[float, float]:
    store = store_from_settings(load_settings(env=env))
    first, deep = [], []
    page = store.list_runs("default", limit=50)
    for _ in range(10):  # walk to page 11 to time a deep page too
        assert page.next_cursor
        page = store.list_runs("default", limit=50, cursor=page.next_cursor)
    cursor = page.next_cursor
    for _ in range(repeat):
        t = time.perf_counter()
        store.list_runs("default", limit=50)
        first.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        store.list_runs("default", limit=50, cursor=cursor)
        deep.append((time.perf_counter() - t) * 1000)
    store.close()
    return median(first), median(deep)


def time_offset(path: Path, offset: int, repeat: int) -> float:
    conn = sqlite3.connect(path)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        conn.execute(
            "SELECT * FROM runs WHERE org_id='default' ORDER BY id DESC LIMIT 50 OFFSET ?",
            (offset,),
        ).fetchall()
        times.append((time.perf_counter() - t) * 1000)
    conn.close()
    return median(times)


def time_cli(env: dict[str, str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(
            agent_sdk_cmd("runs", "list", "--limit", "50", "-o", "json", "--local"),
            env=env,
            stdout=subprocess.DEVNULL,
            check=True,
        )
        times.append((time.perf_counter() - t) * 1000)
    return median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=1_000)
    ap.add_argument("--big", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small_env = bench_env(Path(tmp) / "small")
        big_env = bench_env(Path(tmp) / "big")
        t = time.perf_counter()
        seed(small_env, args.small)
        big_path = seed(big_env, args.big)
        print(f"seeded {args.small:,} and {args.big:,} runs in {time.perf_counter() - t:.1f}s")
        s_first, s_deep = time_store(small_env, args.repeat)
        b_first, b_deep = time_store(big_env, args.repeat)
        cli_small = time_cli(small_env, 10)
        cli_big = time_cli(big_env, 10)
        offset = time_offset(big_path, args.big // 2, 20)
        print(f"size: {os.path.getsize(big_path) / 1e6:.0f} MB")
    print(f"runs list --limit 50 (baseline: the same call on {args.small:,} runs)")
    print(row(f"store, first page, {args.big:,} runs", b_first, s_first, "ms"))
    print(row(f"store, page 11 by cursor, {args.big:,} runs", b_deep, s_deep, "ms"))
    print(row(f"CLI wall time, {args.big:,} runs", cli_big, cli_small, "ms"))
    print(f"{'for contrast: OFFSET to the middle of 1M':<44} {offset:10.2f} ms")


if __name__ == "__main__":
    main()
