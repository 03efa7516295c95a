"""The one boundary where model and tool output becomes storable text (engine/storable.py):
NUL and lone surrogates become U+FFFD before the loop, a store or a JSON answer sees them, and
the event that carries the text says what was replaced."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent_sdk.engine import Agent, tool
from agent_sdk.engine.models.base import ModelDelta, ModelRequest, ModelResponse, ToolCall
from agent_sdk.engine.storable import make_storable
from agent_sdk.records import Usage

BAD = "a\x00b\udfffc"
CLEAN = "a\ufffdb\ufffdc"


def _storable(value: Any) -> bool:
    """Whether ``value`` encodes as strict UTF-8 JSON with no NUL (what every store takes)."""
    text = json.dumps(value, ensure_ascii=False)
    text.encode("utf-8")  # raises on a lone surrogate
    return "\x00" not in text and "\\u0000" not in text


class Hostile:
    """A provider whose text, deltas and tool call (id, name, arguments) hold unstorable text."""

    name = "hostile"

    def __init__(self) -> None:
        self.seen: list[ModelRequest] = []

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.seen.append(request)
        if not any(m.role == "assistant" for m in request.messages):
            call = ToolCall(id="c\x001", name="echo", arguments={"data": {BAD: [BAD, {"k": BAD}]}})
            return ModelResponse(text=BAD, tool_calls=[call], usage=Usage(1, 1))
        return ModelResponse(text="end " + BAD, usage=Usage(1, 1))

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelDelta | ModelResponse]:
        response = await self.complete(request)
        yield ModelDelta("\udfff")
        yield ModelDelta("\x00\x00 ok")
        yield response


@tool
def echo(data: dict[str, Any]) -> dict[str, Any]:
    """Echo the argument with more unstorable text."""
    return {"got": data, "extra": "\udc80\x00", "lone high": "\ud800x"}


def test_make_storable_counts_and_replaces_in_keys_lists_and_nested_values() -> None:
    value, replaced = make_storable({BAD: [BAD, ("\ud83d", 3)], "ok": "\U0001f680 fine", "n": None})
    assert value == {CLEAN: [CLEAN, ["\ufffd", 3]], "ok": "\U0001f680 fine", "n": None}
    assert (replaced.nul, replaced.lone_surrogate) == (2, 3)
    clean, nothing = make_storable("emoji \U0001f680 and e\u0301")
    assert clean == "emoji \U0001f680 and e\u0301" and not nothing  # valid text is untouched


@pytest.mark.parametrize("stream", [False, True])
def test_model_and_tool_output_is_made_storable_with_a_note(stream: bool) -> None:
    model = Hostile()
    agent = Agent("hostile", model=model, tools=[echo])
    if stream:
        events = []

        async def collect() -> None:
            async for event in agent.stream("go"):
                events.append(event)

        asyncio.run(collect())
        text = next(e for e in events if e.type == "run.succeeded").data["output"]
    else:
        result = agent.run_sync("go")
        events, text = result.events or [], result.text
    assert text == "end " + CLEAN
    for event in events:
        assert _storable(event.data), event
    responses = [e for e in events if e.type == "model.response"]
    assert responses[0].data["text"] == CLEAN
    assert responses[0].data["replaced"] == {"nul": 5, "lone_surrogate": 4, "with": "U+FFFD"}
    call = responses[0].data["tool_calls"][0]
    assert call["id"] == "c\ufffd1"
    assert call["arguments"] == {"data": {CLEAN: [CLEAN, {"k": CLEAN}]}}
    result_event = next(e for e in events if e.type == "tool.result")
    assert result_event.data["ok"] is True  # the tool's result was kept, not refused
    assert result_event.data["result"]["extra"] == "\ufffd\ufffd"
    assert result_event.data["replaced"]["lone_surrogate"] == 2
    # The model saw the replaced text in the conversation, never the original.
    assert all(_storable([m.content for m in r.messages]) for r in model.seen)
    if stream:
        deltas = [e for e in events if e.type == "model.delta"]
        assert deltas and all(d.data.get("replaced") for d in deltas[:2])
