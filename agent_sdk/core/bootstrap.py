"""What a server process does to its database before it serves: used by `agent-sdk up` (which
migrates and makes the admin token itself, for a zero-set-up start) and `agent-sdk serve` (which
refuses an old schema: a deployment migrates as a separate, deliberate step)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_sdk.core.tokens import admin_token_digest, ensure_admin_token
from agent_sdk.records import MigrationState

if TYPE_CHECKING:
    from agent_sdk.config import Settings


@dataclass(frozen=True)
class Prepared:
    applied: list[MigrationState]
    token: str | None  # the admin token, when this machine can show it
    token_created: bool


def prepare_local_server(settings: Settings) -> Prepared:
    """Migrate and make sure an admin token exists."""
    from agent_sdk.store import store_from_settings

    store = store_from_settings(settings)
    try:
        applied = store.migrate()
        created = admin_token_digest(store) is None
        token = ensure_admin_token(store, settings.admin_token_path)
    finally:
        store.close()
    return Prepared(applied, token, created)


def pending_migrations(settings: Settings) -> list[MigrationState]:
    from agent_sdk.store import store_from_settings

    store = store_from_settings(settings)
    try:
        return [m for m in store.migration_status() if m.applied_at is None]
    finally:
        store.close()
