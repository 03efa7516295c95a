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

This module does the copying; :mod:`agent_sdk.store._copy_plan` parses the URLs, reads the
schema and refuses a copy that must not start, :mod:`agent_sdk.store._copy_verify` hashes the
rows and reports, and :mod:`agent_sdk.store._copy_io` reads and writes each engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from agent_sdk.errors import AgentSDKError, Conflict, InvalidInput
from agent_sdk.masking import scrub
from agent_sdk.store import open_store
from agent_sdk.store._copy_io import Batch, PostgresSide, Row, Side, SQLiteSide, TableSpec
from agent_sdk.store._copy_plan import (
    IN_USE_HINT,
    SKIPPED,
    Target,
    canonical_schema,
    check_columns,
    check_not_in_use,
    check_source_schema,
    check_sqlite_file,
    key_columns,
    occupied_tables,
    parse_target,
    skipped_tables,
)
from agent_sdk.store._copy_verify import CopyReport, Digest, TableCopy

BATCH_SIZE = 2000

Progress = Callable[[str, str, int, int], None]
"""``progress(phase, table, done, total)``: phase is "copy" or "verify"."""


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
        check_source_schema(src, reader)
        if in_use_lease is not None:
            check_not_in_use(src, reader, in_use_lease)
        dst_store = open_store(dst.url)  # creates a new SQLite file; checks Postgres is there
        try:
            writer = _open_side(dst, write=True)
            if reader.identity() == writer.identity():
                raise InvalidInput("the source and the destination are the same database")
            present = {t for t, cols in writer.tables().items() if cols >= key_columns(specs, t)}
            occupied = occupied_tables(writer, specs, seeds, present)
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
        check_columns(reader, specs, src.display)
        check_columns(writer, specs, dst.display)
        report = CopyReport(src.display, dst.display, replaced=replace)
        report.skipped = skipped_tables(reader, specs)
        _transfer(reader, writer, specs, seeds, report, replace, batch, progress)
    finally:
        reader.close()
        if writer is not None:
            writer.close()
    report.seconds = time.perf_counter() - started
    return report


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
        occupied = occupied_tables(writer, specs, seeds)
        if occupied:
            raise Conflict(f"the destination became non-empty during the copy: {occupied}")
        for spec in reversed(specs):  # the seed rows give way to the source's own
            for key in seeds.get(spec.name, ()):
                writer.delete_key(spec, key)
    sources: dict[str, Digest] = {}
    timings: dict[str, float] = {}
    for spec in specs:
        t0 = time.perf_counter()
        total = reader.count(spec.name)
        digest = sources[spec.name] = Digest(spec)
        progress("copy", spec.name, 0, total)
        writer.insert(spec, _feed(reader.stream(spec, batch), digest, progress, total))
        timings[spec.name] = time.perf_counter() - t0
    report.sequences = writer.reset_sequences(specs)
    for spec in specs:
        t0 = time.perf_counter()
        total = sources[spec.name].rows
        back = Digest(spec)
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
    batches: Iterable[Batch], digest: Digest, progress: Progress, total: int
) -> Iterator[Batch]:
    """The source's batches on their way to the destination, hashed and counted as they pass."""
    for rows in batches:
        digest.add(rows)
        progress("copy", digest.spec.name, digest.rows, total)
        yield rows


__all__ = [
    "BATCH_SIZE",
    "IN_USE_HINT",
    "SKIPPED",
    "CopyReport",
    "Progress",
    "TableCopy",
    "Target",
    "canonical_schema",
    "copy_database",
    "parse_target",
]
