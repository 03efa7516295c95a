"""The one agent loop, shared by ``Agent.run`` and the server's workers.

Each step is one model turn. A turn that asks for tools runs them (concurrently) and sends the
results back; a turn without tool calls is the final answer, checked against the agent's
``output_type`` if it has one. The loop reports what happens through ``env.emit`` and knows no
store, queue or HTTP server; the caller writes the run's lifecycle events (``run.started`` and
the terminal one), so a run started from Python and one started by a worker emit the same events.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypedDict

from agent_sdk.config import Settings
from agent_sdk.engine.journal import Journal
from agent_sdk.engine.models.base import (
    Message,
    ModelDelta,
    ModelProvider,
    ModelRequest,
    ModelResponse,
    ToolCall,
)
from agent_sdk.engine.storable import Replaced, make_storable
from agent_sdk.engine.tools import Tool, ToolContext
from agent_sdk.errors import AgentSDKError, InvalidInput, ModelError, QuotaExceeded, ToolError
from agent_sdk.records import Event, EventType, Usage


class Agent(Protocol):
    """What the loop reads of an agent (:class:`agent_sdk.engine.agent.Agent` has it). Named
    here, not imported, so the loop does not depend on the module that builds agents."""

    instructions: str
    model: str | ModelProvider
    max_steps: int | None
    max_tokens: int | None

    def provider(self, *, allow_model_requests: bool = True) -> ModelProvider: ...

    def resolve_tools(self) -> dict[str, Tool]: ...

    def resolve_output_type(self) -> Any: ...


def _never() -> bool:
    return False


def _nothing_held() -> None:
    return None


@dataclass
class RunEnv:
    """Everything a run needs from its caller.

    ``emit(type, data)`` records an event (it may raise, e.g. when the event cap is reached, and
    that ends the run). A caller may hold emitted events back and write several together:
    ``flush()`` is called before every call out of the loop (a model request, a batch of tool
    calls), and must write what is held back (or raise, which ends the run), so no model or
    tool is called before the events leading to the call are recorded. The events emitted after
    the last call out are the caller's to write with the run's end.
    ``allow_model_requests=False`` refuses every provider but ``scripted``.
    """

    run_id: str
    org_id: str
    emit: Callable[[str, dict[str, Any]], None]
    tool_context: ToolContext
    max_steps: int
    max_tokens: int
    stream_deltas: bool = False
    cancelled: Callable[[], bool] = field(default=_never)
    allow_model_requests: bool = True
    # What earlier attempts of this run recorded: replayed instead of repeated (engine/journal).
    journal: Journal | None = None
    flush: Callable[[], None] = field(default=_nothing_held)


@dataclass(frozen=True)
class RunResult:
    """The outcome of a run: ``output`` is the validated ``output_type`` value (else the text)."""

    output: Any
    text: str
    usage: Usage
    steps: int
    events: list[Event] | None = None


def _check_cancelled(env: RunEnv) -> None:
    if env.cancelled():
        raise asyncio.CancelledError()


def _limit(deployment: int, agent: int | None) -> int:
    # The deployment's limit is a ceiling: an agent may ask for less, never for more.
    return min(deployment, agent) if agent else deployment


def _storable(response: ModelResponse) -> tuple[ModelResponse, Replaced]:
    """The response with its text and tool calls made storable (see engine/storable.py)."""
    replaced = Replaced()
    calls = [
        ToolCall(replaced.value(c.id), replaced.value(c.name), replaced.value(c.arguments))
        for c in response.tool_calls
    ]
    text = None if response.text is None else replaced.value(response.text)
    if not replaced:
        return response, replaced
    return ModelResponse(text=text, tool_calls=calls, usage=response.usage), replaced


async def _ask(
    provider: ModelProvider, request: ModelRequest, env: RunEnv
) -> tuple[ModelResponse, Replaced]:
    """The model's response, made storable before the loop (or a store) sees any of it."""
    if not env.stream_deltas:
        return _storable(await provider.complete(request))
    response: ModelResponse | None = None
    async for item in provider.stream(request):
        if isinstance(item, ModelDelta):
            if item.text:
                text, replaced = make_storable(item.text)
                data: dict[str, Any] = {"text": text}
                if replaced:
                    data["replaced"] = replaced.note()
                env.emit(EventType.MODEL_DELTA.value, data)
            _check_cancelled(env)
        else:
            response = item
    if response is None:
        raise ModelError(f"model provider {provider.name!r} ended its stream without a response")
    return _storable(response)


