"""Resuming a run from what an earlier attempt recorded: nothing recorded happens twice."""

from __future__ import annotations

import asyncio
from typing import Any

from agent_sdk.engine.agent import Agent
from agent_sdk.engine.journal import Journal
from agent_sdk.engine.models.scripted import ScriptedModel
from agent_sdk.engine.runner import RunEnv, RunResult, execute
from agent_sdk.engine.tools import ToolContext, tool
from agent_sdk.records import Event

CALLS: list[str] = []


@tool
def side_effect(name: str) -> str:
    """Record that it ran.

    Args:
        name: what to record
    """
    CALLS.append(name)
    return f"did {name}"


class CountingModel(ScriptedModel):
    def __init__(self, script: list[dict[str, Any]]) -> None:
        super().__init__(script)
        self.asked = 0

    async def complete(self, request: Any) -> Any:
        self.asked += 1
        return await super().complete(request)


SCRIPT = [
    {"tool": "side_effect", "arguments": {"name": "first"}},
    {"tool": "side_effect", "arguments": {"name": "second"}},
    {"text": "done: {tool_result}"},
]


def run(events: list[Event], model: CountingModel, journal: Journal | None) -> RunResult:
    def emit(type: str, data: dict[str, Any]) -> None:
        events.append(Event("run_x", len(events) + 1, type, "t", data))

    env = RunEnv(
        run_id="run_x",
        org_id="default",
        emit=emit,
        tool_context=ToolContext("run_x", "default", (), (), 1.0, lambda: False),
        max_steps=10,
        max_tokens=10_000,
        journal=journal,
    )
    agent = Agent(name="j", model="scripted", tools=[side_effect])
    with agent.override(model=model):
        return asyncio.run(execute(agent, "go", env))


def test_a_new_attempt_replays_what_was_recorded_and_continues() -> None:
    CALLS.clear()
    full: list[Event] = []
    expected = run(full, CountingModel(SCRIPT), None)
    assert CALLS == ["first", "second"]

    # The first attempt died right after the first tool's result was recorded.
    cut = next(i for i, e in enumerate(full) if e.type == "tool.result") + 1
    crashed = full[:cut]
    CALLS.clear()
    model = CountingModel(SCRIPT)
    resumed = list(crashed)
    result = run(resumed, model, Journal.from_events(crashed))

    assert result.text == expected.text and result.steps == expected.steps
    assert result.usage == expected.usage
    assert CALLS == ["second"]  # the recorded effect did not happen again
    assert model.asked == 2  # steps 2 and 3 only
    # One history: the same event types, in the same order, each once.
    assert [(e.type, e.data) for e in resumed] == [(e.type, e.data) for e in full]


def test_a_call_started_but_not_recorded_runs_again() -> None:
    CALLS.clear()
    full: list[Event] = []
    run(full, CountingModel(SCRIPT), None)
    cut = next(i for i, e in enumerate(full) if e.type == "tool.call") + 1  # died mid-call
    CALLS.clear()
    resumed = list(full[:cut])
    run(resumed, CountingModel(SCRIPT), Journal.from_events(full[:cut]))
    assert CALLS == ["first", "second"]  # at-least-once for an unrecorded effect
    assert [e.type for e in resumed].count("tool.call") == 2  # not emitted twice
