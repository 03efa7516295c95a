"""The agent loop through Agent.run / run_sync / stream, and engine.runner.execute directly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agent_sdk.config import Settings
from agent_sdk.engine import Agent, ToolContext, tool
from agent_sdk.engine.models.base import ModelDelta, ModelRequest, ModelResponse, ToolCall
from agent_sdk.engine.models.scripted import ScriptedModel
from agent_sdk.engine.runner import RunEnv, execute
from agent_sdk.errors import InvalidInput, ModelError, PermissionDenied, QuotaExceeded, ToolError
from agent_sdk.records import Event, Usage


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def types(events: list[Event] | None) -> list[str]:
    assert events is not None
    return [e.type for e in events]


@tool
def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: First.
        b: Second.
    """
    return a + b


@tool
def boom() -> None:
    raise ValueError("kaput")


# -- the loop ------------------------------------------------------------------------------------


def test_text_turn_is_the_final_answer() -> None:
    agent = Agent("hello", script=[{"text": "Hi, {input}!"}])
    result = agent.run_sync("Ada")
    assert (result.output, result.text, result.steps) == ("Hi, Ada!", "Hi, Ada!", 1)
    assert result.usage == Usage(input_tokens=1, output_tokens=2)
    assert types(result.events) == [
        "run.started",
        "model.request",
        "model.response",
        "run.succeeded",
    ]
    assert result.events is not None
    assert [e.seq for e in result.events] == [1, 2, 3, 4]
    assert result.events[-1].data == {
        "output": "Hi, Ada!",
        "usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
    }


def test_tool_call_loop_sends_results_back() -> None:
    agent = Agent(
        "calc",
        tools=[add],
        script=[{"tool": "add", "arguments": {"a": 2, "b": 3}}, {"text": "sum={tool_result}"}],
    )
    result = agent.run_sync("add please", run_id="run_fixed")
    assert result.text == "sum=5" and result.steps == 2
    events = result.events or []
    assert types(events) == [
        "run.started",
        "model.request",
        "model.response",
        "tool.call",
        "tool.result",
        "model.request",
        "model.response",
        "run.succeeded",
    ]
    assert all(e.run_id == "run_fixed" for e in events)
    assert events[1].data == {"step": 1, "messages_count": 1}
    assert events[2].data["tool_calls"] == [
        {"id": "call_0_0", "name": "add", "arguments": {"a": 2, "b": 3}}
    ]
    assert events[3].data == {"id": "call_0_0", "name": "add", "arguments": {"a": 2, "b": 3}}
    assert events[4].data == {"id": "call_0_0", "name": "add", "ok": True, "result": 5}
    assert events[5].data == {"step": 2, "messages_count": 3}
    json.dumps([e.to_dict() for e in events])  # events are JSON-ready


def test_instructions_become_the_system_message() -> None:
    seen: list[Any] = []

    class Spy(ScriptedModel):
        async def complete(self, request: ModelRequest) -> ModelResponse:
            seen.append(request)
            return await super().complete(request)

    agent = Agent("spy", instructions="Be brief.", tools=[add, "fs.list"])
    with agent.override(model=Spy([{"text": "ok"}])):
        agent.run_sync("q")
    (req,) = seen
    assert [(m.role, m.content) for m in req.messages] == [("system", "Be brief."), ("user", "q")]
    assert [t["name"] for t in req.tools] == ["add", "fs.list"]
    assert req.tools[0]["parameters"]["required"] == ["a", "b"]
    assert req.run_id.startswith("run_")


