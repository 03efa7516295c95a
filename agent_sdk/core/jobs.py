"""The queue job of a run: what a web process or recovery enqueues and a worker leases.

On its own so that whoever enqueues (run creation, recovery) does not depend on the worker that
executes the job."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent_sdk.queue.base import Queue

RUN_JOB = "run"


def enqueue_run(queue: Queue, org_id: str, run_id: str, *, delay: float = 0.0) -> None:
    """The job of a run. Its id is the run id, so enqueueing twice keeps one job."""
    queue.enqueue(RUN_JOB, {"org_id": org_id, "run_id": run_id}, delay=delay, job_id=run_id)
