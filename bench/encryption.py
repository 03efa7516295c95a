"""Event writes and reads per second with encryption at rest on, against the same with it off.

Ours: the store with its envelope codec attached (``AGENT_SDK_ENCRYPTION_ENABLED=true``): each
appended event payload is sealed with AES-256-GCM under the org's data key, its seq bound into
the associated data; reads open every payload. Baseline, same run, same code, same payloads:
the store without a codec. Both write one event per transaction, as a run's events are written.
The rewrap row measures the re-encryption job after a rotation (values moved per second).

    python bench/encryption.py [--events 3000] [--rounds 3] [--postgres postgresql://...]

With ``--postgres`` the same rows run on that database too, each mode in a fresh schema that is
dropped afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _util import median, row

from agent_sdk.core.encryption_keyring import rewrap, rotate
from agent_sdk.governance.envelope import EnvelopeCodec, MasterKey
from agent_sdk.ids import new_id, utcnow
from agent_sdk.records import Run, RunStatus
from agent_sdk.store import open_store
from agent_sdk.store.base import Store

ORG = "default"
MASTER = MasterKey(os.urandom(32))


def payload(i: int) -> dict[str, Any]:
    """About 600 bytes of JSON, the size of a model response or a small tool result."""
    return {
        "text": f"step {i}: " + "the quick brown fox jumps over the lazy dog " * 10,
        "usage": {"input_tokens": 812 + i % 13, "output_tokens": 96},
        "tool_calls": [{"id": f"call_{i}", "name": "fs.read", "arguments": {"path": "a.md"}}],
    }


def rate(n: int, fn: Callable[[int], object]) -> float:
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - t)


def new_run(store: Store) -> str:
    now = utcnow()
    run = Run(new_id("run"), ORG, "bench", RunStatus.RUNNING, "input", now, now)
    store.insert_run(run)
    return run.id


def measure(store: Store, n: int, encrypted: bool) -> dict[str, float]:
    if encrypted:
        store.codec = EnvelopeCodec(store, MASTER)
    run_id = new_run(store)
    store.append_event(ORG, run_id, "warm.up", {})  # the org's key made, the cache filled
    out = {
        "write": rate(n, lambda i: store.append_event(ORG, run_id, "model.response", payload(i)))
    }
    pages = max(1, n // 100)

    def read_page(i: int) -> None:
        assert len(store.list_events(ORG, run_id, after=(i % pages) * 100, limit=100)) > 0

    out["read"] = rate(pages, read_page) * 100  # events per second
    if encrypted:
        assert isinstance(store.codec, EnvelopeCodec)
        codec = store.codec
        rotate(store, MASTER, ORG)
        codec.forget(ORG)
        t = time.perf_counter()
        moved, cursor = 0, None
        while True:
            report = rewrap(store, codec, ORG, limit=500, cursor=cursor)
            moved += report.rewrapped
            cursor = report.next_cursor
            if cursor is None:
                break
        out["rewrap"] = moved / (time.perf_counter() - t)
    return out


@contextlib.contextmanager
def sqlite_store(tmp: Path, name: str) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp / name}.db")
    store.migrate()
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def postgres_store(url: str) -> Iterator[Store]:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(url, autocommit=True)
    admin.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    store = open_store(f"{url}{sep}options=-csearch_path%3D{schema}")
    try:
        store.migrate()
        yield store
    finally:
        store.close()
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def report(engine: str, results: list[dict[str, float]], n: int, rounds: int) -> None:
    m = {k: median([r[k] for r in results]) for k in results[0]}
    print(f"\n{engine}: {n:,} events x {rounds} rounds, median rate (one transaction per event)")
    print("(baseline: the same store, code and payloads with encryption off)")
    print(row("event writes/s, encryption on", m["on.write"], m["off.write"], "ev/s", True))
    print(row("event reads/s (pages of 100), encryption on", m["on.read"], m["off.read"],
              "ev/s", True))  # fmt: skip
    print(f"{'rewrap after a rotation':<44} ours {m['on.rewrap']:>10.2f} values/s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--postgres", metavar="URL", help="also run on this Postgres database")
    args = ap.parse_args()
    results: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            res: dict[str, float] = {}
            for mode in ("off", "on"):  # alternate, so drift in the machine hits both alike
                with sqlite_store(Path(tmp), f"{mode}-{r}") as store:
                    for k, v in measure(store, args.events, mode == "on").items():
                        res[f"{mode}.{k}"] = v
            results.append(res)
    report("SQLite", results, args.events, args.rounds)
    if args.postgres:
        results = []
        for _ in range(args.rounds):
            res = {}
            for mode in ("off", "on"):
                with postgres_store(args.postgres) as store:
                    for k, v in measure(store, args.events, mode == "on").items():
                        res[f"{mode}.{k}"] = v
            results.append(res)
        report("Postgres", results, args.events, args.rounds)


if __name__ == "__main__":
    main()
