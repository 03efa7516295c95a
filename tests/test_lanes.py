"""Lanes (core/lanes.py): a coroutine started on a lane is awaited and cancelled from the loop
that started it as if it were a task of that loop, a cancel's message included."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from agent_sdk.core.lanes import Lanes

DEADLINE = 30.0


@pytest.fixture
def lanes() -> Iterator[Lanes]:
    lanes = Lanes(2, name="test-lane")
    try:
        yield lanes
    finally:
        lanes.close()


def test_a_result_and_an_error_come_back_from_another_thread(lanes: Lanes) -> None:
    async def where() -> str:
        return threading.current_thread().name

    async def fails() -> None:
        raise ValueError("from the lane")

    async def main() -> None:
        name = await asyncio.wait_for(lanes.start(where), DEADLINE)
        assert name.startswith("test-lane-")
        with pytest.raises(ValueError, match="from the lane"):
            await asyncio.wait_for(lanes.start(fails), DEADLINE)

    asyncio.run(main())


def test_a_cancel_carries_its_message_to_the_lane(lanes: Lanes) -> None:
    seen: list[object] = []

    async def waits(started: threading.Event) -> str:
        started.set()
        try:
            await asyncio.sleep(DEADLINE)
        except asyncio.CancelledError as exc:
            seen.append(exc.args[0] if exc.args else None)
            return "handed back"
        return "slept"

    async def main() -> None:
        started = threading.Event()
        remote = lanes.start(lambda: waits(started))
        await asyncio.to_thread(started.wait, DEADLINE)
        remote.cancel("stopping")
        # The coroutine caught the cancel and returned: a result, not a cancelled remote.
        assert await asyncio.wait_for(remote, DEADLINE) == "handed back"
        assert not remote.cancelled()

    asyncio.run(main())
    assert seen == ["stopping"]


def test_a_cancel_right_after_the_start_is_not_lost(lanes: Lanes) -> None:
    async def sleeps() -> None:
        await asyncio.sleep(DEADLINE)

    async def main() -> None:
        remote = lanes.start(sleeps)
        remote.cancel("stopping")  # queued behind the start on the lane: never too early
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(remote, DEADLINE)
        assert remote.cancelled()

    asyncio.run(main())


def test_cancelling_the_awaiting_task_cancels_the_coroutine_on_the_lane(lanes: Lanes) -> None:
    stopped = threading.Event()

    async def waits(started: threading.Event) -> None:
        started.set()
        try:
            await asyncio.sleep(DEADLINE)
        finally:
            stopped.set()

    async def main() -> None:
        started = threading.Event()
        remote = lanes.start(lambda: waits(started))

        async def awaiting() -> None:
            await remote

        task = asyncio.create_task(awaiting())
        await asyncio.to_thread(started.wait, DEADLINE)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(stopped.wait, DEADLINE)

    asyncio.run(main())


def test_close_cancels_what_is_left_and_stops_the_threads() -> None:
    lanes = Lanes(2, name="closing-lane")
    stopped = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(DEADLINE * 10)
        finally:
            stopped.set()

    async def main() -> None:
        lanes.start(forever)
        await asyncio.sleep(0)

    asyncio.run(main())
    lanes.close()
    assert stopped.wait(DEADLINE)
    assert not [t for t in threading.enumerate() if t.name.startswith("closing-lane")]
