"""The ``worker`` host: N processes that execute queued runs (``AGENT_SDK_EXECUTION_MODE=queue``).

Each process wires its own runtime, queue and event loop (:func:`work`); each overlaps up to
``AGENT_SDK_MAX_CONCURRENT_RUNS`` waiting runs on that loop. Processes rather than threads,
because Python runs one thread of Python code at a time per process: waiting is cheap on one
loop, but what a run computes (tool code, JSON, SQLite) needs a core of its own. SIGINT or
SIGTERM stops taking new runs and gives unfinished ones back to the queue.

With N > 1 the parent supervises its workers (:func:`supervise`): one that dies (a crash, an OOM
kill, ``kill -9``) is started again after a short backoff, and the parent gives up, stopping the
others and exiting non-zero, only when more than ``AGENT_SDK_WORKER_RESTART_LIMIT`` restarts
happen within ``AGENT_SDK_WORKER_RESTART_WINDOW`` seconds (something is wrong that restarting
does not fix).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import random
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from agent_sdk.errors import AgentSDKError, InvalidInput
from agent_sdk.hosts import agents_from_cwd, check_agents

if TYPE_CHECKING:
    from multiprocessing.context import SpawnProcess

    from agent_sdk.config import Settings

# Backoff of a worker's restart: from RESTART_BASE seconds, doubling with each quick death of
# that worker, up to RESTART_CAP; half of it random, so workers killed together come back apart.
RESTART_BASE = 0.5
RESTART_CAP = 30.0


def worker(
    settings: Settings, flags: dict[str, object], count: int | None, say: Callable[[str], None]
) -> None:
    """Run ``count`` (default ``AGENT_SDK_WORKER_COUNT``) worker processes until stopped.
    ``flags`` are what each process loads its settings from; ``say`` tells the operator."""
    if settings.execution.mode != "queue":
        # Nothing is ever enqueued in inline mode: a worker would wait forever, silently.
        raise InvalidInput(
            f"nothing to do: the execution mode is {settings.execution.mode}, so runs execute "
            "inline in the server and no worker takes them",
            hint="set AGENT_SDK_EXECUTION_MODE=queue for the server and the workers",
        )
    n = count or settings.worker.count
    check_agents(settings)  # a bad agents module: one error line, not one traceback per process
    runs = settings.execution.max_concurrent_runs
    say(f"agent-sdk worker: {n} process(es), up to {runs} runs each "
        f"(queue: {settings.queue.backend})")  # fmt: skip
    if n == 1:
        work(flags)
        return
    supervise(flags, n, settings, say)
    say("stopped")


def work(settings_flags: dict[str, object], parent: int | None = None) -> None:
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


def _died(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def supervise(
    flags: dict[str, object], n: int, settings: Settings, say: Callable[[str], None]
) -> None:
    """Run N worker processes until a signal stops them, starting a new one for each that dies.
    Raises (a non-zero exit) when the restarts pass the limit within the window."""
    from multiprocessing.connection import wait

    # spawn, not fork: each worker starts clean (no inherited SQLite connections or threads).
    mp = multiprocessing.get_context("spawn")
    parent = os.getpid()
    limit, window = settings.worker.restart_limit, settings.worker.restart_window

    def spawn(slot: int) -> SpawnProcess:
        proc = mp.Process(target=work, args=(flags, parent), name=f"agent-sdk-worker-{slot}")
        with _as_main():
            proc.start()
        return proc

    procs: dict[int, SpawnProcess | None] = {i: spawn(i) for i in range(n)}
    started = dict.fromkeys(procs, time.monotonic())
    quick_deaths = dict.fromkeys(procs, 0)  # per slot: deaths within a window of its start
    due: dict[int, float] = {}  # slot -> when its new worker starts
    restarts: deque[float] = deque()  # when each restart within the window was decided
    stopping = False
    # The signal handler writes here so the wait below wakes at once (a plain handler would
    # not interrupt it: Python retries the wait after running the handler).
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)

    def stop(signum: int, _frame: object) -> None:
        # A service manager stops the parent; each worker then finishes or gives back its runs.
        nonlocal stopping
        stopping = True
        for proc in procs.values():
            if proc is not None and proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)
        with contextlib.suppress(OSError):
            os.write(wake_w, b"x")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping:
            live = [proc for proc in procs.values() if proc is not None]
            timeout = max(0.0, min(due.values()) - time.monotonic()) if due else None
            wait([proc.sentinel for proc in live] + [wake_r], timeout)
            with contextlib.suppress(OSError):
                os.read(wake_r, 512)
            if stopping:
                break
            now = time.monotonic()
            for slot, proc in list(procs.items()):
                if proc is None or proc.exitcode is None:
                    continue
                procs[slot] = None
                restarts.append(now)
                while restarts and restarts[0] < now - window:
                    restarts.popleft()
                if len(restarts) > limit:
                    stop(signal.SIGTERM, None)
                    _join(procs)
                    raise AgentSDKError(
                        f"worker {slot} (pid {proc.pid}) {_died(proc.exitcode)}: {len(restarts)} "
                        f"worker deaths within {window:g}s, more than the {limit} restarts "
                        "allowed; giving up",
                        hint="see the workers' errors above; the limits are "
                        "AGENT_SDK_WORKER_RESTART_LIMIT and AGENT_SDK_WORKER_RESTART_WINDOW",
                    )
                quick = now - started[slot] < window
                quick_deaths[slot] = quick_deaths[slot] + 1 if quick else 1
                ceiling = min(RESTART_CAP, RESTART_BASE * 2.0 ** (quick_deaths[slot] - 1))
                delay = ceiling / 2 + random.uniform(0, ceiling / 2)
                say(f"worker {slot} (pid {proc.pid}) {_died(proc.exitcode)}; "
                    f"starting a new one in {delay:.1f}s")  # fmt: skip
                due[slot] = now + delay
            for slot, when in list(due.items()):
                if when <= now and not stopping:
                    del due[slot]
                    procs[slot] = spawn(slot)
                    started[slot] = time.monotonic()
        _join(procs)
    finally:
        os.close(wake_r)
        os.close(wake_w)
    say("stopped")


@contextlib.contextmanager
def _as_main() -> Iterator[None]:
    """While a worker process starts, present this module as the parent's ``__main__``.

    spawn makes each child import the parent's ``__main__`` before it runs its target. Under
    ``agent-sdk worker`` that is the console script, which imports the whole CLI (Typer and
    every command: tens of milliseconds of CPU per worker, again on each restart) that a
    worker never uses. Standing in for it, this module is what the child imports instead: it
    loads only what :func:`work` needs. Only the main thread starts workers, and ``start`` has
    written what the child needs before it returns, so the swap is seen by nothing else."""
    real = sys.modules["__main__"]
    sys.modules["__main__"] = sys.modules[__name__]
    try:
        yield
    finally:
        sys.modules["__main__"] = real


def _join(procs: dict[int, SpawnProcess | None]) -> None:
    for proc in procs.values():
        if proc is not None:
            proc.join()
