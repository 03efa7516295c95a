"""``agent-sdk db migrate|status``: the schema of this machine's database.

These always work on the local database (a server's database is migrated on the server's
machine, before the new version starts), so ``--local`` is implied and ``--server`` refused.
"""

from __future__ import annotations

from agent_sdk.cli.context import command, current, database_label, sub_app
from agent_sdk.cli.output import Column, render_list, say, when

app = sub_app(help="Database schema: apply and inspect migrations.", no_args_is_help=True)

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