async def _call_tool(tools: dict[str, Tool], call: ToolCall, ctx: ToolContext) -> dict[str, Any]:
    """The tool.result data of one call. Every failure is data for the model, not a crash."""
    base = {"id": call.id, "name": call.name}
    tool = tools.get(call.name)
    try:
        if tool is None:
            known = ", ".join(sorted(tools)) or "(none)"
            raise ToolError(f"unknown tool {call.name!r}; available tools: {known}")
        result = await tool.call(ctx, call.arguments)
        if not isinstance(result, str):
            try:
                json.dumps(result)  # results travel in events: refuse what JSON cannot carry
            except (TypeError, ValueError) as exc:
                raise ToolError(f"tool returned a value that is not JSON: {exc}") from None
    except AgentSDKError as exc:
        return _storable_result({**base, "ok": False, "error": exc.message})
    except Exception as exc:  # a bug in a user's tool: report it to the model, keep the run
        return _storable_result({**base, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
    return _storable_result({**base, "ok": True, "result": result})


def _storable_result(data: dict[str, Any]) -> dict[str, Any]:
    """A tool's result (or error) made storable, noting what was replaced (engine/storable)."""
    clean, replaced = make_storable(data)
    if replaced:
        clean["replaced"] = replaced.note()
    return dict(clean)


async def _replay_or_call(
    tools: dict[str, Tool], call: ToolCall, ctx: ToolContext, journal: Journal
) -> dict[str, Any]:
    recorded = journal.results.get(call.id)
    if recorded is not None:  # recorded before text was made storable, it may need it now
        return dict(make_storable(recorded)[0])
    return await _call_tool(tools, call, ctx)


def _tool_message(data: dict[str, Any]) -> Message:
    if data["ok"]:
        result = data["result"]
        content = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    else:
        content = f"Error: {data['error']}"
    return Message(role="tool", content=content, tool_call_id=data["id"], name=data["name"])


_FENCE = re.compile(r"^```[\w-]*\s*\n(.*)\n\s*```$", re.DOTALL)


def parse_output(output_type: Any, text: str) -> Any:
    """The final text as ``output_type`` (JSON, validated by pydantic); ValueError if not."""
    if output_type is None or output_type is str:
        return text
    from pydantic import TypeAdapter, ValidationError

    stripped = text.strip()
    fenced = _FENCE.match(stripped)  # models like to wrap JSON in a ```json fence
    if fenced:
        stripped = fenced.group(1)
    try:
        adapter = TypeAdapter(output_type)
    except Exception as exc:  # not a type pydantic understands: the agent is misconfigured
        raise InvalidInput(f"output_type {output_type!r} is not usable: {exc}") from None
    try:
        return adapter.validate_json(stripped)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(x) for x in err['loc']) or '(output)'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        ]
        raise ValueError("; ".join(problems)) from None


