"""``agent-sdk sessions list|show``."""

from __future__ import annotations

from typing import Annotated

import typer

from agent_sdk.cli.context import Cursor, PageSize, command, current, sub_app
from agent_sdk.cli.output import Column, render_one, render_page, when

app = sub_app(help="Sessions: the runs of one conversation or job.", no_args_is_help=True)

SESSION_COLUMNS = [
    Column("ID", "id"),
    Column("RUNS", "run_count"),
    Column("CREATED", lambda r: when(r.get("created_at"))),
    Column("UPDATED", lambda r: when(r.get("updated_at"))),
    Column("METADATA", "metadata", 40),
]
SESSION_FIELDS = [
    Column("id", "id"),
    Column("runs", "run_count"),
    Column("project", "project_id"),
    Column("created", lambda r: when(r.get("created_at"))),
    Column("updated", lambda r: when(r.get("updated_at"))),
    Column("metadata", "metadata"),
]


@command(app, "list")
def list_(
    limit: PageSize = 50,
    cursor: Cursor = None,
) -> None:
    """List sessions, newest first.

    Example: agent-sdk sessions list --limit 10
    """
    ctx = current()
    page = ctx.backend.list_sessions(limit=limit, cursor=cursor)
    render_page(page, SESSION_COLUMNS, ctx.output, empty="no sessions")


@command(app, "show")
def show(
    session_id: Annotated[str, typer.Argument(metavar="SESSION_ID", help="The session.")],
) -> None:
    """Show one session (its runs: agent-sdk runs list --session ID)."""
    ctx = current()
    render_one(ctx.backend.get_session(session_id), SESSION_FIELDS, ctx.output)
