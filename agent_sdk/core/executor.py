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
import time
from typing import TYPE_CHECKING, Any

from agent_sdk.errors import AgentSDKError, QuotaExceeded
from agent_sdk.records import EventType, RunStatus, Usage
from agent_sdk.store._ids import utcnow

if TYPE_CHECKING:
    from agent_sdk.config import Settings
    from agent_sdk.core.events import EventBus
    from agent_sdk.engine.agent import AgentRegistry
    from agent_sdk.store.base import Store

log = logging.getLogger(__name__)

# Seconds between checks of the store for a cancel requested by another process.
CANCEL_POLL = 0.25


class EventCapExceeded(QuotaExceeded):
    pass


class Executor:
    def __init__(
        self, settings: Settings, store: Store, bus: EventBus, registry: AgentRegistry
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.registry = registry
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

    def submit(self, org_id: str, run_id: str) -> None:
        fut = asyncio.run_coroutine_threadsafe(self.execute(org_id, run_id), self.loop)
        with self._lock:
            self._tasks[run_id] = fut
        fut.add_done_callback(lambda _f: self._forget(run_id))

    def _forget(self, run_id: str) -> None:
        with self._lock:
            self._tasks.pop(run_id, None)

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
    async def execute(self, org_id: str, run_id: str) -> None:
        task = asyncio.current_task()
        if task is not None:
            with self._lock:
                self._running[run_id] = task
        try:
            await self._execute_in_slot(org_id, run_id)
        finally:
            with self._lock:
                self._running.pop(run_id, None)

    async def _execute_in_slot(self, org_id: str, run_id: str) -> None:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.settings.max_concurrent_runs)
        async with self._sem:
            try:
                await self._execute(org_id, run_id)
            except asyncio.CancelledError:
                # Cancelled while still waiting for a slot, or between the engine's steps.
                self._finish(org_id, run_id, RunStatus.CANCELLED, reason="cancelled by request")
            except Exception:  # a bug must fail the run, not leave it running forever
                log.exception("run %s crashed", run_id)
                self._finish(
                    org_id,
                    run_id,
                    RunStatus.FAILED,
                    error={"code": "internal_error", "message": "internal error (see logs)"},
                )

    async def _execute(self, org_id: str, run_id: str) -> None:
        from agent_sdk.engine.runner import RunEnv, execute
        from agent_sdk.engine.tools import ToolContext

        with self.store.transaction():
            run = self.store.get_run(org_id, run_id)
            started = self.store.update_run(
                org_id,
                run_id,
                expect_status=[RunStatus.QUEUED],
                status=RunStatus.RUNNING,
                started_at=utcnow(),
                attempts=run.attempts + 1,
            )
            if started is None:
                return  # cancelled before it could start
            event = self.store.append_event(
                org_id, run_id, EventType.RUN_STARTED, {"attempt": run.attempts + 1}
            )
        self.bus.publish(event)

        count = [event.seq]
        cap = self.settings.stream_max_events

        def emit(type: str, data: dict[str, Any]) -> None:
            # Leave room for the terminal event, which is always written.
            if count[0] + 1 >= cap:
                raise EventCapExceeded(
                    f"run reached AGENT_SDK_STREAM_MAX_EVENTS={cap} events and was stopped"
                )
            ev = self.store.append_event(org_id, run_id, type, data)
            count[0] = ev.seq
            self.bus.publish(ev)

        # A cancel made in this process cancels the task directly; the store is only asked
        # for cancels made elsewhere (another process's CLI), at most every CANCEL_POLL seconds,
        # so short runs pay no read for it.
        last_check = [time.monotonic()]

        def cancelled() -> bool:
            now = time.monotonic()
            if now - last_check[0] < CANCEL_POLL:
                return False
            last_check[0] = now
            return self.store.get_run(org_id, run_id).cancel_requested

        s = self.settings
        env = RunEnv(
            run_id=run_id,
            org_id=org_id,
            emit=emit,
            tool_context=ToolContext(
                run_id=run_id,
                org_id=org_id,
                fs_roots=s.fs_allowlist,
                http_allowlist=s.http_allowlist,
                http_timeout=s.http_timeout,
                cancelled=cancelled,
            ),
            max_steps=s.max_steps,
            max_tokens=s.max_tokens,
            cancelled=cancelled,
            allow_model_requests=s.allow_model_requests,
        )
        try:
            agent = self.registry.resolve(started.agent_spec or started.agent)
            result = await execute(agent, started.input, env)
        except AgentSDKError as exc:
            self._finish(org_id, run_id, RunStatus.FAILED, error=exc.to_dict())
            return
        self._finish(
            org_id,
            run_id,
            RunStatus.SUCCEEDED,
            output=result.text,
            usage=result.usage,
            steps=result.steps,
        )

    def _finish(
        self,
        org_id: str,
        run_id: str,
        status: RunStatus,
        *,
        output: str | None = None,
        error: dict[str, Any] | None = None,
        usage: Usage | None = None,
        steps: int | None = None,
        reason: str | None = None,
    ) -> None:
        fields: dict[str, Any] = {"status": status, "finished_at": utcnow()}
        data: dict[str, Any] = {}
        if output is not None:
            fields["output"] = data["output"] = output
        if error is not None:
            fields["error"] = data["error"] = error
        if usage is not None:
            fields["usage"] = data["usage"] = {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "total_tokens": usage.total_tokens,
            }
        if steps is not None:
            fields["steps"] = steps
        if reason is not None:
            data["reason"] = reason
            fields.setdefault("error", {"code": "cancelled", "message": reason})
        terminal = {
            RunStatus.SUCCEEDED: EventType.RUN_SUCCEEDED,
            RunStatus.FAILED: EventType.RUN_FAILED,
            RunStatus.CANCELLED: EventType.RUN_CANCELLED,
        }[status]
        with self.store.transaction():
            done = self.store.update_run(
                org_id, run_id, expect_status=[RunStatus.QUEUED, RunStatus.RUNNING], **fields
            )
            if done is None:
                return  # somebody else already finished it (a cancel of a queued run)
            event = self.store.append_event(org_id, run_id, terminal, data)
        self.bus.publish(event)
