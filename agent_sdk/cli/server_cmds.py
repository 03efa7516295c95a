"""``agent-sdk up`` (the embedded server of one machine) and ``agent-sdk serve`` (deployment).

The flags are parsed here; the processes themselves are wired by their hosts,
:mod:`agent_sdk.hosts.up` and :mod:`agent_sdk.hosts.serve` (see there for what each does).
"""

from __future__ import annotations

from typing import Annotated

import typer

from agent_sdk.cli.context import CLIContext, command, current, database_label, sub_app
from agent_sdk.cli.output import say

HostOption = Annotated[
    str | None,
    typer.Option(
        "--host",
        metavar="HOST",
        help="Interface to listen on [default: 127.0.0.1; env: AGENT_SDK_HOST].",
    ),
]
PortOption = Annotated[
    int | None,
    typer.Option(
        "--port",
        "-p",
        metavar="PORT",
        min=0,
        max=65535,
        help="Port [default: 8765; env: AGENT_SDK_PORT].",
    ),
]
AgentsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--agents",
        metavar="MODULE",
        help="Python module defining agents (e.g. myapp.agents); repeatable "
        "[env: AGENT_SDK_AGENTS].",
    ),
]


def _configure(
    ctx: CLIContext, host: str | None, port: int | None, agents: list[str] | None
) -> None:
    if host is not None:
        ctx.extra_flags["host"] = host
    if port is not None:
        ctx.extra_flags["port"] = port
    if agents:
        ctx.extra_flags["agents"] = list(agents)


app = sub_app()


@command(app, "up", output=False)
def up(host: HostOption = None, port: PortOption = None, agents: AgentsOption = None) -> None:
    """Run the local server in the foreground until Ctrl-C.

    The CLI on this machine then sends its commands to it automatically. It also serves the
    interactive API docs at /docs (AGENT_SDK_DOCS_ENABLED=false turns them off).

    Example: agent-sdk up --port 8765 --agents myapp.agents
    """
    from agent_sdk.hosts.up import up as run_up

    ctx = current()
    _configure(ctx, host, port, agents)
    run_up(ctx.settings, database_label(ctx.settings), say)


@command(app, "serve", output=False)
def serve(host: HostOption = None, port: PortOption = None, agents: AgentsOption = None) -> None:
    """Run the server for a deployment (no state file; needs a migrated database).

    Example: AGENT_SDK_HOST=0.0.0.0 agent-sdk serve
    """
    from agent_sdk.hosts.serve import serve as run_serve

    ctx = current()
    _configure(ctx, host, port, agents)
    run_serve(ctx.settings, say)
