"""Planning ``agent-sdk db copy`` (:mod:`agent_sdk.store.copy`): what the two URLs name, which
tables the copy moves in which order, and the checks that refuse a copy before any row moves (a
source at another schema version or written by live workers, a destination that is not empty,
tables whose columns are not this agent-sdk's). Nothing here writes.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent_sdk.errors import AgentSDKError, ConfigError, Conflict, InvalidInput, NotFound
from agent_sdk.masking import mask_url, url_secrets
from agent_sdk.store import STORE_ALIASES
from agent_sdk.store._copy_io import Row, Side, TableSpec, q
from agent_sdk.store.migrations import load_migrations

# Not user data: the destination keeps its own record of the migrations it applied, and worker
# rows describe processes attached to the source, which are gone once its data moves.
SKIPPED = {
    "schema_migrations": "migration bookkeeping: the destination records its own",
    "workers": "transient: liveness of worker processes, rewritten by running workers",
    # Copying it could move a destination's counter back to a value its servers already saw.
    "api_key_generation": "per database: moves with every key change; the destination's own",
}
_SQLITE_HEADER = b"SQLite format 3\x00"


# -- the URLs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """One end of the copy, as given on the command line."""

    role: str  # "source" or "destination"
    url: str
    scheme: str  # "sqlite" or "postgresql"
    display: str  # the URL with its password masked
    path: Path | None  # the file of a SQLite URL
    secrets: tuple[str, ...]  # every spelling of its password, kept out of messages


def parse_target(url: str, role: str) -> Target:
    """Check one URL without opening anything; raise ConfigError for a URL that is not one."""
    if not url.strip() or "\x00" in url:
        raise ConfigError(f"the {role} URL is empty or holds a NUL character")
    display = mask_url(url)
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower() if ":" in url else ""
    if scheme not in STORE_ALIASES:
        import difflib

        close = difflib.get_close_matches(scheme, STORE_ALIASES, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"unknown database scheme {scheme!r} in the {role} URL {display}",
            hint=hint + "use sqlite:///path/to/file.db or postgresql://user@host:5432/database",
        )
    secrets = url_secrets(url)
    if scheme != "sqlite":
        return Target(role, url, "postgresql", display, None, secrets)
    prefix = "sqlite:///"
    hint = "use sqlite:///relative/path.db or sqlite:////absolute/path.db"
    if not url.startswith(prefix):
        raise ConfigError(f"the {role} URL {display} is not a SQLite URL (no host)", hint=hint)
    raw = url[len(prefix) :]
    if not raw or raw == ":memory:" or "?" in raw or "#" in raw:
        # SQLiteStore would take "?mode=ro" as part of the file name.
        raise ConfigError(
            f"the {role} URL {display} does not name a database file (no query, no fragment,"
            " no :memory:)",
            hint=hint,
        )
    return Target(role, url, "sqlite", f"{prefix}{raw}", Path(raw).expanduser(), ())


def check_sqlite_file(target: Target) -> None:
    """A source must be an existing SQLite file; a destination a SQLite file or a new name in
    an existing directory. Neither may be some other file (a path typed wrong, or worse)."""
    assert target.path is not None
    path = target.path.absolute()
    if path.is_dir():
        raise InvalidInput(f"the {target.role} {path} is a directory, not a database file")
    if not path.exists():
        if target.role == "source":
            raise NotFound(
                f"the source database {path} does not exist",
                hint="check the --from path; a copy never creates its source",
            )
        if not path.parent.is_dir():
            raise NotFound(
                f"the directory {path.parent} of the destination does not exist",
                hint="create it first, or check the --to path",
            )
        return
    if not path.is_file():
        raise InvalidInput(f"the {target.role} {path} is not a regular file")
    try:
        with path.open("rb") as fh:
            header = fh.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise InvalidInput(f"cannot read the {target.role} {path}: {exc.strerror}") from None
    if header and header != _SQLITE_HEADER:
        raise InvalidInput(
            f"the {target.role} {path} is not a SQLite database",
            hint="check the path: copy reads and writes agent-sdk databases only",
        )
    if not header and target.role == "source":
        raise InvalidInput(f"the source {path} is an empty file, not an agent-sdk database")


# -- the schema -----------------------------------------------------------------------------------


@functools.cache
def canonical_schema() -> tuple[tuple[TableSpec, ...], dict[str, frozenset[Row]]]:
    """The tables to copy in dependency order, and the keys of the rows the migrations insert.

    Read from the SQLite migrations applied to an in-memory database (the Postgres ones mirror
    them; a test holds both to that). Order: a table comes after every table it references,
    otherwise in the order the migrations created them.
    """
    db = sqlite3.connect(":memory:")
    try:
        for migration in load_migrations():
            for statement in migration.statements():
                db.execute(statement)
        names = [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
            )
            if r[0] not in SKIPPED
        ]
        specs: dict[str, TableSpec] = {}
        parents: dict[str, set[str]] = {}
        seeds: dict[str, frozenset[Row]] = {}
        for name in names:
            info = db.execute("SELECT name, type, pk FROM pragma_table_info(?)", (name,)).fetchall()
            columns = tuple(c for c, _, _ in info)
            key = tuple(c for c, _, pk in sorted(info, key=lambda i: i[2]) if pk) or columns
            text = frozenset(c for c, kind, _ in info if c in key and "INT" not in kind.upper())
            specs[name] = TableSpec(name, columns, key, text)
            parents[name] = {
                r[0] for r in db.execute('SELECT "table" FROM pragma_foreign_key_list(?)', (name,))
            } - {name}
            keys = db.execute(f"SELECT {', '.join(map(q, key))} FROM {q(name)}").fetchall()
            if keys:
                seeds[name] = frozenset(tuple(k) for k in keys)
    finally:
        db.close()
    ordered: list[TableSpec] = []
    while len(ordered) < len(names):
        done = {s.name for s in ordered}
        ready = [n for n in names if n not in done and parents[n] <= done]
        if not ready:
            raise AgentSDKError(f"the schema's foreign keys form a cycle among {names}")
        ordered.append(specs[ready[0]])
    return tuple(ordered), seeds


def check_columns(side: Side, specs: Iterable[TableSpec], display: str) -> None:
    existing = side.tables()
    for spec in specs:
        have = existing.get(spec.name)
        if have is None:
            raise Conflict(f"{display} has no table {spec.name!r}: its schema is not agent-sdk's")
        if have != set(spec.columns):
            extra, missing = sorted(have - set(spec.columns)), sorted(set(spec.columns) - have)
            raise Conflict(
                f"table {spec.name!r} of {display} does not have the columns of this agent-sdk"
                f" version (unknown: {extra or 'none'}; missing: {missing or 'none'})",
                hint="was the schema changed by hand? copy moves agent-sdk's own schema only",
            )


def occupied_tables(
    side: Side,
    specs: Iterable[TableSpec],
    seeds: dict[str, frozenset[Row]],
    tables: set[str] | None = None,
) -> str:
    """The tables holding rows beyond the migrations' seed rows, as "name (n rows)". With
    ``tables``, only those of them that exist (a destination not migrated yet)."""
    found = []
    for spec in specs:
        if tables is not None and spec.name not in tables:
            continue
        n = side.count(spec.name)
        n -= sum(1 for key in seeds.get(spec.name, ()) if side.has_key(spec, key))
        if n > 0:
            found.append(f"{spec.name} ({n} row{'s' if n != 1 else ''})")
    return ", ".join(found)


def check_source_schema(target: Target, reader: Side) -> None:
    """The source must be at exactly this agent-sdk's schema version. Read through the copy's
    read-only connection: opening a store could write (SQLite's journal mode)."""
    package = "agent_sdk.store.migrations" + (".postgres" if target.path is None else "")
    known = {m.version for m in load_migrations(package)}
    applied = set(reader.applied_migrations())
    if not applied:
        raise Conflict(
            f"the source {target.display} has no agent-sdk schema (no migration applied)",
            hint="check that --from points at an agent-sdk database",
        )
    if applied - known:
        raise Conflict(
            f"the source {target.display} has schema version {max(applied - known)}, newer"
            " than this agent-sdk knows",
            hint="upgrade agent-sdk, then copy again",
        )
    pending = len(known - applied)
    if pending:
        raise Conflict(
            f"the source {target.display} has {pending} pending migration(s): copy needs it at"
            " this agent-sdk's schema version",
            hint=f"migrate it first: AGENT_SDK_DATABASE_URL='{target.display}'"
            " agent-sdk db migrate",
        )


IN_USE_HINT = (
    "stop the servers and workers that use it first (what they write once the copy has started"
    " would not be in the destination), or pass --live-source to copy a consistent snapshot"
    " of it as of now"
)


def check_not_in_use(target: Target, reader: Side, lease: float) -> None:
    """Refuse a source that live workers write (a server in inline mode leaves no trace in the
    database; the CLI checks the one `agent-sdk up` runs on this machine)."""
    cutoff = (datetime.now(UTC) - timedelta(seconds=3 * lease)).isoformat(timespec="microseconds")
    cutoff = cutoff[:-6] + "Z"  # the fixed-width text form heartbeats are stored in
    live = sorted(name for name, beat in reader.heartbeats() if str(beat) >= cutoff)
    if live:
        raise Conflict(
            f"the source {target.display} is in use: {len(live)} live worker(s) write to it"
            f" ({live[0]!r}{', ...' if len(live) > 1 else ''})",
            hint=IN_USE_HINT,
        )


def key_columns(specs: Iterable[TableSpec], table: str) -> set[str]:
    return next((set(s.key) for s in specs if s.name == table), set())


def skipped_tables(reader: Side, specs: Iterable[TableSpec]) -> list[dict[str, Any]]:
    copied = {s.name for s in specs}
    out = []
    for table in sorted(reader.tables()):
        if table in copied or table.startswith("sqlite_"):
            continue
        reason = SKIPPED.get(table, "not part of agent-sdk's schema")
        out.append({"table": table, "rows": reader.count(table), "reason": reason})
    return out


__all__ = [
    "IN_USE_HINT",
    "SKIPPED",
    "Target",
    "canonical_schema",
    "check_columns",
    "check_not_in_use",
    "check_source_schema",
    "check_sqlite_file",
    "key_columns",
    "occupied_tables",
    "parse_target",
    "skipped_tables",
]
