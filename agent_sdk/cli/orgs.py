"""``agent-sdk orgs create|list|show``."""

from __future__ import annotations

from typing import Annotated

import typer

from agent_sdk.cli import orgs_encryption, orgs_redaction, orgs_residency, orgs_retention
from agent_sdk.cli.context import Cursor, PageSize, command, current, sub_app
from agent_sdk.cli.output import Column, render_one, render_page, say, when

app = sub_app(help="Organisations (tenants): create, list, show.", no_args_is_help=True)
app.add_typer(orgs_residency.app, name="residency")
app.add_typer(orgs_encryption.app, name="keys")
app.add_typer(orgs_retention.app, name="retention")
app.add_typer(orgs_redaction.app, name="redaction")

ORG_COLUMNS = [
    Column("ID", "id"),
    Column("NAME", "name", 40),
    Column("CREATED", lambda r: when(r.get("created_at"))),
]
ORG_FIELDS = [
    Column("id", "id"),
    Column("name", "name"),
    Column("created", lambda r: when(r.get("created_at"))),
]


@command(app, "create")
def create(
    org_id: Annotated[str, typer.Argument(metavar="ID", help="1-64 letters, digits, '_' or '-'.")],
    name: Annotated[
        str | None, typer.Option("--name", metavar="NAME", help="Display name (default: ID).")
    ] = None,
) -> None:
    """Create an org (on a server: needs the admin:platform scope).

    Example: agent-sdk orgs create acme --name "Acme Corp"
    """
    ctx = current()
    org = ctx.backend.create_org(org_id, name=name)
    say(f"created org {org.id}; act in it with --org {org.id}")
    render_one(org, ORG_FIELDS, ctx.output)


@command(app, "list")
def list_(
    limit: PageSize = 50,
    cursor: Cursor = None,
) -> None:
    """List orgs (on a server, a key without admin:platform sees its own).

    Example: agent-sdk orgs list -o json
    """
    ctx = current()
    page = ctx.backend.list_orgs(limit=limit, cursor=cursor)
    render_page(page, ORG_COLUMNS, ctx.output, empty="no orgs")


@command(app, "show")
def show(org_id: Annotated[str, typer.Argument(metavar="ID", help="The org.")]) -> None:
    """Show one org.

    Example: agent-sdk orgs show acme
    """
    ctx = current()
    render_one(ctx.backend.get_org(org_id), ORG_FIELDS, ctx.output)
