"""``agent-sdk sessions list|show|delete``."""

from __future__ import annotations

from typing import Annotated

import typer

from agent_sdk.cli.context import Cursor, OutputFormat, PageSize, command, current, sub_app
from agent_sdk.cli.output import Column, render_list, render_one, render_page, say, when

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


@command(app, "delete")
def delete(
    session_id: Annotated[str, typer.Argument(metavar="SESSION_ID", help="The session to erase.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a session with every run in it (events, tool outputs, usage). This cannot be
    undone; an audit record keeps the ids and counts, no content.

    Example: agent-sdk sessions delete chat-42 --yes
    """
    from agent_sdk.cli.keys import confirm
    from agent_sdk.cli.runs import DELETION_COLUMNS

    ctx = current()
    backend = ctx.backend

    def question() -> str:
        session = backend.get_session(session_id)  # a typo fails here, before anyone is asked
        runs = f"{session.run_count} run{'s' if session.run_count != 1 else ''}"
        return f"Erase session {session.id} and its {runs} with all events? This cannot be undone"

    confirm(ctx, question, yes=yes, refused=f"erasing session {session_id}")
    done = backend.delete_session(session_id)
    say(f"erased session {done.id}: {done.runs} runs, {done.events} events")
    if ctx.output is OutputFormat.table:
        render_list([done], DELETION_COLUMNS, ctx.output, empty="")
    else:
        render_one(done, [], ctx.output)
