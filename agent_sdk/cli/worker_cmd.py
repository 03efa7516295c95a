"""``agent-sdk worker``: execute queued runs (``AGENT_SDK_EXECUTION_MODE=queue``).

``--count N`` (``AGENT_SDK_WORKER_COUNT``) starts N worker processes; each overlaps up to
``AGENT_SDK_MAX_CONCURRENT_RUNS`` waiting runs on its own event loop. Processes rather than
threads, because Python runs one thread of Python code at a time per process: waiting is
cheap on one loop, but what a run computes (tool code, JSON, SQLite) needs a core of its own.
Ctrl-C or SIGTERM stops taking new runs and gives unfinished ones back to the queue.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from typing import Annotated

import typer

from agent_sdk.cli.agents_check import agents_from_cwd, check_agents
from agent_sdk.cli.context import command, current, sub_app
from agent_sdk.cli.output import say
from agent_sdk.errors import InvalidInput

app = sub_app()


def _work(settings_flags: dict[str, object], parent: int | None = None) -> None:
    """One worker process: its own runtime, queue and event loop. With ``parent`` (the pid of
    ``worker --count N``) it also stops when that process is gone, so a parent killed with -9
    leaves no orphans behind."""
    from agent_sdk.config import load_settings
    from agent_sdk.core.runtime import Runtime
    from agent_sdk.core.worker import serve_worker
    from agent_sdk.queue import queue_from_settings

    settings = load_settings(flags=settings_flags)
    agents_from_cwd(settings)  # spawn handed us the parent's sys.path; this keeps --count 1 alike
    runtime = Runtime(settings)
    runtime.load_agents()
    queue = queue_from_settings(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if parent is not None:
            watch = asyncio.create_task(_watch_parent(parent, stop))
        await serve_worker(runtime, queue, stop)
        if parent is not None:
            watch.cancel()

    try:
        asyncio.run(main())
    finally:
        queue.close()
        runtime.close(wait=False)


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(1.0)
        if os.getppid() != parent:  # re-parented: the parent died without telling us
            stop.set()


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
    settings = ctx.settings
    if settings.execution_mode != "queue":
        # Nothing is ever enqueued in inline mode: a worker would wait forever, silently.
        raise InvalidInput(
            f"nothing to do: the execution mode is {settings.execution_mode}, so runs execute "
            "inline in the server and no worker takes them",
            hint="set AGENT_SDK_EXECUTION_MODE=queue for the server and the workers",
        )
    n = count or settings.worker_count
    flags = ctx.flags()
    check_agents(settings)  # a bad agents module: one error line, not one traceback per process
    say(f"agent-sdk worker: {n} process(es), up to {settings.max_concurrent_runs} runs each "
        f"(queue: {settings.queue_backend})")  # fmt: skip
    if n == 1:
        _work(flags)
        return
    # spawn, not fork: each worker starts clean (no inherited SQLite connections or threads).
    mp = multiprocessing.get_context("spawn")
    procs = [mp.Process(target=_work, args=(flags, os.getpid()), name=f"agent-sdk-worker-{i}")
             for i in range(n)]  # fmt: skip
    for p in procs:
        p.start()

    def forward(signum: int, _frame: object) -> None:
        # A service manager stops the parent; each worker then finishes or gives back its runs.
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.join(timeout=30)
    say("stopped")
