"""Queue mode end to end, and how one worker overlaps runs that wait on a model.

1. No-op runs per second, accepted to finished: N scripted one-step runs created through the
   core in queue mode (each writes its run row, events and audit record, and a queue job), then
   `agent-sdk worker --count 2` executes them on SQLite. Baseline, same run, interleaved rounds:
   huey's SqliteHuey with 2 worker processes (`huey_consumer -w 2 -k process`) running N no-op
   tasks, at huey's default ``synchronous=FULL`` and at ``NORMAL``. agent-sdk's SQLite store and
   queue always run ``synchronous=NORMAL`` (fixed in agent_sdk/store/sqlite.py and
   agent_sdk/queue/sqlite.py, not a setting), so the headline ratio is against huey at NORMAL:
   equal durability. Completion is checked in this process (a read-only SQLite connection to our
   store; huey's own result store), so polling costs no process start-ups on the measured cores.
2. One worker process, M runs whose scripted model call waits 1 s: wall time, and memory per
   waiting run (the worker's RSS growth while they wait, divided by the runs).

    python bench/worker_throughput.py [--runs 2000] [--rounds 3] [--waiting 200] [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _util import ROOT, agent_sdk_cmd, bench_env, spread

NOOP = {"name": "noop", "model": "scripted", "script": [{"text": "ok"}]}
POLL = 0.01


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _create(env: dict[str, str], spec: dict[str, object], n: int) -> Path:
    """Create n runs through the core in a process of their own; return the SQLite file."""
    code = (
        "import json, sys\n"
        "from agent_sdk.config import load_settings\n"
        "from agent_sdk.core.runtime import Runtime\n"
        "settings = load_settings()\n"
        "rt = Runtime(settings)\n"
        f"spec = json.loads({json.dumps(json.dumps(spec))})\n"
        f"for i in range({n}):\n"
        "    rt.runs.create('default', spec, str(i))\n"
        "rt.close(wait=False)\n"
        "print(settings.store.sqlite_path)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                         stdout=subprocess.PIPE, text=True)  # fmt: skip
    return Path(out.stdout.strip().splitlines()[-1])


def _succeeded(db_path: Path) -> Callable[[], int]:
    """Count finished runs through one read-only connection held by this process."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None)
    return lambda: int(
        db.execute("SELECT COUNT(*) FROM runs WHERE status = 'succeeded'").fetchone()[0]
    )


def _until(done: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not done within {timeout:.0f} s")
        time.sleep(POLL)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def ours(n: int, tmp: Path) -> float:
    env = bench_env(tmp / "ours", AGENT_SDK_EXECUTION_MODE="queue")
    count = _succeeded(_create(env, NOOP, n))
    start = time.perf_counter()
    proc = subprocess.Popen(agent_sdk_cmd("worker", "--count", "2"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _until(lambda: count() >= n, "agent-sdk workers", max(120.0, n / 5))
        return n / (time.perf_counter() - start)
    finally:
        _stop(proc)


def huey(n: int, tmp: Path, synchronous: str) -> float:
    db = tmp / f"huey-{synchronous}.db"
    path = os.pathsep.join(p for p in (str(ROOT / "bench"), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, HUEY_DB=str(db), HUEY_SYNCHRONOUS=synchronous, PYTHONPATH=path)
    code = f"from _huey_app import noop\nfor i in range({n}):\n    noop(i)\n"
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    from huey import SqliteHuey

    # The same file, read through huey's own API from this process (the level is irrelevant
    # to a reader).
    results = SqliteHuey("bench", filename=str(db))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "huey.bin.huey_consumer", "_huey_app.huey",
                             "-w", "2", "-k", "process", "-q"], env=env, cwd=ROOT / "bench",
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _until(lambda: results.pending_count() == 0 and results.result_count() >= n,
               f"huey ({synchronous})", max(120.0, n / 5))  # fmt: skip
        return n / (time.perf_counter() - start)
    finally:
        _stop(proc)


def overlap(n: int, tmp: Path) -> tuple[float, float]:
    env = bench_env(tmp / "wait", AGENT_SDK_EXECUTION_MODE="queue",
                    AGENT_SDK_MAX_CONCURRENT_RUNS=str(n + 10))  # fmt: skip
    spec = {"name": "waits", "model": "scripted", "latency": 1.0, "script": [{"text": "ok"}]}
    count = _succeeded(_create(env, spec, n))
    proc = subprocess.Popen(agent_sdk_cmd("worker", "--count", "1"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    start = time.perf_counter()
    try:
        idle = peak = _rss_kb(proc.pid)
        deadline = start + max(120.0, n)
        while count() < n:
            if time.perf_counter() > deadline:
                raise SystemExit("the waiting runs did not finish in time")
            peak = max(peak, _rss_kb(proc.pid))
            time.sleep(0.05)
        wall = time.perf_counter() - start
        return wall, (peak - idle) / n
    finally:
        _stop(proc)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians reported")
    ap.add_argument("--waiting", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one round (CI smoke)")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.rounds, args.waiting = 30, 1, 3
    if importlib.util.find_spec("huey") is None:
        raise SystemExit("huey is needed for the baseline: pip install -e '.[bench]'")
    rates: dict[str, list[float]] = {"ours": [], "FULL": [], "NORMAL": []}
    with tempfile.TemporaryDirectory() as tmp_s:
        for r in range(args.rounds):
            tmp = Path(tmp_s) / f"round-{r}"
            tmp.mkdir()
            sides = ["ours", "FULL", "NORMAL"]
            for side in sides[r % 3 :] + sides[: r % 3]:  # each side goes first in turn
                rate = ours(args.runs, tmp) if side == "ours" else huey(args.runs, tmp, side)
                rates[side].append(rate)
            print(f"round {r + 1}/{args.rounds}: ours {rates['ours'][-1]:.0f} runs/s, huey FULL "
                  f"{rates['FULL'][-1]:.0f}, huey NORMAL {rates['NORMAL'][-1]:.0f} tasks/s",
                  file=sys.stderr)  # fmt: skip
        wall, per_run_kb = overlap(args.waiting, Path(tmp_s))
    equal = [o / b for o, b in zip(rates["ours"], rates["NORMAL"], strict=True)]
    vs_full = [o / b for o, b in zip(rates["ours"], rates["FULL"], strict=True)]
    print(f"No-op runs end to end, queue mode, 2 worker processes, SQLite, {args.runs} runs, "
          f"median [min..max] of {args.rounds} interleaved round(s), "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    for label, key, unit in (
        ("agent-sdk, synchronous=NORMAL (not configurable)", "ours", "runs/s"),
        ("huey SqliteHuey, synchronous=NORMAL", "NORMAL", "tasks/s"),
        ("huey SqliteHuey, synchronous=FULL (its default)", "FULL", "tasks/s"),
    ):
        print(f"  {label:<50} {spread(rates[key], '.0f')} {unit}")
    print(f"  ratio at equal durability (ours / huey NORMAL): {spread(equal)}  (higher is better)")
    print(f"  ratio against huey's default (ours NORMAL / huey FULL): {spread(vs_full)}"
          "  (not like for like: FULL fsyncs every commit)")  # fmt: skip
    print(f"One worker, {args.waiting} runs each waiting 1 s on the model: all done in "
          f"{wall:.2f} s; about {per_run_kb:.0f} KiB of memory per waiting run")  # fmt: skip


if __name__ == "__main__":
    main()
