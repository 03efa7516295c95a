"""Live fan-out of run events inside one process, and wake-ups from other processes.

The store is the source of truth; the bus only spares live readers a store read per event. Each
subscriber gets a bounded buffer of ``AGENT_SDK_STREAM_QUEUE_SIZE`` events: when a slow reader lets
it fill, further events are dropped *for that reader* and it is marked lagged, so it re-reads what
it missed from the store. Memory stays bounded and no reader ever loses an event.

Events written by another process (a worker executing the run) never pass through this bus. A
store that can push them (Postgres, with LISTEN/NOTIFY) offers ``listen_events(sink)``; the bus
starts that listener when its first subscriber appears and is then told which run has a new
``seq`` (:meth:`EventBus.wake`). A wake-up carries no event, only "read the store now", so readers
always read with their own org. :attr:`EventBus.pushed` says whether such a listener is up; while
it is not (SQLite, which has no way to notify another process, or a Postgres outage), readers
re-read the store on a short timer instead.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Protocol

from agent_sdk.records import Event

log = logging.getLogger(__name__)


class Listening(Protocol):
    """What a store's ``listen_events(sink)`` returns: a running listener, stopped by close()."""

    def close(self) -> None: ...


# A store's ``listen_events``: starts a listener delivering to the bus, or returns None when the
# store was opened without it.
ListenFn = Callable[["EventBus"], Listening | None]


class Subscription:
    """One reader's buffer. ``None`` in the queue is a wake-up: "the store has more"."""

    def __init__(self, run_id: str, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self.run_id = run_id
        self.loop = loop
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=size)
        self.lagged = False
        # The highest seq offered through the bus: a wake-up for it or an earlier one is
        # redundant (it is this process's own write, heard back from the database).
        self.offered = 0

    def _offer(self, event: Event) -> None:
        self.offered = max(self.offered, event.seq)
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True

    def _wake(self, seq: int) -> None:
        if 0 < seq <= self.offered:
            return
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:
            self.lagged = True  # the reader goes back to the store either way

    def drain(self) -> None:
        """Forget buffered events (the reader is about to re-read from the store)."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.lagged = False


class EventBus:
    def __init__(self, queue_size: int, *, listen: ListenFn | None = None) -> None:
        self._size = queue_size
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._lock = threading.Lock()
        self._listen = listen
        self._listener: Listening | None = None
        self._closed = False
        self._pushed = False

    @property
    def pushed(self) -> bool:
        """Whether other processes' events are announced to this bus right now. While False a
        reader must poll the store to see them."""
        return self._pushed

    @property
    def listener(self) -> Listening | None:
        """The store's listener, once the first subscriber has started it."""
        return self._listener

    def subscribe(self, run_id: str) -> Subscription:
        """Call on the event loop that will read the subscription."""
        sub = Subscription(run_id, asyncio.get_running_loop(), self._size)
        with self._lock:
            self._subs[run_id].add(sub)
            start = self._listen is not None and self._listener is None and not self._closed
            if start:
                listen, self._listen = self._listen, None  # one attempt per bus
        if start and listen is not None:
            # Outside the lock: the listener reports "up" to this bus from its own thread.
            listener = listen(self)
            with self._lock:
                self._listener = listener
                late = self._closed
            if late and listener is not None:
                listener.close()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.run_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.run_id]

    def publish(self, event: Event) -> None:
        """Deliver to every live subscriber of the run; safe from any thread."""
        with self._lock:
            subs = tuple(self._subs.get(event.run_id, ()))
        if not subs:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for sub in subs:
            if sub.loop is running:
                sub._offer(event)
            elif not sub.loop.is_closed():
                sub.loop.call_soon_threadsafe(sub._offer, event)

    def wake(self, run_id: str | None, seq: int) -> None:
        """Another process appended event ``seq`` to ``run_id`` (None: to some run): its
        subscribers here read the store. Safe from any thread."""
        with self._lock:
            if run_id is None:
                subs = tuple(s for group in self._subs.values() for s in group)
            else:
                subs = tuple(self._subs.get(run_id, ()))
        for sub in subs:
            if not sub.loop.is_closed():
                try:
                    sub.loop.call_soon_threadsafe(sub._wake, seq)
                except RuntimeError:  # the loop closed since the check
                    continue

    def listening(self, up: bool) -> None:
        """The listener's state changed: every reader re-reads the store now (after an outage
        the notifications it missed are lost) and picks its next wait from :attr:`pushed`."""
        self._pushed = up and not self._closed
        self.wake(None, 0)

    def close(self) -> None:
        """Stop the listener, if one was started. Readers fall back to polling."""
        with self._lock:
            self._closed = True
            listener, self._listener = self._listener, None
        self._pushed = False
        if listener is not None:
            listener.close()

    def subscriber_count(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._subs.values())
