"""``agent-sdk worker``: execute queued runs (``AGENT_SDK_EXECUTION_MODE=queue``).

The flags are parsed here; the processes are wired and supervised by their host,
:mod:`agent_sdk.hosts.worker` (see there for how the workers run and restart).
"""

from __future__ import annotations

from typing import Annotated

import typer

from agent_sdk.cli.context import command, current, sub_app
from agent_sdk.cli.output import say

app = sub_app()


@command(app, "worker", output=False)
def worker(
    count: Annotated[
        int | None,
        typer.Option(
            "--count", "-c", min=1, max=1024, help="Worker processes [env: AGENT_SDK_WORKER_COUNT]."
        ),
    ] = None,
    agents: Annotated[
        list[str] | None,
        typer.Option(
            "--agents",
            metavar="MODULE",
            help="Python module defining agents; repeatable [env: AGENT_SDK_AGENTS].",
        ),
    ] = None,
) -> None:
    """Execute queued runs until Ctrl-C.

    Example: AGENT_SDK_EXECUTION_MODE=queue agent-sdk worker --count 4
    """
    ctx = current()
    if agents:
        ctx.extra_flags["agents"] = list(agents)
    from agent_sdk.hosts.worker import worker as run_worker

    run_worker(ctx.settings, ctx.flags(), count, say)