def test_tool_errors_go_back_to_the_model_and_the_run_goes_on() -> None:
    agent = Agent(
        "retry",
        tools=[add, boom],
        script=[
            {"tool": "add", "arguments": {"a": "x"}},
            {"tool_calls": [{"name": "nope"}, {"name": "boom"}]},
            {"tool": "add", "arguments": {"a": 1, "b": 1}},
            {"text": "got {tool_result}"},
        ],
    )
    result = agent.run_sync("go")
    assert result.text == "got 2" and result.steps == 4
    failures = [e.data for e in result.events or [] if e.type == "tool.result" and not e.data["ok"]]
    assert "invalid arguments for tool 'add'" in failures[0]["error"]
    assert "a: Input should be a valid integer" in failures[0]["error"]
    assert "b: Field required" in failures[0]["error"]
    assert "unknown tool 'nope'; available tools: add, boom" == failures[1]["error"]
    assert failures[2]["error"] == "ValueError: kaput"


def test_validation_error_reaches_the_model_as_the_tool_message() -> None:
    seen: list[ModelRequest] = []

    class Spy(ScriptedModel):
        async def complete(self, request: ModelRequest) -> ModelResponse:
            seen.append(request)
            return await super().complete(request)

    agent = Agent("v", tools=[add])
    with agent.override(model=Spy([{"tool": "add", "arguments": {"a": 1}}, {"text": "ok"}])):
        agent.run_sync("x")
    tool_message = seen[1].messages[-1]
    assert tool_message.role == "tool" and tool_message.tool_call_id == "call_0_0"
    assert (tool_message.content or "").startswith("Error: invalid arguments for tool 'add'")


def test_tool_calls_of_a_turn_run_concurrently_and_report_in_order() -> None:
    started: list[str] = []
    all_started = asyncio.Event()

    @tool
    async def nap(seconds: float, label: str) -> str:
        started.append(label)
        if len(started) == 3:
            all_started.set()
        # Run one after another, the first call would wait here forever (the timeout fails it).
        await asyncio.wait_for(all_started.wait(), timeout=5)
        await asyncio.sleep(seconds)  # finish in a different order than called
        return label

    calls = [
        {"name": "nap", "arguments": {"seconds": s, "label": f"n{i}"}}
        for i, s in enumerate([0.06, 0.0, 0.03])
    ]
    agent = Agent("naps", tools=[nap], script=[{"tool_calls": calls}, {"text": "done"}])
    result = agent.run_sync("x")
    results = [e.data for e in result.events or [] if e.type == "tool.result"]
    assert [r["result"] for r in results] == ["n0", "n1", "n2"]
    assert all(r["ok"] for r in results)


def test_tools_receive_the_context() -> None:
    @tool
    def where(ctx: ToolContext) -> list[Any]:
        return [ctx.run_id, ctx.org_id, list(ctx.http_allowlist)]

    agent = Agent("ctx", tools=[where], script=[{"tool": "where"}, {"text": "{tool_result}"}])
    result = agent.run_sync("x", run_id="run_c", org_id="acme", http_allowlist=["a.example"])
    assert json.loads(result.text) == ["run_c", "acme", ["a.example"]]


def test_builtin_tools_use_the_fs_roots(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha")
    agent = Agent(
        "reader",
        tools=["fs.read"],
        script=[{"tool": "fs.read", "arguments": {"path": "a.txt"}}, {"text": "{tool_result}"}],
    )
    assert agent.run_sync("x", fs_roots=[str(tmp_path)]).text == "alpha"
    settings = Settings().replace(fs_allowlist=(str(tmp_path),))
    assert agent.run_sync("x", settings=settings).text == "alpha"
    refused = agent.run_sync("x", fs_roots=[])
    assert "outside the allowed roots" in refused.text


def test_the_demo_agent(tmp_path: Path) -> None:
    from agent_sdk.engine.agent import demo

    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "README.md").write_text("hi")
    result = demo.run_sync("what is here?", fs_roots=[str(tmp_path / "project")])
    assert result.text == (
        "You asked: what is here?\nThe working directory holds: "
        '[{"name": "README.md", "type": "file", "size": 2}]'
    )


# -- limits ------------------------------------------------------------------------------------


