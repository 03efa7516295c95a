"""A worker: leases runs from the queue and executes them, many at once, on event loops.

Agent runs spend nearly all their time waiting on model APIs, so a worker process overlaps up to
``AGENT_SDK_MAX_CONCURRENT_RUNS`` of them on asyncio loops: while one run waits, the loop drives
the others. On a store that takes many writers at once (Postgres) the attempts run on a few
loops in threads of their own (:mod:`agent_sdk.core.lanes`), since an attempt's store calls
block its loop while a commit waits for the disk; elsewhere on the worker's own loop. A thread
per run would cost a stack and a context switch each; a process per run would cost far more.
``agent-sdk worker --count N`` starts N such processes for what one core cannot do (Python runs
one thread of Python code at a time per process).

Per leased job:

1. a heartbeat extends the lease every third of ``AGENT_SDK_WORKER_LEASE`` while the run
   executes (one loop for all the jobs the worker holds); if the lease is lost anyway (the
   worker stalled past it and another took the job), the heartbeat stops this attempt;
2. the attempt runs (:mod:`agent_sdk.core.attempt`): a run left ``running`` by a dead worker
   is taken over and resumed from its journal;
3. the job is acknowledged when the run reached a terminal state, given back with the retry
   delay when the attempt asked for a retry, and dead-lettered when retries ran out.

Delivery is at-least-once: a worker killed between recording a result and acknowledging the
job leaves the job to be leased again, and that attempt finds the run finished (or resumes it
from the journal), so recorded effects happen once.

Outages: a queue that cannot be reached (a broker restart, a network blip, a full disk under the
SQLite queue) never ends the worker. Leasing backs off with jitter and resumes when the queue
answers (:mod:`agent_sdk.core.outage`, one log line when it goes and one when it is back); the
attempts already running go on, since they write to the store, not the queue; a job whose run
ended while the queue was down is settled once it is back. Only a user's cancel cancels a run:
whatever way the worker stops, it stops its attempts itself with ``STOPPING`` first, so they give
their runs back to the queue instead of reading the loop's teardown as a cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Generator
from typing import TYPE_CHECKING, Protocol

from agent_sdk.core.lanes import Lanes
from agent_sdk.core.outage import Outage
from agent_sdk.core.outcome import LEASE_LOST, STOPPING, Outcome
from agent_sdk.core.residency import handback_delay
from agent_sdk.errors import AgentSDKError, BackendUnavailable, Conflict

if TYPE_CHECKING:
    from agent_sdk.core.runtime import Runtime
    from agent_sdk.queue.base import Lease, Queue

log = logging.getLogger(__name__)

# A job handed back by a stopping worker before its attempt began: ready again at once.
_HANDED_BACK = Outcome("retry", error="the worker stopped")
# Lanes (threads with a loop each, see core/lanes.py) per worker process, by store scheme: where
# many connections write at once, attempts on a few loops overlap their commits' waits. None for
# a store of one writer at a time: its attempts run on the worker's own loop.
LANES = {"postgresql": 4}


class _Attempt(Protocol):
    """A running attempt: an asyncio task on the worker's loop, or a Remote on a lane."""

    def cancel(self, msg: object | None = None) -> bool: ...
    def cancelled(self) -> bool: ...
    def __await__(self) -> Generator[object, None, Outcome]: ...


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
        self.lease_seconds = runtime.settings.worker.lease
        self._tasks: set[asyncio.Task[None]] = set()
        self._attempts: set[_Attempt] = set()
        self._stop = asyncio.Event()  # replaced by run()'s
        self._stopping = False  # set once the worker hands back what it holds
        self._held: dict[str, tuple[Lease, _Attempt]] = {}  # job id -> lease
        self._lanes: Lanes | None = None
        self._renew = False  # a queue call failed: renew the held leases before leasing more
        self.queue_health = Outage(f"queue of worker {self.name}", log)
        self.store_health = Outage(f"store of worker {self.name}", log)

    async def run(self, stop: asyncio.Event) -> None:
        """Lease and execute runs until ``stop`` is set, then give back what is unfinished."""
        await asyncio.to_thread(self._register)
        lanes = LANES.get(self.runtime.store.scheme, 0)
        if lanes:
            self._lanes = Lanes(min(lanes, self.runtime.settings.execution.max_concurrent_runs))
        background = [
            asyncio.create_task(self._beat_alive()),
            asyncio.create_task(self._sweep()),
            asyncio.create_task(self._extend_leases()),
        ]
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
            if self._lanes is not None:
                await asyncio.to_thread(self._lanes.close)
            await asyncio.to_thread(self._unregister)

    async def _work(self, stop: asyncio.Event) -> None:
        self._stop = stop
        slots = asyncio.Semaphore(self.runtime.settings.execution.max_concurrent_runs)
        try:
            while await self._acquire(slots, stop):
                try:
                    if self._renew:
                        await self._renew_held()
                    lease = await self._reserve()
                except BackendUnavailable as exc:  # an outage: wait, then lease again
                    slots.release()
                    self._renew = True
                    await self._pause(self.queue_health.failed(exc.message))
                    continue
                self.queue_health.ok()
                if lease is None:
                    slots.release()
                    continue
                task = asyncio.create_task(self._handle(lease))
                self._tasks.add(task)

                def done(t: asyncio.Task[None]) -> None:
                    self._tasks.discard(t)
                    slots.release()

                task.add_done_callback(done)
        finally:
            # Whatever ends the loop (a stop, or a bug raising out of it), stop the attempts
            # here with STOPPING, not their handlers: each attempt gives its run back and its
            # handler returns the job to the queue. Left to asyncio.run's teardown they would
            # get a bare CancelledError, which an attempt reads as a user's cancel.
            self._stopping = True
            for attempt in list(self._attempts):
                attempt.cancel(STOPPING)
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _reserve(self) -> Lease | None:
        """The next job, waiting up to ``poll`` seconds for one. On a thread even for a local
        queue: while it waits for a job, or for the queue file's lock held by another worker,
        the loop runs attempts. (Leasing from a local queue's backlog on the loop was measured
        and dropped: it saved little end to end, and it leased the next jobs before the attempts
        just started had run a step, so a run that kills its worker took more runs with it.)"""
        return await asyncio.to_thread(
            self.queue.reserve, self.name, lease=self.lease_seconds, timeout=self.poll
        )

    async def _acquire(self, slots: asyncio.Semaphore, stop: asyncio.Event) -> bool:
        """A free slot, or False once ``stop`` is set (even while every slot is busy)."""
        if stop.is_set():
            return False
        if not slots.locked():
            await slots.acquire()  # free: returns at once, without waiting
            return True
        acquire = asyncio.ensure_future(slots.acquire())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({acquire, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if stop.is_set():
            if acquire.done() and not acquire.cancelled():
                slots.release()
            acquire.cancel()
            return False
        return True

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the worker is told to stop."""
        # asyncio.timeout, not wait_for, which on Python 3.11 can lose a concurrent cancel.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()

    # -- liveness (``agent-sdk status``, /ready) ---------------------------------------------
    @property
    def health(self) -> str:
        """What ``agent-sdk status`` shows beside this worker's liveness."""
        return "ok" if self.queue_health.healthy else "queue unreachable"

    def _register(self) -> None:
        from agent_sdk.ids import utcnow
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
        from agent_sdk.ids import utcnow

        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                known = await asyncio.to_thread(
                    self.runtime.store.heartbeat_worker,
                    self.name,
                    utcnow(),
                    len(self._tasks),
                    self.health,
                )
                self.store_health.ok()
                if not known:  # removed by someone (a cleanup): put the row back
                    await asyncio.to_thread(self._register)
            except AgentSDKError as exc:  # logged once per outage, not once per beat
                self.store_health.failed(exc.message)

    async def _sweep(self) -> None:
        """The outbox sweeper: every three leases, give queued runs without a job their job and
        take over runs whose process died. Recovery at start covers a restart; this covers a
        server that died and is not coming back while workers go on. Enqueueing is idempotent
        (the job id is the run id), so several workers sweeping at once do no harm."""
        from agent_sdk.core.recovery import sweep

        if not self.runtime.settings.execution.recovery_enabled:
            return
        every = 3 * self.lease_seconds
        await sweep(self.runtime, self.queue, first=every, every=every)

    async def _handle(self, lease: Lease) -> None:
        if self._stopping:  # leased just as the worker began to stop: straight back
            await self._settle_when_reachable(lease, _HANDED_BACK)
            return
        payload = lease.job.payload
        org_id, run_id = str(payload["org_id"]), str(payload["run_id"])
        attempts = self.runtime.executor.attempts
        attempt: _Attempt
        if self._lanes is not None:
            attempt = self._lanes.start(lambda: attempts.run(org_id, run_id, takeover=True))
        else:
            attempt = asyncio.create_task(attempts.run(org_id, run_id, takeover=True))
        self._attempts.add(attempt)
        self._held[lease.job.id] = (lease, attempt)  # its lease is extended (_extend_leases)
        try:
            outcome = await attempt
        except asyncio.CancelledError:
            # Stopped before its first step: the run was never touched, only the job goes back.
            if not (self._stopping and attempt.cancelled()):
                raise
            outcome = _HANDED_BACK
        finally:
            self._held.pop(lease.job.id, None)
            self._attempts.discard(attempt)
        await self._settle_when_reachable(lease, outcome)

    async def _settle_when_reachable(self, lease: Lease, outcome: Outcome) -> None:
        """Settle the job, waiting out a queue outage. Nobody else can lease the job while the
        queue is down, so once it is back our lease usually still holds; if it expired and
        another worker took the job, that attempt finds the run ended and acknowledges it. A
        worker that stops during an outage leaves the job to its lease's expiry the same way."""
        while True:
            try:
                # On a thread even for a SQLite queue: a queue file locked by another worker
                # would otherwise freeze every attempt on this loop for the busy timeout.
                await asyncio.to_thread(self._settle, lease, outcome)
            except BackendUnavailable as exc:
                wait = self.queue_health.failed(exc.message)
                if self._stopping:
                    log.warning("job %s left to its lease's expiry: %s", lease.job.id, exc.message)
                    return
                await self._pause(wait)
                continue
            self.queue_health.ok()
            return

    async def _extend_leases(self) -> None:
        """One loop for the leases of every job this worker runs, not a task per job: each is
        extended at most a third of a lease after it was taken or last extended."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            await asyncio.gather(*(self._extend_lease(job_id) for job_id in list(self._held)))

    async def _extend_lease(self, job_id: str) -> None:
        try:
            await self._extend(job_id)
        except BackendUnavailable as exc:
            # The queue is down: nobody else can lease the job either, so the attempt goes
            # on; the first beat after the outage extends the lease again.
            self.queue_health.failed(exc.message)
            self._renew = True
        except AgentSDKError as exc:
            log.warning("heartbeat of job %s failed: %s", job_id, exc.message)

    async def _extend(self, job_id: str) -> None:
        """Extend the lease of a running attempt; stop the attempt when another worker holds
        the job now. BackendUnavailable passes through."""
        held = self._held.get(job_id)
        if held is None:
            return
        lease, attempt = held
        try:
            lease = await asyncio.to_thread(self.queue.extend, lease, self.lease_seconds)
        except Conflict:
            # Another worker has the job now: stop here so only one attempt continues.
            log.warning("lost the lease of job %s; stopping this attempt", job_id)
            attempt.cancel(LEASE_LOST)
            self._held.pop(job_id, None)
            return
        if job_id in self._held:
            self._held[job_id] = (lease, attempt)
        self.queue_health.ok()

    async def _renew_held(self) -> None:
        """After an outage, extend every running attempt's lease before leasing anything new.
        The leases may have expired while the queue was down, and the queue hands an expired
        lease out again as a job: leasing first could give this worker its own running job a
        second time, and the running attempt would then lose its lease and stop."""
        for job_id in list(self._held):
            await self._extend(job_id)
        self._renew = False

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


async def serve_worker(runtime: Runtime, queue: Queue, stop: asyncio.Event) -> None:
    """One worker on the current loop: recover what a dead process left, then work."""
    from agent_sdk.core.recovery import recover

    runtime.attach(asyncio.get_running_loop())
    if runtime.settings.execution.recovery_enabled:
        try:
            await asyncio.to_thread(recover, runtime, queue)
        except BackendUnavailable as exc:  # the periodic sweep recovers once it is back
            log.warning("recovery at start failed, the sweep will retry: %s", exc.message)
    with contextlib.suppress(asyncio.CancelledError):
        await Worker(runtime, queue).run(stop)
