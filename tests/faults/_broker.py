"""Helpers of the broker-outage drills: worker processes and waiting on conditions (the
invariants every drill checks are in _invariants.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import waiting
from waiting import log_tails

ORG = "default"


def cli(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "agent-sdk"), *args]


def start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(cli(*args), env=env, stdout=out, stderr=out)


def wait_until(
    what: str, check: Callable[[], Any], timeout: float = 60, log: Path | None = None
) -> Any:
    """:func:`waiting.wait_until`, showing the tail of the worker's log on a timeout."""
    return waiting.wait_until(what, check, timeout, log_tails([log] if log else []))


def kill_all(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def children(pid: int) -> set[int]:
    """Worker processes started by ``worker --count N`` (spawn_main in their command line)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and b"spawn_main" in cmd:
            found.add(int(stat.parent.name))
    return found


def sigkill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def workers_of(parent: int, n: int, without: int | None = None) -> set[int] | None:
    """The ``n`` workers of ``parent`` once it has exactly that many (none of them
    ``without``), else None: a condition for :func:`wait_until`."""
    found = children(parent)
    return found if len(found) == n and without not in found else None
