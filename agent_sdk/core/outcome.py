"""How an attempt ended, and why its task was stopped: what the attempt
(:mod:`agent_sdk.core.attempt`) tells whoever drives it, the inline executor or a worker."""

from __future__ import annotations

from dataclasses import dataclass

# Why an attempt's task was cancelled, when it was not a user's cancel (asyncio passes the
# message of Task.cancel(msg) on to the CancelledError).
STOPPING = "worker stopping"  # the process shuts down: give the run back to the queue
LEASE_LOST = "lease lost"  # another worker holds the job now: stop without writing anything
DELETED = "run deleted"  # the run was erased (core/deletion.py): stop, there is nothing to write


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, for whoever drives attempts (the inline executor or a worker)."""

    # "done" (a terminal state was recorded), "dead" (retries ran out), "retry", "skipped"
    # (nothing to do: finished or cancelled already), "lost" (another worker has the job or
    # took the run over), "busy" (another attempt is alive: try again after ``delay``) or
    # "elsewhere" (the run's org is kept in another region: give the job back untouched)
    kind: str
    delay: float = 0.0
    error: str | None = None


DONE = Outcome("done")
SKIPPED = Outcome("skipped")
