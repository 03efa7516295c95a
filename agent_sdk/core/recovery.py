"""Finding the runs a dead process left behind (``AGENT_SDK_RUN_RECOVERY_ENABLED``).

Two things can be left behind:

* a run accepted (committed to the store) whose job never reached the queue, because the
  server died between the two: in queue mode every ``queued`` run gets its job again. The job
  id is the run id, so a job still in the queue is kept as it is: nothing runs twice. A queue
  without unique job ids (SQS, Kafka) gets a job only for runs queued for three leases, which
  are then touched, so a deep backlog is not duplicated on every sweep.
* a run left ``running`` by a process that died: its heartbeat (``updated_at``, touched every
  third of ``AGENT_SDK_WORKER_LEASE``) stops. Once it is older than three leases the run is an
  orphan. In queue mode its job is (re)enqueued and a worker takes it over; inline, the run is
  handed to this process's executor, which takes it over. Either way the new attempt resumes
  from the run's journal.

Nothing is ever left ``running`` forever, and nothing accepted is dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from agent_sdk.records import Run, RunStatus

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agent_sdk.core.runtime import Runtime
    from agent_sdk.queue.base import Queue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recovered:
    requeued: int  # queued runs given their job again (queue mode)
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


def recover(runtime: Runtime, queue: Queue | None = None) -> Recovered:
    from agent_sdk.core.worker import enqueue_run

    stale_before = datetime.now(UTC) - timedelta(seconds=3 * runtime.settings.worker_lease)
    cutoff = stale_before.isoformat(timespec="microseconds")[:-6] + "Z"
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
        log.warning("run %s was left running by a dead process; taking it over", run.id)
        if queue is not None:
            enqueue_run(queue, run.org_id, run.id)
        else:
            runtime.executor.submit(run.org_id, run.id, takeover=True)
    return Recovered(requeued, orphans)
