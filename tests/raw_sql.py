"""Writing a store's rows behind the application's back, as an old version or an operator with
a database shell could have: for tests of what the application does with such rows."""

from __future__ import annotations

from typing import Any

from agent_sdk.config import Settings


def raw_sql(settings: Settings, sql: str, params: tuple[Any, ...]) -> None:
    """Run ``sql`` (``?`` placeholders) on the store ``settings`` name, around every check."""
    if settings.store.backend == "postgres":
        import psycopg

        with psycopg.connect(settings.store.database_url, autocommit=True) as db:
            db.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
        return
    import sqlite3

    db = sqlite3.connect(settings.store.sqlite_path)
    try:
        db.execute(sql, params)
        db.commit()
    finally:
        db.close()
