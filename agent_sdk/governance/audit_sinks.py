"""Copies of the audit log outside the database: a JSONL file and stdout.

The database is the source of truth and is always written; these sinks are extra copies for log
shippers and for verifiers that should not trust the database. Each line is
:func:`agent_sdk.governance.audit.to_jsonl` of one record: canonical JSON with its hash, so a
line can be verified on its own.

Both sinks are written while the caller's database transaction is still open (see
:class:`agent_sdk.core.audit.AuditService`), and a failure raises, which rolls the record back:
the action fails rather than happening unaudited.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from agent_sdk.private_files import ensure_private_dir

if TYPE_CHECKING:
    from agent_sdk.config import Settings

if sys.platform != "win32":
    import fcntl


class AuditSink(Protocol):
    name: str

    def write(self, line: str) -> None:
        """Write one complete line (ending in a newline); raise OSError or ValueError if it
        could not be written."""
        ...


class JsonlFileSink:
    """Appends lines to a file that several processes may share.

    Each write opens the file with O_APPEND, takes an exclusive ``flock`` and writes the whole
    line: lines from different processes interleave whole, never mixed. Opening per write
    costs a few microseconds and means a file moved away by log rotation is simply created
    again. A line that fails half-way (a full disk) is cut off again, so the file never holds a
    partial line. ``os.write`` hands the bytes to the kernel at once (nothing waits in a
    user-space buffer); there is no fsync, so a power loss may lose the newest lines, which the
    database still has. A new file is created with mode 0600; create it beforehand to give a
    log shipper running as another user read access (an existing file keeps its mode).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self.name = f"file {self.path}"

    def write(self, line: str) -> None:
        data = line.encode("utf-8")
        if not self.path.parent.is_dir():
            ensure_private_dir(self.path.parent)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.path, flags, 0o600)
        try:
            if sys.platform != "win32":
                fcntl.flock(fd, fcntl.LOCK_EX)  # released by close()
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)


class StdoutSink:
    """Writes lines to the process's stdout (for container log collectors)."""

    name = "stdout"
    _lock = threading.Lock()  # one write per line, but TextIOWrapper is not thread-safe

    def write(self, line: str) -> None:
        out = sys.stdout  # looked up on each call, so a redirected stdout is honoured
        with self._lock:
            out.write(line)
            out.flush()


def sinks_from_settings(settings: Settings) -> list[AuditSink]:
    """The extra sinks configured by AGENT_SDK_AUDIT_LOG_PATH and AGENT_SDK_AUDIT_LOG_STDOUT."""
    sinks: list[AuditSink] = []
    if settings.audit.log_path:
        sinks.append(JsonlFileSink(settings.audit.log_path))
    if settings.audit.log_stdout:
        sinks.append(StdoutSink())
    return sinks


__all__ = ["AuditSink", "JsonlFileSink", "StdoutSink", "sinks_from_settings"]
