"""Server-Sent Events throughput: one client streams a finished run of 10,000 events, against a
bare sse-starlette endpoint streaming the same number of events of the same shape, same run.

    python bench/sse.py [--events 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _util import agent_sdk_server, bare_server, bench_env, median, row


def seed(env: dict[str, str], n: int) -> str:
    import subprocess

    code = (
        "from agent_sdk.config import load_settings\n"
        "from agent_sdk.store import store_from_settings\n"
        "from agent_sdk.ids import new_id, utcnow\n"
        "from agent_sdk.records import Run, RunStatus\n"
        "s = store_from_settings(load_settings()); s.migrate()\n"
        "t = utcnow(); rid = new_id('run')\n"
        "s.insert_run(Run(rid, 'default', 'demo', RunStatus.SUCCEEDED, 'x', t, t))\n"
        "with s.transaction():\n"
        f"    for i in range({n - 1}):\n"
        "        s.append_event('default', rid, 'tool.result', {'i': i})\n"
        "    s.append_event('default', rid, 'run.succeeded', {})\n"
        "print(rid)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def stream(url: str, headers: dict[str, str], expect: int) -> float:
    n = 0
    t = time.perf_counter()
    with httpx.Client(timeout=60) as c, c.stream("GET", url, headers=headers) as r:
        for chunk in r.iter_lines():
            if chunk.startswith("id:"):
                n += 1
    elapsed = time.perf_counter() - t
    assert n == expect, (n, expect)
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        env = bench_env(tmp / "home")
        run_id = seed(env, args.events)
        with bare_server(tmp, env, BARE_EVENTS=str(args.events)) as url:
            base = median([stream(url + "/sse", {}, args.events) for _ in range(args.repeat)])
        with agent_sdk_server(tmp / "home", env) as (url, token):
            headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
            ev_url = f"{url}/v1/runs/{run_id}/events"
            ours = median([stream(ev_url, headers, args.events) for _ in range(args.repeat)])
    print(
        f"SSE, one client, a finished run of {args.events} events, median of {args.repeat} "
        "(baseline: bare sse-starlette stream of the same events)"
    )
    print(row("events/s", ours, base, "ev/s", higher_is_better=True))


if __name__ == "__main__":
    main()
