"""Where a server writes the runs it creates, grouped: several creations per transaction.

A ``POST /v1/runs`` checks and builds its run on the server's loop (RunService.prepare: reads
only), then hands it to the lane and awaits its result. Whatever creations are waiting when the
lane gets to them are written in one transaction (RunService.admit: group commit), so under
load many requests share one write lock and one commit; each request answers only after its own
run has committed, so an acknowledged run survives a crash.

Where the lane writes depends on what else the process does:

* Inline (runs execute in the server): on an engine thread with an event loop of its own, where
  the runs execute too (the server attaches the executor to it). Executing a run is most of
  the work, and none of it holds up the loop that serves HTTP; every write of the runs of this
  process comes from that one thread, so none waits on SQLite's lock for another of this
  process, and a busy run delays admissions by at most one of its steps.
* Queue mode (the server only admits): on the server's own loop, as a callback that runs once
  the requests ready on the loop have queued their creations. Measured on a loaded 2-core
  machine, the thread hop (two wake-ups and the GIL changing hands for every group) cost more
  CPU per request than the grouped commit it would take off the loop (bench/http_create.py).

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
    from agent_sdk.records import Run

log = logging.getLogger("agent_sdk.server")

# Creations written in one transaction at most: bounds how long one commit holds the lock.
MAX_BATCH = 64
# Creations waiting for the lane at most before new ones are refused (503).
MAX_PENDING = 2048


class AdmissionLane:
    """Writes on ``loop`` (the caller's running loop, which it does not own) or, without one,
    on a thread of its own running a new loop (``start`` it; ``aclose`` stops it)."""

    def __init__(
        self,
        runs: RunService,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        max_batch: int = MAX_BATCH,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self._runs = runs
        self._max_batch = max_batch
        self.max_pending = max_pending
        self.threaded = loop is None
        self.loop = loop if loop is not None else asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="agent-sdk-engine", daemon=True
        )
        self._lock = threading.Lock()
        self._pending: list[tuple[Admission, asyncio.Future[Admitted]]] = []
        self._scheduled = False  # a flush is due on the lane's loop
        self._closed = False

    def start(self) -> None:
        if self.threaded:
            self._thread.start()

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
        # Shielded: a request cancelled while waiting must not stop its creation half-way
        # (it commits or not as a whole, in the lane).
        result = await asyncio.shield(fut)
        if isinstance(result, BaseException):
            raise result
        return result

    def _flush(self) -> None:
        """On the lane's loop: write what is waiting, one batch, and settle its requests."""
        with self._lock:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            self._scheduled = bool(self._pending)
        if self._scheduled:
            # The rest after whatever else is ready on this loop (steps of inline runs).
            self.loop.call_soon(self._flush)
        if not batch:
            return
        results: list[Admitted]
        try:
            results = self._runs.admit([admission for admission, _ in batch])
        except Exception as exc:  # a bug, not a refusal: every request of the batch gets it
            log.exception("writing %d run creation(s) failed", len(batch))
            results = [_unexpected(exc) for _ in batch]
        # One wake-up of the server's loop for the whole batch, not one per request.
        settled: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Admitted], Admitted]]]
        settled = {}
        for (_, fut), result in zip(batch, results, strict=True):
            settled.setdefault(fut.get_loop(), []).append((fut, result))
        for loop, pairs in settled.items():
            # A request's loop may be gone (its client with it): nobody is left to answer.
            with contextlib.suppress(RuntimeError):
                _call_on(loop, _settle, pairs)

    def _flush_all(self) -> None:
        while self._pending:
            self._flush()

    async def aclose(self, timeout: float = 10.0) -> None:
        """Write what is waiting, then stop the lane's thread (if it has one). Call on the loop
        that serves the requests, after the executor has drained the inline runs."""
        with self._lock:
            self._closed = True
        if not self.threaded:
            self._flush_all()
            return
        if not self._thread.is_alive():
            self.loop.close()
            return
        self.loop.call_soon_threadsafe(self._flush_all)
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self._thread.join, timeout)
        if not self._thread.is_alive():
            self.loop.close()


def _call_on(loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: Any) -> None:
    """``callback(*args)`` soon on ``loop``: from another thread through its wake-up pipe, from
    its own thread without one."""
    try:
        here = asyncio.get_running_loop()
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