def test_max_steps_from_settings_and_from_the_agent() -> None:
    script = [{"tool": "fs.list"}] * 5 + [{"text": "end"}]
    agent = Agent("loop", tools=["fs.list"], script=script)
    with pytest.raises(QuotaExceeded, match="run exceeded max_steps=3"):
        agent.run_sync("x", max_steps=3)
    assert agent.run_sync("x", max_steps=6).steps == 6
    tight = Agent("tight", tools=["fs.list"], script=script, max_steps=2)
    with pytest.raises(QuotaExceeded, match="max_steps=2"):
        tight.run_sync("x", max_steps=50)
    # The deployment's limit is a ceiling the agent cannot raise.
    loose = Agent("loose", tools=["fs.list"], script=script, max_steps=100)
    with pytest.raises(QuotaExceeded, match="max_steps=4"):
        loose.run_sync("x", max_steps=4)


def test_max_tokens() -> None:
    agent = Agent("chatty", script=[{"text": "word " * 50}])
    with pytest.raises(QuotaExceeded, match=r"run exceeded max_tokens=10 \(used 51\)"):
        agent.run_sync("x", max_tokens=10)
    assert agent.run_sync("x", max_tokens=51).usage.total_tokens == 51


def test_a_failed_run_ends_with_run_failed() -> None:
    agent = Agent("flaky", script=[{"error": "overloaded", "retryable": True}])
    with pytest.raises(ModelError) as info:
        agent.run_sync("x")
    assert info.value.retryable


@pytest.mark.anyio
async def test_stream_ends_with_run_failed_instead_of_raising() -> None:
    agent = Agent("flaky", script=[{"error": "overloaded", "retryable": True}])
    events = [e async for e in agent.stream("x")]
    assert [e.type for e in events] == ["run.started", "model.request", "run.failed"]
    assert events[-1].data == {"error": {"code": "model_error", "message": "overloaded"}}


def test_real_models_can_be_switched_off() -> None:
    agent = Agent("real", model="openai:gpt-4o")
    with pytest.raises(PermissionDenied):
        agent.run_sync("x", allow_model_requests=False)
    with pytest.raises(PermissionDenied):
        agent.run_sync("x", settings=Settings().replace(allow_model_requests=False))


# -- cancellation --------------------------------------------------------------------------------


def test_cancelled_before_the_next_model_call() -> None:
    flag = {"stop": False}

    @tool
    def stopper() -> str:
        flag["stop"] = True
        return "stopping"

    agent = Agent("c", tools=[stopper], script=[{"tool": "stopper"}, {"text": "never"}])
    with pytest.raises(asyncio.CancelledError):
        agent.run_sync("x", cancelled=lambda: flag["stop"])


@pytest.mark.anyio
async def test_cancelled_run_streams_run_cancelled() -> None:
    flag = {"stop": False}

    @tool
    def stopper() -> str:
        flag["stop"] = True
        return "stopping"

    agent = Agent("c", tools=[stopper], script=[{"tool": "stopper"}, {"text": "never"}])
    events = [e async for e in agent.stream("x", cancelled=lambda: flag["stop"])]
    assert events[-1].type == "run.cancelled"
    assert "model.request" not in [e.type for e in events[-2:]]


@pytest.mark.anyio
async def test_cancel_is_checked_before_each_tool_call() -> None:
    ran: list[str] = []

    @tool
    def mark(label: str) -> str:
        ran.append(label)
        return label

    state = {"calls": 0}

    def cancelled() -> bool:
        state["calls"] += 1
        return state["calls"] > 2  # the model call and the first tool call pass

    calls = [{"name": "mark", "arguments": {"label": x}} for x in "ab"]
    agent = Agent("c", tools=[mark], script=[{"tool_calls": calls}, {"text": "x"}])
    events = [e async for e in agent.stream("x", cancelled=cancelled)]
    assert [e.type for e in events][-2:] == ["tool.call", "run.cancelled"]
    assert ran == []  # no tool of the turn started


