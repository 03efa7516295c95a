"""Finding the runs a dead process left behind (``AGENT_SDK_RUN_RECOVERY_ENABLED``).

Two things can be left behind:

* a run accepted (committed to the store) whose job never reached the queue, because the
  server died between the two: in queue mode every ``queued`` run gets its job again. The job
  id is the run id, so a job still in the queue is kept as it is: nothing runs twice. A queue
  without unique job ids (SQS, Kafka) gets a job only for runs queued for three leases, which
  are then touched, so a deep backlog is not duplicated on every sweep.
  Inline, there is no job: a ``queued`` run is one whose process died before it could start
  it, so this process's executor starts it (at start every one; in a sweep those queued for
  three leases, so the runs a live server is about to start or waiting to retry stay its own).
* a run left ``running`` by a process that died: its heartbeat (``updated_at``, touched every
  third of ``AGENT_SDK_WORKER_LEASE``) stops. In queue mode, once it is older than three leases
  (the job's own lease hands it on sooner), its job is (re)enqueued and a worker takes it over.
  Inline, once it is older than one lease (three missed beats, the same bound an attempt uses
  before it takes a run over), this process's executor takes it over. Either way the new
  attempt resumes from the run's journal.

Inline, a restarted server cannot tell which fresh heartbeats were its dead predecessor's and
which belong to another live server on the same store, so it waits for them to go stale: the
server sweeps once a lease (plus a beat) after it starts, which finds every run of a process
that died just before, and every three leases after that (:func:`sweep`). A run this process
executes already is never handed to it twice, and a run another live server executes keeps
its fresh heartbeat and is left alone. If two servers do start the same run, the attempt
counter fences them: one attempt wins, the other ends without writing.

Nothing is ever left ``running`` forever, and nothing accepted is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from agent_sdk.errors import AgentSDKError
from agent_sdk.records import Run, RunStatus
from agent_sdk.times import iso

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agent_sdk.core.runtime import Runtime
    from agent_sdk.queue.base import Queue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recovered:
    requeued: int  # queued runs given their job again (queue mode) or started here (inline)
    orphans: int  # running runs of dead processes, handed on


def _runs(runtime: Runtime, status: RunStatus) -> Iterator[Run]:
    orgs_cursor: str | None = None
    while True:
        orgs = runtime.orgs.list(limit=200, cursor=orgs_cursor)
        for org in orgs.items:
            if not runtime.residency.serves(org.id):
                continue  # AGENT_SDK_DATA_REGION: another region recovers its own orgs
            cursor: str | None = None
            while True:
                page = runtime.store.list_runs(org.id, status=[status], limit=500, cursor=cursor)
                yield from page.items
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
        if orgs.next_cursor is None:
            return
        orgs_cursor = orgs.next_cursor


def _cutoff(now: datetime, seconds: float) -> str:
    """The ``updated_at`` text of ``seconds`` before ``now``, comparable with the store's."""
    return iso(now - timedelta(seconds=seconds))


def recover(
    runtime: Runtime,
    queue: Queue | None = None,
    *,
    at_start: bool = False,
    now: datetime | None = None,
) -> Recovered:
    """Hand on what dead processes left: to ``queue`` (queue mode) or, without one, to this
    process's executor (inline). ``at_start``: this process has just started, so every queued
    run is waiting for a process that is gone (inline)."""
    from agent_sdk.core.jobs import enqueue_run

    lease = runtime.settings.worker.lease
    now = now or datetime.now(UTC)
    cutoff = _cutoff(now, 3 * lease)
    requeued = orphans = 0
    if queue is not None:
        for run in _runs(runtime, RunStatus.QUEUED):
            if not queue.unique_ids:
                # Enqueueing again would add a second job, not keep one: only a run queued
                # three leases ago and still waiting is given another, and it is touched so
                # the next sweep waits three leases more. A duplicate costs a delivery, never
                # a second execution (see agent_sdk.core.attempt).
                if run.updated_at >= cutoff:
                    continue
                runtime.store.update_run(run.org_id, run.id, expect_status=[RunStatus.QUEUED])
            enqueue_run(queue, run.org_id, run.id)
            requeued += 1
        for run in _runs(runtime, RunStatus.RUNNING):
            if run.updated_at >= cutoff:
                continue  # alive: its process touched it recently
            orphans += 1
            log.warning("run %s was left running by a dead process; re-enqueueing it", run.id)
            enqueue_run(queue, run.org_id, run.id)
        return Recovered(requeued, orphans)

    executor = runtime.executor
    for run in _runs(runtime, RunStatus.QUEUED):
        if executor.holds(run.id) or (not at_start and run.updated_at >= cutoff):
            continue
        executor.submit(run.org_id, run.id)
        requeued += 1
    stale = _cutoff(now, lease)
    for run in _runs(runtime, RunStatus.RUNNING):
        if executor.holds(run.id) or run.updated_at >= stale:
            continue  # ours, or alive: its process touched it within the lease
        orphans += 1
        log.warning("run %s was left running by a dead process; taking it over", run.id)
        executor.submit(run.org_id, run.id, takeover=True)
    return Recovered(requeued, orphans)


async def sweep(runtime: Runtime, queue: Queue | None, *, first: float, every: float) -> None:
    """Recover ``first`` seconds from now, then every ``every`` seconds, until cancelled. A
    failed sweep (the store is down) is logged and the next one tries again."""
    delay = first
    while True:
        await asyncio.sleep(delay)
        delay = every
        try:
            found = await asyncio.to_thread(recover, runtime, queue)
        except AgentSDKError as exc:
            log.warning("recovery sweep failed: %s", exc.message)
            continue
        report(found, "recovery sweep")


def report(found: Recovered, what: str) -> None:
    """One log line for what a recovery found, if it found anything."""
    if found.requeued or found.orphans:
        log.warning("%s: %d queued run(s) handed on, %d orphaned run(s) taken over",
                    what, found.requeued, found.orphans)  # fmt: skip
