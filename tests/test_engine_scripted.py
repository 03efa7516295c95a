"""The scripted model (the offline default provider) and provider selection."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from agent_sdk.engine.models import get_provider
from agent_sdk.engine.models.base import Message, ModelDelta, ModelRequest, ModelResponse
from agent_sdk.engine.models.scripted import (
    TOOL_CALL_TOKENS,
    ScriptedModel,
    chunk_text,
    render,
    validate_script,
)
from agent_sdk.errors import ConfigError, InvalidInput, ModelError, PermissionDenied


def request(*messages: Message) -> ModelRequest:
    return ModelRequest(model="scripted", messages=list(messages), run_id="run_1")


def user(text: str) -> Message:
    return Message(role="user", content=text)


def assistant(text: str | None = None) -> Message:
    return Message(role="assistant", content=text)


def tool_msg(text: str) -> Message:
    return Message(role="tool", content=text, tool_call_id="c", name="t")


def complete(model: ScriptedModel, req: ModelRequest) -> ModelResponse:
    return asyncio.run(model.complete(req))


# -- turns and templating ------------------------------------------------------------------------


def test_turn_i_answers_the_request_holding_i_assistant_turns() -> None:
    model = ScriptedModel([{"text": "first"}, {"text": "second"}])
    assert complete(model, request(user("hi"))).text == "first"
    assert complete(model, request(user("hi"), assistant("first"), user("more"))).text == "second"


def test_templates_fill_input_and_last_tool_result() -> None:
    model = ScriptedModel([{"text": "You said {input}; tool said {tool_result}."}])
    req = request(
        Message(role="system", content="be brief"),
        user("hello there"),
        tool_msg("old"),
        tool_msg("new"),
    )
    assert complete(model, req).text == "You said hello there; tool said new."


def test_templates_leave_unknown_and_json_braces_alone() -> None:
    template = '{"answer": {input}, "x": {unknown}, "y": {0}, "z": {{input}}, "w": {'
    assert render(template, {"input": "1"}) == (
        '{"answer": 1, "x": {unknown}, "y": {0}, "z": {1}, "w": {'
    )
    # One pass: text substituted in is never substituted again.
    assert render("{input}", {"input": "{tool_result}", "tool_result": "X"}) == "{tool_result}"


def test_tool_call_turns_and_the_shorthand() -> None:
    model = ScriptedModel(
        [
            {"tool": "fs.read", "arguments": {"path": "{input}"}},
            {"tool_calls": [{"name": "a"}, {"name": "b", "arguments": {"n": 1}, "id": "mine"}]},
        ]
    )
    first = complete(model, request(user("notes.txt")))
    assert first.text is None
    assert [(c.id, c.name, c.arguments) for c in first.tool_calls] == [
        ("call_0_0", "fs.read", {"path": "notes.txt"})
    ]
    second = complete(model, request(user("x"), assistant()))
    assert [(c.id, c.name, c.arguments) for c in second.tool_calls] == [
        ("call_1_0", "a", {}),
        ("mine", "b", {"n": 1}),
    ]


def test_error_turn_raises_model_error_with_retryable() -> None:
    model = ScriptedModel([{"error": "overloaded", "retryable": True}, {"error": "bad"}])
    with pytest.raises(ModelError, match="overloaded") as info:
        complete(model, request(user("x")))
    assert info.value.retryable is True
    with pytest.raises(ModelError) as info:
        complete(model, request(user("x"), assistant()))
    assert info.value.retryable is False


def test_exhausted_script_repeats_the_last_text_turn_else_echoes() -> None:
    model = ScriptedModel([{"text": "done: {input}"}, {"tool": "t"}])
    req = request(user("q"), assistant(), assistant(), assistant())
    assert complete(model, req).text == "done: q"
    assert complete(ScriptedModel(), request(user("echo me"))).text == "echo me"
    assert complete(ScriptedModel([{"tool": "t"}]), request(user("e"), assistant())).text == "e"


def test_usage_counts_words() -> None:
    model = ScriptedModel(
        [{"text": "one two three"}, {"tool_calls": [{"name": "a"}, {"name": "b"}]}]
    )
    resp = complete(model, request(Message(role="system", content="a b"), user("c d e")))
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (5, 3)
    resp = complete(model, request(user("x"), assistant("one two three")))
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (4, 2 * TOOL_CALL_TOKENS)


def test_latency_waits_with_asyncio_sleep_so_runs_overlap() -> None:
    """Counted, not timed: a wait that blocked the loop would let one call in at a time."""
    model = ScriptedModel([{"text": "a"}], latency=0.2)
    in_flight = peak = 0

    async def one() -> ModelResponse:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await model.complete(request(user("x")))
        finally:
            in_flight -= 1

    async def many() -> list[ModelResponse]:
        return await asyncio.gather(*(one() for _ in range(200)))

    assert len(asyncio.run(many())) == 200
    assert peak == 200, f"at most {peak} of 200 calls were waiting at once"


def test_a_turn_latency_overrides_the_model_latency() -> None:
    model = ScriptedModel([{"text": "a", "latency": 0}], latency=60)
    started = time.monotonic()
    complete(model, request(user("x")))
    assert time.monotonic() - started < 20  # not the model's 60 s


def test_stream_yields_word_chunks_then_the_response() -> None:
    model = ScriptedModel([{"text": "one two three four five six seven"}])

    async def collect() -> list[Any]:
        return [item async for item in model.stream(request(user("x")))]

    items = asyncio.run(collect())
    deltas, final = items[:-1], items[-1]
    assert all(isinstance(d, ModelDelta) for d in deltas) and len(deltas) == 3
    assert isinstance(final, ModelResponse)
    assert "".join(d.text for d in deltas) == final.text


@pytest.mark.parametrize("text", ["", "a", "  lead and trail  ", "x\n\ny z w\tq", "one two three"])
def test_chunks_concatenate_to_the_text(text: str) -> None:
    assert "".join(chunk_text(text)) == text


# -- validation --------------------------------------------------------------------------------


def test_validate_normalises_the_shorthand() -> None:
    assert validate_script([{"tool": "x"}, {"text": "t", "latency": 1}]) == [
        {"tool_calls": [{"name": "x", "arguments": {}}]},
        {"text": "t", "latency": 1.0},
    ]
    assert validate_script(None) == []


@pytest.mark.parametrize(
    ("script", "index", "words"),
    [
        ([{"text": "ok"}, {"txt": "typo"}], 1, "unknown key"),
        ([{"text": 3}], 0, "'text' must be a string"),
        ([{"text": "a"}, {}], 1, "needs 'text'"),
        ([{"tool": "a", "error": "b"}], 0, "only one of"),
        ([{"tool_calls": []}], 0, "non-empty list"),
        ([{"tool_calls": [{"arguments": {}}]}], 0, "name"),
        ([{"tool": "a", "arguments": [1]}], 0, "must be an object"),
        ([{"error": "x", "retryable": "yes"}], 0, "true or false"),
        ([{"text": "a", "latency": -1}], 0, "latency"),
        ([{"text": "a", "latency": float("nan")}], 0, "latency"),
        (["hello"], 0, "must be an object"),
    ],
)
def test_validate_names_the_bad_turn(script: Any, index: int, words: str) -> None:
    with pytest.raises(InvalidInput, match=rf"script\[{index}\]") as info:
        validate_script(script)
    assert words in info.value.message
    assert info.value.details["index"] == index


def test_validate_refuses_a_non_list() -> None:
    with pytest.raises(InvalidInput, match="list of turns"):
        validate_script("nope")


# -- providers ---------------------------------------------------------------------------------


def test_get_provider_scripted() -> None:
    provider = get_provider("scripted:any", script=[{"text": "hi"}], latency=0.5)
    assert isinstance(provider, ScriptedModel)
    assert provider.name == "scripted" and provider.latency == 0.5 and provider.script


def test_planned_provider_is_not_available_in_this_version() -> None:
    with pytest.raises(ConfigError, match="not available in this version") as info:
        get_provider("openai:gpt-4o")
    assert "scripted" in (info.value.hint or "")


def test_unknown_provider_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="unknown model provider 'scriptd'") as info:
        get_provider("scriptd")
    assert "did you mean 'scripted'" in (info.value.hint or "")


def test_disabled_model_requests_refuse_real_providers_only() -> None:
    with pytest.raises(PermissionDenied, match="AGENT_SDK_ALLOW_MODEL_REQUESTS=false"):
        get_provider("anthropic:claude", allow_model_requests=False)
    assert isinstance(get_provider("scripted", allow_model_requests=False), ScriptedModel)


def test_empty_model_string() -> None:
    with pytest.raises(ConfigError):
        get_provider(" ")
