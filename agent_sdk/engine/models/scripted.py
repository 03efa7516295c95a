"""The scripted model: the offline, deterministic default provider (model string ``scripted``).

A script is a list of turns; turn *i* of a run answers the request that already holds *i*
assistant messages, so a run replays the same way every time. A turn is one of::

    {"text": "Hello {input}"}                                  final answer (templated)
    {"tool_calls": [{"name": "fs.read", "arguments": {...}}]}  ask for tools (optional "text")
    {"tool": "fs.read", "arguments": {...}}                    shorthand for one tool call
    {"error": "overloaded", "retryable": true}                 raise ModelError

and any turn may carry ``"latency": seconds``. Templates know two names only: ``{input}`` (the
first user message) and ``{tool_result}`` (the content of the last tool message); every other
brace is left as written, so JSON answers need no escaping. Past the end of the script the model
repeats the last text turn, or echoes ``{input}``.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator
from typing import Any

from agent_sdk.engine.models.base import (
    Message,
    ModelDelta,
    ModelRequest,
    ModelResponse,
    ToolCall,
)
from agent_sdk.errors import InvalidInput, ModelError
from agent_sdk.records import Usage

# Tokens charged per requested tool call, on top of the words of the answer: a call is not free.
TOOL_CALL_TOKENS = 3
# Words per stream delta: enough chunks to exercise streaming, few enough to stay cheap.
WORDS_PER_DELTA = 3
# A turn that sleeps longer than this is a mistake in the script, not a test of patience.
MAX_LATENCY = 3600.0

_TURN_KEYS = {"text", "tool_calls", "tool", "arguments", "error", "retryable", "latency"}
_PLACEHOLDER = re.compile(r"\{(input|tool_result)\}")


def _bad(index: int, message: str) -> InvalidInput:
    return InvalidInput(f"script[{index}]: {message}", index=index)


def _latency(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{where} must be a number of seconds")
    if not math.isfinite(value) or not 0 <= value <= MAX_LATENCY:
        raise InvalidInput(f"{where} must be between 0 and {MAX_LATENCY:g} seconds")
    return float(value)


def _call(index: int, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _bad(index, "each tool call must be an object with a name")
    unknown = set(raw) - {"id", "name", "arguments"}
    if unknown:
        raise _bad(index, f"unknown tool call key(s): {', '.join(sorted(unknown))}")
    name, arguments = raw.get("name"), raw.get("arguments", {})
    if not isinstance(name, str) or not name:
        raise _bad(index, "a tool call needs a non-empty string 'name'")
    if not isinstance(arguments, dict):
        raise _bad(index, f"the arguments of tool call {name!r} must be an object")
    out: dict[str, Any] = {"name": name, "arguments": arguments}
    if "id" in raw:
        if not isinstance(raw["id"], str) or not raw["id"]:
            raise _bad(index, "a tool call 'id' must be a non-empty string")
        out["id"] = raw["id"]
    return out


def _turn(index: int, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _bad(index, "a turn must be an object with 'text', 'tool_calls', 'tool' or 'error'")
    unknown = set(raw) - _TURN_KEYS
    if unknown:
        raise _bad(index, f"unknown key(s): {', '.join(sorted(unknown))}")
    kinds = [k for k in ("tool_calls", "tool", "error") if k in raw]
    if len(kinds) > 1:
        raise _bad(index, f"a turn takes only one of: {', '.join(kinds)}")
    out: dict[str, Any] = {}
    if "latency" in raw:
        try:
            out["latency"] = _latency(raw["latency"], "'latency'")
        except InvalidInput as exc:
            raise _bad(index, exc.message) from None
    if "arguments" in raw and "tool" not in raw:
        raise _bad(index, "'arguments' belongs to the 'tool' shorthand")
    if "retryable" in raw and "error" not in raw:
        raise _bad(index, "'retryable' belongs to an 'error' turn")
    if "error" in raw:
        if not isinstance(raw["error"], str) or "text" in raw:
            raise _bad(index, "an error turn is {'error': 'message', 'retryable': bool}")
        if not isinstance(raw.get("retryable", False), bool):
            raise _bad(index, "'retryable' must be true or false")
        return {**out, "error": raw["error"], "retryable": raw.get("retryable", False)}
    if "text" in raw:
        if not isinstance(raw["text"], str):
            raise _bad(index, "'text' must be a string")
        out["text"] = raw["text"]
    if "tool" in raw:
        out["tool_calls"] = [_call(index, {"name": raw["tool"], **_args(raw)})]
    elif "tool_calls" in raw:
        calls = raw["tool_calls"]
        if not isinstance(calls, list) or not calls:
            raise _bad(index, "'tool_calls' must be a non-empty list")
        out["tool_calls"] = [_call(index, c) for c in calls]
    if "text" not in out and "tool_calls" not in out:
        raise _bad(index, "a turn needs 'text', 'tool_calls', 'tool' or 'error'")
    return out


def _args(raw: dict[str, Any]) -> dict[str, Any]:
    return {"arguments": raw["arguments"]} if "arguments" in raw else {}


def validate_script(obj: Any) -> list[dict[str, Any]]:
    """Check a script and return it normalised (the ``tool`` shorthand expanded).

    Raises :class:`InvalidInput` naming the index of the first bad turn.
    """
    if obj is None:
        return []
    if not isinstance(obj, list | tuple):
        raise InvalidInput("a script must be a list of turns", hint='e.g. [{"text": "hi"}]')
    return [_turn(i, t) for i, t in enumerate(obj)]


def render(template: str, values: dict[str, str]) -> str:
    """Replace ``{input}`` and ``{tool_result}`` in one pass; leave every other brace alone."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def _render_value(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return render(value, values)
    if isinstance(value, list):
        return [_render_value(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _render_value(v, values) for k, v in value.items()}
    return value


def _words(text: str | None) -> int:
    return len(text.split()) if text else 0


class ScriptedModel:
    """A deterministic, offline :class:`~agent_sdk.engine.models.base.ModelProvider`."""

    name = "scripted"

    def __init__(self, script: list[dict[str, Any]] | None = None, latency: float = 0.0) -> None:
        self.script = validate_script(script)
        self.latency = _latency(latency, "latency")

    def __repr__(self) -> str:
        return f"ScriptedModel(turns={len(self.script)}, latency={self.latency})"

    def _turn_for(self, messages: list[Message]) -> dict[str, Any]:
        index = sum(1 for m in messages if m.role == "assistant")
        if index < len(self.script):
            return self.script[index]
        # Exhausted: answer like the last text turn, so a script can end with its final answer
        # and still cope with extra turns (an output_type retry, a longer tool loop).
        for turn in reversed(self.script):
            if "text" in turn and "tool_calls" not in turn:
                return {"text": turn["text"]}
        return {"text": "{input}"}

    async def complete(self, request: ModelRequest) -> ModelResponse:
        turn = self._turn_for(request.messages)
        delay = turn.get("latency", self.latency)
        if delay:
            await asyncio.sleep(delay)
        if "error" in turn:
            raise ModelError(turn["error"], retryable=turn["retryable"])
        values = {
            "input": next((m.content or "" for m in request.messages if m.role == "user"), ""),
            "tool_result": next(
                (m.content or "" for m in reversed(request.messages) if m.role == "tool"), ""
            ),
        }
        text = render(turn["text"], values) if "text" in turn else None
        step = sum(1 for m in request.messages if m.role == "assistant")
        calls = [
            ToolCall(
                id=c.get("id") or f"call_{step}_{j}",
                name=c["name"],
                arguments=_render_value(c["arguments"], values),
            )
            for j, c in enumerate(turn.get("tool_calls", ()))
        ]
        usage = Usage(
            input_tokens=sum(_words(m.content) for m in request.messages),
            output_tokens=_words(text) + TOOL_CALL_TOKENS * len(calls),
        )
        return ModelResponse(text=text, tool_calls=calls, usage=usage)

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelDelta | ModelResponse]:
        response = await self.complete(request)
        for chunk in chunk_text(response.text or ""):
            yield ModelDelta(chunk)
            await asyncio.sleep(0)  # let readers of the stream run between deltas
        yield response


def chunk_text(text: str, words: int = WORDS_PER_DELTA) -> list[str]:
    """Split text into chunks of a few words whose concatenation is exactly ``text``."""
    pieces = re.findall(r"\s*\S+", text)
    if not pieces:
        return [text] if text else []
    pieces[-1] += text[len("".join(pieces)) :]  # trailing whitespace stays with the last word
    return ["".join(pieces[i : i + words]) for i in range(0, len(pieces), words)]
