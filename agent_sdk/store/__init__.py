"""Stores by URL scheme: ``open_store("sqlite:///path/agent-sdk.db")``.

Backends are looked up lazily in an alias table (scheme -> "module:Class"), so an optional
driver is imported only when its store is opened.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agent_sdk.errors import ConfigError
from agent_sdk.masking import mask_url

if TYPE_CHECKING:
    from agent_sdk.config import Settings
    from agent_sdk.store.base import Store

STORE_ALIASES: dict[str, str] = {
    "sqlite": "agent_sdk.store.sqlite:SQLiteStore",
    "postgresql": "agent_sdk.store.postgres:PostgresStore",
    "postgres": "agent_sdk.store.postgres:PostgresStore",
}


def _scheme(url: str) -> str:
    return url.split(":", 1)[0].split("+", 1)[0]


def open_store(url: str, **options: Any) -> Store:
    scheme = _scheme(url)
    target = STORE_ALIASES.get(scheme)
    if target is None:
        import difflib  # only to name the closest scheme in the error

        close = difflib.get_close_matches(scheme, STORE_ALIASES, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "known: " + ", ".join(STORE_ALIASES)
        raise ConfigError(f"unknown store scheme {scheme!r} in {mask_url(url)!r}", hint=hint)
    module, cls = target.split(":")
    store: Store = getattr(importlib.import_module(module), cls).from_url(url, **options)
    return store


def store_from_settings(settings: Settings) -> Store:
    # Each store takes only its own options: SQLite's busy timeout means nothing to Postgres.
    options: dict[str, Any] = {}
    if _scheme(settings.store.database_url) == "sqlite":
        options["busy_timeout"] = settings.store.sqlite_busy_timeout
    return open_store(settings.store.database_url, **options)


__all__ = ["STORE_ALIASES", "open_store", "store_from_settings"]
