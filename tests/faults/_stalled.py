"""Helpers of the stalled-worker drill (tests/faults/test_stalled_worker.py): real `agent-sdk
worker` processes and a pause that does not land inside a database write."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import waiting

from agent_sdk.config import Settings

DEADLINE = 120.0  # seconds: generous, for a loaded 2-core machine; conditions end waits early


def cli(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "agent-sdk"), *args]


def wait_until(what: str, check: Callable[[], bool], timeout: float = DEADLINE) -> None:
    waiting.wait_until(what, check, timeout)


class Workers:
    """`agent-sdk worker` processes sharing one environment; each logs to its own file."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def run(self, *args: str) -> None:
        done = subprocess.run(cli(*args), env=self.env, capture_output=True, timeout=DEADLINE)
        assert done.returncode == 0, done.stderr.decode(errors="replace")

    def start(self, name: str) -> subprocess.Popen[bytes]:
        with (self.root / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(
                cli("worker", "--count", "1"), env=self.env, stdout=out, stderr=out
            )
        self.procs[name] = proc
        return proc

    def logs(self) -> str:
        return "\n".join(
            f"----- {name} -----\n{(self.root / f'{name}.log').read_text(errors='replace')[-8000:]}"
            for name in self.procs
        )

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(20)


def _holds_a_write_lock(settings: Settings) -> bool:
    """Whether a write of the store or the queue is held open (by the paused process): a
    worker paused inside a write would stall every other process, which is another drill."""
    if settings.store.backend == "postgres":
        import psycopg
        from psycopg import errors

        with psycopg.connect(settings.store.database_url, autocommit=False) as conn:
            try:
                conn.execute("SELECT id FROM runs FOR UPDATE NOWAIT")
            except errors.LockNotAvailable:
                return True
            finally:
                conn.rollback()
        return False
    paths = [settings.store.sqlite_path]
    if settings.queue.backend == "sqlite":
        paths.append(settings.queue_sqlite_path)
    for path in paths:
        db = sqlite3.connect(path, timeout=0.2, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
        except sqlite3.OperationalError:
            return True
        finally:
            db.close()
    return False


def pause_outside_writes(pid: int, settings: Settings) -> None:
    """SIGSTOP ``pid`` at a moment it holds no database write open (resume and try again
    when it does)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        os.kill(pid, signal.SIGSTOP)
        wait_until("the process to stop", lambda: _state(pid) == "T", 30)
        if not _holds_a_write_lock(settings):
            return
        os.kill(pid, signal.SIGCONT)
        assert time.monotonic() < deadline, "the process always held a write open"
        time.sleep(0.05)  # let it finish the write it was in


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "?"
