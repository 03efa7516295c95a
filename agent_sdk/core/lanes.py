"""Lanes: a few threads, each running an event loop of its own, on which a worker's attempts run.

An attempt calls the store from its coroutine synchronously. Each call is short, but a commit
on Postgres waits until the server has flushed its log to disk, and while it waits the loop it
blocks waits too: on one loop, every attempt's commits queue behind every other's. Spread over a
few loops in threads, those waits overlap (the thread waiting on the socket lets go of the GIL,
and the server flushes concurrent commits together), and the worker's own loop stays free to
lease the next jobs. A store that admits one writer at a time (SQLite) gains nothing from this,
so a worker on one runs its attempts on its own loop, as before (see core/worker.py).

:meth:`Lanes.start` returns a :class:`Remote`, which the worker's loop awaits and cancels like
a task of its own: a cancel carries its message (``STOPPING``, ``LEASE_LOST``) across, since the
attempt tells by it why it was stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# How long close() waits for a lane to cancel what is left on it and stop.
_CLOSE_TIMEOUT = 10.0


class Remote(Generic[T]):
    """A coroutine running on a lane, as the loop that started it sees it."""

    def __init__(self, lane: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> None:
        self._home = asyncio.get_running_loop()
        self._lane = lane
        self._task: asyncio.Task[T] | None = None
        self._result: asyncio.Future[T] = self._home.create_future()
        # Awaiting the result and being cancelled cancels it: stop the coroutine too, as
        # cancelling a task that awaits another task cancels that one.
        self._result.add_done_callback(lambda f: self.cancel() if f.cancelled() else None)
        lane.call_soon_threadsafe(self._begin, coro)

    def _begin(self, coro: Coroutine[Any, Any, T]) -> None:  # on the lane
        self._task = self._lane.create_task(coro)
        self._task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[T]) -> None:  # on the lane
        with contextlib.suppress(RuntimeError):  # the home loop closed meanwhile
            self._home.call_soon_threadsafe(self._settle, task)

    def _settle(self, task: asyncio.Task[T]) -> None:  # on the home loop
        if self._result.done():
            return
        if task.cancelled():
            self._result.cancel()
        elif (exc := task.exception()) is not None:
            self._result.set_exception(exc)
        else:
            self._result.set_result(task.result())

    def cancel(self, msg: Any | None = None) -> bool:
        """Cancel the coroutine with ``msg``. Queued behind its start, so never too early."""
        with contextlib.suppress(RuntimeError):  # the lane closed: nothing runs there
            self._lane.call_soon_threadsafe(self._cancel, msg)
        return True

    def _cancel(self, msg: Any | None) -> None:  # on the lane
        if self._task is not None:
            self._task.cancel(msg)

    def cancelled(self) -> bool:
        return self._result.cancelled()

    def done(self) -> bool:
        return self._result.done()

    def add_done_callback(self, fn: Callable[[asyncio.Future[T]], object]) -> None:
        self._result.add_done_callback(fn)

    def __await__(self) -> Generator[Any, None, T]:
        return self._result.__await__()


class Lanes:
    """``count`` threads with an event loop each; start() puts a coroutine on the least busy."""

    def __init__(self, count: int, name: str = "agent-sdk-lane") -> None:
        self._loops: list[asyncio.AbstractEventLoop] = []
        self._threads: list[threading.Thread] = []
        self._busy: list[int] = []  # coroutines running on each lane (read on the home loop)
        for i in range(count):
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name=f"{name}-{i}", daemon=True)
            thread.start()
            self._loops.append(loop)
            self._threads.append(thread)
            self._busy.append(0)

    def start(self, make: Callable[[], Coroutine[Any, Any, T]]) -> Remote[T]:
        """Run ``make()`` on a lane; call on the home loop."""
        i = min(range(len(self._loops)), key=self._busy.__getitem__)
        self._busy[i] += 1
        remote = Remote(self._loops[i], make())

        def done(_: object) -> None:
            self._busy[i] -= 1

        remote.add_done_callback(done)
        return remote

    def close(self) -> None:
        """Cancel whatever still runs on the lanes, then stop their loops and threads."""
        for loop, thread in zip(self._loops, self._threads, strict=True):
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result(_CLOSE_TIMEOUT)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_CLOSE_TIMEOUT)
            if not thread.is_alive():
                loop.close()
        self._loops, self._threads, self._busy = [], [], []


async def _cancel_all() -> None:
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not current]
    for task in left:
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)
