"""Round trip of one no-op run, sequential: create it, then wait for its result over the live event
stream. Baseline in the same run: the floor of any HTTP run API on this machine, a bare FastAPI
endpoint answering the same two requests (insert a row, read it back). For scale, the issue
measured LangGraph's dev server here at 1,001 ms p50 (it polls for work every 0.5 s).

    python bench/roundtrip.py [--runs 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
from _util import agent_sdk_server, bare_server, bench_env, median, pct, row

NOOP = {"agent": {"name": "noop", "model": "scripted", "script": [{"text": "ok"}]}, "input": "hi"}


def ours(url: str, token: str, n: int) -> list[float]:
    times = []
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers) as c:
        for _ in range(n):
            t = time.perf_counter()
            run = c.post("/v1/runs", json=NOOP).raise_for_status().json()
            with c.stream(
                "GET", f"/v1/runs/{run['id']}/events", headers={"Accept": "text/event-stream"}
            ) as r:
                for line in r.iter_lines():
                    if line.startswith("event: run.") and line[7:] in (
                        "run.succeeded",
                        "run.failed",
                        "run.cancelled",
                    ):
                        break
            times.append((time.perf_counter() - t) * 1000)
    return times


def bare(url: str, n: int) -> list[float]:
    times = []
    with httpx.Client(base_url=url) as c:
        for _ in range(n):
            t = time.perf_counter()
            run = c.post("/runs", json=NOOP).raise_for_status().json()
            c.get(f"/runs/{run['id']}").raise_for_status()
            times.append((time.perf_counter() - t) * 1000)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        env = bench_env(tmp / "home")
        with bare_server(tmp, env) as url:
            bare(url, 10)
            base = bare(url, args.runs)
        with agent_sdk_server(tmp / "home", env) as (url, token):
            ours(url, token, 10)
            mine = ours(url, token, args.runs)
    print(
        f"No-op run round trip, sequential, {args.runs} runs "
        "(baseline: bare FastAPI insert + read; LangGraph dev server: 1,001 ms p50 per the issue)"
    )
    print(row("p50 create -> result", median(mine), median(base), "ms"))
    print(row("p99 create -> result", pct(mine, 99), pct(base, 99), "ms"))
    print(f"{'vs LangGraph dev server p50 (1,001 ms)':<44} {1001 / median(mine):.0f}x faster")


if __name__ == "__main__":
    main()
