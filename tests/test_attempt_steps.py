"""An attempt writes the engine's events a step at a time: what the engine emits is held back
and written in one transaction before the next call out (a model request, a batch of tool
calls), and what is held at the end goes in the transaction that records the end. So no model
or tool is ever called before the events leading to the call are in the store, and a no-op run
costs three store transactions (start, the model request, the end). On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agent_sdk.config import load_settings
from agent_sdk.core.runtime import Runtime
from agent_sdk.engine.agent import Agent, AgentRegistry
from agent_sdk.engine.models.scripted import ScriptedModel
from agent_sdk.engine.tools import tool
from agent_sdk.records import EventType, RunStatus

ORG = "default"
SEEN: dict[str, list[str]] = {}  # what the store held when each call out was made
HOLDER: list[Runtime] = []


def _stored_types(run_id: str) -> list[str]:
    return [e.type for e in HOLDER[0].store.iter_events(ORG, run_id)]


@tool
def lookup(run_id: str) -> str:
    """Say what the store holds of the run.

    Args:
        run_id: the run
    """
    SEEN.setdefault("tool", []).extend(_stored_types(run_id))
    return "looked"


class Watching(ScriptedModel):
    """Notes, at each request, which events of the run the store already holds."""

    async def complete(self, request: Any) -> Any:
        SEEN.setdefault(f"model{len(SEEN)}", _stored_types(request.run_id))
        return await super().complete(request)


def _runtime(env: dict[str, str], agent: Agent) -> Runtime:
    env = {**env, "AGENT_SDK_EXECUTION_MODE": "queue", "AGENT_SDK_QUEUE_BACKEND": "memory"}
    runtime = Runtime(
        load_settings(env=env, cwd=Path.cwd()), registry=AgentRegistry(agents=[agent])
    )
    HOLDER[:] = [runtime]
    return runtime


def test_every_call_out_comes_after_its_events_are_stored(
    engine: str, isolated_env: dict[str, str]
) -> None:
    SEEN.clear()
    agent = Agent(name="steps", model="scripted", tools=[lookup])
    runtime = _runtime(isolated_env, agent)
    try:
        run = runtime.runs.create(ORG, "steps", "hi")
        script = [{"tool": "lookup", "arguments": {"run_id": run.id}}, {"text": "done"}]
        with agent.override(model=Watching(script)):
            outcome = asyncio.run(runtime.executor.attempts.run(ORG, run.id, takeover=True))
        events = list(runtime.store.iter_events(ORG, run.id))
        status = runtime.store.get_run(ORG, run.id).status
    finally:
        runtime.close(wait=False)
    assert outcome.kind == "done" and status is RunStatus.SUCCEEDED
    start = ["run.created", "run.started", "model.request"]
    assert SEEN["model0"] == start
    assert SEEN["tool"] == [*start, "model.response", "tool.call"]
    assert SEEN["model2"] == [*start, "model.response", "tool.call", "tool.result", "model.request"]
    assert [e.type for e in events] == [
        *SEEN["model2"],
        "model.response",
        EventType.RUN_SUCCEEDED,
    ]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_a_no_op_run_costs_three_store_transactions(isolated_env: dict[str, str]) -> None:
    agent = Agent(name="noop", model="scripted")
    runtime = _runtime(isolated_env, agent)
    commits: list[str] = []
    try:
        run = runtime.runs.create(ORG, "noop", "hi")
        db = runtime.store._conn().db  # type: ignore[attr-defined]  # SQLite: this thread's
        db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
        with agent.override(model=ScriptedModel([{"text": "ok"}])):
            outcome = asyncio.run(runtime.executor.attempts.run(ORG, run.id, takeover=True))
        db.set_trace_callback(None)
        types = [e.type for e in runtime.store.iter_events(ORG, run.id)]
    finally:
        runtime.close(wait=False)
    assert outcome.kind == "done"
    assert types[1:] == ["run.started", "model.request", "model.response", "run.succeeded"]
    assert len(commits) == 3, commits
