"""``agent-sdk db migrate|status|copy``: the schema and the data of this machine's databases.

These always work on local databases (a server's database is migrated on the server's machine,
before the new version starts), so ``--local`` is implied and ``--server`` refused. ``copy``
works on the two databases named by its URLs, not on the configured one; its logic lives in
:mod:`agent_sdk.store.copy`, this module only parses, asks, shows progress and renders.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent_sdk.cli.context import OutputFormat, command, current, database_label, sub_app
from agent_sdk.cli.output import Column, render_list, render_one, say, when
from agent_sdk.errors import CopyMismatch

if TYPE_CHECKING:
    from agent_sdk.config import Settings
    from agent_sdk.store.copy import CopyReport, Progress, Target

app = sub_app(help="Databases: migrations, and copying data between them.", no_args_is_help=True)

MIGRATION_COLUMNS = [
    Column("VERSION", "version"),
    Column("NAME", "name"),
    Column("APPLIED", lambda r: when(r.get("applied_at")) or "pending"),
]


@command(app, "migrate")
def migrate() -> None:
    """Apply pending migrations to the local database.

    Example: agent-sdk db migrate
    """
    ctx = current()
    ctx.require_local()
    applied = ctx.backend.migrate()
    where = database_label(ctx.settings)
    if applied:
        say(f"applied {len(applied)} migration(s) to {where}")
    else:
        say(f"up to date: {where}")
    render_list(applied, MIGRATION_COLUMNS, ctx.output, empty="")


@command(app, "status")
def status() -> None:
    """List every migration and when it was applied."""
    ctx = current()
    ctx.require_local()
    states = ctx.backend.migration_status()
    render_list(states, MIGRATION_COLUMNS, ctx.output, empty="no migrations known")
    pending = sum(1 for s in states if s.applied_at is None)
    if pending:
        say(f"{pending} pending: run agent-sdk db migrate")


COPY_COLUMNS = [
    Column("TABLE", "table"),
    Column("ROWS", "source_rows"),
    Column("SOURCE SHA-256", "source_sha256", 17),
    Column("DESTINATION SHA-256", "destination_sha256", 17),
    Column("MATCH", "ok"),
]


@command(app, "copy")
def copy_cmd(
    source: Annotated[
        str,
        typer.Option(
            "--from",
            metavar="URL",
            help="Database to read: sqlite:///path.db or postgresql://user@host/db. Never"
            " written to.",
        ),
    ],
    destination: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="URL",
            help="Database to write: migrated first; must hold no agent-sdk data.",
        ),
    ],
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Delete the destination's agent-sdk data first (asks unless --yes).",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar and no summary on stderr.")
    ] = False,
    batch_size: Annotated[
        int,
        typer.Option("--batch-size", min=1, max=100_000, metavar="N", help="Rows per batch."),
    ] = 2000,
    live_source: Annotated[
        bool,
        typer.Option(
            "--live-source",
            help="Copy even while servers or workers write the source: a consistent snapshot"
            " as of the start; later writes are not copied.",
        ),
    ] = False,
) -> None:
    """Copy all agent-sdk data to another database, e.g. SQLite to Postgres.

    Runs, events, sessions, orgs, API keys, the audit log and its checkpoints, idempotency
    records and settings are copied in one destination transaction, then read back: the copy
    commits only if every table's row count and SHA-256 match the source's, and exits 1
    otherwise, leaving the destination unchanged. Worker heartbeats are transient and skipped.
    The source is read in one snapshot. Stop servers and workers using either database first:
    a source with live workers, or served by `agent-sdk up` here, is refused unless
    --live-source. Leave passwords out of the URLs where you can: libpq reads PGPASSWORD and
    ~/.pgpass.

    Example: agent-sdk db copy --from sqlite:///agent-sdk.db --to postgresql://app@db/agents
    """
    ctx = current()
    ctx.require_local()
    from agent_sdk.store.copy import copy_database, parse_target

    targets = [parse_target(source, "source"), parse_target(destination, "destination")]
    for flag, target in zip(("--from", "--to"), targets, strict=True):
        if target.secrets and not quiet:
            say(
                f"warning: the password in {flag} is visible to other users of this machine;"
                " use PGPASSWORD or ~/.pgpass"
            )
    if not live_source:
        _refuse_if_served(ctx.settings, targets[0])
    if replace:
        from agent_sdk.cli.keys import confirm

        what = f"deleting the agent-sdk data of {targets[1].display}"
        question = f"Delete all agent-sdk data in {targets[1].display}?"
        confirm(ctx, lambda: question, yes=yes, refused=what)
    with _progress(enabled=not quiet and sys.stderr.isatty()) as progress:
        report = copy_database(
            source,
            destination,
            replace=replace,
            batch_size=batch_size,
            progress=progress,
            live_source=live_source,
            worker_lease=ctx.settings.worker_lease,
        )
    _render(report, ctx.output, quiet=quiet)
    if not report.ok:
        bad = ", ".join(t.table for t in report.mismatches())
        raise CopyMismatch(
            f"the destination does not match the source in {bad}: the copy was rolled back",
            hint="the destination is unchanged; check for writers on it, then copy again",
            tables=[t.to_dict() for t in report.mismatches()],
        )


def _refuse_if_served(settings: Settings, source: Target) -> None:
    """The server `agent-sdk up` runs on this machine writes its SQLite file without leaving a
    trace in it (only workers record heartbeats): its state file tells."""
    from agent_sdk.cli.context import read_server_state
    from agent_sdk.store.copy import IN_USE_HINT

    if source.path is None or not settings.database_url.startswith("sqlite:///"):
        return
    state = read_server_state(settings.server_state_path)
    if state is None:
        return
    try:
        same = settings.sqlite_path.resolve() == source.path.resolve()
    except (OSError, RuntimeError):  # a symlink loop is not the server's file
        same = False
    if same:
        from agent_sdk.errors import Conflict

        raise Conflict(
            f"the source {source.display} is in use: the server of `agent-sdk up` (pid"
            f" {state['pid']}) writes to it",
            hint=IN_USE_HINT,
        )


def _render(report: CopyReport, fmt: OutputFormat, *, quiet: bool) -> None:
    data = report.to_dict()
    if fmt is OutputFormat.table:
        render_list(data["tables"], COPY_COLUMNS, fmt, empty="")
    elif fmt in (OutputFormat.json, OutputFormat.yaml):
        render_one(data, [], fmt)
    else:  # one row per table: the shape jsonl and csv are for
        render_list(data["tables"], COPY_COLUMNS, fmt, empty="")
    if quiet:
        return
    for item in report.skipped:
        say(f"skipped {item['table']} ({item['rows']} rows): {item['reason']}")
    state = "committed" if report.committed else "rolled back"
    say(
        f"copied {report.rows:,} rows in {len(report.tables)} tables from {report.source} to"
        f" {report.destination} in {report.seconds:.1f}s ({state})"
    )


@contextmanager
def _progress(*, enabled: bool) -> Iterator[Progress | None]:
    """A progress bar per table and phase on stderr, for a person watching; nothing otherwise."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TimeRemainingColumn
    from rich.progress import Progress as Bars

    bars = Bars(
        "{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    current: dict[tuple[str, str], Any] = {}

    def update(phase: str, table: str, done: int, total: int) -> None:
        task = current.get((phase, table))
        if task is None:  # one bar at a time: the table being copied or verified now
            for old in current.values():
                bars.remove_task(old)
            current.clear()
            task = current[(phase, table)] = bars.add_task(f"{phase} {table}", total=total)
        bars.update(task, completed=done)

    with bars:
        yield update