@pytest.mark.anyio
async def test_stopping_a_stream_early_cancels_the_run() -> None:
    agent = Agent("slow", script=[{"text": "one two three four five six", "latency": 0}], latency=0)
    stream = agent.stream("x")
    first = await stream.__anext__()
    assert first.type == "run.started"
    await stream.aclose()  # must not hang or leak a task


# -- streaming ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_stream_yields_deltas_and_the_same_records_as_run() -> None:
    agent = Agent(
        "s",
        tools=[add],
        script=[{"tool": "add", "arguments": {"a": 1, "b": 2}}, {"text": "a b c d e f g {input}"}],
    )
    events = [e async for e in agent.stream("h", run_id="run_s")]
    deltas = [e.data["text"] for e in events if e.type == "model.delta"]
    assert "".join(deltas) == "a b c d e f g h" and len(deltas) == 3
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type == "run.succeeded" and events[-1].data["output"] == "a b c d e f g h"
    without = [e.type for e in events if e.type != "model.delta"]
    assert without == types((await agent.run("h")).events)


@pytest.mark.anyio
async def test_a_provider_that_streams_no_response_is_a_model_error() -> None:
    class Broken:
        name = "broken"

        async def complete(self, request: ModelRequest) -> ModelResponse:
            raise AssertionError("not used")

        async def stream(self, request: ModelRequest) -> AsyncIterator[ModelDelta | ModelResponse]:
            yield ModelDelta("partial")

    agent = Agent("b", model=Broken())
    events = [e async for e in agent.stream("x")]
    assert events[-1].type == "run.failed"
    assert "without a response" in events[-1].data["error"]["message"]


# -- output_type ---------------------------------------------------------------------------------


class Answer(BaseModel):
    city: str
    temp: int


def test_output_type_parses_and_validates_json() -> None:
    agent = Agent("typed", output_type=Answer, script=[{"text": '{"city": "Oslo", "temp": 3}'}])
    result = agent.run_sync("x")
    assert result.output == Answer(city="Oslo", temp=3) and result.steps == 1


def test_a_bad_answer_is_sent_back_as_a_retry_turn() -> None:
    seen: list[ModelRequest] = []

    class Spy(ScriptedModel):
        async def complete(self, request: ModelRequest) -> ModelResponse:
            seen.append(request)
            return await super().complete(request)

    agent = Agent("typed", output_type=Answer)
    script = [
        {"text": "It is cold in Oslo."},
        {"text": '{"city": "Oslo", "temp": "cold"}'},
        {"text": '```json\n{"city": "Oslo", "temp": 3}\n```'},
    ]
    with agent.override(model=Spy(script)):
        result = agent.run_sync("x")
    assert result.output == Answer(city="Oslo", temp=3) and result.steps == 3
    retry = seen[2].messages[-1]
    assert retry.role == "user" and "temp: Input should be a valid integer" in (retry.content or "")


def test_output_type_accepts_any_type_adapter_type_and_counts_steps() -> None:
    agent = Agent("ints", output_type=list[int], script=[{"text": "[1, 2]"}])
    assert agent.run_sync("x").output == [1, 2]
    never = Agent("never", output_type=int, script=[{"text": "nope"}])
    with pytest.raises(QuotaExceeded, match="max_steps=3"):
        never.run_sync("x", max_steps=3)


# -- override ------------------------------------------------------------------------------------


def test_override_swaps_the_model_only_inside_the_block() -> None:
    agent = Agent("o", script=[{"text": "original"}])
    with agent.override(model=ScriptedModel([{"text": "overridden"}])):
        assert agent.run_sync("x").text == "overridden"
        with agent.override(model="scripted"):
            assert agent.run_sync("x").text == "original"
        assert agent.run_sync("x").text == "overridden"
    assert agent.run_sync("x").text == "original"


