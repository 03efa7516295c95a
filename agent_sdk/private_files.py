"""Files and directories only their owner may read: the data directory (0700) and what it holds.

The data directory holds the database (runs, events, API-key hashes), the bootstrap admin token,
the API-key pepper and the audit signing key. Created with the process umask (usually 022) they
would be readable by every user of the machine, so they are created private here, whatever the
umask. An existing file or directory is never changed behind the operator's back (a group may
share it on purpose); :func:`loose_mode_warning` says what to run instead, and start-up prints it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def ensure_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and missing parents) if needed; a directory made here is 0700.

    Parents are created as ``mkdir -p`` would (they are often shared, like ``~/.local/share``);
    only the directory itself is made private. An existing directory keeps its mode."""
    path = Path(path)
    if path.is_dir():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        return path  # made by another process meanwhile: its mode is its maker's
    os.chmod(path, DIR_MODE)  # mkdir's mode passes through the umask; 0700 is the intent
    return path


def ensure_private_file(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` empty and 0600 if it does not exist, so that whatever writes it later
    (SQLite, which gives its -wal and -shm files the mode of the database file) keeps it
    private. An existing file is left as it is."""
    path = Path(path)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags, FILE_MODE)  # never wider than 0600, even for a moment
    except FileExistsError:
        return path
    try:
        os.fchmod(fd, FILE_MODE)  # O_CREAT's mode would pass through the umask
    finally:
        os.close(fd)
    return path


def loose_mode_warning(path: str | os.PathLike[str], what: str) -> str | None:
    """A warning when ``path`` exists and its group or other users have any access to it, with
    the command that fixes it; None when it is private or absent."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return None
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o077:
        return None
    is_dir = stat.S_ISDIR(st.st_mode)
    who = "other users" if mode & 0o007 else "its group"
    fix = f"chmod {'700' if is_dir else '600'} {path}"
    return f"{what} {path} is accessible to {who} (mode {mode:04o}); run: {fix}"


__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "ensure_private_dir",
    "ensure_private_file",
    "loose_mode_warning",
]
