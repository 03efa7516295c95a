"""One heartbeat and one cancel watcher for every attempt a process runs on an event loop.

An attempt must touch its run while it runs (so recovery tells a live run from an orphan),
stop once another attempt has taken the run over (LEASE_LOST) or the run was erased (DELETED),
and stop when a user asks for a cancel in another process, within ``CANCEL_WATCH`` seconds.
Rather than two background tasks per attempt, each event loop gets one timer while it has
attempts in flight: every ``CANCEL_WATCH`` seconds it asks the store about all of them in one
query, and every third of ``AGENT_SDK_WORKER_LEASE`` that query also touches them, fenced by
each attempt's number (:meth:`Store.watch_runs`). A run that ends in a millisecond then costs
no store call here at all and no task of its own; the timer stops when the loop has no attempt
left to watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from agent_sdk.core.outcome import DELETED, LEASE_LOST
from agent_sdk.errors import AgentSDKError, BackendUnavailable

if TYPE_CHECKING:
    from agent_sdk.store.base import Store

log = logging.getLogger(__name__)

# Seconds between looks at the store for a cancel requested by another process.
CANCEL_WATCH = 1.0

# (org_id, run_id, attempt) of an attempt in flight.
Key = tuple[str, str, int]


class Watch:
    """The attempts in flight on each event loop, and the one timer per loop that watches them."""

    def __init__(self, store: Store, lease: float) -> None:
        self.store = store
        self.beat_every = lease / 3
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopWatch] = (
            weakref.WeakKeyDictionary()
        )

    @contextlib.contextmanager
    def attempt(self, key: Key, drive: asyncio.Future[Any]) -> Iterator[None]:
        """Watch the attempt ``key`` while in the block: ``drive`` (the task running it) is
        cancelled with LEASE_LOST, DELETED or a plain cancel (a user's) when that happens."""
        loop = asyncio.get_running_loop()
        watch = self._loops.get(loop)
        if watch is None:
            watch = self._loops[loop] = _LoopWatch(self, loop)
        watch.add(drive, key)
        try:
            yield
        finally:
            watch.remove(drive)


class _LoopWatch:
    """A timer callback, not a task: nothing to create for an attempt that ends before it
    fires, nothing left pending when the loop closes. It runs while there are attempts."""

    def __init__(self, owner: Watch, loop: asyncio.AbstractEventLoop) -> None:
        self.owner = owner
        # Weakly: the watches are kept per loop in a WeakKeyDictionary, which a strong
        # reference from its own value would keep alive as long as the Watch.
        self.loop: asyncio.AbstractEventLoop = weakref.proxy(loop)
        self.attempts: dict[asyncio.Future[Any], Key] = {}
        self.timer: asyncio.TimerHandle | None = None
        self.next_look = self.next_beat = 0.0

    def add(self, drive: asyncio.Future[Any], key: Key) -> None:
        self.attempts[drive] = key
        if self.timer is None:  # the first attempt in flight: start looking
            now = self.loop.time()
            self.next_look, self.next_beat = now + CANCEL_WATCH, now + self.owner.beat_every
            self._schedule()

    def remove(self, drive: asyncio.Future[Any]) -> None:
        self.attempts.pop(drive, None)
        if not self.attempts and self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _schedule(self) -> None:
        # Both deadlines hold: a cancel is seen within CANCEL_WATCH, and every attempt is
        # touched within a third of a lease of its start or its last touch.
        due = min(self.next_look, self.next_beat)
        self.timer = self.loop.call_at(due, self._tick)

    def _tick(self) -> None:
        self.timer = None
        try:
            now = self.loop.time()
            beat = now >= self.next_beat
            self.next_look = now + CANCEL_WATCH
            if beat:
                self.next_beat = now + self.owner.beat_every
            self._look(beat)
        finally:
            if self.attempts and self.timer is None:
                self._schedule()

    def _look(self, beat: bool) -> None:
        watched = [(drive, key) for drive, key in self.attempts.items() if not drive.done()]
        if not watched:
            return
        try:
            found = self.owner.store.watch_runs([key for _, key in watched], touch=beat)
        except BackendUnavailable as exc:
            # An outage: the process reports it once (a worker's store health), not every run
            # on every tick; the attempts go on and the next tick looks again.
            log.debug("watching %d attempts failed: %s", len(watched), exc.message)
            return
        except AgentSDKError as exc:
            log.warning("watching %d attempts failed: %s", len(watched), exc.message)
            return
        for drive, (org_id, run_id, attempt) in watched:
            state = found.get((org_id, run_id))
            if state is not None and state[0] == attempt and not state[1]:
                continue  # still this attempt's, and nobody asked to cancel it
            del self.attempts[drive]  # stopped once: its cleanup must not be cancelled again
            if state is None:
                log.info("run %s was deleted; stopping this attempt", run_id)
                drive.cancel(DELETED)
            elif state[0] != attempt:
                log.warning("run %s was taken over; stopping this attempt", run_id)
                drive.cancel(LEASE_LOST)
            elif state[1]:
                drive.cancel()  # a user's cancel, made in another process
