"""Copy a deployment's data from one database to another: ``agent-sdk db copy``.

The usual trip is a laptop's SQLite file to Postgres when a deployment scales out, and back
(a production snapshot to a file for a bug report). :func:`copy_database` does it:

1. Both URLs are checked before anything is opened: a known scheme, a source that exists (a
   missing SQLite file is an error, never a new empty database), a destination that is not the
   source. Passwords never appear in messages.
2. The source must be at exactly this agent-sdk's schema version (no pending migration, none it
   does not know). The destination must be empty, apart from the rows the migrations themselves
   insert (the ``default`` org and project), unless ``replace`` is given; it is then migrated.
3. Every table of user data is copied in dependency order (parents before children), streamed
   in batches: the source is read in one snapshot, in primary-key order; Postgres is written
   with COPY, SQLite with ``executemany``. Transient tables (worker liveness) and the migration
   bookkeeping are skipped and reported.
4. A SHA-256 over each table's rows (canonical JSON per row, key order, bytewise text order on
   both engines) is computed as the source is read and again over the destination, inside the
   destination's transaction. The copy commits only if every table's count and digest match.

Why one transaction for the whole destination: a failure at any point (a row Postgres cannot
store, a lost connection, a mismatch) leaves the destination as it was, apart from the schema
the migrations created, so there is no half-copied state to detect, resume or clean up; run the
same command again. The cost is that a failed copy redoes everything, which is acceptable at the
speed of COPY; and the destination is locked against writers while the copy runs, which it
should be anyway.

Which tables exist, their columns, keys, dependencies and seed rows are read from the
migrations themselves (applied to an in-memory SQLite database), so a table added by a future
migration is copied without a change here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent_sdk.errors import AgentSDKError, ConfigError, Conflict, InvalidInput, NotFound
from agent_sdk.masking import mask_url, scrub, url_secrets
from agent_sdk.store import STORE_ALIASES, open_store
from agent_sdk.store._copy_io import Batch, PostgresSide, Row, Side, SQLiteSide, TableSpec, q
from agent_sdk.store.migrations import load_migrations

BATCH_SIZE = 2000
# Not user data: the destination keeps its own record of the migrations it applied, and worker
# rows describe processes attached to the source, which are gone once its data moves.
SKIPPED = {
    "schema_migrations": "migration bookkeeping: the destination records its own",
    "workers": "transient: liveness of worker processes, rewritten by running workers",
}
_SQLITE_HEADER = b"SQLite format 3\x00"

Progress = Callable[[str, str, int, int], None]
"""``progress(phase, table, done, total)``: phase is "copy" or "verify"."""


# -- the result ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TableCopy:
    """One table's outcome: rows read from the source and found in the destination, and the
    SHA-256 of each side's rows."""

    table: str
    source_rows: int
    destination_rows: int
    source_sha256: str
    destination_sha256: str
    seconds: float

    @property
    def ok(self) -> bool:
        return (
            self.source_rows == self.destination_rows
            and self.source_sha256 == self.destination_sha256
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "source_rows": self.source_rows,
            "destination_rows": self.destination_rows,
            "source_sha256": self.source_sha256,
            "destination_sha256": self.destination_sha256,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
        }


@dataclass(slots=True)
class CopyReport:
    source: str  # URLs with any password masked
    destination: str
    tables: list[TableCopy] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    sequences: list[str] = field(default_factory=list)
    replaced: bool = False
    committed: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.committed and all(t.ok for t in self.tables)

    @property
    def rows(self) -> int:
        return sum(t.source_rows for t in self.tables)

    def mismatches(self) -> list[TableCopy]:
        return [t for t in self.tables if not t.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "destination": self.destination,
            "ok": self.ok,
            "committed": self.committed,
            "replaced": self.replaced,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "tables": [t.to_dict() for t in self.tables],
            "skipped": self.skipped,
            "sequences": self.sequences,
        }


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


def _check_columns(side: Side, specs: Iterable[TableSpec], display: str) -> None:
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


