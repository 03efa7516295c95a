"""Operating the database: the state of each schema migration."""

from __future__ import annotations

from dataclasses import dataclass

from agent_sdk.records._base import Record


@dataclass(frozen=True, slots=True)
class MigrationState(Record):
    version: int
    name: str
    applied_at: str | None


__all__ = ["MigrationState"]
