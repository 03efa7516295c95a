"""Queue mode end to end, and how one worker overlaps runs that wait on a model.

1. No-op runs per second, accepted to finished: N scripted one-step runs created through the
   core in queue mode (each writes its run row, events and audit record, and a queue job), then
   `agent-sdk worker --count 2` executes them on SQLite. Baseline, same run: huey's SqliteHuey
   with 2 worker processes (`huey_consumer -w 2 -k process`) running N no-op tasks.
2. One worker process, 200 runs whose scripted model call waits 1 s: wall time, and memory per
   waiting run (the worker's RSS growth while they wait, divided by the runs).

    python bench/worker_throughput.py [--runs 2000] [--waiting 200]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import ROOT, agent_sdk_cmd, bench_env, row

NOOP = {"name": "noop", "model": "scripted", "script": [{"text": "ok"}]}


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _create(env: dict[str, str], spec: dict[str, object], n: int) -> None:
    code = (
        "import json, sys\n"
        "from agent_sdk.config import load_settings\n"
        "from agent_sdk.core.runtime import Runtime\n"
        "rt = Runtime(load_settings())\n"
        f"spec = json.loads({__import__('json').dumps(__import__('json').dumps(spec))})\n"
        f"for i in range({n}):\n"
        "    rt.runs.create('default', spec, str(i))\n"
        "rt.close(wait=False)\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def _count_done(env: dict[str, str]) -> int:
    code = (
        "import sqlite3, sys\n"
        "from agent_sdk.config import load_settings\n"
        "db = sqlite3.connect(load_settings().sqlite_path)\n"
        "print(db.execute(\"SELECT COUNT(*) FROM runs WHERE status = 'succeeded'\").fetchone()[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return int(out.stdout)


def ours(n: int, tmp: Path) -> float:
    env = bench_env(tmp / "ours", AGENT_SDK_EXECUTION_MODE="queue")
    _create(env, NOOP, n)
    start = time.perf_counter()
    proc = subprocess.Popen(agent_sdk_cmd("worker", "--count", "2"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        while _count_done(env) < n:
            time.sleep(0.2)
        return n / (time.perf_counter() - start)
    finally:
        proc.terminate()
        proc.wait(30)


def huey(n: int, tmp: Path) -> float:
    env = dict(os.environ, HUEY_DB=str(tmp / "huey.db"), PYTHONPATH=str(ROOT / "bench"))
    code = (
        f"from _huey_app import noop\nresults = [noop(i) for i in range({n})]\nimport pickle, sys\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    consumer = Path(sys.executable).parent / "huey_consumer"
    start = time.perf_counter()
    proc = subprocess.Popen([str(consumer), "_huey_app.huey", "-w", "2", "-k", "process", "-q"],
                            env=env, cwd=ROOT / "bench",
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    check = "from _huey_app import huey\nprint(huey.pending_count(), huey.result_count())"
    try:
        while True:
            out = subprocess.run(
                [sys.executable, "-c", check], env=env, cwd=ROOT / "bench",
                capture_output=True, text=True, check=True,
            ).stdout.split()  # fmt: skip
            if int(out[0]) == 0 and int(out[1]) >= n:
                return n / (time.perf_counter() - start)
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(30)


def overlap(n: int, tmp: Path) -> tuple[float, float]:
    env = bench_env(tmp / "wait", AGENT_SDK_EXECUTION_MODE="queue",
                    AGENT_SDK_MAX_CONCURRENT_RUNS=str(n + 10))  # fmt: skip
    spec = {"name": "waits", "model": "scripted", "latency": 1.0, "script": [{"text": "ok"}]}
    _create(env, spec, n)
    proc = subprocess.Popen(agent_sdk_cmd("worker", "--count", "1"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    start = time.perf_counter()
    try:
        time.sleep(0.3)
        idle = _rss_kb(proc.pid)
        peak = idle
        while _count_done(env) < n:
            peak = max(peak, _rss_kb(proc.pid))
            time.sleep(0.05)
        wall = time.perf_counter() - start
        return wall, (peak - idle) / n
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--waiting", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        mine = ours(args.runs, tmp)
        base = huey(args.runs, tmp)
        wall, per_run_kb = overlap(args.waiting, tmp)
    print(f"No-op runs end to end, queue mode, 2 worker processes, SQLite, {args.runs} runs "
          "(baseline: huey SqliteHuey, 2 worker processes, no-op tasks)")  # fmt: skip
    print(row("runs/s accepted -> finished", mine, base, "runs/s", higher_is_better=True))
    print(f"One worker, {args.waiting} runs each waiting 1 s on the model: all done in "
          f"{wall:.2f} s; about {per_run_kb:.0f} KiB of memory per waiting run")  # fmt: skip


if __name__ == "__main__":
    main()
