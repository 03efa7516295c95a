"""What a server process does to its database before it serves: used by `agent-sdk up` (which
migrates and makes the bootstrap key itself, for a zero-set-up start), by `agent-sdk serve`
(which refuses an old schema: a deployment migrates as a separate, deliberate step), by the
server's start-up (which makes the bootstrap key if the default org has none), and by
``agent-sdk db migrate|status`` on a local database, which need no runtime.

The bootstrap key is an ordinary API key of the ``default`` org (see
:meth:`agent_sdk.core.api_keys.KeyService.ensure_bootstrap_key`). Its token is shown once and kept
for the CLI of this machine in a 0600 file, ``<data dir>/admin-token``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent_sdk.records import MigrationState

if TYPE_CHECKING:
    from agent_sdk.config import Settings
    from agent_sdk.core.runtime import Runtime
    from agent_sdk.store.base import Store

BOOTSTRAP_ORG = "default"


@dataclass(frozen=True)
class Prepared:
    applied: list[MigrationState]
    token: str | None  # the bootstrap key, when this machine can show it
    token_created: bool


def ensure_bootstrap_key(runtime: Runtime) -> tuple[str | None, bool]:
    """Make the bootstrap key if the default org has no key. Returns (token or None, created)."""
    path = runtime.settings.admin_token_path
    token = runtime.keys.ensure_bootstrap_key(BOOTSTRAP_ORG)
    if token is not None:
        write_secret_file(path, token)
        return token, True
    try:
        return path.read_text().strip() or None, False
    except OSError:
        return None, False


def prepare_local_server(settings: Settings) -> Prepared:
    """Migrate and make sure the bootstrap key exists."""
    from agent_sdk.core.runtime import Runtime

    runtime = Runtime(settings, migrate=False)
    try:
        applied = runtime.migrate()
        token, created = ensure_bootstrap_key(runtime)
    finally:
        runtime.close(wait=False)
    return Prepared(applied, token, created)


def pending_migrations(settings: Settings) -> list[MigrationState]:
    return [m for m in migration_status(settings) if m.applied_at is None]


def migrate(settings: Settings) -> list[MigrationState]:
    """Apply the pending migrations of the configured database, without starting a runtime."""
    return _with_store(settings, lambda store: store.migrate())


def migration_status(settings: Settings) -> list[MigrationState]:
    """Every migration of the configured database and when it was applied, without a runtime."""
    return _with_store(settings, lambda store: store.migration_status())


def _with_store(
    settings: Settings, use: Callable[[Store], list[MigrationState]]
) -> list[MigrationState]:
    from agent_sdk.store import store_from_settings

    store = store_from_settings(settings)
    try:
        return use(store)
    finally:
        store.close()


def write_secret_file(path: Path, value: str) -> None:
    """Write a secret readable by its owner only (created 0600, never briefly wider)."""
    from agent_sdk.private_files import ensure_private_dir

    ensure_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    os.chmod(path, 0o600)
