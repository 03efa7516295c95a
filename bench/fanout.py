"""Live events across processes on Postgres: LISTEN/NOTIFY against the store poll it replaces.

1. Delivery latency: process A appends events to a run (one every --gap seconds, each carrying
   its wall-clock send time); this process follows the run through ``RunService.stream`` and
   records when each arrives. Pushed (NOTIFY, the default) against the poll baseline (a store
   opened with ``notify=False``, so readers re-read it every POLL_INTERVAL), in the same run.
2. Append throughput: events appended in a tight loop, one transaction each, by 1 and by 4
   threads: with NOTIFY while another process LISTENs (and must hear every one: "heard"), with
   NOTIFY and no listener ("unheard"), against NOTIFY off (the baseline), modes alternating.

    python bench/fanout.py [--events 200] [--gap 0.02] [--appends 2000] [--repeat 3]

Needs a PostgreSQL (AGENT_SDK_BENCH_POSTGRES_URL, default postgresql://postgres@127.0.0.1/test);
it works in a schema of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from _util import bench_env, median, pct, row

from agent_sdk.config import load_settings
from agent_sdk.core import runs as runs_module
from agent_sdk.core.runtime import Runtime
from agent_sdk.ids import new_id, utcnow
from agent_sdk.records import Run, RunStatus
from agent_sdk.store.postgres import PostgresStore

URL = os.environ.get("AGENT_SDK_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
ORG = "default"

# Process A of the latency test: append, spaced out, then end the run.
WRITER = """
import sys, time
from agent_sdk.store.postgres import PostgresStore
url, run_id, n, gap, notify = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), \\
    sys.argv[5] == "1"
s = PostgresStore.from_url(url, notify=notify)
for i in range(n):
    time.sleep(gap)
    s.append_event("default", run_id, "tool.result", {"sent": time.time()})
s.append_event("default", run_id, "run.succeeded", {"sent": time.time()})
s.close()
"""

# The other process of the throughput test: listens, and says how many notifications it heard.
LISTENER = """
import sys, threading
from agent_sdk.store.pg_notify import NotifyListener
class Count:
    def __init__(self):
        self.n, self.up = 0, threading.Event()
    def wake(self, run_id, seq):
        self.n += 1
    def listening(self, up):
        if up:
            self.up.set()
sink = Count()
listener = NotifyListener(sys.argv[1], "bench", sink).start()
sink.up.wait(10)
print("ready", flush=True)
sys.stdin.read()
listener.close()
print(sink.n, flush=True)
"""


@contextlib.contextmanager
def fresh_schema() -> Iterator[str]:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex}"
    with psycopg.connect(URL, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in URL else "?"
    try:
        yield f"{URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(URL, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def add_run(store: PostgresStore) -> str:
    now = utcnow()
    return store.insert_run(Run(new_id("run"), ORG, "bench", RunStatus.RUNNING, "x", now, now)).id


# -- 1. latency ----------------------------------------------------------------------------------
def latencies(url: str, home: Path, *, notify: bool, events: int, gap: float) -> list[float]:
    """Seconds from append in process A to arrival in this process's stream, per event."""
    env = {
        "HOME": str(home),
        "AGENT_SDK_STORAGE_BACKEND": "postgres",
        "AGENT_SDK_DATABASE_URL": url,
    }
    settings = load_settings(env=bench_env(home, **env), cwd=Path.cwd())
    rt = Runtime(settings, store=PostgresStore.from_url(url, notify=notify))
    try:
        run_id = add_run(rt.store)  # type: ignore[arg-type]

        async def follow() -> list[float]:
            arrived: list[float] = []
            stream = rt.runs.stream(ORG, run_id)
            first = asyncio.ensure_future(anext(stream))  # subscribes: the listener starts
            deadline = time.monotonic() + 10
            while notify and not rt.bus.pushed and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            argv = [WRITER, url, run_id, str(events), str(gap), "1" if notify else "0"]
            proc = subprocess.Popen([sys.executable, "-c", *argv])
            try:
                event = await first
                while True:
                    if "sent" in event.data:
                        arrived.append(time.time() - event.data["sent"])
                    if event.terminal:
                        break
                    event = await anext(stream)
            finally:
                await stream.aclose()
                proc.wait(30)
            return arrived

        return asyncio.run(follow())
    finally:
        rt.close(wait=True, timeout=10)


# -- 2. throughput -------------------------------------------------------------------------------
@contextlib.contextmanager
def listening_process(url: str, expect: int) -> Iterator[None]:
    """Another process LISTENing while the block runs; it must hear ``expect`` notifications."""
    proc = subprocess.Popen(
        [sys.executable, "-c", LISTENER, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield
        time.sleep(0.2)  # let the last notifications reach it
        out, _ = proc.communicate("", timeout=30)
        heard = int(out.strip())
        assert heard == expect, f"the listener heard {heard} notifications, not {expect}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def appends_per_second(
    url: str, *, notify: bool, listener: bool, threads: int, appends: int
) -> float:
    store = PostgresStore.from_url(url, notify=notify, max_size=threads + 1)
    per_thread = appends // threads
    expect = per_thread * threads if notify else 0
    try:
        run_ids = [add_run(store) for _ in range(threads)]

        def work(run_id: str) -> None:
            for i in range(per_thread):
                store.append_event(ORG, run_id, "tool.result", {"i": i})

        workers = [threading.Thread(target=work, args=(r,)) for r in run_ids]
        with listening_process(url, expect) if listener else contextlib.nullcontext():
            started = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            elapsed = time.perf_counter() - started
        return per_thread * threads / elapsed
    finally:
        store.close()


# (label, NOTIFY on, another process listening); the last is the baseline of the others.
MODES = (
    ("NOTIFY, heard", True, True),
    ("NOTIFY, unheard", True, False),
    ("no NOTIFY", False, False),
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--gap", type=float, default=0.02)
    ap.add_argument("--appends", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s, fresh_schema() as url:
        tmp = Path(tmp_s)
        setup = PostgresStore.from_url(url)
        setup.migrate()
        setup.ensure_org(ORG)
        setup.close()

        pushed = latencies(url, tmp / "a", notify=True, events=args.events, gap=args.gap)
        polled = latencies(url, tmp / "b", notify=False, events=args.events, gap=args.gap)
        print(
            f"Delivery latency, append in process A -> stream in process B, {args.events} events "
            f"{args.gap * 1000:.0f} ms apart (baseline: store poll every "
            f"{runs_module.POLL_INTERVAL * 1000:.0f} ms, no NOTIFY)"
        )
        for q in (50, 99):
            ours, base = pct(pushed, q) * 1000, pct(polled, q) * 1000
            print(row(f"p{q} latency", ours, base, "ms"))

        print(
            f"Append throughput, {args.appends} events, one transaction each, median of "
            f"{args.repeat} (baseline: NOTIFY off)"
        )
        for threads in (1, 4):
            # The modes alternate, so a change in the machine's load weighs on all alike.
            rates: dict[str, list[float]] = {label: [] for label, _, _ in MODES}
            for _ in range(args.repeat):
                for label, notify, listener in MODES:
                    rate = appends_per_second(
                        url, notify=notify, listener=listener, threads=threads, appends=args.appends
                    )
                    rates[label].append(rate)
            base = median(rates[MODES[-1][0]])
            for label, _, _ in MODES[:-1]:
                name = f"appends/s, {threads} writer{'s' if threads > 1 else ''}, {label}"
                print(row(name, median(rates[label]), base, "ev/s", higher_is_better=True))


if __name__ == "__main__":
    main()
