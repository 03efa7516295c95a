"""``agent-sdk orgs retention show|set|clear``: how long an org's data is kept.

The org is the one commands act in (``--org``, else the credential's own); on a server these
need ``admin:orgs``. What each limit means is in :mod:`agent_sdk.core.retention`; the sweeper
that deletes what expired is ``agent-sdk retention sweep``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from agent_sdk.cli.context import command, current, sub_app
from agent_sdk.cli.keys import confirm
from agent_sdk.cli.output import Column, render_one, say

app = sub_app(
    help="How long the org's runs, events and audit records are kept.", no_args_is_help=True
)


def _limit(key: str, unit: str) -> Column:
    def show(row: dict[str, Any]) -> str:
        value = row.get(key)
        return "keep forever" if value is None else f"{value} {unit}"

    return Column(key.replace("_", " "), show)


RETENTION_FIELDS = [
    Column("org", "org_id"),
    _limit("runs_days", "days"),
    _limit("events_days", "days"),
    _limit("audit_days", "days"),
    _limit("keep_last_runs_per_session", "runs"),
]


@command(app, "show")
def show() -> None:
    """Show the org's retention policy.

    Example: agent-sdk orgs retention show --org acme
    """
    ctx = current()
    render_one(ctx.backend.get_retention(), RETENTION_FIELDS, ctx.output)


@command(app, "set")
def set_(
    runs_days: Annotated[
        int | None,
        typer.Option(
            "--runs-days",
            min=1,
            max=36_500,
            metavar="DAYS",
            help="Delete finished runs (with their events) this many days after creation.",
        ),
    ] = None,
    events_days: Annotated[
        int | None,
        typer.Option(
            "--events-days",
            min=1,
            max=36_500,
            metavar="DAYS",
            help="Delete events this many days after they were written (a run keeps its last).",
        ),
    ] = None,
    audit_days: Annotated[
        int | None,
        typer.Option(
            "--audit-days",
            min=1,
            max=36_500,
            metavar="DAYS",
            help="Delete audit records this many days after they were written.",
        ),
    ] = None,
    keep_last_runs: Annotated[
        int | None,
        typer.Option(
            "--keep-last-runs",
            min=1,
            max=10_000,
            metavar="N",
            help="Keep only the newest N runs of each session.",
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Replace the org's retention policy: it becomes exactly the limits given (a limit left out
    is removed). Expired data disappears from every listing at once; the next sweep deletes it.
    Asks first (--yes to skip the question; without a terminal --yes is required).

    Example: agent-sdk orgs retention set --runs-days 90 --events-days 30 --audit-days 365 --yes
    """
    from agent_sdk.errors import InvalidInput

    policy = {
        "runs_days": runs_days,
        "events_days": events_days,
        "audit_days": audit_days,
        "keep_last_runs_per_session": keep_last_runs,
    }
    if all(v is None for v in policy.values()):
        raise InvalidInput(
            "give at least one limit",
            hint="to keep everything, use `agent-sdk orgs retention clear`",
        )
    ctx = current()

    def question() -> str:
        org = ctx.settings.client.org_id or ctx.backend.whoami().org_id
        limits = ", ".join(
            f"{name} {value}" for name, value in policy.items() if value is not None
        ).replace("_", " ")
        return (
            f"Set the retention policy of org {org} to {limits}? What it expires is hidden at "
            "once and deleted by the next sweep, for good"
        )

    confirm(ctx, question, yes=yes, refused="setting a retention policy")
    view = ctx.backend.set_retention(policy)
    say(f"retention policy of org {view.org_id} set; `agent-sdk retention sweep` deletes now")
    render_one(view, RETENTION_FIELDS, ctx.output)


@command(app, "clear")
def clear() -> None:
    """Remove the org's retention policy: keep everything from now on.

    Example: agent-sdk orgs retention clear --org acme
    """
    ctx = current()
    view = ctx.backend.clear_retention()
    say(f"org {view.org_id} has no retention policy: everything is kept")
    render_one(view, RETENTION_FIELDS, ctx.output)
