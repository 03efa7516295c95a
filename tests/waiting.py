"""Waiting on a condition in a test: poll with a generous deadline, never a fixed sleep.

Tests on a loaded 2-core machine must not depend on how fast something happens, only that it
happens; a timeout names what was awaited and, through ``detail``, shows what explains it (the
tail of a process log, say)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

POLL = 0.05


def wait_until(
    what: str,
    check: Callable[[], Any],
    timeout: float = 60,
    detail: Callable[[], str] | None = None,
) -> Any:
    """Poll ``check`` until it returns something truthy, and return that; AssertionError naming
    ``what`` (and ``detail()``) once ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            extra = f"\n{detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{extra}")
        time.sleep(POLL)


def log_tails(paths: Iterable[Path], size: int = 8000) -> Callable[[], str]:
    """A ``detail`` for :func:`wait_until`: the last ``size`` characters of each log file."""
    files = list(paths)

    def tails() -> str:
        return "\n".join(
            f"----- {p} -----\n{p.read_text(errors='replace')[-size:]}" for p in files if p.exists()
        )

    return tails
