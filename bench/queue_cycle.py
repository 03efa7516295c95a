"""Queue jobs per second: SQLiteQueue against huey's SqliteHuey, single process, same run.

One job's cycle, ours: ``enqueue`` (a JSON payload naming a run), then ``reserve`` (lease, token,
attempts + 1) and ``ack`` (delete) -- three write transactions. Huey's, the baseline: calling a
no-op task (pickles a Message and inserts it), ``huey.dequeue()`` (select + delete in one
transaction) and ``huey.execute(task)``: two transactions and no lease, so a worker that dies
mid-task loses the task. Both use WAL files in the same temporary directory. Huey runs twice:
with its default ``synchronous`` (FULL: an fsync per commit) and with ``fsync=False`` (OFF, less
durable than our NORMAL). Phases: enqueue N jobs, then drain them; the ratio is end to end.

    python bench/queue_cycle.py [--jobs 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _util import median, row

from agent_sdk.queue.sqlite import SQLiteQueue


def timed(fn: Callable[[], None]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def ours(tmp: Path, n: int) -> tuple[float, float]:
    q = SQLiteQueue(tmp / "queue.db")

    def produce() -> None:
        for i in range(n):
            q.enqueue("run", {"run_id": f"run_{i:012d}"})

    def consume() -> None:
        for _ in range(n):
            lease = q.reserve("bench", lease=60, timeout=1)
            assert lease is not None
            q.ack(lease)

    put, take = timed(produce), timed(consume)
    assert q.depth().total == 0
    q.close()
    return put, take


def huey(tmp: Path, n: int, **options: Any) -> tuple[float, float]:
    from huey import SqliteHuey

    h = SqliteHuey("bench", filename=str(tmp / "huey.db"), results=False, **options)

    @h.task()  # type: ignore[misc]
    def noop(run_id: str) -> None:
        pass

    def produce() -> None:
        for i in range(n):
            noop(f"run_{i:012d}")

    def consume() -> None:
        for _ in range(n):
            task = h.dequeue()
            assert task is not None
            h.execute(task)

    put, take = timed(produce), timed(consume)
    assert len(h) == 0
    h.storage.close()
    return put, take


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.jobs
    runs: dict[str, list[tuple[float, float]]] = {"ours": [], "huey": [], "huey_nosync": []}
    for _ in range(args.rounds):  # interleaved, so drift in the machine hits all alike
        for name in runs:
            with tempfile.TemporaryDirectory(prefix="bench-queue-") as d:
                if name == "ours":
                    runs[name].append(ours(Path(d), n))
                elif name == "huey":
                    runs[name].append(huey(Path(d), n))
                else:
                    runs[name].append(huey(Path(d), n, fsync=False))

    def rate(name: str, part: int | None) -> float:
        times = [r[part] if part is not None else r[0] + r[1] for r in runs[name]]
        return n / median(times)

    print(f"{n} jobs, {args.rounds} rounds, medians; jobs/s")
    for base, label in (("huey", "SqliteHuey"), ("huey_nosync", "SqliteHuey fsync=False")):
        for part, what in ((None, "enqueue+reserve+ack"), (0, "enqueue"), (1, "reserve+ack")):
            name = f"{what} vs {label}"
            print(row(name, rate("ours", part), rate(base, part), "jobs/s", higher_is_better=True))


if __name__ == "__main__":
    main()
