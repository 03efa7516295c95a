"""Live fan-out of run events inside one process.

The store is the source of truth; the bus only spares live readers a store read per event. Each
subscriber gets a bounded buffer of ``AGENT_SDK_STREAM_QUEUE_SIZE`` events: when a slow reader lets
it fill, further events are dropped *for that reader* and it is marked lagged, so it re-reads what
it missed from the store. Memory stays bounded and no reader ever loses an event.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict

from agent_sdk.records import Event


class Subscription:
    def __init__(self, run_id: str, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self.run_id = run_id
        self.loop = loop
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=size)
        self.lagged = False

    def _offer(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True

    def drain(self) -> None:
        """Forget buffered events (the reader is about to re-read from the store)."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.lagged = False


class EventBus:
    def __init__(self, queue_size: int) -> None:
        self._size = queue_size
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._lock = threading.Lock()

    def subscribe(self, run_id: str) -> Subscription:
        """Call on the event loop that will read the subscription."""
        sub = Subscription(run_id, asyncio.get_running_loop(), self._size)
        with self._lock:
            self._subs[run_id].add(sub)
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

    def subscriber_count(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._subs.values())
