"""Versioned schema migrations of the SQLite store.

Each change to the schema is a new file ``NNNN_name.sql`` in this package; a file that has been
released is never edited, because databases that already applied it would never see the edit.
The store applies pending files in version order, each in its own transaction together with its
row in ``schema_migrations(version, name, applied_at)``, so a migration is either wholly applied
and recorded or not at all.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        return split_statements(self.sql)


def load_migrations(package: str = __name__) -> list[Migration]:
    """Every migration file of ``package``, in version order."""
    found: dict[int, Migration] = {}
    for entry in resources.files(package).iterdir():
        match = _FILE_NAME.match(entry.name)
        if not match:
            continue
        version = int(match.group(1))
        if version in found:
            raise RuntimeError(f"two migrations share version {version:04d} in {package}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def split_statements(sql: str) -> list[str]:
    """Split a script into statements.

    ``executescript`` would be simpler, but it commits any open transaction first, and a
    migration must run inside the transaction that also records it. ``complete_statement`` knows
    SQLite's own rules, so semicolons inside strings, comments and trigger bodies stay put.
    """
    statements: list[str] = []
    *pieces, tail = sql.split(";")
    buffer = ""
    for piece in pieces:
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if _has_code(buffer):
                statements.append(buffer.strip())
            buffer = ""
    buffer += tail
    if _has_code(buffer):
        raise ValueError(f"unterminated SQL statement: {buffer.strip()[:60]!r}")
    return statements


def _has_code(text: str) -> bool:
    return any(
        line.strip() and not line.strip().startswith("--") and line.strip() != ";"
        for line in text.splitlines()
    )


__all__ = ["Migration", "load_migrations", "split_statements"]
