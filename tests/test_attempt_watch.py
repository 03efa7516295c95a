"""One watch per event loop covers every attempt in flight (core/watch.py): it keeps a live
run's heartbeat fresh, and stops the attempt of a run another process took over (LEASE_LOST),
erased (DELETED) or asked to cancel, with no task of its own per attempt. On SQLite and on
PostgreSQL; another process's doings are played by writing to the store directly."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agent_sdk.config import load_settings
from agent_sdk.core.outcome import Outcome
from agent_sdk.core.runtime import Runtime
from agent_sdk.engine.agent import Agent, AgentRegistry
from agent_sdk.engine.models.scripted import ScriptedModel
from agent_sdk.records import RunStatus

ORG = "default"
PATIENCE = 60.0  # a loaded 2-core machine may be slow; nothing here waits for a fixed time


class Waiting(ScriptedModel):
    """Answers once ``release`` is set; counts the attempts waiting on it."""

    def __init__(self) -> None:
        super().__init__([{"text": "done"}])
        self.release: asyncio.Event | None = None
        self.waiting = 0

    async def complete(self, request: Any) -> Any:
        assert self.release is not None
        self.waiting += 1
        await self.release.wait()
        return await super().complete(request)


async def _until(check: Any, what: str) -> None:
    async with asyncio.timeout(PATIENCE):
        while not check():
            await asyncio.sleep(0.02)
    assert check(), what


def test_one_watch_beats_live_runs_and_stops_taken_over_deleted_and_cancelled_ones(
    engine: str, isolated_env: dict[str, str]
) -> None:
    env = {**isolated_env, "AGENT_SDK_EXECUTION_MODE": "queue", "AGENT_SDK_QUEUE_BACKEND": "memory"}
    settings = load_settings(env=env, cwd=Path.cwd()).replace(worker_lease=0.6)
    model = Waiting()
    agent = Agent(name="waits", model="scripted")
    rt = Runtime(settings, registry=AgentRegistry(agents=[agent]))
    store = rt.store
    try:
        live, taken, gone, asked = (rt.runs.create(ORG, "waits", "x").id for _ in range(4))

        async def main() -> tuple[list[Outcome], int, str, str]:
            model.release = asyncio.Event()
            tasks = [
                asyncio.create_task(rt.executor.attempts.run(ORG, run_id, takeover=True))
                for run_id in (live, taken, gone, asked)
            ]
            await _until(lambda: model.waiting == 4, "all four attempts wait on the model")
            # An attempt task and its engine's task each, and this one: no watcher per attempt.
            in_flight = len(asyncio.all_tasks())
            started = store.get_run(ORG, live).updated_at
            store.update_run(ORG, taken, expect_attempts=1, attempts=2)  # another worker's
            store.delete_run(ORG, gone)
            store.update_run(ORG, asked, cancel_requested=True)
            await _until(lambda: all(t.done() for t in tasks[1:]), "the three stop")
            # The live run is still beaten: its heartbeat moves on while it waits.
            await _until(
                lambda: store.get_run(ORG, live).updated_at > started, "the live run's heartbeat"
            )
            beaten = store.get_run(ORG, live).updated_at
            model.release.set()
            outcomes = [await t for t in tasks]
            return outcomes, in_flight, started, beaten

        with agent.override(model=model):
            outcomes, in_flight, started, beaten = asyncio.run(main())
        assert [o.kind for o in outcomes] == ["done", "lost", "skipped", "done"]
        assert in_flight == 1 + 2 * 4
        assert beaten > started
        assert store.get_run(ORG, live).status is RunStatus.SUCCEEDED
        assert store.get_run(ORG, asked).status is RunStatus.CANCELLED
        after = store.get_run(ORG, taken)
        assert after.status is RunStatus.RUNNING and after.attempts == 2  # left to its holder
    finally:
        rt.close(wait=False)
