"""Drills of item 2 of issue 11: the queue goes away under a working worker.

* The SQLite queue on a full disk (a 2 MB tmpfs): the claim fails as BackendUnavailable.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_sdk.errors import BackendUnavailable
from agent_sdk.queue.sqlite import SQLiteQueue

pytestmark = pytest.mark.slow


# -- the SQLite queue on a full disk ---------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where = tmp_path / "small"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(disk: Path) -> Path:
    """Fill the disk to the last byte; the file is the space to give back."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


def test_the_sqlite_queue_on_a_full_disk_raises_backend_unavailable_then_recovers(
    small_disk: Path,
) -> None:
    queue = SQLiteQueue(small_disk / "queue.db")
    try:
        hostile = "'; DROP TABLE jobs; --\u2028"
        jobs = [queue.enqueue("run", {"n": i, "text": hostile}) for i in range(3)]
        filler = _fill(small_disk)
        for _ in range(3):  # every try fails the same way, and leaves the jobs as they were
            with pytest.raises(BackendUnavailable, match="the disk is full") as caught:
                queue.reserve("w", lease=5, timeout=0)
            assert caught.value.hint and "free space" in caught.value.hint
        with pytest.raises(BackendUnavailable, match="the disk is full"):
            queue.enqueue("run", {"big": "x" * 100_000})
        assert queue.depth().ready == 3
        filler.unlink()
        leased = [queue.reserve("w", lease=5, timeout=0) for _ in jobs]
        assert [lease.job.id for lease in leased if lease] == [job.id for job in jobs]
        assert all(lease and lease.job.attempts == 1 for lease in leased)
    finally:
        queue.close()