def _occupied(
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


# -- checksums ------------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": bytes(value).hex()}
    raise TypeError(f"a value of type {type(value).__name__}")


# The rows of a table as one compact JSON array: the same Python values give the same bytes on
# both engines (text as UTF-8, integers in decimal, floats by their shortest repr, bytes as hex).
# A batch is encoded as one array (one call into the C encoder, not one per row) and hashed
# without its brackets, with a comma between batches, so the digest is that of the whole array
# and does not depend on where the batches were cut.
_encode = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), check_circular=False, default=_json_value
).encode


class _Digest:
    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self.rows = 0
        self._h = hashlib.sha256(f"{spec.name}\n{','.join(spec.columns)}\n[".encode())

    def add(self, rows: Batch) -> None:
        if not rows:
            return
        try:
            text = _encode(rows)
        except TypeError as exc:
            raise InvalidInput(
                f"table {self.spec.name} holds {exc.args[0] if exc.args else 'a value'},"
                " which copy cannot compare between engines"
            ) from None
        inner = text[1:-1] if self.rows == 0 else "," + text[1:-1]
        self._h.update(inner.encode("utf-8", "surrogatepass"))
        self.rows += len(rows)

    def hexdigest(self) -> str:
        final = self._h.copy()
        final.update(b"]")
        return final.hexdigest()


# -- the copy -------------------------------------------------------------------------------------


def copy_database(
    source: str,
    destination: str,
    *,
    replace: bool = False,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
    live_source: bool = False,
    worker_lease: float = 30.0,
) -> CopyReport:
    """Copy every table of user data from ``source`` to ``destination`` (URLs of stores).

    The source is read in one snapshot, so the copy is consistent even while others write the
    source; but what they write after the snapshot is not in it. So a source with live workers
    (a heartbeat younger than three ``worker_lease``) is refused unless ``live_source``.

    Returns the report; when a table's count or digest differs, the destination's transaction
    was rolled back and ``report.ok`` is False (``report.committed`` too). Raises an AgentSDKError
    for everything refused or failed before that, never with a password in its text.
    """
    src, dst = parse_target(source, "source"), parse_target(destination, "destination")
    try:
        in_use = None if live_source else worker_lease
        return _copy(src, dst, replace, max(1, batch_size), progress or (lambda *a: None), in_use)
    except AgentSDKError as exc:
        clean = _scrub(exc, src.secrets + dst.secrets, src.display + dst.display)
        if clean is exc:
            raise
        raise clean from None


def _scrub(exc: AgentSDKError, secrets: tuple[str, ...], shown: str) -> AgentSDKError:
    """The error with any password in it masked: a driver may echo part of a URL."""
    leaks = [s for s in secrets if s not in shown]  # a password spelled like the user name
    text, hint = exc.message, exc.hint  # is shown with the name anyway
    text, hint = scrub(text, leaks), scrub(hint, leaks) if hint else hint
    if text == exc.message and hint == exc.hint:
        return exc
    return type(exc)(text, hint=hint)


def _open_side(target: Target, *, write: bool) -> Side:
    if target.path is not None:
        return SQLiteSide(target.path, write=write)
    return PostgresSide(target.url, f"Postgres at {target.display}", write=write)


def _check_source_schema(target: Target, reader: Side) -> None:
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


def _check_not_in_use(target: Target, reader: Side, lease: float) -> None:
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


