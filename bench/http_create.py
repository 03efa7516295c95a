"""`POST /v1/runs` throughput and p99 latency, against a bare FastAPI endpoint that inserts one
SQLite row, with the same uvicorn settings (one worker; httptools + uvloop when installed), in the
same run. The load comes from wrk (Debian package `wrk`) on loopback.

Two agent-sdk servers are measured: inline (`agent-sdk up` as shipped: the server admits each
run and executes it) and queue mode (the server only admits: the run is committed and enqueued on
the SQLite queue, and no worker runs, so the figure is admission alone). Rounds interleave the
three servers; each figure is the median [min..max] of the rounds.

    python bench/http_create.py [--seconds 8] [--connections 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from _util import agent_sdk_server, bare_server, bench_env, spread

NOOP = {"agent": {"name": "noop", "model": "scripted", "script": [{"text": "ok"}]}, "input": "hi"}


def wrk(
    url: str, body: dict[str, object], headers: dict[str, str], seconds: int, conns: int, tmp: Path
) -> tuple[float, float]:
    lua = tmp / "post.lua"
    hdrs = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    lua.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n' + hdrs
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", str(lua), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert m, out
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"errors during the load: {non2xx.group(0)}\n{out}")
    return rps, p99


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians reported")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    figures: dict[str, list[tuple[float, float]]] = {"bare": [], "inline": [], "queue": []}
    with tempfile.TemporaryDirectory() as tmp_s, contextlib.ExitStack() as stack:
        tmp = Path(tmp_s)
        bare_url = stack.enter_context(bare_server(tmp, bench_env(tmp / "home")))
        servers = {"bare": (bare_url + "/runs", {})}
        for mode in ("inline", "queue"):
            home = tmp / mode
            env = bench_env(home, AGENT_SDK_EXECUTION_MODE=mode)
            url, token = stack.enter_context(agent_sdk_server(home, env))
            servers[mode] = (url + "/v1/runs", {"Authorization": f"Bearer {token}"})
        for url, headers in servers.values():  # warm-up, not counted
            wrk(url, NOOP, headers, 1, args.connections, tmp)
        names = list(servers)
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                url, headers = servers[name]
                figures[name].append(wrk(url, NOOP, headers, args.seconds, args.connections, tmp))
    print(
        f"POST /v1/runs, wrk -c{args.connections} for {args.seconds}s, median [min..max] of "
        f"{args.rounds} interleaved round(s), load {os.getloadavg()[0]:.2f} (baseline: bare "
        "FastAPI endpoint inserting one SQLite row)"
    )
    base_rps = [f[0] for f in figures["bare"]]
    base_p99 = [f[1] for f in figures["bare"]]
    print(
        f"  {'bare FastAPI':<26} {spread(base_rps, '.0f')} req/s  p99 {spread(base_p99, '.1f')} ms"
    )
    for name, label in (("inline", "agent-sdk inline"), ("queue", "agent-sdk queue (admits)")):
        rps = [f[0] for f in figures[name]]
        p99 = [f[1] for f in figures[name]]
        rps_ratio = [o / b for o, b in zip(rps, base_rps, strict=True)]
        p99_ratio = [o / b for o, b in zip(p99, base_p99, strict=True)]
        print(
            f"  {label:<26} {spread(rps, '.0f')} req/s  p99 {spread(p99, '.1f')} ms  "
            f"ratio req/s {spread(rps_ratio)} (higher is better), p99 {spread(p99_ratio)} "
            "(lower is better)"
        )


if __name__ == "__main__":
    main()
