"""How soon `agent-sdk worker --count 2` finishes its first run, and what its start costs.

Each sample creates one scripted no-op run in queue mode (SQLite), starts the workers and
measures the wall time until that run has succeeded, then stops them and reads the CPU time
(user + system) the worker processes used in all, the start-up included. The floor, in the same
rounds: a Python process that starts two spawn processes, each importing nothing, and waits
for them (what any `--count 2` host pays before it does anything). With ``--compare
PATH`` another checkout (its ``agent_sdk`` first on PYTHONPATH) runs in the same interleaved
rounds, e.g. a copy of main to measure a change before and after.

    python bench/worker_startup.py [--rounds 9] [--compare ../main]
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import agent_sdk_cmd, bench_env, spread
from worker_throughput import NOOP, _create

POLL = 0.005
FLOOR = (
    "import multiprocessing as mp\n"
    "if __name__ == '__main__':\n"
    "    procs = [mp.get_context('spawn').Process(target=int) for _ in range(2)]\n"
    "    for p in procs: p.start()\n"
    "    for p in procs: p.join()\n"
)


def floor(env: dict[str, str], tmp: Path) -> tuple[float, float]:
    """(seconds, CPU seconds) of the floor: two empty spawn processes started and joined."""
    script = tmp / "floor.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(FLOOR)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, str(script)], env=env, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def sample(env: dict[str, str]) -> tuple[float, float]:
    """(seconds to the first run's success, CPU seconds of the workers) for one start."""
    db_path = _create(env, NOOP, 1)
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(agent_sdk_cmd("worker", "--count", "2"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = start + 120
        while not db.execute("SELECT 1 FROM runs WHERE status = 'succeeded'").fetchone():
            if time.perf_counter() > deadline:
                raise SystemExit("the first run did not finish within 120 s")
            time.sleep(POLL)
        first = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(60)
        db.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return first, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--compare", type=Path, help="another checkout to run in the same rounds")
    args = ap.parse_args()
    sides = {"this checkout": os.environ.get("PYTHONPATH", "")}
    if args.compare is not None:
        path = os.pathsep.join([str(args.compare.resolve()), sides["this checkout"]])
        sides[str(args.compare)] = path.rstrip(os.pathsep)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in [*sides, "floor"]}
    with tempfile.TemporaryDirectory() as tmp_s:
        for r in range(args.rounds):
            names = list(sides)
            for name in names[r % len(names) :] + names[: r % len(names)]:
                tmp = Path(tmp_s) / f"{r}-{len(results[name])}-{names.index(name)}"
                env = bench_env(tmp, AGENT_SDK_EXECUTION_MODE="queue", PYTHONPATH=sides[name])
                results[name].append(sample(env))
            results["floor"].append(floor(bench_env(Path(tmp_s) / "floor"), Path(tmp_s)))
    print(f"worker --count 2, first run: {args.rounds} interleaved rounds, median [min..max], "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    for name in sides:
        got = results[name]
        firsts = [f * 1000 for f, _ in got]
        cpus = [c * 1000 for _, c in got]
        print(f"  {name:<30} first run done after {spread(firsts, '.0f')} ms; "
              f"CPU of parent and workers {spread(cpus, '.0f')} ms")  # fmt: skip
    walls = [w * 1000 for w, _ in results["floor"]]
    cpus = [c * 1000 for _, c in results["floor"]]
    print(f"  {'floor (2 empty spawn procs)':<30} done after {spread(walls, '.0f')} ms; "
          f"CPU {spread(cpus, '.0f')} ms")  # fmt: skip
    for name in sides:
        ratios = [o[1] / f[1] for o, f in zip(results[name], results["floor"], strict=True)]
        print(f"  CPU ratio, {name} / floor: {spread(ratios)}")


if __name__ == "__main__":
    main()
