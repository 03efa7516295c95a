"""An attempt superseded while it waits on its model (the worker was paused past its lease and
another took the run over) writes nothing more and calls no tool: every write of an attempt
is fenced by its attempt number in the store. On SQLite and on PostgreSQL. The same fault with
real processes and signals is drilled in tests/faults/test_stalled_worker.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agent_sdk.config import load_settings
from agent_sdk.core.runtime import Runtime
from agent_sdk.engine.agent import Agent, AgentRegistry
from agent_sdk.engine.models.scripted import ScriptedModel
from agent_sdk.engine.tools import tool
from agent_sdk.records import EventType, RunStatus

ORG = "default"
HOSTILE = "'; DROP TABLE events; -- {input} \U0001f680 \u2028 %s"
CALLS: list[str] = []


@tool
def effect(name: str) -> str:
    """Record that it ran.

    Args:
        name: what to record
    """
    CALLS.append(name)
    return f"did {name}"


SCRIPT = [
    {"tool": "effect", "arguments": {"name": "one"}},
    {"tool": "effect", "arguments": {"name": "two"}},
    {"tool": "effect", "arguments": {"name": "three"}},
    {"text": "done"},
]


class Superseding(ScriptedModel):
    """While this attempt waits on its second model turn, another attempt takes the run over
    (and, with ``finish``, ends it): what a worker paused past its lease wakes up to."""

    def __init__(self, runtime: list[Runtime], finish: bool) -> None:
        super().__init__(SCRIPT)
        self.runtime, self.finish, self.asked = runtime, finish, 0

    async def complete(self, request: Any) -> Any:
        self.asked += 1
        if self.asked == 2:
            store = self.runtime[0].store
            with store.transaction():
                run = store.get_run(ORG, request.run_id)
                taken = store.update_run(
                    ORG, run.id, expect_attempts=run.attempts, attempts=run.attempts + 1
                )
                assert taken is not None
                store.append_event(ORG, run.id, EventType.RUN_STARTED, {"attempt": taken.attempts})
            if self.finish:
                with store.transaction():
                    store.update_run(ORG, run.id, status=RunStatus.SUCCEEDED)
                    store.append_event(ORG, run.id, EventType.RUN_SUCCEEDED, {"output": "x"})
        return await super().complete(request)


@pytest.mark.parametrize("finish", [False, True], ids=["taken-over", "finished-elsewhere"])
def test_a_superseded_attempt_writes_nothing_and_calls_no_tool(
    engine: str, isolated_env: dict[str, str], finish: bool
) -> None:
    CALLS.clear()
    env = {**isolated_env, "AGENT_SDK_EXECUTION_MODE": "queue", "AGENT_SDK_QUEUE_BACKEND": "memory"}
    holder: list[Runtime] = []
    model = Superseding(holder, finish)
    agent = Agent(name="fenced", model="scripted", tools=[effect])
    runtime = Runtime(
        load_settings(env=env, cwd=Path.cwd()), registry=AgentRegistry(agents=[agent])
    )
    holder.append(runtime)
    try:
        run = runtime.runs.create(ORG, "fenced", HOSTILE)
        with agent.override(model=model):
            outcome = asyncio.run(runtime.executor.attempts.run(ORG, run.id, takeover=True))
        events = list(runtime.store.iter_events(ORG, run.id))
        after = runtime.store.get_run(ORG, run.id)
    finally:
        runtime.close(wait=False)

    assert outcome.kind == "lost"  # the job is the new holder's to settle
    assert CALLS == ["one"]  # the second turn's tool call never ran
    types = [e.type for e in events]
    takeover = types.index(EventType.RUN_STARTED, types.index(EventType.RUN_STARTED) + 1)
    # Nothing of the first attempt after the takeover (the model's answer was refused).
    expected_tail = [EventType.RUN_STARTED] + ([EventType.RUN_SUCCEEDED] if finish else [])
    assert types[takeover:] == expected_tail, types
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert after.attempts == 2
    assert after.status is (RunStatus.SUCCEEDED if finish else RunStatus.RUNNING)
