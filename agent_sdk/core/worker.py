"""A worker: leases runs from the queue and executes them, many at once, on one event loop.

Agent runs spend nearly all their time waiting on model APIs, so a worker process overlaps up
to ``AGENT_SDK_MAX_CONCURRENT_RUNS`` of them on one asyncio loop: while one run waits, the
loop drives the others. A thread per run would cost a stack and a context switch each; a
process per run would cost far more. ``agent-sdk worker --count N`` starts N such processes
for what one core cannot do (Python runs one thread of Python code at a time per process).

Per leased job:

1. a heartbeat extends the lease every third of ``AGENT_SDK_WORKER_LEASE`` while the run
   executes; if the lease is lost anyway (the worker stalled past it and another took the
   job), the heartbeat stops this attempt;
2. the attempt runs (:mod:`agent_sdk.core.attempt`): a run left ``running`` by a dead worker
   is taken over and resumed from its journal;
3. the job is acknowledged when the run reached a terminal state, given back with the retry
   delay when the attempt asked for a retry, and dead-lettered when retries ran out.

Delivery is at-least-once: a worker killed between recording a result and acknowledging the
job leaves the job to be leased again, and that attempt finds the run finished (or resumes it
from the journal), so recorded effects happen once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import TYPE_CHECKING

from agent_sdk.core.attempt import LEASE_LOST, STOPPING, Outcome
from agent_sdk.core.residency import handback_delay
from agent_sdk.errors import AgentSDKError, Conflict

if TYPE_CHECKING:
    from agent_sdk.core.runtime import Runtime
    from agent_sdk.queue.base import Lease, Queue

log = logging.getLogger(__name__)

RUN_JOB = "run"


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    def __init__(
        self, runtime: Runtime, queue: Queue, *, name: str | None = None, poll: float = 1.0
    ) -> None:
        self.runtime = runtime
        self.queue = queue
        self.name = name or worker_name()
        self.poll = poll
        self.lease_seconds = runtime.settings.worker_lease
        self._tasks: set[asyncio.Task[None]] = set()
        self._attempts: set[asyncio.Task[Outcome]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Lease and execute runs until ``stop`` is set, then give back what is unfinished."""
        await asyncio.to_thread(self._register)
        background = [asyncio.create_task(self._beat_alive()), asyncio.create_task(self._sweep())]
        from agent_sdk.core.retention_sweep import start_sweeper

        if (retention := start_sweeper(self.runtime)) is not None:  # 0 s interval: none
            background.append(retention)
        from agent_sdk.core.audit_seal import start_sealer

        if (sealer := start_sealer(self.runtime)) is not None:  # signs idle audit logs
            background.append(sealer)
        try:
            await self._work(stop)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await asyncio.to_thread(self._unregister)

    async def _work(self, stop: asyncio.Event) -> None:
        slots = asyncio.Semaphore(self.runtime.settings.max_concurrent_runs)
        while not stop.is_set():
            await slots.acquire()
            lease = await asyncio.to_thread(
                self.queue.reserve, self.name, lease=self.lease_seconds, timeout=self.poll
            )
            if lease is None:
                slots.release()
                continue
            task = asyncio.create_task(self._handle(lease))
            self._tasks.add(task)

            def done(t: asyncio.Task[None]) -> None:
                self._tasks.discard(t)
                slots.release()

            task.add_done_callback(done)
        # Stop the attempts, not their handlers: each attempt gives its run back and its
        # handler then returns the job to the queue for another worker.
        for attempt in list(self._attempts):
            attempt.cancel(STOPPING)
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- liveness (``agent-sdk status``, /ready) ---------------------------------------------
    def _register(self) -> None:
        from agent_sdk.store._ids import utcnow
        from agent_sdk.store.workers import WorkerInfo

        now = utcnow()
        host, _, pid = self.name.rpartition(":")
        info = WorkerInfo(
            name=self.name,
            host=host if pid.isdigit() else socket.gethostname(),
            pid=int(pid) if pid.isdigit() else os.getpid(),
            started_at=now,
            heartbeat_at=now,
        )
        try:
            self.runtime.store.register_worker(info)
        except AgentSDKError as exc:  # liveness is for operators: it never stops the work
            log.warning("could not register worker %s: %s", self.name, exc.message)

    def _unregister(self) -> None:
        try:
            self.runtime.store.remove_worker(self.name)
        except AgentSDKError as exc:
            log.warning("could not unregister worker %s: %s", self.name, exc.message)

    async def _beat_alive(self) -> None:
        from agent_sdk.store._ids import utcnow

        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                known = await asyncio.to_thread(
                    self.runtime.store.heartbeat_worker, self.name, utcnow(), len(self._tasks)
                )
                if not known:  # removed by someone (a cleanup): put the row back
                    await asyncio.to_thread(self._register)
            except AgentSDKError as exc:
                log.warning("liveness heartbeat of worker %s failed: %s", self.name, exc.message)

    async def _sweep(self) -> None:
        """The outbox sweeper: every three leases, give queued runs without a job their job and
        take over runs whose process died. Recovery at start covers a restart; this covers a
        server that died and is not coming back while workers go on. Enqueueing is idempotent
        (the job id is the run id), so several workers sweeping at once do no harm."""
        from agent_sdk.core.recovery import recover

        if not self.runtime.settings.run_recovery_enabled:
            return
        while True:
            await asyncio.sleep(3 * self.lease_seconds)
            try:
                await asyncio.to_thread(recover, self.runtime, self.queue)
            except AgentSDKError as exc:
                log.warning("recovery sweep failed: %s", exc.message)

    async def _handle(self, lease: Lease) -> None:
        payload = lease.job.payload
        org_id, run_id = str(payload["org_id"]), str(payload["run_id"])
        attempt = asyncio.create_task(
            self.runtime.executor.attempts.run(org_id, run_id, takeover=True)
        )
        self._attempts.add(attempt)
        beat = asyncio.create_task(self._heartbeat(lease, attempt))
        try:
            outcome = await attempt
        finally:
            beat.cancel()
            self._attempts.discard(attempt)
        await asyncio.to_thread(self._settle, lease, outcome)

    async def _heartbeat(self, lease: Lease, attempt: asyncio.Task[Outcome]) -> None:
        current = lease
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                current = await asyncio.to_thread(self.queue.extend, current, self.lease_seconds)
            except Conflict:
                # Another worker has the job now: stop here so only one attempt continues.
                log.warning("lost the lease of job %s; stopping this attempt", lease.job.id)
                attempt.cancel(LEASE_LOST)
                return
            except AgentSDKError as exc:
                log.warning("heartbeat of job %s failed: %s", lease.job.id, exc.message)

    def _settle(self, lease: Lease, outcome: Outcome) -> None:
        try:
            if outcome.kind == "elsewhere":
                # Residency: not this worker's region. Back to the queue for a worker of the
                # org's region, later each time, so it is never lost nor leased in a loop.
                delay = handback_delay(lease.job.attempts)
                log.warning("worker %s gave back job %s (%s); ready again in %.1fs",
                            self.name, lease.job.id, outcome.error, delay)  # fmt: skip
                self.queue.retry(lease, delay, outcome.error or "another region")
            elif outcome.kind in ("retry", "busy"):
                # busy: another attempt is alive (a duplicate job, or a lease that expired
                # under a stalled worker); look again once its heartbeat would be stale.
                self.queue.retry(lease, outcome.delay, outcome.error or "retry")
            elif outcome.kind == "dead":
                self.queue.dead(lease, outcome.error or "retries exhausted")
            elif outcome.kind != "lost":  # a lost lease is the new holder's to settle
                self.queue.ack(lease)
        except Conflict:
            pass  # the lease moved on: the next holder settles the job


def enqueue_run(queue: Queue, org_id: str, run_id: str, *, delay: float = 0.0) -> None:
    """The job of a run. Its id is the run id, so enqueueing twice keeps one job."""
    queue.enqueue(RUN_JOB, {"org_id": org_id, "run_id": run_id}, delay=delay, job_id=run_id)


async def serve_worker(runtime: Runtime, queue: Queue, stop: asyncio.Event) -> None:
    """One worker on the current loop: recover what a dead process left, then work."""
    from agent_sdk.core.recovery import recover

    runtime.attach(asyncio.get_running_loop())
    if runtime.settings.run_recovery_enabled:
        await asyncio.to_thread(recover, runtime, queue)
    with contextlib.suppress(asyncio.CancelledError):
        await Worker(runtime, queue).run(stop)
