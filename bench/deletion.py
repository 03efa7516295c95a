"""What ``PRAGMA secure_delete=ON`` costs the SQLite store, and what an erasure costs.

The SQLite store turns secure_delete on so that erased rows are overwritten rather than left in
the file's free space. Ours: the store as shipped (on). Baseline, same run, same rows: the same
store class with the pragma switched off on each connection. Rounds alternate the two, so drift
of the machine hits both alike.

Rows measured:

* event writes: ``append_event`` of 1 KiB tool results, one transaction each (the hot path;
  nothing is freed, so secure_delete should cost nothing here);
* run lifecycle: insert a run, append 20 events, finish it with a 4 KiB output (the update
  rewrites the row, freeing its old cell);
* erasure (store): ``delete_run`` of runs with 20 such events, one transaction each;
* erasure (service): ``RunService.delete`` (audit record and WAL checkpoint included), and the
  same without the checkpoint, against ``delete_run`` alone, all with secure_delete on, to show
  what the audit record and the scrub of the WAL each add.

    python bench/deletion.py [--runs 300] [--events 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _util import median, row

from agent_sdk.config import Settings
from agent_sdk.core.runtime import Runtime
from agent_sdk.ids import new_id, utcnow
from agent_sdk.records import Run, RunStatus
from agent_sdk.store.sqlite import SQLiteStore

ORG = "default"
PAYLOAD = {"id": "call_1", "name": "http.get", "ok": True, "output": "r" * 1024}


class InsecureStore(SQLiteStore):
    """The baseline: the same store, with deleted content left in free pages."""

    def _connect(self) -> sqlite3.Connection:
        db = super()._connect()
        db.execute("PRAGMA secure_delete=OFF")
        return db


def rate(n: int, fn: Callable[[int], object]) -> float:
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - t)


def new_run(store: SQLiteStore, i: int) -> str:
    now = utcnow()
    run = Run(new_id("run"), ORG, "bench", RunStatus.RUNNING, f"input {i} " + "i" * 2048, now, now)
    return store.insert_run(run).id


def fill(store: SQLiteStore, runs: int, events: int) -> list[str]:
    ids = []
    for i in range(runs):
        run_id = new_run(store, i)
        for _ in range(events):
            store.append_event(ORG, run_id, "tool.result", PAYLOAD)
        ids.append(run_id)
    return ids


def measure(cls: type[SQLiteStore], path: Path, runs: int, events: int) -> dict[str, float]:
    store = cls(path)
    store.migrate()
    try:
        target = new_run(store, 0)
        out = {
            "events": rate(runs * events, lambda i: store.append_event(ORG, target, "x", PAYLOAD))
        }

        def lifecycle(i: int) -> None:
            run_id = new_run(store, i)
            for _ in range(events):
                store.append_event(ORG, run_id, "tool.result", PAYLOAD)
            store.update_run(ORG, run_id, status=RunStatus.SUCCEEDED, output="o" * 4096)

        out["lifecycle"] = rate(runs, lifecycle)
        ids = fill(store, runs, events)
        out["erase"] = rate(len(ids), lambda i: store.delete_run(ORG, ids[i]))
    finally:
        store.close()
    return out


def service_round(tmp: Path, runs: int, events: int) -> dict[str, float]:
    rt = Runtime(Settings(data_dir=str(tmp)).replace(database_url=f"sqlite:///{tmp / 'svc.db'}"))
    try:
        store = rt.store
        assert isinstance(store, SQLiteStore)
        ids = fill(store, runs, events)
        service = rate(len(ids), lambda i: rt.runs.delete(ORG, ids[i]))
        ids = fill(store, runs, events)
        alone = rate(len(ids), lambda i: store.delete_run(ORG, ids[i]))
        ids = fill(store, runs, events)
        store.purge_deleted = lambda **_: True  # type: ignore[method-assign]
        audit_only = rate(len(ids), lambda i: rt.runs.delete(ORG, ids[i]))
    finally:
        rt.close()
    return {"service": service, "alone": alone, "audit_only": audit_only}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    ours: list[dict[str, float]] = []
    base: list[dict[str, float]] = []
    svc: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            pair = [(SQLiteStore, ours), (InsecureStore, base)]
            for cls, into in pair if r % 2 == 0 else pair[::-1]:
                into.append(
                    measure(cls, Path(tmp) / f"{cls.__name__}-{r}.db", args.runs, args.events)
                )
            d = Path(tmp) / f"svc-{r}"
            d.mkdir()
            svc.append(service_round(d, args.runs, args.events))
    m = {k: median([x[k] for x in ours]) for k in ours[0]}
    b = {k: median([x[k] for x in base]) for k in base[0]}
    s = {k: median([x[k] for x in svc]) for k in svc[0]}
    print(
        f"SQLite secure_delete, {args.runs} runs x {args.events} events of 1 KiB, "
        f"{args.rounds} rounds, median rate"
    )
    print("(baseline: the same store with PRAGMA secure_delete=OFF, same run)")
    print(row("event writes (append_event)", m["events"], b["events"], "ev/s", True))
    print(
        row("run lifecycle (insert, events, finish)", m["lifecycle"], b["lifecycle"], "run/s", True)
    )
    print(row("erasure, store.delete_run", m["erase"], b["erase"], "run/s", True))
    print("(baseline: store.delete_run alone, secure_delete on)")
    print(row("erasure, RunService.delete (audit + WAL)", s["service"], s["alone"], "run/s", True))
    print(row("  the same without the WAL checkpoint", s["audit_only"], s["alone"], "run/s", True))


if __name__ == "__main__":
    main()
