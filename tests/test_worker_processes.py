"""`agent-sdk worker --count N` as an operator runs it: the parent and its worker processes
start and stop together, whichever of them a service manager signals or kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from waiting import log_tails, wait_until

pytestmark = [
    pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads children from /proc"),
    pytest.mark.slow,  # real worker processes
]


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:  # field 4 of stat: the parent pid
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start(env: dict[str, str], tmp_path: Path) -> tuple[subprocess.Popen[bytes], set[int]]:
    cli = str(Path(sys.executable).parent / "agent-sdk")
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [cli, "worker", "--count", "2"],
            env={**env, "AGENT_SDK_EXECUTION_MODE": "queue"},
            stdout=out,
            stderr=out,
        )
    details = log_tails([log])

    def two_workers() -> set[int] | None:
        # Children running hosts.worker.work (the spawn context also starts a resource tracker).
        found = {c for c in _children(proc.pid) if b"spawn_main" in _cmdline(c)}
        return found if len(found) == 2 else None

    workers: set[int] = wait_until("two worker processes", two_workers, 30, details)
    # A worker catches SIGTERM once its loop runs (and it watches its parent from then on).
    wait_until(
        "the workers to handle SIGTERM",
        lambda: all(_catches(pid, signal.SIGTERM) for pid in workers),
        30,
        details,
    )
    return proc, workers


def _catches(pid: int, sig: signal.Signals) -> bool:
    """Whether ``pid`` has a handler installed for ``sig`` (SigCgt in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(
        (line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0"
    )
    return bool(int(caught, 16) >> (sig - 1) & 1)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {p for p in pids if _alive(p)}
        if not left:
            return left
        time.sleep(0.1)
    return {p for p in pids if _alive(p)}


def test_sigterm_to_the_parent_stops_every_worker(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    proc, workers = _start(isolated_env, tmp_path)
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert _wait_gone(workers, 10) == set(), "workers outlived their parent"
    finally:
        for pid in workers | {proc.pid}:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_workers_of_a_killed_parent_stop_by_themselves(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    proc, workers = _start(isolated_env, tmp_path)
    try:
        proc.kill()
        proc.wait(10)
        assert _wait_gone(workers, 15) == set(), "orphaned workers kept running"
    finally:
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_worker_process_imports_the_worker_host_as_its_main_not_the_cli() -> None:
    """spawn re-imports the parent's ``__main__`` in each child: under the agent-sdk script,
    the whole CLI. The supervisor presents the worker host instead while a worker starts."""
    import multiprocessing

    from agent_sdk.hosts.worker import _as_main

    check = (
        "import sys\n"
        "main = sys.modules['__mp_main__'].__spec__.name\n"
        "sys.exit(0 if main == 'agent_sdk.hosts.worker' and 'typer' not in sys.modules else 3)\n"
    )
    proc = multiprocessing.get_context("spawn").Process(target=exec, args=(check,))
    with _as_main():
        proc.start()
    assert sys.modules["__main__"].__name__ == "__main__"  # the parent's own again
    proc.join(120)
    assert proc.exitcode == 0
