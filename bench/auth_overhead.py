"""What access control costs: authenticated `GET /v1/runs` (API-key check, org and scope
checks, a per-key rate limit in memory) against the same route with authentication replaced by
a pass-through, same server settings, same run. The issue's target: under 15% slower.

    python bench/auth_overhead.py [--seconds 6] [--connections 16]

Each server is this script started with `--serve PORT [--no-auth]` on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _util import bench_env, free_port, row, server


def serve(port: int, no_auth: bool) -> None:
    import uvicorn

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
    uvicorn.Server(server_config(app, settings, host="127.0.0.1", port=port)).run()


def wrk(url: str, token: str, seconds: int, conns: int) -> tuple[float, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency",
         "-H", f"Authorization: Bearer {token}", url],  # fmt: skip
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if "Non-2xx" in out:
        raise SystemExit(f"errors during the load:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert m, out
    return rps, float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--serve", type=int)
    ap.add_argument("--no-auth", action="store_true")
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.no_auth)
        return
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp_s:
        home = Path(tmp_s) / "home"
        env = bench_env(home)
        results = {}
        for label, extra in (("auth", []), ("no-auth", ["--no-auth"])):
            port = free_port()
            cmd = [sys.executable, __file__, "--serve", str(port), *extra]
            with server(cmd, env, port) as url:
                token = limited_key(url, home)
                wrk(url + "/v1/runs", token, 2, args.connections)  # warm up
                results[label] = wrk(url + "/v1/runs", token, args.seconds, args.connections)
    (rps, p99), (base_rps, base_p99) = results["auth"], results["no-auth"]
    print(f"GET /v1/runs, wrk -c{args.connections} for {args.seconds}s "
          "(a rate-limited viewer key; baseline: the same route with authentication replaced by "
          "a pass-through)")  # fmt: skip
    print(row("requests/s", rps, base_rps, "req/s", higher_is_better=True))
    print(row("p99 latency", p99, base_p99, "ms"))
    print(f"{'cost of access control':<44} {(1 - rps / base_rps) * 100:.1f}% of throughput")


if __name__ == "__main__":
    main()
