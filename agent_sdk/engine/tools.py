"""Tools: what a tool is, the context it receives, and the ``@tool`` decorator.

``@tool`` turns a plain function into a :class:`FunctionTool`::

    @tool
    def get_weather(city: str, days: int = 1) -> dict:
        '''Get the forecast.

        Args:
            city: The city name.
            days: How many days ahead.
        '''

The name comes from the function, the description and per-argument text from the Google-style
docstring, the JSON Schema from the type hints through pydantic's public API, and the model's
arguments are validated with that same pydantic model. Pydantic is imported on first use, not at
import time: defining tools must not slow down the CLI's start.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, overload

from agent_sdk.errors import InvalidInput, ToolError


def _never() -> bool:
    return False


@dataclass(frozen=True)
class ToolContext:
    """What a tool may reach: the run it serves, its allowlists, and a cancellation probe.

    ``fs_roots`` are absolute paths (``AGENT_SDK_FS_ALLOWLIST`` resolved); an empty tuple refuses
    every file access. ``cancelled()`` turns true when the run should stop; long tools poll it.
    """

    run_id: str
    org_id: str = "default"
    fs_roots: tuple[str, ...] = ()
    http_allowlist: tuple[str, ...] = ()
    http_timeout: float = 10.0
    cancelled: Callable[[], bool] = field(default=_never, compare=False)


class Tool(Protocol):
    """A tool: a name, a description, the JSON Schema of its input and an async call.

    ``call`` returns a JSON-serialisable result or raises :class:`ToolError`, whose message goes
    back to the model.
    """

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def parameters(self) -> dict[str, Any]: ...

    async def call(self, ctx: ToolContext, arguments: dict[str, Any]) -> Any: ...


def is_tool(obj: Any) -> bool:
    """Duck-typed Tool check that does not touch ``parameters`` (which may be built lazily)."""
    return (
        not inspect.isroutine(obj)
        and isinstance(getattr(obj, "name", None), str)
        and callable(getattr(obj, "call", None))
    )


# -- docstrings ----------------------------------------------------------------------------

_SECTION = re.compile(r"^(\w[\w ]*):\s*$")
_ARG_SECTIONS = {"args", "arguments", "parameters", "params", "keyword args", "keyword arguments"}
_ARG_LINE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (description, {argument: text})."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    args: dict[str, list[str]] = {}
    section: str | None = None
    current: str | None = None
    arg_indent = 0
    for line in lines:
        header = _SECTION.match(line)
        if header and not line.startswith((" ", "\t")):
            section, current = header.group(1).strip().lower(), None
            continue
        if section is None:
            summary.append(line)
        elif section in _ARG_SECTIONS and line.strip():
            indent = len(line) - len(line.lstrip())
            match = _ARG_LINE.match(line.strip())
            if match and (current is None or indent <= arg_indent):
                current, arg_indent = match.group(1), indent
                args[current] = [match.group(2).strip()]
            elif current is not None:  # a continuation line of the current argument
                args[current].append(line.strip())
    description = "\n".join(summary).strip()
    return description, {k: " ".join(p for p in v if p) for k, v in args.items()}


# -- @tool -----------------------------------------------------------------------------------


def _schema_generator() -> type[Any]:
    from pydantic.json_schema import GenerateJsonSchema

    class ToolJsonSchema(GenerateJsonSchema):
        # Per-property titles only repeat the argument name and cost the model tokens.
        def field_title_should_be_set(self, schema: Any) -> bool:
            return False

    return ToolJsonSchema


class FunctionTool:
    """A tool made from a function by :func:`tool`; still callable as that function."""

    # Copied from the function by functools.update_wrapper, like any decorator's wrapper.
    __name__: str
    __qualname__: str
    __wrapped__: Callable[..., Any]

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> None:
        if not callable(func):
            raise InvalidInput(f"@tool needs a function, got {type(func).__name__}")
        functools.update_wrapper(self, func)
        self.func = func
        self.name: str = name or getattr(func, "__name__", "") or ""
        if not re.fullmatch(r"[A-Za-z_][\w.\-]{0,63}", self.name):
            raise InvalidInput(
                f"invalid tool name {self.name!r}", hint="use letters, digits, _ . -"
            )
        doc_description, self.arg_docs = parse_docstring(inspect.getdoc(func))
        self.description: str = description if description is not None else doc_description
        self._signature = inspect.signature(func)
        for p in self._signature.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise InvalidInput(f"tool {self.name!r}: *args and **kwargs are not supported")
        self._is_async = inspect.iscoroutinefunction(func)
        # Built on first use (see _build): resolving hints may need names defined after the
        # decorator ran, and pydantic should not load just because a module defines tools.
        self._built: tuple[bool, Any, dict[str, str], dict[str, Any]] | None = None

    def __repr__(self) -> str:
        return f"<FunctionTool {self.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def _build(self) -> tuple[bool, Any, dict[str, str], dict[str, Any]]:
        """(takes_ctx, pydantic model, {field: argument name}, JSON Schema), built once."""
        if self._built is not None:
            return self._built
        import typing

        from pydantic import Field, create_model

        try:
            hints = typing.get_type_hints(self.func, include_extras=True)
        except Exception as exc:  # NameError for a missing forward reference, mostly
            raise InvalidInput(f"tool {self.name!r}: cannot resolve type hints: {exc}") from exc
        params = list(self._signature.parameters.values())
        takes_ctx = bool(params) and hints.get(params[0].name) is ToolContext
        if takes_ctx:
            params = params[1:]
        fields: dict[str, Any] = {}
        names: dict[str, str] = {}
        for i, p in enumerate(params):
            hint = hints.get(p.name, Any)
            if hint is ToolContext:
                raise InvalidInput(
                    f"tool {self.name!r}: the ToolContext parameter {p.name!r} must come first"
                )
            default = ... if p.default is p.empty else p.default
            # Fields get neutral names with the argument name as alias, so an argument called
            # "json", "schema" or "model_id" never clashes with pydantic's own attributes.
            key = f"arg{i}"
            names[key] = p.name
            fields[key] = (
                hint,
                Field(default, alias=p.name, description=self.arg_docs.get(p.name) or None),
            )
        model = create_model(_model_name(self.name), **fields)
        schema = model.model_json_schema(schema_generator=_schema_generator())
        schema.pop("title", None)
        self._built = (takes_ctx, model, names, schema)
        return self._built

    @property
    def parameters(self) -> dict[str, Any]:
        return self._build()[3]

    @property
    def takes_context(self) -> bool:
        return self._build()[0]

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The arguments checked and converted by the pydantic model; ToolError lists problems."""
        from pydantic import ValidationError

        _, model, names, _ = self._build()
        if not isinstance(arguments, dict):
            raise ToolError(f"invalid arguments for tool {self.name!r}: expected an object")
        try:
            values = model.model_validate(arguments)
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(x) for x in err['loc']) or '(arguments)'}: {err['msg']}"
                for err in exc.errors(include_url=False)
            ]
            raise ToolError(
                f"invalid arguments for tool {self.name!r}: " + "; ".join(problems)
            ) from None
        return {arg: getattr(values, key) for key, arg in names.items()}

    async def call(self, ctx: ToolContext, arguments: dict[str, Any]) -> Any:
        from pydantic_core import to_jsonable_python

        kwargs = self.validate(arguments)
        args: tuple[Any, ...] = (ctx,) if self.takes_context else ()
        if self._is_async:
            result = await self.func(*args, **kwargs)
        else:
            # Sync tools run in a thread so one slow tool does not stall every other run.
            result = await asyncio.to_thread(self.func, *args, **kwargs)
        try:
            return _jsonable(result, to_jsonable_python)
        except Exception as exc:
            raise ToolError(f"tool {self.name!r} returned a value that is not JSON: {exc}") from exc


def _jsonable(value: Any, convert: Callable[[Any], Any]) -> Any:
    """``value`` as JSON data. Plain text, numbers, lists and dicts pass as they are (pydantic's
    encoder refuses a lone surrogate, which the runner makes storable and notes instead); other
    objects (models, dataclasses, dates) go through pydantic."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dict):
        return {
            k if isinstance(k, str) else convert(k): _jsonable(v, convert) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_jsonable(v, convert) for v in value]
    return convert(value)


def _model_name(tool_name: str) -> str:
    return re.sub(r"\W", "_", tool_name) + "_arguments"


@overload
def tool(func: Callable[..., Any], /) -> FunctionTool: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Make a tool of a function; use as ``@tool`` or ``@tool(name="x.y", description=...)``.

    A first parameter annotated :class:`ToolContext` receives the context and is left out of
    the schema; the annotation is the only thing that marks it (a parameter merely named
    ``ctx`` is an ordinary argument).
    """
    if func is not None:
        return FunctionTool(func, name=name, description=description)

    def decorate(f: Callable[..., Any]) -> FunctionTool:
        return FunctionTool(f, name=name, description=description)

    return decorate


__all__ = ["FunctionTool", "Tool", "ToolContext", "is_tool", "parse_docstring", "tool"]
