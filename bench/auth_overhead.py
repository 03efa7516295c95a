"""What access control costs: authenticated `GET /v1/runs` (API-key check, org and scope
checks, a per-key rate limit in memory) against the same route with authentication replaced by
a pass-through, same server settings, same run. The issue's target: at most 10% slower.

    python bench/auth_overhead.py [--seconds 5] [--connections 16] [--rounds 5] [--profile FILE]

Both servers run side by side (each is this script started with `--serve PORT [--no-auth]` on
127.0.0.1) and `wrk` loads them in turn, round after round, alternating which goes first, so a
change in the machine's load hits both alike. The figures are medians with the spread over the
rounds. `--profile FILE` runs the authenticated server under cProfile and writes its stats to
FILE when it stops (the server's work is all on its one event loop thread, which cProfile sees).

On a shared machine requests/s swing with whatever else runs, so each round also reads the CPU
time each server spent (from /proc, on Linux) and divides it by the requests it answered: CPU per
request barely moves when other processes take turns on the cores, and the difference between the
two servers is what access control costs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from _util import bench_env, free_port, median, row, server


class Round(NamedTuple):
    rps: float
    p99_ms: float
    cpu_us: float | None  # server CPU time per request


def serve(port: int, no_auth: bool, profile: str | None, pid_file: str | None) -> None:
    import os

    import uvicorn

    if pid_file:
        Path(pid_file).write_text(str(os.getpid()))
    from agent_sdk.config import load_settings
    from agent_sdk.core.auth import Admission, AuthService
    from agent_sdk.core.runtime import Runtime
    from agent_sdk.records import Principal
    from agent_sdk.server.app import create_app
    from agent_sdk.server.listener import server_config

    settings = load_settings()
    runtime = Runtime(settings)
    if no_auth:
        everyone = Principal("bench", "default", frozenset({"runs:read"}), "bench")

        class NoAuth(AuthService):
            def authenticate(self, token: str | None) -> Principal:
                return everyone

            def authorize(self, principal: Principal, **kw: Any) -> Admission:
                return Admission(principal, "default")

        runtime.auth = NoAuth(settings, runtime.keys, runtime.orgs)
    app = create_app(settings, runtime=runtime)
    srv = uvicorn.Server(server_config(app, settings, host="127.0.0.1", port=port))
    if profile is None:
        srv.run()
        return
    import cProfile
    import signal

    # uvicorn raises the SIGTERM again once it has shut down; exit through Python then, so the
    # stats get written.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    prof = cProfile.Profile()
    try:
        prof.runcall(srv.run)
    finally:
        prof.dump_stats(profile)


def cpu_seconds(pid: int | None) -> float | None:
    """User plus system CPU time of process ``pid`` so far, or None without /proc."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, token: str, seconds: int, conns: int, pid: int | None = None) -> Round:
    """One load of ``url``: requests/s, p99 in ms, and the server's CPU us per request."""
    cpu0 = cpu_seconds(pid)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency",
         "-H", f"Authorization: Bearer {token}", url],  # fmt: skip
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if "Non-2xx" in out:
        raise SystemExit(f"errors during the load:\n{out}")
    cpu1 = cpu_seconds(pid)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert m, out
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    cpu = None if cpu0 is None or cpu1 is None or not done else (cpu1 - cpu0) / done * 1e6
    return Round(rps, p99, cpu)


def limited_key(url: str, home: Path) -> str:
    """A viewer key with a rate limit far above the load, so every request pays for the
    limiter without being refused."""
    import httpx

    root = (home / ".local/share/agent-sdk/admin-token").read_text().strip()
    body = {"name": "bench", "role": "viewer", "rate_per_second": 1e6, "burst": 1_000_000}
    resp = httpx.post(f"{url}/v1/admin/api-keys", json=body,
                      headers={"Authorization": f"Bearer {root}"})  # fmt: skip
    resp.raise_for_status()
    token: str = resp.json()["token"]
    return token


def spread(values: list[float], fmt: str) -> str:
    return f"{median(values):{fmt}} [{min(values):{fmt}}..{max(values):{fmt}}]"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--profile", help="cProfile the authenticated server into this file")
    ap.add_argument("--serve", type=int)
    ap.add_argument("--no-auth", action="store_true")
    ap.add_argument("--pid-file")
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.no_auth, args.profile, args.pid_file)
        return
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    labels = ("auth", "no-auth")
    results: dict[str, list[Round]] = {label: [] for label in labels}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        urls: dict[str, str] = {}
        pids: dict[str, int | None] = {}
        token = ""
        for label in labels:
            # Each server has its own data directory, so neither sees the other's writes.
            home = tmp / label
            pid_file = tmp / f"{label}.pid"
            extra = ["--pid-file", str(pid_file)]
            if label == "no-auth":
                extra.append("--no-auth")
            if label == "auth" and args.profile:
                extra += ["--profile", str(Path(args.profile).resolve())]
            port = free_port()
            cmd = [sys.executable, __file__, "--serve", str(port), *extra]
            urls[label] = stack.enter_context(server(cmd, bench_env(home), port)) + "/v1/runs"
            pids[label] = int(pid_file.read_text())
            if label == "auth":
                # The baseline gets the same header (its pass-through ignores it).
                token = limited_key(urls[label].removesuffix("/v1/runs"), home)
            wrk(urls[label], token, 2, args.connections)  # warm up
        for r in range(args.rounds):
            for label in labels if r % 2 == 0 else labels[::-1]:
                load = wrk(urls[label], token, args.seconds, args.connections, pids[label])
                results[label].append(load)
    ours, theirs = results["auth"], results["no-auth"]
    rps, base = [a.rps for a in ours], [b.rps for b in theirs]
    costs = [(1 - a / b) * 100 for a, b in zip(rps, base, strict=True)]
    print(f"GET /v1/runs, wrk -t1 -c{args.connections}, {args.rounds} rounds of {args.seconds}s "
          "each, median [spread] (a rate-limited viewer key; baseline: the same route with "
          "authentication replaced by a pass-through)")  # fmt: skip
    print(row("requests/s", median(rps), median(base), "req/s", higher_is_better=True))
    print(f"{'':<44} spread: ours {spread(rps, ',.0f')}, baseline {spread(base, ',.0f')}")
    p99, base_p99 = [a.p99_ms for a in ours], [b.p99_ms for b in theirs]
    print(row("p99 latency", median(p99), median(base_p99), "ms"))
    print(f"{'cost of access control':<44} {spread(costs, '.1f')} % of throughput")
    cpu = [a.cpu_us for a in ours if a.cpu_us is not None]
    base_cpu = [b.cpu_us for b in theirs if b.cpu_us is not None]
    if len(cpu) == len(base_cpu) == args.rounds:
        extra_cpu = [a - b for a, b in zip(cpu, base_cpu, strict=True)]
        share = [(a / b - 1) * 100 for a, b in zip(cpu, base_cpu, strict=True)]
        print(row("server CPU per request", median(cpu), median(base_cpu), "us"))
        print(f"{'':<44} spread: ours {spread(cpu, '.0f')}, baseline {spread(base_cpu, '.0f')}")
        print(f"{'cost of access control (server CPU)':<44} {spread(extra_cpu, '.0f')} us, "
              f"{spread(share, '.1f')} % per request")  # fmt: skip


if __name__ == "__main__":
    main()
