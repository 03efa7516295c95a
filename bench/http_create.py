"""`POST /v1/runs` throughput and p99 latency, against a bare FastAPI endpoint that inserts one
SQLite row, with the same uvicorn settings (one worker; httptools + uvloop when installed), in the
same run. The load comes from wrk (Debian package `wrk`) on loopback.

    python bench/http_create.py [--seconds 8] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from _util import agent_sdk_server, bare_server, bench_env, row

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
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        env = bench_env(tmp / "home")
        with bare_server(tmp, env) as url:
            base = wrk(url + "/runs", NOOP, {}, args.seconds, args.connections, tmp)
        with agent_sdk_server(tmp / "home", env) as (url, token):
            ours = wrk(
                url + "/v1/runs",
                NOOP,
                {"Authorization": f"Bearer {token}"},
                args.seconds,
                args.connections,
                tmp,
            )
    print(
        f"POST /v1/runs, wrk -c{args.connections} for {args.seconds}s "
        "(baseline: bare FastAPI endpoint inserting one SQLite row)"
    )
    print(row("requests/s", ours[0], base[0], "req/s", higher_is_better=True))
    print(row("p99 latency", ours[1], base[1], "ms"))


if __name__ == "__main__":
    main()
