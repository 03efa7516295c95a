"""The submitting side of bench/scale_out.py, one process per system under test.

    python bench/_scale/submit.py ours|celery|rq N

It connects and pushes one warm-up job through the workers (so imports, connections and the
workers' first lease are behind us), prints ``ready``, waits for a line on stdin, submits N
no-op jobs as fast as one process can, and prints the seconds that took. Each system is driven
through its own ordinary client API: ``Runtime.runs.create`` (which commits the run to Postgres
and enqueues its job in Redis), Celery's ``delay`` and RQ's ``Queue.enqueue``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

NOOP = {"name": "noop", "model": "scripted", "script": [{"text": "ok"}]}
RQ_QUEUE = "bench-noop"


def _until(done: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"warm-up: {what} did not finish in {timeout:.0f} s")
        time.sleep(0.02)


def ours() -> Callable[[int], None]:
    from agent_sdk.config import load_settings
    from agent_sdk.core.runtime import Runtime

    rt = Runtime(load_settings())
    warm = rt.runs.create("default", NOOP, "warm-up")
    _until(lambda: rt.runs.get("default", warm.id).status.terminal, "the warm-up run")

    def submit(i: int) -> None:
        rt.runs.create("default", NOOP, str(i))

    return submit


def celery() -> Callable[[int], None]:
    from celery_app import noop

    noop.delay(-1).get(timeout=60)

    def submit(i: int) -> None:
        noop.delay(i)

    return submit


def rq() -> Callable[[int], None]:
    from redis import Redis
    from rq import Queue

    queue = Queue(RQ_QUEUE, connection=Redis.from_url(os.environ["BENCH_RQ_REDIS"]))
    warm = queue.enqueue("rq_jobs.noop", -1)
    _until(lambda: warm.get_status(refresh=True) == "finished", "the warm-up job")

    def submit(i: int) -> None:
        queue.enqueue("rq_jobs.noop", i)

    return submit


def main() -> None:
    system, n = sys.argv[1], int(sys.argv[2])
    submit = {"ours": ours, "celery": celery, "rq": rq}[system]()
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.perf_counter()
    for i in range(n):
        submit(i)
    print(f"{time.perf_counter() - start:.6f}", flush=True)


if __name__ == "__main__":
    main()
