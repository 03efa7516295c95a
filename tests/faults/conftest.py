"""Fixtures of the fault drills."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from faults._broker import kill_all


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a drill starts; whatever is still running when it ends is killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    kill_all(started)
