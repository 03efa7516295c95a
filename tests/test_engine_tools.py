"""The @tool decorator: schema from hints and docstring, validation, the context parameter."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from agent_sdk.engine.tools import FunctionTool, ToolContext, is_tool, parse_docstring, tool
from agent_sdk.errors import InvalidInput, ToolError

CTX = ToolContext(run_id="run_1", org_id="acme")


def call(t: FunctionTool, arguments: dict[str, Any], ctx: ToolContext = CTX) -> Any:
    return asyncio.run(t.call(ctx, arguments))


class Point(BaseModel):
    x: int
    y: int = 0


@tool
def get_weather(city: str, days: int = 1, units: Literal["c", "f"] = "c") -> dict[str, Any]:
    """Get the weather forecast for a city.

    Uses the offline table.

    Args:
        city: The city name,
            as people write it.
        days (int): How many days ahead.

    Returns:
        The forecast.
    """
    return {"city": city, "days": days, "units": units}


def test_name_description_and_exact_schema() -> None:
    assert get_weather.name == "get_weather"
    assert (
        get_weather.description == "Get the weather forecast for a city.\n\nUses the offline table."
    )
    assert get_weather.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city name, as people write it."},
            "days": {"type": "integer", "default": 1, "description": "How many days ahead."},
            "units": {"type": "string", "enum": ["c", "f"], "default": "c"},
        },
        "required": ["city"],
    }


def test_nested_models_lists_and_optionals() -> None:
    @tool(name="geo.plot", description="Plot points.")
    def plot(points: list[Point], label: str | None = None) -> int:
        return len(points)

    assert plot.name == "geo.plot" and plot.description == "Plot points."
    assert plot.parameters == {
        "type": "object",
        "properties": {
            "points": {"type": "array", "items": {"$ref": "#/$defs/Point"}},
            "label": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        },
        "required": ["points"],
        "$defs": {
            "Point": {
                "type": "object",
                "title": "Point",
                "properties": {"x": {"type": "integer"}, "y": {"type": "integer", "default": 0}},
                "required": ["x"],
            }
        },
    }
    assert call(plot, {"points": [{"x": 1}, {"x": 2, "y": 3}]}) == 2


def test_arguments_named_like_pydantic_attributes_are_fine() -> None:
    @tool
    def odd(json: str, schema: int, model_id: str = "m") -> str:
        return f"{json}-{schema}-{model_id}"

    assert set(odd.parameters["properties"]) == {"json", "schema", "model_id"}
    assert call(odd, {"json": "j", "schema": 2}) == "j-2-m"


def test_unannotated_parameters_accept_anything() -> None:
    @tool
    def loose(value, flag=False):  # type: ignore[no-untyped-def]
        return [value, flag]

    assert loose.parameters["properties"] == {"value": {}, "flag": {"default": False}}
    assert call(loose, {"value": {"a": 1}}) == [{"a": 1}, False]


def test_arguments_are_validated_and_converted() -> None:
    assert call(get_weather, {"city": "Oslo", "days": "3"}) == {
        "city": "Oslo",
        "days": 3,
        "units": "c",
    }


def test_validation_error_lists_every_problem() -> None:
    with pytest.raises(ToolError) as info:
        call(get_weather, {"days": "many", "units": "k"})
    message = info.value.message
    assert message.startswith("invalid arguments for tool 'get_weather': ")
    assert "city: Field required" in message
    assert "days: Input should be a valid integer" in message
    assert "units: Input should be 'c' or 'f'" in message


def test_non_object_arguments_are_a_tool_error() -> None:
    with pytest.raises(ToolError, match="expected an object"):
        call(get_weather, ["Oslo"])  # type: ignore[arg-type]


def test_context_recognised_by_annotation_on_the_first_parameter() -> None:
    @tool
    def whoami(ctx: ToolContext, prefix: str = "") -> str:
        return prefix + ctx.org_id

    assert whoami.parameters == {
        "type": "object",
        "properties": {"prefix": {"type": "string", "default": ""}},
    }
    assert call(whoami, {"prefix": "org="}) == "org=acme"


def test_a_parameter_named_ctx_without_the_annotation_is_an_argument() -> None:
    @tool
    def echo(ctx: str) -> str:
        return ctx

    assert echo.parameters["required"] == ["ctx"]
    assert call(echo, {"ctx": "plain"}) == "plain"


def test_context_in_a_later_position_is_refused() -> None:
    @tool
    def late(x: int, ctx: ToolContext) -> int:
        return x

    with pytest.raises(InvalidInput, match="must come first"):
        late.parameters  # noqa: B018 - building the schema is what fails


def test_var_args_are_refused() -> None:
    def f(*args: int) -> None: ...

    with pytest.raises(InvalidInput, match=r"\*args"):
        tool(f)


def test_sync_tools_run_in_a_thread_and_async_tools_are_awaited() -> None:
    main = threading.get_ident()

    @tool
    def sync_tool() -> bool:
        return threading.get_ident() != main

    @tool
    async def async_tool(n: int) -> int:
        await asyncio.sleep(0)
        return threading.get_ident() == main and n * 2

    assert call(sync_tool, {}) is True
    assert call(async_tool, {"n": 4}) == 8


def test_the_tool_is_still_callable_as_the_function() -> None:
    assert get_weather("Rome", days=2) == {"city": "Rome", "days": 2, "units": "c"}
    assert get_weather.__name__ == "get_weather" and get_weather.__doc__
    assert is_tool(get_weather) and not is_tool(lambda: None)


def test_results_become_json_ready() -> None:
    @tool
    def make() -> Point:
        return Point(x=1)

    assert call(make, {}) == {"x": 1, "y": 0}


def test_tool_errors_raised_by_the_function_pass_through() -> None:
    @tool
    def fail() -> None:
        raise ToolError("no such city")

    with pytest.raises(ToolError, match="no such city"):
        call(fail, {})


@tool
def uses_later(item: Later) -> str:
    return item.name


class Later(BaseModel):  # defined after the tool that uses it: the schema is built lazily
    name: str


def test_schema_is_built_lazily_so_later_names_resolve() -> None:
    assert uses_later.parameters["required"] == ["item"]
    assert call(uses_later, {"item": {"name": "z"}}) == "z"


def test_bad_tool_names_are_refused() -> None:
    with pytest.raises(InvalidInput, match="invalid tool name"):
        tool(name="has space")(lambda: None)


def test_docstring_parser() -> None:
    description, args = parse_docstring(
        """Do it.

        Arguments:
            a (str): First
                continued.
            *rest: Ignored star.
        Raises:
            ValueError: never.
        """
    )
    assert description == "Do it."
    assert args == {"a": "First continued.", "rest": "Ignored star."}
    assert parse_docstring(None) == ("", {})
