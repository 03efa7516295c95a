"""What earlier attempts of a run recorded, so a new attempt can pick up where they stopped.

A run whose worker died is executed again by another one. Starting the agent loop from scratch
would ask the model again and call tools again, and the run's events would tell the story twice.
Instead the new attempt replays the recorded model responses and tool results of the steps
already done, without calling anything or emitting anything for them, and continues live from
the first step that has no record. Control flow only depends on those recorded values, so the
replay follows the same path (the idea of Temporal's workflow replay, at the grain of one
model turn or tool call).

What this guarantees: an effect whose result was recorded happens once. A tool call that was
started but whose result was not recorded before the crash runs again (at-least-once), which
is why tools with side effects should be idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agent_sdk.engine.models.base import ModelResponse, ToolCall
from agent_sdk.records import Event, EventType, Usage


@dataclass
class Journal:
    requested: set[int] = field(default_factory=set)  # steps whose model.request was emitted
    responses: dict[int, ModelResponse] = field(default_factory=dict)
    called: set[str] = field(default_factory=set)  # tool call ids whose tool.call was emitted
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # tool.result data by id

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> Journal:
        journal = cls()
        for event in events:
            data = event.data
            if event.type == EventType.MODEL_REQUEST:
                journal.requested.add(int(data["step"]))
            elif event.type == EventType.MODEL_RESPONSE:
                journal.responses[int(data["step"])] = ModelResponse(
                    text=data.get("text"),
                    tool_calls=[ToolCall(**c) for c in data.get("tool_calls", [])],
                    usage=Usage(**data.get("usage", {})),
                )
            elif event.type == EventType.TOOL_CALL:
                journal.called.add(str(data["id"]))
            elif event.type == EventType.TOOL_RESULT:
                journal.results[str(data["id"])] = dict(data)
        return journal

    def __bool__(self) -> bool:
        return bool(self.requested or self.called)
