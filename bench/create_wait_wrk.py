"""32 concurrent clients, each creating a no-op run and waiting for its result, again and again.

The load comes from wrk (Debian package `wrk`) with bench/wrk/create_and_wait.lua, one connection
per wrk thread, each chaining two requests: ``POST /v1/runs`` (inline execution, as `agent-sdk up`
ships), then ``GET /v1/runs/{id}/events`` as Server-Sent Events, which ends with the run's
terminal event. Baseline, same run, interleaved rounds: the bare pair of requests on
bench/bare_app.py (insert a row, read it back) under uvicorn with the same settings. wrk is C and
uses a small share of a core here, so the load generator is not what limits either side (an
asyncio httpx client tops out near 100 runs/s on this machine).

    python bench/create_wait_wrk.py [--seconds 8] [--rounds 3] [--connections 32] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _util import ROOT, agent_sdk_server, bare_server, bench_env, spread

LUA = ROOT / "bench" / "wrk" / "create_and_wait.lua"
WRK_CPU: list[float] = []  # wrk's CPU seconds per second of load, every call


def chain(url: str, create: str, wait: str, token: str, seconds: int, conns: int) -> float:
    """Completed create-and-wait runs per second over ``seconds`` of wrk; records the share of
    one core wrk itself used, to show the load generator is not the limit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", f"-t{conns}", f"-c{conns}", f"-d{seconds}s", "--timeout", "30s", "-s", str(LUA),
         url, "--", create, wait, token],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    m = re.search(r"chained runs: (\d+) failures: (\d+) runs/s: ([\d.]+)", out)
    if not m:
        raise SystemExit(f"wrk printed no summary:\n{out}")
    if int(m.group(2)):
        raise SystemExit(f"{m.group(2)} failed chains against {url}:\n{out}")
    if not int(m.group(1)):
        raise SystemExit(f"no run completed against {url}:\n{out}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    WRK_CPU.append(cpu / seconds)
    return float(m.group(3))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=8, help="wrk duration per side per round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians reported")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--quick", action="store_true", help="1 s, one round (CI smoke)")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.rounds = 1, 1
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    ours: list[float] = []
    base: list[float] = []
    with tempfile.TemporaryDirectory() as tmp_s, contextlib.ExitStack() as stack:
        tmp = Path(tmp_s)
        env = bench_env(tmp / "home")
        bare_url = stack.enter_context(bare_server(tmp, env))
        our_url, token = stack.enter_context(agent_sdk_server(tmp / "home", env))
        sides = {
            "bare": (bare_url, "/runs", "/runs/%s", "", base),
            "ours": (our_url, "/v1/runs", "/v1/runs/%s/events", token, ours),
        }
        for url, create, wait, tok, _ in sides.values():  # warm-up, not counted
            chain(url, create, wait, tok, 1, args.connections)
        for r in range(args.rounds):
            order = ["bare", "ours"] if r % 2 == 0 else ["ours", "bare"]
            for name in order:
                url, create, wait, tok, figures = sides[name]
                figures.append(chain(url, create, wait, tok, args.seconds, args.connections))
            print(f"round {r + 1}/{args.rounds}: ours {ours[-1]:.0f} runs/s, bare "
                  f"{base[-1]:.0f} runs/s", file=sys.stderr)  # fmt: skip
    ratios = [o / b for o, b in zip(ours, base, strict=True)]
    print(f"{args.connections} concurrent create-and-wait clients (wrk, {args.seconds} s per side "
          f"per round), median [min..max] of {args.rounds} interleaved round(s), "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"  agent-sdk: POST /v1/runs + GET events (SSE) {spread(ours, '.0f')} runs/s")
    print(f"  bare FastAPI: POST /runs + GET /runs/{{id}}    {spread(base, '.0f')} runs/s")
    print(f"  wrk's own CPU: at most {max(WRK_CPU):.0%} of one core (of {os.cpu_count()} cores)")
    print(f"  ratio ours / bare: {spread(ratios)}  (higher is better)")


if __name__ == "__main__":
    main()
