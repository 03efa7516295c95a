"""Where a server writes the runs it creates: grouped, several creations per transaction.

A ``POST /v1/runs`` checks and builds its run (RunService.prepare: reads only), then hands it to
the lane and awaits its result. The lane writes from a callback on the server's loop that runs
once the requests ready on the loop have queued their creations: whatever is waiting then is
written in one transaction (RunService.admit: group commit), so under load many requests share
one write lock and one commit instead of one each. Each request answers only after its own run
has committed, so an acknowledged run survives a crash; the group's runs are executed or
enqueued just after the answers (a run left undispatched stays queued for recovery).

Why on the loop and not on a writer thread: measured on the loaded 2-core machine, interleaved
with the code before, an engine thread writing the creations (and executing inline runs) cost
more CPU than it took off the loop: the GIL changes hands and a loop is woken through its pipe
for every group and every event a live stream follows. Create-and-wait took ~2.5 ms of server
CPU per run on the thread against ~1.9 ms before and ~1.8 ms with this lane on the loop.

A lane holds at most ``max_pending`` creations; past that a request is refused at once with
503 and Retry-After rather than queued without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agent_sdk.errors import BackendUnavailable, Overloaded

if TYPE_CHECKING:
    from agent_sdk.core.runs import Admission, Admitted, RunService
    from agent_sdk.records import Event, Run

log = logging.getLogger("agent_sdk.server")

# Creations written in one transaction at most: bounds how long one commit holds the lock.
MAX_BATCH = 64
# Creations waiting for the lane at most before new ones are refused (503).
MAX_PENDING = 2048


class AdmissionLane:
    """Writes on ``loop``, the server's. Requests may wait on it from other loops too (a test
    client runs each request on a loop of its own): they are woken on theirs."""

    def __init__(
        self,
        runs: RunService,
        loop: asyncio.AbstractEventLoop,
        *,
        max_batch: int = MAX_BATCH,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self._runs = runs
        self.loop = loop
        self._max_batch = max_batch
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._pending: list[tuple[Admission, asyncio.Future[Admitted]]] = []
        self._scheduled = False  # a flush is due on the loop
        self._closed = False

    async def admit(self, admission: Admission) -> tuple[Run, bool]:
        """Write ``admission`` (prepared by RunService.prepare, not a replay) and dispatch its
        run; returns once it has committed. Raises what refused it."""
        fut: asyncio.Future[Admitted] = asyncio.get_running_loop().create_future()
        with self._lock:
            if self._closed:
                raise BackendUnavailable("the server is shutting down", hint="retry shortly")
            if len(self._pending) >= self.max_pending:
                raise Overloaded(
                    f"{self.max_pending} run creations are waiting to be written",
                    hint="retry after a second",
                )
            self._pending.append((admission, fut))
            wake, self._scheduled = not self._scheduled, True
        if wake:
            _call_on(self.loop, self._flush)
        # A request cancelled while it waits cancels only this future: its creation is written
        # all the same (whole or not at all), with nobody to answer.
        result = await fut
        if isinstance(result, BaseException):
            raise result
        return result

    def _flush(self) -> None:
        """On the lane's loop: write what is waiting, one group, and settle its requests."""
        with self._lock:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            self._scheduled = bool(self._pending)
        if self._scheduled:
            self.loop.call_soon(self._flush)  # the rest after whatever else is ready
        if not batch:
            return
        results: list[Admitted]
        try:
            results, created = self._runs.write([admission for admission, _ in batch])
        except Exception as exc:  # a bug, not a refusal: every request of the group gets it
            log.exception("writing %d run creation(s) failed", len(batch))
            results, created = [_unexpected(exc) for _ in batch], []
        settled: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Admitted], Admitted]]]
        settled = {}
        for (_, fut), result in zip(batch, results, strict=True):
            settled.setdefault(fut.get_loop(), []).append((fut, result))
        for loop, pairs in settled.items():
            if loop is self.loop:
                _settle(pairs)  # now: the handlers resume before the announcement below
                continue
            # A request's loop may be gone (its client with it): nobody is left to answer.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, pairs)
        if created:
            # Executed or enqueued once the requests have been answered: the runs are committed
            # already, and one left undispatched stays queued for recovery (RunService._dispatch).
            self.loop.call_soon(self._announce, created)

    def _announce(self, created: list[tuple[Run, Event]]) -> None:
        try:
            self._runs.announce(created)
        except Exception:  # a bug: the runs stay queued, and recovery dispatches them
            log.exception("dispatching %d new run(s) failed", len(created))

    def close(self) -> None:
        """Write what is waiting and refuse what comes after. Call on the lane's loop."""
        with self._lock:
            self._closed = True
        while self._pending:
            self._flush()


def _call_on(loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: Any) -> None:
    """``callback(*args)`` soon on ``loop``: from its own thread directly, from another through
    its wake-up pipe."""
    try:
        here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    if here is loop:
        loop.call_soon(callback, *args)
    else:
        loop.call_soon_threadsafe(callback, *args)


def _unexpected(exc: Exception) -> BackendUnavailable:
    error = BackendUnavailable(f"the run could not be written: {type(exc).__name__}")
    error.__cause__ = exc
    return error


def _settle(pairs: list[tuple[asyncio.Future[Admitted], Admitted]]) -> None:
    for fut, result in pairs:
        if not fut.done():
            fut.set_result(result)