async def execute(agent: Agent, input: str, env: RunEnv) -> RunResult:
    """Run ``agent`` on ``input`` until it answers; raise on a model error, a limit or cancel."""
    provider = agent.provider(allow_model_requests=env.allow_model_requests)
    tools = agent.resolve_tools()
    output_type = agent.resolve_output_type()
    specs = [
        {"name": t.name, "description": t.description, "parameters": t.parameters}
        for t in tools.values()
    ]
    max_steps = _limit(env.max_steps, agent.max_steps)
    max_tokens = _limit(env.max_tokens, agent.max_tokens)
    messages: list[Message] = []
    if agent.instructions:
        messages.append(Message(role="system", content=agent.instructions))
    messages.append(Message(role="user", content=input))
    model_name = agent.model if isinstance(agent.model, str) else provider.name
    usage = Usage()
    steps = 0
    journal = env.journal or Journal()
    while True:
        if steps >= max_steps:
            raise QuotaExceeded(
                f"run exceeded max_steps={max_steps}",
                hint="raise AGENT_SDK_MAX_STEPS or the agent's max_steps",
            )
        _check_cancelled(env)
        steps += 1
        if steps not in journal.requested:
            env.emit(
                EventType.MODEL_REQUEST.value, {"step": steps, "messages_count": len(messages)}
            )
        recorded = journal.responses.get(steps)
        if recorded is not None:
            response = _storable(recorded)[0]
        else:
            request = ModelRequest(
                model=model_name, messages=list(messages), tools=specs, run_id=env.run_id
            )
            env.flush()
            response, replaced = await _ask(provider, request, env)
            data: dict[str, Any] = {
                "step": steps,
                "text": response.text,
                "tool_calls": [c.to_dict() for c in response.tool_calls],
                "usage": response.usage.to_dict(),
            }
            if replaced:
                data["replaced"] = replaced.note()
            env.emit(EventType.MODEL_RESPONSE.value, data)
        usage = usage + response.usage
        if usage.total_tokens > max_tokens:
            raise QuotaExceeded(
                f"run exceeded max_tokens={max_tokens} (used {usage.total_tokens})",
                hint="raise AGENT_SDK_MAX_TOKENS or the agent's max_tokens",
            )
        messages.append(
            Message(role="assistant", content=response.text, tool_calls=list(response.tool_calls))
        )
        if response.tool_calls:
            for call in response.tool_calls:
                _check_cancelled(env)
                if call.id not in journal.called:
                    env.emit(EventType.TOOL_CALL.value, call.to_dict())
            # Concurrent, but results are emitted and sent back in the order of the calls.
            env.flush()
            results = await asyncio.gather(
                *(_replay_or_call(tools, call, env.tool_context, journal)
                  for call in response.tool_calls)
            )  # fmt: skip
            for call, data in zip(response.tool_calls, results, strict=True):
                if call.id not in journal.results:
                    env.emit(EventType.TOOL_RESULT.value, data)
                messages.append(_tool_message(data))
            continue
        text = response.text or ""
        try:
            output = parse_output(output_type, text)
        except ValueError as exc:
            # Like a bad tool argument, a bad answer goes back to the model as one more turn.
            messages.append(
                Message(
                    role="user",
                    content="Your answer does not match the required output type: "
                    f"{exc}. Reply again with only the JSON value.",
                )
            )
            continue
        return RunResult(output=output, text=text, usage=usage, steps=steps)


# -- the Python path: Agent.run/stream build their env and record events with these -------------


class RunOptions(TypedDict, total=False):
    """Keyword options of ``run``/``run_sync``/``stream``. Unset ones come from ``settings``
    (default: ``Settings()``, never the environment: library code does not read it)."""

    run_id: str
    org_id: str
    settings: Settings
    max_steps: int
    max_tokens: int
    fs_roots: Sequence[str]
    http_allowlist: Sequence[str]
    http_timeout: float
    allow_model_requests: bool
    cancelled: Callable[[], bool]
    stream_deltas: bool


def new_run_id() -> str:
    return "run_" + uuid.uuid4().hex


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class EventRecorder:
    """Numbers events from 1 and keeps them; also feeds a stream's queue."""

    def __init__(self, run_id: str, queue: asyncio.Queue[Event | None] | None = None) -> None:
        self.run_id = run_id
        self.events: list[Event] = []
        self.queue = queue

    def emit(self, type: str, data: dict[str, Any]) -> None:
        event = Event(self.run_id, len(self.events) + 1, str(type), now(), data)
        self.events.append(event)
        if self.queue is not None:
            self.queue.put_nowait(event)


def local_env(recorder: EventRecorder, opts: RunOptions) -> RunEnv:
    """The RunEnv of a run started from Python (Agent.run and friends)."""
    s = opts.get("settings") or Settings()
    roots = opts.get("fs_roots", s.engine.fs_allowlist)
    cancelled = opts.get("cancelled") or (lambda: False)
    tool_context = ToolContext(
        run_id=recorder.run_id,
        org_id=opts.get("org_id", s.client.org_id or "default"),
        # Settings resolve roots already; fs_roots given here may be relative (to the cwd).
        fs_roots=tuple(os.path.abspath(r) for r in roots),
        http_allowlist=tuple(opts.get("http_allowlist", s.engine.http_allowlist)),
        http_timeout=opts.get("http_timeout", s.engine.http_timeout),
        cancelled=cancelled,
    )
    return RunEnv(
        run_id=recorder.run_id,
        org_id=tool_context.org_id,
        emit=recorder.emit,
        tool_context=tool_context,
        max_steps=opts.get("max_steps", s.engine.max_steps),
        max_tokens=opts.get("max_tokens", s.engine.max_tokens),
        stream_deltas=opts.get("stream_deltas", False),
        cancelled=cancelled,
        allow_model_requests=opts.get("allow_model_requests", s.engine.allow_model_requests),
    )


__all__ = [
    "EventRecorder",
    "RunEnv",
    "RunOptions",
    "RunResult",
    "execute",
    "local_env",
    "new_run_id",
    "parse_output",
]
