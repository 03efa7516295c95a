"""The checks :func:`agent_sdk.config.load_settings` makes beyond parsing values.

Each returns warnings (plain sentences) that end up in ``Settings.warnings``; the process host
(every CLI command, ``up``, ``serve``, ``worker``) prints them once on stderr at start-up.

* :func:`permission_warnings`: the data directory and the secret files readable by others.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent_sdk.config import Settings

PREFIX = "AGENT_SDK_"


def permission_warnings(settings: Settings) -> list[str]:
    """The data directory, the database and queue files, and the secret files, when a group or
    other users can read them (only those that exist: new ones are created private)."""
    from agent_sdk.private_files import loose_mode_warning

    data = Path(settings.data_dir)
    checks: list[tuple[Path, str]] = [(data, "the data directory")]
    if settings.storage_backend == "sqlite" and settings.database_url.startswith("sqlite:///"):
        db = settings.sqlite_path
        checks += [(Path(f"{db}{s}"), "the database file") for s in ("", "-wal", "-shm")]
    if settings.queue_backend == "sqlite":
        q = settings.queue_sqlite_path
        checks += [(Path(f"{q}{s}"), "the queue database") for s in ("", "-wal", "-shm")]
    checks += [
        (settings.admin_token_path, "the admin token"),
        (settings.pepper_path, "the API-key pepper"),
        (settings.audit_signing_key_path, "the audit signing key"),
    ]
    if settings.audit_log_path:
        checks.append((Path(settings.audit_log_path), "the audit log"))
    if settings.encryption_master_key_file:
        path = Path(settings.encryption_master_key_file).expanduser()
        checks.append((path, "the file of AGENT_SDK_ENCRYPTION_MASTER_KEY_FILE"))
    out = []
    for path, what in checks:
        warning = loose_mode_warning(path, what)
        if warning is not None:
            out.append(warning)
    return out


__all__ = [
    "permission_warnings",
]