@pytest.mark.anyio
async def test_override_is_per_task() -> None:
    agent = Agent("o", script=[{"text": "original"}])

    async def overridden() -> str:
        with agent.override(model=ScriptedModel([{"text": "mine"}], latency=0.05)):
            return (await agent.run("x")).text

    async def plain() -> str:
        await asyncio.sleep(0.01)
        return (await agent.run("x")).text

    assert list(await asyncio.gather(overridden(), plain())) == ["mine", "original"]


def test_override_takes_any_provider_object() -> None:
    class Fixed:
        name = "fixed"

        async def complete(self, request: ModelRequest) -> ModelResponse:
            calls = [] if len(request.messages) > 1 else [ToolCall("c1", "add", {"a": 1, "b": 1})]
            return ModelResponse(text="fixed" if not calls else None, tool_calls=calls)

        async def stream(self, request: ModelRequest) -> AsyncIterator[ModelDelta | ModelResponse]:
            yield await self.complete(request)

    agent = Agent("any", tools=[add])
    with agent.override(model=Fixed()):
        assert agent.run_sync("x").text == "fixed"


# -- execute directly, as the workers do ---------------------------------------------------------


def test_execute_emits_no_lifecycle_events_and_honours_the_env() -> None:
    emitted: list[tuple[str, dict[str, Any]]] = []
    env = RunEnv(
        run_id="run_w",
        org_id="acme",
        emit=lambda t, d: emitted.append((t, d)),
        tool_context=ToolContext(run_id="run_w", org_id="acme"),
        max_steps=5,
        max_tokens=1000,
        stream_deltas=True,
    )
    agent = Agent("w", script=[{"text": "alpha beta gamma delta"}])
    result = asyncio.run(execute(agent, "x", env))
    assert result.events is None and result.text == "alpha beta gamma delta"
    assert [t for t, _ in emitted] == [
        "model.request",
        "model.delta",
        "model.delta",
        "model.response",
    ]
    assert all(type(t) is str for t, _ in emitted)


def test_an_emit_that_raises_stops_the_run() -> None:
    def emit(type: str, data: dict[str, Any]) -> None:
        if type == "tool.call":
            raise QuotaExceeded("event cap reached")

    env = RunEnv("r", "o", emit, ToolContext(run_id="r"), max_steps=5, max_tokens=1000)
    agent = Agent("e", tools=[add], script=[{"tool": "add", "arguments": {"a": 1, "b": 2}}])
    with pytest.raises(QuotaExceeded, match="event cap"):
        asyncio.run(execute(agent, "x", env))


def test_non_json_tool_results_are_reported_not_crashed() -> None:
    class Odd:
        name = "odd"
        description = "returns a set"
        parameters: dict[str, Any] = {"type": "object", "properties": {}}

        async def call(self, ctx: ToolContext, arguments: dict[str, Any]) -> Any:
            return {1, 2}

    agent = Agent("odd", tools=[Odd()], script=[{"tool": "odd"}, {"text": "{tool_result}"}])
    assert "not JSON" in agent.run_sync("x").text


def test_tool_error_in_a_custom_tool() -> None:
    class Picky:
        name = "picky"
        description = "always refuses"
        parameters: dict[str, Any] = {"type": "object", "properties": {}}

        async def call(self, ctx: ToolContext, arguments: dict[str, Any]) -> Any:
            raise ToolError("refused politely")

    agent = Agent("p", tools=[Picky()], script=[{"tool": "picky"}, {"text": "{tool_result}"}])
    assert agent.run_sync("x").text == "Error: refused politely"


@pytest.mark.anyio
async def test_run_sync_inside_a_loop_says_what_to_do() -> None:
    with pytest.raises(InvalidInput, match="await agent.run"):
        Agent("x").run_sync("x")


def test_input_must_be_a_string() -> None:
    with pytest.raises(InvalidInput, match="input must be a string"):
        Agent("x").run_sync(3)  # type: ignore[arg-type]
