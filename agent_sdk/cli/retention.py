"""``agent-sdk retention sweep``: delete now what the orgs' retention policies expired.

Servers and workers sweep every ``AGENT_SDK_RETENTION_SWEEP_INTERVAL`` seconds by themselves;
this command is for cron (with that interval at 0) and for an operator who wants it done now.
The policies themselves are ``agent-sdk orgs retention``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from agent_sdk.cli.context import OutputFormat, command, current, sub_app
from agent_sdk.cli.keys import confirm
from agent_sdk.cli.output import Column, render_list, render_one, say
from agent_sdk.errors import SweepFailed

if TYPE_CHECKING:
    from agent_sdk.records import Progress, SweepReport

app = sub_app(help="Delete what retention policies expired.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Delete what retention policies expired."""
    # A callback keeps `retention` a group while `sweep` is its only command (Typer would
    # otherwise make the lone command the group itself).


SWEEP_COLUMNS = [
    Column("ORG", "org_id"),
    Column("RUNS", "runs"),
    Column("EVENTS", "events"),
    Column("SESSIONS", "sessions"),
    Column("AUDIT RECORDS", "audit_records"),
    Column("BATCHES", "batches"),
    Column("ERROR", "error", 60),
]


@command(app, "sweep")
def sweep(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress and no summary on stderr.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (cron needs it).")
    ] = False,
) -> None:
    """Delete what the retention policies expired: of the org given with --org (or
    AGENT_SDK_ORG), else of every org with a policy (on a server: needs admin:platform). Deletes
    in batches of AGENT_SDK_RETENTION_BATCH_SIZE rows per transaction; queued and running runs
    are never touched. Exits 1 if the sweep of an org failed (the others are still swept).
    Asks first unless --dry-run or --yes (without a terminal --yes is required).

    Example (cron, nightly): agent-sdk retention sweep --local --quiet --yes
    """
    ctx = current()
    all_orgs = ctx.settings.org_id is None
    if not dry_run:
        whose = "every org with a policy" if all_orgs else f"org {ctx.settings.org_id}"
        confirm(
            ctx,
            lambda: f"Delete now, for good, what the retention policies of {whose} expired?",
            yes=yes,
            refused="a retention sweep",
        )
    with _progress(enabled=not quiet and sys.stderr.isatty()) as progress:
        report = ctx.backend.retention_sweep(all_orgs=all_orgs, dry_run=dry_run, progress=progress)
    _render(report, ctx.output)
    if not quiet:
        say(_summary(report))
    failed = [o for o in report.orgs if o.error]
    if failed:
        raise SweepFailed(
            f"the sweep of {', '.join(o.org_id for o in failed)} failed: {failed[0].error}",
            hint="the other orgs were swept; fix the cause and sweep again",
        )


def _render(report: SweepReport, fmt: OutputFormat) -> None:
    if fmt in (OutputFormat.json, OutputFormat.yaml):
        render_one(report, [], fmt)
    else:  # a row per org: what tables, jsonl and csv are for
        render_list(report.orgs, SWEEP_COLUMNS, fmt, empty="no org has a retention policy")


def _summary(report: SweepReport) -> str:
    totals = {
        name: sum(getattr(o, name) for o in report.orgs)
        for name in ("runs", "events", "sessions", "audit_records")
    }
    verb = "would delete" if report.dry_run else "deleted"
    what = ", ".join(f"{n:,} {name.replace('_', ' ')}" for name, n in totals.items())
    return f"retention sweep {verb} {what} in {len(report.orgs)} org(s)"


@contextmanager
def _progress(*, enabled: bool) -> Iterator[Progress | None]:
    """One live line on stderr with the running counts, for a person watching."""
    if not enabled:
        yield None
        return
    from rich.console import Console

    console = Console(stderr=True)
    counts: dict[tuple[str, str], int] = {}
    with console.status("sweeping ...") as status:

        def update(org_id: str, what: str, rows: int) -> None:
            counts[(org_id, what)] = counts.get((org_id, what), 0) + rows
            done = ", ".join(f"{n:,} {w}" for (o, w), n in counts.items() if o == org_id)
            status.update(f"org {org_id}: {done}")

        yield update
