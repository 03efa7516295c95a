"""Which migrations a SQL store has applied, and whether its schema is the one this agent-sdk
knows: the same on SQLite and Postgres. Applying migrations stays in each store, because the
engines keep two migrating processes apart differently (SQLite's write lock, a Postgres advisory
lock)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, ClassVar

from agent_sdk.errors import Conflict
from agent_sdk.store._sql_primitives import SQLPrimitives
from agent_sdk.store.migrations import Migration, load_migrations

if TYPE_CHECKING:
    from agent_sdk.records import MigrationState


@functools.cache
def _load(package: str) -> tuple[Migration, ...]:
    return tuple(load_migrations(package))


class SQLSchema(SQLPrimitives):
    """Part of SQLiteStore and PostgresStore."""

    #: The package that holds the store's migration files.
    MIGRATIONS: ClassVar[str]
    #: A query whose one row's first value is true once ``schema_migrations`` exists.
    _HAS_MIGRATIONS_TABLE: ClassVar[str]

    if TYPE_CHECKING:

        def _label(self) -> str: ...

    def _migrations(self) -> tuple[Migration, ...]:
        return _load(self.MIGRATIONS)

    def _applied(self) -> dict[int, str]:
        row = self._one(self._HAS_MIGRATIONS_TABLE)
        if not row or not row[0]:
            return {}
        return {
            r[0]: r[1] for r in self._query("SELECT version, applied_at FROM schema_migrations")
        }

    def migration_status(self) -> list[MigrationState]:
        from agent_sdk.records import MigrationState

        applied = self._applied()
        return [
            MigrationState(m.version, m.name, applied.get(m.version)) for m in self._migrations()
        ]

    def check(self) -> None:
        self._query("SELECT 1")
        known = {m.version for m in self._migrations()}
        applied = set(self._applied())
        if applied - known:
            raise Conflict(
                f"{self._label()} has schema version {max(applied - known)}, newer than this"
                " agent-sdk knows",
                hint="upgrade agent-sdk",
            )
        pending = len(known - applied)
        if pending:
            plural = "s" if pending != 1 else ""
            raise Conflict(f"{pending} migration{plural} pending; run `agent-sdk db migrate`")


__all__ = ["SQLSchema"]
