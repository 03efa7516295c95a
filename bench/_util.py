"""Helpers shared by the benchmarks: free ports, servers in subprocesses, percentiles."""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_SDK_")}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        NO_COLOR="1",
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def server(cmd: Sequence[str], env: dict[str, str], port: int) -> Iterator[str]:
    """Start a server subprocess on 127.0.0.1:port and wait until it answers. Its output goes
    to a file, never a pipe nobody reads (a full pipe would stall the server mid-benchmark)."""
    log = tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server {cmd} did not start: {Path(log.name).read_text()}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        print(f"(server log: {log.name})", file=sys.stderr)


def agent_sdk_cmd(*args: str) -> list[str]:
    """The installed console script, as a user runs it."""
    script = Path(sys.executable).parent / "agent-sdk"
    return [str(script), *args]


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def row(name: str, ours: float, base: float, unit: str, higher_is_better: bool = False) -> str:
    ratio = ours / base if base else float("nan")
    better = "higher is better" if higher_is_better else "lower is better"
    return (
        f"{name:<44} ours {ours:>10.2f} {unit:<6} baseline {base:>10.2f} {unit:<6} "
        f"ratio {ratio:5.2f}  ({better})"
    )


@contextlib.contextmanager
def bare_server(tmp: Path, env: dict[str, str], **extra: str) -> Iterator[str]:
    """The baseline app of bench/bare_app.py under uvicorn, with uvicorn's default settings."""
    port = free_port()
    path = os.pathsep.join(p for p in (str(ROOT / "bench"), env.get("PYTHONPATH")) if p)
    env = dict(env, BARE_DB=str(tmp / "bare.db"), PYTHONPATH=path, **extra)
    cmd = [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(port),
           "--log-level", "warning"]  # fmt: skip
    with server(cmd, env, port) as url:
        yield url


@contextlib.contextmanager
def agent_sdk_server(home: Path, env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """`agent-sdk up` on a free port; yields its URL and admin token."""
    port = free_port()
    with server(agent_sdk_cmd("up", "--port", str(port)), env, port) as url:
        token = (home / ".local/share/agent-sdk/admin-token").read_text().strip()
        yield url, token


def spread(values: Sequence[float], fmt: str = ".2f") -> str:
    """``median [min..max]`` of interleaved rounds, as every figure in docs/benchmarks.md."""
    return f"{median(values):{fmt}} [{min(values):{fmt}}..{max(values):{fmt}}]"
