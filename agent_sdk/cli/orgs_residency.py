"""``agent-sdk orgs residency show|set|clear``: the region an org's data is kept in.

The org is the one commands act in (``--org``, else the credential's own). On a server, reading
needs ``admin:orgs`` and changing needs ``admin:platform`` too; locally the database owner may do
both. A process with ``AGENT_SDK_DATA_REGION`` serves only the orgs of its region (and the ones
pinned nowhere); these three commands work wherever the org is kept, so a wrong pin can be fixed.
"""

from __future__ import annotations

from typing import Annotated

import typer

from agent_sdk.cli.context import command, current, sub_app
from agent_sdk.cli.output import Column, render_one, say

app = sub_app(help="The region an org's data is kept in (data residency).", no_args_is_help=True)

RESIDENCY_FIELDS = [
    Column("org", "org_id"),
    Column("region", lambda r: r.get("region") or "(none: served by every region)"),
    Column("server region", lambda r: r.get("server_region") or "(none: serves every region)"),
    Column("served here", "served_here"),
]


@command(app, "show")
def show() -> None:
    """Show the org's region and whether this server (or local setup) serves it.

    Example: agent-sdk orgs residency show --org acme
    """
    ctx = current()
    render_one(ctx.backend.get_residency(), RESIDENCY_FIELDS, ctx.output)


@command(app, "set")
def set_(
    region: Annotated[
        str,
        typer.Argument(metavar="REGION", help="A lowercase region id: eu, us, eu-west-1, ..."),
    ],
) -> None:
    """Pin the org to a region: servers and workers of other regions then refuse it (on a server:
    needs admin:platform).

    Example: agent-sdk orgs residency set eu --org acme
    """
    ctx = current()
    done = ctx.backend.set_residency(region)
    say(f"org {done.org_id} is now kept in region {done.region}")
    if not done.served_here:
        say(f"this deployment serves region {done.server_region}: it now refuses the org")
    render_one(done, RESIDENCY_FIELDS, ctx.output)


@command(app, "clear")
def clear() -> None:
    """Unpin the org: every region serves it again (on a server: needs admin:platform).

    Example: agent-sdk orgs residency clear --org acme
    """
    ctx = current()
    done = ctx.backend.set_residency(None)
    say(f"org {done.org_id} is no longer pinned to a region")
    render_one(done, RESIDENCY_FIELDS, ctx.output)
