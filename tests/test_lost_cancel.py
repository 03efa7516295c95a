"""A cancel that lands as the awaited thing arrives is not lost.

On Python 3.11, ``asyncio.wait_for`` swallows a cancel that arrives in the loop iteration in
which the awaited call finishes: it returns that call's result instead. A follower (an SSE stream
whose client went away, say) then kept following a run nobody reads, and a worker told to stop
while pausing through a queue outage ended as if nothing had cancelled it. These tests land the
cancel exactly there, every time: each waits until the task is parked on the thing it awaits,
then hands that thing over and cancels in one step, with no await in between."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
from faults._proxy import Proxy

from agent_sdk.config import Settings
from agent_sdk.core.events import Subscription
from agent_sdk.core.runtime import Runtime
from agent_sdk.core.worker import Worker
from agent_sdk.ids import new_id, utcnow
from agent_sdk.queue.redis import RedisQueue
from agent_sdk.records import Event, Run, RunStatus

ORG = "default"
PATIENCE = 20.0  # how long a cancelled follower may take to stop on a loaded machine


class ParkedQueue(asyncio.Queue[Event | None]):
    """The follower's buffer, telling the test when the follower is waiting on it."""

    def __init__(self, size: int) -> None:
        super().__init__(maxsize=size)
        self.parked = asyncio.Event()

    async def get(self) -> Event | None:
        if self.empty():
            self.parked.set()
        return await super().get()


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime(settings)
    yield runtime
    runtime.close(wait=True, timeout=10)


def test_a_cancel_landing_as_an_event_is_handed_over_stops_the_follower(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = utcnow()
    run_id = new_id("run")
    rt.store.insert_run(Run(run_id, ORG, "demo", RunStatus.RUNNING, "x", now, now))  # no end
    subscribed: list[Subscription] = []
    subscribe = rt.bus.subscribe

    def subscribe_parked(run: str) -> Subscription:
        sub = subscribe(run)
        sub.queue = ParkedQueue(sub.queue.maxsize)
        subscribed.append(sub)
        return sub

    monkeypatch.setattr(rt.bus, "subscribe", subscribe_parked)

    async def main() -> tuple[bool, list[Event]]:
        got: list[Event] = []

        async def follow() -> None:
            async for event in rt.runs.stream(ORG, run_id):
                got.append(event)

        task = asyncio.create_task(follow())
        try:
            async with asyncio.timeout(PATIENCE):
                await _parked(subscribed)
            # One step: the buffer wakes its reader and the reader is cancelled, so both
            # arrive in the same iteration of the loop.
            rt.bus.publish(Event(run_id, 1, "tool.result", utcnow(), {}))
            task.cancel()
            await asyncio.wait({task}, timeout=PATIENCE)
            return task.cancelled(), got
        finally:
            if not task.done():  # the old wait_for lost the cancel; stop it for good
                task.cancel()
                await asyncio.wait({task}, timeout=PATIENCE)

    cancelled, got = asyncio.run(main())
    assert cancelled, f"the cancelled follower kept following and received {got}"
    assert got == []
    assert rt.bus.subscriber_count() == 0


async def _parked(subscribed: list[Subscription]) -> None:
    while not subscribed:
        await asyncio.sleep(0)
    queue = subscribed[0].queue
    assert isinstance(queue, ParkedQueue)
    await queue.parked.wait()


class ParkedStop(asyncio.Event):
    """A worker's stop event, telling the test when the worker waits on it once ``now()``."""

    def __init__(self, now: Callable[[], bool]) -> None:
        super().__init__()
        self.now = now
        self.parked = asyncio.Event()

    async def wait(self) -> bool:
        if self.now():
            self.parked.set()
        return await super().wait()


def test_a_cancel_landing_as_a_pausing_worker_is_told_to_stop_ends_it_cancelled(
    rt: Runtime, redis_url: str
) -> None:
    target = urlsplit(redis_url)
    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 6379)
    proxy.start()
    queue = RedisQueue(f"redis://127.0.0.1:{proxy.port}{target.path}", timeout=1)
    worker = Worker(rt, queue, name="paused", poll=0.05)

    async def main() -> tuple[bool, str]:
        # Once the queue has failed, the worker's next wait on its stop event is its pause.
        stop = ParkedStop(lambda: worker.queue_health.failures > 0)
        task = asyncio.create_task(worker.run(stop))
        try:
            await asyncio.to_thread(proxy.stop)  # the queue is down: reserve fails, it pauses
            async with asyncio.timeout(PATIENCE):
                await stop.parked.wait()
            # One step: the stop event wakes the pause and the worker is cancelled.
            stop.set()
            task.cancel()
            await asyncio.wait({task}, timeout=PATIENCE)
            ended = "still running" if not task.done() else "cancelled"
            if task.done() and not task.cancelled():
                ended = f"returned {task.result()!r}"
            return task.cancelled(), ended
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=PATIENCE)

    try:
        cancelled, ended = asyncio.run(main())
    finally:
        queue.close()
        proxy.close()
    assert cancelled, f"the worker was cancelled as it stopped, yet it {ended}"