def _copy(
    src: Target,
    dst: Target,
    replace: bool,
    batch: int,
    progress: Progress,
    in_use_lease: float | None,
) -> CopyReport:
    started = time.perf_counter()
    for target in (src, dst):
        if target.path is not None:
            check_sqlite_file(target)
    if src.path is not None and dst.path is not None:
        if src.path.resolve() == dst.path.resolve():
            raise InvalidInput("the source and the destination are the same database")
    specs, seeds = canonical_schema()
    reader = _open_side(src, write=False)
    writer: Side | None = None
    try:
        _check_source_schema(src, reader)
        if in_use_lease is not None:
            _check_not_in_use(src, reader, in_use_lease)
        dst_store = open_store(dst.url)  # creates a new SQLite file; checks Postgres is there
        try:
            writer = _open_side(dst, write=True)
            if reader.identity() == writer.identity():
                raise InvalidInput("the source and the destination are the same database")
            present = {t for t, cols in writer.tables().items() if cols >= _keys(specs, t)}
            occupied = _occupied(writer, specs, seeds, present)
            writer.rollback()  # hold no lock while the store migrates on its own connection
            if occupied and not replace:
                raise Conflict(
                    f"the destination {dst.display} is not empty: {occupied}",
                    hint="copy into an empty database, or pass --replace to delete its"
                    " agent-sdk data first",
                )
            dst_store.migrate()
            dst_store.check()  # a destination newer than this agent-sdk stops here
        finally:
            dst_store.close()
        _check_columns(reader, specs, src.display)
        _check_columns(writer, specs, dst.display)
        report = CopyReport(src.display, dst.display, replaced=replace)
        report.skipped = _skipped(reader, specs)
        _transfer(reader, writer, specs, seeds, report, replace, batch, progress)
    finally:
        reader.close()
        if writer is not None:
            writer.close()
    report.seconds = time.perf_counter() - started
    return report


def _keys(specs: Iterable[TableSpec], table: str) -> set[str]:
    return next((set(s.key) for s in specs if s.name == table), set())


def _skipped(reader: Side, specs: Iterable[TableSpec]) -> list[dict[str, Any]]:
    copied = {s.name for s in specs}
    out = []
    for table in sorted(reader.tables()):
        if table in copied or table.startswith("sqlite_"):
            continue
        reason = SKIPPED.get(table, "not part of agent-sdk's schema")
        out.append({"table": table, "rows": reader.count(table), "reason": reason})
    return out


def _transfer(
    reader: Side,
    writer: Side,
    specs: tuple[TableSpec, ...],
    seeds: dict[str, frozenset[Row]],
    report: CopyReport,
    replace: bool,
    batch: int,
    progress: Progress,
) -> None:
    reader.begin(write=False)
    writer.begin(write=True)
    writer.lock(specs)
    if replace:
        writer.clear(specs)
    else:
        # Checked again under the lock: someone may have written since the first look.
        occupied = _occupied(writer, specs, seeds)
        if occupied:
            raise Conflict(f"the destination became non-empty during the copy: {occupied}")
        for spec in reversed(specs):  # the seed rows give way to the source's own
            for key in seeds.get(spec.name, ()):
                writer.delete_key(spec, key)
    sources: dict[str, _Digest] = {}
    timings: dict[str, float] = {}
    for spec in specs:
        t0 = time.perf_counter()
        total = reader.count(spec.name)
        digest = sources[spec.name] = _Digest(spec)
        progress("copy", spec.name, 0, total)
        writer.insert(spec, _feed(reader.stream(spec, batch), digest, progress, total))
        timings[spec.name] = time.perf_counter() - t0
    report.sequences = writer.reset_sequences(specs)
    for spec in specs:
        t0 = time.perf_counter()
        total = sources[spec.name].rows
        back = _Digest(spec)
        progress("verify", spec.name, 0, total)
        for rows in writer.stream(spec, batch):
            back.add(rows)
            progress("verify", spec.name, back.rows, total)
        src = sources[spec.name]
        report.tables.append(
            TableCopy(
                spec.name,
                src.rows,
                back.rows,
                src.hexdigest(),
                back.hexdigest(),
                timings[spec.name] + time.perf_counter() - t0,
            )
        )
    if report.mismatches():
        writer.rollback()
        return
    writer.commit()
    report.committed = True


def _feed(
    batches: Iterable[Batch], digest: _Digest, progress: Progress, total: int
) -> Iterator[Batch]:
    """The source's batches on their way to the destination, hashed and counted as they pass."""
    for rows in batches:
        digest.add(rows)
        progress("copy", digest.spec.name, digest.rows, total)
        yield rows


__all__ = [
    "BATCH_SIZE",
    "SKIPPED",
    "CopyReport",
    "TableCopy",
    "Target",
    "canonical_schema",
    "copy_database",
    "parse_target",
]
