"""What a model provider is: one request in, one response out, or a stream of deltas that ends
in that same response.

These types are the engine's own, independent of any vendor's wire format. A provider translates
them (and applies its quirks, such as strict schemas) inside itself, never in the core.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from agent_sdk.records import Usage

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call requested by the model. ``id`` pairs it with its result message."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass(frozen=True, slots=True)
class Message:
    """One message of the conversation sent to the model.

    ``tool_calls`` is set on assistant messages that asked for tools; ``tool_call_id`` and
    ``name`` on the tool messages that answer them.
    """

    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """``tools`` holds ``{"name", "description", "parameters"}`` specs (JSON Schema)."""

    model: str
    messages: list[Message]
    tools: list[dict[str, Any]] = field(default_factory=list)
    run_id: str = ""


@dataclass(frozen=True, slots=True)
class ModelResponse:
    text: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True)
class ModelDelta:
    """A piece of the response text, as it is produced."""

    text: str


class ModelProvider(Protocol):
    """A model behind one small interface.

    Failures raise :class:`~agent_sdk.errors.ModelError`; ``retryable=True`` marks the ones worth
    trying again (rate limits, timeouts, 5xx), so a worker can decide without knowing the vendor.
    """

    name: str

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """The whole response at once."""
        ...

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelDelta | ModelResponse]:
        """Text deltas as they come, then exactly one :class:`ModelResponse`."""
        ...
