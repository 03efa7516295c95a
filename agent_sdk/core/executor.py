"""Inline execution: runs execute on the runtime's event loop, at most
``AGENT_SDK_MAX_CONCURRENT_RUNS`` at a time. Agent runs spend most of their life waiting on a
model, so one loop overlaps many of them; the queue and the workers of the durable mode build on
the same :meth:`Executor.execute`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import TYPE_CHECKING

from agent_sdk.core.attempt import Attempts
from agent_sdk.records import RunStatus

if TYPE_CHECKING:
    from agent_sdk.config import Settings
    from agent_sdk.core.events import EventBus
    from agent_sdk.engine.agent import AgentRegistry
    from agent_sdk.store.base import Store

log = logging.getLogger(__name__)


class Executor:
    def __init__(
        self, settings: Settings, store: Store, bus: EventBus, registry: AgentRegistry
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.registry = registry
        self.attempts = Attempts(settings, store, bus, registry)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._sem: asyncio.Semaphore | None = None
        self._tasks: dict[str, concurrent.futures.Future[None]] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._lock = threading.Lock()

    # -- the loop ---------------------------------------------------------------------------
    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run on an existing loop (the server's)."""
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop runs execute on; a background thread's own loop if none was attached."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=loop.run_forever, name="agent-sdk-engine", daemon=True
                )
                self._thread.start()
                self._loop = loop
            return self._loop

    def submit(self, org_id: str, run_id: str, *, takeover: bool = False) -> None:
        """Execute the run here (``takeover``: also a run a dead process left ``running``)."""
        fut = asyncio.run_coroutine_threadsafe(
            self.execute(org_id, run_id, takeover=takeover), self.loop
        )
        with self._lock:
            self._tasks[run_id] = fut
        fut.add_done_callback(lambda f: self._forget(run_id, f))

    def _forget(self, run_id: str, fut: concurrent.futures.Future[None]) -> None:
        with self._lock:
            if self._tasks.get(run_id) is fut:  # not a later submit of the same run
                del self._tasks[run_id]

    def holds(self, run_id: str) -> bool:
        """Whether the run was submitted here and has not finished: recovery leaves it alone,
        whatever its heartbeat says (a busy loop may be late to touch it)."""
        with self._lock:
            return run_id in self._tasks

    def cancel(self, run_id: str) -> bool:
        with self._lock:
            fut = self._tasks.get(run_id)
            task = self._running.get(run_id)
        if task is not None:
            # Cancel the task, not the future of run_coroutine_threadsafe: that future reports
            # done at once, so wait_idle() would return while the run is still recording its
            # cancellation, and close() would stop the loop under it (the run stays "running").
            task.get_loop().call_soon_threadsafe(task.cancel)
            return True
        return fut.cancel() if fut is not None else False

    def cancel_all(self) -> int:
        """Cancel every run executing here; each ends ``cancelled`` with its terminal event."""
        with self._lock:
            futures = list(self._tasks.values())
        return sum(f.cancel() for f in futures)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._tasks)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every submitted run has finished (the CLI's local mode calls this)."""
        with self._lock:
            futures = list(self._tasks.values())
        done, pending = concurrent.futures.wait(futures, timeout=timeout)
        return not pending

    def close(self) -> None:
        if self._thread is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop.close()
            self._thread = None
            self._loop = None

    # -- one run ----------------------------------------------------------------------------
    async def execute(self, org_id: str, run_id: str, *, takeover: bool = False) -> None:
        task = asyncio.current_task()
        if task is not None:
            with self._lock:
                self._running[run_id] = task
        try:
            await self._execute_in_slot(org_id, run_id, takeover)
        finally:
            with self._lock:
                self._running.pop(run_id, None)

    async def _execute_in_slot(self, org_id: str, run_id: str, takeover: bool) -> None:
        """Inline: attempts follow each other in this task, waiting out retry delays here."""
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.settings.execution.max_concurrent_runs)
        try:
            while True:
                async with self._sem:
                    outcome = await self.attempts.run(org_id, run_id, takeover=takeover)
                if outcome.kind not in ("retry", "busy"):
                    return
                await asyncio.sleep(outcome.delay)
        except asyncio.CancelledError:
            # Cancelled while waiting for a slot or a retry: nothing is running.
            self.attempts.finish(org_id, run_id, RunStatus.CANCELLED, reason="cancelled by request")
